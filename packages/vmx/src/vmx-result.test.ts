import { RFLAGS } from "@nestvisor/x86-arch";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  formatVmxResult,
  isVmFailInvalid,
  isVmFailValid,
  isVmSucceed,
  rflagsAfterVmxResult,
  VMX_RESULT,
  vmfailValid,
  vmxResultError,
} from "./vmx-result";

describe("VmxResult", () => {
  it("encodes the three outcomes in one number", () => {
    expect(isVmSucceed(VMX_RESULT.SUCCEED)).toBe(true);
    expect(isVmFailInvalid(VMX_RESULT.FAIL_INVALID)).toBe(true);
    expect(isVmFailValid(vmfailValid(12))).toBe(true);
    expect(isVmSucceed(vmfailValid(12))).toBe(false);
    expect(isVmFailValid(VMX_RESULT.FAIL_INVALID)).toBe(false);
    expect(vmxResultError(vmfailValid(13))).toBe(13);
    expect(vmxResultError(VMX_RESULT.FAIL_INVALID)).toBe(0);
    expect(vmxResultError(VMX_RESULT.SUCCEED)).toBe(0);
  });

  it("rejects error numbers outside 1..255", () => {
    expect(() => vmfailValid(0)).toThrow(RangeError);
    expect(() => vmfailValid(256)).toThrow(RangeError);
    expect(() => vmfailValid(2.5)).toThrow(RangeError);
  });

  it("formats as the SDM names the outcomes", () => {
    expect(formatVmxResult(0)).toBe("VMsucceed");
    expect(formatVmxResult(-1)).toBe("VMfailInvalid");
    expect(formatVmxResult(9)).toBe("VMfailValid(9)");
    expect(formatVmxResult(-7)).toBe("invalid VMX result -7");
  });

  it("sets the RFLAGS status flags as SDM 31.2 says", () => {
    const all = RFLAGS.CF | RFLAGS.PF | RFLAGS.AF | RFLAGS.ZF | RFLAGS.SF | RFLAGS.OF;
    const other = 0x202; // IF and the fixed bit 1
    expect(rflagsAfterVmxResult(all | other, VMX_RESULT.SUCCEED)).toBe(other);
    expect(rflagsAfterVmxResult(all | other, VMX_RESULT.FAIL_INVALID)).toBe(other | RFLAGS.CF);
    expect(rflagsAfterVmxResult(other, vmfailValid(4))).toBe(other | RFLAGS.ZF);
  });

  it("never touches flags other than the six status flags (property)", () => {
    const status = RFLAGS.CF | RFLAGS.PF | RFLAGS.AF | RFLAGS.ZF | RFLAGS.SF | RFLAGS.OF;
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: -1, max: 28 }),
        (rflags, result) => {
          const after = rflagsAfterVmxResult(rflags, result);
          expect((after & ~status) >>> 0).toBe((rflags & ~status) >>> 0);
        },
      ),
    );
  });
});
