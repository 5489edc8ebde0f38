import { describe, expect, it } from "vitest";
import {
  FIELD_GROUP,
  fieldByEncoding,
  fieldByName,
  fieldEncodingOf,
  fieldName,
  fieldRow,
  VMCS_FIELDS,
} from "./field-catalog";
import {
  ACCESS_TYPE,
  FIELD_TYPE,
  FIELD_WIDTH,
  fieldIndex,
  fieldType,
  vmcsFieldWidth,
} from "./field-encoding";

/**
 * KVM 6.12 `enum vmcs_field` (arch/x86/include/asm/vmx.h), name and value, in the enum's order.
 * The catalog computes encodings from (type, width, index); this table is the cross-check.
 */
const KVM_ENUM = `
VIRTUAL_PROCESSOR_ID 0x0000 POSTED_INTR_NV 0x0002 LAST_PID_POINTER_INDEX 0x0008
GUEST_ES_SELECTOR 0x0800 GUEST_CS_SELECTOR 0x0802 GUEST_SS_SELECTOR 0x0804 GUEST_DS_SELECTOR 0x0806
GUEST_FS_SELECTOR 0x0808 GUEST_GS_SELECTOR 0x080a GUEST_LDTR_SELECTOR 0x080c GUEST_TR_SELECTOR 0x080e
GUEST_INTR_STATUS 0x0810 GUEST_PML_INDEX 0x0812
HOST_ES_SELECTOR 0x0c00 HOST_CS_SELECTOR 0x0c02 HOST_SS_SELECTOR 0x0c04 HOST_DS_SELECTOR 0x0c06
HOST_FS_SELECTOR 0x0c08 HOST_GS_SELECTOR 0x0c0a HOST_TR_SELECTOR 0x0c0c
IO_BITMAP_A 0x2000 IO_BITMAP_A_HIGH 0x2001 IO_BITMAP_B 0x2002 IO_BITMAP_B_HIGH 0x2003
MSR_BITMAP 0x2004 MSR_BITMAP_HIGH 0x2005
VM_EXIT_MSR_STORE_ADDR 0x2006 VM_EXIT_MSR_STORE_ADDR_HIGH 0x2007
VM_EXIT_MSR_LOAD_ADDR 0x2008 VM_EXIT_MSR_LOAD_ADDR_HIGH 0x2009
VM_ENTRY_MSR_LOAD_ADDR 0x200a VM_ENTRY_MSR_LOAD_ADDR_HIGH 0x200b
PML_ADDRESS 0x200e PML_ADDRESS_HIGH 0x200f TSC_OFFSET 0x2010 TSC_OFFSET_HIGH 0x2011
VIRTUAL_APIC_PAGE_ADDR 0x2012 VIRTUAL_APIC_PAGE_ADDR_HIGH 0x2013
APIC_ACCESS_ADDR 0x2014 APIC_ACCESS_ADDR_HIGH 0x2015
POSTED_INTR_DESC_ADDR 0x2016 POSTED_INTR_DESC_ADDR_HIGH 0x2017
VM_FUNCTION_CONTROL 0x2018 VM_FUNCTION_CONTROL_HIGH 0x2019 EPT_POINTER 0x201a EPT_POINTER_HIGH 0x201b
EOI_EXIT_BITMAP0 0x201c EOI_EXIT_BITMAP0_HIGH 0x201d EOI_EXIT_BITMAP1 0x201e EOI_EXIT_BITMAP1_HIGH 0x201f
EOI_EXIT_BITMAP2 0x2020 EOI_EXIT_BITMAP2_HIGH 0x2021 EOI_EXIT_BITMAP3 0x2022 EOI_EXIT_BITMAP3_HIGH 0x2023
EPTP_LIST_ADDRESS 0x2024 EPTP_LIST_ADDRESS_HIGH 0x2025
VMREAD_BITMAP 0x2026 VMREAD_BITMAP_HIGH 0x2027 VMWRITE_BITMAP 0x2028 VMWRITE_BITMAP_HIGH 0x2029
VE_INFORMATION_ADDRESS 0x202a VE_INFORMATION_ADDRESS_HIGH 0x202b
XSS_EXIT_BITMAP 0x202c XSS_EXIT_BITMAP_HIGH 0x202d
ENCLS_EXITING_BITMAP 0x202e ENCLS_EXITING_BITMAP_HIGH 0x202f
TSC_MULTIPLIER 0x2032 TSC_MULTIPLIER_HIGH 0x2033
TERTIARY_VM_EXEC_CONTROL 0x2034 TERTIARY_VM_EXEC_CONTROL_HIGH 0x2035
PID_POINTER_TABLE 0x2042 PID_POINTER_TABLE_HIGH 0x2043
GUEST_PHYSICAL_ADDRESS 0x2400 GUEST_PHYSICAL_ADDRESS_HIGH 0x2401
VMCS_LINK_POINTER 0x2800 VMCS_LINK_POINTER_HIGH 0x2801
GUEST_IA32_DEBUGCTL 0x2802 GUEST_IA32_DEBUGCTL_HIGH 0x2803 GUEST_IA32_PAT 0x2804 GUEST_IA32_PAT_HIGH 0x2805
GUEST_IA32_EFER 0x2806 GUEST_IA32_EFER_HIGH 0x2807
GUEST_IA32_PERF_GLOBAL_CTRL 0x2808 GUEST_IA32_PERF_GLOBAL_CTRL_HIGH 0x2809
GUEST_PDPTR0 0x280a GUEST_PDPTR0_HIGH 0x280b GUEST_PDPTR1 0x280c GUEST_PDPTR1_HIGH 0x280d
GUEST_PDPTR2 0x280e GUEST_PDPTR2_HIGH 0x280f GUEST_PDPTR3 0x2810 GUEST_PDPTR3_HIGH 0x2811
GUEST_BNDCFGS 0x2812 GUEST_BNDCFGS_HIGH 0x2813 GUEST_IA32_RTIT_CTL 0x2814 GUEST_IA32_RTIT_CTL_HIGH 0x2815
HOST_IA32_PAT 0x2c00 HOST_IA32_PAT_HIGH 0x2c01 HOST_IA32_EFER 0x2c02 HOST_IA32_EFER_HIGH 0x2c03
HOST_IA32_PERF_GLOBAL_CTRL 0x2c04 HOST_IA32_PERF_GLOBAL_CTRL_HIGH 0x2c05
PIN_BASED_VM_EXEC_CONTROL 0x4000 CPU_BASED_VM_EXEC_CONTROL 0x4002 EXCEPTION_BITMAP 0x4004
PAGE_FAULT_ERROR_CODE_MASK 0x4006 PAGE_FAULT_ERROR_CODE_MATCH 0x4008 CR3_TARGET_COUNT 0x400a
VM_EXIT_CONTROLS 0x400c VM_EXIT_MSR_STORE_COUNT 0x400e VM_EXIT_MSR_LOAD_COUNT 0x4010
VM_ENTRY_CONTROLS 0x4012 VM_ENTRY_MSR_LOAD_COUNT 0x4014 VM_ENTRY_INTR_INFO_FIELD 0x4016
VM_ENTRY_EXCEPTION_ERROR_CODE 0x4018 VM_ENTRY_INSTRUCTION_LEN 0x401a TPR_THRESHOLD 0x401c
SECONDARY_VM_EXEC_CONTROL 0x401e PLE_GAP 0x4020 PLE_WINDOW 0x4022 NOTIFY_WINDOW 0x4024
VM_INSTRUCTION_ERROR 0x4400 VM_EXIT_REASON 0x4402 VM_EXIT_INTR_INFO 0x4404 VM_EXIT_INTR_ERROR_CODE 0x4406
IDT_VECTORING_INFO_FIELD 0x4408 IDT_VECTORING_ERROR_CODE 0x440a VM_EXIT_INSTRUCTION_LEN 0x440c
VMX_INSTRUCTION_INFO 0x440e
GUEST_ES_LIMIT 0x4800 GUEST_CS_LIMIT 0x4802 GUEST_SS_LIMIT 0x4804 GUEST_DS_LIMIT 0x4806
GUEST_FS_LIMIT 0x4808 GUEST_GS_LIMIT 0x480a GUEST_LDTR_LIMIT 0x480c GUEST_TR_LIMIT 0x480e
GUEST_GDTR_LIMIT 0x4810 GUEST_IDTR_LIMIT 0x4812
GUEST_ES_AR_BYTES 0x4814 GUEST_CS_AR_BYTES 0x4816 GUEST_SS_AR_BYTES 0x4818 GUEST_DS_AR_BYTES 0x481a
GUEST_FS_AR_BYTES 0x481c GUEST_GS_AR_BYTES 0x481e GUEST_LDTR_AR_BYTES 0x4820 GUEST_TR_AR_BYTES 0x4822
GUEST_INTERRUPTIBILITY_INFO 0x4824 GUEST_ACTIVITY_STATE 0x4826 GUEST_SYSENTER_CS 0x482a
VMX_PREEMPTION_TIMER_VALUE 0x482e HOST_IA32_SYSENTER_CS 0x4c00
CR0_GUEST_HOST_MASK 0x6000 CR4_GUEST_HOST_MASK 0x6002 CR0_READ_SHADOW 0x6004 CR4_READ_SHADOW 0x6006
CR3_TARGET_VALUE0 0x6008 CR3_TARGET_VALUE1 0x600a CR3_TARGET_VALUE2 0x600c CR3_TARGET_VALUE3 0x600e
EXIT_QUALIFICATION 0x6400 GUEST_LINEAR_ADDRESS 0x640a
GUEST_CR0 0x6800 GUEST_CR3 0x6802 GUEST_CR4 0x6804
GUEST_ES_BASE 0x6806 GUEST_CS_BASE 0x6808 GUEST_SS_BASE 0x680a GUEST_DS_BASE 0x680c GUEST_FS_BASE 0x680e
GUEST_GS_BASE 0x6810 GUEST_LDTR_BASE 0x6812 GUEST_TR_BASE 0x6814 GUEST_GDTR_BASE 0x6816 GUEST_IDTR_BASE 0x6818
GUEST_DR7 0x681a GUEST_RSP 0x681c GUEST_RIP 0x681e GUEST_RFLAGS 0x6820 GUEST_PENDING_DBG_EXCEPTIONS 0x6822
GUEST_SYSENTER_ESP 0x6824 GUEST_SYSENTER_EIP 0x6826
HOST_CR0 0x6c00 HOST_CR3 0x6c02 HOST_CR4 0x6c04 HOST_FS_BASE 0x6c06 HOST_GS_BASE 0x6c08 HOST_TR_BASE 0x6c0a
HOST_GDTR_BASE 0x6c0c HOST_IDTR_BASE 0x6c0e HOST_IA32_SYSENTER_ESP 0x6c10 HOST_IA32_SYSENTER_EIP 0x6c12
HOST_RSP 0x6c14 HOST_RIP 0x6c16
`;

