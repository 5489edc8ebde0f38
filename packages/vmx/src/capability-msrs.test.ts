import { CR0, CR4, formatHex64, MSR } from "@nestvisor/x86-arch";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  adjustControls,
  controlsAllowed,
  crFixedBitsOk,
  describeVmxCapabilityMsr,
  EPT_VPID_CAP_LO,
  entryCheckControlMsr,
  fixedBitsOk,
  fixedBitsViolations,
  isConsistentControlMsr,
  KVM_DEFAULT_VMX_CAPABILITIES,
  kvmNestedVmxCapabilities,
  MODERN_NESTED_HOST,
  type Msr64,
  nestedVmxHost,
  tertiaryControlsAllowed,
  VMX_CAPABILITY_MSRS,
  type VmxCapabilities,
  vmxCapabilityMsr,
  vmxCapabilityMsrEntries,
  vmxCapabilityMsrInfo,
} from "./capability-msrs";
import {
  ALWAYSON_WITHOUT_TRUE_MSR,
  CONTROL_CLASSES,
  CONTROLS_NOT_NAMED_BY_KVM,
  CPU_BASED_CTLS,
  PIN_BASED_CTLS,
  SECONDARY_EXEC_CTLS,
  VM_ENTRY_CTLS,
  VM_EXIT_CTLS,
} from "./controls";

const u32 = fc.integer({ min: 0, max: 0xffffffff });
/** A consistent control MSR: allowed-0 ⊆ allowed-1. */
const controlMsr = fc.tuple(u32, u32).map(([a, b]) => ({ lo: (a & b) >>> 0, hi: b >>> 0 }));

const hex = (m: Msr64) => formatHex64(m.lo, m.hi);

describe("allowed-0 / allowed-1 semantics (SDM A.3.1)", () => {
  it("controlsAllowed returns exactly the offending bits (bit-by-bit oracle)", () => {
    fc.assert(
      fc.property(u32, u32, u32, (lo, hi, value) => {
        let expected = 0;
        for (let bit = 0; bit < 32; bit++) {
          const mustBe1 = ((lo >>> bit) & 1) === 1;
          const mayBe1 = ((hi >>> bit) & 1) === 1;
          const v = ((value >>> bit) & 1) === 1;
          if ((mustBe1 && !v) || (!mayBe1 && v)) expected = (expected | (2 ** bit)) >>> 0;
        }
        expect(controlsAllowed(lo, hi, value)).toBe(expected);
      }),
    );
  });

  it("the adjusted value is always allowed", () => {
    fc.assert(
      fc.property(controlMsr, u32, (msr, wanted) => {
        expect(isConsistentControlMsr(msr.lo, msr.hi)).toBe(true);
        expect(controlsAllowed(msr.lo, msr.hi, adjustControls(msr.lo, msr.hi, wanted))).toBe(0);
      }),
    );
  });

  it("allowed values are fixed points of adjustControls", () => {
    fc.assert(
      fc.property(controlMsr, u32, (msr, r) => {
        const allowed = (msr.lo | (r & msr.hi)) >>> 0;
        expect(controlsAllowed(msr.lo, msr.hi, allowed)).toBe(0);
        expect(adjustControls(msr.lo, msr.hi, allowed)).toBe(allowed);
      }),
    );
  });

  it("adjusting keeps every wanted bit that may be 1 and changes only offending bits", () => {
    fc.assert(
      fc.property(controlMsr, u32, (msr, wanted) => {
        const adjusted = adjustControls(msr.lo, msr.hi, wanted);
        expect((adjusted ^ wanted) >>> 0).toBe(controlsAllowed(msr.lo, msr.hi, wanted));
      }),
    );
  });

  it("an inconsistent MSR allows nothing", () => {
    expect(isConsistentControlMsr(0x1, 0x0)).toBe(false);
    fc.assert(
      fc.property(u32, (v) => {
        expect(controlsAllowed(0x1, 0x0, v)).not.toBe(0);
      }),
    );
  });

  it("tertiary controls: all 64 bits are allowed-1 settings", () => {
    expect(tertiaryControlsAllowed(0x10, 0, 0x10, 0)).toBe(true);
    expect(tertiaryControlsAllowed(0x10, 0, 0x11, 0)).toBe(false);
    expect(tertiaryControlsAllowed(0, 1, 0, 1)).toBe(true);
    expect(tertiaryControlsAllowed(0, 0, 0, 1)).toBe(false);
  });
});

