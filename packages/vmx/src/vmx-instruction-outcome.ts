/**
 * What an emulated VMX instruction does to L1, as one number (DESIGN.md §2.8: errors are values at
 * the architecture boundary). It extends `VmxResult` (vmx-result.ts), whose numbers it keeps:
 *
 *   0        VMsucceed                          (flags updated, instruction skipped)
 *   -1       VMfailInvalid                      (flags updated, instruction skipped)
 *   n > 0    VMfailValid(n)                     (flags updated, n in vmcs12's VM-instruction error)
 *   -2       enter VMX non-root mode: VMLAUNCH/VMRESUME passed its checks; the nested VM entry
 *            proceeds and the instruction completes only at the next nested VM exit (no flags)
 *   ≤ -0x100 a fault delivered to L1 instead: -(0x100 + vector); the instruction is not skipped and
 *            RFLAGS is not touched. KVM raises #UD and #GP(0) itself (kvm: nested_vmx_check_permission,
 *            handle_vmxon); a memory operand can also fault (#GP(0), #SS(0), #PF), whose details
 *            (error code, CR2) stay with whoever accessed the operand.
 */

import { VECTOR } from "@nestvisor/x86-arch";
import { formatVmxResult, VMX_RESULT } from "./vmx-result";

/** An emulated VMX instruction's outcome (see the file comment for the encoding). */
export type VmxOutcome = number;

/** Faults are encoded as -(FAULT_BASE + vector). */
const FAULT_BASE = 0x100;

/** The outcomes that have a name. A fault of any other vector is `vmxFaultOutcome(vector)`. */
export const VMX_OUTCOME = {
  SUCCEED: VMX_RESULT.SUCCEED,
  FAIL_INVALID: VMX_RESULT.FAIL_INVALID,
  /** VMLAUNCH/VMRESUME passed the pre-checks: the nested VM entry takes over (kvm: nested_vmx_run). */
  ENTER_NON_ROOT: -2,
  /** #UD (kvm: kvm_queue_exception(vcpu, UD_VECTOR)). */
  UD: -(FAULT_BASE + VECTOR.UD),
  /** #GP(0) (kvm: kvm_inject_gp(vcpu, 0)). */
  GP: -(FAULT_BASE + VECTOR.GP),
  /** #SS(0): a memory operand addressed through SS failed its checks (kvm: get_vmx_mem_address). */
  SS: -(FAULT_BASE + VECTOR.SS),
  /** #PF: a memory operand's page is not mapped (kvm: kvm_handle_memory_failure). */
  PF: -(FAULT_BASE + VECTOR.PF),
} as const;

/** The outcome "fault with this vector (0..31)". Throws a RangeError for another vector (a model bug). */
export function vmxFaultOutcome(vector: number): VmxOutcome {
  if (!Number.isInteger(vector) || vector < 0 || vector > 31) {
    throw new RangeError(`exception vector ${vector} is not 0..31`);
  }
  return -(FAULT_BASE + vector);
}

/** True for a fault outcome. */
export function isVmxFault(outcome: VmxOutcome): boolean {
  return outcome <= -FAULT_BASE;
}

/** The vector of a fault outcome, or -1 for any other outcome. */
export function vmxOutcomeFaultVector(outcome: VmxOutcome): number {
  return outcome <= -FAULT_BASE ? -outcome - FAULT_BASE : -1;
}

/**
 * True when the outcome is a `VmxResult` (VMsucceed, VMfailInvalid or VMfailValid): the instruction
 * retired with its flags set and L1 resumes after it (kvm: kvm_skip_emulated_instruction).
 */
export function isVmxResultOutcome(outcome: VmxOutcome): boolean {
  return outcome >= VMX_RESULT.FAIL_INVALID;
}

/** "VMsucceed", "VMfailInvalid", "VMfailValid(n)", "enter non-root mode" or "#UD", "#GP(0)", … */
export function formatVmxOutcome(outcome: VmxOutcome): string {
  if (isVmxResultOutcome(outcome)) return formatVmxResult(outcome);
  if (outcome === VMX_OUTCOME.ENTER_NON_ROOT) return "enter non-root mode";
  switch (outcome) {
    case VMX_OUTCOME.GP:
      return "#GP(0)";
    case VMX_OUTCOME.SS:
      return "#SS(0)";
    case VMX_OUTCOME.UD:
      return "#UD";
    case VMX_OUTCOME.PF:
      return "#PF";
  }
  if (isVmxFault(outcome) && vmxOutcomeFaultVector(outcome) <= 31) {
    return `fault (vector ${vmxOutcomeFaultVector(outcome)})`;
  }
  return `invalid VMX outcome ${outcome}`;
}
