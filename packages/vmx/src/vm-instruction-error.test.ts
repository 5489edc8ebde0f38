import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  KVM_NESTED_VM_INSTRUCTION_ERRORS,
  VM_INSTRUCTION_ERROR,
  VM_INSTRUCTION_ERRORS,
  vmInstructionErrorInfo,
  vmInstructionErrorName,
  vmInstructionErrorNumber,
} from "./vm-instruction-error";

describe("VM-instruction error numbers (SDM 31.4)", () => {
  it("lists 1–28 in order", () => {
    expect(VM_INSTRUCTION_ERRORS.map((e) => e.number)).toEqual(Array.from({ length: 28 }, (_, i) => i + 1));
    expect(Object.values(VM_INSTRUCTION_ERROR)).toEqual(VM_INSTRUCTION_ERRORS.map((e) => e.number));
    for (const e of VM_INSTRUCTION_ERRORS) expect(e.description.length).toBeGreaterThan(0);
  });

  it("KVM's enum defines 25 of them; 14, 21 and 27 are reserved", () => {
    const defined = VM_INSTRUCTION_ERRORS.filter((e) => e.kvmName !== undefined);
    expect(defined).toHaveLength(25);
    expect(VM_INSTRUCTION_ERRORS.filter((e) => e.reserved).map((e) => e.number)).toEqual([14, 21, 27]);
    expect(new Set(defined.map((e) => e.kvmName)).size).toBe(25);
    for (const e of defined) expect(e.kvmName?.startsWith("VMXERR_")).toBe(true);
    expect(vmInstructionErrorInfo(7)?.kvmName).toBe("VMXERR_ENTRY_INVALID_CONTROL_FIELD");
    expect(vmInstructionErrorInfo(28)?.kvmName).toBe("VMXERR_INVALID_OPERAND_TO_INVEPT_INVVPID");
  });

  it("KVM's nVMX raises exactly the kvm-vmx.md §12 set", () => {
    expect(KVM_NESTED_VM_INSTRUCTION_ERRORS).toEqual([2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 13, 15, 26, 28]);
    expect(vmInstructionErrorInfo(26)?.raisedByKvmNested).toBe("nested_vmx_run");
    expect(vmInstructionErrorInfo(1)?.raisedByKvmNested).toBeUndefined();
  });

  it("looks names up both ways", () => {
    expect(vmInstructionErrorName(11)).toBe("VMPTRLD_BAD_REVISION_ID");
    expect(vmInstructionErrorNumber("vmptrld_bad_revision_id")).toBe(11);
    expect(vmInstructionErrorNumber("VMXERR_VMPTRLD_INCORRECT_VMCS_REVISION_ID")).toBe(11);
    expect(vmInstructionErrorNumber("entry_events_blocked_by_mov_ss")).toBe(26);
    expect(vmInstructionErrorNumber("VMXON_IN_VMX_ROOT_OPERATION")).toBe(15);
    expect(vmInstructionErrorNumber("bogus")).toBeUndefined();
    for (const e of VM_INSTRUCTION_ERRORS) {
      expect(vmInstructionErrorNumber(e.name)).toBe(e.number);
      if (e.kvmName !== undefined) expect(vmInstructionErrorNumber(e.kvmName)).toBe(e.number);
    }
  });

  it("has no record outside 1–28", () => {
    fc.assert(
      fc.property(fc.integer({ min: -1000, max: 1000 }), (n) => {
        expect(vmInstructionErrorInfo(n) !== undefined).toBe(n >= 1 && n <= 28);
      }),
    );
    expect(vmInstructionErrorInfo(1.5)).toBeUndefined();
  });
});