describe("CR0/CR4 fixed bits (SDM A.7, A.8)", () => {
  it("fixedBitsOk: FIXED0 bits must be 1, bits outside FIXED1 must be 0", () => {
    fc.assert(
      fc.property(u32, u32, u32, (value, f0, f1) => {
        const expected = (f0 & ~value) | (value & ~f1);
        expect(fixedBitsViolations(value, f0, f1)).toBe(expected >>> 0);
        expect(fixedBitsOk(value, f0, f1)).toBe(expected === 0);
      }),
    );
  });

  it("agrees with kvm's fixed_bits_valid for consistent pairs (FIXED0 ⊆ FIXED1)", () => {
    fc.assert(
      fc.property(u32, u32, u32, (value, a, b) => {
        const f0 = (a & b) >>> 0;
        const f1 = b >>> 0;
        expect(fixedBitsOk(value, f0, f1)).toBe(((value & f1) | f0) >>> 0 === value >>> 0);
      }),
    );
  });

  it("KVM's nested VMXON needs PE, PG, NE and VMXE", () => {
    const c = KVM_DEFAULT_VMX_CAPABILITIES;
    const cr0 = (CR0.PE | CR0.ET | CR0.NE | CR0.WP | CR0.PG) >>> 0;
    expect(crFixedBitsOk(cr0, 0, c.cr0Fixed0, c.cr0Fixed1)).toBe(true);
    expect(crFixedBitsOk(cr0 & ~CR0.NE, 0, c.cr0Fixed0, c.cr0Fixed1)).toBe(false);
    expect(fixedBitsViolations((cr0 & ~CR0.PG) >>> 0, c.cr0Fixed0.lo, c.cr0Fixed1.lo)).toBe(CR0.PG);
    const cr4 = CR4.PAE | CR4.VMXE | CR4.OSFXSR;
    expect(crFixedBitsOk(cr4, 0, c.cr4Fixed0, c.cr4Fixed1)).toBe(true);
    expect(crFixedBitsOk(cr4 & ~CR4.VMXE, 0, c.cr4Fixed0, c.cr4Fixed1)).toBe(false);
    // Bit 32 (CR4.FRED) is outside this host's FIXED1.
    expect(crFixedBitsOk(cr4, 1, c.cr4Fixed0, c.cr4Fixed1)).toBe(false);
  });
});

