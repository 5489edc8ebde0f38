import { decodeRegister, definedMask, encodeRegister, type RegisterLayout } from "@nestvisor/x86-arch";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  ALWAYSON_WITHOUT_TRUE_MSR,
  CONTROL_CLASSES,
  CONTROL_NAMES_2019,
  CONTROLS_2019,
  CONTROLS_NOT_NAMED_BY_KVM,
  CPU_BASED_CTLS,
  encodeVmxBasic,
  findControl,
  PIN_BASED_CTLS,
  SECONDARY_EXEC_CTLS,
  VM_ENTRY_CTLS,
  VM_EXIT_CTLS,
  VMX_BASIC_HI,
  VMX_BASIC_LAYOUT,
  VMX_BASIC_MEM_TYPE,
  VMX_MISC,
  VMX_MISC_LAYOUT,
  vmxBasicMemType,
  vmxBasicRevision,
  vmxBasicVmcsSize,
  vmxMiscCr3Count,
  vmxMiscMaxMsrListEntries,
  vmxMiscPreemptionTimerRate,
} from "./controls";

function maskOfBits(bits: readonly number[]): number {
  return bits.reduce((m, b) => (m | (2 ** b)) >>> 0, 0);
}

function roundTrips(layout: RegisterLayout, value: bigint): void {
  const decoded = decodeRegister(layout, value);
  expect(encodeRegister(layout, decoded.fields)).toBe(value & definedMask(layout));
  expect(decoded.undefinedBits).toBe(value & ~definedMask(layout));
}

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });

describe("control bits", () => {
  it("each numeric object and its layout agree bit for bit", () => {
    for (const info of Object.values(CONTROL_CLASSES)) {
      const names = info.layout.fields.map((f) => f.name).sort();
      expect(Object.keys(info.bits).sort()).toEqual(names);
      for (const [name, mask] of Object.entries(info.bits)) {
        expect(encodeRegister(info.layout, { [name]: true })).toBe(BigInt(mask));
      }
      // Every field is a single bit and no two share one.
      expect(info.layout.fields.every((f) => f.width === 1)).toBe(true);
      expect(new Set(info.layout.fields.map((f) => f.lsb)).size).toBe(info.layout.fields.length);
    }
  });

  it("matches the kvm-vmx.md §3.1 tables (and not the ancient 0x2 debug-controls mirror)", () => {
    expect(VM_EXIT_CTLS.VM_EXIT_SAVE_DEBUG_CONTROLS).toBe(0x4);
    expect(VM_ENTRY_CTLS.VM_ENTRY_LOAD_DEBUG_CONTROLS).toBe(0x4);
    expect(PIN_BASED_CTLS.PIN_BASED_POSTED_INTR).toBe(0x80);
    expect(CPU_BASED_CTLS.CPU_BASED_HLT_EXITING).toBe(0x80);
    expect(CPU_BASED_CTLS.CPU_BASED_ACTIVATE_TERTIARY_CONTROLS).toBe(0x20000);
    expect(CPU_BASED_CTLS.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS).toBe(0x80000000);
    expect(SECONDARY_EXEC_CTLS.SECONDARY_EXEC_ENABLE_EPT).toBe(0x2);
    expect(SECONDARY_EXEC_CTLS.SECONDARY_EXEC_SHADOW_VMCS).toBe(0x4000);
    expect(SECONDARY_EXEC_CTLS.SECONDARY_EXEC_NOTIFY_VM_EXITING).toBe(0x80000000);
    expect(VM_EXIT_CTLS.VM_EXIT_HOST_ADDR_SPACE_SIZE).toBe(0x200);
    expect(VM_EXIT_CTLS.VM_EXIT_CLEAR_IA32_RTIT_CTL).toBe(0x02000000);
    expect(VM_ENTRY_CTLS.VM_ENTRY_IA32E_MODE).toBe(0x200);
    expect(VM_ENTRY_CTLS.VM_ENTRY_LOAD_IA32_RTIT_CTL).toBe(0x40000);
  });

  it("lists every KVM-unnamed bit as present in some class", () => {
    const all = new Set(Object.values(CONTROL_CLASSES).flatMap((c) => Object.keys(c.bits)));
    for (const name of CONTROLS_NOT_NAMED_BY_KVM) expect(all.has(name)).toBe(true);
    // KVM 6.12 names 5 pin, 22 primary, 27 secondary, 1 tertiary, 12 exit and 10 entry controls.
    const kvmNamed = (c: keyof typeof CONTROL_CLASSES) =>
      Object.keys(CONTROL_CLASSES[c].bits).filter((n) => !CONTROLS_NOT_NAMED_BY_KVM.has(n)).length;
    expect([
      kvmNamed("pin"),
      kvmNamed("primary"),
      kvmNamed("secondary"),
      kvmNamed("tertiary"),
      kvmNamed("exit"),
      kvmNamed("entry"),
    ]).toEqual([5, 22, 27, 1, 12, 10]);
  });

  it("decode/encode round-trips every layout", () => {
    fc.assert(
      fc.property(u32, (v) => {
        for (const info of Object.values(CONTROL_CLASSES)) {
          if (info.layout.width === 32) roundTrips(info.layout, BigInt(v));
        }
      }),
    );
    fc.assert(fc.property(u64, (v) => roundTrips(CONTROL_CLASSES.tertiary.layout, v)));
  });
});

