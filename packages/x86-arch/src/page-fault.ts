import { flag, type RegisterLayout } from "./bit-register";

/** #PF error-code bits (SDM Vol. 3A 4.7, "Page-Fault Exceptions"). */
export const PFERR = {
  /** 0: the fault was caused by a non-present page; 1: by a protection violation. */
  PRESENT: 1 << 0,
  /** The access was a write. */
  WRITE: 1 << 1,
  /** The access was a user-mode access (CPL 3, not an implicit supervisor access). */
  USER: 1 << 2,
  /** A reserved bit was set in some paging-structure entry. */
  RSVD: 1 << 3,
  /** The access was an instruction fetch (reported only with NX or SMEP in effect). */
  FETCH: 1 << 4,
  /** A protection-key check (PKRU or IA32_PKRS) failed. */
  PK: 1 << 5,
  /** The access was a shadow-stack access (modelled later). */
  SHADOW_STACK: 1 << 6,
  /** The fault resulted from an SGX-specific access-control requirement. */
  SGX: 1 << 15,
} as const;

/** Error-code layout for decoding and display (SDM 4.7, Figure 4-12). */
export const PFERR_LAYOUT: RegisterLayout = {
  name: "#PF error code",
  width: 32,
  source: "SDM Vol. 3A 4.7",
  fields: [
    flag("P", 0, "protection violation (clear: the page was not present)"),
    flag("W/R", 1, "the access was a write (clear: a read)"),
    flag("U/S", 2, "user-mode access (clear: supervisor-mode)"),
    flag("RSVD", 3, "a reserved bit was set in a paging-structure entry"),
    flag("I/D", 4, "instruction fetch"),
    flag("PK", 5, "protection-key rights disallowed the access"),
    flag("SS", 6, "shadow-stack access"),
    flag("HLAT", 7, "fault during HLAT paging"),
    flag("SGX", 15, "SGX access-control violation"),
  ],
};

/** A short human reading of an error code, e.g. "protection violation, user write". */
export function summarizePageFaultErrorCode(errorCode: number): string {
  const parts: string[] = [];
  parts.push(errorCode & PFERR.PRESENT ? "protection violation" : "not present");
  if (errorCode & PFERR.RSVD) parts.push("reserved bit set");
  if (errorCode & PFERR.PK) parts.push("protection key");
  const who = errorCode & PFERR.USER ? "user" : "supervisor";
  const what = errorCode & PFERR.FETCH ? "instruction fetch" : errorCode & PFERR.WRITE ? "write" : "read";
  parts.push(`${who} ${what}`);
  if (errorCode & PFERR.SHADOW_STACK) parts.push("shadow stack");
  if (errorCode & PFERR.SGX) parts.push("SGX");
  return parts.join(", ");
}
