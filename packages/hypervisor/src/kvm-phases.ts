/**
 * The KVM functions a VM transition is cut into on the timeline: a `TRACE_KIND.PHASE` span (code =
 * a `KVM_PHASE` id) opens where the model's code enters the function and lasts until the next phase,
 * VM exit or VM entry. `nestvisor explain` turns them into its steps, and a Perfetto export shows
 * them as slices inside the exit being handled. They only mark where work happens; they count
 * nothing and cost nothing (reference kvm-vmx.md §7 and §8 for the order of the nested flows).
 */
export const KVM_PHASE = {
  /** vcpu_enter_guest before the entry: requests (TLB flushes), kvm_mmu_reload, vmx_load_mmu_pgd. */
  PREPARE_ENTRY: 1,
  /** vmx_prepare_switch_to_guest → nested_sync_vmcs12_to_shadow → copy_vmcs12_to_shadow. */
  COPY_VMCS12_TO_SHADOW: 2,
  /** vmx_vcpu_run: dirty registers written back, then VMLAUNCH/VMRESUME. */
  VCPU_RUN: 3,
  /** vmx_prepare_switch_to_guest (host state saved again after a vCPU put), vmx_sync_pir_to_irr. */
  SWITCH_TO_GUEST: 12,
  /** vcpu_enter_guest → get_debugctlmsr (`hostDebugctlPerEntry`). */
  SNAPSHOT_HOST_DEBUGCTL: 13,
  /** kvm_skip_emulated_instruction at the end of an exit handler. */
  SKIP_INSTRUCTION: 14,
  /** vmx_switch_vmcs. */
  SWITCH_VMCS: 4,
  /** prepare_vmcs02_early (with prepare_vmcs02_early_rare). */
  PREPARE_VMCS02_EARLY: 5,
  /** nested_get_vmcs12_pages → nested_vmx_prepare_msr_bitmap. */
  GET_VMCS12_PAGES: 6,
  /** prepare_vmcs02 (its prepare_vmcs02_rare part is a step of its own): L2's state, MMU context, CR3. */
  PREPARE_VMCS02: 7,
  /** sync_vmcs02_to_vmcs12. */
  SYNC_VMCS02_TO_VMCS12: 8,
  /** prepare_vmcs12 and nested_flush_cached_shadow_vmcs12. */
  PREPARE_VMCS12: 9,
  /** nested_vmx_vmexit after the switch: vmcs01's MSR-load counts, TSC offset and multiplier. */
  REFRESH_VMCS01: 10,
  /** load_vmcs12_host_state. */
  LOAD_VMCS12_HOST_STATE: 11,
} as const;
export type KvmPhase = (typeof KVM_PHASE)[keyof typeof KVM_PHASE];

/** What a phase is called in a step list, and the KVM function it mirrors. */
export interface KvmPhaseInfo {
  readonly step: string;
  readonly kvm: string;
}

const INFO: Readonly<Record<KvmPhase, KvmPhaseInfo>> = {
  [KVM_PHASE.PREPARE_ENTRY]: {
    step: "requests before the entry",
    kvm: "vcpu_enter_guest → kvm_service_local_tlb_flush_requests, kvm_mmu_reload, vmx_load_mmu_pgd",
  },
  [KVM_PHASE.COPY_VMCS12_TO_SHADOW]: {
    step: "copy vmcs12 to the shadow VMCS",
    kvm: "vmx_prepare_switch_to_guest → nested_sync_vmcs12_to_shadow → copy_vmcs12_to_shadow",
  },
  [KVM_PHASE.SWITCH_TO_GUEST]: {
    step: "switch to the guest's state",
    kvm: "vmx_prepare_switch_to_guest, vmx_sync_pir_to_irr",
  },
  [KVM_PHASE.SKIP_INSTRUCTION]: {
    step: "skip the emulated instruction",
    kvm: "kvm_skip_emulated_instruction → skip_emulated_instruction",
  },
  [KVM_PHASE.SNAPSHOT_HOST_DEBUGCTL]: {
    step: "read the host's DEBUGCTL",
    kvm: "vcpu_enter_guest → get_debugctlmsr",
  },
  // The same step as the VMLAUNCH/VMRESUME that ends it (kvm-steps "VM entry").
  [KVM_PHASE.VCPU_RUN]: { step: "VM entry", kvm: "vmx_vcpu_run → __vmx_vcpu_run" },
  [KVM_PHASE.SWITCH_VMCS]: { step: "switch VMCS (vmcs01 ↔ vmcs02)", kvm: "vmx_switch_vmcs" },
  [KVM_PHASE.PREPARE_VMCS02_EARLY]: {
    step: "prepare vmcs02: controls and event injection",
    kvm: "prepare_vmcs02_early",
  },
  [KVM_PHASE.GET_VMCS12_PAGES]: {
    step: "merge L1's MSR bitmap",
    kvm: "nested_get_vmcs12_pages → nested_vmx_prepare_msr_bitmap",
  },
  [KVM_PHASE.PREPARE_VMCS02]: {
    step: "prepare vmcs02: L2's state, MMU and CR3",
    kvm: "prepare_vmcs02",
  },
  [KVM_PHASE.SYNC_VMCS02_TO_VMCS12]: {
    step: "sync vmcs02 → vmcs12",
    kvm: "sync_vmcs02_to_vmcs12",
  },
  [KVM_PHASE.PREPARE_VMCS12]: {
    step: "write the exit information into vmcs12",
    kvm: "prepare_vmcs12, nested_flush_cached_shadow_vmcs12",
  },
  [KVM_PHASE.REFRESH_VMCS01]: {
    step: "refresh vmcs01",
    kvm: "nested_vmx_vmexit (MSR-load counts, TSC offset and multiplier)",
  },
  [KVM_PHASE.LOAD_VMCS12_HOST_STATE]: {
    step: "load L1's host state",
    kvm: "load_vmcs12_host_state",
  },
};

/** The step name and KVM function of a phase id, or undefined for a number that is none. */
export function kvmPhaseInfo(phase: number): KvmPhaseInfo | undefined {
  return Object.hasOwn(INFO, phase) ? INFO[phase as KvmPhase] : undefined;
}
