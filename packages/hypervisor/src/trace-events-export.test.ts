import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type ChromeCompleteEvent,
  type ChromeInstantEvent,
  type ChromeTrace,
  type ChromeTraceEvent,
  defaultTraceEventName,
  TRACE_PID,
  toChromeTraceEvents,
} from "./trace-events-export";
import { TimelineTracer, TRACE_KIND, type TraceKind } from "./tracer";

const K = TRACE_KIND;

/** An L2 CPUID exit reflected to L1, whose handler does a VMREAD that L0 emulates. */
function sampleTracer(): TimelineTracer {
  const t = new TimelineTracer({ capacity: 16 });
  t.instant(K.VM_EXIT, 2, 10, 1000); // 0: hardware exit of L2
  t.begin(K.VM_EXIT, 0, 10, 1000); // 1: L0 handles it
  t.begin(K.NESTED_EXIT, 0, 10, 1200); // 2: reflect to L1
  t.end(1700);
  t.begin(K.HANDLER, 1, 10, 1700); // 3: L1's CPUID handler
  t.begin(K.VMX_INSTRUCTION, 0, 0x4402, 1750); // 4: VMREAD exit reason, emulated by L0
  t.end(1900);
  t.end(2500);
  t.end(2600);
  t.instant(K.VM_ENTRY, 2, 0, 2600); // 5
  return t;
}

function timed(trace: ChromeTrace): (ChromeCompleteEvent | ChromeInstantEvent)[] {
  return trace.traceEvents.filter((e): e is ChromeCompleteEvent | ChromeInstantEvent => e.ph !== "M");
}

