import { field, flag, type RegisterLayout } from "@nestvisor/x86-arch";

/**
 * VMX control bits: pin-based, primary/secondary/tertiary processor-based, VM-exit and VM-entry
 * controls (SDM Vol. 3C 25.6–25.8), with KVM 6.12's macro names (asm/vmx.h, bit numbers from
 * asm/vmxfeatures.h). Bits the SDM defines but KVM 6.12 has no macro for are included under a
 * KVM-style name and listed in `CONTROLS_NOT_NAMED_BY_KVM`. Also the default1 classes (SDM A.2)
 * and the fields of IA32_VMX_BASIC and IA32_VMX_MISC (SDM A.1, A.6; kvm: asm/vmx.h helpers).
 */

/** Pin-based VM-execution controls (SDM 25.6.1). */
export const PIN_BASED_CTLS = {
  PIN_BASED_EXT_INTR_MASK: 1 << 0,
  PIN_BASED_NMI_EXITING: 1 << 3,
  PIN_BASED_VIRTUAL_NMIS: 1 << 5,
  PIN_BASED_VMX_PREEMPTION_TIMER: 1 << 6,
  PIN_BASED_POSTED_INTR: 1 << 7,
} as const;

/** Primary processor-based VM-execution controls (SDM 25.6.2). */
export const CPU_BASED_CTLS = {
  CPU_BASED_INTR_WINDOW_EXITING: 1 << 2,
  CPU_BASED_USE_TSC_OFFSETTING: 1 << 3,
  CPU_BASED_HLT_EXITING: 1 << 7,
  CPU_BASED_INVLPG_EXITING: 1 << 9,
  CPU_BASED_MWAIT_EXITING: 1 << 10,
  CPU_BASED_RDPMC_EXITING: 1 << 11,
  CPU_BASED_RDTSC_EXITING: 1 << 12,
  CPU_BASED_CR3_LOAD_EXITING: 1 << 15,
  CPU_BASED_CR3_STORE_EXITING: 1 << 16,
  CPU_BASED_ACTIVATE_TERTIARY_CONTROLS: 1 << 17,
  CPU_BASED_CR8_LOAD_EXITING: 1 << 19,
  CPU_BASED_CR8_STORE_EXITING: 1 << 20,
  CPU_BASED_TPR_SHADOW: 1 << 21,
  CPU_BASED_NMI_WINDOW_EXITING: 1 << 22,
  CPU_BASED_MOV_DR_EXITING: 1 << 23,
  CPU_BASED_UNCOND_IO_EXITING: 1 << 24,
  CPU_BASED_USE_IO_BITMAPS: 1 << 25,
  CPU_BASED_MONITOR_TRAP_FLAG: 1 << 27,
  CPU_BASED_USE_MSR_BITMAPS: 1 << 28,
  CPU_BASED_MONITOR_EXITING: 1 << 29,
  CPU_BASED_PAUSE_EXITING: 1 << 30,
  CPU_BASED_ACTIVATE_SECONDARY_CONTROLS: 2 ** 31,
} as const;

/** Secondary processor-based VM-execution controls (SDM 25.6.2). */
export const SECONDARY_EXEC_CTLS = {
  SECONDARY_EXEC_VIRTUALIZE_APIC_ACCESSES: 1 << 0,
  SECONDARY_EXEC_ENABLE_EPT: 1 << 1,
  SECONDARY_EXEC_DESC: 1 << 2,
  SECONDARY_EXEC_ENABLE_RDTSCP: 1 << 3,
  SECONDARY_EXEC_VIRTUALIZE_X2APIC_MODE: 1 << 4,
  SECONDARY_EXEC_ENABLE_VPID: 1 << 5,
  SECONDARY_EXEC_WBINVD_EXITING: 1 << 6,
  SECONDARY_EXEC_UNRESTRICTED_GUEST: 1 << 7,
  SECONDARY_EXEC_APIC_REGISTER_VIRT: 1 << 8,
  SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY: 1 << 9,
  SECONDARY_EXEC_PAUSE_LOOP_EXITING: 1 << 10,
  SECONDARY_EXEC_RDRAND_EXITING: 1 << 11,
  SECONDARY_EXEC_ENABLE_INVPCID: 1 << 12,
  SECONDARY_EXEC_ENABLE_VMFUNC: 1 << 13,
  SECONDARY_EXEC_SHADOW_VMCS: 1 << 14,
  SECONDARY_EXEC_ENCLS_EXITING: 1 << 15,
  SECONDARY_EXEC_RDSEED_EXITING: 1 << 16,
  SECONDARY_EXEC_ENABLE_PML: 1 << 17,
  SECONDARY_EXEC_EPT_VIOLATION_VE: 1 << 18,
  SECONDARY_EXEC_PT_CONCEAL_VMX: 1 << 19,
  SECONDARY_EXEC_ENABLE_XSAVES: 1 << 20,
  /** SDM only (no KVM 6.12 macro). */
  SECONDARY_EXEC_PASID_TRANSLATION: 1 << 21,
  SECONDARY_EXEC_MODE_BASED_EPT_EXEC: 1 << 22,
  /** SDM only (no KVM 6.12 macro). */
  SECONDARY_EXEC_EPT_SPP: 1 << 23,
  SECONDARY_EXEC_PT_USE_GPA: 1 << 24,
  SECONDARY_EXEC_TSC_SCALING: 1 << 25,
  SECONDARY_EXEC_ENABLE_USR_WAIT_PAUSE: 1 << 26,
  /** SDM only (no KVM 6.12 macro). */
  SECONDARY_EXEC_ENABLE_PCONFIG: 1 << 27,
  /** SDM only; KVM 6.12 has VMX_FEATURE_ENCLV_EXITING but no SECONDARY_EXEC_ macro. */
  SECONDARY_EXEC_ENCLV_EXITING: 1 << 28,
  /** SDM only (no KVM 6.12 macro): EPC virtualization extensions. */
  SECONDARY_EXEC_EPC_VIRT: 1 << 29,
  SECONDARY_EXEC_BUS_LOCK_DETECTION: 1 << 30,
  SECONDARY_EXEC_NOTIFY_VM_EXITING: 2 ** 31,
} as const;

