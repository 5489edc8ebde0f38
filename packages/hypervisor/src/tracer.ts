/**
 * The timeline sink of DESIGN.md §2.4: the model takes a `Meter` (counts) and an optional `Tracer`
 * (a timeline of spans and point events) by injection, with no-op defaults.
 *
 * A span is opened with `begin` and closed with `end`; spans nest (an L2 exit whose handling in L1
 * traps VMREADs to L0 is a span holding spans). A point event (`instant`) marks a moment, such as a
 * hardware VM exit or entry. Every call carries `cycle`, the simulated time: the cost accumulator's
 * running total. Simulated time never runs backwards, so a tracer rejects a cycle below the last
 * one it was given; that makes every recorded span's children lie inside it and every span's
 * duration non-negative.
 *
 * Hot callers test `tracer.enabled` first and skip preparing arguments when it is false (the
 * `NOOP_TRACER`). `TimelineTracer` records into preallocated typed arrays and allocates nothing per
 * event. Naming codes (exit reasons, VMX instruction encodings, handler ids) is left to exporters.
 */

/** What a span or point event stands for. */
export const TRACE_KIND = {
  /** A VM exit: as a span, the exit's handling; as an instant, the hardware transition. */
  VM_EXIT: 1,
  /** A VM entry: as a span, the entry's checks and state loading; as an instant, the transition. */
  VM_ENTRY: 2,
  /** An exit handler running (code = handler id). */
  HANDLER: 3,
  /** A nested VM entry emulated by L0 (L1's VMLAUNCH/VMRESUME of L2). */
  NESTED_ENTRY: 4,
  /** A nested VM exit emulated by L0 (reflecting an L2 exit to L1). */
  NESTED_EXIT: 5,
  /** A VMX instruction executed or emulated (code = instruction or field encoding). */
  VMX_INSTRUCTION: 6,
  /** MMU work (a walk, a shadow page fault, a sync). */
  MMU: 7,
  /** A guest running its own code. */
  GUEST: 8,
  /** A KVM function of a transition (code = a `KVM_PHASE` id), until the next phase, exit or entry. */
  PHASE: 9,
} as const;
export type TraceKind = (typeof TRACE_KIND)[keyof typeof TRACE_KIND];

/** One past the largest trace kind. */
export const TRACE_KIND_LIMIT = 10;

const KIND_NAMES: readonly string[] = (() => {
  const names: string[] = [];
  for (const [name, kind] of Object.entries(TRACE_KIND)) names[kind] = name;
  return names;
})();

/** The name of a trace kind ("VM_EXIT", ...). */
export function traceKindName(kind: number): string {
  const name = KIND_NAMES[kind];
  if (name === undefined) throw new RangeError(`${kind} is not a trace kind (1–${TRACE_KIND_LIMIT - 1})`);
  return name;
}

/** The deepest nesting of open spans. Deeper nesting means a caller forgot to `end` its spans. */
export const MAX_TRACE_DEPTH = 64;

/** Default `TimelineTracer` capacity, in events (28 bytes each: 28 MiB of typed arrays). */
export const DEFAULT_TRACE_CAPACITY = 1 << 20;

export interface Tracer {
  /** False for `NOOP_TRACER`: callers may skip the work of tracing. */
  readonly enabled: boolean;
  /**
   * Opens a span at simulated time `cycle`. `level` is the level whose code or transition the span
   * covers (0–255); `code` is a 32-bit pattern: an exit reason, a VMX instruction encoding, a
   * handler id. Spans nest up to `MAX_TRACE_DEPTH`.
   */
  begin(kind: TraceKind, level: number, code: number, cycle: number): void;
  /** Closes the innermost open span at simulated time `cycle`. */
  end(cycle: number): void;
  /** Records a point event (a hardware VM exit or entry) at simulated time `cycle`. */
  instant(kind: TraceKind, level: number, code: number, cycle: number): void;
}

/** The tracer that records nothing. */
export const NOOP_TRACER: Tracer = Object.freeze({
  enabled: false,
  begin(_kind: TraceKind, _level: number, _code: number, _cycle: number): void {},
  end(_cycle: number): void {},
  instant(_kind: TraceKind, _level: number, _code: number, _cycle: number): void {},
});

