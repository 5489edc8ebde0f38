import { EPTE_LO } from "../ept-entry";
import { EPT_VIOLATION } from "../ept-violation";

/**
 * Test data: the EPT outcome tables of kvm-unit-tests `ept_access_test_*`, as summarised in
 * vmx-tests.md §8, shared by the EPT-walker and two-dimensional-walker tests. Qualifications are
 * the values the tests compare after masking bits 11:9 (advanced VM-exit information).
 */

// Shorthands as kvm-unit-tests names them (EPT_VLT_*).
export const RD = EPT_VIOLATION.READ;
export const WR = EPT_VIOLATION.WRITE;
export const FETCH = EPT_VIOLATION.FETCH;
export const PERM_RD = EPT_VIOLATION.READABLE;
export const PERM_WR = EPT_VIOLATION.WRITABLE;
export const PERM_EX = EPT_VIOLATION.EXECUTABLE;
export const PERM_UX = EPT_VIOLATION.USER_EXECUTABLE;
export const GLA = EPT_VIOLATION.GLA_VALID;
export const FINAL = EPT_VIOLATION.GLA_VALID | EPT_VIOLATION.FINAL_TRANSLATION;
export const XU = EPTE_LO.USER_EXECUTE;

/** "ok", "misconfig", or the violation's qualification without bits 11:9. */
export type EptExpect = "ok" | "misconfig" | number;

/** First table: EPT perms of the data page's entry (any level) → read / write / supervisor fetch. */
export const EPT_PERMISSION_TABLE: readonly {
  readonly name: string;
  readonly perms: number;
  /** IA32_VMX_EPT_VPID_CAP bit 0. */
  readonly executeOnly: boolean;
  readonly expect: readonly [EptExpect, EptExpect, EptExpect];
}[] = [
  { name: "not present", perms: 0, executeOnly: true, expect: [RD | FINAL, WR | FINAL, FETCH | FINAL] },
  { name: "R--", perms: 1, executeOnly: true, expect: ["ok", WR | PERM_RD | FINAL, FETCH | PERM_RD | FINAL] },
  { name: "-W-", perms: 2, executeOnly: true, expect: ["misconfig", "misconfig", "misconfig"] },
  { name: "RW-", perms: 3, executeOnly: true, expect: ["ok", "ok", FETCH | PERM_RD | PERM_WR | FINAL] },
  {
    name: "--X (execute-only supported)",
    perms: 4,
    executeOnly: true,
    expect: [RD | PERM_EX | FINAL, WR | PERM_EX | FINAL, "ok"],
  },
  {
    name: "--X (execute-only unsupported)",
    perms: 4,
    executeOnly: false,
    expect: ["misconfig", "misconfig", "misconfig"],
  },
  { name: "R-X", perms: 5, executeOnly: true, expect: ["ok", WR | PERM_RD | PERM_EX | FINAL, "ok"] },
  { name: "-WX", perms: 6, executeOnly: true, expect: ["misconfig", "misconfig", "misconfig"] },
  { name: "RWX", perms: 7, executeOnly: true, expect: ["ok", "ok", "ok"] },
];

/**
 * With mode-based execute control: perms (bits 2:0 and 10) → read / write / fetch from a
 * supervisor-mode linear address / fetch from a user-mode linear address. The named rows are the
 * kvm-unit-tests MBEC cases (`_execute_user_only`, `_execute_both`, ...).
 */
export const EPT_MBEC_TABLE: readonly {
  readonly name: string;
  readonly perms: number;
  readonly expect: readonly [EptExpect, EptExpect, EptExpect, EptExpect];
}[] = [
  {
    name: "execute_user_only",
    perms: XU,
    expect: [RD | PERM_UX | FINAL, WR | PERM_UX | FINAL, FETCH | PERM_UX | FINAL, "ok"],
  },
  {
    name: "execute_both",
    perms: 0x4 | XU,
    expect: [RD | PERM_EX | PERM_UX | FINAL, WR | PERM_EX | PERM_UX | FINAL, "ok", "ok"],
  },
  {
    name: "execute_supervisor_only",
    perms: 0x4,
    expect: [RD | PERM_EX | FINAL, WR | PERM_EX | FINAL, "ok", FETCH | PERM_EX | FINAL],
  },
  {
    name: "read_execute_user_only",
    perms: 0x1 | XU,
    expect: ["ok", WR | PERM_RD | PERM_UX | FINAL, FETCH | PERM_RD | PERM_UX | FINAL, "ok"],
  },
  {
    name: "read_execute_both",
    perms: 0x5 | XU,
    expect: ["ok", WR | PERM_RD | PERM_EX | PERM_UX | FINAL, "ok", "ok"],
  },
  {
    name: "read_write_execute_user_only",
    perms: 0x3 | XU,
    expect: ["ok", "ok", FETCH | PERM_RD | PERM_WR | PERM_UX | FINAL, "ok"],
  },
  { name: "read_write_execute_both", perms: 0x7 | XU, expect: ["ok", "ok", "ok", "ok"] },
  {
    name: "read_write_execute_supervisor_only",
    perms: 0x7,
    expect: ["ok", "ok", "ok", FETCH | PERM_RD | PERM_WR | PERM_EX | FINAL],
  },
  { name: "not present", perms: 0, expect: [RD | FINAL, WR | FINAL, FETCH | FINAL, FETCH | FINAL] },
];
