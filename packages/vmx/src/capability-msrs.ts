import {
  CR0,
  CR0_LAYOUT,
  CR4,
  CR4_LAYOUT,
  type DecodedRegister,
  decodeRegister,
  field,
  flag,
  MSR,
  type RegisterLayout,
  toBigInt64,
  EPT_VPID_CAP_LAYOUT as X86_EPT_VPID_CAP_LAYOUT,
} from "@nestvisor/x86-arch";
import {
  ALWAYSON_WITHOUT_TRUE_MSR,
  CONTROL_CLASSES,
  type ControlClass,
  CPU_BASED_CTLS,
  PIN_BASED_CTLS,
  SECONDARY_EXEC_CTLS,
  VM_ENTRY_CTLS,
  VM_EXIT_CTLS,
  VMX_BASIC_HI,
  VMX_BASIC_LAYOUT,
  VMX_BASIC_MEM_TYPE,
  VMX_MISC,
  VMX_MISC_LAYOUT,
} from "./controls";
import { VMCS12_REVISION, VMCS12_SIZE, vmcsEnumMsr } from "./vmcs12-layout";

/**
 * The VMX capability MSRs (SDM Vol. 3D Appendix A) and the values KVM 6.12 reports to an L1
 * hypervisor (arch/x86/kvm/vmx/nested.c: nested_vmx_setup_ctls_msrs and its helpers, read back
 * by vmx_get_vmx_msr). 64-bit values are (lo, hi) word pairs; BigInt only for display.
 */

/** A 64-bit MSR value as two unsigned 32-bit words. */
export interface Msr64 {
  readonly lo: number;
  readonly hi: number;
}

/** How the bits of a capability MSR are read. */
export const CAPABILITY_KIND = {
  /** IA32_VMX_BASIC (A.1). */
  BASIC: "basic",
  /** 32-bit control MSR: low word allowed-0 settings, high word allowed-1 settings (A.3–A.5). */
  CONTROLS: "controls",
  /** IA32_VMX_PROCBASED_CTLS3: all 64 bits are allowed-1 settings (A.3.4). */
  CONTROLS64: "controls64",
  /** IA32_VMX_MISC (A.6). */
  MISC: "misc",
  /** CR0/CR4 FIXED0: bits that must be 1 in VMX operation (A.7, A.8). */
  FIXED0: "fixed0",
  /** CR0/CR4 FIXED1: bits that may be 1 in VMX operation. */
  FIXED1: "fixed1",
  /** IA32_VMX_VMCS_ENUM (A.9). */
  VMCS_ENUM: "vmcs-enum",
  /** IA32_VMX_EPT_VPID_CAP (A.10). */
  EPT_VPID: "ept-vpid",
  /** IA32_VMX_VMFUNC (A.11). */
  VMFUNC: "vmfunc",
} as const;
export type CapabilityKind = (typeof CAPABILITY_KIND)[keyof typeof CAPABILITY_KIND];

/** Which value of `VmxCapabilities` an MSR reads. */
export type VmxCapabilityKey = keyof VmxCapabilities;

/** One VMX capability MSR. */
export interface VmxCapabilityMsrInfo {
  readonly name: string;
  readonly index: number;
  readonly kind: CapabilityKind;
  readonly key: VmxCapabilityKey;
  /** For control MSRs: the class of controls it describes. */
  readonly controls?: ControlClass;
  /** For the four non-TRUE control MSRs: the TRUE twin's index (A.3.1). */
  readonly trueIndex?: number;
}

/** The VMX capability MSRs in index order (SDM A.1–A.11; indices from x86-arch's MSR table). */
export const VMX_CAPABILITY_MSRS: readonly VmxCapabilityMsrInfo[] = Object.freeze([
  { name: "IA32_VMX_BASIC", index: MSR.IA32_VMX_BASIC, kind: "basic", key: "basic" },
  {
    name: "IA32_VMX_PINBASED_CTLS",
    index: MSR.IA32_VMX_PINBASED_CTLS,
    kind: "controls",
    key: "pinbasedCtls",
    controls: "pin",
    trueIndex: MSR.IA32_VMX_TRUE_PINBASED_CTLS,
  },
  {
    name: "IA32_VMX_PROCBASED_CTLS",
    index: MSR.IA32_VMX_PROCBASED_CTLS,
    kind: "controls",
    key: "procbasedCtls",
    controls: "primary",
    trueIndex: MSR.IA32_VMX_TRUE_PROCBASED_CTLS,
  },
  {
    name: "IA32_VMX_EXIT_CTLS",
    index: MSR.IA32_VMX_EXIT_CTLS,
    kind: "controls",
    key: "exitCtls",
    controls: "exit",
    trueIndex: MSR.IA32_VMX_TRUE_EXIT_CTLS,
  },
  {
    name: "IA32_VMX_ENTRY_CTLS",
    index: MSR.IA32_VMX_ENTRY_CTLS,
    kind: "controls",
    key: "entryCtls",
    controls: "entry",
    trueIndex: MSR.IA32_VMX_TRUE_ENTRY_CTLS,
  },
  { name: "IA32_VMX_MISC", index: MSR.IA32_VMX_MISC, kind: "misc", key: "misc" },
  { name: "IA32_VMX_CR0_FIXED0", index: MSR.IA32_VMX_CR0_FIXED0, kind: "fixed0", key: "cr0Fixed0" },
  { name: "IA32_VMX_CR0_FIXED1", index: MSR.IA32_VMX_CR0_FIXED1, kind: "fixed1", key: "cr0Fixed1" },
  { name: "IA32_VMX_CR4_FIXED0", index: MSR.IA32_VMX_CR4_FIXED0, kind: "fixed0", key: "cr4Fixed0" },
  { name: "IA32_VMX_CR4_FIXED1", index: MSR.IA32_VMX_CR4_FIXED1, kind: "fixed1", key: "cr4Fixed1" },
  { name: "IA32_VMX_VMCS_ENUM", index: MSR.IA32_VMX_VMCS_ENUM, kind: "vmcs-enum", key: "vmcsEnum" },
  {
    name: "IA32_VMX_PROCBASED_CTLS2",
    index: MSR.IA32_VMX_PROCBASED_CTLS2,
    kind: "controls",
    key: "procbasedCtls2",
    controls: "secondary",
  },
  { name: "IA32_VMX_EPT_VPID_CAP", index: MSR.IA32_VMX_EPT_VPID_CAP, kind: "ept-vpid", key: "eptVpidCap" },
  {
    name: "IA32_VMX_TRUE_PINBASED_CTLS",
    index: MSR.IA32_VMX_TRUE_PINBASED_CTLS,
    kind: "controls",
    key: "truePinbasedCtls",
    controls: "pin",
  },
  {
    name: "IA32_VMX_TRUE_PROCBASED_CTLS",
    index: MSR.IA32_VMX_TRUE_PROCBASED_CTLS,
    kind: "controls",
    key: "trueProcbasedCtls",
    controls: "primary",
  },
  {
    name: "IA32_VMX_TRUE_EXIT_CTLS",
    index: MSR.IA32_VMX_TRUE_EXIT_CTLS,
    kind: "controls",
    key: "trueExitCtls",
    controls: "exit",
  },
  {
    name: "IA32_VMX_TRUE_ENTRY_CTLS",
    index: MSR.IA32_VMX_TRUE_ENTRY_CTLS,
    kind: "controls",
    key: "trueEntryCtls",
    controls: "entry",
  },
  { name: "IA32_VMX_VMFUNC", index: MSR.IA32_VMX_VMFUNC, kind: "vmfunc", key: "vmfunc" },
  {
    name: "IA32_VMX_PROCBASED_CTLS3",
    index: MSR.IA32_VMX_PROCBASED_CTLS3,
    kind: "controls64",
    key: "procbasedCtls3",
    controls: "tertiary",
  },
]);