/** One recorded event as a plain object (`TimelineTracer.spans()`). */
export interface TraceRecord {
  /** Position in recording order. */
  readonly index: number;
  readonly kind: TraceKind;
  readonly level: number;
  /** The code as an unsigned 32-bit number. */
  readonly code: number;
  readonly start: number;
  /** End cycle; equal to `start` for an instant, NaN for a span still open. */
  readonly end: number;
  /** Spans open around the event when it was recorded (0: top level). */
  readonly depth: number;
  /** Index of the innermost span open around it, -1 at top level. */
  readonly parent: number;
  /** A point event rather than a span. */
  readonly instant: boolean;
}

export interface TimelineTracerOptions {
  /** Events kept (spans and instants), default `DEFAULT_TRACE_CAPACITY`. */
  readonly capacity?: number;
}

const FLAG_INSTANT = 1;

function checkEvent(kind: number, level: number, code: number): void {
  if (!(kind >= 1 && kind < TRACE_KIND_LIMIT && (kind | 0) === kind)) {
    throw new RangeError(`${kind} is not a trace kind (1–${TRACE_KIND_LIMIT - 1})`);
  }
  if ((level & 0xff) !== level) throw new RangeError(`trace level ${level} is not an integer 0–255`);
  if ((code | 0) !== code && code >>> 0 !== code) {
    throw new RangeError(`trace code ${code} is not a 32-bit integer`);
  }
}

/**
 * A timeline kept in preallocated typed arrays, one slot per event in recording order.
 *
 * When the arrays are full the tracer *stops* recording and counts what it drops, rather than
 * wrapping round as a ring. Stopping keeps the start of a run (set-up, the first entries, the warm-up
 * that the rest is compared with) and keeps the recorded events closed under parenthood: a span's
 * parent is always recorded before it, so every `parentAt` points at a live slot and every recorded
 * span is closed by its own `end`. A ring would overwrite the parents of spans still open and leave
 * children pointing at unrelated events. Spans begun after the tracer is full are still tracked on
 * the open-span stack (so `end` calls pair up) but not stored.
 *
 * Recording validates its arguments (kind, level 0–255, 32-bit code, non-decreasing finite cycle,
 * depth ≤ `MAX_TRACE_DEPTH`) and throws on a caller's bug; it allocates nothing.
 */
export class TimelineTracer implements Tracer {
  readonly enabled = true;
  /** Events the arrays hold. */
  readonly capacity: number;
  readonly #kind: Uint8Array;
  readonly #level: Uint8Array;
  readonly #code: Int32Array;
  readonly #start: Float64Array;
  readonly #end: Float64Array;
  readonly #depth: Uint8Array;
  readonly #parent: Int32Array;
  readonly #flags: Uint8Array;
  /** Slot of each open span, outermost first; -1 for a span begun while full. */
  readonly #open = new Int32Array(MAX_TRACE_DEPTH);
  #length = 0;
  #dropped = 0;
  #openDepth = 0;
  #last = Number.NEGATIVE_INFINITY;

  constructor(options: TimelineTracerOptions = {}) {
    const capacity = options.capacity ?? DEFAULT_TRACE_CAPACITY;
    if (!(capacity >= 0 && capacity <= 0x7fffffff && Number.isInteger(capacity))) {
      throw new RangeError(`trace capacity ${capacity} is not an integer 0–2^31-1`);
    }
    this.capacity = capacity;
    this.#kind = new Uint8Array(capacity);
    this.#level = new Uint8Array(capacity);
    this.#code = new Int32Array(capacity);
    this.#start = new Float64Array(capacity);
    this.#end = new Float64Array(capacity);
    this.#depth = new Uint8Array(capacity);
    this.#parent = new Int32Array(capacity);
    this.#flags = new Uint8Array(capacity);
  }

  /** Events recorded. */
  get length(): number {
    return this.#length;
  }

  /** Events (spans and instants) not recorded because the tracer was full. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Spans open now, including any begun while full. */
  get openDepth(): number {
    return this.#openDepth;
  }

  /** The latest cycle given to `begin`, `end` or `instant` since the last `clear`; NaN if none. */
  get lastCycle(): number {
    return this.#last === Number.NEGATIVE_INFINITY ? Number.NaN : this.#last;
  }

  #checkCycle(cycle: number): void {
    // `cycle - cycle` is NaN for NaN and ±Infinity.
    if (!(cycle >= this.#last) || cycle - cycle !== 0) {
      throw new RangeError(
        `trace cycle ${cycle} is not a finite time at or after the previous one (${this.#last})`,
      );
    }
  }

