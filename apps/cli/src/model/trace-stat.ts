import { exitReasonName } from "@nestvisor/vmx";
import {
  type LineResult,
  MAX_LINE_LENGTH,
  type Producer,
  parseTraceLine,
  type TraceEvent,
} from "./trace-line";

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
  /** Seconds between the earliest and the latest event. */
  readonly span: number;
  /**
   * Events timestamped earlier than the event before them on the same thread (a clock that went
   * backwards, or an edited trace), and the line of the first. An exit whose kvm_entry is earlier
   * than its kvm_exit is counted but not timed.
   */
  readonly timeReversals: number;
  readonly firstTimeReversal: number | null;
}

/** A reason as printed, normalised: numbers (unknown codes) become hex; VMX numbers get their name. */
export function normaliseReason(reason: string): string {
  if (/^(\d+|0x[0-9a-f]+)$/i.test(reason)) {
    // Exactly, however wide: SVM exit codes are 64-bit.
    const n = BigInt(reason);
    return (n <= 0xffffn ? exitReasonName(Number(n)) : undefined) ?? `0x${n.toString(16)}`;
  }
  return reason;
}

/** Bytes decoded per step when a trace is given as bytes (a trace may be larger than a string can be). */
const CHUNK_BYTES = 1 << 24;
const LF = 0x0a;
const CR = 0x0d;

/** The lines of `text`: ends are \n, \r\n or a lone \r; the empty piece after a final line end is no line. */
function* linesOf(text: string): Generator<string> {
  const breaks = /\r\n|\r|\n/g;
  let start = 0;
  for (let m = breaks.exec(text); m !== null; m = breaks.exec(text)) {
    yield text.slice(start, m.index);
    start = m.index + m[0].length;
  }
  if (start < text.length) yield text.slice(start);
}

/** The index after the last line end in bytes [from, to), or -1; a CR at to - 1 may be half of CR LF. */
function cutAfterLastBreak(bytes: Uint8Array, from: number, to: number): number {
  for (let i = to - 1; i >= from; i--) {
    if (bytes[i] === LF || (bytes[i] === CR && i < to - 1)) return i + 1;
  }
  return -1;
}

/**
 * The lines of a trace given as text or as UTF-8 bytes (a byte-order mark is dropped, bytes that are
 * not UTF-8 become U+FFFD).
 * Bytes are decoded about `chunkBytes` at a time, cut at line ends (UTF-8 never uses the bytes of
 * CR and LF inside a character), so a trace of any size that fits in memory can be read, not only
 * one that fits in a string. Of a line longer than a chunk only its start is decoded: enough to be
 * refused as longer than any event line.
 */
export function* traceLines(input: string | Uint8Array, chunkBytes = CHUNK_BYTES): Generator<string> {
  if (typeof input === "string") {
    yield* linesOf(input);
    return;
  }
  // The byte-order mark is dropped once, at the start: not at the start of every chunk.
  const decoder = new TextDecoder("utf-8", { ignoreBOM: true });
  let at = input[0] === 0xef && input[1] === 0xbb && input[2] === 0xbf ? 3 : 0;
  while (at < input.length) {
    const end = Math.min(input.length, at + chunkBytes);
    if (end === input.length) {
      yield* linesOf(decoder.decode(input.subarray(at, end)));
      return;
    }
    const cut = cutAfterLastBreak(input, at, end);
    if (cut > at) {
      yield* linesOf(decoder.decode(input.subarray(at, cut)));
      at = cut;
      continue;
    }
    // One line fills the chunk: decode its start only (4 bytes or more per character too many).
    const lf = input.indexOf(LF, end);
    // A CR at end - 1 (the one byte cutAfterLastBreak could not judge) ends this line too.
    const cr = input.indexOf(CR, end - 1);
    const lineEnd = lf < 0 ? (cr < 0 ? input.length : cr) : cr < 0 ? lf : Math.min(lf, cr);
    yield decoder.decode(input.subarray(at, Math.min(lineEnd, at + 4 * (MAX_LINE_LENGTH + 1))));
    at = lineEnd + (input[lineEnd] === CR && input[lineEnd + 1] === LF ? 2 : 1);
  }
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

/**
 * Reads a whole trace, as text or as UTF-8 bytes. Never throws on content: unknown lines are counted
 * as garbage.
 */
export function traceStats(input: string | Uint8Array): TraceStats {
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
  let first = Number.POSITIVE_INFINITY;
  let last = Number.NEGATIVE_INFINITY;
  let timeReversals = 0;
  let firstTimeReversal: number | null = null;
  const lastTsOfTid = new Map<number, number>();

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
    // Trace timestamps have at most nanosecond resolution: rounding drops the doubles' noise.
    if (end !== undefined && end >= p.ts) group.durations.push(Math.round((end - p.ts) * 1e9) / 1e3);
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

  for (const raw of traceLines(input)) {
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
    first = Math.min(first, event.ts);
    last = Math.max(last, event.ts);
    const previousTs = lastTsOfTid.get(event.tid);
    if (previousTs !== undefined && event.ts < previousTs) {
      timeReversals++;
      firstTimeReversal ??= lines;
    }
    lastTsOfTid.set(event.tid, event.ts);
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
    span: events === 0 ? 0 : last - first,
    timeReversals,
    firstTimeReversal,
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
        (byLabel
          ? g.vcpu === vcpu || g.vcpu === `tid ${vcpu}`
          : /^\d+$/.test(vcpu) && g.tid === Number(vcpu))) &&
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
    // Not push(...durations): a vCPU may have more exits than a call can take arguments.
    for (const d of g.durations) entry.durations.push(d);
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