/** Looks up a capability MSR by index. */
export function vmxCapabilityMsrInfo(index: number): VmxCapabilityMsrInfo | undefined {
  return VMX_CAPABILITY_MSRS.find((m) => m.index === index);
}

/**
 * Bits of `value` that a control MSR forbids (SDM A.3.1): bits that must be 1 but are 0 (set
 * in the low word, allowed-0) and bits that must be 0 but are 1 (clear in the high word,
 * allowed-1). 0 means the value is allowed. kvm: vmx_control_verify / fixed_bits_valid, which
 * agrees whenever allowed-0 ⊆ allowed-1 (for an inconsistent MSR KVM lets allowed-0 win).
 */
export function controlsAllowed(msrLo: number, msrHi: number, value: number): number {
  return ((msrLo & ~value) | (value & ~msrHi)) >>> 0;
}

/**
 * What a VMM does with a control value it wants (SDM A.2, A.3.1): force the required-1
 * bits on and clear the bits that may not be 1. The result is allowed whenever the MSR is
 * consistent (every allowed-0 bit is also an allowed-1 bit; see `isConsistentControlMsr`).
 * kvm: adjust_vmx_controls.
 */
export function adjustControls(msrLo: number, msrHi: number, wanted: number): number {
  return ((wanted | msrLo) & msrHi) >>> 0;
}

/** True when no bit is required to be 1 while also forbidden to be 1 (real MSRs always are). */
export function isConsistentControlMsr(msrLo: number, msrHi: number): boolean {
  return (msrLo & ~msrHi) >>> 0 === 0;
}

/**
 * The 64-bit tertiary controls against IA32_VMX_PROCBASED_CTLS3, whose 64 bits are all
 * allowed-1 settings (SDM A.3.4): true when no bit outside the MSR is set.
 */
export function tertiaryControlsAllowed(
  capLo: number,
  capHi: number,
  valueLo: number,
  valueHi: number,
): boolean {
  return ((valueLo & ~capLo) | (valueHi & ~capHi)) >>> 0 === 0;
}

/**
 * Bits of one 32-bit word of CR0/CR4 that break the VMX fixed bits (SDM A.7, A.8): FIXED0
 * bits that are 0 and bits outside FIXED1 that are 1. Apply to each half of a 64-bit value.
 */
export function fixedBitsViolations(value: number, fixed0: number, fixed1: number): number {
  return ((fixed0 & ~value) | (value & ~fixed1)) >>> 0;
}

/**
 * Whether a 32-bit word obeys the fixed bits. Same result as kvm's fixed_bits_valid
 * (nested_cr0_valid/nested_cr4_valid) whenever FIXED0 ⊆ FIXED1, as it is in every real and
 * KVM-made pair; for an inconsistent pair KVM lets FIXED0 win, the SDM rule (used here) fails.
 */
export function fixedBitsOk(value: number, fixed0: number, fixed1: number): boolean {
  return fixedBitsViolations(value, fixed0, fixed1) === 0;
}

/** Whether a 64-bit CR0/CR4 value (two words) obeys a FIXED0/FIXED1 pair. */
export function crFixedBitsOk(valueLo: number, valueHi: number, fixed0: Msr64, fixed1: Msr64): boolean {
  return fixedBitsOk(valueLo, fixed0.lo, fixed1.lo) && fixedBitsOk(valueHi, fixed0.hi, fixed1.hi);
}

/**
 * IA32_VMX_EPT_VPID_CAP bits 31:0 (SDM A.10; kvm: asm/vmx.h VMX_EPT_* names where KVM 6.12 has
 * them).
 */
