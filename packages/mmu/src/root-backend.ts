/**
 * The seam between KVM's MMU *contexts* (roles, gates, the root cache: `kvm-mmu.md` §2–4) and the
 * *page tables* behind the roots (the shadow-page hash, the TDP MMU, shadow paging and shadow
 * EPT: §2.8, §3.7–3.9). Contexts decide which root they want; a backend finds or builds it and
 * says what lies behind a root. The TDP MMU, the legacy shadow MMU and a test fake implement it,
 * and a user can plug in another page-table policy.
 *
 * Roots are identified by the host-physical address of their top page (`hpa`), as KVM's
 * `kvm_mmu_root_info.hpa`; `INVALID_ROOT` (-1) is KVM's INVALID_PAGE.
 */
export const INVALID_ROOT = -1;

/** Returned by `rootRoleWord` for a special root (PAE/PML4/PML5 wrapper) with no page behind it. */
export const NO_SHADOW_PAGE = -1;

export interface RootBackend {
  /**
   * A root for a direct MMU (TDP, or shadow paging with guest paging off) with this role
   * (kvm: mmu_alloc_direct_roots; with the TDP MMU, kvm_tdp_mmu_alloc_root). Takes a reference.
   */
  allocDirectRoot(role: number): number;
  /**
   * A root that shadows the guest table `pgd` points to (a CR3 for shadow paging, an EPTP for
   * shadow EPT) with this role (kvm: mmu_alloc_shadow_roots). Takes a reference.
   */
  allocShadowRoot(role: number, pgd: number): number;
  /**
   * The role word of the page behind a root, including its `invalid` bit, or `NO_SHADOW_PAGE` for
   * a special root (kvm: root_to_sp(hpa)->role.word).
   */
  rootRoleWord(hpa: number): number;
  /** Drops one reference to a root (kvm: mmu_free_root_page). */
  putRoot(hpa: number): void;
  /** The root's page is obsolete or gone (kvm: is_obsolete_root). */
  isObsoleteRoot(hpa: number): boolean;
}
