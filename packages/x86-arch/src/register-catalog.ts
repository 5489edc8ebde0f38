import type { RegisterLayout } from "./bit-register";
import { CR0_LAYOUT } from "./cr0";
import { CR3_LAYOUT, CR3_PCID_LAYOUT } from "./cr3";
import { CR4_LAYOUT } from "./cr4";
import { DEBUGCTL_LAYOUT } from "./debugctl";
import { DR7_LAYOUT } from "./dr7";
import { EFER_LAYOUT } from "./efer";
import { EPT_VPID_CAP_LAYOUT } from "./ept-capabilities";
import { EPT_ENTRY_LAYOUT } from "./ept-entry";
import { EPTP_LAYOUT } from "./ept-pointer";
import { EPT_VIOLATION_LAYOUT } from "./ept-violation";
import { PFERR_LAYOUT } from "./page-fault";
import { PTE32_LAYOUT, PTE64_LAYOUT } from "./paging-entry";
import { PKRS_LAYOUT, PKRU_LAYOUT } from "./protection-key-rights";
import { RFLAGS_LAYOUT } from "./rflags";
import { SEGMENT_AR_LAYOUT } from "./segment-access-rights";
import { XCR0_LAYOUT } from "./xcr0";

/** Layouts (registers and architectural formats) by the names a person types (e.g. `nestvisor decode cr4 0x3406e0`), in display order. */
const LAYOUTS: ReadonlyMap<string, RegisterLayout> = new Map([
  ["cr0", CR0_LAYOUT],
  ["cr3", CR3_LAYOUT],
  ["cr3-pcid", CR3_PCID_LAYOUT],
  ["cr4", CR4_LAYOUT],
  ["efer", EFER_LAYOUT],
  ["rflags", RFLAGS_LAYOUT],
  ["xcr0", XCR0_LAYOUT],
  ["pkru", PKRU_LAYOUT],
  ["pkrs", PKRS_LAYOUT],
  ["segment-ar", SEGMENT_AR_LAYOUT],
  ["dr7", DR7_LAYOUT],
  ["debugctl", DEBUGCTL_LAYOUT],
  ["pferr", PFERR_LAYOUT],
  ["pte", PTE64_LAYOUT],
  ["pte32", PTE32_LAYOUT],
  ["eptp", EPTP_LAYOUT],
  ["ept-entry", EPT_ENTRY_LAYOUT],
  ["ept-violation", EPT_VIOLATION_LAYOUT],
  ["ept-vpid-cap", EPT_VPID_CAP_LAYOUT],
]);

const NAMES: readonly string[] = Object.freeze([...LAYOUTS.keys()]);

/** The names `registerLayout` accepts, in display order. */
export function registerNames(): readonly string[] {
  return NAMES;
}

/** The layout for a register name (case-insensitive); an unknown name is a RangeError listing the valid ones. */
export function registerLayout(name: string): RegisterLayout {
  const layout = LAYOUTS.get(name.trim().toLowerCase());
  if (layout === undefined) {
    throw new RangeError(`unknown register "${name}"; known registers: ${NAMES.join(", ")}`);
  }
  return layout;
}
