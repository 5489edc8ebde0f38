import { HYPERVISOR_EVENT_DESCRIPTIONS } from "@nestvisor/hypervisor";
import { VMX_EVENT_DESCRIPTIONS } from "@nestvisor/vmx";

/**
 * The events that open a new step when `nestvisor explain` cuts a round trip into steps, with the
 * step's name and the KVM function it mirrors. Where an event catalog's description names the
 * KVM function ("(kvm: …)"), that text is used; the MMU events, which carry no descriptions, name
 * theirs here (kvm-mmu.md: kvm_init_mmu, kvm_mmu_load, kvm_mmu_new_pgd, kvm_tdp_page_fault…).
 */
export interface StepMarker {
  readonly step: string;
  readonly kvm: string;
}

const DESCRIPTIONS: Readonly<Record<string, string>> = {
  ...VMX_EVENT_DESCRIPTIONS,
  ...HYPERVISOR_EVENT_DESCRIPTIONS,
};

/** "kvm_emulate_cpuid and the instruction skip" from "…(kvm: kvm_emulate_cpuid and the instruction skip)". */
export function kvmFunctionOf(event: string): string | undefined {
  const description = DESCRIPTIONS[event];
  if (description === undefined) return undefined;
  const match = /\(kvm:\s*([^)]*)\)/.exec(description);
  return match?.[1]?.trim();
}

const HANDLERS: Readonly<Record<string, string>> = {
  EXIT_HANDLER_CPUID: "CPUID exit handler",
  EXIT_HANDLER_VMCALL: "VMCALL exit handler",
  EXIT_HANDLER_HLT: "HLT exit handler",
  EXIT_HANDLER_IO_KERNEL: "I/O exit, in-kernel device",
  EXIT_HANDLER_IO_USERSPACE: "I/O exit, completed in userspace",
  EXIT_HANDLER_MSR: "MSR exit handler",
  EXIT_HANDLER_CR_ACCESS: "CR access exit handler",
  EXIT_HANDLER_INVLPG: "INVLPG exit handler",
  EXIT_HANDLER_EPT_VIOLATION: "EPT-violation exit handler",
  EXIT_HANDLER_EPT_MISCONFIG: "EPT-misconfiguration exit handler",
  EXIT_HANDLER_EXCEPTION: "exception exit handler",
  EXIT_HANDLER_VMX_INSTRUCTION: "VMX-instruction exit (common part)",
  EXIT_HANDLER_EXTERNAL_INTERRUPT: "external-interrupt exit",
  EXIT_HANDLER_PREEMPTION_TIMER: "preemption-timer exit",
};

