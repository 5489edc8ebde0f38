import { exitReasonName } from "@nestvisor/vmx";
import { type Codes, textOf, toCodes } from "./trace-code-units";
import { KIND, LINE, MAX_LINE_LENGTH, type Producer, TraceLineReader } from "./trace-line";
import { U64Counts } from "./u64-counts";

// Local copies: read per line, and a module namespace may reach them through getters.
const LINE_HEADER: number = LINE.HEADER;
const LINE_LOST: number = LINE.LOST;
const LINE_GARBAGE: number = LINE.GARBAGE;
const KIND_OTHER: number = KIND.OTHER;
const KIND_EXIT: number = KIND.EXIT;
const KIND_NESTED_EXIT: number = KIND.NESTED_EXIT;
const KIND_NESTED_INJECT: number = KIND.NESTED_INJECT;
const KIND_ENTRY: number = KIND.ENTRY;
const KIND_NESTED_ENTER: number = KIND.NESTED_ENTER;
const KIND_MMU_GET_PAGE: number = KIND.MMU_GET_PAGE;

/**
 * `perf kvm stat`-style statistics of a KVM trace: each exit from `kvm_exit` to the vCPU's next
 * `kvm_entry` (the interval perf kvm stat's vmexit analysis measures), keyed by vCPU, by the level
 * that exited and by who handled it. In a nested trace (kvm_nested_vmexit seen), a kvm_exit followed
 * by kvm_nested_vmexit is an exit of L2; it was handled by L1 when kvm_nested_vmexit_inject
 * reflected it before the next entry, else by L0. Other kvm_exits are exits of L1 (or, without any
 * nested event in the trace, of an ordinary guest).
 *
 * The lines are read in place in the decoded text (no string per line) by one TraceLineReader, and
 * the state kept per thread, reason and group is reused: reading a trace allocates per thread, per
 * distinct reason, group and qualification, and per timed exit its duration (kept for percentiles),
 * not per line.
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
  /** The qualifications (info1) seen, for replay (its most frequent one). */
  readonly qualifications: U64Counts;
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

/** Decimal digits as hex digits, exactly, however many (16 bits at a time). */
function decimalToHex(decimal: string): string {
  const limbs = [0];
  for (let i = 0; i < decimal.length; i++) {
    let carry = decimal.charCodeAt(i) - 0x30;
    for (let k = 0; k < limbs.length; k++) {
      const v = limbs[k]! * 10 + carry;
      limbs[k] = v & 0xffff;
      carry = v >>> 16;
    }
    if (carry !== 0) limbs.push(carry);
  }
  let hex = limbs[limbs.length - 1]!.toString(16);
  for (let k = limbs.length - 2; k >= 0; k--) hex += limbs[k]!.toString(16).padStart(4, "0");
  return hex;
}

/** A reason as printed, normalised: numbers (unknown codes) become hex; VMX numbers get their name. */
export function normaliseReason(reason: string): string {
  if (!/^(\d+|0x[0-9a-f]+)$/i.test(reason)) return reason;
  // Exactly, however wide: SVM exit codes are 64-bit.
  const digits =
    (/^0x/i.test(reason) ? reason.slice(2).toLowerCase() : decimalToHex(reason)).replace(/^0+/, "") || "0";
  return (digits.length <= 4 ? exitReasonName(Number.parseInt(digits, 16)) : undefined) ?? `0x${digits}`;
}

/**
 * Bytes decoded per step when a trace is given as bytes (a trace may be larger than a string can
 * be), characters per step when it is given as a string.
 */
const CHUNK_BYTES = 1 << 24;
const LF = 0x0a;
const CR = 0x0d;

/** The index after the last line end in bytes [from, to), or -1; a CR at to - 1 may be half of CR LF. */
function cutAfterLastBreak(bytes: Uint8Array, from: number, to: number): number {
  for (let i = to - 1; i >= from; i--) {
    if (bytes[i] === LF || (bytes[i] === CR && i < to - 1)) return i + 1;
  }
  return -1;
}