/** Architectural fields KVM does not name (kvm-unit-tests x86/vmx.h names them; SDM Vol. 3D Appendix B). */
const SDM_ONLY: readonly (readonly [string, number])[] = [
  ["EPTP_INDEX", 0x0004],
  ["EXECUTIVE_VMCS_POINTER", 0x200c],
  ["EXECUTIVE_VMCS_POINTER_HIGH", 0x200d],
  ["GUEST_SMBASE", 0x4828],
  ["IO_RCX", 0x6402],
  ["IO_RSI", 0x6404],
  ["IO_RDI", 0x6406],
  ["IO_RIP", 0x6408],
];

function parsePairs(text: string): [string, number][] {
  const words = text.trim().split(/\s+/);
  const pairs: [string, number][] = [];
  for (let i = 0; i < words.length; i += 2) pairs.push([words[i]!, Number.parseInt(words[i + 1]!, 16)]);
  return pairs;
}

const kvmEnum = parsePairs(KVM_ENUM);
const kvmRows = VMCS_FIELDS.filter((f) => f.inKvmEnum);

describe("catalog vs KVM 6.12 enum vmcs_field", () => {
  it("the pinned enum has 194 distinct encodings", () => {
    expect(kvmEnum).toHaveLength(194);
    expect(new Set(kvmEnum.map(([, e]) => e)).size).toBe(194);
  });

  it("every enum entry is catalogued with the same encoding, and nothing else is marked inKvmEnum", () => {
    for (const [name, encoding] of kvmEnum) {
      const field = fieldByName(name);
      expect(field, name).toBeDefined();
      expect(field!.encoding, name).toBe(encoding);
      expect(field!.inKvmEnum, name).toBe(true);
    }
    expect(kvmRows.map((f) => f.name).sort()).toEqual(kvmEnum.map(([n]) => n).sort());
  });

  it("counts: 153 base fields + 41 _HIGH; base by type guest 63, control 56, host 23, exit-info 11", () => {
    const base = kvmRows.filter((f) => f.access === ACCESS_TYPE.FULL);
    expect(base).toHaveLength(153);
    expect(kvmRows.filter((f) => f.access === ACCESS_TYPE.HIGH)).toHaveLength(41);
    const byType = (t: number) => base.filter((f) => f.type === t).length;
    expect(byType(FIELD_TYPE.GUEST)).toBe(63);
    expect(byType(FIELD_TYPE.CONTROL)).toBe(56);
    expect(byType(FIELD_TYPE.HOST)).toBe(23);
    expect(byType(FIELD_TYPE.EXIT_INFO)).toBe(11);
    const byWidth = (w: number) => base.filter((f) => f.width === w).length;
    expect([
      byWidth(FIELD_WIDTH.U16),
      byWidth(FIELD_WIDTH.U64),
      byWidth(FIELD_WIDTH.U32),
      byWidth(FIELD_WIDTH.NATURAL),
    ]).toEqual([20, 41, 50, 42]);
  });

  it("holds the seven SDM fields KVM does not name (eight encodings), marked inKvmEnum: false", () => {
    const sdmRows = VMCS_FIELDS.filter((f) => !f.inKvmEnum);
    expect(sdmRows.map((f) => [f.name, f.encoding])).toEqual(SDM_ONLY);
    expect(VMCS_FIELDS).toHaveLength(194 + 8);
    expect(fieldByEncoding(0x4828)?.title).toBe("Guest SMBASE");
    expect(fieldByEncoding(0x6408)?.group).toBe(FIELD_GROUP.EXIT_INFORMATION);
  });
});