export const EPT_VPID_CAP_LO = {
  VMX_EPT_EXECUTE_ONLY_BIT: 1 << 0,
  VMX_EPT_PAGE_WALK_4_BIT: 1 << 6,
  VMX_EPT_PAGE_WALK_5_BIT: 1 << 7,
  VMX_EPTP_UC_BIT: 1 << 8,
  VMX_EPTP_WB_BIT: 1 << 14,
  VMX_EPT_2MB_PAGE_BIT: 1 << 16,
  VMX_EPT_1GB_PAGE_BIT: 1 << 17,
  VMX_EPT_INVEPT_BIT: 1 << 20,
  VMX_EPT_AD_BIT: 1 << 21,
  /** SDM only (no KVM 6.12 macro): EPT-violation qualification bits 11:9 are reported. */
  VMX_EPT_ADVANCED_EXIT_INFO_BIT: 1 << 22,
  /** SDM only (no KVM 6.12 macro): EPTP bit 7, supervisor shadow-stack control. */
  VMX_EPT_SUPERVISOR_SHADOW_STACK_BIT: 1 << 23,
  VMX_EPT_EXTENT_CONTEXT_BIT: 1 << 25,
  VMX_EPT_EXTENT_GLOBAL_BIT: 1 << 26,
} as const;

/** IA32_VMX_EPT_VPID_CAP bits 63:32 as masks of the high word (SDM A.10; kvm: VMX_VPID_*). */
export const EPT_VPID_CAP_HI = {
  VMX_VPID_INVVPID_BIT: 1 << 0,
  VMX_VPID_EXTENT_INDIVIDUAL_ADDR_BIT: 1 << 8,
  VMX_VPID_EXTENT_SINGLE_CONTEXT_BIT: 1 << 9,
  VMX_VPID_EXTENT_GLOBAL_CONTEXT_BIT: 1 << 10,
  VMX_VPID_EXTENT_SINGLE_NON_GLOBAL_BIT: 1 << 11,
} as const;

/** IA32_VMX_EPT_VPID_CAP layout (SDM A.10): x86-arch's, shared with the EPT walker's capabilities. */
export const EPT_VPID_CAP_LAYOUT: RegisterLayout = X86_EPT_VPID_CAP_LAYOUT;

/** IA32_VMX_VMFUNC bits (SDM A.11, 25.6.14): bit n allows VM function n. */
export const VMFUNC_CTLS = {
  /** kvm: VMX_VMFUNC_EPTP_SWITCHING. */
  VMX_VMFUNC_EPTP_SWITCHING: 1 << 0,
} as const;

/** IA32_VMX_VMFUNC layout. */
export const VMFUNC_LAYOUT: RegisterLayout = {
  name: "IA32_VMX_VMFUNC",
  width: 64,
  source: "SDM Vol. 3D A.11",
  fields: [flag("EPTP_SWITCHING", 0, "VM function 0: EPTP switching from a 512-entry list")],
};

/** IA32_VMX_VMCS_ENUM layout (SDM A.9): bits 9:1 hold the highest field-encoding index. */
export const VMCS_ENUM_LAYOUT: RegisterLayout = {
  name: "IA32_VMX_VMCS_ENUM",
  width: 64,
  source: "SDM Vol. 3D A.9",
  fields: [field("MAX_INDEX", 1, 9, "highest index value used in any VMCS field encoding")],
};

/**
 * Every VMX capability MSR value. Control MSRs keep allowed-0 settings in `lo` and allowed-1
 * settings in `hi`. `procbasedCtls3` is null when the tertiary controls are not offered (the
 * MSR then does not exist; reading it faults).
 */
export interface VmxCapabilities {
  readonly basic: Msr64;
  readonly pinbasedCtls: Msr64;
  readonly procbasedCtls: Msr64;
  readonly exitCtls: Msr64;
  readonly entryCtls: Msr64;
  readonly misc: Msr64;
  readonly cr0Fixed0: Msr64;
  readonly cr0Fixed1: Msr64;
  readonly cr4Fixed0: Msr64;
  readonly cr4Fixed1: Msr64;
  readonly vmcsEnum: Msr64;
  readonly procbasedCtls2: Msr64;
  readonly eptVpidCap: Msr64;
  readonly truePinbasedCtls: Msr64;
  readonly trueProcbasedCtls: Msr64;
  readonly trueExitCtls: Msr64;
  readonly trueEntryCtls: Msr64;
  readonly vmfunc: Msr64;
  readonly procbasedCtls3: Msr64 | null;
}

/** The value of a capability MSR, or undefined if the index is not a (present) VMX capability MSR. */
export function vmxCapabilityMsr(caps: VmxCapabilities, index: number): Msr64 | undefined {
  const info = vmxCapabilityMsrInfo(index);
  if (info === undefined) return undefined;
  return caps[info.key] ?? undefined;
}

/**
 * The control MSR a VM entry checks a class of controls against (SDM 27.2.1.1, A.3): the TRUE
 * MSR when IA32_VMX_BASIC bit 55 is set, else the non-TRUE one. Secondary controls have a
 * single MSR. (Tertiary controls are 64 bits wide; see `tertiaryControlsAllowed`.)
 */
export function entryCheckControlMsr(caps: VmxCapabilities, cls: Exclude<ControlClass, "tertiary">): Msr64 {
  const useTrue = (caps.basic.hi & VMX_BASIC_HI.VMX_BASIC_TRUE_CTLS) !== 0;
  switch (cls) {
    case "pin":
      return useTrue ? caps.truePinbasedCtls : caps.pinbasedCtls;
    case "primary":
      return useTrue ? caps.trueProcbasedCtls : caps.procbasedCtls;
    case "exit":
      return useTrue ? caps.trueExitCtls : caps.exitCtls;
    case "entry":
      return useTrue ? caps.trueEntryCtls : caps.entryCtls;
    case "secondary":
      return caps.procbasedCtls2;
  }
}

