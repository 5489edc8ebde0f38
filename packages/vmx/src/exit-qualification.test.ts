import { decodeRegister, definedMask, encodeRegister, type RegisterLayout } from "@nestvisor/x86-arch";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  APIC_ACCESS_QUAL_LAYOUT,
  CR_ACCESS_QUAL_LAYOUT,
  CR_ACCESS_TYPE,
  type CrAccessType,
  DEBUG_QUAL,
  DEBUG_QUAL_LAYOUT,
  DR_ACCESS_QUAL,
  DR_ACCESS_QUAL_LAYOUT,
  decodeCrAccessQualification,
  decodeInterruptionInfo,
  decodeIoQualification,
  decodeVmxInstructionInfo,
  describeCrAccess,
  describeInterruptionInfo,
  describeIo,
  describeVmxInstructionOperand,
  displacementQualification,
  ENTRY_FAIL,
  EPT_VIOLATION_QUAL,
  EPT_VIOLATION_QUAL_LAYOUT,
  EVENT_TYPE,
  type EventType,
  encodeCrAccessQualification,
  encodeInterruptionInfo,
  encodeIoQualification,
  encodeVmxInstructionInfo,
  exitQualificationLayout,
  IDT_VECTORING_INFO_LAYOUT,
  INTR_INFO,
  IO_INSTRUCTION_INFO_LAYOUT,
  IO_QUAL_LAYOUT,
  linearAddressQualification,
  TASK_SWITCH_QUAL_LAYOUT,
  TASK_SWITCH_SOURCE,
  VM_ENTRY_INTR_INFO_LAYOUT,
  VM_EXIT_INTR_INFO_LAYOUT,
  VMX_ABORT,
  VMX_INSTRUCTION_INFO_LAYOUT,
} from "./exit-qualification";
import { EXIT_REASON } from "./exit-reason";

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });

const ALL_LAYOUTS: readonly RegisterLayout[] = [
  CR_ACCESS_QUAL_LAYOUT,
  DR_ACCESS_QUAL_LAYOUT,
  IO_QUAL_LAYOUT,
  DEBUG_QUAL_LAYOUT,
  TASK_SWITCH_QUAL_LAYOUT,
  VMX_INSTRUCTION_INFO_LAYOUT,
  IO_INSTRUCTION_INFO_LAYOUT,
  VM_EXIT_INTR_INFO_LAYOUT,
  IDT_VECTORING_INFO_LAYOUT,
  VM_ENTRY_INTR_INFO_LAYOUT,
  EPT_VIOLATION_QUAL_LAYOUT,
  APIC_ACCESS_QUAL_LAYOUT,
];

describe("layouts", () => {
  it("have no overlapping fields and fit their width", () => {
    for (const layout of ALL_LAYOUTS) {
      let seen = 0n;
      for (const f of layout.fields) {
        const mask = ((1n << BigInt(f.width)) - 1n) << BigInt(f.lsb);
        expect(seen & mask, `${layout.name}.${f.name}`).toBe(0n);
        expect(f.lsb + f.width, `${layout.name}.${f.name}`).toBeLessThanOrEqual(layout.width);
        seen |= mask;
      }
    }
  });

  it("decode/encode round-trips every layout", () => {
    fc.assert(
      fc.property(u64, (v) => {
        for (const layout of ALL_LAYOUTS) {
          const value = layout.width === 32 ? v & 0xffffffffn : v;
          const d = decodeRegister(layout, value);
          expect(encodeRegister(layout, d.fields)).toBe(value & definedMask(layout));
        }
      }),
    );
  });

  it("maps exit reasons with a fixed qualification format to their layout", () => {
    expect(exitQualificationLayout(EXIT_REASON.CR_ACCESS)).toBe(CR_ACCESS_QUAL_LAYOUT);
    expect(exitQualificationLayout(EXIT_REASON.DR_ACCESS)).toBe(DR_ACCESS_QUAL_LAYOUT);
    expect(exitQualificationLayout(EXIT_REASON.IO_INSTRUCTION)).toBe(IO_QUAL_LAYOUT);
    expect(exitQualificationLayout(EXIT_REASON.TASK_SWITCH)).toBe(TASK_SWITCH_QUAL_LAYOUT);
    expect(exitQualificationLayout(EXIT_REASON.EPT_VIOLATION)).toBe(EPT_VIOLATION_QUAL_LAYOUT);
    expect(exitQualificationLayout(EXIT_REASON.APIC_ACCESS)).toBe(APIC_ACCESS_QUAL_LAYOUT);
    expect(exitQualificationLayout(EXIT_REASON.HLT)).toBeUndefined();
  });
});

