import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  DEFAULT_TRACE_CAPACITY,
  MAX_TRACE_DEPTH,
  NOOP_TRACER,
  TimelineTracer,
  TRACE_KIND,
  TRACE_KIND_LIMIT,
  type TraceKind,
  type TraceRecord,
  traceKindName,
} from "./tracer";

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
const levelArb = fc.integer({ min: 0, max: 3 });
const codeArb = fc.oneof(
  fc.integer({ min: 0, max: 80 }),
  fc.integer({ min: 0, max: 0xffffffff }),
  fc.integer({ min: -0x80000000, max: -1 }),
);
const dtArb = fc.oneof(
  fc.constant(0),
  fc.integer({ min: 1, max: 500 }),
  fc.double({ min: 0, max: 1e6, noNaN: true }),
);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant("begin" as const), kind: kindArb, level: levelArb, code: codeArb, dt: dtArb }),
  fc.record({ op: fc.constant("end" as const), dt: dtArb }),
  fc.record({
    op: fc.constant("instant" as const),
    kind: kindArb,
    level: levelArb,
    code: codeArb,
    dt: dtArb,
  }),
);
/** Raw operations; `wellNested` drops the ends that have nothing to close. */
const opsArb = fc.array(opArb, { maxLength: 120 });

/** Keeps begin/end balanced as far as they go: an end with no open span is left out. */
function wellNested(ops: readonly Op[]): Op[] {
  const out: Op[] = [];
  let depth = 0;
  for (const op of ops) {
    if (op.op === "end") {
      if (depth === 0) continue;
      depth--;
    } else if (op.op === "begin") {
      if (depth === MAX_TRACE_DEPTH) continue;
      depth++;
    }
    out.push(op);
  }
  return out;
}

/** Plays the operations into a tracer, with the cycle as the running sum of `dt`. */
function play(
  tracer: { begin: TimelineTracer["begin"]; end: TimelineTracer["end"]; instant: TimelineTracer["instant"] },
  ops: readonly Op[],
): number {
  let cycle = 0;
  for (const op of ops) {
    cycle += op.dt;
    if (op.op === "begin") tracer.begin(op.kind, op.level, op.code, cycle);
    else if (op.op === "end") tracer.end(cycle);
    else tracer.instant(op.kind, op.level, op.code, cycle);
  }
  return cycle;
}

interface Reference {
  readonly records: TraceRecord[];
  readonly dropped: number;
  readonly openDepth: number;
}

/** Oracle: a stack of record objects, keeping the first `capacity` events. */
function reference(ops: readonly Op[], capacity: number): Reference {
  const records: TraceRecord[] = [];
  const stack: (TraceRecord | null)[] = [];
  let dropped = 0;
  let cycle = 0;
  const push = (
    op: Op & { kind: TraceKind; level: number; code: number },
    instant: boolean,
  ): TraceRecord | null => {
    if (records.length >= capacity) {
      dropped++;
      return null;
    }
    const parent = stack.length === 0 ? null : stack[stack.length - 1]!;
    const record: TraceRecord = {
      index: records.length,
      kind: op.kind,
      level: op.level,
      code: op.code >>> 0,
      start: cycle,
      end: instant ? cycle : Number.NaN,
      depth: stack.length,
      parent: parent === null ? -1 : parent.index,
      instant,
    };
    records.push(record);
    return record;
  };
  for (const op of ops) {
    cycle += op.dt;
    if (op.op === "begin") stack.push(push(op, false));
    else if (op.op === "instant") push(op, true);
    else {
      const record = stack.pop()!;
      if (record !== null) records[record.index] = { ...record, end: cycle };
    }
  }
  return { records, dropped, openDepth: stack.length };
}

describe("TimelineTracer against a reference", () => {
  it("records kinds, levels, codes, times, depths and parents as the stack oracle does (property)", () => {
    fc.assert(
      fc.property(opsArb, fc.integer({ min: 0, max: 150 }), (raw, capacity) => {
        const ops = wellNested(raw);
        const tracer = new TimelineTracer({ capacity });
        const last = play(tracer, ops);
        const ref = reference(ops, capacity);
        expect(tracer.spans()).toEqual(ref.records);
        expect(tracer.length).toBe(ref.records.length);
        expect(tracer.dropped).toBe(ref.dropped);
        expect(tracer.length + tracer.dropped).toBe(ops.filter((op) => op.op !== "end").length);
        expect(tracer.openDepth).toBe(ref.openDepth);
        expect(tracer.lastCycle).toBe(ops.length === 0 ? Number.NaN : last);
        for (const r of ref.records) {
          expect(tracer.kindAt(r.index)).toBe(r.kind);
          expect(tracer.levelAt(r.index)).toBe(r.level);
          expect(tracer.codeAt(r.index)).toBe(r.code);
          expect(tracer.startAt(r.index)).toBe(r.start);
          expect(tracer.endAt(r.index)).toBe(r.end);
          expect(tracer.depthAt(r.index)).toBe(r.depth);
          expect(tracer.parentAt(r.index)).toBe(r.parent);
          expect(tracer.instantAt(r.index)).toBe(r.instant);
        }
      }),
    );
  });

  it("keeps recorded events closed under parenthood, children inside parents (property)", () => {
    fc.assert(
      fc.property(opsArb, fc.integer({ min: 0, max: 150 }), (raw, capacity) => {
        const tracer = new TimelineTracer({ capacity });
        play(tracer, wellNested(raw));
        const records = tracer.spans();
        for (const r of records) {
          expect(r.end >= r.start || (Number.isNaN(r.end) && !r.instant)).toBe(true);
          if (r.parent === -1) {
            expect(r.depth).toBe(0);
            continue;
          }
          expect(r.parent).toBeLessThan(r.index);
          const parent = records[r.parent]!;
          expect(parent.instant).toBe(false);
          expect(parent.depth).toBe(r.depth - 1);
          expect(parent.start).toBeLessThanOrEqual(r.start);
          // A closed child inside a parent that is closed too; an open child keeps its parent open.
          if (Number.isNaN(r.end)) expect(parent.end).toBeNaN();
          else if (!Number.isNaN(parent.end)) expect(r.end).toBeLessThanOrEqual(parent.end);
        }
      }),
    );
  });
});

