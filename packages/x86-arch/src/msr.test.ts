import { describe, expect, it } from "vitest";
import { decodeRegister, encodeRegister } from "./bit-register";
import {
  APIC_BASE,
  FEATURE_CONTROL,
  FEATURE_CONTROL_LAYOUT,
  isX2apicMsr,
  MSR,
  MSR_LIST,
  type MsrName,
  msrDescription,
  msrIndex,
  msrName,
  X2APIC_MSR_FIRST,
  X2APIC_MSR_LAST,
  x2apicMsrIndex,
} from "./msr";

describe("MSR catalogue", () => {
  it("has unique indices, SDM-style names and a description for each", () => {
    const indices = MSR_LIST.map((m) => m.index);
    expect(new Set(indices).size).toBe(indices.length);
    expect(MSR_LIST).toHaveLength(Object.keys(MSR).length);
    for (const m of MSR_LIST) {
      expect(m.name).toMatch(/^IA32_[A-Z0-9_]+$/);
      expect(m.description.length).toBeGreaterThan(5);
      expect(Number.isInteger(m.index) && m.index >= 0 && m.index <= 0xffffffff).toBe(true);
    }
  });

  it("is sorted by index", () => {
    for (let i = 1; i < MSR_LIST.length; i++) {
      expect(MSR_LIST[i]!.index).toBeGreaterThan(MSR_LIST[i - 1]!.index);
    }
  });

  it("looks every MSR up both ways", () => {
    for (const m of MSR_LIST) {
      expect(msrName(m.index)).toBe(m.name);
      expect(msrIndex(m.name)).toBe(m.index);
      expect(msrIndex(m.name.toLowerCase())).toBe(m.index);
      expect(msrIndex(m.name.replace(/^IA32_/, ""))).toBe(m.index);
      expect(msrDescription(m.index)).toBe(m.description);
    }
  });

  it("accepts names with or without IA32_, in any case", () => {
    expect(msrIndex("efer")).toBe(0xc0000080);
    expect(msrIndex("IA32_EFER")).toBe(0xc0000080);
    expect(msrIndex("ia32_vmx_basic")).toBe(0x480);
    expect(msrIndex("MTRRcap")).toBe(0xfe);
    expect(msrIndex("kernel_gs_base")).toBe(0xc0000102);
  });

  it("rejects an unknown name with a RangeError naming it, and answers undefined for an unknown index", () => {
    expect(() => msrIndex("IA32_BOGUS")).toThrow(RangeError);
    expect(() => msrIndex("IA32_BOGUS")).toThrow(/"IA32_BOGUS"/);
    expect(msrName(0x12345)).toBeUndefined();
    expect(msrDescription(0x12345)).toBeUndefined();
  });

  it("numbers the VMX capability MSRs 480H-493H consecutively", () => {
    const vmx: MsrName[] = [
      "IA32_VMX_BASIC",
      "IA32_VMX_PINBASED_CTLS",
      "IA32_VMX_PROCBASED_CTLS",
      "IA32_VMX_EXIT_CTLS",
      "IA32_VMX_ENTRY_CTLS",
      "IA32_VMX_MISC",
      "IA32_VMX_CR0_FIXED0",
      "IA32_VMX_CR0_FIXED1",
      "IA32_VMX_CR4_FIXED0",
      "IA32_VMX_CR4_FIXED1",
      "IA32_VMX_VMCS_ENUM",
      "IA32_VMX_PROCBASED_CTLS2",
      "IA32_VMX_EPT_VPID_CAP",
      "IA32_VMX_TRUE_PINBASED_CTLS",
      "IA32_VMX_TRUE_PROCBASED_CTLS",
      "IA32_VMX_TRUE_EXIT_CTLS",
      "IA32_VMX_TRUE_ENTRY_CTLS",
      "IA32_VMX_VMFUNC",
      "IA32_VMX_PROCBASED_CTLS3",
      "IA32_VMX_EXIT_CTLS2",
    ];
    vmx.forEach((name, i) => {
      expect(MSR[name]).toBe(0x480 + i);
    });
  });

  it("has the indices a hypervisor relies on", () => {
    expect(MSR.IA32_TIME_STAMP_COUNTER).toBe(0x10);
    expect(MSR.IA32_APIC_BASE).toBe(0x1b);
    expect(MSR.IA32_FEATURE_CONTROL).toBe(0x3a);
    expect(MSR.IA32_SYSENTER_EIP).toBe(0x176);
    expect(MSR.IA32_DEBUGCTL).toBe(0x1d9);
    expect(MSR.IA32_PAT).toBe(0x277);
    expect(MSR.IA32_PERF_GLOBAL_CTRL).toBe(0x38f);
    expect(MSR.IA32_PKRS).toBe(0x6e1);
    expect(MSR.IA32_INTERRUPT_SSP_TABLE_ADDR).toBe(0x6a8);
    expect(MSR.IA32_XSS).toBe(0xda0);
    expect(MSR.IA32_FMASK).toBe(0xc0000084);
    expect(MSR.IA32_TSC_AUX).toBe(0xc0000103);
  });
});

