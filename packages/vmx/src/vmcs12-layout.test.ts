import { describe, expect, it } from "vitest";
import { fieldByName, VMCS_FIELDS } from "./field-catalog";
import {
  FIELD_TYPE,
  FIELD_WIDTH,
  FIELD_WIDTH_BYTES,
  formatFieldEncoding,
  vmcs12Slot,
} from "./field-encoding";
import {
  lookupVmcs12Offset,
  maxVmcs12FieldIndex,
  VMCS12_ERAS,
  VMCS12_REVISION,
  VMCS12_SIZE,
  VMCS12_UNSUPPORTED,
  type Vmcs12Era,
  vmcs12FieldOffset,
  vmcs12Layout,
  vmcsEnumMsr,
} from "./vmcs12-layout";

/**
 * Linux 6.12 vmcs12 (arch/x86/kvm/vmx/vmcs12.h CHECK_OFFSET list, vmcs12.c vmcs12_field_offsets):
 * KVM field name, vmcs12 member, byte offset, for the 141 fields registered with FIELD/FIELD64.
 */
const V6_12_FIELDS = `
IO_BITMAP_A io_bitmap_a 40
IO_BITMAP_B io_bitmap_b 48
MSR_BITMAP msr_bitmap 56
VM_EXIT_MSR_STORE_ADDR vm_exit_msr_store_addr 64
VM_EXIT_MSR_LOAD_ADDR vm_exit_msr_load_addr 72
VM_ENTRY_MSR_LOAD_ADDR vm_entry_msr_load_addr 80
TSC_OFFSET tsc_offset 88
VIRTUAL_APIC_PAGE_ADDR virtual_apic_page_addr 96
APIC_ACCESS_ADDR apic_access_addr 104
POSTED_INTR_DESC_ADDR posted_intr_desc_addr 112
EPT_POINTER ept_pointer 120
EOI_EXIT_BITMAP0 eoi_exit_bitmap0 128
EOI_EXIT_BITMAP1 eoi_exit_bitmap1 136
EOI_EXIT_BITMAP2 eoi_exit_bitmap2 144
EOI_EXIT_BITMAP3 eoi_exit_bitmap3 152
XSS_EXIT_BITMAP xss_exit_bitmap 160
GUEST_PHYSICAL_ADDRESS guest_physical_address 168
VMCS_LINK_POINTER vmcs_link_pointer 176
GUEST_IA32_DEBUGCTL guest_ia32_debugctl 184
GUEST_IA32_PAT guest_ia32_pat 192
GUEST_IA32_EFER guest_ia32_efer 200
GUEST_IA32_PERF_GLOBAL_CTRL guest_ia32_perf_global_ctrl 208
GUEST_PDPTR0 guest_pdptr0 216
GUEST_PDPTR1 guest_pdptr1 224
GUEST_PDPTR2 guest_pdptr2 232
GUEST_PDPTR3 guest_pdptr3 240
GUEST_BNDCFGS guest_bndcfgs 248
HOST_IA32_PAT host_ia32_pat 256
HOST_IA32_EFER host_ia32_efer 264
HOST_IA32_PERF_GLOBAL_CTRL host_ia32_perf_global_ctrl 272
VMREAD_BITMAP vmread_bitmap 280
VMWRITE_BITMAP vmwrite_bitmap 288
VM_FUNCTION_CONTROL vm_function_control 296
EPTP_LIST_ADDRESS eptp_list_address 304
PML_ADDRESS pml_address 312
ENCLS_EXITING_BITMAP encls_exiting_bitmap 320
TSC_MULTIPLIER tsc_multiplier 328
CR0_GUEST_HOST_MASK cr0_guest_host_mask 344
CR4_GUEST_HOST_MASK cr4_guest_host_mask 352
CR0_READ_SHADOW cr0_read_shadow 360
CR4_READ_SHADOW cr4_read_shadow 368
EXIT_QUALIFICATION exit_qualification 408
GUEST_LINEAR_ADDRESS guest_linear_address 416
GUEST_CR0 guest_cr0 424
GUEST_CR3 guest_cr3 432
GUEST_CR4 guest_cr4 440
GUEST_ES_BASE guest_es_base 448
GUEST_CS_BASE guest_cs_base 456
GUEST_SS_BASE guest_ss_base 464
GUEST_DS_BASE guest_ds_base 472
GUEST_FS_BASE guest_fs_base 480
GUEST_GS_BASE guest_gs_base 488
GUEST_LDTR_BASE guest_ldtr_base 496
GUEST_TR_BASE guest_tr_base 504
GUEST_GDTR_BASE guest_gdtr_base 512
GUEST_IDTR_BASE guest_idtr_base 520
GUEST_DR7 guest_dr7 528
GUEST_RSP guest_rsp 536
GUEST_RIP guest_rip 544
GUEST_RFLAGS guest_rflags 552
GUEST_PENDING_DBG_EXCEPTIONS guest_pending_dbg_exceptions 560
GUEST_SYSENTER_ESP guest_sysenter_esp 568
GUEST_SYSENTER_EIP guest_sysenter_eip 576
HOST_CR0 host_cr0 584
HOST_CR3 host_cr3 592
HOST_CR4 host_cr4 600
HOST_FS_BASE host_fs_base 608
HOST_GS_BASE host_gs_base 616
HOST_TR_BASE host_tr_base 624
HOST_GDTR_BASE host_gdtr_base 632
HOST_IDTR_BASE host_idtr_base 640
HOST_IA32_SYSENTER_ESP host_ia32_sysenter_esp 648
HOST_IA32_SYSENTER_EIP host_ia32_sysenter_eip 656
HOST_RSP host_rsp 664
HOST_RIP host_rip 672
PIN_BASED_VM_EXEC_CONTROL pin_based_vm_exec_control 744
CPU_BASED_VM_EXEC_CONTROL cpu_based_vm_exec_control 748
EXCEPTION_BITMAP exception_bitmap 752
PAGE_FAULT_ERROR_CODE_MASK page_fault_error_code_mask 756
PAGE_FAULT_ERROR_CODE_MATCH page_fault_error_code_match 760
CR3_TARGET_COUNT cr3_target_count 764
VM_EXIT_CONTROLS vm_exit_controls 768
VM_EXIT_MSR_STORE_COUNT vm_exit_msr_store_count 772
VM_EXIT_MSR_LOAD_COUNT vm_exit_msr_load_count 776
VM_ENTRY_CONTROLS vm_entry_controls 780
VM_ENTRY_MSR_LOAD_COUNT vm_entry_msr_load_count 784
VM_ENTRY_INTR_INFO_FIELD vm_entry_intr_info_field 788
VM_ENTRY_EXCEPTION_ERROR_CODE vm_entry_exception_error_code 792
VM_ENTRY_INSTRUCTION_LEN vm_entry_instruction_len 796
TPR_THRESHOLD tpr_threshold 800
SECONDARY_VM_EXEC_CONTROL secondary_vm_exec_control 804
VM_INSTRUCTION_ERROR vm_instruction_error 808
VM_EXIT_REASON vm_exit_reason 812
VM_EXIT_INTR_INFO vm_exit_intr_info 816
VM_EXIT_INTR_ERROR_CODE vm_exit_intr_error_code 820
IDT_VECTORING_INFO_FIELD idt_vectoring_info_field 824
IDT_VECTORING_ERROR_CODE idt_vectoring_error_code 828
VM_EXIT_INSTRUCTION_LEN vm_exit_instruction_len 832
VMX_INSTRUCTION_INFO vmx_instruction_info 836
GUEST_ES_LIMIT guest_es_limit 840
GUEST_CS_LIMIT guest_cs_limit 844
GUEST_SS_LIMIT guest_ss_limit 848
GUEST_DS_LIMIT guest_ds_limit 852
GUEST_FS_LIMIT guest_fs_limit 856
GUEST_GS_LIMIT guest_gs_limit 860
GUEST_LDTR_LIMIT guest_ldtr_limit 864
GUEST_TR_LIMIT guest_tr_limit 868
GUEST_GDTR_LIMIT guest_gdtr_limit 872
GUEST_IDTR_LIMIT guest_idtr_limit 876
GUEST_ES_AR_BYTES guest_es_ar_bytes 880
GUEST_CS_AR_BYTES guest_cs_ar_bytes 884
GUEST_SS_AR_BYTES guest_ss_ar_bytes 888
GUEST_DS_AR_BYTES guest_ds_ar_bytes 892
GUEST_FS_AR_BYTES guest_fs_ar_bytes 896
GUEST_GS_AR_BYTES guest_gs_ar_bytes 900
GUEST_LDTR_AR_BYTES guest_ldtr_ar_bytes 904
GUEST_TR_AR_BYTES guest_tr_ar_bytes 908
GUEST_INTERRUPTIBILITY_INFO guest_interruptibility_info 912
GUEST_ACTIVITY_STATE guest_activity_state 916
GUEST_SYSENTER_CS guest_sysenter_cs 920
HOST_IA32_SYSENTER_CS host_ia32_sysenter_cs 924
VMX_PREEMPTION_TIMER_VALUE vmx_preemption_timer_value 928
VIRTUAL_PROCESSOR_ID virtual_processor_id 960
POSTED_INTR_NV posted_intr_nv 962
GUEST_ES_SELECTOR guest_es_selector 964
GUEST_CS_SELECTOR guest_cs_selector 966
GUEST_SS_SELECTOR guest_ss_selector 968
GUEST_DS_SELECTOR guest_ds_selector 970
GUEST_FS_SELECTOR guest_fs_selector 972
GUEST_GS_SELECTOR guest_gs_selector 974
GUEST_LDTR_SELECTOR guest_ldtr_selector 976
GUEST_TR_SELECTOR guest_tr_selector 978
GUEST_INTR_STATUS guest_intr_status 980
HOST_ES_SELECTOR host_es_selector 982
HOST_CS_SELECTOR host_cs_selector 984
HOST_SS_SELECTOR host_ss_selector 986
HOST_DS_SELECTOR host_ds_selector 988
HOST_FS_SELECTOR host_fs_selector 990
HOST_GS_SELECTOR host_gs_selector 992
HOST_TR_SELECTOR host_tr_selector 994
GUEST_PML_INDEX guest_pml_index 996
`;

