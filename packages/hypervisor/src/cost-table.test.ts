import { MMU_EVENTS } from "@nestvisor/mmu";
import { CountingMeter, EVENT_ID_LIMIT, VMX_EVENTS } from "@nestvisor/vmx";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { COST_CATALOGS, COST_EVENT_NAMES, costEventId } from "./cost-catalogs";
import { costProfile } from "./cost-profiles";
import { compileCostTable, cyclesOf, cyclesOfNamed } from "./cost-table";
import { HYPERVISOR_EVENTS } from "./hypervisor-events";

const table = compileCostTable(costProfile("intel-server"));

describe("compileCostTable", () => {
  it("puts every priced event's cycles at its id and marks exactly the catalog ids known", () => {
    expect(table.cycles.length).toBe(EVENT_ID_LIMIT);
    let known = 0;
    for (let id = 0; id < EVENT_ID_LIMIT; id++) known += table.known[id]!;
    expect(known).toBe(COST_EVENT_NAMES.length);
    for (const name of COST_EVENT_NAMES) {
      const id = costEventId(name)!;
      expect(table.known[id]).toBe(1);
      expect(table.cycles[id]).toBe(table.profile.events[name].cycles);
      expect(table.costOf(name)).toBe(table.profile.events[name].cycles);
      expect(table.nameOf(id)).toBe(name);
    }
    expect(table.cycles[VMX_EVENTS.VMREAD]).toBe(5);
    expect(table.known[0x0ff]).toBe(0);
    expect(table.nameOf(0x3ff)).toBe("0x3ff");
  });

  it("prices the three catalogs", () => {
    expect(COST_CATALOGS).toEqual([VMX_EVENTS, MMU_EVENTS, HYPERVISOR_EVENTS]);
  });
});

describe("cyclesOf", () => {
  const ids = COST_EVENT_NAMES.map((name) => costEventId(name)!);

  it("equals Σ count × cost over a CountingMeter's counts (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom(...ids), fc.integer({ min: 0, max: 1000 })), { maxLength: 60 }),
        (ops) => {
          const meter = new CountingMeter(COST_CATALOGS);
          let expected = 0;
          const named: Record<string, number> = {};
          for (const [id, n] of ops) {
            meter.count(id, n);
            expected += n * table.cycles[id]!;
            const name = table.nameOf(id);
            named[name] = (named[name] ?? 0) + n;
          }
          expect(cyclesOf(meter.counts, table)).toBe(expected);
          expect(cyclesOf(meter.counts, table.cycles)).toBe(expected);
          expect(cyclesOfNamed(named, table)).toBe(expected);
          expect(cyclesOfNamed(meter.snapshot(), table)).toBe(expected);
        },
      ),
    );
  });

  it("refuses names it has no price for, suggesting the closest", () => {
    expect(() => cyclesOfNamed({ VMWRTIE: 1 }, table)).toThrow(
      'no cost for unknown event "VMWRTIE" (did you mean "VMWRITE"?)',
    );
  });
});
