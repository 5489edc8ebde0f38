import { EXT_ROLE } from "./extended-role";
import { PAGE_ROLE } from "./page-role";
import { PERMISSIONS_SIZE } from "./permission-bitmask";
import { createRsvdBitsValidate, type RsvdBitsValidate } from "./reserved-bits";
import { INVALID_ROOT } from "./root-backend";

/**
 * `struct kvm_mmu` (kvm-mmu.md §1.4): one MMU context — its cpu and root roles, the permission
 * tables and reserved-bit masks its software walks use, and its root cache (the current root plus
 * three previous ones, most recently used first). Everything is numbers and typed arrays so that
 * role gates and root switches allocate nothing.
 */

/** Which of the vCPU's three contexts this is (kvm: vcpu->arch.root_mmu / guest_mmu / nested_mmu). */
export const MMU_CONTEXT_KIND = {
  /** "Non-nested MMU for L1": L1, and L2 when L1 does not use EPT for it. */
  ROOT_MMU: "root_mmu",
  /** "L1 MMU when running nested": shadows L1's EPT12 while L2 runs with nested EPT. */
  GUEST_MMU: "guest_mmu",
  /** Walk-only context for L2's own page tables; never has roots. */
  NESTED_MMU: "nested_mmu",
} as const;
export type MmuContextKind = (typeof MMU_CONTEXT_KIND)[keyof typeof MMU_CONTEXT_KIND];

/** How a context was last configured (which init function's body ran). */
export const MMU_FLAVOUR = {
  /** Never configured (a fresh context). */
  NONE: 0,
  /** kvm: init_kvm_tdp_mmu. */
  TDP: 1,
  /** kvm: kvm_init_shadow_mmu (shadow paging). */
  SHADOW: 2,
  /** kvm: kvm_init_shadow_ept_mmu. */
  SHADOW_EPT: 3,
  /** kvm: init_kvm_nested_mmu (walks of L2's tables through L1's TDP). */
  NESTED_WALK: 4,
} as const;
export type MmuFlavour = (typeof MMU_FLAVOUR)[keyof typeof MMU_FLAVOUR];

/** kvm: KVM_MMU_NUM_PREV_ROOTS. */
export const KVM_MMU_NUM_PREV_ROOTS = 3;

/** Masks for `kvmMmuFreeRoots` (kvm: KVM_MMU_ROOT_CURRENT, KVM_MMU_ROOT_PREVIOUS(i), KVM_MMU_ROOTS_ALL). */
export const KVM_MMU_ROOT = {
  CURRENT: 0x1,
  ALL: 0xf,
} as const;

/** Largest root cache a context accepts (current root plus this many previous roots fit in a mask). */
export const MAX_PREV_ROOTS = 16;

/**
 * The mask of every root slot of a context with `prevRoots` previous roots (kvm: KVM_MMU_ROOTS_ALL,
 * 0xf for KVM's three).
 */
export function kvmMmuRootsAll(prevRoots: number): number {
  return (2 ** (prevRoots + 1) - 1) >>> 0;
}

/** kvm: KVM_MMU_ROOT_PREVIOUS(i) = BIT(1 + i). */
export function kvmMmuRootPrevious(i: number): number {
  return 1 << (1 + i);
}

/** kvm: INVALID_PAGE as a root's `pgd` (KVM_MMU_ROOT_INFO_INVALID): never equal to a real CR3/EPTP. */
export const INVALID_PGD = -1;

/**
 * Work counted per context, so that a test or report can tell which context paid (the Meter counts
 * the same events without saying which context). Plain number fields: increments do not allocate.
 */
export class MmuContextStats {
  /** A gate passed (or there was none) and the context was reconfigured. */
  inits = 0;
  permissionUpdates = 0;
  pkruUpdates = 0;
  guestRsvdResets = 0;
  shadowZeroResets = 0;
  hitCurrent = 0;
  /** Hits on prev[0], prev[1], … */
  readonly hitPrev: Float64Array;

  constructor(prevRoots: number = KVM_MMU_NUM_PREV_ROOTS) {
    this.hitPrev = new Float64Array(prevRoots);
  }
  misses = 0;
  loads = 0;
  /** Valid root slots released. */
  drops = 0;

  /** Hits on the current root and on every previous-root slot (the cache may have 1–16). */
  get hits(): number {
    let hits = this.hitCurrent;
    for (let i = 0; i < this.hitPrev.length; i++) hits += this.hitPrev[i]!;
    return hits;
  }

  reset(): void {
    this.inits = 0;
    this.permissionUpdates = 0;
    this.pkruUpdates = 0;
    this.guestRsvdResets = 0;
    this.shadowZeroResets = 0;
    this.hitCurrent = 0;
    this.hitPrev.fill(0);
    this.misses = 0;
    this.loads = 0;
    this.drops = 0;
  }

  /** A plain copy (allocates: for tests and reports). */
  snapshot(): MmuContextStatsSnapshot {
    return {
      inits: this.inits,
      permissionUpdates: this.permissionUpdates,
      pkruUpdates: this.pkruUpdates,
      guestRsvdResets: this.guestRsvdResets,
      shadowZeroResets: this.shadowZeroResets,
      hitCurrent: this.hitCurrent,
      hitPrev: Array.from(this.hitPrev),
      hits: this.hits,
      misses: this.misses,
      loads: this.loads,
      drops: this.drops,
    };
  }
}