describe("row invariants", () => {
  it("type, index and KVM width agree with the encoding; the catalog is sorted by encoding", () => {
    let previous = -1;
    for (const f of VMCS_FIELDS) {
      expect(f.type, f.name).toBe(fieldType(f.encoding));
      expect(f.index, f.name).toBe(fieldIndex(f.encoding));
      expect(f.width, f.name).toBe(vmcsFieldWidth(f.encoding));
      expect(f.access, f.name).toBe(f.encoding & 1);
      expect(f.encoding).toBeGreaterThan(previous);
      previous = f.encoding;
    }
  });

  it("every 64-bit field has a _HIGH row at encoding + 1, 32 bits wide, in the same group", () => {
    for (const f of VMCS_FIELDS.filter((r) => r.width === FIELD_WIDTH.U64)) {
      const high = fieldByEncoding(f.encoding + 1);
      expect(high?.name).toBe(`${f.name}_HIGH`);
      expect(high?.width).toBe(FIELD_WIDTH.U32);
      expect(high?.base).toBe(f.encoding);
      expect(high?.group).toBe(f.group);
      expect(high?.inKvmEnum).toBe(f.inKvmEnum);
    }
    for (const h of VMCS_FIELDS.filter((r) => r.access === ACCESS_TYPE.HIGH)) {
      expect(fieldByEncoding(h.base)?.width, h.name).toBe(FIELD_WIDTH.U64);
    }
  });

  it("groups follow the SDM areas", () => {
    for (const f of VMCS_FIELDS) {
      if (f.type === FIELD_TYPE.EXIT_INFO) expect(f.group, f.name).toBe(FIELD_GROUP.EXIT_INFORMATION);
      if (f.type === FIELD_TYPE.HOST) expect(f.group.startsWith("host"), f.name).toBe(true);
      if (f.type === FIELD_TYPE.GUEST) expect(f.group.startsWith("guest"), f.name).toBe(true);
      if (f.type === FIELD_TYPE.CONTROL) expect(f.group.endsWith("controls"), f.name).toBe(true);
    }
    expect(fieldByName("GUEST_RIP")?.group).toBe(FIELD_GROUP.GUEST_REGISTERS);
    expect(fieldByName("GUEST_CS_AR_BYTES")?.group).toBe(FIELD_GROUP.GUEST_SEGMENTS);
    expect(fieldByName("GUEST_IA32_EFER")?.group).toBe(FIELD_GROUP.GUEST_MSRS);
    expect(fieldByName("VMCS_LINK_POINTER")?.group).toBe(FIELD_GROUP.GUEST_NON_REGISTER);
    expect(fieldByName("VM_EXIT_MSR_LOAD_ADDR")?.group).toBe(FIELD_GROUP.EXIT_CONTROLS);
    expect(fieldByName("VM_ENTRY_INTR_INFO_FIELD")?.group).toBe(FIELD_GROUP.ENTRY_CONTROLS);
    expect(fieldByName("HOST_IA32_SYSENTER_CS")?.group).toBe(FIELD_GROUP.HOST_MSRS);
    expect(fieldByName("HOST_TR_BASE")?.group).toBe(FIELD_GROUP.HOST_SEGMENTS);
  });
});