/**
 * What KVM's nested-capability setup depends on: KVM's own VMCS configuration for the host
 * (`vmcs_config`, built by setup_vmcs_config from the hardware MSRs and KVM's
 * required/optional control lists) and the effective module parameters after hardware_setup.
 * Only a 64-bit host is modelled (CONFIG_X86_64).
 */
export interface NestedVmxHost {
  /** vmcs_config.pin_based_exec_ctrl. */
  readonly pinBasedExecCtrl: number;
  /** vmcs_config.cpu_based_exec_ctrl (CR8 exiting kept: KVM drops it per vCPU, in vmx_exec_control). */
  readonly cpuBasedExecCtrl: number;
  /** vmcs_config.cpu_based_2nd_exec_ctrl. */
  readonly cpuBased2ndExecCtrl: number;
  /** vmcs_config.vmexit_ctrl. */
  readonly vmexitCtrl: number;
  /** vmcs_config.vmentry_ctrl. */
  readonly vmentryCtrl: number;
  /** Low word of the host's IA32_VMX_MISC (vmcs_config.misc); only bit 5 is passed on. */
  readonly miscLo: number;
  /** Low word of the host's IA32_VMX_EPT_VPID_CAP (vmx_capability.ept). */
  readonly eptCaps: number;
  /** IA32_VMX_BASIC bit 54 on the host (cpu_has_vmx_basic_inout). */
  readonly basicInOut: boolean;
  /** The host's IA32_VMX_CR0_FIXED1 and IA32_VMX_CR4_FIXED1 (read with rdmsrl). */
  readonly cr0Fixed1: Msr64;
  readonly cr4Fixed1: Msr64;
  /** CPUID UMIP on the host; without it KVM may emulate UMIP (vmx_umip_emulated). */
  readonly hostHasUmip: boolean;
  /** Module parameters as they stand after hardware_setup. */
  readonly enableEpt: boolean;
  readonly enableEptAdBits: boolean;
  readonly enableVpid: boolean;
  readonly enableUnrestrictedGuest: boolean;
  readonly flexpriorityEnabled: boolean;
  readonly enableApicv: boolean;
  readonly enableSgx: boolean;
}

const P = PIN_BASED_CTLS;
const C = CPU_BASED_CTLS;
const S = SECONDARY_EXEC_CTLS;
const X = VM_EXIT_CTLS;
const N = VM_ENTRY_CTLS;
const E = EPT_VPID_CAP_LO;

/**
 * A modern 64-bit host (Sapphire Rapids class) with KVM's default module parameters. Assumed:
 * no MPX (so no BNDCFGS controls; `nestedVmxHost` can add them) and SGX off (enable_sgx needs
 * SGX enabled by firmware). Its vmcs_config holds every control of KVM's
 * KVM_REQUIRED_/KVM_OPTIONAL_VMX_* lists (kvm: vmx.h) plus the hardware's default1 bits
 * (adjust_vmx_controls ORs in the allowed-0 word). CR4_FIXED1 is assumed to allow every CR4
 * bit of a CPU with SMX, UMIP, LA57, PKU, CET and PKS.
 */
