import {
  EPT_MISCONFIG,
  eptEntryAddress,
  eptEntryIsLeaf,
  eptEntryMisconfiguration,
  eptReservedMasks,
  MODERN_EPT_CAPABILITIES,
} from "@nestvisor/x86-arch";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  eptLeafSpteHi,
  eptLeafSpteLo,
  eptNonLeafSpteHi,
  eptNonLeafSpteLo,
  isLastSpte,
  isShadowPresentSpte,
  SPTE_HI,
  SPTE_LO,
  spteAddress,
} from "./spte";

const { lo: reservedLo, hi: reservedHi } = eptReservedMasks(46, MODERN_EPT_CAPABILITIES);
const rules = { executeOnly: true, modeBasedExecute: false, reservedLo, reservedHi };

describe("EPT SPTEs (kvm: make_spte / make_nonleaf_spte with kvm_mmu_set_ept_masks)", () => {
  it("builds a writable 4-KiB leaf: RWX, WB + IPAT, A and D, KVM's present and writable bits", () => {
    const lo = eptLeafSpteLo(0x1234_5000, 1, true, false);
    const hi = eptLeafSpteHi(0x1234_5000, true, true, false);
    expect(lo).toBe(0x1234_5000 | 0x800 | 0x300 | 0x40 | 0x30 | 0x7);
    expect(hi).toBe(SPTE_HI.HOST_WRITABLE | SPTE_HI.MMU_WRITABLE);
    expect(isShadowPresentSpte(lo)).toBe(true);
    expect(isLastSpte(lo, 1)).toBe(true);
  });

  it("drops W, D and the writable bits for a read-only slot, and A/D for an A/D-disabled page", () => {
    const lo = eptLeafSpteLo(0x5000, 1, false, true);
    const hi = eptLeafSpteHi(0x5000, false, false, true);
    expect(lo & SPTE_LO.WRITABLE).toBe(0);
    expect(lo & (SPTE_LO.ACCESSED | SPTE_LO.DIRTY)).toBe(0);
    expect(lo & 7).toBe(SPTE_LO.READABLE | SPTE_LO.EXECUTABLE);
    expect(hi).toBe(SPTE_HI.TDP_AD_DISABLED);
  });

  it("marks a 2-MiB leaf with bit 7 and a non-leaf entry with RWX and no memory type", () => {
    expect(eptLeafSpteLo(0x20_0000, 2, true, false) & SPTE_LO.PAGE_SIZE).toBe(SPTE_LO.PAGE_SIZE);
    const lo = eptNonLeafSpteLo(0x7000, false);
    expect(lo).toBe(0x7000 | 0x800 | 0x100 | 0x7);
    expect(isLastSpte(lo, 2)).toBe(false);
    expect(eptNonLeafSpteHi(0x7000, true)).toBe(SPTE_HI.TDP_AD_DISABLED);
  });

  it("produces entries the EPT checks accept, holding the address they were given", () => {
    const page = fc.integer({ min: 0, max: 2 ** 34 - 1 }).map((n) => n * 4096);
    fc.assert(
      fc.property(page, fc.boolean(), fc.boolean(), (hpa, writable, adDisabled) => {
        const lo = eptLeafSpteLo(hpa, 1, writable, adDisabled);
        const hi = eptLeafSpteHi(hpa, writable, writable, adDisabled);
        expect(eptEntryMisconfiguration(rules, lo, hi, 1)).toBe(EPT_MISCONFIG.NONE);
        expect(eptEntryAddress(lo, hi)).toBe(hpa);
        expect(spteAddress(lo, hi)).toBe(hpa);
        const nlo = eptNonLeafSpteLo(hpa, adDisabled);
        const nhi = eptNonLeafSpteHi(hpa, adDisabled);
        for (const level of [2, 3, 4]) {
          expect(eptEntryMisconfiguration(rules, nlo, nhi, level)).toBe(EPT_MISCONFIG.NONE);
          expect(eptEntryIsLeaf(nlo, level)).toBe(false);
        }
        expect(spteAddress(nlo, nhi)).toBe(hpa);
      }),
    );
  });
});