describe("KVM 6.12 nested capability MSRs on the modern host", () => {
  const c = KVM_DEFAULT_VMX_CAPABILITIES;

  it("has the expected values (nested_vmx_setup_ctls_msrs, vmx_get_vmx_msr)", () => {
    expect(
      Object.fromEntries(vmxCapabilityMsrEntries(c).map((e) => [e.name, formatHex64(e.lo, e.hi)])),
    ).toEqual({
      IA32_VMX_BASIC: "0x00d8100011e57ed0",
      IA32_VMX_PINBASED_CTLS: "0x000000ff00000016",
      IA32_VMX_PROCBASED_CTLS: "0xfff9fffe0401e172",
      IA32_VMX_EXIT_CTLS: "0x007fffff00036dff",
      IA32_VMX_ENTRY_CTLS: "0x0000f3ff000011ff",
      IA32_VMX_MISC: "0x0000000020000165",
      IA32_VMX_CR0_FIXED0: "0x0000000080000021",
      IA32_VMX_CR0_FIXED1: "0x00000000ffffffff",
      IA32_VMX_CR4_FIXED0: "0x0000000000002000",
      IA32_VMX_CR4_FIXED1: "0x0000000001f77fff",
      IA32_VMX_VMCS_ENUM: "0x0000000000000032",
      IA32_VMX_PROCBASED_CTLS2: "0x06137bff00000000",
      IA32_VMX_EPT_VPID_CAP: "0x00000f01063340c1",
      IA32_VMX_TRUE_PINBASED_CTLS: "0x000000ff00000016",
      IA32_VMX_TRUE_PROCBASED_CTLS: "0xfff9fffe04006172",
      IA32_VMX_TRUE_EXIT_CTLS: "0x007fffff00036dfb",
      IA32_VMX_TRUE_ENTRY_CTLS: "0x0000f3ff000011fb",
      IA32_VMX_VMFUNC: "0x0000000000000001",
    });
  });

  it("BASIC is 0x0098100011e57ed0 without host INS/OUTS information", () => {
    expect(hex(kvmNestedVmxCapabilities(nestedVmxHost({ basicInOut: false })).basic)).toBe(
      "0x0098100011e57ed0",
    );
  });

  it("does not offer tertiary controls (IA32_VMX_PROCBASED_CTLS3 absent)", () => {
    expect(c.procbasedCtls3).toBeNull();
    expect(vmxCapabilityMsr(c, MSR.IA32_VMX_PROCBASED_CTLS3)).toBeUndefined();
    expect(c.procbasedCtls.hi & CPU_BASED_CTLS.CPU_BASED_ACTIVATE_TERTIARY_CONTROLS).toBe(0);
    expect(adjustControls(c.trueProcbasedCtls.lo, c.trueProcbasedCtls.hi, 0xffffffff)).toBe(0xfff9fffe);
  });

  const classes = [
    {
      name: "pin",
      plain: c.pinbasedCtls,
      tru: c.truePinbasedCtls,
      d1: ALWAYSON_WITHOUT_TRUE_MSR.PIN_BASED,
      freed: 0,
    },
    {
      name: "primary",
      plain: c.procbasedCtls,
      tru: c.trueProcbasedCtls,
      d1: ALWAYSON_WITHOUT_TRUE_MSR.CPU_BASED,
      freed: CPU_BASED_CTLS.CPU_BASED_CR3_LOAD_EXITING | CPU_BASED_CTLS.CPU_BASED_CR3_STORE_EXITING,
    },
    {
      name: "exit",
      plain: c.exitCtls,
      tru: c.trueExitCtls,
      d1: ALWAYSON_WITHOUT_TRUE_MSR.VM_EXIT,
      freed: VM_EXIT_CTLS.VM_EXIT_SAVE_DEBUG_CONTROLS,
    },
    {
      name: "entry",
      plain: c.entryCtls,
      tru: c.trueEntryCtls,
      d1: ALWAYSON_WITHOUT_TRUE_MSR.VM_ENTRY,
      freed: VM_ENTRY_CTLS.VM_ENTRY_LOAD_DEBUG_CONTROLS,
    },
  ] as const;

  it("every default1 bit is allowed-0 = 1 (and allowed-1) in the non-TRUE MSRs", () => {
    for (const k of classes) {
      expect((k.plain.lo & k.d1) >>> 0, k.name).toBe(k.d1);
      expect(k.plain.lo, k.name).toBe(k.d1);
      expect((k.plain.hi & k.d1) >>> 0, k.name).toBe(k.d1);
      expect(k.plain.hi, k.name).toBe(k.tru.hi);
    }
  });

  it("TRUE MSRs free exactly the default1 bits KVM allows clearing", () => {
    for (const k of classes) {
      expect((k.plain.lo & ~k.tru.lo) >>> 0, k.name).toBe(k.freed);
      expect((k.tru.lo & ~k.plain.lo) >>> 0, k.name).toBe(0);
      expect(controlsAllowed(k.tru.lo, k.tru.hi, (k.d1 & ~k.freed) >>> 0), k.name).toBe(0);
      if (k.freed !== 0)
        expect(controlsAllowed(k.plain.lo, k.plain.hi, (k.d1 & ~k.freed) >>> 0), k.name).toBe(k.freed);
    }
  });

  it("every control MSR is consistent and offers only KVM-named controls or default1 bits", () => {
    for (const info of VMX_CAPABILITY_MSRS) {
      if (info.kind !== "controls" || info.controls === undefined) continue;
      const v = vmxCapabilityMsr(c, info.index);
      if (v === undefined) throw new Error(info.name);
      expect(isConsistentControlMsr(v.lo, v.hi), info.name).toBe(true);
      const cls = CONTROL_CLASSES[info.controls];
      const kvmNamed = Object.entries(cls.bits)
        .filter(([n]) => !CONTROLS_NOT_NAMED_BY_KVM.has(n))
        .reduce((m, [, b]) => (m | b) >>> 0, 0);
      expect((v.hi & ~(kvmNamed | cls.default1)) >>> 0, info.name).toBe(0);
    }
    expect(c.procbasedCtls2.lo).toBe(0);
  });

  it("offers the always-on emulated features", () => {
    expect(c.truePinbasedCtls.hi & PIN_BASED_CTLS.PIN_BASED_VMX_PREEMPTION_TIMER).not.toBe(0);
    expect(c.procbasedCtls.hi & CPU_BASED_CTLS.CPU_BASED_USE_MSR_BITMAPS).not.toBe(0);
    expect(c.procbasedCtls2.hi & SECONDARY_EXEC_CTLS.SECONDARY_EXEC_SHADOW_VMCS).not.toBe(0);
    for (const bit of [
      VM_EXIT_CTLS.VM_EXIT_LOAD_IA32_EFER,
      VM_EXIT_CTLS.VM_EXIT_SAVE_IA32_EFER,
      VM_EXIT_CTLS.VM_EXIT_SAVE_VMX_PREEMPTION_TIMER,
      VM_EXIT_CTLS.VM_EXIT_ACK_INTR_ON_EXIT,
      VM_EXIT_CTLS.VM_EXIT_LOAD_IA32_PERF_GLOBAL_CTRL,
    ]) {
      expect(c.exitCtls.hi & bit).not.toBe(0);
    }
    // Not offered: PLE, EPT-violation #VE, mode-based execute, UC EPTP, advanced EPT exit info.
    expect(c.procbasedCtls2.hi & SECONDARY_EXEC_CTLS.SECONDARY_EXEC_PAUSE_LOOP_EXITING).toBe(0);
    expect(c.procbasedCtls2.hi & SECONDARY_EXEC_CTLS.SECONDARY_EXEC_EPT_VIOLATION_VE).toBe(0);
    expect(c.procbasedCtls2.hi & SECONDARY_EXEC_CTLS.SECONDARY_EXEC_MODE_BASED_EPT_EXEC).toBe(0);
    expect(c.eptVpidCap.lo & EPT_VPID_CAP_LO.VMX_EPTP_UC_BIT).toBe(0);
    expect(c.eptVpidCap.lo & EPT_VPID_CAP_LO.VMX_EPT_ADVANCED_EXIT_INFO_BIT).toBe(0);
  });

  it("entry checks use the TRUE MSRs (BASIC bit 55)", () => {
    expect(entryCheckControlMsr(c, "primary")).toBe(c.trueProcbasedCtls);
    expect(entryCheckControlMsr(c, "secondary")).toBe(c.procbasedCtls2);
    const noTrue: VmxCapabilities = { ...c, basic: { lo: c.basic.lo, hi: c.basic.hi & ~(1 << 23) } };
    expect(entryCheckControlMsr(noTrue, "exit")).toBe(c.exitCtls);
    expect(entryCheckControlMsr(noTrue, "pin")).toBe(c.pinbasedCtls);
    expect(entryCheckControlMsr(noTrue, "entry")).toBe(c.entryCtls);
  });
});

