import { NO_SHADOW_PAGE, type RootBackend, roleLevel } from "@nestvisor/mmu";

interface RootPage {
  readonly hpa: number;
  readonly role: number;
  readonly gfn: number;
  refs: number;
}

const PAGE = 0x1000;
/** Special roots get addresses of their own, far from pages. */
const SPECIAL_BASE = 2 ** 44;

/**
 * The mmu suite's root backend: root pages with a role, a gfn and a reference count in a hash, the
 * way KVM's shadow-page hash and the TDP MMU's root list keep them (kvm-mmu.md §2.8), without the
 * tables below. Asking again for the same (role, gfn) returns the same page (a lookup, not a new
 * root); a root below level 4 is a special root with no page behind it (kvm: pae_root). Pages
 * outlive their last reference. `created` counts new pages, so the suite can tell a cache hit from
 * a hash hit.
 */
export class SuiteRootBackend implements RootBackend {
  created = 0;
  readonly #byKey = new Map<string, RootPage>();
  readonly #byHpa = new Map<number, RootPage>();
  readonly #specials = new Set<number>();
  #next = PAGE;
  #nextSpecial = SPECIAL_BASE;

  allocDirectRoot(role: number): number {
    return this.#alloc(role, 0);
  }

  allocShadowRoot(role: number, pgd: number): number {
    return this.#alloc(role, Math.floor(pgd / PAGE) % 2 ** 40);
  }

  rootRoleWord(hpa: number): number {
    if (this.#specials.has(hpa)) return NO_SHADOW_PAGE;
    const page = this.#byHpa.get(hpa);
    if (page === undefined) throw new Error(`suite backend: 0x${hpa.toString(16)} is not a root page`);
    return page.role;
  }

  putRoot(hpa: number): void {
    if (this.#specials.delete(hpa)) return;
    const page = this.#byHpa.get(hpa);
    if (page === undefined)
      throw new Error(`suite backend: put of 0x${hpa.toString(16)}, which is not a root page`);
    if (page.refs <= 0) throw new Error(`suite backend: put of 0x${hpa.toString(16)} without a reference`);
    page.refs--;
  }

  isObsoleteRoot(hpa: number): boolean {
    return this.#specials.has(hpa) ? true : !this.#byHpa.has(hpa);
  }

  /** The gfn a root page was allocated for (0 for a direct root). */
  gfnOf(hpa: number): number {
    return this.#byHpa.get(hpa)?.gfn ?? -1;
  }

  /** References held on a root. */
  refs(hpa: number): number {
    return this.#byHpa.get(hpa)?.refs ?? 0;
  }

  #alloc(role: number, gfn: number): number {
    if (roleLevel(role) < 4) {
      const hpa = this.#nextSpecial;
      this.#nextSpecial += PAGE;
      this.#specials.add(hpa);
      return hpa;
    }
    const key = `${role >>> 0}:${gfn}`;
    let page = this.#byKey.get(key);
    if (page === undefined) {
      page = { hpa: this.#next, role: role >>> 0, gfn, refs: 0 };
      this.#next += PAGE;
      this.#byKey.set(key, page);
      this.#byHpa.set(page.hpa, page);
      this.created++;
    }
    page.refs++;
    return page.hpa;
  }
}
