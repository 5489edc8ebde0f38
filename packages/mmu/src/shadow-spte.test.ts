import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ACC } from "./page-role";
import {
  leafSpteHi,
  leafSpteLo,
  nonLeafSpteHi,
  nonLeafSpteLo,
  SPTE_FORMAT,
  spteAccess,
  writeProtectedSpteHi,
  writeProtectedSpteLo,
  X86_SPTE_HI,
  X86_SPTE_LO,
} from "./shadow-spte";
import { isLastSpte, isShadowPresentSpte, SPTE_HI, SPTE_LO, spteAddress } from "./spte";

const PAGE = 0x12_3456_7000;

describe("shadow SPTE formats (kvm: make_spte / make_nonleaf_spte)", () => {
  it("builds x86 leaves: P, U for ACC_USER, W+D+MMU-writable for ACC_WRITE, NX without ACC_EXEC", () => {
    const lo = leafSpteLo(SPTE_FORMAT.X86, PAGE, 1, ACC.ALL, true, false);
    const hi = leafSpteHi(SPTE_FORMAT.X86, PAGE, ACC.ALL, true, false);
    expect(lo).toBe(
      (0x3456_7000 |
        X86_SPTE_LO.PRESENT |
        X86_SPTE_LO.WRITABLE |
        X86_SPTE_LO.USER |
        X86_SPTE_LO.ACCESSED |
        X86_SPTE_LO.DIRTY |
        X86_SPTE_LO.HOST_WRITABLE |
        X86_SPTE_LO.MMU_WRITABLE |
        X86_SPTE_LO.MMU_PRESENT) >>>
        0,
    );
    expect(hi).toBe(0x12);
    const ro = leafSpteLo(SPTE_FORMAT.X86, PAGE, 1, ACC.USER, false, false);
    expect(ro & (X86_SPTE_LO.WRITABLE | X86_SPTE_LO.DIRTY | X86_SPTE_LO.HOST_WRITABLE)).toBe(0);
    expect(leafSpteHi(SPTE_FORMAT.X86, PAGE, ACC.USER, false, false)).toBe((0x12 | X86_SPTE_HI.NX) >>> 0);
    expect(leafSpteLo(SPTE_FORMAT.X86, PAGE, 2, ACC.EXEC, true, false) & X86_SPTE_LO.PAGE_SIZE).not.toBe(0);
  });

  it("builds EPT leaves from ACC rights: R for ACC_USER (execute-only hosts), WB + ignore-PAT, A/D unless disabled", () => {
    const xOnly = leafSpteLo(SPTE_FORMAT.EPT, PAGE, 1, ACC.EXEC, true, false);
    expect(xOnly & 7).toBe(SPTE_LO.EXECUTABLE);
    expect((xOnly >>> 3) & 7).toBe(6);
    expect(xOnly & SPTE_LO.IGNORE_PAT).not.toBe(0);
    const rw = leafSpteLo(SPTE_FORMAT.EPT, PAGE, 1, ACC.USER | ACC.WRITE, true, false);
    expect(rw & 7).toBe(SPTE_LO.READABLE | SPTE_LO.WRITABLE);
    expect(rw & (SPTE_LO.ACCESSED | SPTE_LO.DIRTY)).toBe(SPTE_LO.ACCESSED | SPTE_LO.DIRTY);
    const noAd = leafSpteLo(SPTE_FORMAT.EPT, PAGE, 1, ACC.ALL, true, true);
    expect(noAd & (SPTE_LO.ACCESSED | SPTE_LO.DIRTY)).toBe(0);
    const hi = leafSpteHi(SPTE_FORMAT.EPT, PAGE, ACC.ALL, true, true);
    expect(hi).toBe((0x12 | SPTE_HI.TDP_AD_DISABLED | SPTE_HI.HOST_WRITABLE | SPTE_HI.MMU_WRITABLE) >>> 0);
  });

  it("builds non-leaf entries that grant everything and point to the child", () => {
    const x86 = nonLeafSpteLo(SPTE_FORMAT.X86, PAGE, false);
    expect(x86 & 0xfff).toBe(
      X86_SPTE_LO.PRESENT |
        X86_SPTE_LO.WRITABLE |
        X86_SPTE_LO.USER |
        X86_SPTE_LO.ACCESSED |
        X86_SPTE_LO.MMU_PRESENT,
    );
    expect(spteAddress(x86, nonLeafSpteHi(SPTE_FORMAT.X86, PAGE, false))).toBe(PAGE);
    const ept = nonLeafSpteLo(SPTE_FORMAT.EPT, PAGE, true);
    expect(ept & 7).toBe(7);
    expect(nonLeafSpteHi(SPTE_FORMAT.EPT, PAGE, true) & SPTE_HI.TDP_AD_DISABLED).not.toBe(0);
  });

  it("round-trips address, rights and level through both formats (spte.ts readers)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 34 - 1 }),
        fc.integer({ min: 0, max: 7 }),
        fc.integer({ min: 1, max: 3 }),
        fc.constantFrom(SPTE_FORMAT.EPT, SPTE_FORMAT.X86),
        fc.boolean(),
        (pfn, access, level, format, hostWritable) => {
          const hpa = pfn * 4096;
          const lo = leafSpteLo(format, hpa, level, access, hostWritable, false);
          const hi = leafSpteHi(format, hpa, access, hostWritable, false);
          expect(isShadowPresentSpte(lo)).toBe(true);
          expect(isLastSpte(lo, level)).toBe(true);
          expect(spteAddress(lo, hi)).toBe(hpa);
          expect(spteAccess(format, lo, hi)).toBe(access);
          const wpLo = writeProtectedSpteLo(format, lo);
          const wpHi = writeProtectedSpteHi(format, hi);
          expect(spteAccess(format, wpLo, wpHi)).toBe(access & ~ACC.WRITE);
          expect(spteAddress(wpLo, wpHi)).toBe(hpa);
          expect(wpHi & SPTE_HI.MMU_WRITABLE & (format === SPTE_FORMAT.EPT ? ~0 : 0)).toBe(0);
          expect(wpLo & X86_SPTE_LO.MMU_WRITABLE & (format === SPTE_FORMAT.X86 ? ~0 : 0)).toBe(0);
        },
      ),
    );
  });
});
