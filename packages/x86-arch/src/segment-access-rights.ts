import { field, flag, type RegisterLayout } from "./bit-register";

/**
 * Segment access rights in the VMCS format (SDM Vol. 3C 25.4.1, Table 25-2, "Format of Access
 * Rights"): the descriptor's attribute bits moved down by 8, plus the VMX-only "unusable" bit 16.
 * Bits 11:8 and 31:17 are reserved.
 */
export const SEGMENT_AR = {
  /** Segment type, bits 3:0 (see `SEGMENT_TYPE`). */
  TYPE_MASK: 0xf,
  /** Descriptor type: 1 = code or data, 0 = system. */
  S: 1 << 4,
  /** Descriptor privilege level, bits 6:5. */
  DPL_MASK: 3 << 5,
  DPL_SHIFT: 5,
  P: 1 << 7,
  AVL: 1 << 12,
  /** 64-bit mode active (CS only). */
  L: 1 << 13,
  /** Default operation size / big (D/B). */
  DB: 1 << 14,
  /** Granularity: limit in 4-KiB units. */
  G: 1 << 15,
  /** Segment unusable (VMX only; e.g. after loading a null selector). */
  UNUSABLE: 1 << 16,
} as const;

/** Bits of the 4-bit segment type for code and data segments (SDM Vol. 3A 3.4.5.1, Table 3-1). */
export const SEGMENT_TYPE = {
  ACCESSED: 1 << 0,
  /** Data: writable. Code: readable. */
  WRITABLE_OR_READABLE: 1 << 1,
  /** Data: expand-down. Code: conforming. */
  EXPAND_DOWN_OR_CONFORMING: 1 << 2,
  /** 1 = code segment, 0 = data segment. */
  CODE: 1 << 3,
} as const;

/** Access-rights layout for decoding and display (SDM 25.4.1, Table 25-2). */
export const SEGMENT_AR_LAYOUT: RegisterLayout = {
  name: "segment access rights (VMCS)",
  width: 32,
  source: "SDM Vol. 3C 25.4.1, Table 25-2",
  fields: [
    field(
      "TYPE",
      0,
      4,
      "segment type: bit 3 code (else data); code bit 2 conforming, bit 1 readable; data bit 2 expand-down, bit 1 writable; bit 0 accessed (system types when S = 0)",
    ),
    flag("S", 4, "descriptor type: code or data segment (clear: system segment or gate)"),
    field("DPL", 5, 2, "descriptor privilege level"),
    flag("P", 7, "segment present"),
    flag("AVL", 12, "available for use by system software"),
    flag("L", 13, "64-bit mode active (CS only; reserved for other segments)"),
    flag("D/B", 14, "default operation size / big: 32-bit segment (clear: 16-bit)"),
    flag("G", 15, "granularity: the limit counts 4-KiB units"),
    flag("UNUSABLE", 16, "segment unusable (VMX): loaded with a null selector or otherwise not usable"),
  ],
};

/**
 * Bits of the access rights that come from a descriptor: the descriptor's high dword bits 15:8
 * (type, S, DPL, P) and 23:20 (AVL, L, D/B, G) moved down by 8. Bits 11:8 of the access rights
 * line up with the descriptor's limit bits 19:16 and are reserved.
 */
const DESCRIPTOR_ATTRIBUTES = 0xf0ff;

/**
 * Access rights (unusable = 0) from the high dword of a segment descriptor (SDM Vol. 3A 3.4.5,
 * Figure 3-8): `(high >> 8) & 0xf0ff`. A VMM sets `SEGMENT_AR.UNUSABLE` itself for a null selector.
 */
export function accessRightsFromDescriptor(descriptorHigh: number): number {
  return (descriptorHigh >>> 8) & DESCRIPTOR_ATTRIBUTES;
}

/**
 * The attribute bits of a descriptor's high dword (bits 15:8 and 23:20) for access rights; the
 * unusable bit and reserved bits are dropped, and the base and limit bits are left 0 for the caller
 * to fill in.
 */
export function descriptorAttributesFromAccessRights(accessRights: number): number {
  return ((accessRights & DESCRIPTOR_ATTRIBUTES) << 8) >>> 0;
}
