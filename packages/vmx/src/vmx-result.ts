/**
 * The outcome of a VMX instruction as one number (DESIGN.md §2.8: errors are values):
 *
 *   0       VMsucceed
 *   -1      VMfailInvalid (no current VMCS, so no error number is recorded)
 *   n > 0   VMfailValid(n): n is the VM-instruction error written to the current VMCS
 *
 * (SDM Vol. 3C 31.2 "Conventions" defines the three outcomes and their RFLAGS effects; 31.4 lists
 * the error numbers.)
 */

import { RFLAGS } from "@nestvisor/x86-arch";

export const VMX_RESULT = {
  SUCCEED: 0,
  FAIL_INVALID: -1,
} as const;

/** 0 = VMsucceed, -1 = VMfailInvalid, n > 0 = VMfailValid(n). */
export type VmxResult = number;

/** VMfailValid(error). Throws a RangeError for an error number outside 1..255 (a model bug). */
export function vmfailValid(error: number): VmxResult {
  if (!Number.isInteger(error) || error < 1 || error > 255) {
    throw new RangeError(`VM-instruction error ${error} is not 1..255`);
  }
  return error;
}

export function isVmSucceed(result: VmxResult): boolean {
  return result === VMX_RESULT.SUCCEED;
}

export function isVmFailInvalid(result: VmxResult): boolean {
  return result === VMX_RESULT.FAIL_INVALID;
}

export function isVmFailValid(result: VmxResult): boolean {
  return result > 0;
}

/** The VM-instruction error of a VMfailValid result, else 0. */
export function vmxResultError(result: VmxResult): number {
  return result > 0 ? result : 0;
}

/** "VMsucceed", "VMfailInvalid" or "VMfailValid(n)". */
export function formatVmxResult(result: VmxResult): string {
  if (result === VMX_RESULT.SUCCEED) return "VMsucceed";
  if (result === VMX_RESULT.FAIL_INVALID) return "VMfailInvalid";
  if (Number.isInteger(result) && result > 0) return `VMfailValid(${result})`;
  return `invalid VMX result ${result}`;
}

/** The six arithmetic flags a VMX instruction's outcome defines (SDM 31.2). */
const VMX_STATUS_FLAGS = RFLAGS.CF | RFLAGS.PF | RFLAGS.AF | RFLAGS.ZF | RFLAGS.SF | RFLAGS.OF;

/**
 * RFLAGS (low 32 bits) after an instruction with this outcome (SDM 31.2): VMsucceed clears CF, PF,
 * AF, ZF, SF and OF; VMfailInvalid sets CF and clears the others; VMfailValid sets ZF and clears the
 * others. Other bits are kept.
 */
export function rflagsAfterVmxResult(rflags: number, result: VmxResult): number {
  const kept = (rflags & ~VMX_STATUS_FLAGS) >>> 0;
  if (result === VMX_RESULT.SUCCEED) return kept;
  return (kept | (result === VMX_RESULT.FAIL_INVALID ? RFLAGS.CF : RFLAGS.ZF)) >>> 0;
}
