import { EVENT_ID_LIMIT, EXIT_REASON, meterTable, VMX_EVENTS } from "@nestvisor/vmx";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  ATTRIBUTION_LEVELS,
  CostAccumulator,
  MAX_OPEN_EXITS,
  NO_EXIT,
  NO_EXIT_SLOT,
  OTHER_REASON_SLOT,
  REASON_SLOTS,
  reasonSlot,
} from "./cost-accumulator";
import { COST_EVENT_NAMES, type CostEventName, costEventId } from "./cost-catalogs";
import { costProfile, flatCostProfile } from "./cost-profiles";
import { compileCostTable, cyclesOf, cyclesOfNamed } from "./cost-table";
import { HYPERVISOR_EVENTS } from "./hypervisor-events";

const table = compileCostTable(costProfile("intel-server"));
const ids = COST_EVENT_NAMES.map((name) => costEventId(name)!);
const H = HYPERVISOR_EVENTS;
const V = VMX_EVENTS;

/** Charges a named recipe of counts. */
function countAll(acc: CostAccumulator, counts: Partial<Record<CostEventName, number>>): void {
  for (const [name, n] of Object.entries(counts)) acc.count(costEventId(name)!, n);
}

function price(counts: Partial<Record<CostEventName, number>>): number {
  return cyclesOfNamed(counts as Record<string, number>, table);
}

type Op =
  | { kind: "count"; id: number; n: number }
  | { kind: "level"; level: number }
  | { kind: "context"; level: number; reason: number }
  | { kind: "begin"; guest: number; reason: number; handler: number }
  | { kind: "end"; resume: number | undefined };

const reasonArb = fc.oneof(
  fc.constant(NO_EXIT),
  fc.integer({ min: 0, max: 80 }),
  fc.constantFrom(127, 128, 300, 0xffff),
);
const levelArb = fc.integer({ min: 0, max: ATTRIBUTION_LEVELS - 1 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant("count" as const),
      id: fc.constantFrom(...ids),
      n: fc.integer({ min: 0, max: 40 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("level" as const), level: levelArb }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("context" as const), level: levelArb, reason: reasonArb }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("begin" as const),
      guest: fc.integer({ min: 1, max: 3 }),
      reason: fc.integer({ min: 0, max: 0xffff }),
      handler: levelArb,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("end" as const),
      resume: fc.option(levelArb, { nil: undefined }),
    }),
  },
);

/** A straightforward model of the accumulator's attribution rules, with maps instead of typed arrays. */
class Oracle {
  level = 0;
  reason = NO_EXIT;
  total = 0;
  readonly stack: { start: number; guest: number; reason: number; outer: number }[] = [];
  readonly byReason = new Map<string, number>();
  readonly byCause = new Map<string, number>();
  readonly counts = new Map<string, number>();
  readonly samples: { key: number; cycles: number }[] = [];

  apply(op: Op): void {
    switch (op.kind) {
      case "count": {
        const cycles = table.cycles[op.id]! * op.n;
        const cause = this.stack.length > 0 ? this.stack[0]!.reason : this.reason;
        add(this.byReason, `${this.level}:${reasonSlot(this.reason)}`, cycles);
        add(this.byCause, `${this.level}:${reasonSlot(cause)}`, cycles);
        add(this.counts, `${this.level}:${op.id}`, op.n);
        this.total += cycles;
        break;
      }
      case "level":
        this.level = op.level;
        break;
      case "context":
        this.level = op.level;
        this.reason = op.reason;
        break;
      case "begin":
        if (this.stack.length === MAX_OPEN_EXITS) return;
        this.stack.push({ start: this.total, guest: op.guest, reason: op.reason, outer: this.reason });
        this.level = op.handler;
        this.reason = op.reason;
        break;
      case "end": {
        const top = this.stack.pop();
        if (top === undefined) return;
        this.samples.push({
          key: top.guest * REASON_SLOTS + reasonSlot(top.reason),
          cycles: this.total - top.start,
        });
        this.reason = top.outer;
        this.level = op.resume ?? top.guest;
        break;
      }
    }
  }
}

function add(map: Map<string, number>, key: string, value: number): void {
  map.set(key, (map.get(key) ?? 0) + value);
}

function run(ops: readonly Op[], acc: CostAccumulator, oracle: Oracle): void {
  for (const op of ops) {
    switch (op.kind) {
      case "count":
        acc.count(op.id, op.n);
        break;
      case "level":
        acc.setLevel(op.level);
        break;
      case "context":
        acc.setContext(op.level, op.reason);
        break;
      case "begin":
        if (acc.openExits === MAX_OPEN_EXITS) break;
        acc.beginExit(op.guest, op.reason, op.handler);
        break;
      case "end":
        if (acc.openExits === 0) break;
        acc.endExit(op.resume);
        break;
    }
    oracle.apply(op);
  }
}