/**
 * Tertiary processor-based VM-execution controls, a 64-bit field (SDM 25.6.2), as
 * masks of its low word (no control above bit 31 is defined).
 */
export const TERTIARY_EXEC_CTLS = {
  /** SDM only (no KVM 6.12 macro). */
  TERTIARY_EXEC_LOADIWKEY_EXITING: 1 << 0,
  /** SDM only (no KVM 6.12 macro). */
  TERTIARY_EXEC_ENABLE_HLAT: 1 << 1,
  /** SDM only (no KVM 6.12 macro). */
  TERTIARY_EXEC_EPT_PAGING_WRITE: 1 << 2,
  /** SDM only (no KVM 6.12 macro). */
  TERTIARY_EXEC_GUEST_PAGING_VERIFY: 1 << 3,
  TERTIARY_EXEC_IPI_VIRT: 1 << 4,
  /** SDM only (no KVM 6.12 macro). */
  TERTIARY_EXEC_ENABLE_GPAW: 1 << 5,
  /** SDM only (no KVM 6.12 macro). */
  TERTIARY_EXEC_VIRT_SPEC_CTRL: 1 << 7,
} as const;

/** Primary VM-exit controls (SDM 25.7.1). */
export const VM_EXIT_CTLS = {
  /** 0x4 (bit 2). Some old mirrors of asm/vmx.h say 0x2; that value is wrong. */
  VM_EXIT_SAVE_DEBUG_CONTROLS: 1 << 2,
  VM_EXIT_HOST_ADDR_SPACE_SIZE: 1 << 9,
  VM_EXIT_LOAD_IA32_PERF_GLOBAL_CTRL: 1 << 12,
  VM_EXIT_ACK_INTR_ON_EXIT: 1 << 15,
  VM_EXIT_SAVE_IA32_PAT: 1 << 18,
  VM_EXIT_LOAD_IA32_PAT: 1 << 19,
  VM_EXIT_SAVE_IA32_EFER: 1 << 20,
  VM_EXIT_LOAD_IA32_EFER: 1 << 21,
  VM_EXIT_SAVE_VMX_PREEMPTION_TIMER: 1 << 22,
  VM_EXIT_CLEAR_BNDCFGS: 1 << 23,
  VM_EXIT_PT_CONCEAL_PIP: 1 << 24,
  VM_EXIT_CLEAR_IA32_RTIT_CTL: 1 << 25,
  /** SDM only (no KVM 6.12 macro). */
  VM_EXIT_CLEAR_IA32_LBR_CTL: 1 << 26,
  /** SDM only (no KVM 6.12 macro). */
  VM_EXIT_CLEAR_UINV: 1 << 27,
  /** SDM only (later kernels name it, with nested CET support). */
  VM_EXIT_LOAD_CET_STATE: 1 << 28,
  /** SDM only (no KVM 6.12 macro). */
  VM_EXIT_LOAD_IA32_PKRS: 1 << 29,
  /** SDM only (no KVM 6.12 macro). */
  VM_EXIT_SAVE_IA32_PERF_GLOBAL_CTRL: 1 << 30,
  /** SDM only (no KVM 6.12 macro). */
  VM_EXIT_ACTIVATE_SECONDARY_CONTROLS: 2 ** 31,
} as const;

/** VM-entry controls (SDM 25.8.1). */
export const VM_ENTRY_CTLS = {
  /** 0x4 (bit 2), like its VM-exit twin. */
  VM_ENTRY_LOAD_DEBUG_CONTROLS: 1 << 2,
  VM_ENTRY_IA32E_MODE: 1 << 9,
  VM_ENTRY_SMM: 1 << 10,
  VM_ENTRY_DEACT_DUAL_MONITOR: 1 << 11,
  VM_ENTRY_LOAD_IA32_PERF_GLOBAL_CTRL: 1 << 13,
  VM_ENTRY_LOAD_IA32_PAT: 1 << 14,
  VM_ENTRY_LOAD_IA32_EFER: 1 << 15,
  VM_ENTRY_LOAD_BNDCFGS: 1 << 16,
  VM_ENTRY_PT_CONCEAL_PIP: 1 << 17,
  VM_ENTRY_LOAD_IA32_RTIT_CTL: 1 << 18,
  /** SDM only (no KVM 6.12 macro). */
  VM_ENTRY_LOAD_UINV: 1 << 19,
  /** SDM only (later kernels name it, with nested CET support). */
  VM_ENTRY_LOAD_CET_STATE: 1 << 20,
  /** SDM only (no KVM 6.12 macro). */
  VM_ENTRY_LOAD_IA32_LBR_CTL: 1 << 21,
  /** SDM only (no KVM 6.12 macro). */
  VM_ENTRY_LOAD_IA32_PKRS: 1 << 22,
  /** SDM only (no KVM 6.12 macro). */
  VM_ENTRY_LOAD_IA32_FRED: 1 << 23,
} as const;