export const MODERN_NESTED_HOST: NestedVmxHost = Object.freeze({
  pinBasedExecCtrl:
    (ALWAYSON_WITHOUT_TRUE_MSR.PIN_BASED |
      P.PIN_BASED_EXT_INTR_MASK |
      P.PIN_BASED_NMI_EXITING |
      P.PIN_BASED_VIRTUAL_NMIS |
      P.PIN_BASED_VMX_PREEMPTION_TIMER |
      P.PIN_BASED_POSTED_INTR) >>>
    0,
  cpuBasedExecCtrl:
    (ALWAYSON_WITHOUT_TRUE_MSR.CPU_BASED |
      C.CPU_BASED_HLT_EXITING |
      C.CPU_BASED_CR3_LOAD_EXITING |
      C.CPU_BASED_CR3_STORE_EXITING |
      C.CPU_BASED_UNCOND_IO_EXITING |
      C.CPU_BASED_MOV_DR_EXITING |
      C.CPU_BASED_USE_TSC_OFFSETTING |
      C.CPU_BASED_MWAIT_EXITING |
      C.CPU_BASED_MONITOR_EXITING |
      C.CPU_BASED_INVLPG_EXITING |
      C.CPU_BASED_RDPMC_EXITING |
      C.CPU_BASED_INTR_WINDOW_EXITING |
      C.CPU_BASED_CR8_LOAD_EXITING |
      C.CPU_BASED_CR8_STORE_EXITING |
      C.CPU_BASED_RDTSC_EXITING |
      C.CPU_BASED_TPR_SHADOW |
      C.CPU_BASED_USE_IO_BITMAPS |
      C.CPU_BASED_MONITOR_TRAP_FLAG |
      C.CPU_BASED_USE_MSR_BITMAPS |
      C.CPU_BASED_NMI_WINDOW_EXITING |
      C.CPU_BASED_PAUSE_EXITING |
      C.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS |
      C.CPU_BASED_ACTIVATE_TERTIARY_CONTROLS) >>>
    0,
  cpuBased2ndExecCtrl:
    (S.SECONDARY_EXEC_VIRTUALIZE_APIC_ACCESSES |
      S.SECONDARY_EXEC_VIRTUALIZE_X2APIC_MODE |
      S.SECONDARY_EXEC_WBINVD_EXITING |
      S.SECONDARY_EXEC_ENABLE_VPID |
      S.SECONDARY_EXEC_ENABLE_EPT |
      S.SECONDARY_EXEC_UNRESTRICTED_GUEST |
      S.SECONDARY_EXEC_PAUSE_LOOP_EXITING |
      S.SECONDARY_EXEC_DESC |
      S.SECONDARY_EXEC_ENABLE_RDTSCP |
      S.SECONDARY_EXEC_ENABLE_INVPCID |
      S.SECONDARY_EXEC_APIC_REGISTER_VIRT |
      S.SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY |
      S.SECONDARY_EXEC_SHADOW_VMCS |
      S.SECONDARY_EXEC_ENABLE_XSAVES |
      S.SECONDARY_EXEC_RDSEED_EXITING |
      S.SECONDARY_EXEC_RDRAND_EXITING |
      S.SECONDARY_EXEC_ENABLE_PML |
      S.SECONDARY_EXEC_TSC_SCALING |
      S.SECONDARY_EXEC_ENABLE_USR_WAIT_PAUSE |
      S.SECONDARY_EXEC_PT_USE_GPA |
      S.SECONDARY_EXEC_PT_CONCEAL_VMX |
      S.SECONDARY_EXEC_ENABLE_VMFUNC |
      S.SECONDARY_EXEC_BUS_LOCK_DETECTION |
      S.SECONDARY_EXEC_NOTIFY_VM_EXITING) >>>
    0,
  vmexitCtrl:
    (ALWAYSON_WITHOUT_TRUE_MSR.VM_EXIT |
      X.VM_EXIT_SAVE_DEBUG_CONTROLS |
      X.VM_EXIT_ACK_INTR_ON_EXIT |
      X.VM_EXIT_HOST_ADDR_SPACE_SIZE |
      X.VM_EXIT_LOAD_IA32_PERF_GLOBAL_CTRL |
      X.VM_EXIT_SAVE_IA32_PAT |
      X.VM_EXIT_LOAD_IA32_PAT |
      X.VM_EXIT_SAVE_IA32_EFER |
      X.VM_EXIT_SAVE_VMX_PREEMPTION_TIMER |
      X.VM_EXIT_LOAD_IA32_EFER |
      X.VM_EXIT_PT_CONCEAL_PIP |
      X.VM_EXIT_CLEAR_IA32_RTIT_CTL) >>>
    0,
  vmentryCtrl:
    (ALWAYSON_WITHOUT_TRUE_MSR.VM_ENTRY |
      N.VM_ENTRY_LOAD_DEBUG_CONTROLS |
      N.VM_ENTRY_IA32E_MODE |
      N.VM_ENTRY_LOAD_IA32_PERF_GLOBAL_CTRL |
      N.VM_ENTRY_LOAD_IA32_PAT |
      N.VM_ENTRY_LOAD_IA32_EFER |
      N.VM_ENTRY_PT_CONCEAL_PIP |
      N.VM_ENTRY_LOAD_IA32_RTIT_CTL) >>>
    0,
  miscLo:
    VMX_MISC.VMX_MISC_SAVE_EFER_LMA |
    VMX_MISC.VMX_MISC_ACTIVITY_HLT |
    VMX_MISC.VMX_MISC_ACTIVITY_SHUTDOWN |
    VMX_MISC.VMX_MISC_ACTIVITY_WAIT_SIPI |
    VMX_MISC.VMX_MISC_INTEL_PT |
    VMX_MISC.VMX_MISC_VMWRITE_SHADOW_RO_FIELDS,
  eptCaps:
    (E.VMX_EPT_EXECUTE_ONLY_BIT |
      E.VMX_EPT_PAGE_WALK_4_BIT |
      E.VMX_EPT_PAGE_WALK_5_BIT |
      E.VMX_EPTP_UC_BIT |
      E.VMX_EPTP_WB_BIT |
      E.VMX_EPT_2MB_PAGE_BIT |
      E.VMX_EPT_1GB_PAGE_BIT |
      E.VMX_EPT_INVEPT_BIT |
      E.VMX_EPT_AD_BIT |
      E.VMX_EPT_ADVANCED_EXIT_INFO_BIT |
      E.VMX_EPT_EXTENT_CONTEXT_BIT |
      E.VMX_EPT_EXTENT_GLOBAL_BIT) >>>
    0,
  basicInOut: true,
  cr0Fixed1: { lo: 0xffffffff, hi: 0 },
  cr4Fixed1: {
    lo:
      (CR4.VME |
        CR4.PVI |
        CR4.TSD |
        CR4.DE |
        CR4.PSE |
        CR4.PAE |
        CR4.MCE |
        CR4.PGE |
        CR4.PCE |
        CR4.OSFXSR |
        CR4.OSXMMEXCPT |
        CR4.UMIP |
        CR4.LA57 |
        CR4.VMXE |
        CR4.SMXE |
        CR4.FSGSBASE |
        CR4.PCIDE |
        CR4.OSXSAVE |
        CR4.SMEP |
        CR4.SMAP |
        CR4.PKE |
        CR4.CET |
        CR4.PKS) >>>
      0,
    hi: 0,
  },
  hostHasUmip: true,
  enableEpt: true,
  enableEptAdBits: true,
  enableVpid: true,
  enableUnrestrictedGuest: true,
  flexpriorityEnabled: true,
  enableApicv: true,
  enableSgx: false,
});

/** Builds a host from `MODERN_NESTED_HOST` with overrides. */
export function nestedVmxHost(overrides: Partial<NestedVmxHost> = {}): NestedVmxHost {
  return Object.freeze({ ...MODERN_NESTED_HOST, ...overrides });
}

/** kvm nested.c: VMX_VPID_EXTENT_SUPPORTED_MASK (all four INVVPID types, for Hyper-V's sake). */
const VPID_EXTENT_SUPPORTED_MASK =
  EPT_VPID_CAP_HI.VMX_VPID_EXTENT_INDIVIDUAL_ADDR_BIT |
  EPT_VPID_CAP_HI.VMX_VPID_EXTENT_SINGLE_CONTEXT_BIT |
  EPT_VPID_CAP_HI.VMX_VPID_EXTENT_GLOBAL_CONTEXT_BIT |
  EPT_VPID_CAP_HI.VMX_VPID_EXTENT_SINGLE_NON_GLOBAL_BIT;

