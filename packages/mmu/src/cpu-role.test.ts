import { CR0, CR4, EFER } from "@nestvisor/x86-arch";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  cpuRoleBase,
  cpuRoleExt,
  cpuRoleToBigInt,
  decodeCpuRole,
  formatCpuRole,
  MMU_CR0_ROLE_BITS,
  MMU_CR4_ROLE_BITS,
  MMU_CR4_ROLE_BITS_PRE_5_16,
  MMU_CR4_ROLE_BITS_PRE_5_18,
  MMU_EFER_ROLE_BITS,
  parseCpuRole,
} from "./cpu-role";

const PG = CR0.PG;
const WP = CR0.WP;
const PE = CR0.PE;
const LONG_EFER = EFER.LME | EFER.LMA;

/** kvm_calc_cpu_role as the 64-bit value of kvm-mmu.md §2.9. */
function role(cr0: number, cr4: number, efer: number, guestMode = false, smm = false): string {
  return formatCpuRole(cpuRoleBase(cr0, cr4, efer, smm, guestMode), cpuRoleExt(cr0, cr4, efer));
}

describe("kvm_calc_cpu_role (kvm-mmu.md §2.1, worked values of §2.9)", () => {
  const l1Cr4 = CR4.PAE | CR4.SMEP | CR4.SMAP | CR4.PKE;
  const l1Efer = LONG_EFER | EFER.NXE;

  it("L1 64-bit 4-level, WP=1, NX=1, SMEP=1, SMAP=1, PKE=1 → 0x000000b9_00003704", () => {
    expect(role(PG | WP | PE, l1Cr4, l1Efer)).toBe("0x000000b9_00003704");
  });

  it("same with CR0.WP=0 → 0x000000b9_0000d704 (smep/smap_andnot_wp set)", () => {
    expect(role(PG | PE, l1Cr4, l1Efer)).toBe("0x000000b9_0000d704");
  });

  it("same CRs in L2 (guest_mode=1) → 0x000000b9_00023704", () => {
    expect(role(PG | WP | PE, l1Cr4, l1Efer, true)).toBe("0x000000b9_00023704");
  });

  it("CR0.PG=0 → 0x00000001_00000780 (direct, level 0, nothing else)", () => {
    expect(role(PE | WP, l1Cr4, l1Efer)).toBe("0x00000001_00000780");
  });

  it("32-bit 2-level, PSE, WP=1, NX=0 → 0x00000005_00002712", () => {
    expect(role(PG | WP | PE, CR4.PSE, 0)).toBe("0x00000005_00002712");
  });

  it("PAE 3-level, NX=1, WP=1 → 0x00000001_00003703", () => {
    expect(role(PG | WP | PE, CR4.PAE, EFER.NXE)).toBe("0x00000001_00003703");
  });

  it("5-level paging sets level 5 and ext.cr4_la57 only in long mode", () => {
    const r = decodeCpuRole(
      cpuRoleBase(PG | WP, CR4.PAE | CR4.LA57, LONG_EFER, false, false),
      cpuRoleExt(PG | WP, CR4.PAE | CR4.LA57, LONG_EFER),
    );
    expect(r.base.level).toBe(5);
    expect(r.ext.cr4_la57).toBe(true);
    // CR4.LA57 and CR4.PKE outside long mode do not count (kvm: "active iff long mode is active").
    expect(decodeCpuRole(0, cpuRoleExt(PG, CR4.PAE | CR4.LA57 | CR4.PKE, 0)).ext).toMatchObject({
      cr4_la57: false,
      cr4_pke: false,
      efer_lma: false,
    });
  });

  it("SMM is the whole smm byte's low bit", () => {
    expect(decodeCpuRole(cpuRoleBase(PG, CR4.PAE, LONG_EFER, true, false), 1).base.smm).toBe(1);
  });

  it("never sets quadrant, invalid, ad_disabled or passthrough, and always sets ext.valid", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 0, max: 0xffff }),
        fc.boolean(),
        fc.boolean(),
        (cr0, cr4, efer, smm, guest) => {
          const r = decodeCpuRole(cpuRoleBase(cr0, cr4, efer, smm, guest), cpuRoleExt(cr0, cr4, efer));
          expect(r.base).toMatchObject({
            quadrant: 0,
            invalid: false,
            ad_disabled: false,
            passthrough: false,
          });
          expect(r.base.access).toBe(7);
          expect(r.ext.valid).toBe(true);
          expect(r.base.guest_mode).toBe(guest);
          expect(r.base.direct).toBe((cr0 & PG) === 0);
        },
      ),
    );
  });

  it("depends on CR0/CR4/EFER only through the role bits (and EFER.LMA/NX)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 0, max: 0xffff }),
        fc.integer({ min: 0, max: 0xffffffff }),
        (cr0, cr4, efer, noise) => {
          const cr0b = (cr0 & MMU_CR0_ROLE_BITS) | (noise & ~MMU_CR0_ROLE_BITS);
          const cr4b = (cr4 & MMU_CR4_ROLE_BITS) | (noise & ~MMU_CR4_ROLE_BITS);
          const eferMask = EFER.LMA | EFER.NXE;
          const eferb = (efer & eferMask) | (noise & 0xffff & ~eferMask);
          expect(cpuRoleBase(cr0b, cr4b, eferb, false, false)).toBe(
            cpuRoleBase(cr0, cr4, efer, false, false),
          );
          expect(cpuRoleExt(cr0b, cr4b, eferb)).toBe(cpuRoleExt(cr0, cr4, efer));
        },
      ),
    );
  });
});

