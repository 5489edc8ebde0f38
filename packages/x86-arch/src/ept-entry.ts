import { field, flag, type RegisterLayout } from "./bit-register";
import { reservedAddressMaskHigh } from "./cpu-features";
import type { EptCapabilities } from "./ept-capabilities";

/**
 * Bits of an EPT paging-structure entry (SDM Vol. 3C 29.3.2, Tables 29-1 to 29-7; 28.2.2 in older
 * editions), as masks of the entry's low word. `EPTE_HI` masks apply to the high word.
 */
export const EPTE_LO = {
  /** Bit 0: reads allowed from the region this entry controls. */
  READ: 1 << 0,
  /** Bit 1: writes allowed. */
  WRITE: 1 << 1,
  /** Bit 2: instruction fetches allowed (with mode-based execute control: from supervisor-mode linear addresses). */
  EXECUTE: 1 << 2,
  /** Bits 2:0 together. */
  XWR: 0x7,
  /** Bits 5:3 of a leaf: the EPT memory type of the page. */
  MEMORY_TYPE_SHIFT: 3,
  MEMORY_TYPE_MASK: 0x38,
  /** Bit 6 of a leaf: ignore the guest PAT memory type. */
  IGNORE_PAT: 1 << 6,
  /** Bit 7 of a PDE/PDPTE: the entry maps a 2-MiB/1-GiB page. */
  LARGE_PAGE: 1 << 7,
  /** Bit 8: accessed (with EPTP bit 6). */
  ACCESSED: 1 << 8,
  /** Bit 9 of a leaf: dirty (with EPTP bit 6). */
  DIRTY: 1 << 9,
  /** Bit 10: fetches allowed from user-mode linear addresses (with mode-based execute control). */
  USER_EXECUTE: 1 << 10,
  /** Address bits 31:12 of the next table or the page. */
  ADDRESS: 0xfffff000,
} as const;

export const EPTE_HI = {
  /** Address bits 51:32. */
  ADDRESS: 0x000fffff,
  /** Bit 57 of a leaf: verify guest paging (HLAT). */
  VERIFY_GUEST_PAGING: 1 << 25,
  /** Bit 58 of a leaf: paging-write access (HLAT). */
  PAGING_WRITE_ACCESS: 1 << 26,
  /** Bit 60 of a leaf: supervisor shadow-stack page (with EPTP bit 7). */
  SUPERVISOR_SHADOW_STACK: 1 << 28,
  /** Bit 61 of an EPT PTE: sub-page write permissions. */
  SUB_PAGE_WRITE: 1 << 29,
  /** Bit 63 of a leaf: suppress #VE (with the "EPT-violation #VE" control). */
  SUPPRESS_VE: 0x80000000,
} as const;

/** Memory types 2, 3 and 7 are reserved in a leaf (SDM 29.3.3.1), as a bitmask of type numbers. */
export const EPT_BAD_MEMORY_TYPES = (1 << 2) | (1 << 3) | (1 << 7);

/** Layout of an EPT entry for display (leaf-only fields are marked; a PTE's bit 7 is ignored). */
export const EPT_ENTRY_LAYOUT: RegisterLayout = {
  name: "EPT paging-structure entry",
  width: 64,
  source: "SDM Vol. 3C 29.3.2, Tables 29-1 to 29-7",
  fields: [
    flag("R", 0, "reads allowed (AND over all levels)"),
    flag("W", 1, "writes allowed (AND over all levels); W without R is a misconfiguration"),
    flag("X", 2, "fetches allowed (supervisor-mode linear addresses with mode-based execute)"),
    field("MT", 3, 3, "leaf: EPT memory type (0 UC, 1 WC, 4 WT, 5 WP, 6 WB; 2, 3, 7 reserved)"),
    flag("IPAT", 6, "leaf: ignore the guest PAT memory type"),
    flag("PS", 7, "PDE/PDPTE: maps a 2-MiB/1-GiB page (reserved in a PML4E/PML5E)"),
    flag("A", 8, "accessed: set by the processor when EPTP bit 6 enables A/D"),
    flag("D", 9, "leaf: dirty, set on a write when EPTP bit 6 enables A/D"),
    flag("XU", 10, "fetches allowed from user-mode linear addresses (mode-based execute control)"),
    field("ADDR", 12, 40, "physical address of the next table or of the page, bits 51:12"),
    flag("VGP", 57, "leaf: verify guest paging (HLAT)"),
    flag("PW", 58, "leaf: paging-write access (HLAT)"),
    flag("SSS", 60, "leaf: supervisor shadow-stack page (EPTP bit 7)"),
    flag("SPP", 61, "PTE: sub-page write permissions"),
    flag("SVE", 63, "leaf: suppress #VE"),
  ],
};

/**
 * Reserved-bit masks of EPT entries, index `level * 2 + (bit 7 set ? 1 : 0)` (level 1 = PTE), for
 * the low and high words (SDM 29.3.2 tables; the same terms as kvm: __reset_rsvds_bits_mask_ept):
 * - PML5E/PML4E: bits 7:3;
 * - PDPTE/PDE referencing a table: bits 6:3;
 * - 1-GiB/2-MiB leaf: bits 29:12 / 20:12, or bit 7 itself when that page size is not supported;
 * - PTE: none below bit 12 (bit 7 is ignored);
 * - every level: address bits 51:MAXPHYADDR. Bits 63:52 are ignored or defined, never reserved.
 */