describe("control-register accesses", () => {
  it("decodes 0x4 as MOV to CR4 from RAX", () => {
    expect(decodeCrAccessQualification(0x4)).toEqual({
      cr: 4,
      accessType: CR_ACCESS_TYPE.MOV_TO_CR,
      lmswMemory: false,
      gpr: 0,
      lmswSource: 0,
    });
    expect(describeCrAccess(0x4)).toBe("MOV to CR4 from RAX");
  });

  it("describes MOV from CR, CLTS and LMSW", () => {
    expect(describeCrAccess(0x313)).toBe("MOV from CR3 to RBX");
    // SDM Table 28-3: only CR0, CR3, CR4 and CR8 accesses exit.
    expect(describeCrAccess(0x1)).toBe("MOV to CR1 (no such exit) from RAX");
    expect(describeCrAccess(0x8)).toBe("MOV to CR8 from RAX");
    expect(describeCrAccess(0xf08)).toBe("MOV to CR8 from R15");
    expect(describeCrAccess(0x20)).toBe("CLTS");
    expect(describeCrAccess(0x00010030)).toBe("LMSW 0x0001 from a register");
    expect(describeCrAccess(0x00010070)).toBe("LMSW 0x0001 from memory");
  });

  it("encode/decode round-trip and agree with the layout", () => {
    const arb = fc.record({
      cr: fc.integer({ min: 0, max: 15 }),
      accessType: fc.constantFrom<CrAccessType>(0, 1, 2, 3),
      lmswMemory: fc.boolean(),
      gpr: fc.integer({ min: 0, max: 15 }),
      lmswSource: fc.integer({ min: 0, max: 0xffff }),
    });
    fc.assert(
      fc.property(arb, (q) => {
        const v = encodeCrAccessQualification(q);
        expect(decodeCrAccessQualification(v)).toEqual(q);
        expect(decodeRegister(CR_ACCESS_QUAL_LAYOUT, v).fields).toEqual({
          CR_NUM: q.cr,
          ACCESS_TYPE: q.accessType,
          LMSW_MEMORY: q.lmswMemory,
          GPR: q.gpr,
          LMSW_SOURCE: q.lmswSource,
        });
      }),
    );
  });
});

describe("MOV DR", () => {
  it("decodes direction and registers", () => {
    // mov %dr7, %rcx: DR7, MOV from DR, RCX.
    const f = decodeRegister(DR_ACCESS_QUAL_LAYOUT, 7 | DR_ACCESS_QUAL.MOV_FROM_DR | (1 << 8)).fields;
    expect(f).toEqual({ DR_NUM: 7, MOV_FROM_DR: true, GPR: 1 });
  });
});

describe("I/O instructions", () => {
  it("encodes out %al, $0x80 as 0x00800040", () => {
    const q = { bytes: 1, in: false, string: false, rep: false, immediate: true, port: 0x80 };
    expect(encodeIoQualification(q)).toBe(0x00800040);
    expect(decodeIoQualification(0x00800040)).toEqual(q);
    expect(describeIo(0x00800040)).toBe("OUT byte to port 0x80 (immediate)");
  });

  it("decodes in (%dx), %eax and rep outsb", () => {
    expect(decodeIoQualification(0x0cfc000b)).toEqual({
      bytes: 4,
      in: true,
      string: false,
      rep: false,
      immediate: false,
      port: 0xcfc,
    });
    expect(describeIo(0x03f80030)).toBe("REP OUTS byte to port 0x3f8 (DX)");
    expect(decodeIoQualification(2).bytes).toBe(0);
    expect(() =>
      encodeIoQualification({ bytes: 3, in: false, string: false, rep: false, immediate: false, port: 0 }),
    ).toThrow(RangeError);
  });

  it("encode/decode round-trip", () => {
    const arb = fc.record({
      bytes: fc.constantFrom(1, 2, 4),
      in: fc.boolean(),
      string: fc.boolean(),
      rep: fc.boolean(),
      immediate: fc.boolean(),
      port: fc.integer({ min: 0, max: 0xffff }),
    });
    fc.assert(
      fc.property(arb, (q) => {
        const v = encodeIoQualification(q);
        expect(decodeIoQualification(v)).toEqual(q);
        expect(decodeRegister(IO_QUAL_LAYOUT, v).fields.PORT).toBe(q.port);
      }),
    );
  });
});