/** A piece of a trace's text that holds whole lines only: several, or (`single`) exactly one. */
interface TextPiece {
  readonly text: string;
  readonly single: boolean;
}

/**
 * The text of a trace given as text or as UTF-8 bytes (a byte-order mark is dropped, bytes that are
 * not UTF-8 become U+FFFD), in pieces of whole lines.
 * Bytes are decoded about `chunkBytes` at a time, cut at line ends (UTF-8 never uses the bytes of
 * CR and LF inside a character), so a trace of any size that fits in memory can be read, not only
 * one that fits in a string. Of a line longer than a chunk only its start is decoded: enough to be
 * refused as longer than any event line.
 */
function* tracePieces(input: string | Uint8Array, chunkBytes: number): Generator<TextPiece> {
  if (typeof input === "string") {
    // Cut after the first line end past each chunkBytes characters: a piece is converted whole.
    let at = 0;
    while (at < input.length) {
      let cut = input.length;
      if (input.length - at > chunkBytes) {
        let end = at + chunkBytes;
        while (end < input.length && input.charCodeAt(end) !== LF && input.charCodeAt(end) !== CR) end++;
        if (end < input.length)
          cut = end + (input.charCodeAt(end) === CR && input.charCodeAt(end + 1) === LF ? 2 : 1);
      }
      yield { text: at === 0 && cut === input.length ? input : input.slice(at, cut), single: false };
      at = cut;
    }
    return;
  }
  // The byte-order mark is dropped once, at the start: not at the start of every chunk.
  const decoder = new TextDecoder("utf-8", { ignoreBOM: true });
  let at = input[0] === 0xef && input[1] === 0xbb && input[2] === 0xbf ? 3 : 0;
  while (at < input.length) {
    const end = Math.min(input.length, at + chunkBytes);
    if (end === input.length) {
      yield { text: decoder.decode(input.subarray(at, end)), single: false };
      return;
    }
    const cut = cutAfterLastBreak(input, at, end);
    if (cut > at) {
      yield { text: decoder.decode(input.subarray(at, cut)), single: false };
      at = cut;
      continue;
    }
    // One line fills the chunk: decode its start only (4 bytes or more per character too many).
    const lf = input.indexOf(LF, end);
    // A CR at end - 1 (the one byte cutAfterLastBreak could not judge) ends this line too.
    const cr = input.indexOf(CR, end - 1);
    const lineEnd = lf < 0 ? (cr < 0 ? input.length : cr) : cr < 0 ? lf : Math.min(lf, cr);
    yield {
      text: decoder.decode(input.subarray(at, Math.min(lineEnd, at + 4 * (MAX_LINE_LENGTH + 1)))),
      single: true,
    };
    at = lineEnd + (input[lineEnd] === CR && input[lineEnd + 1] === LF ? 2 : 1);
  }
}

/**
 * Walks the lines of the pieces of a trace in place: `text[start, end)` is the current line. Ends
 * are \n, \r\n or a lone \r; the empty piece after a final line end is no line.
 */
class LineCursor {
  text = "";
  codes: Codes = new Uint16Array(0);
  start = 0;
  end = 0;
  private next = 0;
  private lf = -1;
  private cr = -1;
  private single = false;

  /** `codes`: false when the caller wants the strings only. */
  reset(piece: TextPiece, codes = true): void {
    const text = piece.text;
    this.text = text;
    if (codes) this.codes = toCodes(text);
    this.single = piece.single;
    this.next = 0;
    this.lf = piece.single ? -1 : text.indexOf("\n");
    this.cr = piece.single ? -1 : text.indexOf("\r");
  }

  /** Moves to the next line of the piece: false when there is none. */
  advance(): boolean {
    const text = this.text;
    const n = text.length;
    const start = this.next;
    if (this.single) {
      if (start > n) return false;
      this.start = 0;
      this.end = n;
      this.next = n + 1;
      return true;
    }
    if (start >= n) return false;
    if (this.lf >= 0 && this.lf < start) this.lf = text.indexOf("\n", start);
    if (this.cr >= 0 && this.cr < start) this.cr = text.indexOf("\r", start);
    const lf = this.lf;
    const cr = this.cr;
    this.start = start;
    if (cr >= 0 && (lf < 0 || cr < lf)) {
      this.end = cr;
      this.next = text.charCodeAt(cr + 1) === LF ? cr + 2 : cr + 1;
    } else if (lf >= 0) {
      this.end = lf;
      this.next = lf + 1;
    } else {
      this.end = n;
      this.next = n;
    }
    return true;
  }
}