/** The CHECK_OFFSET entries that are not fields (6.12). */
const V6_12_OTHER_MEMBERS: readonly (readonly [string, number])[] = [
  ["hdr", 0],
  ["abort", 4],
  ["launch_state", 8],
  ["dead_space", 376],
];

/** KVM 6.12 enum encodings with no vmcs12 slot: VMREAD/VMWRITE fail with error 12. */
const NOT_IN_VMCS12 = [
  "LAST_PID_POINTER_INDEX",
  "VE_INFORMATION_ADDRESS",
  "VE_INFORMATION_ADDRESS_HIGH",
  "TERTIARY_VM_EXEC_CONTROL",
  "TERTIARY_VM_EXEC_CONTROL_HIGH",
  "PID_POINTER_TABLE",
  "PID_POINTER_TABLE_HIGH",
  "GUEST_IA32_RTIT_CTL",
  "GUEST_IA32_RTIT_CTL_HIGH",
  "PLE_GAP",
  "PLE_WINDOW",
  "NOTIFY_WINDOW",
  "CR3_TARGET_VALUE0",
  "CR3_TARGET_VALUE1",
  "CR3_TARGET_VALUE2",
  "CR3_TARGET_VALUE3",
];

const pinned = V6_12_FIELDS.trim()
  .split("\n")
  .map((line) => {
    const [name, member, offset] = line.split(" ");
    return { name: name!, member: member!, offset: Number(offset) };
  });