describe("KVM 6.12 nested capability MSRs follow the host and module parameters", () => {
  it("without EPT: no EPT, PML, unrestricted guest, EPT caps or EPTP switching", () => {
    const c = kvmNestedVmxCapabilities(nestedVmxHost({ enableEpt: false }));
    const s = SECONDARY_EXEC_CTLS;
    expect(c.procbasedCtls2.hi & (s.SECONDARY_EXEC_ENABLE_EPT | s.SECONDARY_EXEC_ENABLE_PML)).toBe(0);
    expect(c.procbasedCtls2.hi & s.SECONDARY_EXEC_UNRESTRICTED_GUEST).toBe(0);
    expect(c.eptVpidCap.lo).toBe(0);
    expect(c.eptVpidCap.hi).toBe(0xf01);
    expect(c.vmfunc.lo).toBe(0);
    // VMFUNC itself stays offered: it is in the host-filtered list.
    expect(c.procbasedCtls2.hi & s.SECONDARY_EXEC_ENABLE_VMFUNC).not.toBe(0);
  });

  it("without EPT A/D bits: no PML and no A/D capability", () => {
    const c = kvmNestedVmxCapabilities(nestedVmxHost({ enableEptAdBits: false }));
    expect(c.procbasedCtls2.hi & SECONDARY_EXEC_CTLS.SECONDARY_EXEC_ENABLE_PML).toBe(0);
    expect(hex(c.eptVpidCap)).toBe("0x00000f01061340c1");
  });

  it("without VPID, APICv or flexpriority the matching bits disappear", () => {
    expect(kvmNestedVmxCapabilities(nestedVmxHost({ enableVpid: false })).eptVpidCap.hi).toBe(0);
    expect(hex(kvmNestedVmxCapabilities(nestedVmxHost({ enableApicv: false })).pinbasedCtls)).toBe(
      "0x0000007f00000016",
    );
    const noFlex = kvmNestedVmxCapabilities(nestedVmxHost({ flexpriorityEnabled: false }));
    expect(noFlex.procbasedCtls2.hi & SECONDARY_EXEC_CTLS.SECONDARY_EXEC_VIRTUALIZE_APIC_ACCESSES).toBe(0);
  });

  it("a host with MPX adds the BNDCFGS controls; SGX adds ENCLS exiting", () => {
    const c = kvmNestedVmxCapabilities(
      nestedVmxHost({
        vmexitCtrl: (MODERN_NESTED_HOST.vmexitCtrl | VM_EXIT_CTLS.VM_EXIT_CLEAR_BNDCFGS) >>> 0,
        vmentryCtrl: (MODERN_NESTED_HOST.vmentryCtrl | VM_ENTRY_CTLS.VM_ENTRY_LOAD_BNDCFGS) >>> 0,
        enableSgx: true,
      }),
    );
    expect(hex(c.exitCtls)).toBe("0x00ffffff00036dff");
    expect(hex(c.entryCtls)).toBe("0x0001f3ff000011ff");
    expect(c.procbasedCtls2.hi & SECONDARY_EXEC_CTLS.SECONDARY_EXEC_ENCLS_EXITING).not.toBe(0);
  });

  it("emulated UMIP adds CR4.UMIP to CR4_FIXED1", () => {
    const cr4Fixed1 = { lo: (MODERN_NESTED_HOST.cr4Fixed1.lo & ~CR4.UMIP) >>> 0, hi: 0 };
    const withHw = kvmNestedVmxCapabilities(nestedVmxHost({ cr4Fixed1 }));
    const emulated = kvmNestedVmxCapabilities(nestedVmxHost({ cr4Fixed1, hostHasUmip: false }));
    expect(withHw.cr4Fixed1.lo & CR4.UMIP).toBe(0);
    expect(emulated.cr4Fixed1.lo & CR4.UMIP).toBe(CR4.UMIP);
  });

  it("KVM-offered controls keep consistent MSRs for random hosts", () => {
    fc.assert(
      fc.property(
        u32,
        u32,
        u32,
        u32,
        u32,
        fc.boolean(),
        fc.boolean(),
        (pin, cpu, sec, exit, entry, ept, apicv) => {
          const c = kvmNestedVmxCapabilities(
            nestedVmxHost({
              pinBasedExecCtrl: pin,
              cpuBasedExecCtrl: cpu,
              cpuBased2ndExecCtrl: sec,
              vmexitCtrl: exit,
              vmentryCtrl: entry,
              enableEpt: ept,
              enableApicv: apicv,
            }),
          );
          for (const m of [c.pinbasedCtls, c.procbasedCtls, c.exitCtls, c.entryCtls, c.procbasedCtls2]) {
            expect(isConsistentControlMsr(m.lo, m.hi)).toBe(true);
          }
          expect(controlsAllowed(c.trueProcbasedCtls.lo, c.trueProcbasedCtls.hi, 0x04006172)).toBe(0);
        },
      ),
    );
  });
});

