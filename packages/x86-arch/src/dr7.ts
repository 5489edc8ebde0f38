import { field, flag, type RegisterLayout } from "./bit-register";

/**
 * DR7, the debug control register (SDM Vol. 3B, "Debug Control Register (DR7)", Figure "Debug
 * Registers"). Bit 10 is reserved and reads as 1; bits 12, 14, 15 and 63:32 are reserved and 0.
 */
export const DR7 = {
  L0: 1 << 0,
  G0: 1 << 1,
  L1: 1 << 2,
  G1: 1 << 3,
  L2: 1 << 4,
  G2: 1 << 5,
  L3: 1 << 6,
  G3: 1 << 7,
  LE: 1 << 8,
  GE: 1 << 9,
  /** Bit 10, reserved: always 1. */
  FIXED1: 1 << 10,
  /** Advanced debugging of RTM transactional regions (with IA32_DEBUGCTL.RTM). */
  RTM: 1 << 11,
  /** General detect: MOV to or from a debug register raises #DB. */
  GD: 1 << 13,
  /** Every Ln/Gn enable bit. */
  ENABLE_MASK: 0xff,
} as const;

/** DR7 after reset or INIT (SDM Vol. 3A, table of processor states following power-up, reset or INIT). */
export const DR7_RESET = 0x400;

/** Bits 12, 14 and 15: reserved, read as 0 (bits 63:32 are reserved too; a MOV that sets them faults). */
const DR7_RESERVED_ZERO = (1 << 12) | (1 << 14) | (1 << 15);

/**
 * The low 32 bits of DR7 as the register holds them after a MOV of `value`: reserved bits 12, 14 and
 * 15 read as 0, bit 10 as 1 (SDM Vol. 3B, "Debug Control Register (DR7)"; kvm: __kvm_set_dr keeps
 * `DR7_VOLATILE` bits and ORs `DR7_FIXED_1`).
 */
export function dr7AsHeld(value: number): number {
  return ((value & ~DR7_RESERVED_ZERO) | DR7.FIXED1) >>> 0;
}

/** R/W field encodings: what breakpoint n watches. */
export const DR7_RW = {
  EXECUTE: 0,
  WRITE: 1,
  /** I/O reads and writes; defined only with CR4.DE = 1. */
  IO: 2,
  READ_WRITE: 3,
} as const;

/** LEN field encodings: size of the watched location. */
export const DR7_LEN = {
  BYTES_1: 0,
  BYTES_2: 1,
  /** 8 bytes in IA-32e mode (and on some processors in other modes); otherwise undefined. */
  BYTES_8: 2,
  BYTES_4: 3,
} as const;

function checkBreakpoint(breakpoint: number): void {
  if (!Number.isInteger(breakpoint) || breakpoint < 0 || breakpoint > 3) {
    throw new RangeError(`breakpoint ${breakpoint} is not one of 0, 1, 2, 3`);
  }
}

/** Bit position of breakpoint n's 2-bit R/W field (16 + 4n). */
export function dr7RwShift(breakpoint: number): number {
  checkBreakpoint(breakpoint);
  return 16 + 4 * breakpoint;
}

/** Bit position of breakpoint n's 2-bit LEN field (18 + 4n). */
export function dr7LenShift(breakpoint: number): number {
  checkBreakpoint(breakpoint);
  return 18 + 4 * breakpoint;
}

const RW_MEANING =
  "00 instruction execution, 01 data writes, 10 I/O reads/writes (CR4.DE=1), 11 data reads/writes";
const LEN_MEANING = "00 1 byte, 01 2 bytes, 10 8 bytes (IA-32e mode), 11 4 bytes";

/** DR7 layout for decoding and display. */
export const DR7_LAYOUT: RegisterLayout = {
  name: "DR7",
  width: 64,
  source: "SDM Vol. 3B, Debug Control Register (DR7)",
  fields: [
    flag("L0", 0, "local enable of breakpoint 0 (cleared on task switch)"),
    flag("G0", 1, "global enable of breakpoint 0"),
    flag("L1", 2, "local enable of breakpoint 1"),
    flag("G1", 3, "global enable of breakpoint 1"),
    flag("L2", 4, "local enable of breakpoint 2"),
    flag("G2", 5, "global enable of breakpoint 2"),
    flag("L3", 6, "local enable of breakpoint 3"),
    flag("G3", 7, "global enable of breakpoint 3"),
    flag("LE", 8, "local exact breakpoint enable (ignored by modern processors)"),
    flag("GE", 9, "global exact breakpoint enable (ignored by modern processors)"),
    flag("FIXED1", 10, "reserved; always 1"),
    flag("RTM", 11, "advanced debugging of RTM regions (with IA32_DEBUGCTL.RTM)"),
    flag("GD", 13, "general detect: any MOV to/from a debug register raises #DB"),
    field("R/W0", 16, 2, `breakpoint 0 condition: ${RW_MEANING}`),
    field("LEN0", 18, 2, `breakpoint 0 length: ${LEN_MEANING}`),
    field("R/W1", 20, 2, `breakpoint 1 condition: ${RW_MEANING}`),
    field("LEN1", 22, 2, `breakpoint 1 length: ${LEN_MEANING}`),
    field("R/W2", 24, 2, `breakpoint 2 condition: ${RW_MEANING}`),
    field("LEN2", 26, 2, `breakpoint 2 length: ${LEN_MEANING}`),
    field("R/W3", 28, 2, `breakpoint 3 condition: ${RW_MEANING}`),
    field("LEN3", 30, 2, `breakpoint 3 length: ${LEN_MEANING}`),
  ],
};
