import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { kvmMmuRootsAll, MMU_CONTEXT_KIND, MmuContext } from "./mmu-context";
import { KVM_ROOT_CACHE, kvmRootCacheWithSize } from "./root-cache-policy";

describe("root-cache policy", () => {
  it("KVM's policy keeps three previous roots and the 0xf mask", () => {
    expect(KVM_ROOT_CACHE.prevRoots).toBe(3);
    expect(kvmMmuRootsAll(3)).toBe(0xf);
    const ctx = new MmuContext(MMU_CONTEXT_KIND.ROOT_MMU);
    expect(ctx.prevRootCount).toBe(3);
    expect(ctx.allRoots).toBe(0xf);
  });

  it("any size from 1 to 16 sizes the slots, the mask and the hit statistics", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 16 }), (n) => {
        const policy = kvmRootCacheWithSize(n);
        const ctx = new MmuContext(MMU_CONTEXT_KIND.GUEST_MMU, policy.prevRoots);
        expect(ctx.prevHpa.length).toBe(n);
        expect(ctx.stats.hitPrev.length).toBe(n);
        expect(ctx.allRoots).toBe(2 ** (n + 1) - 1);
      }),
    );
  });

  it("rejects sizes outside 1..16", () => {
    expect(() => new MmuContext(MMU_CONTEXT_KIND.ROOT_MMU, 0)).toThrow(/1 to 16/);
    expect(() => new MmuContext(MMU_CONTEXT_KIND.ROOT_MMU, 17)).toThrow(/1 to 16/);
  });
});