/** Names above that KVM 6.12's headers do not define (the SDM does define the bit). */
export const CONTROLS_NOT_NAMED_BY_KVM: ReadonlySet<string> = new Set([
  "SECONDARY_EXEC_PASID_TRANSLATION",
  "SECONDARY_EXEC_EPT_SPP",
  "SECONDARY_EXEC_ENABLE_PCONFIG",
  "SECONDARY_EXEC_ENCLV_EXITING",
  "SECONDARY_EXEC_EPC_VIRT",
  "TERTIARY_EXEC_LOADIWKEY_EXITING",
  "TERTIARY_EXEC_ENABLE_HLAT",
  "TERTIARY_EXEC_EPT_PAGING_WRITE",
  "TERTIARY_EXEC_GUEST_PAGING_VERIFY",
  "TERTIARY_EXEC_ENABLE_GPAW",
  "TERTIARY_EXEC_VIRT_SPEC_CTRL",
  "VM_EXIT_CLEAR_IA32_LBR_CTL",
  "VM_EXIT_CLEAR_UINV",
  "VM_EXIT_LOAD_CET_STATE",
  "VM_EXIT_LOAD_IA32_PKRS",
  "VM_EXIT_SAVE_IA32_PERF_GLOBAL_CTRL",
  "VM_EXIT_ACTIVATE_SECONDARY_CONTROLS",
  "VM_ENTRY_LOAD_UINV",
  "VM_ENTRY_LOAD_CET_STATE",
  "VM_ENTRY_LOAD_IA32_LBR_CTL",
  "VM_ENTRY_LOAD_IA32_PKRS",
  "VM_ENTRY_LOAD_IA32_FRED",
]);

/**
 * Names used by the 2019 (v5.3) kernel for bits KVM has since renamed, mapped to the 6.12 name
 * (kvm-vmx.md §11; the RDTSCP and XSAVES renames are visible in later nested.c diffs).
 */
export const CONTROL_NAMES_2019 = {
  CPU_BASED_VIRTUAL_INTR_PENDING: "CPU_BASED_INTR_WINDOW_EXITING",
  CPU_BASED_VIRTUAL_NMI_PENDING: "CPU_BASED_NMI_WINDOW_EXITING",
  CPU_BASED_USE_TSC_OFFSETING: "CPU_BASED_USE_TSC_OFFSETTING",
  SECONDARY_EXEC_RDTSCP: "SECONDARY_EXEC_ENABLE_RDTSCP",
  SECONDARY_EXEC_XSAVES: "SECONDARY_EXEC_ENABLE_XSAVES",
} as const;

/** The same renamed bits as masks under their 2019 names. */
export const CONTROLS_2019 = {
  CPU_BASED_VIRTUAL_INTR_PENDING: CPU_BASED_CTLS.CPU_BASED_INTR_WINDOW_EXITING,
  CPU_BASED_VIRTUAL_NMI_PENDING: CPU_BASED_CTLS.CPU_BASED_NMI_WINDOW_EXITING,
  CPU_BASED_USE_TSC_OFFSETING: CPU_BASED_CTLS.CPU_BASED_USE_TSC_OFFSETTING,
  SECONDARY_EXEC_RDTSCP: SECONDARY_EXEC_CTLS.SECONDARY_EXEC_ENABLE_RDTSCP,
  SECONDARY_EXEC_XSAVES: SECONDARY_EXEC_CTLS.SECONDARY_EXEC_ENABLE_XSAVES,
} as const;

/**
 * Default1 classes (SDM A.2): reserved bits that read 1 in the allowed-0 half of the non-TRUE
 * capability MSRs, so a VMM that only knows those MSRs keeps them set. KVM's names:
 * PIN_BASED_/CPU_BASED_/VM_EXIT_/VM_ENTRY_ALWAYSON_WITHOUT_TRUE_MSR. Secondary and tertiary
 * controls have no default1 bits.
 */
export const ALWAYSON_WITHOUT_TRUE_MSR = {
  /** Bits 1, 2, 4. */
  PIN_BASED: 0x00000016,
  /** Bits 1, 4–6, 8, 13–16, 26 (15 and 16 are CR3-load/store exiting). */
  CPU_BASED: 0x0401e172,
  /** Bits 0–8, 10, 11, 13, 14, 16, 17 (2 is save debug controls). */
  VM_EXIT: 0x00036dff,
  /** Bits 0–8, 12 (2 is load debug controls). */
  VM_ENTRY: 0x000011ff,
} as const;

const SDM_ONLY = " (SDM; no KVM 6.12 macro)";

/** Pin-based controls layout (SDM 25.6.1). */
export const PIN_BASED_CTLS_LAYOUT: RegisterLayout = {
  name: "Pin-based VM-execution controls",
  width: 32,
  source: "SDM Vol. 3C 25.6.1; kvm: asm/vmx.h",
  fields: [
    flag("PIN_BASED_EXT_INTR_MASK", 0, "external interrupts cause VM exits (RFLAGS.IF stops mattering)"),
    flag("PIN_BASED_NMI_EXITING", 3, "NMIs cause VM exits"),
    flag("PIN_BASED_VIRTUAL_NMIS", 5, "virtual-NMI blocking is tracked for the guest"),
    flag("PIN_BASED_VMX_PREEMPTION_TIMER", 6, "the VMX-preemption timer counts down in the guest"),
    flag("PIN_BASED_POSTED_INTR", 7, "posted interrupts with the notification vector are processed"),
  ],
};