describe("debug exceptions and task switches", () => {
  it("decodes a single-step #DB and a breakpoint hit", () => {
    expect(decodeRegister(DEBUG_QUAL_LAYOUT, DEBUG_QUAL.BS).fields).toMatchObject({ BS: true, B0: false });
    expect(decodeRegister(DEBUG_QUAL_LAYOUT, DEBUG_QUAL.B2 | DEBUG_QUAL.RTM).fields).toMatchObject({
      B2: true,
      RTM: true,
      BD: false,
    });
  });

  it("decodes an IRET task switch to selector 0x28", () => {
    const v = ((TASK_SWITCH_SOURCE.IRET << 30) | 0x28) >>> 0;
    expect(v).toBe(0x40000028);
    expect(decodeRegister(TASK_SWITCH_QUAL_LAYOUT, v).fields).toEqual({ TSS_SELECTOR: 0x28, SOURCE: 1 });
  });
});

describe("linear addresses and displacements", () => {
  it("INVLPG qualification is the full linear address", () => {
    expect(linearAddressQualification(0x12345000, 0xffff8000)).toBe(0xffff800012345000n);
  });

  it("displacements are sign-extended", () => {
    expect(displacementQualification(0xfffffff8)).toBe(-8);
    expect(displacementQualification(0x10)).toBe(16);
  });
});

describe("VMX instruction information", () => {
  it("decodes vmptrld (%rax) in 64-bit mode", () => {
    const v = 0x00418100;
    expect(decodeVmxInstructionInfo(v)).toEqual({
      scaling: 0,
      reg1: 0,
      addressSize: 2,
      registerOperand: false,
      segment: 3,
      indexReg: 0,
      indexValid: false,
      baseReg: 0,
      baseValid: true,
      reg2: 0,
    });
    expect(describeVmxInstructionOperand(v)).toBe("DS:[RAX+disp]");
  });

  it("decodes a register-form vmread %rdx, %rax and scaled 32-bit operands", () => {
    expect(decodeVmxInstructionInfo(0x20000500)).toMatchObject({ registerOperand: true, reg1: 0, reg2: 2 });
    expect(describeVmxInstructionOperand(0x20000500)).toBe("register RAX");
    const scaled = encodeVmxInstructionInfo({
      scaling: 2,
      reg1: 0,
      addressSize: 1,
      registerOperand: false,
      segment: 2,
      indexReg: 1,
      indexValid: true,
      baseReg: 9,
      baseValid: true,
      reg2: 0,
    });
    expect(describeVmxInstructionOperand(scaled)).toBe("SS:[R9D+ECX*4+disp]");
  });

  it("encode/decode round-trip and agree with the layout", () => {
    fc.assert(
      fc.property(u32, (raw) => {
        const d = decodeVmxInstructionInfo(raw);
        const defined = Number(definedMask(VMX_INSTRUCTION_INFO_LAYOUT));
        expect(encodeVmxInstructionInfo(d)).toBe((raw & defined) >>> 0);
        const f = decodeRegister(VMX_INSTRUCTION_INFO_LAYOUT, raw).fields;
        expect(f).toEqual({
          SCALING: d.scaling,
          REG1: d.reg1,
          ADDRESS_SIZE: d.addressSize,
          REG: d.registerOperand,
          SEGMENT: d.segment,
          INDEX: d.indexReg,
          INDEX_INVALID: !d.indexValid,
          BASE: d.baseReg,
          BASE_INVALID: !d.baseValid,
          REG2: d.reg2,
        });
      }),
    );
  });
});

