import { flag, type RegisterLayout } from "./bit-register";

/**
 * Bits of IA32_VMX_EPT_VPID_CAP (MSR 48CH, SDM Vol. 3D Appendix A.10) that change how EPT walks
 * and EPTP checks behave, as masks of the MSR's low word (every one of them is below bit 32).
 */
export const EPT_CAP = {
  /** Bit 0: an EPT entry may be execute-only (bits 2:0 = 100b). */
  EXECUTE_ONLY: 1 << 0,
  /** Bit 6: a 4-level EPT page walk is supported. */
  WALK_LENGTH_4: 1 << 6,
  /** Bit 7: a 5-level EPT page walk is supported. */
  WALK_LENGTH_5: 1 << 7,
  /** Bit 8: the EPTP may select the UC memory type for EPT paging structures. */
  MEMORY_TYPE_UC: 1 << 8,
  /** Bit 14: the EPTP may select the WB memory type. */
  MEMORY_TYPE_WB: 1 << 14,
  /** Bit 16: an EPT PDE may map a 2-MiB page (bit 7 set). */
  PAGES_2M: 1 << 16,
  /** Bit 17: an EPT PDPTE may map a 1-GiB page (bit 7 set). */
  PAGES_1G: 1 << 17,
  /** Bit 21: accessed and dirty flags for EPT (EPTP bit 6). */
  ACCESSED_DIRTY: 1 << 21,
  /** Bit 22: advanced VM-exit information for EPT violations (qualification bits 9–11). */
  ADVANCED_EXIT_INFO: 1 << 22,
  /** Bit 23: supervisor shadow-stack control (EPTP bit 7). */
  SUPERVISOR_SHADOW_STACK: 1 << 23,
} as const;

/** Every bit `EptCapabilities` models (low word; the high word holds only VPID capabilities). */
export const EPT_CAP_MODELLED_LO =
  (EPT_CAP.EXECUTE_ONLY |
    EPT_CAP.WALK_LENGTH_4 |
    EPT_CAP.WALK_LENGTH_5 |
    EPT_CAP.MEMORY_TYPE_UC |
    EPT_CAP.MEMORY_TYPE_WB |
    EPT_CAP.PAGES_2M |
    EPT_CAP.PAGES_1G |
    EPT_CAP.ACCESSED_DIRTY |
    EPT_CAP.ADVANCED_EXIT_INFO |
    EPT_CAP.SUPERVISOR_SHADOW_STACK) >>>
  0;

/** The EPT capabilities a walk and the EPTP check consult (SDM Appendix A.10). */
export interface EptCapabilities {
  readonly executeOnly: boolean;
  readonly walkLength4: boolean;
  readonly walkLength5: boolean;
  readonly memoryTypeUc: boolean;
  readonly memoryTypeWb: boolean;
  readonly pages2M: boolean;
  readonly pages1G: boolean;
  readonly accessedDirty: boolean;
  readonly advancedExitInfo: boolean;
  readonly supervisorShadowStack: boolean;
}

/** A recent server core (Sapphire Rapids class): every capability above is reported. */
export const MODERN_EPT_CAPABILITIES: EptCapabilities = Object.freeze({
  executeOnly: true,
  walkLength4: true,
  walkLength5: true,
  memoryTypeUc: true,
  memoryTypeWb: true,
  pages2M: true,
  pages1G: true,
  accessedDirty: true,
  advancedExitInfo: true,
  supervisorShadowStack: true,
});

/** Builds a capability set from `MODERN_EPT_CAPABILITIES` with overrides. */
export function eptCapabilities(overrides: Partial<EptCapabilities> = {}): EptCapabilities {
  return Object.freeze({ ...MODERN_EPT_CAPABILITIES, ...overrides });
}

/**
 * Reads the modelled capabilities from the MSR's halves. Bits that do not change walks (INVEPT and
 * INVVPID types, all of the high word) are ignored.
 */