/** The lines of a trace given as text or as UTF-8 bytes (see tracePieces). */
export function* traceLines(input: string | Uint8Array, chunkBytes = CHUNK_BYTES): Generator<string> {
  const cursor = new LineCursor();
  for (const piece of tracePieces(input, chunkBytes)) {
    cursor.reset(piece, false);
    while (cursor.advance()) yield cursor.text.slice(cursor.start, cursor.end);
  }
}

const SAMPLES = 5;

/** Exit reasons by the text printed, each with the number of its normalised name. */
class ReasonTable {
  readonly names: string[] = [];
  private readonly idOfName = new Map<string, number>();
  /** By a hash of the printed text: the texts with that hash and their name numbers. */
  private readonly printed = new Map<number, { text: string; id: number }[]>();

  /** The number of the normalised name of the reason printed as text[start, end). */
  idOf(text: Codes, start: number, end: number): number {
    let hash = end - start;
    for (let i = start; i < end; i++) hash = (Math.imul(hash, 31) + text[i]!) | 0;
    const bucket = this.printed.get(hash);
    if (bucket !== undefined) {
      for (const entry of bucket) if (ReasonTable.same(entry.text, text, start, end)) return entry.id;
    }
    const printed = textOf(text, start, end);
    const name = normaliseReason(printed);
    let id = this.idOfName.get(name);
    if (id === undefined) {
      id = this.names.length;
      this.names.push(name);
      this.idOfName.set(name, id);
    }
    if (bucket === undefined) this.printed.set(hash, [{ text: printed, id }]);
    else bucket.push({ text: printed, id });
    return id;
  }

  private static same(a: string, text: Codes, start: number, end: number): boolean {
    if (a.length !== end - start) return false;
    for (let i = 0; i < a.length; i++) if (a.charCodeAt(i) !== text[start + i]) return false;
    return true;
  }
}

class Group {
  readonly tid: number;
  readonly exitingLevel: "L1" | "L2";
  readonly handledBy: "L0" | "L1";
  readonly reason: string;
  count = 0;
  readonly durations: number[] = [];
  readonly qualifications = new U64Counts();
  constructor(tid: number, exitingLevel: "L1" | "L2", handledBy: "L0" | "L1", reason: string) {
    this.tid = tid;
    this.exitingLevel = exitingLevel;
    this.handledBy = handledBy;
    this.reason = reason;
  }
}

/** What the statistics keep per thread, with its open exit (kvm_exit not yet ended by kvm_entry). */
class ThreadState {
  readonly tid: number;
  seen = false;
  lastTs = 0;
  comm: string | undefined = undefined;
  /** The last vCPU id KVM printed for the thread, or -1. */
  vcpuId = -1;
  /** The thread's groups by reason number * 4 + 2 (exit of L2) + 1 (handled by L1). */
  readonly groups: (Group | undefined)[] = [];
  open = false;
  /** When the open exit was opened (a counter): open exits are closed in that order. */
  openedAs = 0;
  reason = 0;
  ts = 0;
  nested = false;
  reflected = false;
  hasInfo1 = false;
  info1Lo = 0;
  info1Hi = 0;
  constructor(tid: number) {
    this.tid = tid;
  }
}

/** The statistics of the lines read so far. */
class StatsBuilder {
  private readonly reader = new TraceLineReader();
  private readonly reasons = new ReasonTable();
  private readonly threads = new Map<number, ThreadState>();
  private lastThread: ThreadState | undefined = undefined;
  private readonly groups: Group[] = [];
  private readonly producers: Producer[] = [];
  private readonly garbageSamples: GarbageLine[] = [];
  private lines = 0;
  private events = 0;
  private kvmEvents = 0;
  private headers = 0;
  private lostEvents = 0;
  private garbage = 0;
  private nested = false;
  private exits = 0;
  private mmuPagesCreated = 0;
  private nestedEntries = 0;
  private first = Number.POSITIVE_INFINITY;
  private last = Number.NEGATIVE_INFINITY;
  private timeReversals = 0;
  private firstTimeReversal: number | null = null;
  private opened = 0;

