import { PAGE_ROLE, roleLevel } from "./page-role";
import type { RootBackend } from "./root-backend";
import type { ShadowMmu } from "./shadow-mmu";
import type { TdpMmu } from "./tdp-mmu";

export interface ShadowRootBackendOptions {
  /** The shadow MMU that builds shadow roots (and direct roots when there is no TDP MMU). */
  readonly shadow: ShadowMmu;
  /**
   * With TDP (kvm: tdp_mmu_enabled), direct roots come from the TDP MMU and the shadow MMU only
   * builds shadow-EPT roots. Without it (shadow paging), direct roots — guest paging off — are
   * legacy shadow pages.
   */
  readonly tdp?: TdpMmu;
  /**
   * The guest's PAE PDPTE registers for a PAE root (kvm: mmu->get_pdptr, the values loaded at the
   * last CR3 load). Default: read from the 32-byte table `pgd` points to in guest memory, which is
   * what load_pdptrs would load.
   */
  readonly pdptes?: (pgd: number) => ArrayLike<number>;
}

const TWO_32 = 4294967296;

/**
 * The `RootBackend` of an MMU whose roots are the legacy shadow MMU's (kvm: mmu_alloc_shadow_roots,
 * mmu_alloc_direct_roots, mmu_free_root_page, is_obsolete_root): shadow-EPT roots of guest_mmu,
 * shadow-paging roots of root_mmu with TDP off, and — with a TDP MMU given — the TDP MMU's direct
 * roots, so one backend serves every context of a vCPU. Root pages are told apart as KVM does:
 * a TDP MMU page, a shadow page, or a special root with no page behind it (pae_root, dummy root).
 */
export class ShadowRootBackend implements RootBackend {
  readonly shadow: ShadowMmu;
  readonly tdp: TdpMmu | null;
  readonly #pdptes: ((pgd: number) => ArrayLike<number>) | null;
  readonly #pdpteBuffer = new Float64Array(4);

  constructor(options: ShadowRootBackendOptions) {
    this.shadow = options.shadow;
    this.tdp = options.tdp ?? null;
    this.#pdptes = options.pdptes ?? null;
  }

  /** kvm: mmu_alloc_direct_roots — the TDP MMU's root, or legacy direct shadow pages. */
  allocDirectRoot(role: number): number {
    if (this.tdp !== null) return this.tdp.allocRoot(role);
    return this.shadow.allocDirectRoots(role);
  }

  /**
   * kvm: mmu_alloc_shadow_roots — for a PAE guest (level-3 role without 4-byte PTEs) the PDPTE
   * registers are needed; they come from the `pdptes` option or guest memory.
   */
  allocShadowRoot(role: number, pgd: number): number {
    const word = role >>> 0;
    let pdptes: ArrayLike<number> | null = null;
    if (roleLevel(word) === 3 && (word & PAGE_ROLE.HAS_4_BYTE_GPTE) === 0) {
      pdptes = this.#pdptes !== null ? this.#pdptes(pgd) : this.#readPdptes(pgd);
    }
    return this.shadow.allocShadowRoots(word, pgd, pdptes);
  }

  /** kvm: root_to_sp(hpa)->role.word, or NO_SHADOW_PAGE for a root with no page behind it. */
  rootRoleWord(hpa: number): number {
    return this.shadow.rootRoleWord(hpa);
  }

  /** kvm: mmu_free_root_page — a TDP MMU root's reference, or a shadow root's. */
  putRoot(hpa: number): void {
    const store = this.shadow.store;
    const id = store.idOfHostPage(hpa);
    if (id >= 0 && store.isTdpPage(id)) {
      if (this.tdp === null)
        throw new Error(`root 0x${hpa.toString(16)} is a TDP MMU page but there is no TDP MMU`);
      this.tdp.putRoot(hpa);
      return;
    }
    this.shadow.putRoot(hpa);
  }

  /** kvm: is_obsolete_root. */
  isObsoleteRoot(hpa: number): boolean {
    return this.shadow.isObsoleteRoot(hpa);
  }

  /** The four PDPTEs at CR3 bits 31:5 in guest memory (kvm: load_pdptrs). */
  #readPdptes(cr3: number): Float64Array {
    const memory = this.shadow.guestMemory;
    const base = (cr3 % TWO_32) - ((cr3 % TWO_32) % 32);
    const out = this.#pdpteBuffer;
    for (let i = 0; i < 4; i++) {
      out[i] = memory.read32(base + i * 8 + 4) * TWO_32 + memory.read32(base + i * 8);
    }
    return out;
  }
}