describe("toChromeTraceEvents: shape", () => {
  it("writes metadata, complete spans and thread-scoped instants (1000 cycles per µs)", () => {
    const trace = toChromeTraceEvents(sampleTracer(), { cyclesPerMicrosecond: 1000 });
    expect(trace.displayTimeUnit).toBe("ns");
    expect(trace.otherData).toEqual({
      generator: "@nestvisor/hypervisor",
      clock: "simulated cycles",
      cyclesPerMicrosecond: 1000,
      recordedEvents: 6,
      droppedEvents: 0,
    });
    const pid = TRACE_PID;
    const expected: ChromeTraceEvent[] = [
      { name: "process_name", ph: "M", pid, tid: 0, args: { name: "nestvisor" } },
      { name: "thread_name", ph: "M", pid, tid: 0, args: { name: "L0" } },
      { name: "thread_sort_index", ph: "M", pid, tid: 0, args: { sort_index: 0 } },
      { name: "thread_name", ph: "M", pid, tid: 1, args: { name: "L1" } },
      { name: "thread_sort_index", ph: "M", pid, tid: 1, args: { sort_index: 1 } },
      { name: "thread_name", ph: "M", pid, tid: 2, args: { name: "L2" } },
      { name: "thread_sort_index", ph: "M", pid, tid: 2, args: { sort_index: 2 } },
      {
        name: "VM_EXIT 0xa",
        cat: "VM_EXIT",
        ph: "i",
        s: "t",
        ts: 1,
        pid,
        tid: 2,
        args: { kind: "VM_EXIT", code: 10 },
      },
      {
        name: "VM_EXIT 0xa",
        cat: "VM_EXIT",
        ph: "X",
        ts: 1,
        dur: 1.6,
        pid,
        tid: 0,
        args: { kind: "VM_EXIT", code: 10 },
      },
      {
        name: "NESTED_EXIT 0xa",
        cat: "NESTED_EXIT",
        ph: "X",
        ts: 1.2,
        dur: 0.5,
        pid,
        tid: 0,
        args: { kind: "NESTED_EXIT", code: 10 },
      },
      {
        name: "HANDLER 0xa",
        cat: "HANDLER",
        ph: "X",
        ts: 1.7,
        dur: 0.8,
        pid,
        tid: 1,
        args: { kind: "HANDLER", code: 10 },
      },
      {
        name: "VMX_INSTRUCTION 0x4402",
        cat: "VMX_INSTRUCTION",
        ph: "X",
        ts: 1.75,
        dur: 0.15,
        pid,
        tid: 0,
        args: { kind: "VMX_INSTRUCTION", code: 0x4402 },
      },
      {
        name: "VM_ENTRY 0x0",
        cat: "VM_ENTRY",
        ph: "i",
        s: "t",
        ts: 2.6,
        pid,
        tid: 2,
        args: { kind: "VM_ENTRY", code: 0 },
      },
    ];
    expect(trace.traceEvents).toEqual(expected);
    expect(JSON.parse(JSON.stringify(trace))).toEqual(trace);
  });

  it("uses the caller's names and level names, falling back to L<n>", () => {
    const names: [TraceKind, number][] = [];
    const trace = toChromeTraceEvents(sampleTracer(), {
      cyclesPerMicrosecond: 3000,
      name: (kind, code) => {
        names.push([kind, code]);
        return kind === K.VMX_INSTRUCTION
          ? `VMREAD ${code === 0x4402 ? "VM_EXIT_REASON" : code}`
          : `k${kind}`;
      },
      levelNames: ["host KVM", "L1 KVM"],
    });
    expect(names).toHaveLength(6);
    const threadNames = trace.traceEvents
      .filter((e) => e.name === "thread_name")
      .map((e) => [e.tid, e.args.name]);
    expect(threadNames).toEqual([
      [0, "host KVM"],
      [1, "L1 KVM"],
      [2, "L2"],
    ]);
    expect(timed(trace).map((e) => e.name)).toEqual(["k1", "k1", "k5", "k3", "VMREAD VM_EXIT_REASON", "k2"]);
  });

  it("closes a span still open at the last cycle and marks it", () => {
    const t = new TimelineTracer({ capacity: 4 });
    t.begin(K.GUEST, 2, 0, 0);
    t.begin(K.VM_EXIT, 0, 48, 3000);
    t.instant(K.MMU, 0, 1, 4500);
    const trace = toChromeTraceEvents(t, { cyclesPerMicrosecond: 3000 });
    const [guest, exit, mmu] = timed(trace);
    expect(guest).toMatchObject({ ph: "X", ts: 0, dur: 1.5, args: { kind: "GUEST", code: 0, open: true } });
    expect(exit).toMatchObject({ ph: "X", ts: 1, dur: 0.5, args: { kind: "VM_EXIT", code: 48, open: true } });
    expect(mmu).toMatchObject({ ph: "i", ts: 1.5 });
  });

  it("reports dropped events and accepts an empty timeline", () => {
    const t = new TimelineTracer({ capacity: 1 });
    t.instant(K.VM_EXIT, 1, 1, 0);
    t.instant(K.VM_EXIT, 1, 1, 0);
    expect(toChromeTraceEvents(t, { cyclesPerMicrosecond: 1 }).otherData.droppedEvents).toBe(1);
    const empty = toChromeTraceEvents(new TimelineTracer({ capacity: 0 }), { cyclesPerMicrosecond: 1 });
    expect(empty.traceEvents).toEqual([
      { name: "process_name", ph: "M", pid: TRACE_PID, tid: 0, args: { name: "nestvisor" } },
    ]);
  });

  it("rejects a bad clock rate and names that are not strings", () => {
    const t = sampleTracer();
    for (const cyclesPerMicrosecond of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => toChromeTraceEvents(t, { cyclesPerMicrosecond })).toThrow(RangeError);
    }
    const name = (() => 42) as unknown as (kind: TraceKind, code: number) => string;
    expect(() => toChromeTraceEvents(t, { cyclesPerMicrosecond: 1, name })).toThrow(TypeError);
  });

  it("names by default with the kind and the unsigned code in hex", () => {
    expect(defaultTraceEventName(K.VM_EXIT, 0x80000021)).toBe("VM_EXIT 0x80000021");
    expect(defaultTraceEventName(K.VMX_INSTRUCTION, 0)).toBe("VMX_INSTRUCTION 0x0");
  });
});

type Op =
  | {
      readonly op: "begin";
      readonly kind: TraceKind;
      readonly level: number;
      readonly code: number;
      readonly dt: number;
    }
  | { readonly op: "end"; readonly dt: number }
  | {
      readonly op: "instant";
      readonly kind: TraceKind;
      readonly level: number;
      readonly code: number;
      readonly dt: number;
    };

const kindArb = fc.constantFrom(...Object.values(TRACE_KIND));
const dtArb = fc.oneof(
  fc.constant(0),
  fc.integer({ min: 1, max: 5000 }),
  fc.double({ min: 0, max: 1e7, noNaN: true }),
);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    op: fc.constant("begin" as const),
    kind: kindArb,
    level: fc.integer({ min: 0, max: 3 }),
    code: fc.integer({ min: 0, max: 0xffffffff }),
    dt: dtArb,
  }),
  fc.record({ op: fc.constant("end" as const), dt: dtArb }),
  fc.record({
    op: fc.constant("instant" as const),
    kind: kindArb,
    level: fc.integer({ min: 0, max: 3 }),
    code: fc.integer({ min: 0, max: 0xffffffff }),
    dt: dtArb,
  }),
);

