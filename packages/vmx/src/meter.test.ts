import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  CountingMeter,
  defineEventCatalog,
  EVENT_ID_LIMIT,
  EVENT_LAYERS,
  meterTable,
  NOOP_METER,
} from "./meter";

describe("defineEventCatalog", () => {
  const catalog = defineEventCatalog("mmu", 0x240, ["ROOT_ALLOC", "ROOT_FREE", "SPTE_WRITE"]);

  it("numbers names from the base, in order", () => {
    expect(catalog.ROOT_ALLOC).toBe(0x240);
    expect(catalog.ROOT_FREE).toBe(0x241);
    expect(catalog.SPTE_WRITE).toBe(0x242);
    expect(catalog.layer).toBe("mmu");
    expect(catalog.base).toBe(0x240);
    expect(catalog.names).toEqual(["ROOT_ALLOC", "ROOT_FREE", "SPTE_WRITE"]);
  });

  it("looks names and ids up both ways", () => {
    expect(catalog.nameOf(0x241)).toBe("ROOT_FREE");
    expect(catalog.nameOf(0x23f)).toBeUndefined();
    expect(catalog.nameOf(0x243)).toBeUndefined();
    expect(catalog.nameOf(576.5)).toBeUndefined();
    expect(catalog.idOf("SPTE_WRITE")).toBe(0x242);
    expect(catalog.idOf("nameOf")).toBeUndefined();
  });

  it("is frozen", () => {
    expect(Object.isFrozen(catalog)).toBe(true);
    expect(Object.isFrozen(catalog.names)).toBe(true);
    expect(() => {
      (catalog as unknown as Record<string, number>).ROOT_ALLOC = 7;
    }).toThrow(TypeError);
  });

  it("gives each layer a disjoint range", () => {
    const ranges = Object.values(EVENT_LAYERS).sort((a, b) => a.first - b.first);
    for (let i = 1; i < ranges.length; i++) expect(ranges[i]!.first).toBeGreaterThan(ranges[i - 1]!.last);
    expect(ranges.at(-1)!.last).toBe(EVENT_ID_LIMIT - 1);
    expect(EVENT_LAYERS.vmx).toEqual({ first: 0x100, last: 0x1ff });
    expect(EVENT_LAYERS.mmu).toEqual({ first: 0x200, last: 0x2ff });
    expect(EVENT_LAYERS.hypervisor).toEqual({ first: 0x300, last: 0x3ff });
  });

  it("rejects a base outside the layer's range", () => {
    expect(() => defineEventCatalog("vmx", 0x0ff, ["A"])).toThrow(RangeError);
    expect(() => defineEventCatalog("vmx", 0x200, ["A"])).toThrow(RangeError);
    expect(() => defineEventCatalog("hypervisor", 0x100, ["A"])).toThrow(/range/);
    expect(() => defineEventCatalog("vmx", 256.5, ["A"])).toThrow(RangeError);
  });

  it("rejects a catalog that runs past the end of its range", () => {
    expect(() => defineEventCatalog("vmx", 0x1fe, ["A", "B"])).not.toThrow();
    expect(() => defineEventCatalog("vmx", 0x1fe, ["A", "B", "C"])).toThrow(RangeError);
  });

  it("rejects duplicate and malformed names", () => {
    expect(() => defineEventCatalog("vmx", 0x180, ["A", "B", "A"])).toThrow(/twice/);
    expect(() => defineEventCatalog("vmx", 0x180, ["A B" as Uppercase<string>])).toThrow(/UPPER_SNAKE_CASE/);
    expect(() => defineEventCatalog("vmx", 0x180, ["_A"])).toThrow(/UPPER_SNAKE_CASE/);
    expect(() => defineEventCatalog("vmx", 0x180, ["lower" as Uppercase<string>])).toThrow(
      /UPPER_SNAKE_CASE/,
    );
  });

  it("rejects an unknown layer", () => {
    expect(() => defineEventCatalog("x86-arch" as "vmx", 0x10, ["A"])).toThrow(/unknown event layer/);
  });
});

describe("NOOP_METER", () => {
  it("accepts counts and keeps nothing", () => {
    expect(NOOP_METER.count(0x105)).toBeUndefined();
    expect(NOOP_METER.count(0x105, 3)).toBeUndefined();
    expect(Object.isFrozen(NOOP_METER)).toBe(true);
  });
});