  line(text: string, codes: Codes, start: number, end: number): void {
    const lines = ++this.lines;
    const r = this.reader;
    const type = r.read(text, codes, start, end, lines);
    if (type === LINE_HEADER) {
      this.headers++;
      return;
    }
    if (type === LINE_LOST) {
      this.lostEvents += r.lostCount;
      // The lost events may hold any vCPU's entry: an open exit can no longer be paired.
      this.closeOpenExits();
      return;
    }
    if (type === LINE_GARBAGE) {
      this.garbage++;
      if (this.garbageSamples.length < SAMPLES)
        this.garbageSamples.push({
          line: lines,
          text: text.slice(start, Math.min(end, start + 120)),
          why: r.why,
        });
      return;
    }
    this.events++;
    if (this.producers.length < 2 && !this.producers.includes(r.producer)) this.producers.push(r.producer);
    const ts = r.ts;
    if (ts < this.first) this.first = ts;
    if (ts > this.last) this.last = ts;
    // Runs of lines of one thread are common: the last thread is at hand.
    let thread = this.lastThread;
    if (thread === undefined || thread.tid !== r.tid) {
      thread = this.threads.get(r.tid);
      if (thread === undefined) {
        thread = new ThreadState(r.tid);
        this.threads.set(r.tid, thread);
      }
      this.lastThread = thread;
    }
    if (thread.seen && ts < thread.lastTs) {
      this.timeReversals++;
      this.firstTimeReversal ??= lines;
    }
    thread.seen = true;
    thread.lastTs = ts;
    const kind = r.kind;
    if (kind === KIND_OTHER) return;
    this.kvmEvents++;
    if (thread.comm === undefined) thread.comm = r.comm();
    if (r.hasVcpuId) thread.vcpuId = r.vcpuId;
    switch (kind) {
      case KIND_EXIT:
        if (thread.open) this.record(thread, false);
        this.open(thread, false);
        break;
      case KIND_NESTED_EXIT:
        this.nested = true;
        if (thread.open && !thread.nested) thread.nested = true;
        else {
          if (thread.open) this.record(thread, false);
          this.open(thread, true);
        }
        break;
      case KIND_NESTED_INJECT:
        this.nested = true;
        // kvm_nested_vmexit_inject is printed by nested_vmx_vmexit for every exit to L1, also the
        // ones KVM makes up (an interrupt for L1, a failed entry): only an injected exit with the
        // open L2 exit's reason reflects that exit; another reason means L0 handled it.
        if (
          thread.open &&
          this.reasons.idOf(r.reasonCodes(), r.reasonFrom(), r.reasonTo()) === thread.reason
        ) {
          thread.nested = true;
          thread.reflected = true;
        }
        break;
      case KIND_ENTRY:
        if (thread.open) {
          this.record(thread, true);
          thread.open = false;
        }
        break;
      case KIND_NESTED_ENTER:
        this.nested = true;
        this.nestedEntries++;
        break;
      case KIND_MMU_GET_PAGE:
        if (r.created) this.mmuPagesCreated++;
        break;
      default:
        break;
    }
  }

  /** Opens an exit on the thread from the line just read (keeping its place if one was open). */
  private open(thread: ThreadState, nested: boolean): void {
    const r = this.reader;
    if (!thread.open) {
      thread.open = true;
      thread.openedAs = this.opened++;
    }
    thread.reason = this.reasons.idOf(r.reasonCodes(), r.reasonFrom(), r.reasonTo());
    thread.ts = r.ts;
    thread.nested = nested;
    thread.reflected = false;
    thread.hasInfo1 = r.hasInfo1;
    thread.info1Lo = r.info1Lo;
    thread.info1Hi = r.info1Hi;
  }

