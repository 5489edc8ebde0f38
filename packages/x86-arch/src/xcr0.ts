import { flag, type RegisterLayout } from "./bit-register";

/**
 * XSAVE state components (SDM Vol. 1 13.1, "XSAVE-Supported Features and State-Component
 * Bitmaps"). The same bit positions index XCR0 (user state components, set with XSETBV) and
 * IA32_XSS (supervisor state components, MSR DA0H); each component belongs to exactly one of them.
 * Numeric constants for hot paths; no component is above bit 31 yet.
 */
export const XCR0 = {
  X87: 1 << 0,
  SSE: 1 << 1,
  AVX: 1 << 2,
  BNDREG: 1 << 3,
  BNDCSR: 1 << 4,
  OPMASK: 1 << 5,
  ZMM_HI256: 1 << 6,
  HI16_ZMM: 1 << 7,
  /** IA32_XSS only. */
  PT: 1 << 8,
  PKRU: 1 << 9,
  /** IA32_XSS only. */
  PASID: 1 << 10,
  /** IA32_XSS only. */
  CET_U: 1 << 11,
  /** IA32_XSS only. */
  CET_S: 1 << 12,
  /** IA32_XSS only. */
  HDC: 1 << 13,
  /** IA32_XSS only. */
  UINTR: 1 << 14,
  /** IA32_XSS only. */
  LBR: 1 << 15,
  /** IA32_XSS only. */
  HWP: 1 << 16,
  TILECFG: 1 << 17,
  TILEDATA: 1 << 18,
  APX: 1 << 19,
} as const;

/** The user state components, which XCR0 manages (SDM Vol. 1 13.2). */
export const XCR0_USER_COMPONENTS =
  XCR0.X87 |
  XCR0.SSE |
  XCR0.AVX |
  XCR0.BNDREG |
  XCR0.BNDCSR |
  XCR0.OPMASK |
  XCR0.ZMM_HI256 |
  XCR0.HI16_ZMM |
  XCR0.PKRU |
  XCR0.TILECFG |
  XCR0.TILEDATA |
  XCR0.APX;

/** The supervisor state components, which IA32_XSS manages (SDM Vol. 1 13.2); never valid in XCR0. */
export const XSS_SUPERVISOR_COMPONENTS =
  XCR0.PT | XCR0.PASID | XCR0.CET_U | XCR0.CET_S | XCR0.HDC | XCR0.UINTR | XCR0.LBR | XCR0.HWP;

/** XCR0 / IA32_XSS state-component bitmap layout for decoding and display. */
export const XCR0_LAYOUT: RegisterLayout = {
  name: "XCR0 / IA32_XSS state-component bitmap",
  width: 64,
  source: "SDM Vol. 1 13.1; APX state: SDM Vol. 1 13.1 (component 19)",
  fields: [
    flag("X87", 0, "x87 FPU state (must be 1 in XCR0)"),
    flag("SSE", 1, "SSE state: XMM registers and MXCSR"),
    flag("AVX", 2, "AVX state: upper halves of YMM0-15 (needs SSE)"),
    flag("BNDREG", 3, "MPX bound registers BND0-3 (set together with BNDCSR)"),
    flag("BNDCSR", 4, "MPX BNDCFGU and BNDSTATUS (set together with BNDREG)"),
    flag("OPMASK", 5, "AVX-512 opmask registers k0-7 (with ZMM_Hi256 and Hi16_ZMM)"),
    flag("ZMM_Hi256", 6, "AVX-512 upper 256 bits of ZMM0-15"),
    flag("Hi16_ZMM", 7, "AVX-512 ZMM16-31"),
    flag("PT", 8, "Processor Trace state; IA32_XSS only (supervisor), never valid in XCR0"),
    flag("PKRU", 9, "PKRU register (protection keys for user pages)"),
    flag("PASID", 10, "IA32_PASID MSR; IA32_XSS only"),
    flag("CET_U", 11, "user-mode CET state (IA32_U_CET, IA32_PL3_SSP); IA32_XSS only"),
    flag("CET_S", 12, "supervisor CET state (IA32_PL0-2_SSP); IA32_XSS only"),
    flag("HDC", 13, "hardware duty cycling state; IA32_XSS only"),
    flag("UINTR", 14, "user-interrupt state; IA32_XSS only"),
    flag("LBR", 15, "architectural LBR state; IA32_XSS only"),
    flag("HWP", 16, "hardware P-state (IA32_HWP_REQUEST); IA32_XSS only"),
    flag("TILECFG", 17, "AMX TILECFG (set together with TILEDATA)"),
    flag("TILEDATA", 18, "AMX tile data TMM0-7 (set together with TILECFG)"),
    flag("APX", 19, "APX extended general-purpose registers R16-R31"),
  ],
};