describe("TimelineTracer capacity", () => {
  it("stops at capacity: keeps the first events, counts the rest, pairs ends of unrecorded spans", () => {
    const t = new TimelineTracer({ capacity: 3 });
    t.begin(TRACE_KIND.VM_EXIT, 2, 10, 0); // 0
    t.instant(TRACE_KIND.VM_EXIT, 2, 10, 1); // 1
    t.begin(TRACE_KIND.HANDLER, 0, 7, 2); // 2
    t.begin(TRACE_KIND.VMX_INSTRUCTION, 0, 0x4402, 3); // dropped
    t.instant(TRACE_KIND.VM_ENTRY, 1, 0, 4); // dropped
    expect(t.length).toBe(3);
    expect(t.dropped).toBe(2);
    expect(t.openDepth).toBe(3);
    t.end(5); // closes the unrecorded VMX_INSTRUCTION span
    expect(t.endAt(2)).toBeNaN();
    t.end(6); // HANDLER
    t.end(7); // VM_EXIT
    expect(t.openDepth).toBe(0);
    expect(t.endAt(2)).toBe(6);
    expect(t.endAt(0)).toBe(7);
    expect(t.codeAt(2)).toBe(7);
    t.begin(TRACE_KIND.GUEST, 2, 0, 8);
    expect(t.dropped).toBe(3);
    expect(t.openDepth).toBe(1);
  });

  it("clear() forgets events, open spans, drops and the last cycle, and the tracer records again", () => {
    const t = new TimelineTracer({ capacity: 2 });
    t.begin(TRACE_KIND.GUEST, 1, 0, 100);
    t.begin(TRACE_KIND.GUEST, 1, 0, 200);
    t.instant(TRACE_KIND.VM_EXIT, 1, 0, 300);
    t.clear();
    expect([t.length, t.dropped, t.openDepth]).toEqual([0, 0, 0]);
    expect(t.lastCycle).toBeNaN();
    expect(() => t.end(400)).toThrow(/no open span/);
    t.begin(TRACE_KIND.MMU, 0, 3, 5); // an earlier cycle is fine after clear
    t.end(9);
    expect(t.spans()).toEqual([
      {
        index: 0,
        kind: TRACE_KIND.MMU,
        level: 0,
        code: 3,
        start: 5,
        end: 9,
        depth: 0,
        parent: -1,
        instant: false,
      },
    ]);
  });

  it("capacity 0 records nothing and only counts", () => {
    const t = new TimelineTracer({ capacity: 0 });
    t.begin(TRACE_KIND.GUEST, 0, 0, 1);
    t.instant(TRACE_KIND.VM_EXIT, 0, 0, 2);
    t.end(3);
    expect([t.length, t.dropped, t.openDepth]).toEqual([0, 2, 0]);
  });

  it("defaults to DEFAULT_TRACE_CAPACITY and rejects bad capacities", () => {
    expect(new TimelineTracer().capacity).toBe(DEFAULT_TRACE_CAPACITY);
    expect(DEFAULT_TRACE_CAPACITY).toBe(1 << 20);
    for (const capacity of [-1, 1.5, Number.NaN, 2 ** 31]) {
      expect(() => new TimelineTracer({ capacity })).toThrow(RangeError);
    }
  });
});

