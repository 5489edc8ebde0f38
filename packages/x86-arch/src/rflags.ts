import { field, flag, type RegisterLayout } from "./bit-register";

/**
 * RFLAGS bits (SDM Vol. 1 3.4.3 and Vol. 3A 2.3, "System Flags and Fields in the EFLAGS
 * Register"). Bits 3, 5, 15 and 63:22 are reserved and read as 0; bit 1 is reserved and reads as 1.
 */
export const RFLAGS = {
  CF: 1 << 0,
  /** Bit 1, reserved: always 1. */
  FIXED1: 1 << 1,
  PF: 1 << 2,
  AF: 1 << 4,
  ZF: 1 << 6,
  SF: 1 << 7,
  TF: 1 << 8,
  IF: 1 << 9,
  DF: 1 << 10,
  OF: 1 << 11,
  /** I/O privilege level, bits 13:12. */
  IOPL_MASK: 3 << 12,
  IOPL_SHIFT: 12,
  NT: 1 << 14,
  RF: 1 << 16,
  VM: 1 << 17,
  AC: 1 << 18,
  VIF: 1 << 19,
  VIP: 1 << 20,
  ID: 1 << 21,
} as const;

/** RFLAGS after reset or INIT (SDM Vol. 3A, table of processor states following power-up, reset or INIT). */
export const RFLAGS_RESET = 0x2;

/** RFLAGS layout for decoding and display. */
export const RFLAGS_LAYOUT: RegisterLayout = {
  name: "RFLAGS",
  width: 64,
  source: "SDM Vol. 1 3.4.3; SDM Vol. 3A 2.3",
  fields: [
    flag("CF", 0, "Carry flag"),
    flag("FIXED1", 1, "reserved; always 1"),
    flag("PF", 2, "Parity flag: low byte of the result has an even number of 1 bits"),
    flag("AF", 4, "Auxiliary carry flag: carry/borrow out of bit 3 (BCD)"),
    flag("ZF", 6, "Zero flag"),
    flag("SF", 7, "Sign flag"),
    flag("TF", 8, "Trap flag: single-step (#DB after each instruction)"),
    flag("IF", 9, "Interrupt enable flag: maskable external interrupts are recognized"),
    flag("DF", 10, "Direction flag: string instructions decrement"),
    flag("OF", 11, "Overflow flag"),
    field("IOPL", 12, 2, "I/O privilege level: highest CPL allowed I/O instructions and CLI/STI"),
    flag("NT", 14, "Nested task: IRET returns through the TSS back link"),
    flag("RF", 16, "Resume flag: suppresses instruction breakpoints for the next instruction"),
    flag("VM", 17, "Virtual-8086 mode"),
    flag("AC", 18, "Alignment check (with CR0.AM at CPL 3); lets supervisor data accesses through SMAP"),
    flag("VIF", 19, "Virtual interrupt flag (with CR4.VME or CR4.PVI)"),
    flag("VIP", 20, "Virtual interrupt pending (with CR4.VME or CR4.PVI)"),
    flag("ID", 21, "Identification flag: software can toggle it where CPUID exists"),
  ],
};