  /**
   * Counts the thread's open exit, timed when it ended in the entry just read (its time is read
   * here: a double passed to a call may be boxed).
   */
  private record(thread: ThreadState, timed: boolean): void {
    const end = this.reader.ts;
    this.exits++;
    const key = thread.reason * 4 + (thread.nested ? 2 : 0) + (thread.reflected ? 1 : 0);
    let group = key < thread.groups.length ? thread.groups[key] : undefined;
    if (group === undefined) {
      while (thread.groups.length < key) thread.groups.push(undefined);
      group = new Group(
        thread.tid,
        thread.nested ? "L2" : "L1",
        thread.reflected ? "L1" : "L0",
        this.reasons.names[thread.reason]!,
      );
      thread.groups[key] = group;
      this.groups.push(group);
    }
    group.count++;
    // Trace timestamps have at most nanosecond resolution: rounding drops the doubles' noise.
    if (timed && end >= thread.ts) group.durations.push(Math.round((end - thread.ts) * 1e9) / 1e3);
    if (thread.hasInfo1) group.qualifications.add(thread.info1Lo, thread.info1Hi);
  }

  /** Counts every open exit, untimed, in the order they were opened. */
  private closeOpenExits(): void {
    const open = [...this.threads.values()].filter((t) => t.open).sort((a, b) => a.openedAs - b.openedAs);
    for (const thread of open) {
      this.record(thread, false);
      thread.open = false;
    }
  }

  finish(): TraceStats {
    this.closeOpenExits();
    // vCPU labels: the id KVM printed for the thread, else QEMU's "CPU n/KVM" thread name, else the
    // thread id; a label two threads share (two VMs) gets the thread id appended.
    const baseLabel = (tid: number): string => {
      const thread = this.threads.get(tid);
      const id =
        thread !== undefined && thread.vcpuId >= 0
          ? String(thread.vcpuId)
          : /CPU\s+(\d+)\/KVM/.exec(thread?.comm ?? "")?.[1];
      return id ?? `tid ${tid}`;
    };
    const tidsByLabel = new Map<string, Set<number>>();
    for (const g of this.groups) {
      const label = baseLabel(g.tid);
      const set = tidsByLabel.get(label) ?? new Set<number>();
      set.add(g.tid);
      tidsByLabel.set(label, set);
    }
    const nested = this.nested;
    const groups = this.groups.map((g): ExitGroup => {
      const label = baseLabel(g.tid);
      const vcpu =
        (tidsByLabel.get(label)?.size ?? 1) > 1 && !label.startsWith("tid") ? `${label}/${g.tid}` : label;
      return {
        tid: g.tid,
        vcpu,
        exitingLevel: nested ? g.exitingLevel : null,
        handledBy: g.handledBy,
        reason: g.reason,
        count: g.count,
        durations: g.durations,
        qualifications: g.qualifications,
      };
    });
    return {
      lines: this.lines,
      events: this.events,
      kvmEvents: this.kvmEvents,
      headers: this.headers,
      lostEvents: this.lostEvents,
      garbage: this.garbage,
      garbageSamples: this.garbageSamples,
      producers: this.producers,
      nested,
      exits: this.exits,
      groups,
      mmuPagesCreated: this.mmuPagesCreated,
      nestedEntries: this.nestedEntries,
      span: this.events === 0 ? 0 : this.last - this.first,
      timeReversals: this.timeReversals,
      firstTimeReversal: this.firstTimeReversal,
    };
  }
}

/**
 * Reads a whole trace, as text or as UTF-8 bytes (`chunkBytes` at a time: see tracePieces). Never
 * throws on content: unknown lines are counted as garbage.
 */
export function traceStats(input: string | Uint8Array, chunkBytes = CHUNK_BYTES): TraceStats {
  const stats = new StatsBuilder();
  const cursor = new LineCursor();
  for (const piece of tracePieces(input, chunkBytes)) {
    cursor.reset(piece);
    while (cursor.advance()) stats.line(cursor.text, cursor.codes, cursor.start, cursor.end);
  }
  return stats.finish();
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