describe("lookups", () => {
  it("finds fields by name, ignoring case", () => {
    expect(fieldByName("guest_rip")?.encoding).toBe(0x681e);
    expect(fieldByName("Io_Bitmap_A_High")?.encoding).toBe(0x2001);
    expect(fieldByName("io_rcx")?.encoding).toBe(0x6402);
    expect(fieldByName("NO_SUCH_FIELD")).toBeUndefined();
  });

  it("handles the high access type as the SDM defines it: only for 64-bit fields", () => {
    expect(fieldByEncoding(0x2001)?.name).toBe("IO_BITMAP_A_HIGH");
    expect(fieldByEncoding(0x2401)?.name).toBe("GUEST_PHYSICAL_ADDRESS_HIGH");
    expect(fieldByEncoding(0x681f)).toBeUndefined(); // GUEST_RIP is natural-width: no high half
    expect(fieldByEncoding(0x4403)).toBeUndefined();
    expect(fieldByName("GUEST_RIP_HIGH")).toBeUndefined();
  });

  it("returns nothing for uncatalogued or malformed encodings", () => {
    expect(fieldByEncoding(0x2030)).toBeUndefined(); // SPPTP: architectural, not catalogued
    expect(fieldByEncoding(0x8000 | 0x681e)).toBeUndefined();
    expect(fieldByEncoding(0x1_681e)).toBeUndefined();
    expect(fieldByEncoding(-1)).toBeUndefined();
    expect(fieldByEncoding(0x681e + 0.5)).toBeUndefined();
    expect(fieldRow(2 ** 32 + 0x681e)).toBe(-1);
  });

  it("names encodings for display and resolves user references", () => {
    expect(fieldName(0x6c16)).toBe("HOST_RIP");
    expect(fieldName(0x2030)).toBe("0x2030");
    expect(fieldEncodingOf("host_rip")).toBe(0x6c16);
    expect(fieldEncodingOf(" 0x681E ")).toBe(0x681e);
    expect(fieldEncodingOf(0x4402)).toBe(0x4402);
    expect(() => fieldEncodingOf("GUEST_RIPP")).toThrow(/not a VMCS field/);
    expect(() => fieldEncodingOf(0x2030)).toThrow(RangeError);
  });
});
