import { HYPERVISOR_FLAG_NAMES, type HypervisorFlagName, type HypervisorModel } from "@nestvisor/hypervisor";
import {
  alignSteps,
  type Recorded,
  type RecordOptions,
  type RoundTrip,
  recordRoundTrip,
  stepKey,
} from "./round-trip";

/**
 * What each flag does to one round trip: the same workload is recorded with the flag flipped
 * alone, the same round trip is picked (same exit reason, same position from the end), and its
 * steps are matched with the original's. A step can disappear, change its counted events, or new
 * steps can appear; the round trip as a whole can disappear (no such exit any more).
 */
export interface StepEffect {
  readonly flag: HypervisorFlagName;
  readonly value: boolean;
  readonly kind: "removes" | "changes";
  readonly cyclesDelta: number;
  /** Count change per event (flipped minus original). */
  readonly events: Readonly<Record<string, number>>;
}

export interface AddedSteps {
  readonly flag: HypervisorFlagName;
  readonly value: boolean;
  readonly steps: readonly {
    readonly level: number;
    readonly step: string;
    readonly count: number;
    readonly cycles: number;
  }[];
}

export interface FlagSummary {
  readonly flag: HypervisorFlagName;
  readonly value: boolean;
  /** Round-trip cycles with the flag flipped, or null when the flipped run has no such round trip. */
  readonly cycles: number | null;
  readonly delta: number | null;
  readonly skipped?: string;
}

export interface Effects {
  /** Per step of the original round trip. */
  readonly byStep: readonly StepEffect[][];
  readonly added: readonly AddedSteps[];
  readonly summary: readonly FlagSummary[];
}

export function flagEffects(
  base: RoundTrip,
  anchor: NonNullable<Recorded["anchor"]>,
  options: RecordOptions,
  onFlag?: (i: number, total: number, flag: string) => void,
): Effects {
  const byStep: StepEffect[][] = base.steps.map(() => []);
  const added: AddedSteps[] = [];
  const summary: FlagSummary[] = [];
  HYPERVISOR_FLAG_NAMES.forEach((flag, i) => {
    onFlag?.(i, HYPERVISOR_FLAG_NAMES.length, flag);
    const value = !options.model.config[flag];
    let flipped: HypervisorModel;
    let recorded: Recorded;
    try {
      flipped = options.model.with({ flags: { [flag]: value } });
      recorded = recordRoundTrip({ ...options, model: flipped, select: { fromEnd: anchor } });
    } catch (error) {
      if (error instanceof RangeError && /not modelled/.test(error.message)) {
        summary.push({ flag, value, cycles: null, delta: null, skipped: "not modelled" });
        return;
      }
      throw error;
    }
    const trip = recorded.trip;
    if (trip === undefined) {
      summary.push({ flag, value, cycles: null, delta: null });
      return;
    }
    summary.push({ flag, value, cycles: trip.cycles, delta: trip.cycles - base.cycles });
    const pairs = alignSteps(base.steps, trip.steps);
    const matchedBase = new Set(pairs.map(([a]) => a));
    const matchedFlipped = new Set(pairs.map(([, b]) => b));
    base.steps.forEach((step, index) => {
      if (!matchedBase.has(index)) {
        const events: Record<string, number> = {};
        for (const e of step.events) events[e.name] = -e.count;
        byStep[index]!.push({ flag, value, kind: "removes", cyclesDelta: -step.cycles, events });
      }
    });
    for (const [a, b] of pairs) {
      const original = base.steps[a]!;
      const other = trip.steps[b]!;
      const counts = new Map<string, number>();
      for (const e of original.events) counts.set(e.name, -e.count);
      for (const e of other.events) counts.set(e.name, (counts.get(e.name) ?? 0) + e.count);
      const events: Record<string, number> = {};
      for (const [name, delta] of counts) if (delta !== 0) events[name] = delta;
      const cyclesDelta = other.cycles - original.cycles;
      if (Object.keys(events).length > 0 || cyclesDelta !== 0)
        byStep[a]!.push({ flag, value, kind: "changes", cyclesDelta, events });
    }
    const extra = new Map<string, { level: number; step: string; count: number; cycles: number }>();
    trip.steps.forEach((step, index) => {
      if (matchedFlipped.has(index)) return;
      const key = stepKey(step);
      const entry = extra.get(key) ?? { level: step.level, step: step.step, count: 0, cycles: 0 };
      entry.count++;
      entry.cycles += step.cycles;
      extra.set(key, entry);
    });
    if (extra.size > 0) added.push({ flag, value, steps: [...extra.values()] });
  });
  return { byStep, added, summary };
}