export function decodeEptCapabilities(lo: number, _hi = 0): EptCapabilities {
  const has = (bit: number) => (lo & bit) !== 0;
  return Object.freeze({
    executeOnly: has(EPT_CAP.EXECUTE_ONLY),
    walkLength4: has(EPT_CAP.WALK_LENGTH_4),
    walkLength5: has(EPT_CAP.WALK_LENGTH_5),
    memoryTypeUc: has(EPT_CAP.MEMORY_TYPE_UC),
    memoryTypeWb: has(EPT_CAP.MEMORY_TYPE_WB),
    pages2M: has(EPT_CAP.PAGES_2M),
    pages1G: has(EPT_CAP.PAGES_1G),
    accessedDirty: has(EPT_CAP.ACCESSED_DIRTY),
    advancedExitInfo: has(EPT_CAP.ADVANCED_EXIT_INFO),
    supervisorShadowStack: has(EPT_CAP.SUPERVISOR_SHADOW_STACK),
  });
}

/** The MSR value holding exactly the modelled capabilities (other bits zero). */
export function encodeEptCapabilities(caps: EptCapabilities): { lo: number; hi: number } {
  let lo = 0;
  if (caps.executeOnly) lo |= EPT_CAP.EXECUTE_ONLY;
  if (caps.walkLength4) lo |= EPT_CAP.WALK_LENGTH_4;
  if (caps.walkLength5) lo |= EPT_CAP.WALK_LENGTH_5;
  if (caps.memoryTypeUc) lo |= EPT_CAP.MEMORY_TYPE_UC;
  if (caps.memoryTypeWb) lo |= EPT_CAP.MEMORY_TYPE_WB;
  if (caps.pages2M) lo |= EPT_CAP.PAGES_2M;
  if (caps.pages1G) lo |= EPT_CAP.PAGES_1G;
  if (caps.accessedDirty) lo |= EPT_CAP.ACCESSED_DIRTY;
  if (caps.advancedExitInfo) lo |= EPT_CAP.ADVANCED_EXIT_INFO;
  if (caps.supervisorShadowStack) lo |= EPT_CAP.SUPERVISOR_SHADOW_STACK;
  return { lo: lo >>> 0, hi: 0 };
}

/** IA32_VMX_EPT_VPID_CAP for display, including the INVEPT/INVVPID bits the walks do not use. */
export const EPT_VPID_CAP_LAYOUT: RegisterLayout = {
  name: "IA32_VMX_EPT_VPID_CAP",
  width: 64,
  source: "SDM Vol. 3D Appendix A.10",
  fields: [
    flag("EXECUTE_ONLY", 0, "execute-only EPT translations (bits 2:0 = 100b) are allowed"),
    flag("PAGE_WALK_4", 6, "4-level EPT page walk supported"),
    flag("PAGE_WALK_5", 7, "5-level EPT page walk supported"),
    flag("EPTP_UC", 8, "EPTP may select the UC memory type"),
    flag("EPTP_WB", 14, "EPTP may select the WB memory type"),
    flag("PAGE_2M", 16, "EPT PDEs may map 2-MiB pages"),
    flag("PAGE_1G", 17, "EPT PDPTEs may map 1-GiB pages"),
    flag("INVEPT", 20, "INVEPT instruction supported"),
    flag("ACCESSED_DIRTY", 21, "accessed and dirty flags for EPT"),
    flag("ADVANCED_EXIT_INFO", 22, "advanced VM-exit information for EPT violations"),
    flag("SUPERVISOR_SHADOW_STACK", 23, "supervisor shadow-stack control"),
    flag("INVEPT_SINGLE_CONTEXT", 25, "single-context INVEPT"),
    flag("INVEPT_ALL_CONTEXT", 26, "all-context INVEPT"),
    flag("INVVPID", 32, "INVVPID instruction supported"),
    flag("INVVPID_INDIVIDUAL_ADDRESS", 40, "individual-address INVVPID"),
    flag("INVVPID_SINGLE_CONTEXT", 41, "single-context INVVPID"),
    flag("INVVPID_ALL_CONTEXT", 42, "all-context INVVPID"),
    flag("INVVPID_SINGLE_CONTEXT_RETAIN_GLOBALS", 43, "single-context-retaining-globals INVVPID"),
  ],
};
