import { NO_SHADOW_PAGE, type RootBackend } from "./root-backend";
import type { TdpMmu } from "./tdp-mmu";

/**
 * The `RootBackend` of a direct MMU on the TDP MMU (kvm: mmu_alloc_direct_roots with
 * `tdp_mmu_enabled`, mmu_free_root_page, is_obsolete_root): what an MMU context uses when its
 * root role is direct. Shadow roots (shadow paging, shadow EPT) are the shadow MMU's, so
 * `allocShadowRoot` refuses.
 */
export class TdpRootBackend implements RootBackend {
  readonly tdp: TdpMmu;

  constructor(tdp: TdpMmu) {
    this.tdp = tdp;
  }

  /** kvm: kvm_tdp_mmu_alloc_root. */
  allocDirectRoot(role: number): number {
    return this.tdp.allocRoot(role);
  }

  allocShadowRoot(role: number, pgd: number): number {
    throw new Error(
      `the TDP MMU builds direct roots only: a shadow root (role 0x${(role >>> 0).toString(16)}, pgd 0x${pgd.toString(16)}) ` +
        "comes from the shadow MMU (kvm: mmu_alloc_shadow_roots)",
    );
  }

  /** kvm: root_to_sp(hpa)->role.word, or NO_SHADOW_PAGE for an address with no page behind it. */
  rootRoleWord(hpa: number): number {
    const store = this.tdp.store;
    const id = store.idOfHostPage(hpa);
    return id < 0 ? NO_SHADOW_PAGE : store.role(id);
  }

  /** kvm: mmu_free_root_page → kvm_tdp_mmu_put_root. */
  putRoot(hpa: number): void {
    this.tdp.putRoot(hpa);
  }

  /** kvm: is_obsolete_root — no page behind the address, or the page is invalid. */
  isObsoleteRoot(hpa: number): boolean {
    const store = this.tdp.store;
    const id = store.idOfHostPage(hpa);
    return id < 0 || store.isObsolete(id);
  }
}
