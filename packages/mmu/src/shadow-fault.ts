/**
 * How a shadow-MMU page fault ended (kvm: the RET_PF_* codes of FNAME(page_fault) and
 * direct_page_fault, with the outcomes KVM folds into RET_PF_EMULATE and RET_PF_RETRY split by
 * reason, and the guest faults the walk produced named by where they go).
 */
export const SHADOW_FAULT = {
  /** An SPTE was installed (kvm: RET_PF_FIXED). */
  FIXED: 0,
  /** The leaf already held what the fault would install (kvm: RET_PF_SPURIOUS). */
  SPURIOUS: 1,
  /**
   * Nothing done: the root is obsolete or has no shadow page (kvm: is_page_fault_stale →
   * RET_PF_RETRY). The vCPU frees obsolete roots, loads a new one and faults again.
   */
  RETRY: 2,
  /**
   * Shadow paging: the guest's own tables do not allow the access; a #PF with `errorCode` and
   * CR2 = `addressLo/addressHi` goes to the guest (kvm: kvm_inject_emulated_page_fault).
   */
  INJECT_PAGE_FAULT: 3,
  /**
   * Shadow EPT: L1's EPT12 does not allow the access; an EPT-violation VM exit (reason 48) with
   * `qualification` and guest-physical address `gpa` is reflected to L1
   * (kvm: nested_ept_inject_page_fault).
   */
  INJECT_EPT_VIOLATION: 4,
  /** Shadow EPT: an EPT12 entry is misconfigured; an EPT-misconfiguration exit (reason 49) to L1. */
  INJECT_EPT_MISCONFIG: 5,
  /**
   * No memslot holds the gfn: the access is emulated as MMIO, and the 4-KiB leaf now caches an MMIO
   * SPTE (kvm: kvm_handle_noslot_fault, mark_mmio_spte → RET_PF_EMULATE).
   */
  EMULATE_MMIO: 6,
  /** A write to a read-only memslot (kvm: KVM_PFN_ERR_RO_FAULT → RET_PF_EMULATE). */
  EMULATE_READ_ONLY: 7,
  /**
   * A write to a write-tracked gfn — a page table the shadow MMU shadows (kvm:
   * page_fault_handle_page_track, or make_spte write-protecting the new SPTE). The instruction is
   * emulated; the emulated write then goes through `ShadowMmu.trackedWrite`.
   */
  EMULATE_WRITE_PROTECTED: 8,
} as const;
export type ShadowFaultOutcome = (typeof SHADOW_FAULT)[keyof typeof SHADOW_FAULT];

/** Outcome names for messages and reports. */
export const SHADOW_FAULT_NAMES: Readonly<Record<ShadowFaultOutcome, string>> = {
  [SHADOW_FAULT.FIXED]: "fixed",
  [SHADOW_FAULT.SPURIOUS]: "spurious",
  [SHADOW_FAULT.RETRY]: "retry",
  [SHADOW_FAULT.INJECT_PAGE_FAULT]: "inject #PF",
  [SHADOW_FAULT.INJECT_EPT_VIOLATION]: "reflect EPT violation",
  [SHADOW_FAULT.INJECT_EPT_MISCONFIG]: "reflect EPT misconfiguration",
  [SHADOW_FAULT.EMULATE_MMIO]: "emulate MMIO",
  [SHADOW_FAULT.EMULATE_READ_ONLY]: "emulate read-only slot write",
  [SHADOW_FAULT.EMULATE_WRITE_PROTECTED]: "emulate write to a shadowed page table",
};

/** The result of one shadow-MMU fault, written in place (one object per MMU, reused). */
export class ShadowFaultResult {
  outcome: ShadowFaultOutcome = SHADOW_FAULT.FIXED;
  /** INJECT_PAGE_FAULT: the #PF error code. */
  errorCode = 0;
  /** INJECT_PAGE_FAULT: the faulting linear address (CR2), low and high words. */
  addressLo = 0;
  addressHi = 0;
  /** INJECT_EPT_*: the exit reason L1 sees (48 or 49). */
  exitReason = 0;
  /** INJECT_EPT_VIOLATION: the exit qualification L1 sees (0 for a misconfiguration). */
  qualification = 0;
  /** INJECT_EPT_*: the L2 guest-physical address (vmcs12 GUEST_PHYSICAL_ADDRESS). */
  gpa = 0;
  /** After a successful walk: the gfn the access maps to (L1's for shadow EPT, the guest's for shadow paging). */
  gfn = -1;
  /** FIXED/SPURIOUS: host-physical address of the page mapped. */
  hpa = -1;
  /** After a successful walk: the level of the guest's leaf (1 = 4 KiB). */
  guestLevel = 0;
  /** After a successful walk: the rights the leaf SPTE was built from, in ACC form (kvm: pte_access). */
  access = 0;

  reset(): void {
    this.outcome = SHADOW_FAULT.FIXED;
    this.errorCode = 0;
    this.addressLo = 0;
    this.addressHi = 0;
    this.exitReason = 0;
    this.qualification = 0;
    this.gpa = 0;
    this.gfn = -1;
    this.hpa = -1;
    this.guestLevel = 0;
    this.access = 0;
  }
}
