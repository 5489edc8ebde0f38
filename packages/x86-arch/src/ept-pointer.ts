import { field, flag, type RegisterLayout } from "./bit-register";
import type { EptCapabilities } from "./ept-capabilities";

/** Memory types an EPTP or an EPT leaf may name (SDM Vol. 3A 12.3, Table 12-2; 2, 3 and 7 are reserved). */
export const EPT_MEMORY_TYPE = {
  UC: 0,
  WC: 1,
  WT: 4,
  WP: 5,
  WB: 6,
} as const;
export type EptMemoryType = (typeof EPT_MEMORY_TYPE)[keyof typeof EPT_MEMORY_TYPE];

/**
 * Extended-page-table pointer fields (SDM Vol. 3C 25.6.11, "Extended-Page-Table Pointer (EPTP)";
 * 24.6.11 in older editions). Masks of the low word unless named `_HI`.
 */
export const EPTP = {
  /** Bits 2:0: memory type used to access the EPT paging structures (UC or WB). */
  MEMORY_TYPE_MASK: 0x7,
  /** Bits 5:3: the EPT page-walk length minus one. */
  WALK_LENGTH_SHIFT: 3,
  WALK_LENGTH_MASK: 0x7,
  /** Bit 6: accessed and dirty flags for EPT are enabled. */
  ACCESSED_DIRTY: 1 << 6,
  /** Bit 7: supervisor shadow-stack access rights are enforced. */
  SUPERVISOR_SHADOW_STACK: 1 << 7,
  /** Bits 11:8: reserved. */
  RESERVED: 0xf00,
  /** Bits 31:12 of the address of the top EPT table (PML4 or PML5). */
  ADDRESS: 0xfffff000,
  /** Bits 51:32 of that address, in the high word. */
  ADDRESS_HI: 0x000fffff,
} as const;

/** An EPTP as named fields (the form for display, parsing and test fixtures). */
export interface EptPointer {
  /** EPT paging-structure memory type, bits 2:0 (0..7). */
  readonly memoryType: number;
  /** Page-walk length, bits 5:3 plus one (1..8; only 4 and 5 are architecturally usable). */
  readonly walkLength: number;
  /** Bit 6. */
  readonly accessedDirty: boolean;
  /** Bit 7. */
  readonly supervisorShadowStack: boolean;
  /** Physical address of the top EPT table: bits 51:12, 4-KiB aligned. */
  readonly root: number;
}

const TWO_32 = 4294967296;

/** Packs EPTP fields into a value's halves; throws RangeError naming a field that does not fit. */
export function encodeEptPointer(eptp: EptPointer): { lo: number; hi: number } {
  const { memoryType, walkLength, root } = eptp;
  if (!Number.isInteger(memoryType) || memoryType < 0 || memoryType > 7) {
    throw new RangeError(`EPTP memory type ${memoryType} does not fit in bits 2:0`);
  }
  if (!Number.isInteger(walkLength) || walkLength < 1 || walkLength > 8) {
    throw new RangeError(
      `EPTP page-walk length ${walkLength} must be in [1, 8] (bits 5:3 hold it minus one)`,
    );
  }
  if (!Number.isInteger(root) || root < 0 || root >= 2 ** 52 || root % 4096 !== 0) {
    throw new RangeError(`EPTP root 0x${root.toString(16)} must be a 4-KiB-aligned address below 2^52`);
  }
  let lo = memoryType | ((walkLength - 1) << EPTP.WALK_LENGTH_SHIFT) | (root >>> 0);
  if (eptp.accessedDirty) lo |= EPTP.ACCESSED_DIRTY;
  if (eptp.supervisorShadowStack) lo |= EPTP.SUPERVISOR_SHADOW_STACK;
  return { lo: lo >>> 0, hi: Math.floor(root / TWO_32) };
}

/** Splits an EPTP into fields. Reserved bits (11:8, 63:52) are dropped; see `checkEptPointer`. */
export function decodeEptPointer(lo: number, hi: number): EptPointer {
  return {
    memoryType: lo & EPTP.MEMORY_TYPE_MASK,
    walkLength: ((lo >>> EPTP.WALK_LENGTH_SHIFT) & EPTP.WALK_LENGTH_MASK) + 1,
    accessedDirty: (lo & EPTP.ACCESSED_DIRTY) !== 0,
    supervisorShadowStack: (lo & EPTP.SUPERVISOR_SHADOW_STACK) !== 0,
    root: (hi & EPTP.ADDRESS_HI) * TWO_32 + ((lo & EPTP.ADDRESS) >>> 0),
  };
}

/**
 * The check VM entry makes of the EPTP when "enable EPT" is set (SDM Vol. 3C 27.2.1.1, "VM-Execution
 * Control Fields"; 26.2.1.1 in older editions; kvm: nested_vmx_check_eptp). Returns why the value
 * is invalid, or null when VM entry would accept it.
 */
export function checkEptPointer(
  lo: number,
  hi: number,
  caps: EptCapabilities,
  maxPhysAddr: number,
): string | null {
  const memoryType = lo & EPTP.MEMORY_TYPE_MASK;
  const typeOk =
    (memoryType === EPT_MEMORY_TYPE.UC && caps.memoryTypeUc) ||
    (memoryType === EPT_MEMORY_TYPE.WB && caps.memoryTypeWb);
  if (!typeOk) return `EPTP memory type ${memoryType} is not supported (IA32_VMX_EPT_VPID_CAP bits 8/14)`;

  const walkLength = ((lo >>> EPTP.WALK_LENGTH_SHIFT) & EPTP.WALK_LENGTH_MASK) + 1;
  const walkOk = (walkLength === 4 && caps.walkLength4) || (walkLength === 5 && caps.walkLength5);
  if (!walkOk) return `EPTP page-walk length ${walkLength} is not supported (IA32_VMX_EPT_VPID_CAP bits 6/7)`;

  if ((lo & EPTP.ACCESSED_DIRTY) !== 0 && !caps.accessedDirty) {
    return "EPTP bit 6 (accessed/dirty flags) is set but IA32_VMX_EPT_VPID_CAP bit 21 is clear";
  }
  // Bit 7 is reserved unless supervisor shadow-stack control is supported.
  if ((lo & EPTP.SUPERVISOR_SHADOW_STACK) !== 0 && !caps.supervisorShadowStack) {
    return "EPTP bit 7 (supervisor shadow stack) is set but IA32_VMX_EPT_VPID_CAP bit 23 is clear";
  }
  if ((lo & EPTP.RESERVED) !== 0) return "EPTP reserved bits 11:8 are not zero";
  const legalHi = 2 ** Math.max(0, maxPhysAddr - 32) - 1;
  if ((hi & ~legalHi) !== 0) return `EPTP bits 63:${maxPhysAddr} are not zero (beyond MAXPHYADDR)`;
  return null;
}

/** EPTP layout for decoding and display. */
export const EPTP_LAYOUT: RegisterLayout = {
  name: "EPTP",
  width: 64,
  source: "SDM Vol. 3C 25.6.11",
  fields: [
    field("MT", 0, 3, "memory type of EPT paging-structure accesses (0 = UC, 6 = WB)"),
    field("PWL-1", 3, 3, "EPT page-walk length minus one (3 = 4-level, 4 = 5-level)"),
    flag("AD", 6, "accessed and dirty flags for EPT enabled"),
    flag("SSS", 7, "supervisor shadow-stack access rights enforced"),
    field("ADDR", 12, 40, "physical address of the EPT PML4 (or PML5) table, bits 51:12"),
  ],
};
