import { PAGE_ROLE, roleLevel } from "../page-role";
import { NO_SHADOW_PAGE, type RootBackend } from "../root-backend";

/**
 * A small `RootBackend` for tests of the contexts and the root cache: no page tables, only root
 * pages with a role, a gfn and a reference count, kept in a hash the way KVM's shadow-page hash and
 * the TDP MMU's root list keep them (kvm-mmu.md §2.8):
 *
 * - Asking again for the same (role, gfn) returns the same page with one more reference — a root
 *   "allocation" that was seen before is a lookup. Direct roots use gfn 0; shadow roots the guest
 *   root's gfn (pgd bits 51:12).
 * - A root whose level is below 4 (a PAE shadow or a direct PAE-level root) is a *special* root with
 *   no page behind it (kvm: pae_root; root_to_sp() is NULL): a fresh address each time.
 * - Pages survive their last reference (legacy MMU; TDP MMU from v6.4) unless `destroyOnLastPut`
 *   (the TDP MMU before edbdb43fc96b), or unless they were zapped.
 */
export interface FakeRootBackendOptions {
  /** Destroy a page when its last reference goes (the pre-v6.4 TDP MMU). Default false. */
  readonly destroyOnLastPut?: boolean;
}

interface FakePage {
  readonly hpa: number;
  readonly role: number;
  readonly gfn: number;
  refs: number;
  /** Zapped while referenced (role.invalid). */
  invalid: boolean;
  /** Generation it was created in (kvm: mmu_valid_gen). */
  readonly gen: number;
}

const PAGE_SIZE = 0x1000;
/** Special roots live in their own address range so they never collide with pages. */
const SPECIAL_BASE = 0x8000_0000_0000;

export class FakeRootBackend implements RootBackend {
  readonly destroyOnLastPut: boolean;
  /** Pages created (a hash miss for a root, or a new TDP root). */
  created = 0;
  /** Pages destroyed. */
  destroyed = 0;
  /** Special roots handed out. */
  specialsCreated = 0;
  /** References dropped through `putRoot`. */
  puts = 0;

  readonly #byKey = new Map<string, FakePage>();
  readonly #byHpa = new Map<number, FakePage>();
  readonly #specials = new Set<number>();
  #nextHpa = PAGE_SIZE;
  #nextSpecial = SPECIAL_BASE;
  #gen = 0;

  constructor(options: FakeRootBackendOptions = {}) {
    this.destroyOnLastPut = options.destroyOnLastPut ?? false;
  }

  allocDirectRoot(role: number): number {
    return this.#alloc(role, 0);
  }

  allocShadowRoot(role: number, pgd: number): number {
    return this.#alloc(role, Math.floor(pgd / PAGE_SIZE) % 0x100_0000_0000);
  }

  rootRoleWord(hpa: number): number {
    if (this.#specials.has(hpa)) return NO_SHADOW_PAGE;
    const page = this.#byHpa.get(hpa);
    if (page === undefined) throw new Error(`fake backend: 0x${hpa.toString(16)} is not a live root`);
    return (page.invalid ? page.role | PAGE_ROLE.INVALID : page.role) >>> 0;
  }

  putRoot(hpa: number): void {
    this.puts++;
    if (this.#specials.delete(hpa)) return;
    const page = this.#byHpa.get(hpa);
    if (page === undefined)
      throw new Error(`fake backend: put of 0x${hpa.toString(16)}, which is not a live root`);
    if (page.refs <= 0) throw new Error(`fake backend: put of 0x${hpa.toString(16)} with no reference held`);
    page.refs--;
    if (page.refs === 0 && (page.invalid || this.destroyOnLastPut || page.gen !== this.#gen))
      this.#destroy(page);
  }

  isObsoleteRoot(hpa: number): boolean {
    if (this.#specials.has(hpa)) return true;
    const page = this.#byHpa.get(hpa);
    return page === undefined || page.invalid || page.gen !== this.#gen;
  }

  /** References held on a root (0 for an unknown address). */
  refCount(hpa: number): number {
    if (this.#specials.has(hpa)) return 1;
    return this.#byHpa.get(hpa)?.refs ?? 0;
  }

  /** Pages alive (referenced or kept). */
  get livePages(): number {
    return this.#byHpa.size;
  }

  /** Special roots alive. */
  get liveSpecials(): number {
    return this.#specials.size;
  }

  /**
   * Zaps a root page (kvm: __kvm_mmu_prepare_zap_page on a root): it leaves the hash, and while
   * still referenced its role reads back with `invalid` set.
   */
  zap(hpa: number): void {
    const page = this.#byHpa.get(hpa);
    if (page === undefined)
      throw new Error(`fake backend: zap of 0x${hpa.toString(16)}, which is not a live root`);
    this.#byKey.delete(this.#key(page.role, page.gfn));
    if (page.refs === 0) this.#destroy(page);
    else page.invalid = true;
  }

  /** Makes every existing page obsolete (kvm: kvm_mmu_zap_all_fast toggling mmu_valid_gen). */
  obsoleteAll(): void {
    this.#gen++;
    for (const page of [...this.#byHpa.values()]) {
      this.#byKey.delete(this.#key(page.role, page.gfn));
      if (page.refs === 0) this.#destroy(page);
    }
  }

  #key(role: number, gfn: number): string {
    return `${role >>> 0}:${gfn}`;
  }

  #alloc(role: number, gfn: number): number {
    if (roleLevel(role) < 4) {
      const hpa = this.#nextSpecial;
      this.#nextSpecial += PAGE_SIZE;
      this.#specials.add(hpa);
      this.specialsCreated++;
      return hpa;
    }
    const key = this.#key(role, gfn);
    let page = this.#byKey.get(key);
    if (page === undefined) {
      page = { hpa: this.#nextHpa, role: role >>> 0, gfn, refs: 0, invalid: false, gen: this.#gen };
      this.#nextHpa += PAGE_SIZE;
      this.#byKey.set(key, page);
      this.#byHpa.set(page.hpa, page);
      this.created++;
    }
    page.refs++;
    return page.hpa;
  }

  #destroy(page: FakePage): void {
    this.#byHpa.delete(page.hpa);
    if (this.#byKey.get(this.#key(page.role, page.gfn)) === page)
      this.#byKey.delete(this.#key(page.role, page.gfn));
    this.destroyed++;
  }
}
