import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeRegister, encodeRegister } from "./bit-register";
import { eptCapabilities, MODERN_EPT_CAPABILITIES } from "./ept-capabilities";
import {
  EPT_ENTRY_LAYOUT,
  EPT_MISCONFIG,
  EPT_MISCONFIG_NAMES,
  EPTE_HI,
  EPTE_LO,
  type EptEntryRules,
  eptEntryAddress,
  eptEntryIsLeaf,
  eptEntryMisconfiguration,
  eptEntryPresent,
  eptReservedMasks,
} from "./ept-entry";
import { fromBigInt64, toBigInt64 } from "./u64";

function rules(overrides: Partial<EptEntryRules> = {}, maxPhysAddr = 46, caps = MODERN_EPT_CAPABILITIES) {
  const { lo, hi } = eptReservedMasks(maxPhysAddr, caps);
  return { executeOnly: true, modeBasedExecute: false, reservedLo: lo, reservedHi: hi, ...overrides };
}

const WB = 6 << 3;

describe("EPT entry layout", () => {
  it("places the constants where the layout says", () => {
    const at = (name: string) => EPT_ENTRY_LAYOUT.fields.find((f) => f.name === name)!.lsb;
    expect(1 << at("R")).toBe(EPTE_LO.READ);
    expect(1 << at("W")).toBe(EPTE_LO.WRITE);
    expect(1 << at("X")).toBe(EPTE_LO.EXECUTE);
    expect(at("MT")).toBe(EPTE_LO.MEMORY_TYPE_SHIFT);
    expect(1 << at("IPAT")).toBe(EPTE_LO.IGNORE_PAT);
    expect(1 << at("PS")).toBe(EPTE_LO.LARGE_PAGE);
    expect(1 << at("A")).toBe(EPTE_LO.ACCESSED);
    expect(1 << at("D")).toBe(EPTE_LO.DIRTY);
    expect(1 << at("XU")).toBe(EPTE_LO.USER_EXECUTE);
    expect((1 << (at("SSS") - 32)) >>> 0).toBe(EPTE_HI.SUPERVISOR_SHADOW_STACK);
    expect((1 << (at("SVE") - 32)) >>> 0).toBe(EPTE_HI.SUPPRESS_VE);
    expect((1 << (at("SPP") - 32)) >>> 0).toBe(EPTE_HI.SUB_PAGE_WRITE);
  });

  it("encodes and decodes entries through the layout (property)", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (raw) => {
        const decoded = decodeRegister(EPT_ENTRY_LAYOUT, raw);
        const defined = raw & ~decoded.undefinedBits;
        expect(encodeRegister(EPT_ENTRY_LAYOUT, decoded.fields)).toBe(defined);
        const { lo, hi } = fromBigInt64(raw);
        expect(decoded.fields.R).toBe((lo & EPTE_LO.READ) !== 0);
        expect(decoded.fields.XU).toBe((lo & EPTE_LO.USER_EXECUTE) !== 0);
        expect(BigInt(eptEntryAddress(lo, hi))).toBe(raw & 0x000f_ffff_ffff_f000n);
        expect(toBigInt64(lo, hi)).toBe(raw);
      }),
    );
  });
});

describe("EPT reserved bits (SDM 29.3.2 tables; kvm __reset_rsvds_bits_mask_ept)", () => {
  const { lo, hi } = eptReservedMasks(46, MODERN_EPT_CAPABILITIES);
  it("reserves 7:3 in PML5E/PML4E, 6:3 in non-leaf PDPTE/PDE, 29:12 / 20:12 in 1-GiB / 2-MiB leaves", () => {
    for (const level of [5, 4]) {
      expect(lo[level * 2]).toBe(0xf8);
      expect(lo[level * 2 + 1]).toBe(0xf8);
    }
    expect(lo[3 * 2]).toBe(0x78);
    expect(lo[2 * 2]).toBe(0x78);
    expect(lo[3 * 2 + 1]).toBe(0x3ffff000);
    expect(lo[2 * 2 + 1]).toBe(0x1ff000);
    expect(lo[1 * 2]).toBe(0);
    expect(lo[1 * 2 + 1]).toBe(0); // a PTE's bit 7 is ignored
  });

  it("reserves address bits MAXPHYADDR..51 at every level, never 63:52", () => {
    for (let level = 1; level <= 5; level++) {
      for (const bit7 of [0, 1]) expect(hi[level * 2 + bit7]).toBe(0x000fc000); // bits 51:46
    }
    expect(eptReservedMasks(52, MODERN_EPT_CAPABILITIES).hi[2]).toBe(0);
    expect(eptReservedMasks(36, MODERN_EPT_CAPABILITIES).hi[2]).toBe(0x000ffff0);
  });

  it("makes bit 7 itself reserved when the page size is not supported", () => {
    const small = eptReservedMasks(46, eptCapabilities({ pages1G: false, pages2M: false }));
    expect(small.lo[3 * 2 + 1]).toBe(EPTE_LO.LARGE_PAGE);
    expect(small.lo[2 * 2 + 1]).toBe(EPTE_LO.LARGE_PAGE);
  });
});

