/**
 * VMCS component encodings: the 32-bit number VMREAD and VMWRITE take to name a field
 * (SDM Vol. 3C 25.11.2, "VMREAD, VMWRITE, and Encodings of VMCS Fields"; Vol. 3D Appendix B).
 *
 *   bit 0      access type: 0 = full, 1 = high (upper 32 bits of a 64-bit field)
 *   bits 9:1   index
 *   bits 11:10 type: control, VM-exit information (read-only data), guest state, host state
 *   bit 12     reserved (0)
 *   bits 14:13 width: 16-bit, 64-bit, 32-bit, natural-width
 *   bits 31:15 reserved (0)
 *
 * Every helper here is a pure function on numbers, usable on hot paths.
 */

/** Bits 11:10 of an encoding (SDM 25.11.2). */
export const FIELD_TYPE = {
  CONTROL: 0,
  /** VM-exit information; KVM and the SDM also call it "read-only data". */
  EXIT_INFO: 1,
  GUEST: 2,
  HOST: 3,
} as const;
export type FieldType = (typeof FIELD_TYPE)[keyof typeof FIELD_TYPE];

/** Display names of the four types, indexed by `FieldType`. */
export const FIELD_TYPE_NAMES = ["control", "exit information", "guest state", "host state"] as const;

/**
 * Bits 14:13 of an encoding (SDM 25.11.2). The numbering is the hardware's, which KVM's
 * `enum vmcs_field_width` repeats (U16 = 0, U64 = 1, U32 = 2, NATURAL_WIDTH = 3).
 */
export const FIELD_WIDTH = {
  U16: 0,
  U64: 1,
  U32: 2,
  NATURAL: 3,
} as const;
export type FieldWidth = (typeof FIELD_WIDTH)[keyof typeof FIELD_WIDTH];

/** Display names of the widths, indexed by `FieldWidth`. */
export const FIELD_WIDTH_NAMES = ["16-bit", "64-bit", "32-bit", "natural-width"] as const;

/**
 * Bytes a field of each width occupies in vmcs12, indexed by `FieldWidth`. Natural-width fields are
 * stored as u64 so that vmcs12 has one layout on 32- and 64-bit hosts (kvm: `natural_width`).
 */
export const FIELD_WIDTH_BYTES = [2, 8, 4, 8] as const;

/** Bit 0 of an encoding (SDM 25.11.2). */
export const ACCESS_TYPE = {
  FULL: 0,
  /** The upper 32 bits of a 64-bit field, accessed as a 32-bit quantity. */
  HIGH: 1,
} as const;
export type AccessType = (typeof ACCESS_TYPE)[keyof typeof ACCESS_TYPE];

/** Bit positions and masks of the encoding (SDM 25.11.2). */
export const ENCODING = {
  ACCESS_HIGH: 0x1,
  INDEX_SHIFT: 1,
  INDEX_MASK: 0x3fe,
  /** Largest index (9 bits). */
  INDEX_MAX: 0x1ff,
  TYPE_SHIFT: 10,
  TYPE_MASK: 0xc00,
  WIDTH_SHIFT: 13,
  WIDTH_MASK: 0x6000,
  /** Bit 12, bit 15 and bits 31:16 must be zero. */
  RESERVED_MASK: 0xffff9000,
} as const;

/** The parts of an encoding, as `decodeFieldEncoding` returns them. */
export interface FieldEncodingParts {
  readonly access: AccessType;
  readonly index: number;
  readonly type: FieldType;
  /** The raw width bits 14:13 (a `_HIGH` encoding keeps the 64-bit width here). */
  readonly width: FieldWidth;
}

/** A decoded encoding: its parts plus whatever reserved bits were set (0 for a well-formed one). */
export interface DecodedFieldEncoding extends FieldEncodingParts {
  readonly reserved: number;
}

/** Bit 0: 0 = full, 1 = high (SDM 25.11.2). */
export function fieldAccessType(encoding: number): AccessType {
  return (encoding & ENCODING.ACCESS_HIGH) as AccessType;
}

/** Bits 9:1 (kvm: `vmcs_field_index`). */
export function fieldIndex(encoding: number): number {
  return (encoding & ENCODING.INDEX_MASK) >>> ENCODING.INDEX_SHIFT;
}

/** Bits 11:10 (SDM 25.11.2). */
export function fieldType(encoding: number): FieldType {
  return ((encoding >>> ENCODING.TYPE_SHIFT) & 3) as FieldType;
}

/** The raw width bits 14:13, without KVM's `_HIGH` rule (SDM 25.11.2). */
export function fieldWidthBits(encoding: number): FieldWidth {
  return ((encoding >>> ENCODING.WIDTH_SHIFT) & 3) as FieldWidth;
}