/** Primary processor-based controls layout (SDM 25.6.2). */
export const CPU_BASED_CTLS_LAYOUT: RegisterLayout = {
  name: "Primary processor-based VM-execution controls",
  width: 32,
  source: "SDM Vol. 3C 25.6.2; kvm: asm/vmx.h",
  fields: [
    flag("CPU_BASED_INTR_WINDOW_EXITING", 2, "exit as soon as the guest can take an interrupt"),
    flag("CPU_BASED_USE_TSC_OFFSETTING", 3, "RDTSC/RDTSCP/IA32_TSC reads add the TSC offset"),
    flag("CPU_BASED_HLT_EXITING", 7, "HLT causes a VM exit"),
    flag("CPU_BASED_INVLPG_EXITING", 9, "INVLPG causes a VM exit"),
    flag("CPU_BASED_MWAIT_EXITING", 10, "MWAIT causes a VM exit"),
    flag("CPU_BASED_RDPMC_EXITING", 11, "RDPMC causes a VM exit"),
    flag("CPU_BASED_RDTSC_EXITING", 12, "RDTSC and RDTSCP cause VM exits"),
    flag("CPU_BASED_CR3_LOAD_EXITING", 15, "MOV to CR3 exits unless the value is a CR3-target value"),
    flag("CPU_BASED_CR3_STORE_EXITING", 16, "MOV from CR3 causes a VM exit"),
    flag("CPU_BASED_ACTIVATE_TERTIARY_CONTROLS", 17, "the tertiary controls field is used"),
    flag("CPU_BASED_CR8_LOAD_EXITING", 19, "MOV to CR8 causes a VM exit"),
    flag("CPU_BASED_CR8_STORE_EXITING", 20, "MOV from CR8 causes a VM exit"),
    flag("CPU_BASED_TPR_SHADOW", 21, "TPR virtualization through the virtual-APIC page"),
    flag("CPU_BASED_NMI_WINDOW_EXITING", 22, "exit as soon as there is no virtual-NMI blocking"),
    flag("CPU_BASED_MOV_DR_EXITING", 23, "MOV to/from a debug register causes a VM exit"),
    flag("CPU_BASED_UNCOND_IO_EXITING", 24, "every I/O instruction exits (ignored with I/O bitmaps)"),
    flag("CPU_BASED_USE_IO_BITMAPS", 25, "I/O bitmaps A and B choose which ports exit"),
    flag("CPU_BASED_MONITOR_TRAP_FLAG", 27, "monitor trap flag: exit after the next guest instruction"),
    flag("CPU_BASED_USE_MSR_BITMAPS", 28, "MSR bitmaps choose which RDMSR/WRMSR exit"),
    flag("CPU_BASED_MONITOR_EXITING", 29, "MONITOR causes a VM exit"),
    flag("CPU_BASED_PAUSE_EXITING", 30, "PAUSE causes a VM exit"),
    flag("CPU_BASED_ACTIVATE_SECONDARY_CONTROLS", 31, "the secondary controls field is used"),
  ],
};

