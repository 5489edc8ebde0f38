import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { EntryCheckDependencies } from "./entry-check-dependencies";

/** The rules of a rule set, ascending. */
function rulesOf(set: Uint32Array): number[] {
  const out: number[] = [];
  for (let rule = 0; rule < set.length * 32; rule++)
    if ((set[rule >>> 5]! & (1 << (rule & 31))) !== 0) out.push(rule);
  return out;
}

function slotSet(deps: EntryCheckDependencies, slots: readonly number[]): Uint32Array {
  const set = new Uint32Array(deps.slotWords);
  for (const slot of slots) set[slot >>> 5]! |= 1 << (slot & 31);
  return set;
}

describe("EntryCheckDependencies", () => {
  it("sizes its sets in 32-bit words", () => {
    const deps = new EntryCheckDependencies(119, 112);
    expect(deps.ruleWords).toBe(4);
    expect(deps.slotWords).toBe(4);
    expect(deps.readers.length).toBe(112 * 4);
    expect(() => new EntryCheckDependencies(1, 0x8000)).toThrow(RangeError);
  });

  it("a changed slot affects exactly the rules that read it, in rule order", () => {
    const deps = new EntryCheckDependencies(100, 40);
    deps.recordRead(3, 7);
    deps.recordRead(70, 7);
    deps.recordRead(40, 8);
    deps.recordRead(3, 39);
    const out = new Uint32Array(deps.ruleWords);
    deps.affected(slotSet(deps, [7]), out);
    expect(rulesOf(out)).toEqual([3, 70]);
    deps.affected(slotSet(deps, [8, 39]), out);
    expect(rulesOf(out)).toEqual([3, 40]);
    deps.affected(slotSet(deps, [0, 1, 2]), out);
    expect(rulesOf(out)).toEqual([]);
    expect(deps.slotsOf(3)).toEqual([7, 39]);
    expect(deps.unionSlots()).toEqual([7, 8, 39]);
  });

  it("an opaque rule is affected whatever changed, until it is marked otherwise", () => {
    const deps = new EntryCheckDependencies(40, 10);
    deps.setOpaque(33, true);
    const out = new Uint32Array(deps.ruleWords);
    deps.affected(slotSet(deps, []), out);
    expect(rulesOf(out)).toEqual([33]);
    expect(deps.isOpaque(33)).toBe(true);
    deps.setOpaque(33, false);
    deps.affected(slotSet(deps, []), out);
    expect(rulesOf(out)).toEqual([]);
  });

  it("clear forgets readers, opaque rules and the union", () => {
    const deps = new EntryCheckDependencies(10, 10);
    deps.recordRead(1, 2);
    deps.setOpaque(4, true);
    deps.clear();
    const out = new Uint32Array(deps.ruleWords);
    deps.affected(slotSet(deps, [2]), out);
    expect(rulesOf(out)).toEqual([]);
    expect(deps.unionSlots()).toEqual([]);
  });

  it("affected equals a model: opaque rules plus every rule that read a changed slot", () => {
    const rules = 119;
    const slots = 112;
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: rules - 1 }), fc.integer({ min: 0, max: slots - 1 })), {
          maxLength: 300,
        }),
        fc.uniqueArray(fc.integer({ min: 0, max: rules - 1 }), { maxLength: 10 }),
        fc.uniqueArray(fc.integer({ min: 0, max: slots - 1 }), { maxLength: 8 }),
        (reads, opaque, changed) => {
          const deps = new EntryCheckDependencies(rules, slots);
          for (const [rule, slot] of reads) deps.recordRead(rule, slot);
          for (const rule of opaque) deps.setOpaque(rule, true);
          const out = new Uint32Array(deps.ruleWords);
          deps.affected(slotSet(deps, changed), out);
          const expected = new Set(opaque);
          for (const [rule, slot] of reads) if (changed.includes(slot)) expected.add(rule);
          expect(rulesOf(out)).toEqual([...expected].sort((a, b) => a - b));
          expect(deps.unionSlots()).toEqual(
            [...new Set(reads.map(([, slot]) => slot))].sort((a, b) => a - b),
          );
        },
      ),
      { numRuns: 300 },
    );
  });
});
