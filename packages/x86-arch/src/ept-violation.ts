import { flag, type RegisterLayout } from "./bit-register";

/**
 * Exit-qualification bits of an EPT-violation VM exit (SDM Vol. 3C 28.2.1, Table 28-7 "Exit
 * Qualification for EPT Violations"; 27.2.1 / Table 27-7 in older editions). Bits 63:17 are 0.
 */
export const EPT_VIOLATION = {
  /** The access was a data read (also set, with WRITE, for a read-modify-write of a guest paging entry). */
  READ: 1 << 0,
  /** The access was a data write. */
  WRITE: 1 << 1,
  /** The access was an instruction fetch. */
  FETCH: 1 << 2,
  /** AND of bit 0 (R) over the EPT entries used: the guest-physical address was readable. */
  READABLE: 1 << 3,
  /** AND of bit 1 (W): writable. */
  WRITABLE: 1 << 4,
  /** AND of bit 2 (X): executable (for supervisor-mode linear addresses with mode-based execute). */
  EXECUTABLE: 1 << 5,
  /** AND of bit 10 (XU) with mode-based execute control; 0 otherwise. */
  USER_EXECUTABLE: 1 << 6,
  /** The guest linear-address field is valid (clear only for PDPTE loads by MOV to CR and similar). */
  GLA_VALID: 1 << 7,
  /** With GLA_VALID: the access was to the translation of the linear address (clear: to a guest paging-structure entry). */
  FINAL_TRANSLATION: 1 << 8,
  /** Advanced info (bits 7 and 8 set): the linear address is user-mode (U/S = 1 at every guest level). */
  USER_LINEAR: 1 << 9,
  /** Advanced info: the linear address maps a read/write page (R/W = 1 at every guest level). */
  WRITABLE_LINEAR: 1 << 10,
  /** Advanced info: the linear address maps an execute-disable page. */
  EXECUTE_DISABLE_LINEAR: 1 << 11,
  /** NMI unblocking due to IRET. */
  NMI_UNBLOCKING: 1 << 12,
  /** The access was a shadow-stack access. */
  SHADOW_STACK: 1 << 13,
  /** With EPTP bit 7: bit 60 (supervisor shadow stack) of the EPT leaf mapping the page. */
  SUPERVISOR_SHADOW_STACK: 1 << 14,
  /** The violation arose from guest-paging verification (HLAT). */
  GUEST_PAGING_VERIFICATION: 1 << 15,
  /** The access was asynchronous to instruction execution (e.g. trace output). */
  ASYNCHRONOUS: 1 << 16,
  /** Bits 2:0. */
  ACCESS_MASK: 0x7,
  /** Bits 5:3 hold EPT entry bits 2:0 AND-ed over the walk. */
  PERMISSIONS_SHIFT: 3,
  /** Bits 11:9, reported only with advanced VM-exit information. */
  ADVANCED_MASK: 0xe00,
} as const;

/** Qualification layout for decoding and display. */
export const EPT_VIOLATION_LAYOUT: RegisterLayout = {
  name: "EPT-violation exit qualification",
  width: 64,
  source: "SDM Vol. 3C 28.2.1, Table 28-7",
  fields: [
    flag("RD", 0, "the access was a data read"),
    flag("WR", 1, "the access was a data write"),
    flag("IF", 2, "the access was an instruction fetch"),
    flag("R", 3, "the guest-physical address was readable (AND of EPT bit 0)"),
    flag("W", 4, "the guest-physical address was writable (AND of EPT bit 1)"),
    flag("X", 5, "the guest-physical address was executable (supervisor-mode with MBEC)"),
    flag("XU", 6, "executable for user-mode linear addresses (AND of EPT bit 10, MBEC only)"),
    flag("GLA", 7, "the guest linear-address field is valid"),
    flag("FINAL", 8, "access to the linear address's translation (clear: to a guest paging-structure entry)"),
    flag("US", 9, "advanced: user-mode linear address"),
    flag("RW", 10, "advanced: the linear address maps a read/write page"),
    flag("XD", 11, "advanced: the linear address maps an execute-disable page"),
    flag("NMI", 12, "NMI unblocking due to IRET"),
    flag("SS", 13, "shadow-stack access"),
    flag("SSS", 14, "supervisor shadow-stack page (EPT leaf bit 60, EPTP bit 7)"),
    flag("GPV", 15, "caused by guest-paging verification"),
    flag("ASYNC", 16, "asynchronous to instruction execution"),
  ],
};

/** The facts of one violation, for `eptViolationQualification` (omitted flags are false). */
export interface EptViolationFields {
  readonly read?: boolean;
  readonly write?: boolean;
  readonly fetch?: boolean;
  readonly readable?: boolean;
  readonly writable?: boolean;
  readonly executable?: boolean;
  readonly userExecutable?: boolean;
  readonly glaValid?: boolean;
  readonly finalTranslation?: boolean;
  readonly userLinear?: boolean;
  readonly writableLinear?: boolean;
  readonly executeDisableLinear?: boolean;
  readonly nmiUnblocking?: boolean;
  readonly shadowStack?: boolean;
  readonly supervisorShadowStack?: boolean;
  readonly guestPagingVerification?: boolean;
  readonly asynchronous?: boolean;
}

/** The processor features that decide which qualification bits are defined. */
export interface EptViolationReporting {
  /** IA32_VMX_EPT_VPID_CAP bit 22. */
  readonly advancedExitInfo: boolean;
  /** The "mode-based execute control for EPT" VM-execution control. */
  readonly modeBasedExecute: boolean;
}