export interface EptReservedMasks {
  readonly lo: Uint32Array;
  readonly hi: Uint32Array;
}

export function eptReservedMasks(maxPhysAddr: number, caps: EptCapabilities): EptReservedMasks {
  const lo = new Uint32Array(12);
  const hi = new Uint32Array(12);
  const high = reservedAddressMaskHigh(maxPhysAddr);
  for (let level = 1; level <= 5; level++) {
    hi[level * 2] = high;
    hi[level * 2 + 1] = high;
  }
  for (const level of [5, 4]) {
    lo[level * 2] = 0xf8;
    lo[level * 2 + 1] = 0xf8;
  }
  lo[3 * 2] = 0x78;
  lo[3 * 2 + 1] = caps.pages1G ? 0x3ffff000 : EPTE_LO.LARGE_PAGE;
  lo[2 * 2] = 0x78;
  lo[2 * 2 + 1] = caps.pages2M ? 0x001ff000 : EPTE_LO.LARGE_PAGE;
  return { lo, hi };
}

/** Why an entry causes an EPT misconfiguration (SDM 29.3.3.1). */
export const EPT_MISCONFIG = {
  NONE: 0,
  /** Bits 2:0 are 010b or 110b: writable but not readable. */
  WRITE_WITHOUT_READ: 1,
  /** Bits 2:0 are 100b and the processor does not support execute-only translations. */
  EXECUTE_ONLY: 2,
  /** A present entry has a reserved bit set. */
  RESERVED_BIT: 3,
  /** The leaf's memory type is 2, 3 or 7. */
  MEMORY_TYPE: 4,
} as const;
export type EptMisconfig = (typeof EPT_MISCONFIG)[keyof typeof EPT_MISCONFIG];

export const EPT_MISCONFIG_NAMES: Readonly<Record<EptMisconfig, string>> = {
  [EPT_MISCONFIG.NONE]: "none",
  [EPT_MISCONFIG.WRITE_WITHOUT_READ]: "write permission without read permission",
  [EPT_MISCONFIG.EXECUTE_ONLY]: "execute-only entry without execute-only support",
  [EPT_MISCONFIG.RESERVED_BIT]: "reserved bit set",
  [EPT_MISCONFIG.MEMORY_TYPE]: "reserved memory type in a leaf",
};

/** What the entry checks depend on: a subset of `EptContext`. */
export interface EptEntryRules {
  /** IA32_VMX_EPT_VPID_CAP bit 0. */
  readonly executeOnly: boolean;
  /** The "mode-based execute control for EPT" VM-execution control. */
  readonly modeBasedExecute: boolean;
  readonly reservedLo: Uint32Array;
  readonly reservedHi: Uint32Array;
}

/**
 * An entry is present if any of bits 2:0 is set, or, with mode-based execute control, bit 10
 * (SDM 29.3.2). A non-present entry's other bits are ignored.
 */
export function eptEntryPresent(lo: number, modeBasedExecute: boolean): boolean {
  const mask = modeBasedExecute ? EPTE_LO.XWR | EPTE_LO.USER_EXECUTE : EPTE_LO.XWR;
  return (lo & mask) !== 0;
}

/** A present entry ends the walk at level 1, or at level 2/3 with bit 7 set (SDM 29.3.2). */
export function eptEntryIsLeaf(lo: number, level: number): boolean {
  return level === 1 || ((level === 2 || level === 3) && (lo & EPTE_LO.LARGE_PAGE) !== 0);
}

/**
 * The misconfiguration a present entry at `level` causes, or NONE (SDM 29.3.3.1; kvm: the
 * rsvd_bits_mask and bad_mt_xwr tests of FNAME(is_rsvd_bits_set) for EPT).
 */
export function eptEntryMisconfiguration(
  rules: EptEntryRules,
  lo: number,
  hi: number,
  level: number,
): EptMisconfig {
  const xwr = lo & EPTE_LO.XWR;
  if ((xwr & (EPTE_LO.READ | EPTE_LO.WRITE)) === EPTE_LO.WRITE) return EPT_MISCONFIG.WRITE_WITHOUT_READ;
  if (xwr === EPTE_LO.EXECUTE && !rules.executeOnly) return EPT_MISCONFIG.EXECUTE_ONLY;
  const index = level * 2 + ((lo >>> 7) & 1);
  if ((lo & rules.reservedLo[index]!) !== 0 || (hi & rules.reservedHi[index]!) !== 0) {
    return EPT_MISCONFIG.RESERVED_BIT;
  }
  if (eptEntryIsLeaf(lo, level) && ((EPT_BAD_MEMORY_TYPES >>> ((lo >>> 3) & 7)) & 1) !== 0) {
    return EPT_MISCONFIG.MEMORY_TYPE;
  }
  return EPT_MISCONFIG.NONE;
}

/** Physical address (bits 51:12) an entry holds; leaf offsets are the caller's. */
export function eptEntryAddress(lo: number, hi: number): number {
  return (hi & EPTE_HI.ADDRESS) * 4294967296 + ((lo & EPTE_LO.ADDRESS) >>> 0);
}
