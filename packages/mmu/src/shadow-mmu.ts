import { type Meter, meterTable } from "@nestvisor/vmx";
import { PAGE_SIZE, type PhysicalMemory } from "@nestvisor/x86-arch";
import { maxMappingLevel, PAGES_PER_2M } from "./huge-page-level";
import { MemslotMemory } from "./memslot-memory";
import type { Memslots } from "./memslots";
import { writeMmioSpte } from "./mmio-spte";
import { MMU_EVENTS } from "./mmu-events";
import { ACC, childRole, PAGE_ROLE, roleLevel } from "./page-role";
import { NO_SHADOW_PAGE } from "./root-backend";
import { SHADOW_FAULT, type ShadowFaultOutcome, type ShadowFaultResult } from "./shadow-fault";
import type { ShadowPageStore } from "./shadow-page-store";
import {
  leafSpteHi,
  leafSpteLo,
  nonLeafSpteHi,
  nonLeafSpteLo,
  SPTE_WRITABLE,
  type SpteFormat,
  writeProtectedSpteHi,
  writeProtectedSpteLo,
} from "./shadow-spte";
import {
  isLastSpte,
  isShadowPresentSpte,
  spteAddress,
  spteIndex,
  TerminalSpte,
  walkToTerminalSpte,
} from "./spte";

export interface ShadowMmuOptions {
  /** The VM's shadow-page store (one `ShadowMmu` per store: its indexes cover the store's shadow pages). */
  readonly store: ShadowPageStore;
  readonly memslots: Memslots;
  /** EPT for shadow EPT (EPT02), X86 for shadow paging. */
  readonly format: SpteFormat;
  readonly meter?: Meter;
  /**
   * Called when the shadow MMU write-protects a gfn (it became shadowed, or an unsync page of it is
   * synced), after its own SPTEs: mappings outside the shadow MMU must lose write access too (kvm:
   * kvm_mmu_slot_gfn_write_protect → kvm_tdp_mmu_write_protect_gfn for L1's EPT01 mapping of an
   * EPT12 page). Returns whether it changed a mapping; the one remote flush for both is the shadow
   * MMU's to make.
   */
  readonly onWriteProtectGfn?: (gfn: number) => boolean;
  /**
   * The host backs the memslots with 2-MiB pages: below a guest huge page, and for a direct map,
   * a 2-MiB leaf where `maxMappingLevel` allows (kvm: kvm_mmu_hugepage_adjust). Default false.
   */
  readonly hugePages?: boolean;
}

/**
 * The paging-format half of a sync (kvm: `mmu->sync_spte`, FNAME(sync_spte)): brings entry `index`
 * of the last-level shadow page `id` (a present SPTE) in line with the guest entry it shadows,
 * through `ShadowMmu.dropSpte` and `ShadowMmu.resyncLeaf`. Returns 0 (unchanged), 1 (changed or
 * dropped; a flush may be needed) or -1 (the guest entry could not be read: the page is zapped).
 */
export interface SyncSpteSource {
  syncSpte(id: number, index: number): number;
}

const NONE = -1;
/** Entries of one mmu_unsync_walk batch (kvm: KVM_PAGE_ARRAY_NR). */
const SYNC_BATCH = 16;
/** Deepest walk: 5 levels. */
const MAX_LEVELS = 5;
/** Pages covered by one entry at each level (index = level). */
const SPAN = [0, 1, 512, 512 ** 2, 512 ** 3, 512 ** 4] as const;
const TWO_32 = 4294967296;
/** A PAE PDPTE / pae_root entry's present bit (kvm: PT_PRESENT_MASK). */
const PDPTE_PRESENT = 1;
/** Index lists are compacted past this length (stale ids from zapped pages are dropped). */
const COMPACT_AT = 8;
/** kvm: detect_write_flooding — three writes in a row without the page being used. */
const FLOOD_LIMIT = 3;
/** Role bits that make a page shadow no guest table (kvm: !sp_has_gptes). */
const NO_GPTES = PAGE_ROLE.DIRECT | PAGE_ROLE.PASSTHROUGH;

/**
 * KVM's legacy shadow MMU (kvm: arch/x86/kvm/mmu/mmu.c and paging_tmpl.h, the non-TDP-MMU half):
 * the page tables L0 builds from a guest's tables — shadow paging with TDP off, or shadow EPT
 * (EPT02) from L1's EPT12 — and keeps in sync by write-tracking the guest tables they shadow.
 * `ShadowPagingMmu` and `ShadowEptMmu` walk the guest tables and call `fetch`; this class owns
 * what they share:
 *
 * - roots (kvm: mmu_alloc_root, mmu_alloc_shadow_roots, mmu_alloc_direct_roots, the PAE
 *   `pae_root` special root, the dummy root for an invisible root gfn);
 * - the fault's table build (kvm: FNAME(fetch), direct_map, kvm_mmu_get_child_sp,
 *   link_shadow_page, validate_direct_spte, mmu_set_spte/make_spte);
 * - write-protection of newly shadowed gfns (kvm: account_shadowed → kvm_mmu_slot_gfn_write_protect
 *   over the rmaps of writable SPTEs);
 * - guest writes to tracked tables (kvm: kvm_mmu_track_write with detect_write_misaligned,
 *   detect_write_flooding and get_written_sptes): "zap on write".
 *
 * - unsync last-level pages, when the store allows them (`ShadowPageStore` option `unsync`): a
 *   writable mapping of a shadowed last-level table unsyncs its pages instead of being
 *   write-protected (kvm: make_spte → mmu_try_to_unsync_pages), so the guest's later stores to
 *   that table run without exits; the pages are brought back in line by `syncPage` (an exact-role
 *   hit in the hash: kvm_mmu_find_shadow_page → kvm_sync_page), `syncChildren` (an upper page
 *   about to be linked: FNAME(fetch) → mmu_sync_children) and `syncRoots` (kvm_mmu_sync_roots,
 *   at root load and on KVM_REQ_MMU_SYNC), with the paging format's `syncSource` re-deriving each
 *   present SPTE.
 *
 * Modelled choices (documented differences from KVM):
 * - Unsync needs a `syncSource`; the shadow-paging (x86) format has none yet, so its store keeps
 *   every shadowed gfn write-tracked (the store's `unsync` off): a guest write to any shadowed
 *   table is emulated and zaps the affected SPTEs at once, as KVM does for upper-level tables.
 * - A sync that finds a changed target gfn compares host addresses (the model keeps no per-SPTE
 *   gfn, kvm's shadowed_translation gfn; the memslots map gfns to host pages one to one).
 * - Leaves are 4 KiB unless `hugePages` (the host backs memslots with 2-MiB pages): then a guest
 *   huge page, or a direct map, gets a 2-MiB leaf where `maxMappingLevel` allows; a 2-MiB leaf
 *   where a table is wanted is dropped when the table is linked (kvm: drop_large_spte), a table
 *   where a 2-MiB leaf is wanted is unlinked (kvm: mmu_set_spte → drop_parent_pte). 1-GiB leaves
 *   are never built.
 * - No prefetch of neighbouring SPTEs (kvm: FNAME(pte_prefetch)), no MMIO SPTEs, no dirty logging.
 * - The rmap is a per-gfn list of writable leaf SPTE addresses (and, for 2-MiB leaves, a list per
 *   2-MiB range: kvm's level-2 rmaps), checked against the SPTE's contents when used (zapped pages
 *   are never unlinked from it eagerly).
 * - A PAE root gets a fresh `pae_root` page per load, freed when the root is put (KVM keeps one
 *   per MMU context and rewrites it); the shared zero page of the dummy root is a page of the
 *   store's region, allocated once.
 * - Write protection reaches the shadow MMU's own SPTEs; mappings of a tracked gfn elsewhere (L1's
 *   EPT01 in the TDP MMU) are the `onWriteProtectGfn` hook's business.
 */
