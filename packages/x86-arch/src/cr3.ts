import { field, flag, type RegisterLayout } from "./bit-register";

/**
 * CR3 bits in the low word (SDM Vol. 3A 4.5, Table 4-12 with CR4.PCIDE = 0, Table 4-13 with
 * CR4.PCIDE = 1; 32-bit paging Table 4-3, PAE paging 4.4.1). Numeric constants for hot paths.
 */
export const CR3 = {
  /** Page-level write-through for the root table (CR4.PCIDE = 0 only). */
  PWT: 1 << 3,
  /** Page-level cache disable for the root table (CR4.PCIDE = 0 only). */
  PCD: 1 << 4,
  /** Process-context identifier, bits 11:0 (CR4.PCIDE = 1 only; SDM 4.10.1). */
  PCID_MASK: 0xfff,
  /** Root-table address bits 31:12 (32-bit, 4-level and 5-level paging). */
  ADDRESS_LO: 0xfffff000,
  /** PAE paging: the page-directory-pointer table is at bits 31:5 (SDM 4.4.1). */
  PAE_PDPT_MASK: 0xffffffe0,
} as const;

/** CR3 bits 63:32 as a mask of the high word. */
export const CR3_HI = {
  /** Root-table address bits 51:32; bits 51:MAXPHYADDR are reserved (SDM 4.5, Table 4-12). */
  ADDRESS: 0x000fffff,
  /** Bit 61: LAM for user pointers with bits 62:57 masked (SDM Vol. 3A, linear-address masking). */
  LAM_U57: 1 << 29,
  /** Bit 62: LAM for user pointers with bits 62:48 masked; takes effect only when LAM_U57 is 0. */
  LAM_U48: 1 << 30,
} as const;

/**
 * The high word of a MOV-to-CR3 source operand. Bit 63 is an instruction operand bit: with
 * CR4.PCIDE = 1 it asks the processor not to invalidate the new PCID's TLB entries, and it is never
 * written into CR3, where bit 63 is reserved (SDM 4.10.4.1, MOV to CR3).
 */
export const CR3_OPERAND_HI = {
  /** Bit 63: no-flush hint. */
  NO_FLUSH: 0x80000000,
  /** The operand's other high bits, i.e. what reaches CR3 when the no-flush bit is stripped. */
  VALUE: 0x7fffffff,
} as const;

const TWO_32 = 4294967296;

const ADDRESS_FIELD = field(
  "ADDR",
  12,
  40,
  "root paging-structure address, bits M-1:12 (M = MAXPHYADDR; bits 51:M reserved). PAE paging uses bits 31:5 as the PDPT address instead",
);
const LAM_FIELDS = [
  flag("LAM_U57", 61, "LAM for user pointers: bits 62:57 of user linear addresses are masked"),
  flag("LAM_U48", 62, "LAM for user pointers: bits 62:48 masked (when LAM_U57 is clear)"),
];

/** CR3 with CR4.PCIDE = 0 (SDM 4.5, Table 4-12). */
export const CR3_LAYOUT: RegisterLayout = {
  name: "CR3",
  width: 64,
  source: "SDM Vol. 3A 4.5, Table 4-12; LAM bits: SDM Vol. 3A linear-address masking",
  fields: [
    flag("PWT", 3, "page-level write-through for the root table"),
    flag("PCD", 4, "page-level cache disable for the root table"),
    ADDRESS_FIELD,
    ...LAM_FIELDS,
  ],
};

/** CR3 with CR4.PCIDE = 1 (SDM 4.5, Table 4-13): bits 11:0 are the current PCID. */
export const CR3_PCID_LAYOUT: RegisterLayout = {
  name: "CR3 (CR4.PCIDE=1)",
  width: 64,
  source: "SDM Vol. 3A 4.5, Table 4-13; LAM bits: SDM Vol. 3A linear-address masking",
  fields: [
    field("PCID", 0, 12, "process-context identifier that tags TLB and paging-structure-cache entries"),
    ADDRESS_FIELD,
    ...LAM_FIELDS,
  ],
};

/**
 * The 64-bit source operand of MOV to CR3 with CR4.PCIDE = 1: the CR3 value plus the no-flush
 * bit 63, which the instruction consumes and does not store (SDM 4.10.4.1).
 */
export const MOV_CR3_OPERAND_LAYOUT: RegisterLayout = {
  name: "MOV to CR3 operand (CR4.PCIDE=1)",
  width: 64,
  source: "SDM Vol. 3A 4.10.4.1 and 4.5, Table 4-13",
  fields: [
    ...CR3_PCID_LAYOUT.fields,
    flag("NOFLUSH", 63, "operand bit only, never stored in CR3: keep the new PCID's TLB entries"),
  ],
};

/** The PCID field, bits 11:0 (meaningful only with CR4.PCIDE = 1). `cr3` is an integer below 2^53. */
export function cr3Pcid(cr3: number): number {
  return cr3 & CR3.PCID_MASK;
}

/**
 * The root-table address, bits M-1:12 of CR3 (4-level and 5-level paging; for 32-bit paging it
 * is bits 31:12 with M = 32). `cr3` is an integer below 2^53: the LAM bits 61/62 do not fit in a
 * number exactly, so keep them in the high word (`CR3_HI`) and pass the value without them.
 */
export function cr3Base(cr3: number, maxPhysAddr: number): number {
  if (!Number.isInteger(maxPhysAddr) || maxPhysAddr < 32 || maxPhysAddr > 52) {
    throw new RangeError(`maxPhysAddr ${maxPhysAddr} must be an integer in [32, 52]`);
  }
  const hiMask = 2 ** (maxPhysAddr - 32) - 1;
  const hi = Math.floor(cr3 / TWO_32) & hiMask;
  return hi * TWO_32 + ((cr3 & CR3.ADDRESS_LO) >>> 0);
}

export interface Cr3OperandSplit {
  /** The no-flush request (bit 63 with CR4.PCIDE = 1). */
  readonly noFlush: boolean;
  /** What MOV to CR3 tries to load into CR3 (reserved-bit checks still apply to it). */
  readonly value: bigint;
}

export interface Cr3OperandSplitWords {
  readonly noFlush: boolean;
  readonly lo: number;
  readonly hi: number;
}

/**
 * Splits a MOV-to-CR3 operand into the no-flush request and the value for CR3. Bit 63 is the
 * no-flush bit only with CR4.PCIDE = 1 (SDM 4.10.4.1); with PCIDE = 0 the operand is passed on
 * whole, so a set bit 63 stays in the value, where it is a reserved CR3 bit.
 */
export function splitCr3Operand(operand: bigint, pcide: boolean): Cr3OperandSplit {
  const value = BigInt.asUintN(64, operand);
  if (!pcide) return { noFlush: false, value };
  return { noFlush: value >> 63n === 1n, value: value & ((1n << 63n) - 1n) };
}

/** `splitCr3Operand` for an operand held as two 32-bit words. */
export function splitCr3OperandWords(lo: number, hi: number, pcide: boolean): Cr3OperandSplitWords {
  if (!pcide) return { noFlush: false, lo: lo >>> 0, hi: hi >>> 0 };
  return {
    noFlush: (hi & CR3_OPERAND_HI.NO_FLUSH) !== 0,
    lo: lo >>> 0,
    hi: (hi & CR3_OPERAND_HI.VALUE) >>> 0,
  };
}

/** Hot-path form: whether the operand's high word asks for no flush (always false with PCIDE = 0). */
export function cr3OperandNoFlush(hi: number, pcide: boolean): boolean {
  return pcide && (hi & CR3_OPERAND_HI.NO_FLUSH) !== 0;
}