/** kvm nested.c: VMX_MISC_EMULATED_PREEMPTION_TIMER_RATE (the hrtimer ticks at TSC >> 5). */
export const VMX_MISC_EMULATED_PREEMPTION_TIMER_RATE = 5;

/** kvm nested.c nested_vmx_setup_cr_fixed: VMXON_CR0_ALWAYSON and VMXON_CR4_ALWAYSON. */
export const VMXON_CR0_ALWAYSON = (CR0.PE | CR0.PG | CR0.NE) >>> 0;
export const VMXON_CR4_ALWAYSON = CR4.VMXE;

/**
 * The capability MSRs KVM 6.12 offers an L1 on `host`: the system-wide `vmcs_config.nested`
 * values (what KVM_GET_MSRS on /dev/kvm reports and what each vCPU starts from). Not modelled:
 * the per-vCPU trimming after KVM_SET_CPUID (vmx_vcpu_after_set_cpuid: CR4_FIXED1 by guest
 * CPUID, RDTSCP/INVPCID/RDRAND/RDSEED/XSAVES/WAITPKG secondary bits, BNDCFGS and
 * PERF_GLOBAL_CTRL entry/exit bits) and userspace restores via KVM_SET_MSRS.
 */
export function kvmNestedVmxCapabilities(host: NestedVmxHost = MODERN_NESTED_HOST): VmxCapabilities {
  // kvm: nested_vmx_setup_pinbased_ctls. Allowed-0 = the default1 class; allowed-1 = host
  // support for interrupt/NMI exiting, virtual NMIs and (with APICv) posted interrupts, plus
  // the preemption timer, which KVM emulates with an hrtimer.
  const pinLo = ALWAYSON_WITHOUT_TRUE_MSR.PIN_BASED;
  const pinHi =
    ((host.pinBasedExecCtrl &
      (P.PIN_BASED_EXT_INTR_MASK |
        P.PIN_BASED_NMI_EXITING |
        P.PIN_BASED_VIRTUAL_NMIS |
        (host.enableApicv ? P.PIN_BASED_POSTED_INTR : 0))) |
      ALWAYSON_WITHOUT_TRUE_MSR.PIN_BASED |
      P.PIN_BASED_VMX_PREEMPTION_TIMER) >>>
    0;

  // kvm: nested_vmx_setup_exit_ctls. Save-debug-controls may be cleared ("free control").
  const exitLo = (ALWAYSON_WITHOUT_TRUE_MSR.VM_EXIT & ~X.VM_EXIT_SAVE_DEBUG_CONTROLS) >>> 0;
  const exitHi =
    ((host.vmexitCtrl &
      (X.VM_EXIT_HOST_ADDR_SPACE_SIZE |
        X.VM_EXIT_LOAD_IA32_PAT |
        X.VM_EXIT_SAVE_IA32_PAT |
        X.VM_EXIT_CLEAR_BNDCFGS)) |
      ALWAYSON_WITHOUT_TRUE_MSR.VM_EXIT |
      X.VM_EXIT_LOAD_IA32_EFER |
      X.VM_EXIT_SAVE_IA32_EFER |
      X.VM_EXIT_SAVE_VMX_PREEMPTION_TIMER |
      X.VM_EXIT_ACK_INTR_ON_EXIT |
      X.VM_EXIT_LOAD_IA32_PERF_GLOBAL_CTRL) >>>
    0;

  // kvm: nested_vmx_setup_entry_ctls. Load-debug-controls may be cleared.
  const entryLo = (ALWAYSON_WITHOUT_TRUE_MSR.VM_ENTRY & ~N.VM_ENTRY_LOAD_DEBUG_CONTROLS) >>> 0;
  const entryHi =
    ((host.vmentryCtrl & (N.VM_ENTRY_IA32E_MODE | N.VM_ENTRY_LOAD_IA32_PAT | N.VM_ENTRY_LOAD_BNDCFGS)) |
      ALWAYSON_WITHOUT_TRUE_MSR.VM_ENTRY |
      N.VM_ENTRY_LOAD_IA32_EFER |
      N.VM_ENTRY_LOAD_IA32_PERF_GLOBAL_CTRL) >>>
    0;

  // kvm: nested_vmx_setup_cpubased_ctls. MSR bitmaps are always allowed (emulated); CR3
  // load/store exiting may be cleared. Tertiary controls are never offered.
  const procLo =
    (ALWAYSON_WITHOUT_TRUE_MSR.CPU_BASED &
      ~(C.CPU_BASED_CR3_LOAD_EXITING | C.CPU_BASED_CR3_STORE_EXITING)) >>>
    0;
  const procHi =
    ((host.cpuBasedExecCtrl &
      (C.CPU_BASED_INTR_WINDOW_EXITING |
        C.CPU_BASED_NMI_WINDOW_EXITING |
        C.CPU_BASED_USE_TSC_OFFSETTING |
        C.CPU_BASED_HLT_EXITING |
        C.CPU_BASED_INVLPG_EXITING |
        C.CPU_BASED_MWAIT_EXITING |
        C.CPU_BASED_CR3_LOAD_EXITING |
        C.CPU_BASED_CR3_STORE_EXITING |
        C.CPU_BASED_CR8_LOAD_EXITING |
        C.CPU_BASED_CR8_STORE_EXITING |
        C.CPU_BASED_MOV_DR_EXITING |
        C.CPU_BASED_UNCOND_IO_EXITING |
        C.CPU_BASED_USE_IO_BITMAPS |
        C.CPU_BASED_MONITOR_TRAP_FLAG |
        C.CPU_BASED_MONITOR_EXITING |
        C.CPU_BASED_RDPMC_EXITING |
        C.CPU_BASED_RDTSC_EXITING |
        C.CPU_BASED_PAUSE_EXITING |
        C.CPU_BASED_TPR_SHADOW |
        C.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS)) |
      ALWAYSON_WITHOUT_TRUE_MSR.CPU_BASED |
      C.CPU_BASED_USE_MSR_BITMAPS) >>>
    0;

  // kvm: nested_vmx_setup_secondary_ctls. Allowed-0 is 0. VMCS shadowing is always offered
  // (emulated); EPT (+PML with EPT A/D), VPID, unrestricted guest, APIC-access virtualization
  // and ENCLS exiting follow the module parameters.
  const ept = host.enableEpt;
  const eptAd = ept && host.enableEptAdBits;
  let secHi =
    (host.cpuBased2ndExecCtrl &
      (S.SECONDARY_EXEC_DESC |
        S.SECONDARY_EXEC_ENABLE_RDTSCP |
        S.SECONDARY_EXEC_VIRTUALIZE_X2APIC_MODE |
        S.SECONDARY_EXEC_WBINVD_EXITING |
        S.SECONDARY_EXEC_APIC_REGISTER_VIRT |
        S.SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY |
        S.SECONDARY_EXEC_RDRAND_EXITING |
        S.SECONDARY_EXEC_ENABLE_INVPCID |
        S.SECONDARY_EXEC_ENABLE_VMFUNC |
        S.SECONDARY_EXEC_RDSEED_EXITING |
        S.SECONDARY_EXEC_ENABLE_XSAVES |
        S.SECONDARY_EXEC_TSC_SCALING |
        S.SECONDARY_EXEC_ENABLE_USR_WAIT_PAUSE)) |
    S.SECONDARY_EXEC_SHADOW_VMCS;
  let eptCaps = 0;
  let vmfunc = 0;
  if (ept) {
    secHi |= S.SECONDARY_EXEC_ENABLE_EPT;
    eptCaps =
      (host.eptCaps &
        (E.VMX_EPT_PAGE_WALK_4_BIT |
          E.VMX_EPT_PAGE_WALK_5_BIT |
          E.VMX_EPTP_WB_BIT |
          E.VMX_EPT_INVEPT_BIT |
          E.VMX_EPT_EXECUTE_ONLY_BIT)) |
      E.VMX_EPT_EXTENT_GLOBAL_BIT |
      E.VMX_EPT_EXTENT_CONTEXT_BIT |
      E.VMX_EPT_2MB_PAGE_BIT |
      E.VMX_EPT_1GB_PAGE_BIT;
    if (eptAd) {
      secHi |= S.SECONDARY_EXEC_ENABLE_PML;
      eptCaps |= E.VMX_EPT_AD_BIT;
    }
    // EPTP switching is emulated, offered whenever the host has VMFUNC (cpu_has_vmx_vmfunc).
    if ((host.cpuBased2ndExecCtrl & S.SECONDARY_EXEC_ENABLE_VMFUNC) !== 0)
      vmfunc = VMFUNC_CTLS.VMX_VMFUNC_EPTP_SWITCHING;
  }
  let vpidCaps = 0;
  if (host.enableVpid) {
    secHi |= S.SECONDARY_EXEC_ENABLE_VPID;
    vpidCaps = EPT_VPID_CAP_HI.VMX_VPID_INVVPID_BIT | VPID_EXTENT_SUPPORTED_MASK;
  }
  // hardware_setup turns unrestricted guest off without EPT.
  if (host.enableUnrestrictedGuest && ept) secHi |= S.SECONDARY_EXEC_UNRESTRICTED_GUEST;
  if (host.flexpriorityEnabled) secHi |= S.SECONDARY_EXEC_VIRTUALIZE_APIC_ACCESSES;
  if (host.enableSgx) secHi |= S.SECONDARY_EXEC_ENCLS_EXITING;

  // kvm: nested_vmx_setup_misc_data. The host's save-EFER.LMA bit, VMWRITE to any field,
  // the emulated timer rate, HLT and wait-for-SIPI; CR3-target count 0, MSR-list N = 0.
  const miscLo =
    ((host.miscLo & VMX_MISC.VMX_MISC_SAVE_EFER_LMA) |
      VMX_MISC.VMX_MISC_VMWRITE_SHADOW_RO_FIELDS |
      VMX_MISC_EMULATED_PREEMPTION_TIMER_RATE |
      VMX_MISC.VMX_MISC_ACTIVITY_HLT |
      VMX_MISC.VMX_MISC_ACTIVITY_WAIT_SIPI) >>>
    0;

  // kvm: nested_vmx_setup_basic. Revision 0x11e57ed0, 4 KiB regions, WB, TRUE controls;
  // INS/OUTS information only if the host reports it.
  const basicHi =
    (VMCS12_SIZE |
      (VMX_BASIC_MEM_TYPE.WB << VMX_BASIC_HI.MEM_TYPE_SHIFT) |
      VMX_BASIC_HI.VMX_BASIC_TRUE_CTLS |
      (host.basicInOut ? VMX_BASIC_HI.VMX_BASIC_INOUT : 0)) >>>
    0;

  // kvm: nested_vmx_setup_cr_fixed. FIXED0 is PE|PG|NE and VMXE; FIXED1 is the host's
  // (plus UMIP when KVM emulates it: no host UMIP but descriptor-table exiting).
  const umipEmulated = !host.hostHasUmip && (host.cpuBased2ndExecCtrl & S.SECONDARY_EXEC_DESC) !== 0;

  // kvm: vmx_get_vmx_msr. The non-TRUE control MSRs OR the default1 class into allowed-0.
  return Object.freeze({
    basic: { lo: VMCS12_REVISION, hi: basicHi },
    pinbasedCtls: { lo: (pinLo | ALWAYSON_WITHOUT_TRUE_MSR.PIN_BASED) >>> 0, hi: pinHi },
    procbasedCtls: { lo: (procLo | ALWAYSON_WITHOUT_TRUE_MSR.CPU_BASED) >>> 0, hi: procHi },
    exitCtls: { lo: (exitLo | ALWAYSON_WITHOUT_TRUE_MSR.VM_EXIT) >>> 0, hi: exitHi },
    entryCtls: { lo: (entryLo | ALWAYSON_WITHOUT_TRUE_MSR.VM_ENTRY) >>> 0, hi: entryHi },
    misc: { lo: miscLo, hi: 0 },
    cr0Fixed0: { lo: VMXON_CR0_ALWAYSON, hi: 0 },
    cr0Fixed1: { lo: host.cr0Fixed1.lo >>> 0, hi: host.cr0Fixed1.hi >>> 0 },
    cr4Fixed0: { lo: VMXON_CR4_ALWAYSON, hi: 0 },
    cr4Fixed1: { lo: (host.cr4Fixed1.lo | (umipEmulated ? CR4.UMIP : 0)) >>> 0, hi: host.cr4Fixed1.hi >>> 0 },
    // kvm: nested_vmx_calc_vmcs_enum_msr (highest vmcs12 field index << 1).
    vmcsEnum: { lo: vmcsEnumMsr("v6.12"), hi: 0 },
    procbasedCtls2: { lo: 0, hi: secHi >>> 0 },
    eptVpidCap: { lo: eptCaps >>> 0, hi: vpidCaps >>> 0 },
    truePinbasedCtls: { lo: pinLo, hi: pinHi },
    trueProcbasedCtls: { lo: procLo, hi: procHi },
    trueExitCtls: { lo: exitLo, hi: exitHi },
    trueEntryCtls: { lo: entryLo, hi: entryHi },
    vmfunc: { lo: vmfunc, hi: 0 },
    procbasedCtls3: null,
  });
}