export class ShadowMmu {
  readonly store: ShadowPageStore;
  readonly memslots: Memslots;
  readonly format: SpteFormat;
  readonly meter: Meter;
  /** Host memory: the store's table pages and the memslots' backing. */
  readonly memory: PhysicalMemory;
  /** Guest-physical memory through the memslots: what the walkers of guest tables read. */
  readonly guestMemory: MemslotMemory;

  /**
   * The guest walk `fetch` builds from (kvm: struct guest_walker), filled by the caller: the gfn of
   * the guest table at each level (index level - 1; kvm: table_gfn) and the AND of the guest
   * entries above that level in ACC form (kvm: pt_access).
   */
  readonly walkTableGfn: Float64Array = new Float64Array(MAX_LEVELS);
  readonly walkPtAccess: Uint8Array = new Uint8Array(MAX_LEVELS);

  /** kvm: kvm->stat.mmu_pte_write — writes that hit at least one shadowed page. */
  pteWrites = 0;
  /** kvm: kvm->stat.mmu_flooded — shadow pages zapped as misaligned or flooded. */
  flooded = 0;
  /** Writable SPTEs write-protected because their gfn became shadowed. */
  writeProtectedSptes = 0;
  /** The paging format's sync (kvm: mmu->sync_spte); set by `ShadowEptMmu`. */
  syncSource: SyncSpteSource | null = null;

  readonly #onWriteProtectGfn: ((gfn: number) => boolean) | null;
  readonly hugePages: boolean;
  /**
   * kvm: the access of sp->shadowed_translation — the guest-derived rights each leaf of an
   * indirect last-level page was installed with, by page id (512 entries, allocated on the page's
   * first leaf). A sync leaves an SPTE alone while they are unchanged.
   */
  readonly #leafAccess: (Uint8Array | undefined)[] = [];
  /** Role word of the root being faulted through or synced (kvm: vcpu->arch.mmu->root_role). */
  #syncRootRole = 0;
  /** The SPTE `#makeLeaf` built (two words, so that it allocates nothing). */
  #leafLo = 0;
  #leafHi = 0;
  /** Scratch list of unsync pages for `syncChildren`. */
  readonly #unsyncScratch: number[] = [];
  readonly #counts: Float64Array | null;
  /** kvm: sp->write_flooding_count, by page id. */
  readonly #flood: Uint8Array;
  /** gfn → ids of shadow pages with guest PTEs for that gfn (kvm: for_each_gfn_valid_sp_with_gptes). */
  readonly #gfnPages = new Map<number, number[]>();
  /** gfn → host addresses of leaf SPTEs installed writable for it (kvm: the rmaps). */
  readonly #rmap = new Map<number, number[]>();
  /** First gfn of a 2-MiB range → host addresses of 2-MiB leaves installed writable for it (kvm: the level-2 rmaps). */
  readonly #rmap2M = new Map<number, number[]>();
  /** Host pages of the PAE special roots handed out (kvm: mmu->pae_root). */
  readonly #specialRoots = new Set<number>();
  /** The zero page used as the dummy root (kvm: kvm_mmu_get_dummy_root), or -1. */
  #dummyRoot = NONE;
  // Where `#startWalk` left the shadow walk.
  #walkTable = 0;
  /** Scratch for `mapsAddress`'s walk. */
  readonly #terminal = new TerminalSpte();
  #walkId = NONE;
  #walkLevel = 0;

  constructor(options: ShadowMmuOptions) {
    this.store = options.store;
    this.memslots = options.memslots;
    this.format = options.format;
    this.meter = options.meter ?? options.store.meter;
    this.memory = options.store.allocator.memory;
    this.guestMemory = new MemslotMemory(this.memory, options.memslots);
    this.#onWriteProtectGfn = options.onWriteProtectGfn ?? null;
    this.hugePages = options.hugePages ?? false;
    this.#counts = meterTable(this.meter);
    this.#flood = new Uint8Array(options.store.allocator.capacity);
    options.store.syncUnsyncHit = (id) => this.syncPage(id);
  }

  /** Counts `event` on the meter (through its count table when it has one). */
  count(event: number): void {
    const counts = this.#counts;
    if (counts !== null) counts[event] = counts[event]! + 1;
    else this.meter.count(event);
  }

  // ---- roots ---------------------------------------------------------------------------------

  /**
   * kvm: mmu_alloc_root — the shadow page for (gfn, role) from the hash or a new one, with one
   * more root reference. Counts ROOT_ALLOC when the page was created. Returns its host address.
   */
  allocRoot(gfn: number, role: number): number {
    const id = this.#getShadowPage(gfn, role);
    if (this.store.lastGetCreated) this.count(MMU_EVENTS.ROOT_ALLOC);
    this.store.addRootRef(id);
    return this.store.hostPage(id);
  }

  /**
   * kvm: mmu_alloc_shadow_roots — a root for the guest table `pgd` points to (a CR3, or an EPTP
   * for shadow EPT; bits 51:12 name the table). A root gfn no memslot holds gets the dummy root. A
   * 4/5-level role gets one root page. A level-3 role (a PAE guest, or a 32-bit guest shadowed
   * with PAE tables) gets a `pae_root` page whose four entries point to level-2 roots: the
   * guest's PDPTEs (`pdptes`, the PDPTE registers; a non-present or invisible one leaves the entry
   * 0), or for a 32-bit guest the four quarters (quadrants) of its page directory.
   */
  allocShadowRoots(role: number, pgd: number, pdptes: ArrayLike<number> | null): number {
    const word = role >>> 0;
    if ((word & PAGE_ROLE.DIRECT) !== 0) {
      throw new RangeError(`shadow root role 0x${word.toString(16)} is direct (use allocDirectRoots)`);
    }
    const rootGfn = Math.floor(pgd / PAGE_SIZE) % 2 ** 40;
    // kvm: "if (!kvm_vcpu_is_visible_gfn(vcpu, root_gfn)) mmu->root.hpa = kvm_mmu_get_dummy_root()".
    if (this.memslots.lookup(rootGfn) < 0) return this.dummyRoot();
    const level = roleLevel(word);
    if (level >= 4) return this.allocRoot(rootGfn, word);
    if (level !== 3) throw new RangeError(`shadow root level ${level} is not 3, 4 or 5`);
    const fourByte = (word & PAGE_ROLE.HAS_4_BYTE_GPTE) !== 0;
    if (!fourByte && (pdptes === null || pdptes.length !== 4)) {
      throw new RangeError("a PAE shadow root needs the four PDPTE registers");
    }
    const pae = this.#allocSpecialRoot();
    const memory = this.memory;
    for (let i = 0; i < 4; i++) {
      let gfn = rootGfn;
      if (!fourByte) {
        const pdpte = pdptes![i]!;
        gfn = Math.floor(pdpte / PAGE_SIZE) % 2 ** 40;
        // kvm: a non-present PDPTE, or one naming an invisible gfn, leaves INVALID_PAE_ROOT (0).
        if ((pdpte & PDPTE_PRESENT) === 0 || this.memslots.lookup(gfn) < 0) continue;
      }
      // kvm: a 32-bit guest's page directory is shadowed by four PAE directories, quadrant i each.
      const quadrant = fourByte ? i : 0;
      const subRole =
        ((word & ~(PAGE_ROLE.LEVEL_MASK | PAGE_ROLE.QUADRANT_MASK)) |
          2 |
          (quadrant << PAGE_ROLE.QUADRANT_SHIFT)) >>>
        0;
      const hpa = this.allocRoot(gfn, subRole);
      memory.write64(pae + i * 8, ((hpa % TWO_32) | PDPTE_PRESENT) >>> 0, Math.floor(hpa / TWO_32));
    }
    return pae;
  }