export interface MmuContextStatsSnapshot {
  readonly inits: number;
  readonly permissionUpdates: number;
  readonly pkruUpdates: number;
  readonly guestRsvdResets: number;
  readonly shadowZeroResets: number;
  readonly hitCurrent: number;
  /** One count per previous-root slot (three with KVM's cache). */
  readonly hitPrev: readonly number[];
  readonly hits: number;
  readonly misses: number;
  readonly loads: number;
  readonly drops: number;
}

/** One root slot as `describeRoots` lists it. */
export interface RootSlot {
  readonly pgd: number;
  readonly hpa: number;
}

export class MmuContext {
  readonly kind: MmuContextKind;
  /** Low word of `cpu_role` (a page role). */
  cpuRoleBase = 0;
  /** High word of `cpu_role` (an extended role; `valid` is bit 0). */
  cpuRoleExt = 0;
  /** `root_role.word`: the role of the pages this context's roots are built from. */
  rootRole = 0;
  flavour: MmuFlavour = MMU_FLAVOUR.NONE;
  /**
   * Where `get_guest_pgd` reads the guest root from: the vCPU's CR3 (TDP, shadow paging, nested
   * walks) or vmcs12's EPT pointer (shadow EPT; kvm: nested_ept_get_eptp).
   */
  guestPgdIsEptp = false;
  /** kvm: permissions[16], filled by update_permission_bitmask. */
  readonly permissions: Uint8Array = new Uint8Array(PERMISSIONS_SIZE);
  /** kvm: pkru_mask. */
  pkruMask = 0;
  /** kvm: guest_rsvd_check (reserved bits of the guest's tables). */
  readonly guestRsvdCheck: RsvdBitsValidate = createRsvdBitsValidate();
  /** kvm: shadow_zero_check (reserved bits of the entries KVM writes). */
  readonly shadowZeroCheck: RsvdBitsValidate = createRsvdBitsValidate();
  /** kvm: root.pgd — the guest value the current root shadows (0 for direct roots with c1). */
  rootPgd = 0;
  /** kvm: root.hpa — INVALID_ROOT when there is no current root. */
  rootHpa: number = INVALID_ROOT;
  /** kvm: prev_roots[i].pgd, most recently used first. */
  readonly prevPgd: Float64Array;
  /** kvm: prev_roots[i].hpa. */
  readonly prevHpa: Float64Array;
  readonly stats: MmuContextStats;
  /** Mask of every root slot (kvm: KVM_MMU_ROOTS_ALL). */
  readonly allRoots: number;

  /**
   * `prevRoots`: size of the previous-root cache (kvm: KVM_MMU_NUM_PREV_ROOTS = 3); a root-cache
   * policy may choose another size (1 … MAX_PREV_ROOTS).
   */
  constructor(kind: MmuContextKind, prevRoots: number = KVM_MMU_NUM_PREV_ROOTS) {
    if (!Number.isInteger(prevRoots) || prevRoots < 1 || prevRoots > MAX_PREV_ROOTS) {
      throw new RangeError(`a root cache holds 1 to ${MAX_PREV_ROOTS} previous roots, not ${prevRoots}`);
    }
    this.kind = kind;
    this.prevPgd = new Float64Array(prevRoots).fill(INVALID_PGD);
    this.prevHpa = new Float64Array(prevRoots).fill(INVALID_ROOT);
    this.stats = new MmuContextStats(prevRoots);
    this.allRoots = kvmMmuRootsAll(prevRoots);
  }

  /** Number of previous-root slots. */
  get prevRootCount(): number {
    return this.prevHpa.length;
  }

  /** kvm: VALID_PAGE(mmu->root.hpa). */
  get hasRoot(): boolean {
    return this.rootHpa !== INVALID_ROOT;
  }

  /** Number of valid root slots (current and previous). */
  validRootCount(): number {
    let n = this.rootHpa !== INVALID_ROOT ? 1 : 0;
    for (let i = 0; i < this.prevHpa.length; i++) if (this.prevHpa[i] !== INVALID_ROOT) n++;
    return n;
  }

  /**
   * Makes every gate fail at the next init (kvm: kvm_mmu_after_set_cpuid sets `root_role.invalid`
   * and clears `cpu_role.ext.valid`; the other role bits stay). A computed root role never has
   * `invalid` set, so the TDP and shadow gates fail; the shadow-EPT and nested gates compare the
   * cpu role, whose `valid` bit is gone. (v5.18 zeroed `root_role.word` instead; up to v5.17 only
   * the extended role's `valid` bit was cleared. Either way no gate passes.)
   */
  invalidateRoles(): void {
    this.rootRole = (this.rootRole | PAGE_ROLE.INVALID) >>> 0;
    this.cpuRoleExt = (this.cpuRoleExt & ~EXT_ROLE.VALID) >>> 0;
  }

  /** The current root and prev[0..2], for tests and reports (allocates). */
  describeRoots(): { current: RootSlot; prev: RootSlot[] } {
    const prev: RootSlot[] = [];
    for (let i = 0; i < this.prevHpa.length; i++) prev.push({ pgd: this.prevPgd[i]!, hpa: this.prevHpa[i]! });
    return { current: { pgd: this.rootPgd, hpa: this.rootHpa }, prev };
  }
}
