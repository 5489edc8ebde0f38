import { defineEventCatalog } from "@nestvisor/vmx";

/**
 * The events the hypervisor layer counts on a `Meter` (ids 0x300–0x3ff; see the vmx layer's
 * `meter.ts`). Append only: an event's id is its position in the list plus 0x300.
 *
 * These are the primitives of DESIGN.md §2.2 that neither the vmx layer (VMX instructions, vmcs12
 * accesses, consistency checks) nor the mmu layer (contexts, roots, shadow pages, faults) counts:
 * the hardware transitions, KVM's per-exit software, the vCPU put/load work of seed 003 flag D,
 * TLB-flush servicing, guest compute time, and the software parts of nested entry and exit.
 *
 * Each event stands for one piece of work *excluding* whatever the other catalogs count inside it:
 * a CPUID exit handled by L0 is HARDWARE_VM_EXIT + EXIT_DISPATCH + EXIT_HANDLER_CPUID + the VMREADs
 * and VMWRITEs it issues (vmx) + VMRESUME (vmx) + HARDWARE_VM_ENTRY. Counting the same work under
 * two names would charge it twice.
 */
export const HYPERVISOR_EVENTS = defineEventCatalog("hypervisor", 0x300, [
  "HARDWARE_VM_EXIT",
  "HARDWARE_VM_ENTRY",
  "EXIT_DISPATCH",
  "VCPU_PUT",
  "VCPU_LOAD",
  "HOST_STATE_RELOAD",
  "RDMSR_DEBUGCTL",
  "RDPKRU",
  "PI_DESCRIPTOR_UPDATE",
  "VMCS_SWITCH",
  "TLB_FLUSH_CURRENT",
  "TLB_FLUSH_GUEST",
  "TLB_FLUSH_ALL",
  "GUEST_COMPUTE_CYCLES",
  "EXIT_HANDLER_CPUID",
  "EXIT_HANDLER_VMCALL",
  "EXIT_HANDLER_HLT",
  "EXIT_HANDLER_IO_KERNEL",
  "EXIT_HANDLER_IO_USERSPACE",
  "EXIT_HANDLER_MSR",
  "EXIT_HANDLER_CR_ACCESS",
  "EXIT_HANDLER_INVLPG",
  "EXIT_HANDLER_EPT_VIOLATION",
  "EXIT_HANDLER_EPT_MISCONFIG",
  "EXIT_HANDLER_EXCEPTION",
  "EXIT_HANDLER_VMX_INSTRUCTION",
  "EXIT_HANDLER_EXTERNAL_INTERRUPT",
  "EXIT_HANDLER_PREEMPTION_TIMER",
  "NESTED_VM_ENTRY",
  "NESTED_VM_EXIT",
  "NESTED_ENTRY_CHECKS",
  "NESTED_EXIT_REFLECTED",
  "NESTED_EXIT_HANDLED_BY_L0",
  "PREPARE_VMCS02_RARE",
  "PREPARE_VMCS02_CONSTANT_STATE",
  "NESTED_MSR_LIST_ENTRY",
  "EVENT_INJECTION",
  "NESTED_EPT_FAULT_INJECTED",
  "INSTRUCTION_EMULATION",
  "INSTRUCTION_SKIP_DECODE",
  "MMIO_SPTE_WALK",
  "MMIO_KERNEL",
  "MMIO_USERSPACE",
]);

export type HypervisorEventName = (typeof HYPERVISOR_EVENTS.names)[number];