/**
 * The width KVM uses to access a field: every `_HIGH` encoding (bit 0 set) is a 32-bit quantity,
 * otherwise bits 14:13 (kvm: `vmcs_field_width`; SDM 25.11.2 says the same of the high access type).
 */
export function vmcsFieldWidth(encoding: number): FieldWidth {
  if (encoding & ENCODING.ACCESS_HIGH) return FIELD_WIDTH.U32;
  return ((encoding >>> ENCODING.WIDTH_SHIFT) & 3) as FieldWidth;
}

/** True for the VM-exit-information type, which VMWRITE may not write (kvm: `vmcs_field_readonly`). */
export function isReadOnlyField(encoding: number): boolean {
  return ((encoding >>> ENCODING.TYPE_SHIFT) & 3) === FIELD_TYPE.EXIT_INFO;
}

/** Reserved bits set in an encoding (bit 12, bit 15, bits 31:16); 0 when there are none. */
export function reservedEncodingBits(encoding: number): number {
  return (encoding & ENCODING.RESERVED_MASK) >>> 0;
}

/**
 * True when the encoding has no reserved bit set and uses the high access type only on a 64-bit
 * field (SDM 25.11.2: "the high access type is used only for 64-bit fields"). Whether a processor
 * (or KVM) supports the field is a separate question.
 */
export function isWellFormedEncoding(encoding: number): boolean {
  if (!Number.isInteger(encoding) || encoding < 0 || encoding > 0xffffffff) return false;
  if (reservedEncodingBits(encoding) !== 0) return false;
  return (encoding & ENCODING.ACCESS_HIGH) === 0 || fieldWidthBits(encoding) === FIELD_WIDTH.U64;
}

/**
 * Packs the parts into an encoding (SDM 25.11.2). Throws a RangeError for a part outside its range
 * (bad input, not guest behaviour). The high access type on a non-64-bit width is packed as asked;
 * `isWellFormedEncoding` reports it.
 */
export function encodeFieldEncoding(parts: FieldEncodingParts): number {
  const { access, index, type, width } = parts;
  if (!Number.isInteger(index) || index < 0 || index > ENCODING.INDEX_MAX) {
    throw new RangeError(`VMCS field index ${index} is outside 0..${ENCODING.INDEX_MAX}`);
  }
  if (access !== 0 && access !== 1) throw new RangeError(`VMCS access type ${access} is not 0 or 1`);
  if (!Number.isInteger(type) || type < 0 || type > 3)
    throw new RangeError(`VMCS field type ${type} is not 0..3`);
  if (!Number.isInteger(width) || width < 0 || width > 3) {
    throw new RangeError(`VMCS field width ${width} is not 0..3`);
  }
  return (
    access | (index << ENCODING.INDEX_SHIFT) | (type << ENCODING.TYPE_SHIFT) | (width << ENCODING.WIDTH_SHIFT)
  );
}

/** Splits an encoding into its parts (SDM 25.11.2). Allocates: for display and tests. */
export function decodeFieldEncoding(encoding: number): DecodedFieldEncoding {
  return {
    access: fieldAccessType(encoding),
    index: fieldIndex(encoding),
    type: fieldType(encoding),
    width: fieldWidthBits(encoding),
    reserved: reservedEncodingBits(encoding),
  };
}

/** 16-bit rotate left of the low 16 bits of `value` by `n` (0..16) (kvm: `ROL16`). */
export function rol16(value: number, n: number): number {
  const v = value & 0xffff;
  return ((v << n) | (v >>> (16 - n))) & 0xffff;
}

/**
 * The slot of an encoding in KVM's sparse vmcs12 offset table: `ROL16(encoding, 6)` moves the type
 * and width bits (15:10) into bits 5:0 and the index and access type above them, so fields of one
 * type and width cluster together (kvm: `ENC_TO_VMCS12_IDX`). Examples: 0x0000 → 0, 0x0800 → 2,
 * 0x2000 → 8, 0x2001 → 72, 0x4000 → 16, 0x4400 → 17, 0x6c16 → 1435.
 */
export function vmcs12Slot(encoding: number): number {
  return rol16(encoding, 6);
}

/** The inverse of `vmcs12Slot` for encodings below 0x10000 (kvm: `VMCS12_IDX_TO_ENC`). */
export function encodingOfVmcs12Slot(slot: number): number {
  return rol16(slot, 10);
}

/** Formats an encoding as KVM and the SDM print it: `0x` and at least four hex digits. */
export function formatFieldEncoding(encoding: number): string {
  return `0x${(encoding >>> 0).toString(16).padStart(4, "0")}`;
}
