import { Vmcs12 } from "./vmcs12";
import { DEFAULT_VMCS12_ERA, type Vmcs12Era } from "./vmcs12-layout";

/**
 * "No address" for the VMXON and current-VMCS pointers. KVM stores all ones (kvm: INVALID_GPA,
 * `-1ull`); as a number, -1 never collides with a guest-physical address (all are ≥ 0).
 */
export const INVALID_GPA = -1;

/**
 * The part of KVM's per-vCPU nested-VMX state (kvm: `struct nested_vmx`, arch/x86/kvm/vmx/vmx.h)
 * that the emulation of L1's VMX instructions reads and writes.
 *
 * L1's VMXON region and VMCS regions live in L1's physical memory; KVM keeps one 4-KiB copy of the
 * current VMCS (`cachedVmcs12`, loaded by VMPTRLD, written back when the VMCS is released) and one of
 * the shadow VMCS L1 links to vmcs12 for L2 (`cachedShadowVmcs12`, loaded and flushed by the nested
 * VM-entry and VM-exit flows, used by VMREAD/VMWRITE that L2 executes while L0 emulates them).
 *
 * Not held here (owned by other parts of the model): vmcs02 and the hardware shadow VMCS, the
 * vmcs02↔vmcs12 sync flags (`need_sync_vmcs02_to_vmcs12_rare`, `need_vmcs12_to_shadow_sync`,
 * behind `NestedSyncPort`), the enlightened VMCS (not modelled), vpid02, the preemption timer, the
 * pinned APIC/PI pages, SMM's saved VMX state.
 */
export class NestedVmxState {
  /** L1 has executed VMXON and not yet VMXOFF (kvm: `nested.vmxon`). */
  vmxon = false;
  /** Guest-physical address of L1's VMXON region, or `INVALID_GPA` (kvm: `nested.vmxon_ptr`). */
  vmxonPtr = INVALID_GPA;
  /** Guest-physical address of L1's current VMCS, or `INVALID_GPA` (kvm: `nested.current_vmptr`). */
  currentVmptr = INVALID_GPA;
  /** KVM's copy of the current VMCS (kvm: `nested.cached_vmcs12`, `get_vmcs12`). */
  readonly cachedVmcs12: Vmcs12;
  /** KVM's copy of the VMCS L1 links for L2's VMREAD/VMWRITE (kvm: `nested.cached_shadow_vmcs12`). */
  readonly cachedShadowVmcs12: Vmcs12;
  /** L2 is running, i.e. the vCPU is in VMX non-root operation for L1 (kvm: `is_guest_mode`). */
  guestMode = false;
  /**
   * A VMLAUNCH/VMRESUME passed its checks and the nested VM entry has not completed yet (kvm:
   * `nested.nested_run_pending`); the VM-entry flow clears it.
   */
  nestedRunPending = false;

  constructor(era: Vmcs12Era = DEFAULT_VMCS12_ERA) {
    this.cachedVmcs12 = new Vmcs12(era);
    this.cachedShadowVmcs12 = new Vmcs12(era);
  }

  /** L1 has a current VMCS (kvm: `current_vmptr != INVALID_GPA`; no enlightened VMCS here). */
  get hasCurrentVmcs(): boolean {
    return this.currentVmptr !== INVALID_GPA;
  }
}