/** Secondary processor-based controls layout (SDM 25.6.2). */
export const SECONDARY_EXEC_CTLS_LAYOUT: RegisterLayout = {
  name: "Secondary processor-based VM-execution controls",
  width: 32,
  source: "SDM Vol. 3C 25.6.2; kvm: asm/vmx.h, asm/vmxfeatures.h word 2",
  fields: [
    flag("SECONDARY_EXEC_VIRTUALIZE_APIC_ACCESSES", 0, "accesses to the APIC-access page are virtualized"),
    flag("SECONDARY_EXEC_ENABLE_EPT", 1, "extended page tables translate guest-physical addresses"),
    flag("SECONDARY_EXEC_DESC", 2, "LGDT/LIDT/LLDT/LTR/SGDT/SIDT/SLDT/STR cause VM exits"),
    flag("SECONDARY_EXEC_ENABLE_RDTSCP", 3, "RDTSCP does not raise #UD"),
    flag("SECONDARY_EXEC_VIRTUALIZE_X2APIC_MODE", 4, "x2APIC MSR accesses to the TPR are virtualized"),
    flag("SECONDARY_EXEC_ENABLE_VPID", 5, "cached translations are tagged with the VPID"),
    flag("SECONDARY_EXEC_WBINVD_EXITING", 6, "WBINVD/WBNOINVD cause VM exits"),
    flag("SECONDARY_EXEC_UNRESTRICTED_GUEST", 7, "the guest may run unpaged or in real mode"),
    flag("SECONDARY_EXEC_APIC_REGISTER_VIRT", 8, "APIC register reads are served from the virtual-APIC page"),
    flag("SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY", 9, "pending virtual interrupts are evaluated and delivered"),
    flag("SECONDARY_EXEC_PAUSE_LOOP_EXITING", 10, "PAUSE loops at CPL 0 longer than PLE_WINDOW exit"),
    flag("SECONDARY_EXEC_RDRAND_EXITING", 11, "RDRAND causes a VM exit"),
    flag("SECONDARY_EXEC_ENABLE_INVPCID", 12, "INVPCID does not raise #UD"),
    flag("SECONDARY_EXEC_ENABLE_VMFUNC", 13, "VMFUNC is available to the guest"),
    flag("SECONDARY_EXEC_SHADOW_VMCS", 14, "guest VMREAD/VMWRITE may use a shadow VMCS"),
    flag("SECONDARY_EXEC_ENCLS_EXITING", 15, "ENCLS leaves selected by the ENCLS-exiting bitmap exit"),
    flag("SECONDARY_EXEC_RDSEED_EXITING", 16, "RDSEED causes a VM exit"),
    flag("SECONDARY_EXEC_ENABLE_PML", 17, "page-modification logging of dirty guest-physical pages"),
    flag("SECONDARY_EXEC_EPT_VIOLATION_VE", 18, "some EPT violations become #VE in the guest"),
    flag("SECONDARY_EXEC_PT_CONCEAL_VMX", 19, "Intel PT output hides that the guest runs in VMX"),
    flag("SECONDARY_EXEC_ENABLE_XSAVES", 20, "XSAVES/XRSTORS do not raise #UD"),
    flag("SECONDARY_EXEC_PASID_TRANSLATION", 21, `ENQCMD/ENQCMDS PASIDs are translated${SDM_ONLY}`),
    flag("SECONDARY_EXEC_MODE_BASED_EPT_EXEC", 22, "EPT has separate execute bits for user and supervisor"),
    flag("SECONDARY_EXEC_EPT_SPP", 23, `sub-page write permissions for EPT${SDM_ONLY}`),
    flag("SECONDARY_EXEC_PT_USE_GPA", 24, "Intel PT output addresses are guest-physical"),
    flag("SECONDARY_EXEC_TSC_SCALING", 25, "TSC reads are scaled by the TSC multiplier"),
    flag("SECONDARY_EXEC_ENABLE_USR_WAIT_PAUSE", 26, "TPAUSE/UMONITOR/UMWAIT do not raise #UD"),
    flag("SECONDARY_EXEC_ENABLE_PCONFIG", 27, `PCONFIG does not raise #UD${SDM_ONLY}`),
    flag(
      "SECONDARY_EXEC_ENCLV_EXITING",
      28,
      `ENCLV leaves selected by the ENCLV-exiting bitmap exit${SDM_ONLY}`,
    ),
    flag("SECONDARY_EXEC_EPC_VIRT", 29, `EPC virtualization extensions${SDM_ONLY}`),
    flag("SECONDARY_EXEC_BUS_LOCK_DETECTION", 30, "a bus lock in the guest causes a VM exit"),
    flag("SECONDARY_EXEC_NOTIFY_VM_EXITING", 31, "exit when no event window opens within the notify window"),
  ],
};

/** Tertiary processor-based controls layout (SDM 25.6.2), a 64-bit field. */
export const TERTIARY_EXEC_CTLS_LAYOUT: RegisterLayout = {
  name: "Tertiary processor-based VM-execution controls",
  width: 64,
  source: "SDM Vol. 3C 25.6.2; kvm: asm/vmx.h (IPI_VIRT only)",
  fields: [
    flag("TERTIARY_EXEC_LOADIWKEY_EXITING", 0, `LOADIWKEY causes a VM exit${SDM_ONLY}`),
    flag("TERTIARY_EXEC_ENABLE_HLAT", 1, `hypervisor-managed linear-address translation${SDM_ONLY}`),
    flag("TERTIARY_EXEC_EPT_PAGING_WRITE", 2, `EPT paging-write control${SDM_ONLY}`),
    flag("TERTIARY_EXEC_GUEST_PAGING_VERIFY", 3, `guest-paging verification${SDM_ONLY}`),
    flag("TERTIARY_EXEC_IPI_VIRT", 4, "IPIs sent through the ICR are virtualized"),
    flag("TERTIARY_EXEC_ENABLE_GPAW", 5, `guest-physical address width control${SDM_ONLY}`),
    flag("TERTIARY_EXEC_VIRT_SPEC_CTRL", 7, `IA32_SPEC_CTRL is virtualized by mask and shadow${SDM_ONLY}`),
  ],
};

/** Primary VM-exit controls layout (SDM 25.7.1). */
export const VM_EXIT_CTLS_LAYOUT: RegisterLayout = {
  name: "Primary VM-exit controls",
  width: 32,
  source: "SDM Vol. 3C 25.7.1; kvm: asm/vmx.h",
  fields: [
    flag("VM_EXIT_SAVE_DEBUG_CONTROLS", 2, "DR7 and IA32_DEBUGCTL are saved to the guest-state area"),
    flag("VM_EXIT_HOST_ADDR_SPACE_SIZE", 9, "the host runs in 64-bit mode after the exit"),
    flag(
      "VM_EXIT_LOAD_IA32_PERF_GLOBAL_CTRL",
      12,
      "IA32_PERF_GLOBAL_CTRL is loaded from the host-state area",
    ),
    flag(
      "VM_EXIT_ACK_INTR_ON_EXIT",
      15,
      "an exiting external interrupt is acknowledged and its vector saved",
    ),
    flag("VM_EXIT_SAVE_IA32_PAT", 18, "IA32_PAT is saved to the guest-state area"),
    flag("VM_EXIT_LOAD_IA32_PAT", 19, "IA32_PAT is loaded from the host-state area"),
    flag("VM_EXIT_SAVE_IA32_EFER", 20, "IA32_EFER is saved to the guest-state area"),
    flag("VM_EXIT_LOAD_IA32_EFER", 21, "IA32_EFER is loaded from the host-state area"),
    flag("VM_EXIT_SAVE_VMX_PREEMPTION_TIMER", 22, "the preemption-timer value is saved"),
    flag("VM_EXIT_CLEAR_BNDCFGS", 23, "IA32_BNDCFGS is cleared"),
    flag("VM_EXIT_PT_CONCEAL_PIP", 24, "Intel PT does not report the exit (PIP/VMCS packets)"),
    flag("VM_EXIT_CLEAR_IA32_RTIT_CTL", 25, "IA32_RTIT_CTL is cleared"),
    flag("VM_EXIT_CLEAR_IA32_LBR_CTL", 26, `IA32_LBR_CTL is cleared${SDM_ONLY}`),
    flag("VM_EXIT_CLEAR_UINV", 27, `UINV is cleared${SDM_ONLY}`),
    flag("VM_EXIT_LOAD_CET_STATE", 28, `host CET state is loaded${SDM_ONLY}`),
    flag("VM_EXIT_LOAD_IA32_PKRS", 29, `IA32_PKRS is loaded from the host-state area${SDM_ONLY}`),
    flag("VM_EXIT_SAVE_IA32_PERF_GLOBAL_CTRL", 30, `IA32_PERF_GLOBAL_CTRL is saved${SDM_ONLY}`),
    flag(
      "VM_EXIT_ACTIVATE_SECONDARY_CONTROLS",
      31,
      `the secondary VM-exit controls field is used${SDM_ONLY}`,
    ),
  ],
};

