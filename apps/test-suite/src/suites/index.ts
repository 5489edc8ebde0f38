import type { Suite } from "../suite";
import { ACCESS_SUITE } from "./access-suite";
import { AUDIT_SUITE } from "./audit-suite";
import { DIFFERENTIAL_SUITE } from "./differential-suite";
import { EPT_SUITE } from "./ept-suite";
import { MMU_SUITE } from "./mmu-suite";
import { NESTED_SUITE } from "./nested-suite";
import { SHADOW_VMCS_SUITE } from "./shadow-vmcs-suite";
import { VMX_CHECKS_SUITE } from "./vmx-checks-suite";
import { VMX_SUITE } from "./vmx-suite";

/** Every suite, in the order a run executes them (issue 7's list). */
export const SUITES: readonly Suite[] = Object.freeze([
  ACCESS_SUITE,
  VMX_SUITE,
  VMX_CHECKS_SUITE,
  SHADOW_VMCS_SUITE,
  EPT_SUITE,
  MMU_SUITE,
  NESTED_SUITE,
  DIFFERENTIAL_SUITE,
  AUDIT_SUITE,
]);

export {
  ACCESS_SUITE,
  AUDIT_SUITE,
  DIFFERENTIAL_SUITE,
  EPT_SUITE,
  MMU_SUITE,
  NESTED_SUITE,
  SHADOW_VMCS_SUITE,
  VMX_CHECKS_SUITE,
  VMX_SUITE,
};