  /**
   * kvm: mmu_alloc_direct_roots without the TDP MMU (shadow paging with guest paging off): a
   * 4/5-level role gets one root at gfn 0; a level-3 role a `pae_root` with four level-2 direct
   * roots at gfns i << 18 (one per GiB).
   */
  allocDirectRoots(role: number): number {
    const word = role >>> 0;
    if ((word & PAGE_ROLE.DIRECT) === 0) {
      throw new RangeError(`direct root role 0x${word.toString(16)} is not direct`);
    }
    const level = roleLevel(word);
    if (level >= 4) return this.allocRoot(0, word);
    if (level !== 3) throw new RangeError(`direct root level ${level} is not 3, 4 or 5`);
    const pae = this.#allocSpecialRoot();
    const subRole = ((word & ~PAGE_ROLE.LEVEL_MASK) | 2) >>> 0;
    for (let i = 0; i < 4; i++) {
      const hpa = this.allocRoot(i * SPAN[3], subRole);
      this.memory.write64(pae + i * 8, ((hpa % TWO_32) | PDPTE_PRESENT) >>> 0, Math.floor(hpa / TWO_32));
    }
    return pae;
  }

  /**
   * The dummy root (kvm: kvm_mmu_get_dummy_root, the host zero page): a zeroed page shared by
   * every root whose gfn is invisible; it has no shadow page behind it and faults through it retry.
   */
  dummyRoot(): number {
    if (this.#dummyRoot === NONE) this.#dummyRoot = this.store.allocator.alloc();
    return this.#dummyRoot;
  }

  isDummyRoot(hpa: number): boolean {
    return hpa === this.#dummyRoot && hpa !== NONE;
  }

  /** A `pae_root` page handed out by `allocShadowRoots`/`allocDirectRoots` and not yet put. */
  isSpecialRoot(hpa: number): boolean {
    return this.#specialRoots.has(hpa);
  }

  /**
   * Drops one reference to a root (kvm: mmu_free_root_page; for a PAE root, each valid
   * `pae_root[i]`). A root page already invalid whose last reference goes is zapped and freed
   * (counts ROOT_DESTROY); a valid one stays in the hash. The dummy root needs nothing.
   */
  putRoot(hpa: number): void {
    if (this.isDummyRoot(hpa)) return;
    if (this.#specialRoots.has(hpa)) {
      for (let i = 0; i < 4; i++) {
        const lo = this.memory.read32(hpa + i * 8);
        if ((lo & PDPTE_PRESENT) === 0) continue;
        this.#putRootPage(this.store.idOfHostPage(spteAddress(lo, this.memory.read32(hpa + i * 8 + 4))));
      }
      this.#specialRoots.delete(hpa);
      this.store.allocator.free(hpa);
      return;
    }
    const id = this.store.idOfHostPage(hpa);
    if (id === NONE || this.store.isTdpPage(id)) {
      throw new RangeError(`0x${hpa.toString(16)} is not a shadow-MMU root`);
    }
    this.#putRootPage(id);
  }

  /** kvm: root_to_sp(hpa)->role.word, or NO_SHADOW_PAGE for a special, dummy or unknown root. */
  rootRoleWord(hpa: number): number {
    const id = this.store.idOfHostPage(hpa);
    if (id === NONE || this.#specialRoots.has(hpa) || this.isDummyRoot(hpa)) return NO_SHADOW_PAGE;
    return this.store.role(id);
  }

  /** kvm: is_obsolete_root — a root with no shadow page counts as obsolete. */
  isObsoleteRoot(hpa: number): boolean {
    const id = this.store.idOfHostPage(hpa);
    if (id === NONE || this.#specialRoots.has(hpa) || this.isDummyRoot(hpa)) return true;
    return this.store.isObsolete(id);
  }

  /**
   * kvm: is_page_fault_stale — the root's page is obsolete. A root with no page of its own (a PAE
   * root) is stale when one of its level-2 roots is obsolete: KVM instead checks for a pending
   * KVM_REQ_MMU_FREE_OBSOLETE_ROOTS, which zapping such a root raises. The dummy root is always
   * stale.
   */
  isRootStale(hpa: number): boolean {
    if (this.isDummyRoot(hpa)) return true;
    if (this.#specialRoots.has(hpa)) {
      for (let i = 0; i < 4; i++) {
        const lo = this.memory.read32(hpa + i * 8);
        if ((lo & PDPTE_PRESENT) === 0) continue;
        const id = this.store.idOfHostPage(spteAddress(lo, this.memory.read32(hpa + i * 8 + 4)));
        if (id === NONE || this.store.isObsolete(id)) return true;
      }
      return false;
    }
    const id = this.store.idOfHostPage(hpa);
    return id === NONE || this.store.isObsolete(id);
  }

  // ---- the fault path ------------------------------------------------------------------------

  /**
   * The part of FNAME(page_fault) after a successful walk of the guest's tables (the caller filled
   * `walkTableGfn`/`walkPtAccess`), writing the outcome into `r`:
   *
   * 1. a write fault on a present SPTE whose gfn is write-tracked is emulated (kvm:
   *    page_fault_handle_page_track, with shadow_page_table_clear_flood);
   * 2. no memslot → emulated MMIO; a write to a read-only slot → emulated (kvm: kvm_faultin_pfn);
   * 3. shadow paging with CR0.WP = 0: a supervisor write to a read-only page gets a writable
   *    supervisor-only SPTE, not executable with SMEP (`supervisorWriteIgnoresWp`, `smep`; kvm: the
   *    `!is_cr0_wp` block of FNAME(page_fault));
   * 4. a stale root retries (kvm: is_page_fault_stale); otherwise `fetch`.
   */
  finishFault(
    r: ShadowFaultResult,
    rootHpa: number,
    aLo: number,
    aHi: number,
    guestLevel: number,
    gfn: number,
    access: number,
    writeFault: boolean,
    presentFault: boolean,
    supervisorWriteIgnoresWp: boolean,
    smep: boolean,
  ): ShadowFaultResult {
    r.gfn = gfn;
    r.guestLevel = guestLevel;
    r.access = access;
    const memslots = this.memslots;
    const slot = memslots.lookup(gfn);
    if (presentFault && writeFault && slot >= 0 && this.store.isGfnTracked(gfn)) {
      this.clearFloodAlong(rootHpa, aLo, aHi);
      r.outcome = SHADOW_FAULT.EMULATE_WRITE_PROTECTED;
      return r;
    }
    if (slot >= 0 && writeFault && memslots.readOnlyAt(slot)) {
      r.outcome = SHADOW_FAULT.EMULATE_READ_ONLY;
      return r;
    }
    if (writeFault && (access & ACC.WRITE) === 0 && supervisorWriteIgnoresWp) {
      access = (access | ACC.WRITE) & ~ACC.USER;
      if (smep) access &= ~ACC.EXEC;
      r.access = access;
    }
    if (this.isRootStale(rootHpa)) {
      r.outcome = SHADOW_FAULT.RETRY;
      return r;
    }
    // kvm: kvm_handle_noslot_fault — without a memslot the fetch still runs and caches an MMIO
    // SPTE (EMULATE_MMIO).
    const outcome = this.fetch(rootHpa, aLo, aHi, guestLevel, gfn, access, slot, writeFault);
    r.outcome = outcome;
    if (outcome !== SHADOW_FAULT.RETRY && slot >= 0) r.hpa = memslots.hostAddressAt(slot, gfn);
    return r;
  }

  /**
   * kvm: FNAME(fetch) — builds the shadow tables for address (aLo, aHi) (a GVA for shadow paging,
   * an L2 GPA for shadow EPT) from the root at `rootHpa`, after the caller walked the guest tables
   * and filled `walkTableGfn`/`walkPtAccess`:
   *
   * 1. above the guest's leaf level, one indirect shadow page per guest table, found or created
   *    by (table gfn, child role) — the child role's `access` is the AND of the guest entries
   *    above it (kvm: kvm_mmu_get_child_sp, link_shadow_page); an existing child is kept;
   * 2. below a guest huge page, direct pages at the rounded gfn with the leaf's rights, replacing
   *    a child whose rights differ (kvm: validate_direct_spte);
   * 3. the leaf for `gfn` in memslot `slot` with rights `pteAccess` (kvm: mmu_set_spte): 4 KiB, or
   *    2 MiB below a guest huge page with `hugePages` where `maxMappingLevel` allows.
   *
   * Every page on the path has its write-flooding count cleared. Returns FIXED, SPURIOUS,
   * EMULATE_WRITE_PROTECTED (a write fault whose leaf had to be write-protected), EMULATE_MMIO
   * (`slot` < 0: the 4-KiB leaf now holds an MMIO SPTE) or RETRY (the dummy root).
   */
  fetch(
    rootHpa: number,
    aLo: number,
    aHi: number,
    guestLevel: number,
    gfn: number,
    pteAccess: number,
    slot: number,
    writeFault: boolean,
  ): ShadowFaultOutcome {
    if (!this.#startWalk(rootHpa, aLo)) return SHADOW_FAULT.RETRY;
    const store = this.store;
    const memory = this.memory;
    let table = this.#walkTable;
    let tableId = this.#walkId;
    let level = this.#walkLevel;
    this.#syncRootRole = store.role(tableId);

    // Indirect levels: one shadow page per guest table.
    while (level > guestLevel) {
      this.#flood[tableId] = 0; // kvm: clear_sp_write_flooding_count
      const index = spteIndex(aLo, aHi, level);
      const pa = table + index * 8;
      const lo = memory.read32(pa);
      let child: number;
      if (isShadowPresentSpte(lo) && !isLastSpte(lo, level)) {
        child = store.idOfHostPage(spteAddress(lo, memory.read32(pa + 4)));
      } else {
        const role = childRole(store.role(tableId), this.walkPtAccess[level - 2]!, false, index);
        child = this.#getShadowPage(this.walkTableGfn[level - 2]!, role);
        // kvm: FNAME(fetch) — an upper page is synced before it is linked: the guest need not flush
        // after making an entry present, so a stale unsync child must not become reachable.
        if (store.unsyncChildren(child) > 0) this.syncChildren(child);
        this.#link(pa, lo, child, tableId, index);
      }
      table = store.hostPage(child);
      tableId = child;
      level--;
    }
    this.#flood[tableId] = 0;

    // kvm: kvm_mmu_hugepage_adjust — a guest huge page may be mapped by a huge leaf.
    const goal =
      slot >= 0 && this.hugePages && guestLevel > 1 ? maxMappingLevel(this.memslots, store, slot, gfn) : 1;
    // Direct levels below a guest huge page.
    while (level > goal) {
      const index = spteIndex(aLo, aHi, level);
      const pa = table + index * 8;
      let lo = memory.read32(pa);
      if (isShadowPresentSpte(lo) && !isLastSpte(lo, level)) {
        const existing = store.idOfHostPage(spteAddress(lo, memory.read32(pa + 4)));
        if ((store.role(existing) & PAGE_ROLE.ACCESS_MASK) >>> PAGE_ROLE.ACCESS_SHIFT === pteAccess) {
          table = store.hostPage(existing);
          tableId = existing;
          level--;
          continue;
        }
        // kvm: validate_direct_spte → drop_parent_pte, then a remote TLB flush.
        store.unlinkParent(existing, tableId, index);
        memory.write64(pa, 0, 0);
        this.count(MMU_EVENTS.SPTE_WRITE);
        this.store.remoteFlush();
        lo = 0;
      }
      const baseGfn = gfn - (gfn % SPAN[level]!);
      const role = childRole(store.role(tableId), pteAccess, true, index);
      const child = this.#getShadowPage(baseGfn, role);
      this.#link(pa, lo, child, tableId, index);
      table = store.hostPage(child);
      tableId = child;
      level--;
    }
    if (slot < 0) {
      this.#setMmioSpte(table + spteIndex(aLo, aHi, 1) * 8, gfn, pteAccess);
      return SHADOW_FAULT.EMULATE_MMIO;
    }
    const leafGfn = gfn - (gfn % SPAN[goal]!);
    return this.#setSpte(
      table,
      tableId,
      spteIndex(aLo, aHi, goal),
      leafGfn,
      pteAccess,
      slot,
      writeFault,
      goal,
    );
  }

  /**
   * kvm: direct_map (nonpaging_page_fault → direct_page_fault) — maps `gfn` at guest-physical
   * address `gpa` through the direct root at `rootHpa` with all rights, creating direct pages at
   * the rounded gfn where an entry is missing.
   */
  directMap(
    rootHpa: number,
    gpa: number,
    gfn: number,
    slot: number,
    writeFault: boolean,
  ): ShadowFaultOutcome {
    const aLo = gpa >>> 0;
    const aHi = Math.floor(gpa / TWO_32) >>> 0;
    if (!this.#startWalk(rootHpa, aLo)) return SHADOW_FAULT.RETRY;
    const store = this.store;
    const memory = this.memory;
    let table = this.#walkTable;
    let tableId = this.#walkId;
    let level = this.#walkLevel;
    // kvm: kvm_mmu_hugepage_adjust leaves a gfn without a memslot (MMIO) at 4 KiB.
    const goal = slot >= 0 && this.hugePages ? maxMappingLevel(this.memslots, store, slot, gfn) : 1;
    while (level > goal) {
      const index = spteIndex(aLo, aHi, level);
      const pa = table + index * 8;
      const lo = memory.read32(pa);
      let child: number;
      if (isShadowPresentSpte(lo) && !isLastSpte(lo, level)) {
        child = store.idOfHostPage(spteAddress(lo, memory.read32(pa + 4)));
      } else {
        const role = childRole(store.role(tableId), ACC.ALL, true, index);
        child = this.#getShadowPage(gfn - (gfn % SPAN[level]!), role);
        this.#link(pa, lo, child, tableId, index);
      }
      table = store.hostPage(child);
      tableId = child;
      level--;
    }
    if (slot < 0) {
      this.#setMmioSpte(table + spteIndex(aLo, aHi, 1) * 8, gfn, ACC.ALL);
      return SHADOW_FAULT.EMULATE_MMIO;
    }
    const leafGfn = gfn - (gfn % SPAN[goal]!);
    return this.#setSpte(table, tableId, spteIndex(aLo, aHi, goal), leafGfn, ACC.ALL, slot, writeFault, goal);
  }

  /**
   * Whether a present leaf of the shadow tables under `rootHpa` maps (aLo, aHi) — the P bit of a
   * fault there (kvm: PFERR_PRESENT_MASK from the exit qualification or error code), for a caller
   * that retries a fault after the tables changed. False for the dummy root.
   */
  mapsAddress(rootHpa: number, aLo: number, aHi: number): boolean {
    const t = this.#terminal;
    this.terminalSpte(rootHpa, aLo, aHi, t);
    return t.level !== 0 && isShadowPresentSpte(t.lo);
  }

  /**
   * kvm: get_sptes_lockless on a shadow-MMU root — walks towards (aLo, aHi) and leaves in `out` the
   * first entry that is a leaf or not shadow-present (an MMIO SPTE is such an entry); level 0 for
   * the dummy root.
   */
  terminalSpte(rootHpa: number, aLo: number, aHi: number, out: TerminalSpte): void {
    out.level = 0;
    if (!this.#startWalk(rootHpa, aLo)) return;
    walkToTerminalSpte(this.memory, this.#walkTable, this.#walkLevel, aLo, aHi, out);
  }

  /**
   * kvm: shadow_page_table_clear_flood — clears the write-flooding count of every shadow page on
   * the path of (aLo, aHi), as KVM does before emulating a write to a tracked gfn.
   */
  clearFloodAlong(rootHpa: number, aLo: number, aHi: number): void {
    if (!this.#startWalk(rootHpa, aLo)) return;
    const store = this.store;
    const memory = this.memory;
    let table = this.#walkTable;
    let id = this.#walkId;
    for (let level = this.#walkLevel; level >= 1; level--) {
      this.#flood[id] = 0;
      const pa = table + spteIndex(aLo, aHi, level) * 8;
      const lo = memory.read32(pa);
      if (!isShadowPresentSpte(lo) || isLastSpte(lo, level)) return;
      table = spteAddress(lo, memory.read32(pa + 4));
      id = store.idOfHostPage(table);
    }
  }

  /** kvm: sp->write_flooding_count. */
  writeFloodingCount(id: number): number {
    return this.#flood[id]!;
  }

  // ---- writes to tracked gfns ----------------------------------------------------------------

  /**
   * A write of `bytes` bytes at guest-physical `gpa`, already done in guest memory by the
   * emulator (kvm: kvm_page_track_write → kvm_mmu_track_write). For every valid shadow page of the
   * gfn that shadows guest PTEs: a misaligned write, or the third write in a row to an upper-level
   * page nobody faulted through (write flooding), zaps the whole page; otherwise the SPTEs that
   * shadow the written guest entry are zapped — a leaf is cleared, a link to a child page is
   * dropped (the child stays) (kvm: get_written_sptes, mmu_page_zap_pte). The next fault rebuilds
   * them from the new guest entry. `paePaging`: the vCPU is in PAE or long mode, where a 4-byte
   * write is taken as an update of the whole 8-byte entry (kvm: mmu_pte_write_fetch_gpte).
   *
   * Counts TRACKED_WRITE when at least one shadowed page is affected. Returns that page count.
   */
  trackedWrite(gpa: number, bytes: number, paePaging = true): number {
    if (!(bytes > 0)) throw new RangeError(`a write of ${bytes} bytes`);
    const gfn = Math.floor(gpa / PAGE_SIZE);
    const list = this.#gfnPages.get(gfn);
    if (list === undefined) return 0;
    let at = gpa;
    let size = bytes;
    if (paePaging && size === 4) {
      at -= at % 8;
      size = 8;
    }
    const offset = at % PAGE_SIZE;
    const store = this.store;
    let matched = 0;
    let flush = false;
    let keep = 0;
    for (let i = 0; i < list.length; i++) {
      const id = list[i]!;
      if (!this.#hasGptesFor(id, gfn)) continue;
      list[keep++] = id;
      if (store.isObsolete(id)) continue; // kvm: for_each_gfn_valid_sp_with_gptes
      if (matched++ === 0) {
        this.count(MMU_EVENTS.TRACKED_WRITE);
        this.pteWrites++;
      }
      const role = store.role(id);
      if (this.#misaligned(role, offset, size) || this.#flooding(id)) {
        store.prepareZap(id);
        this.flooded++;
        continue;
      }
      // kvm: get_written_sptes — a 4-byte guest entry maps to one or two 8-byte SPTEs of one quadrant.
      let pageOffset = offset;
      let nspte = 1;
      if ((role & PAGE_ROLE.HAS_4_BYTE_GPTE) !== 0) {
        pageOffset *= 2;
        if (roleLevel(role) === 2) {
          pageOffset = (pageOffset - (pageOffset % 8)) * 2;
          nspte = 2;
        }
        const quadrant = Math.floor(pageOffset / PAGE_SIZE);
        pageOffset %= PAGE_SIZE;
        if (quadrant !== (role & PAGE_ROLE.QUADRANT_MASK) >>> PAGE_ROLE.QUADRANT_SHIFT) continue;
      }
      const first = Math.floor(pageOffset / 8);
      for (let k = 0; k < nspte; k++) if (this.#zapSpte(id, first + k)) flush = true;
    }
    list.length = keep;
    if (keep === 0) this.#gfnPages.delete(gfn);
    // kvm: kvm_mmu_remote_flush_or_zap.
    if (store.commitZap() === 0 && flush) this.store.remoteFlush();
    return matched;
  }

  /** Valid shadow pages that shadow guest PTEs of `gfn` (allocates: for tests and reports). */
  shadowPagesOf(gfn: number): number[] {
    const out: number[] = [];
    for (const id of this.#gfnPages.get(gfn) ?? []) {
      if (this.#hasGptesFor(id, gfn) && !this.store.isObsolete(id) && !out.includes(id)) out.push(id);
    }
    return out;
  }

  // ---- unsync pages ---------------------------------------------------------------------------

  /**
   * kvm: kvm_mmu_sync_roots for the root at `rootHpa` (the caller checked that the MMU's root role
   * is indirect): a 4/5-level root is synced when it is unsync or has unsync children (kvm:
   * is_unsync_root); a PAE root's level-2 roots are synced each. The dummy root has nothing.
   */
  syncRoots(rootHpa: number): void {
    if (this.isDummyRoot(rootHpa)) return;
    const store = this.store;
    if (this.#specialRoots.has(rootHpa)) {
      for (let i = 0; i < 4; i++) {
        const lo = this.memory.read32(rootHpa + i * 8);
        if ((lo & PDPTE_PRESENT) === 0) continue;
        const id = store.idOfHostPage(spteAddress(lo, this.memory.read32(rootHpa + i * 8 + 4)));
        if (id === NONE) continue;
        this.#syncRootRole = store.role(id);
        this.syncChildren(id);
      }
      return;
    }
    const id = store.idOfHostPage(rootHpa);
    if (id === NONE || store.isTdpPage(id)) {
      throw new RangeError(`0x${rootHpa.toString(16)} is not a shadow-MMU root`);
    }
    if (!store.isUnsync(id) && store.unsyncChildren(id) === 0) return;
    this.#syncRootRole = store.role(id);
    this.syncChildren(id);
  }

  /**
   * kvm: mmu_sync_children — every unsync page below page `id` is brought back in line, in batches
   * of one `collectUnsync` walk of 16 entries (mmu_unsync_walk): first the gfn of each page of the
   * batch is write-protected again (kvm_vcpu_write_protect_gfn; if a mapping changed, the zaps of
   * the last batch are committed or the TLBs flushed), then each is marked sync and synced
   * (`syncPage`); a page whose sync fails is zapped. Ends with the zaps, or one flush if a synced
   * SPTE needs it (kvm_mmu_remote_flush_or_zap). Counts SYNC_CHILDREN per batch.
   */
  syncChildren(id: number): void {
    const store = this.store;
    const pages = this.#unsyncScratch;
    let flush = false;
    for (;;) {
      pages.length = 0;
      if (store.collectUnsync(id, pages, SYNC_BATCH) === 0) break;
      this.count(MMU_EVENTS.SYNC_CHILDREN);
      let protectedAny = false;
      for (let i = 0; i < pages.length; i++) {
        if (this.#writeProtectGfn(store.gfn(pages[i]!))) protectedAny = true;
      }
      // kvm: kvm_mmu_remote_flush_or_zap(…, true) — the zaps the last batch left, or a flush.
      if (protectedAny) {
        if (store.commitZap() === 0) store.remoteFlush();
        flush = false;
      }
      for (let i = 0; i < pages.length; i++) {
        const sp = pages[i]!;
        store.unlinkUnsync(sp);
        const synced = this.syncPage(sp);
        if (synced < 0) store.prepareZap(sp);
        else if (synced > 0) flush = true;
      }
    }
    if (store.commitZap() === 0 && flush) store.remoteFlush();
  }

  /**
   * kvm: __kvm_sync_page — the page's role must be the current root's, ignoring level, access,
   * quadrant and passthrough (kvm_sync_page_check); then every SPTE not at the initial non-present
   * value goes through the format's `syncSource` (kvm_sync_spte). Returns -1 (the page must be
   * zapped: wrong role, no sync source, or a guest entry that could not be read — KVM ORs the
   * results, so a -1 makes the whole result -1), or whether a flush is needed (0/1). Counts
   * SYNC_PAGE, and SYNC_SPTE per SPTE synced.
   */
  syncPage(id: number): number {
    this.count(MMU_EVENTS.SYNC_PAGE);
    const store = this.store;
    const source = this.syncSource;
    const ignored =
      PAGE_ROLE.LEVEL_MASK | PAGE_ROLE.ACCESS_MASK | PAGE_ROLE.QUADRANT_MASK | PAGE_ROLE.PASSTHROUGH;
    const role = store.role(id);
    if (source === null || (role & NO_GPTES) !== 0 || ((role ^ this.#syncRootRole) & ~ignored) !== 0)
      return -1;
    const memory = this.memory;
    const table = store.hostPage(id);
    let result = 0;
    for (let i = 0; i < 512; i++) {
      if ((memory.read32(table + i * 8) | memory.read32(table + i * 8 + 4)) === 0) continue;
      this.count(MMU_EVENTS.SYNC_SPTE);
      result |= source.syncSpte(id, i);
    }
    return result;
  }

  /** The rights leaf `index` of indirect page `id` was installed with (kvm: kvm_mmu_page_get_access). */
  leafAccess(id: number, index: number): number {
    return this.#leafAccess[id]?.[index] ?? 0;
  }

  /** kvm: drop_spte during a sync — the leaf is cleared (its rmap entry goes stale). */
  dropSpte(id: number, index: number): void {
    this.#zapSpte(id, index);
  }

  /**
   * The end of FNAME(sync_spte) once the gfn is known to be unchanged: `access` (guest-derived
   * rights) is recorded and the leaf rebuilt on its host page with it (kvm: make_spte with
   * can_unsync false — W goes if any valid page shadows the target gfn, unless the old SPTE was
   * writable; host-writability kept from the old SPTE). Returns 1 when the rewrite removed write
   * permission (kvm: mmu_spte_update's flush), else 0.
   */
  resyncLeaf(id: number, index: number, gfn: number, access: number): number {
    this.#setLeafAccess(id, index, access);
    const pa = this.store.hostPage(id) + index * 8;
    const memory = this.memory;
    const oldLo = memory.read32(pa);
    const oldHi = memory.read32(pa + 4);
    const slot = this.memslots.lookup(gfn);
    const hostWritable = slot >= 0 && !this.memslots.readOnlyAt(slot);
    const wasWritable = (oldLo & SPTE_WRITABLE) !== 0;
    this.#makeLeaf(id, spteAddress(oldLo, oldHi), gfn, access, hostWritable, wasWritable, false);
    const lo = this.#leafLo;
    const hi = this.#leafHi;
    if (lo === oldLo && hi === oldHi) return 0;
    memory.write64(pa, lo, hi);
    this.count(MMU_EVENTS.SPTE_WRITE);
    if ((lo & SPTE_WRITABLE) !== 0) this.#indexAdd(this.#rmap, gfn, pa);
    return wasWritable && (lo & SPTE_WRITABLE) === 0 ? 1 : 0;
  }

  // ---- internals -----------------------------------------------------------------------------

  /**
   * kvm: make_spte for a leaf at `level` of page `tableId` on host page `hpa`: `access` minus W for a
   * read-only slot (!host_writable), and minus W when the gfn's shadow pages cannot all become
   * unsync (mmu_try_to_unsync_pages; not asked when the old SPTE was writable). Leaves the SPTE in
   * `#leafLo`/`#leafHi`; returns whether the unsync check withheld W (kvm: `wrprot`).
   */
  #makeLeaf(
    tableId: number,
    hpa: number,
    gfn: number,
    access: number,
    hostWritable: boolean,
    oldWritable: boolean,
    canUnsync: boolean,
    level = 1,
  ): boolean {
    let rights = hostWritable ? access : access & ~ACC.WRITE;
    let wrprot = false;
    if ((rights & ACC.WRITE) !== 0 && !oldWritable && this.store.tryToUnsyncPages(gfn, canUnsync)) {
      wrprot = true;
      rights &= ~ACC.WRITE;
    }
    const adDisabled = (this.store.role(tableId) & PAGE_ROLE.AD_DISABLED) !== 0;
    this.#leafLo = leafSpteLo(this.format, hpa, level, rights, hostWritable, adDisabled);
    this.#leafHi = leafSpteHi(this.format, hpa, rights, hostWritable, adDisabled);
    return wrprot;
  }

  #setLeafAccess(id: number, index: number, access: number): void {
    let rights = this.#leafAccess[id];
    if (rights === undefined) {
      rights = new Uint8Array(512);
      this.#leafAccess[id] = rights;
    }
    rights[index] = access;
  }

  /**
   * Positions the shadow walk at the top table for address `aLo` (kvm: shadow_walk_init): the root
   * page, or for a PAE root the level-2 page its entry (aLo >> 30) & 3 points to. False for the
   * dummy root. Throws when a PAE root entry is empty although the guest walk succeeded (the
   * caller's PDPTE registers disagree with the root's: KVM frees the roots when they change).
   */
  #startWalk(rootHpa: number, aLo: number): boolean {
    if (this.isDummyRoot(rootHpa)) return false;
    if (this.#specialRoots.has(rootHpa)) {
      const pa = rootHpa + ((aLo >>> 30) & 3) * 8;
      const lo = this.memory.read32(pa);
      if ((lo & PDPTE_PRESENT) === 0) {
        throw new Error(
          `PAE root 0x${rootHpa.toString(16)} has no entry ${(aLo >>> 30) & 3}: reload the root after a PDPTE change`,
        );
      }
      this.#walkTable = spteAddress(lo, this.memory.read32(pa + 4));
      this.#walkId = this.store.idOfHostPage(this.#walkTable);
      this.#walkLevel = 2;
      return true;
    }
    const id = this.store.idOfHostPage(rootHpa);
    if (id === NONE || this.store.isTdpPage(id)) {
      throw new RangeError(`0x${rootHpa.toString(16)} is not a shadow-MMU root`);
    }
    this.#walkTable = rootHpa;
    this.#walkId = id;
    this.#walkLevel = this.store.level(id);
    return true;
  }

  /**
   * kvm: kvm_mmu_get_shadow_page — find (an unsync hit is synced there, through the store's
   * `syncUnsyncHit`, which this class sets to `syncPage`) or create, clearing the write-flooding
   * count (kvm: on a hit in kvm_mmu_find_shadow_page). A new page with guest PTEs joins the gfn
   * index and the SPTEs mapping its gfn writable are write-protected (kvm: account_shadowed — for
   * a last-level page of an unsync store always, otherwise when the gfn just became write-tracked).
   */
  #getShadowPage(gfn: number, role: number): number {
    const store = this.store;
    const id = store.getShadowPage(gfn, role);
    this.#flood[id] = 0;
    if (store.lastGetCreated && (role & NO_GPTES) === 0) {
      this.#indexAdd(this.#gfnPages, gfn, id);
      this.#leafAccess[id]?.fill(0);
      const lastLevelUnsyncable = store.unsyncEnabled && roleLevel(role) === 1;
      if (lastLevelUnsyncable || store.writeTrackCount(gfn) === 1) {
        if (this.#writeProtectGfn(gfn)) store.remoteFlush();
      }
    }
    return id;
  }

  /** kvm: link_shadow_page — a present large leaf is dropped first, then the non-leaf SPTE and the parent link. */
  #link(pa: number, oldLo: number, child: number, parent: number, index: number): void {
    const store = this.store;
    const memory = this.memory;
    if (isShadowPresentSpte(oldLo)) {
      // kvm: drop_large_spte.
      memory.write64(pa, 0, 0);
      this.count(MMU_EVENTS.SPTE_WRITE);
      this.store.remoteFlush();
    }
    const childHpa = store.hostPage(child);
    const adDisabled = (store.role(child) & PAGE_ROLE.AD_DISABLED) !== 0;
    memory.write64(
      pa,
      nonLeafSpteLo(this.format, childHpa, adDisabled),
      nonLeafSpteHi(this.format, childHpa, adDisabled),
    );
    this.count(MMU_EVENTS.SPTE_WRITE);
    store.linkParent(child, parent, index);
    // kvm: __link_shadow_page — a child that is unsync, or has unsync children, marks the new parent.
    if (store.isUnsync(child) || store.unsyncChildren(child) > 0) store.markUnsyncChild(parent, index);
  }

  /**
   * kvm: mmu_set_spte → make_spte for a leaf at `level` (4 KiB, or 2 MiB with `gfn` the range's
   * first gfn; a table it replaces is unlinked). Write permission goes when the slot is
   * read-only (kvm: !host_writable), or when the gfn is shadowed and its pages cannot become unsync
   * (kvm: mmu_try_to_unsync_pages fails; not asked when the old SPTE was already writable); a leaf
   * for another page is dropped first. An indirect page records the rights (kvm:
   * kvm_mmu_page_set_access).
   */
  #setSpte(
    table: number,
    tableId: number,
    index: number,
    gfn: number,
    pteAccess: number,
    slot: number,
    writeFault: boolean,
    level = 1,
  ): ShadowFaultOutcome {
    const memory = this.memory;
    const memslots = this.memslots;
    const pa = table + index * 8;
    const oldLo = memory.read32(pa);
    const oldHi = memory.read32(pa + 4);
    const hpa = memslots.hostAddressAt(slot, gfn);
    const hostWritable = !memslots.readOnlyAt(slot);
    let present = isShadowPresentSpte(oldLo);
    // kvm: mmu_set_spte batches its reasons to flush into one kvm_flush_remote_tlbs_gfn at the end.
    let flush = false;
    if (present && !isLastSpte(oldLo, level)) {
      // kvm: mmu_set_spte — a huge leaf where a table was: drop_parent_pte unlinks the table.
      this.store.unlinkParent(this.store.idOfHostPage(spteAddress(oldLo, oldHi)), tableId, index);
      memory.write64(pa, 0, 0);
      this.count(MMU_EVENTS.SPTE_WRITE);
      flush = true;
      present = false;
    } else if (present && spteAddress(oldLo, oldHi) !== hpa) {
      // kvm: drop_spte when the pfn changes.
      memory.write64(pa, 0, 0);
      this.count(MMU_EVENTS.SPTE_WRITE);
      flush = true;
      present = false;
    }
    const wasWritable = present && (oldLo & SPTE_WRITABLE) !== 0;
    const wrprot = this.#makeLeaf(tableId, hpa, gfn, pteAccess, hostWritable, wasWritable, true, level);
    const lo = this.#leafLo;
    const hi = this.#leafHi;
    if ((this.store.role(tableId) & NO_GPTES) === 0) this.#setLeafAccess(tableId, index, pteAccess);
    let outcome: ShadowFaultOutcome = SHADOW_FAULT.FIXED;
    if (present && oldLo === lo && oldHi === hi) {
      outcome = SHADOW_FAULT.SPURIOUS;
    } else {
      memory.write64(pa, lo, hi);
      this.count(MMU_EVENTS.SPTE_WRITE);
      // kvm: mmu_spte_update — losing W on a present SPTE needs a flush.
      if (present && (oldLo & SPTE_WRITABLE) !== 0 && (lo & SPTE_WRITABLE) === 0) flush = true;
      if ((lo & SPTE_WRITABLE) !== 0) this.#indexAdd(level === 1 ? this.#rmap : this.#rmap2M, gfn, pa);
    }
    if (flush) this.store.remoteFlush();
    if (wrprot && writeFault) outcome = SHADOW_FAULT.EMULATE_WRITE_PROTECTED;
    return outcome;
  }

  /**
   * kvm: mmu_set_spte for a gfn without a memslot — mark_mmio_spte caches the MMIO SPTE (with the
   * guest's rights `access`) in the 4-KiB leaf at `pa`, so the next access to the page is an EPT
   * misconfiguration or a reserved-bit #PF. Replacing a present leaf costs a flush; the rmaps list
   * writable leaves lazily, so a stale listing of it is skipped when used.
   */
  #setMmioSpte(pa: number, gfn: number, access: number): void {
    const wasPresent = isShadowPresentSpte(this.memory.read32(pa));
    if (!writeMmioSpte(this.memory, pa, this.format, gfn, this.memslots.generation, access)) return;
    this.count(MMU_EVENTS.SPTE_WRITE);
    if (wasPresent) this.store.remoteFlush();
  }

  /**
   * Clears write permission from every SPTE mapping `gfn` writable (kvm:
   * kvm_mmu_slot_gfn_write_protect → rmap_write_protect with pt_protect), then tells the owner of
   * other mappings. Returns whether any mapping changed: the caller makes the one remote flush.
   */
  #writeProtectGfn(gfn: number): boolean {
    let flush = this.#writeProtectListed(this.#rmap, gfn);
    // kvm: rmap_write_protect walks the rmaps of every level: a 2-MiB leaf over the gfn loses W too.
    if (this.#rmap2M.size > 0 && this.#writeProtectListed(this.#rmap2M, gfn - (gfn % PAGES_PER_2M)))
      flush = true;
    if (this.#onWriteProtectGfn?.(gfn) === true) flush = true;
    return flush;
  }

  /** Clears W from the still-writable leaves listed under `key` in `map`, then forgets the list. */
  #writeProtectListed(map: Map<number, number[]>, key: number): boolean {
    const list = map.get(key);
    if (list === undefined) return false;
    let changed = false;
    const memory = this.memory;
    for (let i = 0; i < list.length; i++) {
      const pa = list[i]!;
      if (!this.#isWritableLeafFor(pa, key)) continue;
      const lo = memory.read32(pa);
      const hi = memory.read32(pa + 4);
      memory.write64(pa, writeProtectedSpteLo(this.format, lo), writeProtectedSpteHi(this.format, hi));
      this.count(MMU_EVENTS.SPTE_WRITE);
      this.writeProtectedSptes++;
      changed = true;
    }
    map.delete(key);
    return changed;
  }

  /** The SPTE at `pa` is a present writable leaf of a live shadow page mapping `gfn`'s host page. */
  #isWritableLeafFor(pa: number, gfn: number): boolean {
    const store = this.store;
    const id = store.idOfHostPage(pa - (pa % PAGE_SIZE));
    if (id === NONE || store.isTdpPage(id)) return false;
    const lo = this.memory.read32(pa);
    if (!isShadowPresentSpte(lo) || (lo & SPTE_WRITABLE) === 0 || !isLastSpte(lo, store.level(id)))
      return false;
    return spteAddress(lo, this.memory.read32(pa + 4)) === this.memslots.gfnToHpa(gfn);
  }

  /** The page `id` is live, shadows guest PTEs and has gfn `gfn`. */
  #hasGptesFor(id: number, gfn: number): boolean {
    const store = this.store;
    return (
      store.isLive(id) && !store.isTdpPage(id) && store.gfn(id) === gfn && (store.role(id) & NO_GPTES) === 0
    );
  }

  /** Adds `value` to the list of `key`, compacting stale entries once the list grows. */
  #indexAdd(map: Map<number, number[]>, key: number, value: number): void {
    const list = map.get(key);
    if (list === undefined) {
      map.set(key, [value]);
      return;
    }
    if (list.includes(value)) return;
    if (list.length >= COMPACT_AT) {
      const rmap = map === this.#rmap || map === this.#rmap2M;
      let keep = 0;
      for (let i = 0; i < list.length; i++) {
        const v = list[i]!;
        if (rmap ? this.#isWritableLeafFor(v, key) : this.#hasGptesFor(v, key)) list[keep++] = v;
      }
      list.length = keep;
    }
    list.push(value);
  }

  /** kvm: detect_write_misaligned. */
  #misaligned(role: number, offset: number, bytes: number): boolean {
    const pteSize = (role & PAGE_ROLE.HAS_4_BYTE_GPTE) !== 0 ? 4 : 8;
    // kvm: an OS may update status bits with a 1-byte write to the start of an entry.
    if (offset % pteSize === 0 && bytes === 1) return false;
    const lastEntry = Math.floor((offset + bytes - 1) / pteSize);
    return Math.floor(offset / pteSize) !== lastEntry || bytes < 4;
  }

  /** kvm: detect_write_flooding — never for last-level pages (they could become unsync in KVM). */
  #flooding(id: number): boolean {
    if (this.store.level(id) === 1) return false;
    const n = this.#flood[id]! + 1;
    this.#flood[id] = Math.min(n, 255);
    return n >= FLOOD_LIMIT;
  }

  /**
   * kvm: mmu_page_zap_pte without an invalid list — a present leaf is cleared (drop_spte), a
   * present link to a child page is dropped (drop_parent_pte; the child is not zapped). Returns
   * whether the SPTE was present.
   */
  #zapSpte(id: number, index: number): boolean {
    const store = this.store;
    const memory = this.memory;
    const pa = store.hostPage(id) + index * 8;
    const lo = memory.read32(pa);
    const hi = memory.read32(pa + 4);
    if (!isShadowPresentSpte(lo)) {
      if ((lo | hi) !== 0) {
        memory.write64(pa, 0, 0);
        this.count(MMU_EVENTS.SPTE_WRITE);
      }
      return false;
    }
    if (!isLastSpte(lo, store.level(id))) {
      const child = store.idOfHostPage(spteAddress(lo, hi));
      if (child !== NONE) store.unlinkParent(child, id, index);
    }
    memory.write64(pa, 0, 0);
    this.count(MMU_EVENTS.SPTE_WRITE);
    return true;
  }

  /** A zeroed page for a `pae_root`; PAE CR3 is 32 bits, so it must lie below 4 GiB (kvm: GFP_DMA32). */
  #allocSpecialRoot(): number {
    const hpa = this.store.allocator.alloc();
    if (hpa >= TWO_32) {
      this.store.allocator.free(hpa, true);
      throw new RangeError(
        `PAE root page 0x${hpa.toString(16)} is above 4 GiB: give the host page region an address below 4 GiB`,
      );
    }
    this.#specialRoots.add(hpa);
    return hpa;
  }

  /** One root reference less; counts ROOT_DESTROY when the page went with it. */
  #putRootPage(id: number): void {
    if (this.store.putLegacyRoot(id)) this.count(MMU_EVENTS.ROOT_DESTROY);
  }
}
