import { type TraceKind, traceKindName } from "./tracer";

/**
 * Export of a recorded timeline to the Chrome trace-event JSON object format, which Perfetto's UI
 * (ui.perfetto.dev) and chrome://tracing open:
 *
 *   { traceEvents: [...], displayTimeUnit: "ns", otherData: {...} }
 *
 * Layout: one process (pid 1) and one thread track per level (tid = level), named by `thread_name`
 * metadata events ("L0", "L1", ...) and ordered by `thread_sort_index`. A span becomes a complete
 * event (`ph: "X"`), a point event a thread-scoped instant (`ph: "i"`, `s: "t"`); both carry
 * `args: { kind, code }`. Metadata events come first and carry no `ts` (Perfetto's importer takes
 * them without one); the rest are sorted by `ts`, ties kept in recording order so that a parent
 * comes before the children that start with it.
 *
 * Times: the format counts microseconds; simulated cycles are converted with
 * `cyclesPerMicrosecond` and rounded to whole nanoseconds (the resolution Perfetto stores) before
 * being written as microseconds with at most three decimals. Rounding start and end separately keeps
 * every child inside its parent and every duration non-negative. A span still open is closed at the
 * tracer's last cycle and marked `args.open = true`.
 */

/** The read side of a recorded timeline (`TimelineTracer` provides it). */
export interface TraceTimeline {
  readonly length: number;
  readonly dropped: number;
  /** The latest cycle recorded or seen; NaN if none. */
  readonly lastCycle: number;
  kindAt(i: number): TraceKind;
  levelAt(i: number): number;
  codeAt(i: number): number;
  startAt(i: number): number;
  endAt(i: number): number;
  instantAt(i: number): boolean;
}

export interface ChromeTraceOptions {
  /** Simulated cycles per microsecond (the modelled clock in MHz, e.g. 3000 for 3 GHz). */
  readonly cyclesPerMicrosecond: number;
  /** The name of an event; default: kind name and code in hex ("VM_EXIT 0xa"). */
  readonly name?: (kind: TraceKind, code: number) => string;
  /** Thread names by level; levels beyond the list are named "L<level>". */
  readonly levelNames?: readonly string[];
}

export type TraceArgValue = string | number | boolean;

export interface ChromeMetadataEvent {
  readonly name: "process_name" | "thread_name" | "thread_sort_index";
  readonly ph: "M";
  readonly pid: number;
  readonly tid: number;
  readonly args: Readonly<Record<string, TraceArgValue>>;
}

export interface ChromeCompleteEvent {
  readonly name: string;
  readonly cat: string;
  readonly ph: "X";
  /** Start, microseconds. */
  readonly ts: number;
  /** Duration, microseconds. */
  readonly dur: number;
  readonly pid: number;
  readonly tid: number;
  readonly args: Readonly<Record<string, TraceArgValue>>;
}

export interface ChromeInstantEvent {
  readonly name: string;
  readonly cat: string;
  readonly ph: "i";
  /** Scope: the thread. */
  readonly s: "t";
  readonly ts: number;
  readonly pid: number;
  readonly tid: number;
  readonly args: Readonly<Record<string, TraceArgValue>>;
}

export type ChromeTraceEvent = ChromeMetadataEvent | ChromeCompleteEvent | ChromeInstantEvent;

export interface ChromeTrace {
  readonly traceEvents: ChromeTraceEvent[];
  readonly displayTimeUnit: "ns";
  readonly otherData: Readonly<Record<string, TraceArgValue>>;
}

/** The process every track belongs to. */
export const TRACE_PID = 1;

/** Default event name: the kind's name and the code in hex. */
export function defaultTraceEventName(kind: TraceKind, code: number): string {
  return `${traceKindName(kind)} 0x${(code >>> 0).toString(16)}`;
}

export function toChromeTraceEvents(timeline: TraceTimeline, options: ChromeTraceOptions): ChromeTrace {
  const perUs = options.cyclesPerMicrosecond;
  if (!(perUs > 0 && perUs < Number.POSITIVE_INFINITY)) {
    throw new RangeError(`cyclesPerMicrosecond ${perUs} is not a positive finite number`);
  }
  const nameOf = options.name ?? defaultTraceEventName;
  const levelNames = options.levelNames ?? [];
  /** Cycles to whole nanoseconds; monotonic in the cycle, so nesting survives. */
  const toNs = (cycle: number): number => Math.round((cycle / perUs) * 1000);
  const last = timeline.lastCycle;

  const timed: { readonly ns: number; readonly event: ChromeCompleteEvent | ChromeInstantEvent }[] = [];
  const levels = new Set<number>();
  for (let i = 0; i < timeline.length; i++) {
    const kind = timeline.kindAt(i);
    const code = timeline.codeAt(i);
    const tid = timeline.levelAt(i);
    const name = nameOf(kind, code);
    if (typeof name !== "string") {
      throw new TypeError(`trace event name for kind ${kind}, code ${code} is not a string`);
    }
    levels.add(tid);
    const cat = traceKindName(kind);
    const start = timeline.startAt(i);
    const startNs = toNs(start);
    if (!Number.isFinite(startNs)) throw new RangeError(`trace event ${i} starts at cycle ${start}`);
    if (timeline.instantAt(i)) {
      timed.push({
        ns: startNs,
        event: {
          name,
          cat,
          ph: "i",
          s: "t",
          ts: startNs / 1000,
          pid: TRACE_PID,
          tid,
          args: { kind: cat, code },
        },
      });
      continue;
    }
    const end = timeline.endAt(i);
    const open = Number.isNaN(end);
    const endNs = toNs(open ? Math.max(start, Number.isNaN(last) ? start : last) : end);
    if (!(endNs >= startNs)) throw new RangeError(`trace span ${i} ends (cycle ${end}) before it starts`);
    const args: Record<string, TraceArgValue> = { kind: cat, code };
    if (open) args.open = true;
    timed.push({
      ns: startNs,
      event: {
        name,
        cat,
        ph: "X",
        ts: startNs / 1000,
        dur: (endNs - startNs) / 1000,
        pid: TRACE_PID,
        tid,
        args,
      },
    });
  }
  // Array.prototype.sort is stable: equal starts keep recording order (parents first).
  timed.sort((a, b) => a.ns - b.ns);

  const traceEvents: ChromeTraceEvent[] = [
    { name: "process_name", ph: "M", pid: TRACE_PID, tid: 0, args: { name: "nestvisor" } },
  ];
  for (const level of [...levels].sort((a, b) => a - b)) {
    const threadName = levelNames[level] ?? `L${level}`;
    traceEvents.push(
      { name: "thread_name", ph: "M", pid: TRACE_PID, tid: level, args: { name: threadName } },
      { name: "thread_sort_index", ph: "M", pid: TRACE_PID, tid: level, args: { sort_index: level } },
    );
  }
  for (const { event } of timed) traceEvents.push(event);

  return {
    traceEvents,
    displayTimeUnit: "ns",
    otherData: {
      generator: "@nestvisor/hypervisor",
      clock: "simulated cycles",
      cyclesPerMicrosecond: perUs,
      recordedEvents: timeline.length,
      droppedEvents: timeline.dropped,
    },
  };
}