/** A tracer filled from random operations; ends with nothing to close are skipped. */
function tracerOf(ops: readonly Op[], capacity: number, closeAll: boolean): TimelineTracer {
  const t = new TimelineTracer({ capacity });
  let cycle = 0;
  for (const op of ops) {
    cycle += op.dt;
    if (op.op === "begin") t.begin(op.kind, op.level, op.code, cycle);
    else if (op.op === "instant") t.instant(op.kind, op.level, op.code, cycle);
    else if (t.openDepth > 0) t.end(cycle);
  }
  while (closeAll && t.openDepth > 0) t.end(cycle);
  return t;
}

const rateArb = fc.oneof(
  fc.constantFrom(1, 1000, 2100, 3000, 3600),
  fc.double({ min: 0.001, max: 10_000, noNaN: true }),
);

describe("toChromeTraceEvents: properties", () => {
  it("is JSON-serialisable, sorted by ts, with non-negative durations and named tracks (property)", () => {
    fc.assert(
      fc.property(
        fc.array(opArb, { maxLength: 80 }),
        fc.integer({ min: 0, max: 100 }),
        fc.boolean(),
        rateArb,
        (ops, capacity, closeAll, rate) => {
          const t = tracerOf(ops, capacity, closeAll);
          const trace = toChromeTraceEvents(t, { cyclesPerMicrosecond: rate });
          expect(JSON.parse(JSON.stringify(trace))).toEqual(trace);

          const events = trace.traceEvents;
          const firstTimed = events.findIndex((e) => e.ph !== "M");
          const metadata = firstTimed === -1 ? events : events.slice(0, firstTimed);
          const rest = timed(trace);
          expect(metadata.length + rest.length).toBe(events.length);
          expect(rest).toHaveLength(t.length);

          const named = new Set(metadata.filter((e) => e.name === "thread_name").map((e) => e.tid));
          let previous = Number.NEGATIVE_INFINITY;
          for (const e of rest) {
            expect(e.pid).toBe(TRACE_PID);
            expect(named.has(e.tid)).toBe(true);
            expect(Number.isFinite(e.ts)).toBe(true);
            expect(e.ts).toBeGreaterThanOrEqual(previous);
            previous = e.ts;
            if (e.ph === "X") expect(e.dur).toBeGreaterThanOrEqual(0);
            else expect(e.s).toBe("t");
          }
          // Starts never decrease in recording order, so the sorted output is recording order.
          const records = t.spans();
          expect(rest.map((e) => [e.ph, e.tid, e.args.code])).toEqual(
            records.map((r) => [r.instant ? "i" : "X", r.level, r.code]),
          );
        },
      ),
    );
  });

  it("keeps spans on each track nested or disjoint, in whole nanoseconds (property)", () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 80 }), fc.boolean(), rateArb, (ops, closeAll, rate) => {
        const t = tracerOf(ops, 1000, closeAll);
        const spans = timed(toChromeTraceEvents(t, { cyclesPerMicrosecond: rate })).filter(
          (e): e is ChromeCompleteEvent => e.ph === "X",
        );
        const ns = spans.map((e) => {
          const start = Math.round(e.ts * 1000);
          const end = Math.round((e.ts + e.dur) * 1000);
          // Written with at most three decimals: whole nanoseconds survive the round trip.
          expect(start / 1000).toBe(e.ts);
          expect((end - start) / 1000).toBe(e.dur);
          return { tid: e.tid, start, end };
        });
        for (let a = 0; a < ns.length; a++) {
          for (let b = a + 1; b < ns.length; b++) {
            const x = ns[a]!;
            const y = ns[b]!;
            if (x.tid !== y.tid) continue;
            const disjoint = x.end <= y.start || y.end <= x.start;
            const nested = (x.start <= y.start && y.end <= x.end) || (y.start <= x.start && x.end <= y.end);
            expect(disjoint || nested).toBe(true);
          }
        }
        // A recorded parent on the same track contains its child in the output too.
        const records = t.spans();
        const spanIndex = records.filter((r) => !r.instant).map((r) => r.index);
        for (const r of records) {
          if (r.instant || r.parent === -1) continue;
          const parent = records[r.parent]!;
          if (parent.level !== r.level) continue;
          const child = ns[spanIndex.indexOf(r.index)]!;
          const outer = ns[spanIndex.indexOf(parent.index)]!;
          expect(outer.start).toBeLessThanOrEqual(child.start);
          expect(child.end).toBeLessThanOrEqual(outer.end);
        }
      }),
    );
  });
});