describe("capability MSR table and display", () => {
  it("covers 0x480–0x492 except 0x493 (EXIT_CTLS2 is not a modelled capability)", () => {
    expect(VMX_CAPABILITY_MSRS.map((m) => m.index)).toEqual(
      Array.from({ length: 0x492 - 0x480 + 1 }, (_, i) => 0x480 + i),
    );
    expect(vmxCapabilityMsrInfo(MSR.IA32_VMX_PINBASED_CTLS)?.trueIndex).toBe(MSR.IA32_VMX_TRUE_PINBASED_CTLS);
    expect(vmxCapabilityMsrInfo(0x10)).toBeUndefined();
    expect(vmxCapabilityMsr(KVM_DEFAULT_VMX_CAPABILITIES, 0x10)).toBeUndefined();
  });

  it("describes control MSRs as must-be-one and may-be-one lists", () => {
    const c = KVM_DEFAULT_VMX_CAPABILITIES;
    const d = describeVmxCapabilityMsr(MSR.IA32_VMX_PINBASED_CTLS, c.pinbasedCtls.lo, c.pinbasedCtls.hi);
    expect(d?.mustBeOne).toEqual(["bit 1", "bit 2", "bit 4"]);
    expect(d?.mayBeOne).toEqual([
      "PIN_BASED_EXT_INTR_MASK",
      "bit 1",
      "bit 2",
      "PIN_BASED_NMI_EXITING",
      "bit 4",
      "PIN_BASED_VIRTUAL_NMIS",
      "PIN_BASED_VMX_PREEMPTION_TIMER",
      "PIN_BASED_POSTED_INTR",
    ]);
    const t = describeVmxCapabilityMsr(MSR.IA32_VMX_PROCBASED_CTLS3, 0x10, 0);
    expect(t?.mayBeOne).toEqual(["TERTIARY_EXEC_IPI_VIRT"]);
  });

  it("decodes BASIC, MISC, VMCS_ENUM, VMFUNC and CR fixed MSRs into fields", () => {
    const c = KVM_DEFAULT_VMX_CAPABILITIES;
    expect(
      describeVmxCapabilityMsr(MSR.IA32_VMX_BASIC, c.basic.lo, c.basic.hi)?.fields?.fields,
    ).toMatchObject({
      REVISION_ID: 0x11e57ed0,
      VMCS_SIZE: 4096,
      MEM_TYPE: 6,
      TRUE_CTLS: true,
    });
    expect(describeVmxCapabilityMsr(MSR.IA32_VMX_VMCS_ENUM, 0x32, 0)?.fields?.fields).toEqual({
      MAX_INDEX: 0x19,
    });
    expect(describeVmxCapabilityMsr(MSR.IA32_VMX_VMFUNC, 1, 0)?.fields?.fields).toEqual({
      EPTP_SWITCHING: true,
    });
    expect(describeVmxCapabilityMsr(MSR.IA32_VMX_CR0_FIXED0, 0x80000021, 0)?.fields?.fields).toMatchObject({
      PE: true,
      NE: true,
      PG: true,
      WP: false,
    });
    expect(describeVmxCapabilityMsr(MSR.IA32_VMX_CR4_FIXED0, 0x2000, 0)?.fields?.fields).toMatchObject({
      VMXE: true,
    });
    const ept = describeVmxCapabilityMsr(MSR.IA32_VMX_EPT_VPID_CAP, c.eptVpidCap.lo, c.eptVpidCap.hi);
    expect(ept?.fields?.fields).toMatchObject({
      EXECUTE_ONLY: true,
      PAGE_WALK_4: true,
      PAGE_WALK_5: true,
      EPTP_UC: false,
      EPTP_WB: true,
      PAGE_2M: true,
      PAGE_1G: true,
      INVEPT: true,
      ACCESSED_DIRTY: true,
      ADVANCED_EXIT_INFO: false,
      INVEPT_SINGLE_CONTEXT: true,
      INVEPT_ALL_CONTEXT: true,
      INVVPID: true,
      INVVPID_INDIVIDUAL_ADDRESS: true,
      INVVPID_SINGLE_CONTEXT: true,
      INVVPID_ALL_CONTEXT: true,
      INVVPID_SINGLE_CONTEXT_RETAIN_GLOBALS: true,
    });
    expect(ept?.fields?.undefinedBits).toBe(0n);
    expect(describeVmxCapabilityMsr(0x10, 0, 0)).toBeUndefined();
  });
});
