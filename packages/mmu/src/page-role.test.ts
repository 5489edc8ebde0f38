import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ACC, childRole, decodePageRole, encodePageRole, PAGE_ROLE, roleLevel } from "./page-role";

describe("kvm_mmu_page_role", () => {
  it("decodes the worked TDP root role of kvm-mmu.md §2.9 (4-level, A/D on, L1)", () => {
    expect(decodePageRole(0x00003784)).toMatchObject({
      level: 4,
      direct: true,
      access: ACC.ALL,
      efer_nx: true,
      cr0_wp: true,
      guest_mode: false,
      ad_disabled: false,
    });
  });

  it("decodes the worked shadow-EPT role 0x00030704 (A/D off)", () => {
    expect(decodePageRole(0x00030704)).toMatchObject({
      level: 4,
      direct: false,
      ad_disabled: true,
      guest_mode: true,
    });
  });

  it("round-trips every defined bit (bits 19–23 are unused)", () => {
    const defined = ~(0x1f << 19) >>> 0;
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), (raw) => {
        const word = (raw & defined) >>> 0;
        expect(encodePageRole(decodePageRole(word))).toBe(word);
      }),
    );
  });

  it("rejects out-of-range fields", () => {
    expect(() => encodePageRole({ ...decodePageRole(0x3784), level: 16 })).toThrow(/level/);
  });

  it("derives child roles one level down with the given access", () => {
    const child = childRole(0x00003704, ACC.WRITE | ACC.USER, false, 3);
    expect(roleLevel(child)).toBe(3);
    expect(decodePageRole(child)).toMatchObject({ access: 6, direct: false, cr0_wp: true });
    // A 2-level (4-byte gpte) guest: the PT-level child carries the parent index's low bit.
    const pae32 = 0x00002712 | PAGE_ROLE.HAS_4_BYTE_GPTE;
    expect(decodePageRole(childRole(pae32, ACC.ALL, false, 5)).quadrant).toBe(1);
  });
});