describe("default1 classes (SDM A.2)", () => {
  it("are the documented bit lists", () => {
    expect(ALWAYSON_WITHOUT_TRUE_MSR.PIN_BASED).toBe(maskOfBits([1, 2, 4]));
    expect(ALWAYSON_WITHOUT_TRUE_MSR.CPU_BASED).toBe(maskOfBits([1, 4, 5, 6, 8, 13, 14, 15, 16, 26]));
    expect(ALWAYSON_WITHOUT_TRUE_MSR.VM_EXIT).toBe(
      maskOfBits([0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 13, 14, 16, 17]),
    );
    expect(ALWAYSON_WITHOUT_TRUE_MSR.VM_ENTRY).toBe(maskOfBits([0, 1, 2, 3, 4, 5, 6, 7, 8, 12]));
    expect(CONTROL_CLASSES.secondary.default1).toBe(0);
    expect(CONTROL_CLASSES.tertiary.default1).toBe(0);
  });

  it("overlap defined controls only at CR3-load/store exiting and the debug-controls bits", () => {
    const overlap = (c: keyof typeof CONTROL_CLASSES) =>
      Number(BigInt(CONTROL_CLASSES[c].default1) & definedMask(CONTROL_CLASSES[c].layout));
    expect(overlap("pin")).toBe(0);
    expect(overlap("primary")).toBe(
      CPU_BASED_CTLS.CPU_BASED_CR3_LOAD_EXITING | CPU_BASED_CTLS.CPU_BASED_CR3_STORE_EXITING,
    );
    expect(overlap("exit")).toBe(VM_EXIT_CTLS.VM_EXIT_SAVE_DEBUG_CONTROLS);
    expect(overlap("entry")).toBe(VM_ENTRY_CTLS.VM_ENTRY_LOAD_DEBUG_CONTROLS);
  });
});

describe("2019 names", () => {
  it("alias the renamed bits", () => {
    expect(CONTROLS_2019.CPU_BASED_VIRTUAL_INTR_PENDING).toBe(0x4);
    expect(CONTROLS_2019.CPU_BASED_VIRTUAL_NMI_PENDING).toBe(0x400000);
    expect(CONTROLS_2019.CPU_BASED_USE_TSC_OFFSETING).toBe(0x8);
    for (const [old, current] of Object.entries(CONTROL_NAMES_2019)) {
      expect(findControl(old)?.name).toBe(current);
      expect(findControl(old)?.mask).toBe(CONTROLS_2019[old as keyof typeof CONTROLS_2019]);
    }
  });

  it("findControl resolves names case-insensitively", () => {
    expect(findControl("cpu_based_hlt_exiting")).toEqual({
      cls: "primary",
      name: "CPU_BASED_HLT_EXITING",
      bit: 7,
      mask: 0x80,
      kvmNamed: true,
    });
    expect(findControl("SECONDARY_EXEC_ENCLV_EXITING")?.kvmNamed).toBe(false);
    expect(findControl("VM_EXIT_ACTIVATE_SECONDARY_CONTROLS")?.bit).toBe(31);
    expect(findControl("NO_SUCH_CONTROL")).toBeUndefined();
  });
});

