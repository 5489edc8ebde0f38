import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { describeMmuRequests, MMU_REQUEST, MMU_REQUEST_TLB_FLUSH } from "./mmu-request";

describe("MMU_REQUEST (kvm: KVM_REQ_* bits)", () => {
  it("has one distinct bit per request; the flush mask is the two TLB flushes", () => {
    const bits = Object.values(MMU_REQUEST);
    for (const bit of bits) expect(bit & (bit - 1)).toBe(0);
    expect(new Set(bits).size).toBe(bits.length);
    expect(MMU_REQUEST_TLB_FLUSH).toBe(MMU_REQUEST.TLB_FLUSH_CURRENT | MMU_REQUEST.TLB_FLUSH_GUEST);
    expect(MMU_REQUEST_TLB_FLUSH & MMU_REQUEST.MMU_SYNC).toBe(0);
  });

  it("describeMmuRequests names exactly the bits set, lowest first", () => {
    fc.assert(
      fc.property(fc.subarray(Object.keys(MMU_REQUEST) as (keyof typeof MMU_REQUEST)[]), (names) => {
        const mask = names.reduce((m, n) => m | MMU_REQUEST[n], 0);
        expect(describeMmuRequests(mask)).toEqual(names);
      }),
    );
  });
});