/**
 * Builds a qualification, reporting as 0 every bit the SDM leaves undefined in the situation
 * (which is what the walker reports): bit 6 without mode-based execute control, bit 8 without
 * bit 7, and bits 11:9 unless bits 7 and 8 are set and advanced VM-exit information is supported.
 */
export function eptViolationQualification(
  fields: EptViolationFields,
  reporting: EptViolationReporting,
): number {
  let q = 0;
  if (fields.read) q |= EPT_VIOLATION.READ;
  if (fields.write) q |= EPT_VIOLATION.WRITE;
  if (fields.fetch) q |= EPT_VIOLATION.FETCH;
  if (fields.readable) q |= EPT_VIOLATION.READABLE;
  if (fields.writable) q |= EPT_VIOLATION.WRITABLE;
  if (fields.executable) q |= EPT_VIOLATION.EXECUTABLE;
  if (fields.userExecutable && reporting.modeBasedExecute) q |= EPT_VIOLATION.USER_EXECUTABLE;
  if (fields.glaValid) {
    q |= EPT_VIOLATION.GLA_VALID;
    if (fields.finalTranslation) {
      q |= EPT_VIOLATION.FINAL_TRANSLATION;
      if (reporting.advancedExitInfo) {
        if (fields.userLinear) q |= EPT_VIOLATION.USER_LINEAR;
        if (fields.writableLinear) q |= EPT_VIOLATION.WRITABLE_LINEAR;
        if (fields.executeDisableLinear) q |= EPT_VIOLATION.EXECUTE_DISABLE_LINEAR;
      }
    }
  }
  if (fields.nmiUnblocking) q |= EPT_VIOLATION.NMI_UNBLOCKING;
  if (fields.shadowStack) q |= EPT_VIOLATION.SHADOW_STACK;
  if (fields.supervisorShadowStack) q |= EPT_VIOLATION.SUPERVISOR_SHADOW_STACK;
  if (fields.guestPagingVerification) q |= EPT_VIOLATION.GUEST_PAGING_VERIFICATION;
  if (fields.asynchronous) q |= EPT_VIOLATION.ASYNCHRONOUS;
  return q;
}

/** Reads a qualification back into fields (the inverse of `eptViolationQualification`). */
export function decodeEptViolationQualification(q: number): Required<EptViolationFields> {
  const has = (bit: number) => (q & bit) !== 0;
  return {
    read: has(EPT_VIOLATION.READ),
    write: has(EPT_VIOLATION.WRITE),
    fetch: has(EPT_VIOLATION.FETCH),
    readable: has(EPT_VIOLATION.READABLE),
    writable: has(EPT_VIOLATION.WRITABLE),
    executable: has(EPT_VIOLATION.EXECUTABLE),
    userExecutable: has(EPT_VIOLATION.USER_EXECUTABLE),
    glaValid: has(EPT_VIOLATION.GLA_VALID),
    finalTranslation: has(EPT_VIOLATION.FINAL_TRANSLATION),
    userLinear: has(EPT_VIOLATION.USER_LINEAR),
    writableLinear: has(EPT_VIOLATION.WRITABLE_LINEAR),
    executeDisableLinear: has(EPT_VIOLATION.EXECUTE_DISABLE_LINEAR),
    nmiUnblocking: has(EPT_VIOLATION.NMI_UNBLOCKING),
    shadowStack: has(EPT_VIOLATION.SHADOW_STACK),
    supervisorShadowStack: has(EPT_VIOLATION.SUPERVISOR_SHADOW_STACK),
    guestPagingVerification: has(EPT_VIOLATION.GUEST_PAGING_VERIFICATION),
    asynchronous: has(EPT_VIOLATION.ASYNCHRONOUS),
  };
}

/**
 * A short human reading, e.g. "write to a read/execute guest-physical address, translating a
 * linear address" or "read of a not-present guest-physical address, guest paging-structure access".
 */
export function summarizeEptViolation(q: number): string {
  const kinds: string[] = [];
  if (q & EPT_VIOLATION.READ) kinds.push("read");
  if (q & EPT_VIOLATION.WRITE) kinds.push("write");
  if (q & EPT_VIOLATION.FETCH) kinds.push("fetch");
  const rights: string[] = [];
  if (q & EPT_VIOLATION.READABLE) rights.push("read");
  if (q & EPT_VIOLATION.WRITABLE) rights.push("write");
  if (q & EPT_VIOLATION.EXECUTABLE) rights.push("execute");
  if (q & EPT_VIOLATION.USER_EXECUTABLE) rights.push("user-execute");
  const what = kinds.length > 0 ? kinds.join("+") : "access";
  const page =
    rights.length > 0
      ? `a ${rights.join("/")} guest-physical address`
      : "a not-present guest-physical address";
  const parts = [`${what} of ${page}`];
  if ((q & EPT_VIOLATION.GLA_VALID) === 0) parts.push("no linear address");
  else if (q & EPT_VIOLATION.FINAL_TRANSLATION) parts.push("translating a linear address");
  else parts.push("guest paging-structure access");
  if (q & EPT_VIOLATION.ADVANCED_MASK) {
    const linear: string[] = [];
    linear.push(q & EPT_VIOLATION.USER_LINEAR ? "user" : "supervisor");
    linear.push(q & EPT_VIOLATION.WRITABLE_LINEAR ? "read/write" : "read-only");
    if (q & EPT_VIOLATION.EXECUTE_DISABLE_LINEAR) linear.push("execute-disable");
    parts.push(`${linear.join(" ")} page`);
  }
  if (q & EPT_VIOLATION.NMI_UNBLOCKING) parts.push("NMI unblocking");
  if (q & EPT_VIOLATION.SHADOW_STACK) parts.push("shadow stack");
  return parts.join(", ");
}