describe("EPT entry presence and misconfiguration (SDM 29.3.3.1)", () => {
  it("is present when any of bits 2:0 is set, or bit 10 with mode-based execute control", () => {
    expect(eptEntryPresent(0, false)).toBe(false);
    expect(eptEntryPresent(0xfffff3f8, false)).toBe(false);
    for (const xwr of [1, 2, 3, 4, 5, 6, 7]) expect(eptEntryPresent(xwr, false)).toBe(true);
    expect(eptEntryPresent(EPTE_LO.USER_EXECUTE, false)).toBe(false);
    expect(eptEntryPresent(EPTE_LO.USER_EXECUTE, true)).toBe(true);
  });

  it("ends the walk at level 1 or at a PDE/PDPTE with bit 7", () => {
    expect(eptEntryIsLeaf(0x7, 1)).toBe(true);
    expect(eptEntryIsLeaf(0x87, 2)).toBe(true);
    expect(eptEntryIsLeaf(0x87, 3)).toBe(true);
    expect(eptEntryIsLeaf(0x7, 2)).toBe(false);
    expect(eptEntryIsLeaf(0x87, 4)).toBe(false);
  });

  it("classifies write-only and write/execute as misconfigured", () => {
    for (const level of [1, 2, 3, 4]) {
      expect(eptEntryMisconfiguration(rules(), 0x2 | WB, 0, level)).toBe(EPT_MISCONFIG.WRITE_WITHOUT_READ);
      expect(eptEntryMisconfiguration(rules(), 0x6 | WB, 0, level)).toBe(EPT_MISCONFIG.WRITE_WITHOUT_READ);
    }
  });

  it("classifies execute-only as misconfigured only without the capability", () => {
    expect(eptEntryMisconfiguration(rules(), 0x4 | WB, 0, 1)).toBe(EPT_MISCONFIG.NONE);
    expect(eptEntryMisconfiguration(rules({ executeOnly: false }), 0x4 | WB, 0, 1)).toBe(
      EPT_MISCONFIG.EXECUTE_ONLY,
    );
    expect(eptEntryMisconfiguration(rules({ executeOnly: false }), 0x5 | WB, 0, 1)).toBe(EPT_MISCONFIG.NONE);
  });

  it("rejects memory types 2, 3 and 7 in leaves only", () => {
    for (let type = 0; type < 8; type++) {
      const bad = type === 2 || type === 3 || type === 7;
      const leafLo = 0x7 | (type << 3);
      expect(eptEntryMisconfiguration(rules(), leafLo, 0, 1)).toBe(
        bad ? EPT_MISCONFIG.MEMORY_TYPE : EPT_MISCONFIG.NONE,
      );
      expect(eptEntryMisconfiguration(rules(), leafLo | 0x80, 0, 2)).toBe(
        bad ? EPT_MISCONFIG.MEMORY_TYPE : EPT_MISCONFIG.NONE,
      );
    }
    // In a non-leaf entry bits 5:3 are reserved, whatever their value.
    expect(eptEntryMisconfiguration(rules(), 0x7 | WB, 0, 2)).toBe(EPT_MISCONFIG.RESERVED_BIT);
  });

  it("names every reason", () => {
    for (const kind of Object.values(EPT_MISCONFIG)) expect(EPT_MISCONFIG_NAMES[kind]).toBeTruthy();
  });
});