describe("IA32_VMX_BASIC", () => {
  it("decodes KVM's nested value 0x00d8100011e57ed0", () => {
    const d = decodeRegister(VMX_BASIC_LAYOUT, 0x00d8100011e57ed0n);
    expect(d.fields).toMatchObject({
      REVISION_ID: 0x11e57ed0,
      VMCS_SIZE: 0x1000,
      MEM_TYPE: 6,
      INOUT: true,
      TRUE_CTLS: true,
      PHYS_ADDR_32BIT_ONLY: false,
      DUAL_MONITOR: false,
    });
    expect(d.undefinedBits).toBe(0n);
    expect(vmxBasicRevision(0x11e57ed0)).toBe(0x11e57ed0);
    expect(vmxBasicVmcsSize(0x00d81000)).toBe(0x1000);
    expect(vmxBasicMemType(0x00d81000)).toBe(VMX_BASIC_MEM_TYPE.WB);
    const { lo, hi } = encodeVmxBasic(0x11e57ed0, 0x1000, VMX_BASIC_MEM_TYPE.WB);
    expect(lo).toBe(0x11e57ed0);
    expect((hi | VMX_BASIC_HI.VMX_BASIC_TRUE_CTLS) >>> 0).toBe(0x00981000);
  });

  it("helpers invert encodeVmxBasic and agree with the layout", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0x7fffffff }),
        fc.integer({ min: 0, max: 0x1fff }),
        fc.integer({ min: 0, max: 15 }),
        (rev, size, type) => {
          const { lo, hi } = encodeVmxBasic(rev, size, type);
          expect([vmxBasicRevision(lo), vmxBasicVmcsSize(hi), vmxBasicMemType(hi)]).toEqual([
            rev,
            size,
            type,
          ]);
          const d = decodeRegister(VMX_BASIC_LAYOUT, (BigInt(hi) << 32n) | BigInt(lo));
          expect(d.fields).toMatchObject({ REVISION_ID: rev, VMCS_SIZE: size, MEM_TYPE: type });
        },
      ),
    );
    fc.assert(fc.property(u64, (v) => roundTrips(VMX_BASIC_LAYOUT, v)));
  });
});

describe("IA32_VMX_MISC", () => {
  it("decodes KVM's nested value 0x20000165", () => {
    const lo = 0x20000165;
    expect(vmxMiscPreemptionTimerRate(lo)).toBe(5);
    expect(vmxMiscCr3Count(lo)).toBe(0);
    expect(vmxMiscMaxMsrListEntries(lo)).toBe(512);
    expect(decodeRegister(VMX_MISC_LAYOUT, lo).fields).toMatchObject({
      SAVE_EFER_LMA: true,
      ACTIVITY_HLT: true,
      ACTIVITY_SHUTDOWN: false,
      ACTIVITY_WAIT_SIPI: true,
      VMWRITE_ANY_FIELD: true,
      ZERO_LEN_INS: false,
    });
    expect(VMX_MISC.VMX_MISC_VMWRITE_SHADOW_RO_FIELDS).toBe(1 << 29);
  });

  it("helpers agree with the layout", () => {
    fc.assert(
      fc.property(u32, (lo) => {
        const f = decodeRegister(VMX_MISC_LAYOUT, lo).fields;
        expect(vmxMiscPreemptionTimerRate(lo)).toBe(f.PREEMPTION_TIMER_RATE);
        expect(vmxMiscCr3Count(lo)).toBe(f.CR3_TARGET_COUNT);
        expect(vmxMiscMaxMsrListEntries(lo)).toBe(512 * ((f.MAX_MSR_LIST as number) + 1));
      }),
    );
    fc.assert(fc.property(u64, (v) => roundTrips(VMX_MISC_LAYOUT, v)));
  });
});