describe("TimelineTracer misuse", () => {
  it("throws on end() without an open span", () => {
    const t = new TimelineTracer({ capacity: 4 });
    expect(() => t.end(0)).toThrow(/no open span/);
    t.begin(TRACE_KIND.HANDLER, 0, 1, 0);
    t.end(1);
    expect(() => t.end(2)).toThrow(/no open span/);
  });

  it("allows MAX_TRACE_DEPTH open spans and throws on one more", () => {
    const t = new TimelineTracer({ capacity: 100 });
    for (let d = 0; d < MAX_TRACE_DEPTH; d++) t.begin(TRACE_KIND.HANDLER, 0, d, d);
    expect(t.openDepth).toBe(MAX_TRACE_DEPTH);
    expect(t.depthAt(MAX_TRACE_DEPTH - 1)).toBe(MAX_TRACE_DEPTH - 1);
    expect(() => t.begin(TRACE_KIND.HANDLER, 0, 0, 100)).toThrow(/more than 64/);
    expect(t.length).toBe(MAX_TRACE_DEPTH);
    t.instant(TRACE_KIND.VM_EXIT, 0, 0, 100);
    expect(t.depthAt(MAX_TRACE_DEPTH)).toBe(MAX_TRACE_DEPTH);
    expect(t.parentAt(MAX_TRACE_DEPTH)).toBe(MAX_TRACE_DEPTH - 1);
  });

  it("rejects bad kinds, levels, codes and cycles without recording anything", () => {
    const t = new TimelineTracer({ capacity: 8 });
    t.begin(TRACE_KIND.GUEST, 0, 0, 10);
    const bad: [number, number, number, number][] = [
      [0, 0, 0, 10],
      [TRACE_KIND_LIMIT, 0, 0, 10],
      [1.5, 0, 0, 10],
      [1, -1, 0, 10],
      [1, 256, 0, 10],
      [1, 0.5, 0, 10],
      [1, 0, 2 ** 32, 10],
      [1, 0, -(2 ** 31) - 1, 10],
      [1, 0, 0.5, 10],
      [1, 0, 0, 9.999],
      [1, 0, 0, Number.NaN],
      [1, 0, 0, Number.POSITIVE_INFINITY],
    ];
    for (const [kind, level, code, cycle] of bad) {
      expect(() => t.begin(kind as TraceKind, level, code, cycle)).toThrow(RangeError);
      expect(() => t.instant(kind as TraceKind, level, code, cycle)).toThrow(RangeError);
    }
    expect(() => t.end(5)).toThrow(RangeError);
    expect(() => t.end(Number.NaN)).toThrow(RangeError);
    expect([t.length, t.openDepth, t.lastCycle]).toEqual([1, 1, 10]);
    t.end(10); // the same cycle is allowed: zero-length work
    expect(t.endAt(0)).toBe(10);
  });

  it("stores codes as 32-bit patterns and reads them back unsigned", () => {
    const t = new TimelineTracer({ capacity: 4 });
    t.instant(TRACE_KIND.VM_EXIT, 1, 0x80000021, 0); // VM-entry failure, invalid guest state (SDM 27.8)
    t.instant(TRACE_KIND.VMX_INSTRUCTION, 1, -1, 0);
    t.instant(TRACE_KIND.VMX_INSTRUCTION, 1, 0x6c00, 0);
    expect([t.codeAt(0), t.codeAt(1), t.codeAt(2)]).toEqual([0x80000021, 0xffffffff, 0x6c00]);
  });

  it("rejects accessor indices outside the recorded events", () => {
    const t = new TimelineTracer({ capacity: 4 });
    t.instant(TRACE_KIND.MMU, 0, 0, 0);
    expect(t.kindAt(0)).toBe(TRACE_KIND.MMU);
    for (const i of [-1, 1, 0.5, Number.NaN]) {
      expect(() => t.kindAt(i)).toThrow(RangeError);
      expect(() => t.endAt(i)).toThrow(RangeError);
      expect(() => t.parentAt(i)).toThrow(RangeError);
    }
  });
});

describe("NOOP_TRACER", () => {
  it("is disabled, frozen, and accepts any call without effect or error", () => {
    expect(NOOP_TRACER.enabled).toBe(false);
    expect(Object.isFrozen(NOOP_TRACER)).toBe(true);
    expect(NOOP_TRACER.end(0)).toBeUndefined(); // no open span: still no error
    expect(NOOP_TRACER.begin(TRACE_KIND.VM_EXIT, 0, 0, Number.NaN)).toBeUndefined();
    expect(NOOP_TRACER.instant(TRACE_KIND.VM_EXIT, 300, 2 ** 40, -1)).toBeUndefined();
    expect(Object.keys(NOOP_TRACER).sort()).toEqual(["begin", "enabled", "end", "instant"]);
  });

  it("is interchangeable with a TimelineTracer behind the Tracer interface (property)", () => {
    fc.assert(
      fc.property(opsArb, (raw) => {
        const ops = wellNested(raw);
        expect(() => play(NOOP_TRACER, ops)).not.toThrow();
        expect(NOOP_TRACER.enabled).toBe(false);
      }),
    );
  });
});

describe("traceKindName", () => {
  it("names every kind and rejects others", () => {
    for (const [name, kind] of Object.entries(TRACE_KIND)) expect(traceKindName(kind)).toBe(name);
    expect(Math.max(...Object.values(TRACE_KIND))).toBe(TRACE_KIND_LIMIT - 1);
    expect(() => traceKindName(0)).toThrow(RangeError);
    expect(() => traceKindName(TRACE_KIND_LIMIT)).toThrow(RangeError);
  });
});