describe("interruption information", () => {
  it("decodes a #PF hardware exception with error code: 0x80000b0e", () => {
    expect(decodeInterruptionInfo(0x80000b0e)).toEqual({
      vector: 14,
      type: EVENT_TYPE.HWEXC,
      errorCodeValid: true,
      nmiUnblocking: false,
      valid: true,
    });
    expect(describeInterruptionInfo(0x80000b0e)).toBe("hardware exception #PF (14) with error code");
  });

  it("describes external interrupts, NMIs, software interrupts and invalid fields", () => {
    expect(describeInterruptionInfo(0x80000020)).toBe("external interrupt vector 32");
    expect(describeInterruptionInfo(0x80000202)).toBe("NMI vector 2");
    expect(describeInterruptionInfo(0x80000480)).toBe("software interrupt vector 128");
    expect(describeInterruptionInfo(0x80000603)).toBe("software exception #BP (3)");
    expect(describeInterruptionInfo(0x80001301)).toBe("hardware exception #DB (1) NMI unblocking");
    expect(describeInterruptionInfo(0x0000030e)).toBe("invalid");
    expect(INTR_INFO.INTR_INFO_RESVD_BITS_MASK).toBe(0x7ffff000);
  });

  it("encode/decode round-trip and agree with the three layouts", () => {
    const arb = fc.record({
      vector: fc.integer({ min: 0, max: 255 }),
      type: fc.constantFrom<EventType>(0, 1, 2, 3, 4, 5, 6, 7),
      errorCodeValid: fc.boolean(),
      nmiUnblocking: fc.boolean(),
      valid: fc.boolean(),
    });
    fc.assert(
      fc.property(arb, (i) => {
        const v = encodeInterruptionInfo(i);
        expect(decodeInterruptionInfo(v)).toEqual(i);
        expect(decodeRegister(VM_EXIT_INTR_INFO_LAYOUT, v).fields).toEqual({
          VECTOR: i.vector,
          TYPE: i.type,
          ERROR_CODE_VALID: i.errorCodeValid,
          NMI_UNBLOCKING: i.nmiUnblocking,
          VALID: i.valid,
        });
        // Bit 12 is undefined in IDT-vectoring info and reserved in VM-entry info.
        const expectedUndefined = i.nmiUnblocking ? 0x1000n : 0n;
        expect(decodeRegister(IDT_VECTORING_INFO_LAYOUT, v).undefinedBits).toBe(expectedUndefined);
        expect(decodeRegister(VM_ENTRY_INTR_INFO_LAYOUT, v).undefinedBits).toBe(expectedUndefined);
      }),
    );
  });
});

describe("EPT violations", () => {
  it("KVM's bit names cover every bit of the SDM layout, in order", () => {
    const bits = Object.values(EPT_VIOLATION_QUAL);
    expect(bits).toEqual(EPT_VIOLATION_QUAL_LAYOUT.fields.map((f) => 2 ** f.lsb));
  });

  it("decodes 0x181: read of a not-present page while translating a valid linear address", () => {
    const f = decodeRegister(EPT_VIOLATION_QUAL_LAYOUT, 0x181).fields;
    expect(f).toMatchObject({ RD: true, GLA: true, FINAL: true, R: false });
  });
});

describe("VM-entry failure codes and VMX aborts", () => {
  it("have the SDM/KVM values", () => {
    expect(ENTRY_FAIL).toEqual({
      ENTRY_FAIL_DEFAULT: 0,
      ENTRY_FAIL_PDPTE: 2,
      ENTRY_FAIL_NMI: 3,
      ENTRY_FAIL_VMCS_LINK_PTR: 4,
    });
    expect(VMX_ABORT.VMX_ABORT_SAVE_GUEST_MSR_FAIL).toBe(1);
    expect(VMX_ABORT.VMX_ABORT_LOAD_HOST_PDPTE_FAIL).toBe(2);
    expect(VMX_ABORT.VMX_ABORT_LOAD_HOST_MSR_FAIL).toBe(4);
  });
});