  #record(kind: number, level: number, code: number, cycle: number, depth: number): number {
    const i = this.#length;
    if (i >= this.capacity) {
      this.#dropped++;
      return -1;
    }
    this.#kind[i] = kind;
    this.#level[i] = level;
    this.#code[i] = code;
    this.#start[i] = cycle;
    this.#depth[i] = depth;
    // While the tracer is not full every open span is recorded, so the parent slot is live.
    this.#parent[i] = depth === 0 ? -1 : this.#open[depth - 1]!;
    this.#length = i + 1;
    return i;
  }

  begin(kind: TraceKind, level: number, code: number, cycle: number): void {
    checkEvent(kind, level, code);
    this.#checkCycle(cycle);
    const depth = this.#openDepth;
    if (depth >= MAX_TRACE_DEPTH) {
      throw new RangeError(`more than ${MAX_TRACE_DEPTH} trace spans open: a caller is not ending its spans`);
    }
    const i = this.#record(kind, level, code, cycle, depth);
    if (i >= 0) {
      this.#end[i] = Number.NaN;
      this.#flags[i] = 0;
    }
    this.#open[depth] = i;
    this.#openDepth = depth + 1;
    this.#last = cycle;
  }

  end(cycle: number): void {
    const depth = this.#openDepth;
    if (depth === 0) throw new Error("Tracer.end() with no open span: begin/end calls are unbalanced");
    this.#checkCycle(cycle);
    const i = this.#open[depth - 1]!;
    if (i >= 0) this.#end[i] = cycle;
    this.#openDepth = depth - 1;
    this.#last = cycle;
  }

  instant(kind: TraceKind, level: number, code: number, cycle: number): void {
    checkEvent(kind, level, code);
    this.#checkCycle(cycle);
    const i = this.#record(kind, level, code, cycle, this.#openDepth);
    if (i >= 0) {
      this.#end[i] = cycle;
      this.#flags[i] = FLAG_INSTANT;
    }
    this.#last = cycle;
  }

  /** Forgets every event, open span, the drop count and the last cycle. Allocates nothing. */
  clear(): void {
    this.#length = 0;
    this.#dropped = 0;
    this.#openDepth = 0;
    this.#last = Number.NEGATIVE_INFINITY;
  }

  #slot(i: number): number {
    if (!(i >= 0 && i < this.#length && (i | 0) === i)) {
      throw new RangeError(`trace event ${i} is not recorded (0–${this.#length - 1})`);
    }
    return i;
  }

  kindAt(i: number): TraceKind {
    return this.#kind[this.#slot(i)]! as TraceKind;
  }

  levelAt(i: number): number {
    return this.#level[this.#slot(i)]!;
  }

  /** The code as an unsigned 32-bit number (0x80000021 for an entry failure, not negative). */
  codeAt(i: number): number {
    return this.#code[this.#slot(i)]! >>> 0;
  }

  startAt(i: number): number {
    return this.#start[this.#slot(i)]!;
  }

  /** End cycle: equal to the start for an instant, NaN while the span is open. */
  endAt(i: number): number {
    return this.#end[this.#slot(i)]!;
  }

  /** Spans open around the event when it was recorded (0: top level). */
  depthAt(i: number): number {
    return this.#depth[this.#slot(i)]!;
  }

  /** Index of the innermost span open around the event, -1 at top level. */
  parentAt(i: number): number {
    return this.#parent[this.#slot(i)]!;
  }

  /** Whether the event is a point event (`instant`) rather than a span. */
  instantAt(i: number): boolean {
    return (this.#flags[this.#slot(i)]! & FLAG_INSTANT) !== 0;
  }

  /** Every recorded event as a plain object, in recording order. Allocates: for tests and reports. */
  spans(): TraceRecord[] {
    const records: TraceRecord[] = [];
    for (let i = 0; i < this.#length; i++) {
      records.push({
        index: i,
        kind: this.#kind[i]! as TraceKind,
        level: this.#level[i]!,
        code: this.#code[i]! >>> 0,
        start: this.#start[i]!,
        end: this.#end[i]!,
        depth: this.#depth[i]!,
        parent: this.#parent[i]!,
        instant: (this.#flags[i]! & FLAG_INSTANT) !== 0,
      });
    }
    return records;
  }
}