/** One line per event, for reports and `--explain`. */
export const HYPERVISOR_EVENT_DESCRIPTIONS: Readonly<Record<HypervisorEventName, string>> = Object.freeze({
  HARDWARE_VM_EXIT:
    "VM exit performed by the processor: guest state saved to the current VMCS, host state loaded (SDM 28.3, 28.5)",
  HARDWARE_VM_ENTRY:
    "VM entry that reached the guest: checks on a cached VMCS, guest state loaded (SDM 27.3); a full " +
    "consistency check is VMCS_FULL_CONSISTENCY_CHECK, the instruction itself VMLAUNCH/VMRESUME (vmx)",
  EXIT_DISPATCH:
    "KVM's software around every exit it handles: the run loop and request checks, register and MSR " +
    "save/restore around the entry, exit-reason dispatch (kvm: vcpu_enter_guest, vmx_vcpu_run, __vmx_handle_exit)",
  VCPU_PUT:
    "full vCPU put on a vmcs01↔vmcs02 switch before seed 003 flag D: host segments, KERNEL_GS_BASE, TSS " +
    "limit, GDT mapping restored (kvm: vmx_vcpu_put → vmx_prepare_switch_to_host)",
  VCPU_LOAD:
    "full vCPU load on a VMCS switch before flag D: PLE window, per-CPU VMCS bookkeeping, posted " +
    "interrupts (kvm: vmx_vcpu_load); the VMPTRLD it issues is counted by the vmx layer",
  HOST_STATE_RELOAD:
    "host state saved again at the next entry because a put cleared guest_state_loaded (kvm: " +
    "vmx_prepare_switch_to_guest); its HOST_FS/GS VMWRITEs are counted by the vmx layer",
  RDMSR_DEBUGCTL:
    "RDMSR of IA32_DEBUGCTL by L0 (get_debugctlmsr: in the 2019 vmx_vcpu_load, which flag D removes from VMCS " +
    "switches; before every entry with hostDebugctlPerEntry); a guest hypervisor's is an exit instead",
  RDPKRU: "RDPKRU of the host PKRU when a vCPU is loaded (2019 vmx_vcpu_load; removed by flag D)",
  PI_DESCRIPTOR_UPDATE: "posted-interrupt descriptor update at vCPU put or load (kvm: vmx_vcpu_pi_put/_load)",
  VMCS_SWITCH:
    "KVM's bookkeeping of a vmcs01↔vmcs02 switch kept with flag D: loaded_vmcs pointer, host-state " +
    "cache copy, register-cache reset (kvm: vmx_switch_vmcs); the VMPTRLD is counted by the vmx layer",
  TLB_FLUSH_CURRENT:
    "KVM_REQ_TLB_FLUSH_CURRENT serviced (kvm: kvm_vcpu_flush_tlb_current), software part; an " +
    "INVEPT/INVVPID it executes on a VmxCpu is counted by the vmx layer; refill misses are not modelled",
  TLB_FLUSH_GUEST:
    "KVM_REQ_TLB_FLUSH_GUEST serviced (kvm: kvm_vcpu_flush_tlb_guest), software part; as TLB_FLUSH_CURRENT",
  TLB_FLUSH_ALL:
    "KVM_REQ_TLB_FLUSH serviced (kvm: kvm_vcpu_flush_tlb_all), software part; as TLB_FLUSH_CURRENT",
  GUEST_COMPUTE_CYCLES: "cycles a guest spends computing without exiting; counted with n = the cycles",
  EXIT_HANDLER_CPUID: "CPUID exit handler body (kvm: kvm_emulate_cpuid and the instruction skip)",
  EXIT_HANDLER_VMCALL: "VMCALL exit handler body (kvm: kvm_emulate_hypercall)",
  EXIT_HANDLER_HLT:
    "HLT exit handler body (kvm: kvm_emulate_halt); the time the vCPU stays halted is not in it",
  EXIT_HANDLER_IO_KERNEL:
    "port I/O exit completed inside KVM by an in-kernel device (kvm: handle_io → kvm_fast_pio / kvm_io_bus)",
  EXIT_HANDLER_IO_USERSPACE:
    "port I/O exit completed by the userspace device model: KVM_EXIT_IO to the VMM, its emulation, KVM_RUN " +
    "again (kvm: handle_io → kvm_fast_pio, KVM_EXIT_IO, complete_fast_pio_in)",
  EXIT_HANDLER_MSR: "RDMSR/WRMSR exit handler body (kvm: kvm_emulate_rdmsr / kvm_emulate_wrmsr)",
  EXIT_HANDLER_CR_ACCESS:
    "control-register access exit handler body (kvm: handle_cr → kvm_set_cr0/3/4); MMU work is counted by the mmu layer",
  EXIT_HANDLER_INVLPG:
    "INVLPG exit handler body (kvm: handle_invlpg → kvm_mmu_invlpg); MMU work counted by mmu",
  EXIT_HANDLER_EPT_VIOLATION:
    "EPT-violation exit handler body up to the MMU fault (kvm: handle_ept_violation); the fault is TDP_FAULT / SHADOW_EPT_FAULT (mmu)",
  EXIT_HANDLER_EPT_MISCONFIG:
    "EPT-misconfiguration (MMIO) exit handler body: the GPA and the KVM_FAST_MMIO_BUS lookup, with the " +
    "eventfd signal on a hit (kvm: handle_ept_misconfig); emulation and the MMIO page fault are counted apart",
  EXIT_HANDLER_EXCEPTION: "exception or NMI exit handler body (kvm: handle_exception_nmi)",
  EXIT_HANDLER_VMX_INSTRUCTION:
    "common part of a VMX-instruction exit: permission checks, operand decoding, instruction skip (kvm: " +
    "nested_vmx_check_permission, get_vmx_mem_address); the instruction's own emulation is EMULATED_* (vmx)",
  EXIT_HANDLER_EXTERNAL_INTERRUPT:
    "external-interrupt exit: the host interrupt handler is called (kvm: handle_external_interrupt_irqoff)",
  EXIT_HANDLER_PREEMPTION_TIMER: "VMX-preemption-timer exit handler body (kvm: handle_preemption_timer)",
  NESTED_VM_ENTRY:
    "software part of a nested VM entry: vmcs02 preparation and L2 state set-up (kvm: " +
    "nested_vmx_enter_non_root_mode, prepare_vmcs02_early, prepare_vmcs02), excluding counted VMX instructions, checks and MMU work",
  NESTED_VM_EXIT:
    "software part of a nested VM exit: leaving guest mode, vmcs12 exit information, L1 host state " +
    "(kvm: nested_vmx_vmexit, prepare_vmcs12, load_vmcs12_host_state), excluding counted VMX instructions and MMU work",
  NESTED_ENTRY_CHECKS:
    "KVM's software VM-entry checks on vmcs12, run on every VMLAUNCH/VMRESUME from L1 (kvm: " +
    "nested_vmx_check_controls, _address_space_size, _host_state, _guest_state; kvm-vmx.md §9)",
  NESTED_EXIT_REFLECTED: "an L2 exit that L1 asked for, reflected to L1 (kvm: nested_vmx_reflect_vmexit)",
  NESTED_EXIT_HANDLED_BY_L0:
    "an L2 exit L1 did not ask for, handled by L0 with L2 resumed directly (kvm: nested_vmx_l0_wants_exit)",
  PREPARE_VMCS02_RARE:
    "software part of the dirty-vmcs12 path of a nested entry (kvm: prepare_vmcs02_rare); its 46–56 VMWRITEs are counted by the vmx layer",
  PREPARE_VMCS02_CONSTANT_STATE:
    "one-time set-up of a new vmcs02 (kvm: prepare_vmcs02_constant_state); its VMWRITEs are counted by the vmx layer",
  NESTED_MSR_LIST_ENTRY:
    "one entry of a vmcs12 VM-entry MSR-load or VM-exit MSR-store/-load list processed in software (kvm: nested_vmx_load_msr, nested_vmx_store_msr)",
  EVENT_INJECTION:
    "an interrupt or exception injected into a guest at VM entry (kvm: vmx_inject_irq / vmx_inject_exception); its VMWRITEs are counted by the vmx layer",
  NESTED_EPT_FAULT_INJECTED:
    "an EPT violation or misconfiguration that L0 finds in L1's EPT12 while building EPT02, given to L1 as a " +
    "nested VM exit; the L2 exit was L0's, not reflected (kvm: FNAME(page_fault) → nested_ept_inject_page_fault)",
  INSTRUCTION_EMULATION:
    "KVM's emulation of one guest instruction that accessed MMIO: context set-up, instruction fetch (a walk of " +
    "the guest's tables and a read), decode, execution and writeback (kvm: x86_emulate_instruction); its VMCS " +
    "accesses are counted by the vmx layer, the device access by MMIO_KERNEL / MMIO_USERSPACE",
  INSTRUCTION_SKIP_DECODE:
    "fetch and decode of the guest's instruction only to learn its length, when KVM runs as a guest and will " +
    "not trust VM_EXIT_INSTRUCTION_LEN on an EPT misconfiguration (kvm: skip_emulated_instruction → EMULTYPE_SKIP)",
  MMIO_SPTE_WALK:
    "an MMIO page fault that missed the vCPU's MMIO cache: a lockless walk of the current root to the MMIO SPTE " +
    "and its generation check (kvm: handle_mmio_page_fault → get_mmio_spte, check_mmio_spte)",
  MMIO_KERNEL:
    "an emulated MMIO access completed by an in-kernel device on KVM_MMIO_BUS: the IOAPIC, or a doorbell's " +
    "ioeventfd (kvm: vcpu_mmio_read/_write → kvm_io_bus_read/_write)",
  MMIO_USERSPACE:
    "an emulated MMIO access completed by the userspace device model: KVM_EXIT_MMIO to the VMM, its emulation, " +
    "KVM_RUN again (kvm: emulator_read_write → KVM_EXIT_MMIO, complete_emulated_mmio)",
});