describe("x2APIC MSR range", () => {
  it("maps xAPIC MMIO offsets to MSRs 800H + offset/16", () => {
    expect(x2apicMsrIndex(0x20)).toBe(MSR.IA32_X2APIC_APICID);
    expect(x2apicMsrIndex(0xb0)).toBe(MSR.IA32_X2APIC_EOI);
    expect(x2apicMsrIndex(0x300)).toBe(MSR.IA32_X2APIC_ICR);
    expect(x2apicMsrIndex(0x3f0)).toBe(MSR.IA32_X2APIC_SELF_IPI);
    expect(() => x2apicMsrIndex(0x24)).toThrow(RangeError);
    expect(() => x2apicMsrIndex(0x1000)).toThrow(RangeError);
  });

  it("contains every IA32_X2APIC_* MSR and nothing else from the catalogue", () => {
    for (const m of MSR_LIST) {
      expect(isX2apicMsr(m.index)).toBe(m.name.startsWith("IA32_X2APIC_"));
    }
    expect(isX2apicMsr(X2APIC_MSR_FIRST - 1)).toBe(false);
    expect(isX2apicMsr(X2APIC_MSR_LAST)).toBe(true);
    expect(isX2apicMsr(X2APIC_MSR_LAST + 1)).toBe(false);
  });
});

describe("IA32_FEATURE_CONTROL and IA32_APIC_BASE bits", () => {
  it("decodes 0x5 as locked with VMXON allowed outside SMX", () => {
    const value = FEATURE_CONTROL.LOCK | FEATURE_CONTROL.VMXON_OUTSIDE_SMX;
    expect(value).toBe(0x5);
    expect(decodeRegister(FEATURE_CONTROL_LAYOUT, value).fields).toMatchObject({
      LOCK: true,
      VMXON_INSIDE_SMX: false,
      VMXON_OUTSIDE_SMX: true,
    });
  });

  it("numeric constants and the layout agree bit for bit", () => {
    for (const [name, mask] of Object.entries(FEATURE_CONTROL)) {
      const f = FEATURE_CONTROL_LAYOUT.fields.find((x) => x.name === name);
      expect(f).toBeDefined();
      const fields = f!.width === 1 ? { [name]: true } : { [name]: 2 ** f!.width - 1 };
      expect(encodeRegister(FEATURE_CONTROL_LAYOUT, fields)).toBe(BigInt(mask));
    }
  });

  it("gives the reset APIC base FEE00000H with EN and BSP", () => {
    const value = APIC_BASE.DEFAULT_BASE | APIC_BASE.EN | APIC_BASE.BSP;
    expect(value >>> 0).toBe(0xfee00900);
    expect((value & APIC_BASE.BASE_LO) >>> 0).toBe(0xfee00000);
  });
});
