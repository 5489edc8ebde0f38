import { VECTOR } from "@nestvisor/x86-arch";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  formatVmxOutcome,
  isVmxFault,
  isVmxResultOutcome,
  VMX_OUTCOME,
  vmxFaultOutcome,
  vmxOutcomeFaultVector,
} from "./vmx-instruction-outcome";
import { VMX_RESULT } from "./vmx-result";

describe("VmxOutcome", () => {
  it("keeps the VmxResult numbers for the three VMX results", () => {
    expect(VMX_OUTCOME.SUCCEED).toBe(VMX_RESULT.SUCCEED);
    expect(VMX_OUTCOME.FAIL_INVALID).toBe(VMX_RESULT.FAIL_INVALID);
    for (const outcome of [VMX_OUTCOME.SUCCEED, VMX_OUTCOME.FAIL_INVALID, 12, 28]) {
      expect(isVmxResultOutcome(outcome)).toBe(true);
      expect(isVmxFault(outcome)).toBe(false);
    }
    expect(isVmxResultOutcome(VMX_OUTCOME.ENTER_NON_ROOT)).toBe(false);
    expect(isVmxFault(VMX_OUTCOME.ENTER_NON_ROOT)).toBe(false);
  });

  it("encodes faults by vector, distinct from every other outcome (property)", () => {
    expect(VMX_OUTCOME.UD).toBe(vmxFaultOutcome(VECTOR.UD));
    expect(VMX_OUTCOME.GP).toBe(vmxFaultOutcome(VECTOR.GP));
    expect(vmxOutcomeFaultVector(VMX_OUTCOME.PF)).toBe(VECTOR.PF);
    expect(vmxOutcomeFaultVector(VMX_OUTCOME.SUCCEED)).toBe(-1);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 31 }), (vector) => {
        const outcome = vmxFaultOutcome(vector);
        expect(isVmxFault(outcome)).toBe(true);
        expect(isVmxResultOutcome(outcome)).toBe(false);
        expect(outcome).not.toBe(VMX_OUTCOME.ENTER_NON_ROOT);
        expect(vmxOutcomeFaultVector(outcome)).toBe(vector);
      }),
    );
    expect(() => vmxFaultOutcome(32)).toThrow(RangeError);
    expect(() => vmxFaultOutcome(-1)).toThrow(RangeError);
  });

  it("formats every kind of outcome", () => {
    expect(formatVmxOutcome(VMX_OUTCOME.SUCCEED)).toBe("VMsucceed");
    expect(formatVmxOutcome(VMX_OUTCOME.FAIL_INVALID)).toBe("VMfailInvalid");
    expect(formatVmxOutcome(26)).toBe("VMfailValid(26)");
    expect(formatVmxOutcome(VMX_OUTCOME.ENTER_NON_ROOT)).toBe("enter non-root mode");
    expect(formatVmxOutcome(VMX_OUTCOME.UD)).toBe("#UD");
    expect(formatVmxOutcome(VMX_OUTCOME.GP)).toBe("#GP(0)");
    expect(formatVmxOutcome(VMX_OUTCOME.SS)).toBe("#SS(0)");
    expect(formatVmxOutcome(VMX_OUTCOME.PF)).toBe("#PF");
    expect(formatVmxOutcome(vmxFaultOutcome(VECTOR.AC))).toBe("fault (vector 17)");
    expect(formatVmxOutcome(-3)).toBe("invalid VMX outcome -3");
  });
});