describe("CountingMeter", () => {
  const a = defineEventCatalog("vmx", 0x1f0, ["READ", "WRITE"]);
  const b = defineEventCatalog("hypervisor", 0x300, ["EXIT", "ENTRY"]);

  it("counts by id, with a default of one", () => {
    const meter = new CountingMeter([a, b]);
    meter.count(a.READ);
    meter.count(a.READ);
    meter.count(b.EXIT, 5);
    expect(meter.get(a.READ)).toBe(2);
    expect(meter.get(a.WRITE)).toBe(0);
    expect(meter.get(b.EXIT)).toBe(5);
    expect(meter.byName("READ")).toBe(2);
    expect(() => meter.byName("NOPE")).toThrow(RangeError);
    expect(meter.get(EVENT_ID_LIMIT + 3)).toBe(0);
  });

  it("rejects ids that are not events", () => {
    const meter = new CountingMeter();
    expect(() => meter.count(-1)).toThrow(RangeError);
    expect(() => meter.count(EVENT_ID_LIMIT)).toThrow(RangeError);
    expect(() => meter.count(1.5)).toThrow(RangeError);
  });

  it("snapshots every named event, and unnamed ids only when counted", () => {
    const meter = new CountingMeter([a, b]);
    meter.count(b.ENTRY, 2);
    meter.count(0x123);
    expect(meter.snapshot()).toEqual({ "0x123": 1, READ: 0, WRITE: 0, EXIT: 0, ENTRY: 2 });
    expect(Object.keys(meter.snapshot())).toEqual(["0x123", "READ", "WRITE", "EXIT", "ENTRY"]);
    expect(meter.nameOf(0x123)).toBe("0x123");
    expect(meter.nameOf(a.WRITE)).toBe("WRITE");
  });

  it("resets", () => {
    const meter = new CountingMeter([a]);
    meter.count(a.WRITE, 9);
    meter.reset();
    expect(meter.get(a.WRITE)).toBe(0);
    expect(meter.snapshot()).toEqual({ READ: 0, WRITE: 0 });
  });

  it("diffs against an earlier snapshot, listing only what changed", () => {
    const meter = new CountingMeter([a, b]);
    meter.count(a.READ, 3);
    const before = meter.snapshot();
    meter.count(a.READ);
    meter.count(b.EXIT, 2);
    expect(meter.diff(before)).toEqual({ READ: 1, EXIT: 2 });
    expect(meter.diff(meter.snapshot())).toEqual({});
    meter.reset();
    expect(meter.diff(before)).toEqual({ READ: -3 });
    expect(meter.diff({ GONE: 4 })).toEqual({ GONE: -4 });
  });

  it("rejects catalogs that share ids or names", () => {
    const overlapping = defineEventCatalog("vmx", 0x1f1, ["OTHER"]);
    expect(() => new CountingMeter([a, overlapping])).toThrow(/both WRITE and OTHER/);
    const sameName = defineEventCatalog("mmu", 0x200, ["READ"]);
    expect(() => new CountingMeter([a, sameName])).toThrow(/two catalogs/);
  });

  it("exposes its count table for hot paths, and other meters expose none", () => {
    const meter = new CountingMeter([a]);
    const table = meterTable(meter)!;
    expect(table).toBe(meter.counts);
    table[a.WRITE] = table[a.WRITE]! + 1;
    expect(meter.byName("WRITE")).toBe(1);
    expect(meterTable(NOOP_METER)).toBeNull();
    expect(meterTable({ count() {} })).toBeNull();
  });

  it("agrees with a map model on random count sequences (property)", () => {
    const ids = [a.READ, a.WRITE, b.EXIT, b.ENTRY];
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom(...ids), fc.integer({ min: 0, max: 1000 })), { maxLength: 60 }),
        fc.nat({ max: 60 }),
        (ops, at) => {
          const split = Math.min(at, ops.length);
          const meter = new CountingMeter([a, b]);
          const total = new Map<string, number>();
          const later = new Map<string, number>();
          let before = meter.snapshot();
          ops.forEach(([id, n], i) => {
            if (i === split) before = meter.snapshot();
            meter.count(id, n);
            const name = meter.nameOf(id);
            total.set(name, (total.get(name) ?? 0) + n);
            if (i >= split) later.set(name, (later.get(name) ?? 0) + n);
          });
          if (split === ops.length) before = meter.snapshot();
          for (const name of ["READ", "WRITE", "EXIT", "ENTRY"]) {
            expect(meter.get(meter.catalogs[0]!.idOf(name) ?? meter.catalogs[1]!.idOf(name)!)).toBe(
              total.get(name) ?? 0,
            );
            expect(meter.snapshot()[name]).toBe(total.get(name) ?? 0);
          }
          expect(meter.diff(before)).toEqual(Object.fromEntries([...later].filter(([, n]) => n !== 0)));
        },
      ),
    );
  });
});
