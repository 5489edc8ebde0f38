import { defineEventCatalog } from "@nestvisor/vmx";

/**
 * The events the mmu layer counts on a `Meter` (ids 0x200–0x2ff; see the vmx layer's `meter.ts`).
 * Append only: an event's id is its position in the list plus 0x200. The names follow the
 * counters `kvm-mmu.md` §7 asks for, so that every seed flag's saving shows up as a difference in
 * these counts.
 */
export const MMU_EVENTS = defineEventCatalog("mmu", 0x200, [
  /** A context passed its "anything changed?" gate and was reconfigured (kvm: init_kvm_*_mmu body). */
  "CONTEXT_INIT",
  /** kvm: update_permission_bitmask — 16 iterations. */
  "PERMISSION_BITMASK_UPDATE",
  /** kvm: update_pkru_bitmask loop actually run (CR4.PKE and EFER.LMA). */
  "PKRU_BITMASK_UPDATE",
  /** kvm: reset_guest_rsvds_bits_mask / reset_rsvds_bits_mask_ept. */
  "GUEST_RSVD_MASK_RESET",
  /** kvm: reset_*_shadow_zero_bits_mask. */
  "SHADOW_ZERO_MASK_RESET",
  /** kvm: kvm_mmu_load. */
  "ROOT_LOAD",
  /** A valid root slot released (kvm: mmu_free_root_page). */
  "ROOT_DROP",
  /** A root whose page tables were created (SP hash miss for a root, or a new TDP MMU root). */
  "ROOT_ALLOC",
  /** A root whose page tables were destroyed. */
  "ROOT_DESTROY",
  /** kvm_mmu_new_pgd / fast_pgd_switch outcomes. */
  "PGD_HIT_CURRENT",
  "PGD_HIT_PREV",
  "PGD_MISS",
  /** kvm: kvm_mmu_unload. */
  "MMU_UNLOAD",
  /** kvm: kvm_mmu_reset_context. */
  "MMU_RESET_CONTEXT",
  /** A shadow/TDP page-table page allocated or zapped. */
  "SHADOW_PAGE_ALLOC",
  "SHADOW_PAGE_ZAP",
  /** kvm: kvm_mmu_find_shadow_page lookups and hits. */
  "SHADOW_PAGE_LOOKUP",
  "SHADOW_PAGE_HIT",
  /** A shadow/TDP/EPT02 entry written. */
  "SPTE_WRITE",
  /** Page faults handled by each flavour. */
  "TDP_FAULT",
  "SHADOW_FAULT",
  "SHADOW_EPT_FAULT",
  /** A software walk of guest tables (kvm: FNAME(walk_addr_generic)). */
  "GUEST_WALK",
  /** A write by the guest to a write-tracked guest page table (kvm: kvm_mmu_track_write). */
  "TRACKED_WRITE",
  /**
   * TLB flush requests made by the MMU (kvm: KVM_REQ_TLB_FLUSH_*): the remote flushes that follow
   * SPTE changes and zaps (kvm: kvm_flush_remote_tlbs*), and the per-vCPU guest/current flushes the
   * CR0/CR3/CR4 handlers and KVM_SET_SREGS request (VcpuMmu.makeRequest). Not the direct
   * flush_tlb_current that ends every kvm_mmu_load (one per ROOT_LOAD).
   */
  "TLB_FLUSH_REQUEST",
  /**
   * A last-level shadow page marked unsync because a writable SPTE now maps the guest table it
   * shadows (kvm: mmu_try_to_unsync_pages → kvm_unsync_page and the parents' unsync-child bits).
   */
  "UNSYNC_PAGE",
  /**
   * One batch of an `mmu_sync_children` pass that found unsync pages under a page (kvm:
   * kvm_mmu_sync_roots, FNAME(fetch)): an mmu_unsync_walk of at most 16 entries and its syncs.
   */
  "SYNC_CHILDREN",
  /** One shadow page brought back in line with its guest table (kvm: __kvm_sync_page, 512 SPTEs scanned). */
  "SYNC_PAGE",
  /** One present SPTE re-derived from its guest entry during a sync (kvm: FNAME(sync_spte)). */
  "SYNC_SPTE",
]);

export type MmuEventName = (typeof MMU_EVENTS.names)[number];