/** VM-entry controls layout (SDM 25.8.1). */
export const VM_ENTRY_CTLS_LAYOUT: RegisterLayout = {
  name: "VM-entry controls",
  width: 32,
  source: "SDM Vol. 3C 25.8.1; kvm: asm/vmx.h",
  fields: [
    flag("VM_ENTRY_LOAD_DEBUG_CONTROLS", 2, "DR7 and IA32_DEBUGCTL are loaded from the guest-state area"),
    flag("VM_ENTRY_IA32E_MODE", 9, "the guest is in IA-32e mode after entry (EFER.LMA = 1)"),
    flag("VM_ENTRY_SMM", 10, "entry to SMM (dual-monitor treatment only)"),
    flag("VM_ENTRY_DEACT_DUAL_MONITOR", 11, "the dual-monitor treatment is deactivated"),
    flag(
      "VM_ENTRY_LOAD_IA32_PERF_GLOBAL_CTRL",
      13,
      "IA32_PERF_GLOBAL_CTRL is loaded from the guest-state area",
    ),
    flag("VM_ENTRY_LOAD_IA32_PAT", 14, "IA32_PAT is loaded from the guest-state area"),
    flag("VM_ENTRY_LOAD_IA32_EFER", 15, "IA32_EFER is loaded from the guest-state area"),
    flag("VM_ENTRY_LOAD_BNDCFGS", 16, "IA32_BNDCFGS is loaded from the guest-state area"),
    flag("VM_ENTRY_PT_CONCEAL_PIP", 17, "Intel PT does not report the entry"),
    flag("VM_ENTRY_LOAD_IA32_RTIT_CTL", 18, "IA32_RTIT_CTL is loaded from the guest-state area"),
    flag("VM_ENTRY_LOAD_UINV", 19, `UINV is loaded${SDM_ONLY}`),
    flag("VM_ENTRY_LOAD_CET_STATE", 20, `guest CET state is loaded${SDM_ONLY}`),
    flag("VM_ENTRY_LOAD_IA32_LBR_CTL", 21, `guest IA32_LBR_CTL is loaded${SDM_ONLY}`),
    flag("VM_ENTRY_LOAD_IA32_PKRS", 22, `guest IA32_PKRS is loaded${SDM_ONLY}`),
    flag("VM_ENTRY_LOAD_IA32_FRED", 23, `guest FRED state is loaded${SDM_ONLY}`),
  ],
};

/** The six classes of VMX controls. */
export const CONTROL_CLASS = {
  PIN: "pin",
  PRIMARY: "primary",
  SECONDARY: "secondary",
  TERTIARY: "tertiary",
  EXIT: "exit",
  ENTRY: "entry",
} as const;
export type ControlClass = (typeof CONTROL_CLASS)[keyof typeof CONTROL_CLASS];

/** One class of controls: its bits, layout and default1 mask. */
export interface ControlClassInfo {
  readonly cls: ControlClass;
  readonly bits: Readonly<Record<string, number>>;
  readonly layout: RegisterLayout;
  /** Default1 bits (SDM A.2); 0 for secondary and tertiary controls. */
  readonly default1: number;
}

/** Every control class, for lookup by class. */
export const CONTROL_CLASSES: Readonly<Record<ControlClass, ControlClassInfo>> = Object.freeze({
  pin: {
    cls: "pin",
    bits: PIN_BASED_CTLS,
    layout: PIN_BASED_CTLS_LAYOUT,
    default1: ALWAYSON_WITHOUT_TRUE_MSR.PIN_BASED,
  },
  primary: {
    cls: "primary",
    bits: CPU_BASED_CTLS,
    layout: CPU_BASED_CTLS_LAYOUT,
    default1: ALWAYSON_WITHOUT_TRUE_MSR.CPU_BASED,
  },
  secondary: { cls: "secondary", bits: SECONDARY_EXEC_CTLS, layout: SECONDARY_EXEC_CTLS_LAYOUT, default1: 0 },
  tertiary: { cls: "tertiary", bits: TERTIARY_EXEC_CTLS, layout: TERTIARY_EXEC_CTLS_LAYOUT, default1: 0 },
  exit: {
    cls: "exit",
    bits: VM_EXIT_CTLS,
    layout: VM_EXIT_CTLS_LAYOUT,
    default1: ALWAYSON_WITHOUT_TRUE_MSR.VM_EXIT,
  },
  entry: {
    cls: "entry",
    bits: VM_ENTRY_CTLS,
    layout: VM_ENTRY_CTLS_LAYOUT,
    default1: ALWAYSON_WITHOUT_TRUE_MSR.VM_ENTRY,
  },
});

