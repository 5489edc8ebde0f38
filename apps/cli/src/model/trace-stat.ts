import { exitReasonName } from "@nestvisor/vmx";
import { type LineResult, type Producer, parseTraceLine, type TraceEvent } from "./trace-line";

/**
 * `perf kvm stat`-style statistics of a KVM trace: each exit from `kvm_exit` to the vCPU's next
 * `kvm_entry` (the interval perf kvm stat's vmexit analysis measures), keyed by vCPU, by the level
 * that exited and by who handled it. In a nested trace (kvm_nested_vmexit seen), a kvm_exit followed
 * by kvm_nested_vmexit is an exit of L2; it was handled by L1 when kvm_nested_vmexit_inject
 * reflected it before the next entry, else by L0. Other kvm_exits are exits of L1 (or, without any
 * nested event in the trace, of an ordinary guest).
 */

export interface GarbageLine {
  readonly line: number;
  readonly text: string;
  readonly why: string;
}

export interface ExitKey {
  readonly vcpu: string;
  /** "L2" or "L1" in a nested trace, null otherwise. */
  readonly exitingLevel: "L1" | "L2" | null;
  readonly handledBy: "L0" | "L1";
  readonly reason: string;
}

export interface ExitGroup extends ExitKey {
  readonly count: number;
  /** Durations in microseconds of the exits that ended in an entry. */
  readonly durations: number[];
  /** Most frequent qualification (info1) seen, for replay. */
  readonly qualifications: Map<bigint, number>;
  /** The vCPU thread's id (what `--vcpu` also accepts). */
  readonly tid: number;
}

export interface TraceStats {
  readonly lines: number;
  readonly events: number;
  readonly kvmEvents: number;
  readonly headers: number;
  readonly lostEvents: number;
  readonly garbage: number;
  readonly garbageSamples: readonly GarbageLine[];
  readonly producers: readonly Producer[];
  readonly nested: boolean;
  readonly exits: number;
  readonly groups: readonly ExitGroup[];
  /** Shadow/TDP pages KVM created (kvm_mmu_get_page ... new). */
  readonly mmuPagesCreated: number;
  readonly nestedEntries: number;
  /** Seconds between the first and last event. */
  readonly span: number;
}

/** A reason as printed, normalised: numbers (unknown codes) become hex; VMX numbers get their name. */
export function normaliseReason(reason: string): string {
  if (/^\d+$/.test(reason)) {
    const n = Number(reason);
    return exitReasonName(n) ?? `0x${n.toString(16)}`;
  }
  if (/^0x[0-9a-f]+$/i.test(reason)) {
    const n = Number.parseInt(reason, 16);
    return exitReasonName(n) ?? `0x${n.toString(16)}`;
  }
  return reason;
}

interface Pending {
  readonly tid: number;
  readonly reason: string;
  readonly ts: number;
  nested: boolean;
  reflected: boolean;
  info1: bigint | undefined;
}

const SAMPLES = 5;

