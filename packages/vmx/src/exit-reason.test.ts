import { decodeRegister, definedMask, encodeRegister } from "@nestvisor/x86-arch";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  decodeExitReason,
  EXIT_REASON,
  EXIT_REASON_FIELD,
  EXIT_REASON_LAYOUT,
  EXIT_REASON_NOT_NAMED_BY_KVM,
  EXIT_REASONS,
  exitReasonInfo,
  exitReasonName,
  exitReasonNumber,
  formatExitReason,
  VMX_EXIT_REASONS_FAILED_VMENTRY,
  VMX_EXIT_REASONS_SGX_ENCLAVE_MODE,
} from "./exit-reason";

const u32 = fc.integer({ min: 0, max: 0xffffffff });

describe("basic exit reasons", () => {
  it("KVM 6.12 names 62 reasons; the SDM adds the unnamed ones without collisions", () => {
    expect(Object.keys(EXIT_REASON)).toHaveLength(62);
    expect(EXIT_REASONS.filter((r) => r.kvm)).toHaveLength(62);
    const numbers = EXIT_REASONS.map((r) => r.number);
    expect(new Set(numbers).size).toBe(numbers.length);
    expect([...numbers].sort((a, b) => a - b)).toEqual(numbers);
    for (const n of [35, 38, 42]) expect(exitReasonName(n)).toBeUndefined();
    expect(Math.max(...numbers)).toBe(77);
    // 0..77 minus the three undefined numbers.
    expect(numbers).toHaveLength(78 - 3);
  });

  it("marks the reasons KVM does not name", () => {
    for (const n of [5, 6, 11, 17, 65, 66, 69, 70, 71, 72, 73, 76, 77]) {
      expect(exitReasonInfo(n)?.kvm, String(n)).toBe(false);
    }
    expect(exitReasonInfo(EXIT_REASON_NOT_NAMED_BY_KVM.GETSEC)?.name).toBe("GETSEC");
    expect(exitReasonInfo(EXIT_REASON.NOTIFY)).toMatchObject({ number: 75, name: "NOTIFY", kvm: true });
    for (const r of EXIT_REASONS) expect(r.description.length, r.name).toBeGreaterThan(0);
  });

  it("spot-checks numbers against uapi/asm/vmx.h", () => {
    expect(EXIT_REASON.INTERRUPT_WINDOW).toBe(7);
    expect(EXIT_REASON.CR_ACCESS).toBe(28);
    expect(EXIT_REASON.INVALID_STATE).toBe(33);
    expect(EXIT_REASON.MSR_LOAD_FAIL).toBe(34);
    expect(EXIT_REASON.EPT_VIOLATION).toBe(48);
    expect(EXIT_REASON.PML_FULL).toBe(62);
    expect(EXIT_REASON.BUS_LOCK).toBe(74);
  });
});

describe("names and numbers", () => {
  it("looks names up case-insensitively, with or without EXIT_REASON_", () => {
    expect(exitReasonNumber("HLT")).toBe(12);
    expect(exitReasonNumber("exit_reason_hlt")).toBe(12);
    expect(exitReasonNumber(" Ept_Violation ")).toBe(48);
    expect(exitReasonNumber("EXIT_REASON_GETSEC")).toBe(11);
    expect(exitReasonNumber("NO_SUCH_EXIT")).toBeUndefined();
  });

  it("accepts the 2019 name of reason 7", () => {
    expect(exitReasonNumber("PENDING_INTERRUPT")).toBe(7);
    expect(exitReasonNumber("EXIT_REASON_PENDING_INTERRUPT")).toBe(7);
    expect(exitReasonName(7)).toBe("INTERRUPT_WINDOW");
  });

  it("name and number are inverse over every known reason", () => {
    for (const r of EXIT_REASONS) {
      expect(exitReasonNumber(r.name)).toBe(r.number);
      expect(exitReasonName(r.number)).toBe(r.name);
    }
  });
});

describe("exit-reason field", () => {
  it("decodes 0x80000021 as a VM-entry failure for invalid guest state", () => {
    const d = decodeExitReason(0x80000021);
    expect(d).toMatchObject({ basic: 33, name: "INVALID_STATE", kvmNamed: true, failedVmentry: true });
    expect(d.enclaveMode || d.pendingMtf || d.fromVmxRoot || d.busLockDetected).toBe(false);
    expect(formatExitReason(0x80000021)).toBe("0x80000021 INVALID_STATE [VM-entry failure]");
    expect(VMX_EXIT_REASONS_FAILED_VMENTRY | EXIT_REASON.INVALID_STATE).toBe(0x80000021 | 0);
  });

  it("keeps unknown basic reasons as numbers", () => {
    const d = decodeExitReason(0x0800ffff);
    expect(d).toMatchObject({ basic: 0xffff, name: undefined, kvmNamed: false, enclaveMode: true });
    expect(formatExitReason(0x0800ffff)).toBe("0x0800ffff 65535 [enclave]");
    expect(decodeExitReason(35).name).toBeUndefined();
    expect(VMX_EXIT_REASONS_SGX_ENCLAVE_MODE).toBe(0x08000000);
  });

  it("agrees with its layout and round-trips", () => {
    fc.assert(
      fc.property(u32, (v) => {
        const d = decodeExitReason(v);
        const f = decodeRegister(EXIT_REASON_LAYOUT, v).fields;
        expect(f).toEqual({
          BASIC: d.basic,
          BUS_LOCK_DETECTED: d.busLockDetected,
          ENCLAVE_MODE: d.enclaveMode,
          PENDING_MTF: d.pendingMtf,
          FROM_VMX_ROOT: d.fromVmxRoot,
          FAILED_VMENTRY: d.failedVmentry,
        });
        expect(encodeRegister(EXIT_REASON_LAYOUT, f)).toBe(BigInt(v) & definedMask(EXIT_REASON_LAYOUT));
      }),
    );
    expect(EXIT_REASON_FIELD.FROM_VMX_ROOT).toBe(1 << 29);
  });
});