describe("CostAccumulator", () => {
  it("attributes every cycle: sums by level, by reason and by cause all equal the total (property)", () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 150 }), (ops) => {
        const acc = new CostAccumulator(table, { sampleCapacity: 512 });
        const oracle = new Oracle();
        run(ops, acc, oracle);
        const total = acc.totalCycles;
        expect(total).toBe(oracle.total);
        expect(cyclesOf(acc.counts, table)).toBe(total);
        const sum = (a: Float64Array) => a.reduce((s, x) => s + x, 0);
        expect(sum(acc.cyclesByLevelReason)).toBe(total);
        expect(sum(acc.cyclesByLevelCause)).toBe(total);
        let byLevel = 0;
        for (let level = 0; level < ATTRIBUTION_LEVELS; level++) byLevel += acc.levelCycles(level);
        expect(byLevel).toBe(total);
        for (const id of ids) {
          let perLevel = 0;
          for (let level = 0; level < ATTRIBUTION_LEVELS; level++) perLevel += acc.levelCount(level, id);
          expect(perLevel).toBe(acc.counts[id]);
        }
      }),
    );
  });

  it("charges each cycle to the level, innermost reason and outermost reason of the oracle (property)", () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 150 }), (ops) => {
        const acc = new CostAccumulator(table, { sampleCapacity: 512 });
        const oracle = new Oracle();
        run(ops, acc, oracle);
        const expected = (map: Map<string, number>) =>
          Array.from({ length: ATTRIBUTION_LEVELS * REASON_SLOTS }, (_, i) => {
            return map.get(`${Math.floor(i / REASON_SLOTS)}:${i % REASON_SLOTS}`) ?? 0;
          });
        expect(Array.from(acc.cyclesByLevelReason)).toEqual(expected(oracle.byReason));
        expect(Array.from(acc.cyclesByLevelCause)).toEqual(expected(oracle.byCause));
        for (const [key, n] of oracle.counts) {
          const [level, id] = key.split(":").map(Number);
          expect(acc.levelCount(level!, id!)).toBe(n);
        }
        expect(acc.level).toBe(oracle.level);
        expect(acc.exitReason).toBe(oracle.reason);
        expect(acc.openExits).toBe(oracle.stack.length);
        // Each ended exit is one latency sample of the cycles charged while it was open.
        expect(acc.latency.recorded).toBe(oracle.samples.length);
        const keys = new Set(oracle.samples.map((s) => s.key));
        for (const key of keys) {
          const values = oracle.samples.filter((s) => s.key === key).map((s) => s.cycles);
          expect([...acc.latency.sortedSamples(key)]).toEqual(values.sort((a, b) => a - b));
          expect(acc.latency.sums[key]).toBe(values.reduce((s, x) => s + x, 0));
        }
      }),
    );
  });

  it("keeps the attribution sums with fractional costs (to rounding)", () => {
    const fractional = compileCostTable(flatCostProfile("tenth", 0.1, "test", "test"));
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 80 }), (ops) => {
        const acc = new CostAccumulator(fractional, { sampleCapacity: 0 });
        for (const op of ops) {
          if (op.kind === "count") acc.count(op.id, op.n);
          else if (op.kind === "level") acc.setLevel(op.level);
          else if (op.kind === "context") acc.setContext(op.level, op.reason);
        }
        const sum = acc.cyclesByLevelReason.reduce((s, x) => s + x, 0);
        expect(sum).toBeCloseTo(acc.totalCycles, 6);
      }),
    );
  });

  it("splits a reflected L2 CPUID exit, with a trapping L1 VMWRITE inside it, by level, reason and cause", () => {
    const acc = new CostAccumulator(table);
    acc.setLevel(2);
    acc.count(H.GUEST_COMPUTE_CYCLES, 1000);

    acc.beginExit(2, EXIT_REASON.CPUID); // hardware exit to L0
    const l0Reflect = {
      HARDWARE_VM_EXIT: 1,
      EXIT_DISPATCH: 1,
      NESTED_EXIT_REFLECTED: 1,
      NESTED_VM_EXIT: 1,
      VMREAD: 12,
      VMRESUME: 1,
      HARDWARE_VM_ENTRY: 1,
    } as const;
    countAll(acc, l0Reflect);

    acc.setLevel(1); // L1's KVM handles the CPUID exit
    const l1Handler = { EXIT_DISPATCH: 1, EXIT_HANDLER_CPUID: 1, VMREAD: 3 } as const;
    countAll(acc, l1Handler);

    acc.beginExit(1, EXIT_REASON.VMWRITE); // L1's VMWRITE to an unshadowed field traps to L0
    const l0Vmwrite = {
      HARDWARE_VM_EXIT: 1,
      EXIT_DISPATCH: 1,
      EXIT_HANDLER_VMX_INSTRUCTION: 1,
      EMULATED_VMWRITE: 1,
      VMCS12_WRITE: 1,
      VMREAD: 2,
      VMRESUME: 1,
      HARDWARE_VM_ENTRY: 1,
    } as const;
    countAll(acc, l0Vmwrite);
    const vmwriteLatency = acc.endExit();
    expect(vmwriteLatency).toBe(price(l0Vmwrite));
    expect(acc.level).toBe(1);
    expect(acc.exitReason).toBe(EXIT_REASON.CPUID);

    acc.beginExit(1, EXIT_REASON.VMRESUME); // L1 resumes L2: a nested entry done by L0
    const l0Entry = {
      HARDWARE_VM_EXIT: 1,
      EXIT_DISPATCH: 1,
      EXIT_HANDLER_VMX_INSTRUCTION: 1,
      EMULATED_VMRESUME: 1,
      NESTED_ENTRY_CHECKS: 1,
      NESTED_VM_ENTRY: 1,
      VMREAD: 24,
      VMRESUME: 1,
      HARDWARE_VM_ENTRY: 1,
    } as const;
    countAll(acc, l0Entry);
    acc.endExit(2);
    const cpuidLatency = acc.endExit();
    expect(acc.level).toBe(2);
    expect(acc.exitReason).toBe(NO_EXIT);

    const l0 = price(l0Reflect) + price(l0Vmwrite) + price(l0Entry);
    const l1 = price(l1Handler);
    expect(cpuidLatency).toBe(l0 + l1);
    expect(acc.levelCycles(0)).toBe(l0);
    expect(acc.levelCycles(1)).toBe(l1);
    expect(acc.levelCycles(2)).toBe(1000);
    expect(acc.totalCycles).toBe(l0 + l1 + 1000);
    // Innermost reason: L0's VMWRITE and VMRESUME handling are charged to those exits…
    expect(acc.reasonCycles(0, EXIT_REASON.VMWRITE)).toBe(price(l0Vmwrite));
    expect(acc.reasonCycles(0, EXIT_REASON.VMRESUME)).toBe(price(l0Entry));
    expect(acc.reasonCycles(0, EXIT_REASON.CPUID)).toBe(price(l0Reflect));
    expect(acc.reasonCycles(2, NO_EXIT)).toBe(1000);
    // …and all of it to L2's CPUID as the cause.
    expect(acc.causeCycles(0, EXIT_REASON.CPUID)).toBe(l0);
    expect(acc.causeCycles(1, EXIT_REASON.CPUID)).toBe(l1);
    // Latency samples are keyed by the exiting guest's level.
    const l2Cpuid = 2 * REASON_SLOTS + EXIT_REASON.CPUID;
    const l1Vmwrite = 1 * REASON_SLOTS + EXIT_REASON.VMWRITE;
    expect(acc.latency.count(l2Cpuid)).toBe(1);
    expect(acc.latency.max(l2Cpuid)).toBe(cpuidLatency);
    expect(acc.latency.max(l1Vmwrite)).toBe(vmwriteLatency);
    // VMREADs by level: 12 + 2 + 24 by L0 on hardware, 3 by L1 (served by its shadow VMCS).
    expect(acc.levelCount(0, V.VMREAD)).toBe(38);
    expect(acc.levelCount(1, V.VMREAD)).toBe(3);
  });

  it("maps reasons to slots", () => {
    expect(reasonSlot(NO_EXIT)).toBe(NO_EXIT_SLOT);
    expect(reasonSlot(0)).toBe(0);
    expect(reasonSlot(EXIT_REASON.NOTIFY)).toBe(75);
    expect(reasonSlot(128)).toBe(OTHER_REASON_SLOT);
    expect(reasonSlot(0xffff)).toBe(OTHER_REASON_SLOT);
    expect(() => reasonSlot(0x80000021)).toThrow(RangeError);
    expect(() => reasonSlot(-2)).toThrow(RangeError);
  });

  it("rejects ids the table does not price, bad levels, unbalanced and too deep exits", () => {
    const acc = new CostAccumulator(table);
    expect(() => acc.count(0x0ff)).toThrow(RangeError);
    expect(() => acc.count(EVENT_ID_LIMIT)).toThrow(RangeError);
    expect(() => acc.count(-1)).toThrow(RangeError);
    expect(() => acc.setLevel(4)).toThrow(RangeError);
    expect(() => acc.setContext(0, 70000)).toThrow(RangeError);
    expect(() => acc.endExit()).toThrow("endExit without an open exit");
    for (let i = 0; i < MAX_OPEN_EXITS; i++) acc.beginExit(1, EXIT_REASON.VMREAD);
    expect(() => acc.beginExit(1, EXIT_REASON.VMREAD)).toThrow(`more than ${MAX_OPEN_EXITS} exits open`);
  });

  it("is not a CountingMeter, so hot paths call count() rather than writing a table directly", () => {
    expect(meterTable(new CostAccumulator(table))).toBeNull();
  });

  it("resets everything", () => {
    const acc = new CostAccumulator(table);
    acc.beginExit(2, EXIT_REASON.HLT);
    acc.count(H.EXIT_HANDLER_HLT, 3);
    acc.endExit();
    acc.setLevel(3);
    acc.reset();
    expect(acc.totalCycles).toBe(0);
    expect(acc.level).toBe(0);
    expect(acc.exitReason).toBe(NO_EXIT);
    expect(acc.openExits).toBe(0);
    expect(acc.counts.every((n) => n === 0)).toBe(true);
    expect(acc.cyclesByLevelReason.every((n) => n === 0)).toBe(true);
    expect(acc.latency.recorded).toBe(0);
  });
});