/** Reads a whole trace text. Never throws on content: unknown lines are counted as garbage. */
export function traceStats(text: string): TraceStats {
  const vcpuOfTid = new Map<number, string>();
  const pending = new Map<number, Pending>();
  const producers = new Set<Producer>();
  const garbageSamples: GarbageLine[] = [];
  let lines = 0;
  let events = 0;
  let kvmEvents = 0;
  let headers = 0;
  let lostEvents = 0;
  let garbage = 0;
  let nested = false;
  let exits = 0;
  let mmuPagesCreated = 0;
  let nestedEntries = 0;
  let first = Number.NaN;
  let last = Number.NaN;

  const commOfTid = new Map<number, string>();
  const rawGroups = new Map<string, ExitGroup & { tid: number }>();
  const record = (p: Pending, end: number | undefined) => {
    exits++;
    const exitingLevel = p.nested ? "L2" : "L1";
    const handledBy = p.reflected ? "L1" : "L0";
    const id = `${p.tid}\u0000${exitingLevel}\u0000${handledBy}\u0000${p.reason}`;
    let group = rawGroups.get(id);
    if (group === undefined) {
      group = {
        tid: p.tid,
        vcpu: "",
        exitingLevel,
        handledBy,
        reason: p.reason,
        count: 0,
        durations: [],
        qualifications: new Map(),
      };
      rawGroups.set(id, group);
    }
    (group as { count: number }).count++;
    if (end !== undefined && end >= p.ts) group.durations.push((end - p.ts) * 1e6);
    if (p.info1 !== undefined)
      group.qualifications.set(p.info1, (group.qualifications.get(p.info1) ?? 0) + 1);
  };
  const open = (event: TraceEvent & { reason: string; info1?: bigint }, isNested: boolean): Pending => ({
    tid: event.tid,
    reason: normaliseReason(event.reason),
    ts: event.ts,
    nested: isNested,
    reflected: false,
    info1: event.info1,
  });

  let start = 0;
  while (start <= text.length) {
    let end = text.indexOf("\n", start);
    if (end < 0) end = text.length;
    const raw = text.slice(start, end).replace(/\r$/, "");
    start = end + 1;
    if (raw === "" && start > text.length) break;
    lines++;
    const result: LineResult = parseTraceLine(raw, lines);
    if (result.type === "header") {
      headers++;
      continue;
    }
    if (result.type === "lost") {
      lostEvents += result.count;
      // The lost events may hold any vCPU's entry: an open exit can no longer be paired.
      for (const current of pending.values()) record(current, undefined);
      pending.clear();
      continue;
    }
    if (result.type === "garbage") {
      garbage++;
      if (garbageSamples.length < SAMPLES)
        garbageSamples.push({ line: lines, text: raw.slice(0, 120), why: result.why });
      continue;
    }
    const event = result.event;
    events++;
    producers.add(event.producer);
    if (Number.isNaN(first)) first = event.ts;
    last = event.ts;
    if (event.kind === "other") continue;
    kvmEvents++;
    if (!commOfTid.has(event.tid)) commOfTid.set(event.tid, event.comm);
    if ("vcpuId" in event && event.vcpuId !== undefined) vcpuOfTid.set(event.tid, String(event.vcpuId));
    switch (event.kind) {
      case "exit": {
        const previous = pending.get(event.tid);
        if (previous !== undefined) record(previous, undefined);
        pending.set(event.tid, open(event, false));
        break;
      }
      case "nested-exit": {
        nested = true;
        const current = pending.get(event.tid);
        if (current !== undefined && !current.nested) current.nested = true;
        else {
          if (current !== undefined) record(current, undefined);
          pending.set(event.tid, open(event, true));
        }
        break;
      }
      case "nested-inject": {
        nested = true;
        const current = pending.get(event.tid);
        // kvm_nested_vmexit_inject is printed by nested_vmx_vmexit for every exit to L1, also the
        // ones KVM makes up (an interrupt for L1, a failed entry): only an injected exit with the
        // open L2 exit's reason reflects that exit; another reason means L0 handled it.
        if (current !== undefined && normaliseReason(event.reason) === current.reason) {
          current.nested = true;
          current.reflected = true;
        }
        break;
      }
      case "entry": {
        const current = pending.get(event.tid);
        if (current !== undefined) {
          record(current, event.ts);
          pending.delete(event.tid);
        }
        break;
      }
      case "nested-enter":
        nested = true;
        nestedEntries++;
        break;
      case "mmu-get-page":
        if (event.created) mmuPagesCreated++;
        break;
      default:
        break;
    }
  }
  for (const current of pending.values()) record(current, undefined);
  // vCPU labels: the id KVM printed for the thread, else QEMU's "CPU n/KVM" thread name, else the
  // thread id; a label two threads share (two VMs) gets the thread id appended.
  const baseLabel = (tid: number): string => {
    const id = vcpuOfTid.get(tid) ?? /CPU\s+(\d+)\/KVM/.exec(commOfTid.get(tid) ?? "")?.[1];
    return id ?? `tid ${tid}`;
  };
  const tidsByLabel = new Map<string, Set<number>>();
  for (const g of rawGroups.values()) {
    const label = baseLabel(g.tid);
    const set = tidsByLabel.get(label) ?? new Set<number>();
    set.add(g.tid);
    tidsByLabel.set(label, set);
  }
  const list: ExitGroup[] = [...rawGroups.values()].map((g) => {
    const label = baseLabel(g.tid);
    const vcpu =
      (tidsByLabel.get(label)?.size ?? 1) > 1 && !label.startsWith("tid") ? `${label}/${g.tid}` : label;
    return { ...g, vcpu, exitingLevel: nested ? g.exitingLevel : null };
  });
  return {
    lines,
    events,
    kvmEvents,
    headers,
    lostEvents,
    garbage,
    garbageSamples,
    producers: [...producers],
    nested,
    exits,
    groups: list,
    mmuPagesCreated,
    nestedEntries,
    span: Number.isNaN(first) ? 0 : last - first,
  };
}

