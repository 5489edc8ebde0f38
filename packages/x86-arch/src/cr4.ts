import { flag, type RegisterLayout } from "./bit-register";

/**
 * CR4 bits 31:0 (SDM Vol. 3A 2.5, "Control Registers", Figure 2-7). Numeric constants for hot
 * paths; bits 63:32 are in `CR4_HI`.
 */
export const CR4 = {
  VME: 1 << 0,
  PVI: 1 << 1,
  TSD: 1 << 2,
  DE: 1 << 3,
  PSE: 1 << 4,
  PAE: 1 << 5,
  MCE: 1 << 6,
  PGE: 1 << 7,
  PCE: 1 << 8,
  OSFXSR: 1 << 9,
  OSXMMEXCPT: 1 << 10,
  UMIP: 1 << 11,
  LA57: 1 << 12,
  VMXE: 1 << 13,
  SMXE: 1 << 14,
  FSGSBASE: 1 << 16,
  PCIDE: 1 << 17,
  OSXSAVE: 1 << 18,
  KL: 1 << 19,
  SMEP: 1 << 20,
  SMAP: 1 << 21,
  PKE: 1 << 22,
  CET: 1 << 23,
  PKS: 1 << 24,
  UINTR: 1 << 25,
  LASS: 1 << 27,
  LAM_SUP: 1 << 28,
} as const;

/** CR4 bits 63:32 as a mask of the high word. */
export const CR4_HI = {
  /** Bit 32: FRED event delivery (SDM Vol. 3A, FRED; kernel X86_CR4_FRED_BIT = 32). */
  FRED: 1 << 0,
} as const;

/** CR4 layout for decoding and display (SDM 2.5; FRED, LASS and LAM from their SDM chapters). */
export const CR4_LAYOUT: RegisterLayout = {
  name: "CR4",
  width: 64,
  source: "SDM Vol. 3A 2.5 (LASS, LAM_SUP, FRED: SDM Vol. 3A chapters on LASS, LAM and FRED)",
  fields: [
    flag("VME", 0, "Virtual-8086 Mode Extensions: virtual interrupt flag in virtual-8086 mode"),
    flag("PVI", 1, "Protected-Mode Virtual Interrupts: VIF/VIP at CPL 3"),
    flag("TSD", 2, "Time Stamp Disable: RDTSC/RDTSCP only at CPL 0"),
    flag("DE", 3, "Debugging Extensions: I/O breakpoints; DR4/DR5 references raise #UD"),
    flag("PSE", 4, "Page Size Extensions: 4-MiB pages in 32-bit paging"),
    flag("PAE", 5, "Physical Address Extension: 64-bit entries (PAE, 4-level and 5-level paging)"),
    flag("MCE", 6, "Machine-Check Enable: machine-check exception (#MC)"),
    flag("PGE", 7, "Page Global Enable: global translations survive CR3 writes"),
    flag("PCE", 8, "Performance-Monitoring Counter Enable: RDPMC at any CPL"),
    flag("OSFXSR", 9, "OS supports FXSAVE/FXRSTOR: enables SSE instructions"),
    flag("OSXMMEXCPT", 10, "OS handles unmasked SIMD floating-point exceptions (#XM, not #UD)"),
    flag("UMIP", 11, "User-Mode Instruction Prevention: SGDT/SIDT/SLDT/SMSW/STR #GP at CPL > 0"),
    flag("LA57", 12, "57-bit linear addresses: 5-level paging in IA-32e mode"),
    flag("VMXE", 13, "VMX Enable: VMXON allowed"),
    flag("SMXE", 14, "SMX Enable: GETSEC allowed"),
    flag("FSGSBASE", 16, "Enables RDFSBASE/RDGSBASE/WRFSBASE/WRGSBASE"),
    flag("PCIDE", 17, "PCID Enable: CR3 bits 11:0 are a process-context identifier"),
    flag("OSXSAVE", 18, "XSAVE and processor extended states enable (XGETBV/XSETBV, XCR0)"),
    flag("KL", 19, "Key Locker Enable: LOADIWKEY and the AES Key Locker instructions"),
    flag("SMEP", 20, "Supervisor-Mode Execution Prevention: no supervisor fetches from user pages"),
    flag("SMAP", 21, "Supervisor-Mode Access Prevention: no supervisor data access to user pages unless AC"),
    flag("PKE", 22, "Protection keys for user-mode pages (PKRU)"),
    flag("CET", 23, "Control-flow Enforcement Technology (requires CR0.WP)"),
    flag("PKS", 24, "Protection keys for supervisor-mode pages (IA32_PKRS)"),
    flag("UINTR", 25, "User-interrupts enable: SENDUIPI, UIRET, user-interrupt delivery"),
    flag("LASS", 27, "Linear-Address-Space Separation: user/supervisor halves of the address space"),
    flag("LAM_SUP", 28, "LAM for supervisor pointers (masked bits depend on LA57)"),
    flag("FRED", 32, "Flexible Return and Event Delivery replaces IDT event delivery"),
  ],
};
