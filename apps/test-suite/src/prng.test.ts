import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Prng } from "./prng";

describe("Prng", () => {
  it("is deterministic per seed", () => {
    fc.assert(
      fc.property(fc.nat(), (seed) => {
        const a = new Prng(seed);
        const b = new Prng(seed);
        for (let i = 0; i < 8; i++) expect(a.next()).toBe(b.next());
      }),
    );
  });

  it("below stays in range and pick returns an element", () => {
    fc.assert(
      fc.property(fc.nat(), fc.integer({ min: 1, max: 1000 }), (seed, n) => {
        const r = new Prng(seed);
        const v = r.below(n);
        expect(v >= 0 && v < n && Number.isInteger(v)).toBe(true);
        expect(["a", "b", "c"]).toContain(r.pick(["a", "b", "c"]));
      }),
    );
  });

  it("rejects an empty range", () => {
    expect(() => new Prng(1).below(0)).toThrow(RangeError);
  });

  it("spreads values (no value dominates a small range)", () => {
    const r = new Prng(42);
    const counts = new Array<number>(4).fill(0);
    for (let i = 0; i < 4000; i++) counts[r.below(4)]!++;
    for (const c of counts) expect(c).toBeGreaterThan(800);
  });
});
