import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeExtendedRole, EXT_ROLE, encodeExtendedRole } from "./extended-role";

describe("kvm_mmu_extended_role", () => {
  it("decodes the ext word of the worked L1 role 0x000000b9 (kvm-mmu.md §2.9)", () => {
    expect(decodeExtendedRole(0xb9)).toEqual({
      valid: true,
      execonly: false,
      cr4_pse: false,
      cr4_pke: true,
      cr4_smap: true,
      cr4_smep: true,
      cr4_la57: false,
      efer_lma: true,
    });
    expect(0xb9).toBe(
      EXT_ROLE.VALID | EXT_ROLE.CR4_PKE | EXT_ROLE.CR4_SMAP | EXT_ROLE.CR4_SMEP | EXT_ROLE.EFER_LMA,
    );
  });

  it("round-trips bits 7:0", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xff }), (w) => {
        expect(encodeExtendedRole(decodeExtendedRole(w))).toBe(w);
      }),
    );
  });
});