/** A control bit found by name. */
export interface ControlBit {
  readonly cls: ControlClass;
  /** The 6.12 name (a 2019 alias resolves to it). */
  readonly name: string;
  readonly bit: number;
  /** Mask of the bit in its (low) 32-bit word. */
  readonly mask: number;
  /** False for bits only the SDM names (see `CONTROLS_NOT_NAMED_BY_KVM`). */
  readonly kvmNamed: boolean;
}

/** Finds a control bit by name (case-insensitive; 2019 names accepted). */
export function findControl(name: string): ControlBit | undefined {
  const upper = name.trim().toUpperCase();
  const resolved = (CONTROL_NAMES_2019 as Readonly<Record<string, string>>)[upper] ?? upper;
  for (const info of Object.values(CONTROL_CLASSES)) {
    const mask = info.bits[resolved];
    if (mask === undefined) continue;
    return {
      cls: info.cls,
      name: resolved,
      bit: Math.log2(mask),
      mask,
      kvmNamed: !CONTROLS_NOT_NAMED_BY_KVM.has(resolved),
    };
  }
  return undefined;
}

/**
 * IA32_VMX_BASIC bits 63:32 as masks of the MSR's high word (SDM A.1; kvm: asm/vmx.h
 * VMX_BASIC_*). Bits 30:0 of the low word hold the VMCS revision identifier.
 */
export const VMX_BASIC_HI = {
  /** Bits 44:32: bytes to allocate for the VMXON region and each VMCS (at most 4096). */
  VMCS_SIZE_MASK: 0x1fff,
  /** Bit 48: addresses in VMXON/VMCS/VMCS pointers are limited to 32 bits. */
  VMX_BASIC_32BIT_PHYS_ADDR_ONLY: 1 << 16,
  /** Bit 49: the dual-monitor treatment of SMIs and SMM is supported. */
  VMX_BASIC_DUAL_MONITOR_TREATMENT: 1 << 17,
  /** Bits 53:50: memory type for the VMCS and referenced structures (0 UC, 6 WB). */
  MEM_TYPE_SHIFT: 18,
  MEM_TYPE_MASK: 0xf << 18,
  /** Bit 54: INS/OUTS exits report the VM-exit instruction-information field. */
  VMX_BASIC_INOUT: 1 << 22,
  /** Bit 55: the IA32_VMX_TRUE_*_CTLS MSRs exist. */
  VMX_BASIC_TRUE_CTLS: 1 << 23,
  /** Bit 56: hardware exceptions may be injected without the error-code consistency check (post-6.12 KVM names it). */
  VMX_BASIC_NO_HW_ERROR_CODE_CC: 1 << 24,
  /** Bit 58: the nested-exception support of FRED (post-6.12 KVM names it). */
  VMX_BASIC_NESTED_EXCEPTION: 1 << 26,
} as const;

/** IA32_VMX_BASIC memory types (SDM A.1; the same encodings as PAT/MTRR). */
export const VMX_BASIC_MEM_TYPE = { UC: 0, WB: 6 } as const;

/** IA32_VMX_BASIC layout (SDM A.1). */
export const VMX_BASIC_LAYOUT: RegisterLayout = {
  name: "IA32_VMX_BASIC",
  width: 64,
  source: "SDM Vol. 3D A.1; kvm: asm/vmx.h vmx_basic_*",
  fields: [
    field("REVISION_ID", 0, 31, "VMCS revision identifier software must write into VMXON/VMCS regions"),
    field("VMCS_SIZE", 32, 13, "bytes to allocate for the VMXON region and each VMCS"),
    flag("PHYS_ADDR_32BIT_ONLY", 48, "VMXON/VMCS physical addresses are limited to 32 bits"),
    flag("DUAL_MONITOR", 49, "dual-monitor treatment of SMIs and SMM is supported"),
    field("MEM_TYPE", 50, 4, "memory type for the VMCS and data structures it references (6 = WB)"),
    flag("INOUT", 54, "INS/OUTS exits report instruction information"),
    flag("TRUE_CTLS", 55, "the IA32_VMX_TRUE_*_CTLS MSRs are present"),
    flag("NO_HW_ERROR_CODE_CC", 56, "hardware exceptions may be injected with or without an error code"),
    flag("NESTED_EXCEPTION", 58, "FRED nested-exception support"),
  ],
};

/** VMCS revision identifier, bits 30:0 of IA32_VMX_BASIC (kvm: vmx_basic_vmcs_revision_id). */
export function vmxBasicRevision(lo: number): number {
  return (lo & 0x7fffffff) >>> 0;
}

/** VMCS region size, bits 44:32 (kvm: vmx_basic_vmcs_size). */
export function vmxBasicVmcsSize(hi: number): number {
  return hi & VMX_BASIC_HI.VMCS_SIZE_MASK;
}

/** VMCS memory type, bits 53:50 (kvm: vmx_basic_vmcs_mem_type). */
export function vmxBasicMemType(hi: number): number {
  return (hi & VMX_BASIC_HI.MEM_TYPE_MASK) >>> VMX_BASIC_HI.MEM_TYPE_SHIFT;
}