/** What KVM 6.12 offers an L1 on `MODERN_NESTED_HOST` (see `kvmNestedVmxCapabilities`). */
export const KVM_DEFAULT_VMX_CAPABILITIES: VmxCapabilities = kvmNestedVmxCapabilities();

/** A capability MSR read for display. */
export interface CapabilityMsrDescription {
  readonly name: string;
  readonly index: number;
  readonly kind: CapabilityKind;
  readonly value: bigint;
  /** Named fields (BASIC, MISC, VMCS_ENUM, EPT_VPID_CAP, VMFUNC, CR FIXED0/FIXED1). */
  readonly fields?: DecodedRegister;
  /** Control MSRs: controls that must be 1 (allowed-0 bits), by name or "bit N". */
  readonly mustBeOne?: readonly string[];
  /** Control MSRs: controls that may be 1 (allowed-1 bits). */
  readonly mayBeOne?: readonly string[];
}

function controlNames(layout: RegisterLayout, word: number, base: number): string[] {
  const out: string[] = [];
  for (let bit = 0; bit < 32; bit++) {
    if (((word >>> bit) & 1) === 0) continue;
    const named = layout.fields.find((f) => f.width === 1 && f.lsb === bit + base);
    out.push(named?.name ?? `bit ${bit + base}`);
  }
  return out;
}