function encodingOf(name: string): number {
  const field = fieldByName(name);
  if (!field) throw new Error(`unknown field ${name}`);
  return field.encoding;
}

describe("vmcs12 identity", () => {
  it("revision and size", () => {
    expect(VMCS12_REVISION).toBe(0x11e57ed0);
    expect(VMCS12_SIZE).toBe(4096);
  });

  it("the packed struct is 998 bytes in both eras (last member guest_pml_index at 996)", () => {
    for (const era of VMCS12_ERAS) {
      const layout = vmcs12Layout(era);
      expect(layout.structSize).toBe(998);
      expect(layout.members.at(-1)).toEqual({
        member: "guest_pml_index",
        offset: 996,
        size: 2,
        field: "GUEST_PML_INDEX",
      });
    }
  });

  it("rejects an unknown era", () => {
    expect(() => vmcs12Layout("v4.0" as Vmcs12Era)).toThrow(/unknown vmcs12 era/);
  });
});

describe("vmcs12 layout, Linux 6.12", () => {
  const layout = vmcs12Layout("v6.12");

  it("pins the offset and member of every field (CHECK_OFFSET + vmcs12_field_offsets)", () => {
    expect(pinned).toHaveLength(141);
    for (const { name, member, offset } of pinned) {
      const encoding = encodingOf(name);
      expect(vmcs12FieldOffset(encoding), name).toBe(offset);
      const stored = layout.fields.find((f) => f.encoding === encoding);
      expect(stored?.member, name).toBe(member);
      expect(layout.members.find((m) => m.member === member)?.offset, member).toBe(offset);
    }
  });

  it("pins the header and dead space; 145 CHECK_OFFSET members in all", () => {
    for (const [member, offset] of V6_12_OTHER_MEMBERS) {
      expect(layout.members.find((m) => m.member === member)?.offset, member).toBe(offset);
    }
    expect(layout.members.find((m) => m.member === "dead_space")?.size).toBe(32);
    const checked = layout.members.filter((m) => m.field !== null || !m.member.startsWith("padding"));
    expect(checked).toHaveLength(145);
  });

  it("every _HIGH half sits at the full field's offset + 4", () => {
    for (const { name, offset } of pinned) {
      const field = fieldByName(name)!;
      const high = vmcs12FieldOffset(field.encoding + 1);
      if (field.width === FIELD_WIDTH.U64) expect(high, `${name}_HIGH`).toBe(offset + 4);
      else expect(high, `${name} + 1`).toBe(VMCS12_UNSUPPORTED);
    }
  });

  it("counts: 178 encodings = 141 base + 37 _HIGH; by type and width as in kvm-vmx.md §2.3", () => {
    expect(layout.fields).toHaveLength(178);
    const base = layout.fields.filter((f) => (f.encoding & 1) === 0);
    expect(base).toHaveLength(141);
    expect(layout.fields.filter((f) => f.encoding & 1)).toHaveLength(37);
    const typeOf = (f: { name: string }) => fieldByName(f.name)!.type;
    const byType = (t: number) => base.filter((f) => typeOf(f) === t).length;
    expect(byType(FIELD_TYPE.GUEST)).toBe(62);
    expect(byType(FIELD_TYPE.CONTROL)).toBe(45);
    expect(byType(FIELD_TYPE.HOST)).toBe(23);
    expect(byType(FIELD_TYPE.EXIT_INFO)).toBe(11);
    const byWidth = (w: number) => base.filter((f) => f.width === w).length;
    expect(byWidth(FIELD_WIDTH.U16)).toBe(19);
    expect(byWidth(FIELD_WIDTH.U32)).toBe(47);
    expect(byWidth(FIELD_WIDTH.U64)).toBe(37);
    expect(byWidth(FIELD_WIDTH.NATURAL)).toBe(38);
  });

  it("the sparse table has 3273 slots (largest: TSC_MULTIPLIER_HIGH at 3272) and 178 populated", () => {
    expect(layout.offsets.length).toBe(3273);
    expect(vmcs12Slot(encodingOf("TSC_MULTIPLIER_HIGH"))).toBe(3272);
    expect(layout.offsets.filter((o) => o !== 0).length).toBe(178);
  });

  it("the 16 enum encodings vmcs12 does not store are unsupported (-1)", () => {
    const kvmEncodings = VMCS_FIELDS.filter((f) => f.inKvmEnum);
    const missing = kvmEncodings.filter((f) => vmcs12FieldOffset(f.encoding) === VMCS12_UNSUPPORTED);
    expect(missing.map((f) => f.name).sort()).toEqual([...NOT_IN_VMCS12].sort());
    expect(kvmEncodings.length - missing.length).toBe(178);
  });

  it("the SDM-only fields and malformed encodings are unsupported", () => {
    for (const f of VMCS_FIELDS.filter((r) => !r.inKvmEnum)) {
      expect(vmcs12FieldOffset(f.encoding), f.name).toBe(VMCS12_UNSUPPORTED);
    }
    const rip = encodingOf("GUEST_RIP");
    expect(vmcs12FieldOffset(rip)).toBe(544);
    expect(vmcs12FieldOffset(rip | 0x8000)).toBe(VMCS12_UNSUPPORTED); // bit 15
    expect(vmcs12FieldOffset(rip + 0x1_0000)).toBe(VMCS12_UNSUPPORTED); // bits 31:16
    expect(vmcs12FieldOffset(rip + 2 ** 32)).toBe(VMCS12_UNSUPPORTED); // a 64-bit register operand
    expect(vmcs12FieldOffset(rip | 0x1000)).toBe(VMCS12_UNSUPPORTED); // bit 12 (reserved): an empty slot
    expect(vmcs12FieldOffset(rip + 1)).toBe(VMCS12_UNSUPPORTED); // natural width has no _HIGH
    expect(vmcs12FieldOffset(-1)).toBe(VMCS12_UNSUPPORTED);
    expect(vmcs12FieldOffset(0)).toBe(960); // VIRTUAL_PROCESSOR_ID: encoding 0 is slot 0, offset 960
  });

  it("every encoding below 0x8000 resolves as the stored field list says", () => {
    const stored = new Map(layout.fields.map((f) => [f.encoding, f.offset]));
    for (let e = 0; e < 0x8000; e++) {
      const want = stored.get(e) ?? VMCS12_UNSUPPORTED;
      if (lookupVmcs12Offset(layout.offsets, e) !== want)
        expect.fail(`${formatFieldEncoding(e)} resolves wrongly`);
    }
  });

  it("members are packed, naturally aligned and sized by their field's width", () => {
    let offset = 0;
    for (const m of layout.members) {
      expect(m.offset, m.member).toBe(offset);
      offset += m.size;
      if (m.field === null) continue;
      const field = fieldByName(m.field)!;
      expect(m.member).toBe(m.field.toLowerCase());
      expect(m.size, m.member).toBe(FIELD_WIDTH_BYTES[field.width]);
      expect(m.offset % m.size, m.member).toBe(0);
    }
  });
});