/** Packs revision, size and memory type into IA32_VMX_BASIC halves (kvm: vmx_basic_encode_vmcs_info). */
export function encodeVmxBasic(revision: number, size: number, memType: number): { lo: number; hi: number } {
  return {
    lo: vmxBasicRevision(revision),
    hi: ((size & VMX_BASIC_HI.VMCS_SIZE_MASK) | ((memType & 0xf) << VMX_BASIC_HI.MEM_TYPE_SHIFT)) >>> 0,
  };
}

/** IA32_VMX_MISC bits 31:0 as masks of the low word (SDM A.6; kvm: asm/vmx.h VMX_MISC_*). */
export const VMX_MISC = {
  /** Bits 4:0: the preemption timer counts once every 2^rate TSC ticks. */
  PREEMPTION_TIMER_RATE_MASK: 0x1f,
  VMX_MISC_SAVE_EFER_LMA: 1 << 5,
  VMX_MISC_ACTIVITY_HLT: 1 << 6,
  VMX_MISC_ACTIVITY_SHUTDOWN: 1 << 7,
  VMX_MISC_ACTIVITY_WAIT_SIPI: 1 << 8,
  VMX_MISC_INTEL_PT: 1 << 14,
  VMX_MISC_RDMSR_IN_SMM: 1 << 15,
  /** Bits 24:16: number of CR3-target values. */
  CR3_TARGET_COUNT_SHIFT: 16,
  CR3_TARGET_COUNT_MASK: 0x1ff << 16,
  /** Bits 27:25: N, the MSR lists may hold 512 × (N + 1) entries. */
  MAX_MSR_LIST_SHIFT: 25,
  MAX_MSR_LIST_MASK: 0x7 << 25,
  VMX_MISC_VMXOFF_BLOCK_SMI: 1 << 28,
  /** Bit 29: VMWRITE may write any field, VM-exit information fields included. */
  VMX_MISC_VMWRITE_SHADOW_RO_FIELDS: 1 << 29,
  /** Bit 30: software interrupts/exceptions may be injected with instruction length 0. */
  VMX_MISC_ZERO_LEN_INS: 1 << 30,
} as const;

/** The 2019 name of VMX_MISC bit 29 (then in asm/msr-index.h). */
export const VMX_MISC_NAMES_2019 = {
  MSR_IA32_VMX_MISC_VMWRITE_SHADOW_RO_FIELDS: "VMX_MISC_VMWRITE_SHADOW_RO_FIELDS",
} as const;

/** kvm: VMX_MISC_MSR_LIST_MULTIPLIER. */
export const VMX_MISC_MSR_LIST_MULTIPLIER = 512;

/** IA32_VMX_MISC layout (SDM A.6). */
export const VMX_MISC_LAYOUT: RegisterLayout = {
  name: "IA32_VMX_MISC",
  width: 64,
  source: "SDM Vol. 3D A.6; kvm: asm/vmx.h VMX_MISC_*",
  fields: [
    field("PREEMPTION_TIMER_RATE", 0, 5, "the preemption timer ticks every 2^rate TSC cycles"),
    flag("SAVE_EFER_LMA", 5, "VM exits store EFER.LMA into the IA-32e-mode-guest entry control"),
    flag("ACTIVITY_HLT", 6, "the HLT activity state is supported"),
    flag("ACTIVITY_SHUTDOWN", 7, "the shutdown activity state is supported"),
    flag("ACTIVITY_WAIT_SIPI", 8, "the wait-for-SIPI activity state is supported"),
    flag("INTEL_PT", 14, "Intel PT may be used in VMX operation"),
    flag("RDMSR_IN_SMM", 15, "RDMSR of IA32_SMBASE is allowed in SMM"),
    field("CR3_TARGET_COUNT", 16, 9, "number of CR3-target values supported"),
    field("MAX_MSR_LIST", 25, 3, "N: the MSR load/store lists may hold 512 × (N + 1) entries"),
    flag("VMXOFF_BLOCK_SMI", 28, "VMXOFF leaves SMIs blocked when IA32_SMM_MONITOR_CTL bit 2 is set"),
    flag("VMWRITE_ANY_FIELD", 29, "VMWRITE may write VM-exit information fields"),
    flag("ZERO_LEN_INS", 30, "event injection may use instruction length 0"),
    field("MSEG_REVISION", 32, 32, "MSEG revision identifier of the dual-monitor treatment"),
  ],
};

/** Preemption-timer rate, bits 4:0 (kvm: vmx_misc_preemption_timer_rate). */
export function vmxMiscPreemptionTimerRate(lo: number): number {
  return lo & VMX_MISC.PREEMPTION_TIMER_RATE_MASK;
}

/** Number of CR3-target values, bits 24:16 (kvm: vmx_misc_cr3_count). */
export function vmxMiscCr3Count(lo: number): number {
  return (lo & VMX_MISC.CR3_TARGET_COUNT_MASK) >>> VMX_MISC.CR3_TARGET_COUNT_SHIFT;
}

/** Maximum entries per MSR load/store list: 512 × (N + 1), N = bits 27:25 (SDM A.6; kvm: nested_vmx_max_atomic_switch_msrs). */
export function vmxMiscMaxMsrListEntries(lo: number): number {
  return (
    VMX_MISC_MSR_LIST_MULTIPLIER * (((lo & VMX_MISC.MAX_MSR_LIST_MASK) >>> VMX_MISC.MAX_MSR_LIST_SHIFT) + 1)
  );
}