function fieldsLayout(info: VmxCapabilityMsrInfo): RegisterLayout | undefined {
  switch (info.kind) {
    case "basic":
      return VMX_BASIC_LAYOUT;
    case "misc":
      return VMX_MISC_LAYOUT;
    case "vmcs-enum":
      return VMCS_ENUM_LAYOUT;
    case "ept-vpid":
      return EPT_VPID_CAP_LAYOUT;
    case "vmfunc":
      return VMFUNC_LAYOUT;
    case "fixed0":
    case "fixed1":
      return info.index === MSR.IA32_VMX_CR0_FIXED0 || info.index === MSR.IA32_VMX_CR0_FIXED1
        ? CR0_LAYOUT
        : CR4_LAYOUT;
    default:
      return undefined;
  }
}

/** Decodes one capability MSR value into named fields or control lists; undefined for other indices. */
export function describeVmxCapabilityMsr(
  index: number,
  lo: number,
  hi: number,
): CapabilityMsrDescription | undefined {
  const info = vmxCapabilityMsrInfo(index);
  if (info === undefined) return undefined;
  const value = toBigInt64(lo, hi);
  const base = { name: info.name, index: info.index, kind: info.kind, value };
  if (info.controls !== undefined) {
    const layout = CONTROL_CLASSES[info.controls].layout;
    if (info.kind === "controls64") {
      return {
        ...base,
        mustBeOne: [],
        mayBeOne: [...controlNames(layout, lo, 0), ...controlNames(layout, hi, 32)],
      };
    }
    return { ...base, mustBeOne: controlNames(layout, lo, 0), mayBeOne: controlNames(layout, hi, 0) };
  }
  const layout = fieldsLayout(info);
  return layout === undefined ? base : { ...base, fields: decodeRegister(layout, value) };
}

/** Every present capability MSR of `caps` in index order, as (name, index, lo, hi). */
export function vmxCapabilityMsrEntries(
  caps: VmxCapabilities,
): { readonly name: string; readonly index: number; readonly lo: number; readonly hi: number }[] {
  const out: { name: string; index: number; lo: number; hi: number }[] = [];
  for (const info of VMX_CAPABILITY_MSRS) {
    const v = caps[info.key];
    if (v === null) continue;
    out.push({ name: info.name, index: info.index, lo: v.lo, hi: v.hi });
  }
  return out;
}
