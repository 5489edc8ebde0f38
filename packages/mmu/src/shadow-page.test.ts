import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SP_HASH_BUCKETS, spHashBucket } from "./shadow-page";

/** Oracle: Linux hash_64(val, 12) on a 64-bit kernel, with BigInt. */
function hash64(gfn: number): number {
  const product = (BigInt(gfn) * 0x61c8864680b583ebn) & 0xffff_ffff_ffff_ffffn;
  return Number(product >> 52n);
}

describe("spHashBucket (kvm_page_table_hashfn)", () => {
  it("is hash_64(gfn, 12) for small and 40-bit gfns", () => {
    for (const gfn of [0, 1, 2, 0x1234, 0xffff_ffff, 0x1_0000_0000, 2 ** 40 - 1]) {
      expect(spHashBucket(gfn)).toBe(hash64(gfn));
    }
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 40 - 1 }), (gfn) => {
        expect(spHashBucket(gfn)).toBe(hash64(gfn));
      }),
      { numRuns: 2000 },
    );
  });

  it("spreads consecutive gfns over the 4096 buckets", () => {
    const used = new Set<number>();
    for (let gfn = 0; gfn < 4096; gfn++) used.add(spHashBucket(gfn));
    expect(SP_HASH_BUCKETS).toBe(4096);
    expect(used.size).toBeGreaterThan(2500);
  });
});