/** The nearest-rank percentile of sorted values. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1]!;
}

export interface StatRow extends ExitKey {
  readonly count: number;
  readonly share: number;
  readonly timeShare: number | null;
  readonly timedCount: number;
  readonly minUs: number | null;
  readonly p50Us: number | null;
  readonly p99Us: number | null;
  readonly maxUs: number | null;
  readonly meanUs: number | null;
  readonly totalUs: number | null;
}

export interface StatOptions {
  readonly vcpu?: string;
  readonly reason?: RegExp;
  /** Merge vCPUs into one row per (level, handler, reason). */
  readonly mergeVcpus: boolean;
}

/** Rows for output, largest count first. Shares are of the rows selected. */
export function statRows(stats: TraceStats, options: StatOptions): StatRow[] {
  // `--vcpu` names a vCPU by the label it has (KVM's id, "id/tid" or "tid N"), else by its thread id.
  const vcpu = options.vcpu;
  const byLabel = vcpu !== undefined && stats.groups.some((g) => g.vcpu === vcpu || g.vcpu === `tid ${vcpu}`);
  const selected = stats.groups.filter(
    (g) =>
      (vcpu === undefined ||
        (byLabel ? g.vcpu === vcpu || g.vcpu === `tid ${vcpu}` : g.tid === Number(vcpu))) &&
      (options.reason === undefined || options.reason.test(g.reason)),
  );
  const merged = new Map<string, { key: ExitKey; count: number; durations: number[] }>();
  for (const g of selected) {
    const vcpu = options.mergeVcpus ? "all" : g.vcpu;
    const id = `${vcpu}\u0000${g.exitingLevel}\u0000${g.handledBy}\u0000${g.reason}`;
    const entry = merged.get(id) ?? {
      key: { vcpu, exitingLevel: g.exitingLevel, handledBy: g.handledBy, reason: g.reason },
      count: 0,
      durations: [],
    };
    entry.count += g.count;
    entry.durations.push(...g.durations);
    merged.set(id, entry);
  }
  const totalCount = [...merged.values()].reduce((a, m) => a + m.count, 0);
  const totalTime = [...merged.values()].reduce((a, m) => a + m.durations.reduce((x, y) => x + y, 0), 0);
  const rows = [...merged.values()].map((m): StatRow => {
    const sorted = [...m.durations].sort((a, b) => a - b);
    const total = sorted.reduce((a, b) => a + b, 0);
    const timed = sorted.length > 0;
    return {
      ...m.key,
      count: m.count,
      share: totalCount === 0 ? 0 : m.count / totalCount,
      timeShare: totalTime > 0 ? total / totalTime : null,
      timedCount: sorted.length,
      minUs: timed ? sorted[0]! : null,
      p50Us: timed ? percentile(sorted, 50) : null,
      p99Us: timed ? percentile(sorted, 99) : null,
      maxUs: timed ? sorted[sorted.length - 1]! : null,
      meanUs: timed ? total / sorted.length : null,
      totalUs: timed ? total : null,
    };
  });
  return rows.sort(
    (a, b) =>
      b.count - a.count ||
      a.reason.localeCompare(b.reason) ||
      a.vcpu.localeCompare(b.vcpu, undefined, { numeric: true }),
  );
}