const FIXED: Readonly<Record<string, StepMarker>> = {
  EXIT_DISPATCH: { step: "exit dispatch", kvm: "vcpu_enter_guest → vmx_handle_exit → __vmx_handle_exit" },
  NESTED_EXIT_REFLECTED: {
    step: "decide: L1 asked for this exit, reflect it",
    kvm: "nested_vmx_reflect_vmexit",
  },
  NESTED_EPT_FAULT_INJECTED: {
    step: "EPT12 does not map it: give L1 the EPT violation",
    kvm: "FNAME(page_fault) → nested_ept_inject_page_fault",
  },
  NESTED_EXIT_HANDLED_BY_L0: {
    step: "decide: L0 handles this L2 exit itself",
    kvm: "nested_vmx_reflect_vmexit → nested_vmx_l0_wants_exit",
  },
  NESTED_VM_EXIT: { step: "nested VM exit: leave guest mode", kvm: "nested_vmx_vmexit" },
  NESTED_VM_ENTRY: {
    step: "nested VM entry: enter non-root mode",
    kvm: "nested_vmx_enter_non_root_mode",
  },
  NESTED_ENTRY_CHECKS: {
    step: "nested VM-entry checks on vmcs12",
    kvm: "nested_vmx_check_controls / _address_space_size / _host_state / _guest_state",
  },
  PREPARE_VMCS02_RARE: { step: "write rarely changed vmcs02 fields", kvm: "prepare_vmcs02_rare" },
  PREPARE_VMCS02_CONSTANT_STATE: { step: "set up a new vmcs02", kvm: "prepare_vmcs02_constant_state" },
  VMCS_SWITCH: { step: "switch VMCS (vmcs01 ↔ vmcs02)", kvm: "vmx_switch_vmcs" },
  VCPU_PUT: { step: "vCPU put on VMCS switch", kvm: "vmx_vcpu_put → vmx_prepare_switch_to_host" },
  VCPU_LOAD: { step: "vCPU load on VMCS switch", kvm: "vmx_vcpu_load" },
  VMCS02_RARE_SYNC: { step: "sync rarely used guest fields", kvm: "sync_vmcs02_to_vmcs12_rare" },
  VMCS12_IMAGE_LOAD: {
    step: "map and cache vmcs12",
    kvm: "nested_vmx_load_vmcs12 (kvm_read_guest of the 4-KiB page)",
  },
  VMCS12_IMAGE_FLUSH: { step: "write vmcs12 back to L1 memory", kvm: "nested_release_vmcs12" },
  EVENT_INJECTION: { step: "inject an event at VM entry", kvm: "vmx_inject_irq / vmx_inject_exception" },
  MMIO_SPTE_WALK: {
    step: "find the MMIO SPTE (MMIO cache missed)",
    kvm: "handle_mmio_page_fault → get_mmio_spte",
  },
  INSTRUCTION_EMULATION: { step: "emulate the MMIO instruction", kvm: "x86_emulate_instruction" },
  INSTRUCTION_SKIP_DECODE: {
    step: "decode the instruction to skip it (KVM as a guest)",
    kvm: "skip_emulated_instruction → EMULTYPE_SKIP",
  },
  MMIO_KERNEL: { step: "MMIO completed by an in-kernel device", kvm: "vcpu_mmio_read/_write → kvm_io_bus" },
  MMIO_USERSPACE: { step: "MMIO completed by the VMM", kvm: "KVM_EXIT_MMIO → complete_emulated_mmio" },
  VMLAUNCH: { step: "VM entry", kvm: "vmx_vcpu_run → __vmx_vcpu_run (VMLAUNCH)" },
  VMRESUME: { step: "VM entry", kvm: "vmx_vcpu_run → __vmx_vcpu_run (VMRESUME)" },
  HARDWARE_VM_EXIT: { step: "VM exit", kvm: "hardware (SDM 28: save guest state, load host state)" },
  CONTEXT_INIT: {
    step: "MMU reconfiguration",
    kvm: "kvm_init_mmu → init_kvm_tdp_mmu / kvm_init_shadow_ept_mmu",
  },
  MMU_RESET_CONTEXT: { step: "MMU reset", kvm: "kvm_mmu_reset_context" },
  MMU_UNLOAD: { step: "MMU roots unloaded", kvm: "kvm_mmu_unload" },
  ROOT_LOAD: { step: "MMU root load", kvm: "kvm_mmu_load" },
  PGD_MISS: { step: "new page-table root (cache miss)", kvm: "kvm_mmu_new_pgd → fast_pgd_switch" },
  TDP_FAULT: { step: "TDP page fault", kvm: "kvm_tdp_page_fault" },
  SHADOW_EPT_FAULT: {
    step: "shadow-EPT page fault (EPT02)",
    kvm: "ept_page_fault (FNAME(page_fault) for EPT)",
  },
  SHADOW_FAULT: { step: "shadow page fault", kvm: "FNAME(page_fault)" },
  SYNC_CHILDREN: {
    step: "sync unsync shadow pages",
    kvm: "kvm_mmu_sync_roots / FNAME(fetch) → mmu_sync_children",
  },
  TLB_FLUSH_CURRENT: { step: "TLB flush request", kvm: "kvm_vcpu_flush_tlb_current" },
  TLB_FLUSH_GUEST: { step: "TLB flush request", kvm: "kvm_vcpu_flush_tlb_guest" },
  TLB_FLUSH_ALL: { step: "TLB flush request", kvm: "kvm_vcpu_flush_tlb_all" },
};

/** The step an event opens, or undefined when it belongs to the step before it. */
export function stepMarker(event: string): StepMarker | undefined {
  const fixed = FIXED[event];
  if (fixed !== undefined) return fixed;
  const handler = HANDLERS[event];
  if (handler !== undefined) return { step: handler, kvm: kvmFunctionOf(event) ?? event.toLowerCase() };
  if (event.startsWith("EMULATED_")) {
    const instruction = event.slice("EMULATED_".length);
    return {
      step: `emulate L1's ${instruction}`,
      kvm: kvmFunctionOf(event) ?? `handle_${instruction.toLowerCase()}`,
    };
  }
  return undefined;
}