describe("role-bit masks (kvm: arch/x86/kvm/mmu.h)", () => {
  it("match KVM_MMU_CR0/CR4/EFER_ROLE_BITS", () => {
    expect(MMU_CR0_ROLE_BITS).toBe(0x80010000);
    expect(MMU_CR4_ROLE_BITS).toBe(CR4.PSE | CR4.PAE | CR4.LA57 | CR4.SMEP | CR4.SMAP | CR4.PKE);
    // Up to v5.15 the mask also held PGE (a91a7c709600 removed it in v5.16).
    expect(MMU_CR4_ROLE_BITS_PRE_5_16).toBe((MMU_CR4_ROLE_BITS | CR4.PGE) >>> 0);
    expect(MMU_CR4_ROLE_BITS_PRE_5_18).toBe(MMU_CR4_ROLE_BITS_PRE_5_16);
    expect(MMU_EFER_ROLE_BITS).toBe(EFER.LME | EFER.NXE);
  });
});

describe("decodeCpuRole / formatCpuRole / parseCpuRole", () => {
  it("decodes a BigInt and two halves alike", () => {
    const a = decodeCpuRole(0x000000b9_00003704n);
    const b = decodeCpuRole(0x3704, 0xb9);
    expect(a).toEqual(b);
    expect(a.ext).toMatchObject({
      valid: true,
      cr4_pke: true,
      cr4_smap: true,
      cr4_smep: true,
      efer_lma: true,
    });
    expect(a.base).toMatchObject({ level: 4, efer_nx: true, cr0_wp: true, access: 7 });
  });

  it("rejects values that are not 64 or 32 bits wide", () => {
    expect(() => decodeCpuRole(1n << 64n)).toThrow(RangeError);
    expect(() => decodeCpuRole(-1n)).toThrow(RangeError);
    expect(() => decodeCpuRole(0x1_0000_0000, 0)).toThrow(/base/);
    expect(() => decodeCpuRole(0, -1)).toThrow(/ext/);
  });

  it("parses what it formats, with or without 0x and separators", () => {
    expect(parseCpuRole("0x000000b9_00003704")).toEqual({ base: 0x3704, ext: 0xb9 });
    expect(parseCpuRole("b900003704")).toEqual({ base: 0x3704, ext: 0xb9 });
    expect(() => parseCpuRole("0x1_0000_0000_0000_0000")).toThrow(/0x1_0000/);
    expect(() => parseCpuRole("role")).toThrow(/"role"/);
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 0, max: 0xffffffff }),
        (base, e) => {
          expect(parseCpuRole(formatCpuRole(base, e))).toEqual({ base, ext: e });
          expect(cpuRoleToBigInt(base, e)).toBe((BigInt(e) << 32n) | BigInt(base));
          expect(decodeCpuRole(cpuRoleToBigInt(base, e))).toEqual(decodeCpuRole(base, e));
        },
      ),
    );
  });
});