describe("vmcs12 layout, v5.3 (2019) variant", () => {
  const old = vmcs12Layout("v5.3");
  const modern = vmcs12Layout("v6.12");

  it("stores CR3_TARGET_VALUE0..3 at 376/384/392/400 and no ENCLS bitmap or TSC multiplier", () => {
    expect(vmcs12FieldOffset(encodingOf("CR3_TARGET_VALUE0"), "v5.3")).toBe(376);
    expect(vmcs12FieldOffset(encodingOf("CR3_TARGET_VALUE1"), "v5.3")).toBe(384);
    expect(vmcs12FieldOffset(encodingOf("CR3_TARGET_VALUE2"), "v5.3")).toBe(392);
    expect(vmcs12FieldOffset(encodingOf("CR3_TARGET_VALUE3"), "v5.3")).toBe(400);
    for (const name of [
      "ENCLS_EXITING_BITMAP",
      "ENCLS_EXITING_BITMAP_HIGH",
      "TSC_MULTIPLIER",
      "TSC_MULTIPLIER_HIGH",
    ]) {
      expect(vmcs12FieldOffset(encodingOf(name), "v5.3"), name).toBe(VMCS12_UNSUPPORTED);
      expect(vmcs12FieldOffset(encodingOf(name), "v6.12"), name).not.toBe(VMCS12_UNSUPPORTED);
    }
    expect(vmcs12FieldOffset(encodingOf("CR3_TARGET_VALUE0"), "v6.12")).toBe(VMCS12_UNSUPPORTED);
    expect(old.members.find((m) => m.member === "padding64")).toEqual({
      member: "padding64",
      offset: 320,
      size: 24,
      field: null,
    });
    expect(old.members.some((m) => m.member === "dead_space")).toBe(false);
  });

  it("stores 178 encodings too (143 base + 35 _HIGH), in a 2963-slot table", () => {
    expect(old.fields).toHaveLength(178);
    expect(old.fields.filter((f) => f.encoding & 1)).toHaveLength(35);
    expect(old.offsets.length).toBe(2963); // largest slot: VMX_PREEMPTION_TIMER_VALUE (0x482e)
  });

  it("every field the two eras share has the same offset", () => {
    const modernOffsets = new Map(modern.fields.map((f) => [f.encoding, f.offset]));
    let shared = 0;
    for (const f of old.fields) {
      const other = modernOffsets.get(f.encoding);
      if (other === undefined) continue;
      shared++;
      expect(other, f.name).toBe(f.offset);
    }
    expect(shared).toBe(174);
  });
});

describe("IA32_VMX_VMCS_ENUM", () => {
  it("6.12 computes max index 0x19 (TSC_MULTIPLIER) → 0x32", () => {
    expect(maxVmcs12FieldIndex(vmcs12Layout("v6.12"))).toBe(0x19);
    expect(vmcsEnumMsr("v6.12")).toBe(0x32);
    expect(vmcsEnumMsr()).toBe(0x32);
  });

  it("v5.3 reports the hard-coded index 0x17 → 0x2e, which its own table also gives", () => {
    expect(vmcsEnumMsr("v5.3")).toBe(0x2e);
    expect(maxVmcs12FieldIndex(vmcs12Layout("v5.3"))).toBe(0x17);
  });
});
