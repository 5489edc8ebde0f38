import { EVENT_ID_LIMIT, exitReasonName } from "@nestvisor/vmx";
import {
  ATTRIBUTION_LEVELS,
  type CostAccumulator,
  NO_EXIT_SLOT,
  OTHER_REASON_SLOT,
  REASON_SLOT_LIMIT,
  REASON_SLOTS,
} from "./cost-accumulator";
import { LATENCY_BUCKETS, latencyBucketHigh, latencyBucketLow } from "./exit-latency";

/**
 * A report-time snapshot of a `CostAccumulator`: where every cycle went, by level, by exit reason
 * (innermost and outermost) and by event, plus the exit-latency distributions. Only non-zero rows
 * are listed. Allocates freely; for reports, `--json` and tests, not hot paths.
 */
export interface CostAttribution {
  readonly profile: string;
  readonly totalCycles: number;
  /** Cycles per level, index = level (L0…L3). */
  readonly byLevel: readonly number[];
  /** Cycles per innermost exit reason (the exit being handled when the work was done). */
  readonly byReason: readonly ReasonCycles[];
  /** Cycles per outermost exit reason (the guest exit that started the chain). */
  readonly byCause: readonly ReasonCycles[];
  /** Counts and cycles per event. */
  readonly events: readonly EventCycles[];
  /** Latency distribution per exiting guest level and reason. */
  readonly exits: readonly ExitLatencyRow[];
}

export interface ReasonCycles {
  /** The basic exit reason, or null for work outside exits ("none") and reasons ≥ 128 ("other"). */
  readonly reason: number | null;
  readonly name: string;
  readonly cycles: number;
  /** Cycles per level, index = level. */
  readonly byLevel: readonly number[];
}

export interface EventCycles {
  readonly id: number;
  readonly name: string;
  readonly count: number;
  readonly cycles: number;
  /** Count per level, index = level. */
  readonly countByLevel: readonly number[];
}

export interface LatencyBucketRow {
  /** Inclusive lower bound, cycles. */
  readonly low: number;
  /** Exclusive upper bound, cycles (Infinity for the last bucket). */
  readonly high: number;
  readonly count: number;
}

export interface ExitLatencyRow {
  /** Level of the guest that exited. */
  readonly level: number;
  readonly reason: number | null;
  readonly name: string;
  readonly count: number;
  readonly totalCycles: number;
  readonly meanCycles: number;
  readonly stddevCycles: number;
  readonly minCycles: number;
  readonly maxCycles: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  /** False when the sample buffer overflowed and the percentiles come from a reservoir sample. */
  readonly exactPercentiles: boolean;
  /** Non-empty log2 buckets. */
  readonly histogram: readonly LatencyBucketRow[];
}

/** The display name of an attribution slot: KVM's reason name, its number in hex, "none" or "other". */
export function reasonSlotName(slot: number): string {
  if (slot === NO_EXIT_SLOT) return "none";
  if (slot === OTHER_REASON_SLOT) return `other (≥ ${REASON_SLOT_LIMIT})`;
  return exitReasonName(slot) ?? `0x${slot.toString(16)}`;
}

function slotReason(slot: number): number | null {
  return slot < REASON_SLOT_LIMIT ? slot : null;
}

function reasonRows(table: Float64Array): ReasonCycles[] {
  const rows: ReasonCycles[] = [];
  for (let slot = 0; slot < REASON_SLOTS; slot++) {
    const byLevel: number[] = [];
    let cycles = 0;
    for (let level = 0; level < ATTRIBUTION_LEVELS; level++) {
      const value = table[level * REASON_SLOTS + slot]!;
      byLevel.push(value);
      cycles += value;
    }
    if (byLevel.some((value) => value !== 0)) {
      rows.push({ reason: slotReason(slot), name: reasonSlotName(slot), cycles, byLevel });
    }
  }
  return rows;
}

/** Snapshots an accumulator. */
export function costAttribution(acc: CostAccumulator): CostAttribution {
  const byLevel: number[] = [];
  for (let level = 0; level < ATTRIBUTION_LEVELS; level++) byLevel.push(acc.levelCycles(level));

  const events: EventCycles[] = [];
  const cost = acc.table.cycles;
  for (let id = 0; id < EVENT_ID_LIMIT; id++) {
    const count = acc.counts[id]!;
    if (count === 0) continue;
    const countByLevel: number[] = [];
    for (let level = 0; level < ATTRIBUTION_LEVELS; level++) countByLevel.push(acc.levelCount(level, id));
    events.push({ id, name: acc.table.nameOf(id), count, cycles: count * cost[id]!, countByLevel });
  }

  const exits: ExitLatencyRow[] = [];
  const latency = acc.latency;
  for (let key = 0; key < latency.keys; key++) {
    const count = latency.count(key);
    if (count === 0) continue;
    const slot = key % REASON_SLOTS;
    const [p50, p90, p99] = latency.percentiles(key, [50, 90, 99]).values;
    const counts = latency.histogram(key);
    const histogram: LatencyBucketRow[] = [];
    for (let b = 0; b < LATENCY_BUCKETS; b++) {
      const n = counts[b]!;
      if (n !== 0) histogram.push({ low: latencyBucketLow(b), high: latencyBucketHigh(b), count: n });
    }
    exits.push({
      level: Math.floor(key / REASON_SLOTS),
      reason: slotReason(slot),
      name: reasonSlotName(slot),
      count,
      totalCycles: latency.sums[key]!,
      meanCycles: latency.mean(key),
      stddevCycles: latency.stddev(key),
      minCycles: latency.min(key),
      maxCycles: latency.max(key),
      p50: p50!,
      p90: p90!,
      p99: p99!,
      exactPercentiles: latency.exact,
      histogram,
    });
  }

  return {
    profile: acc.table.profile.name,
    totalCycles: acc.totalCycles,
    byLevel,
    byReason: reasonRows(acc.cyclesByLevelReason),
    byCause: reasonRows(acc.cyclesByLevelCause),
    events,
    exits,
  };
}
