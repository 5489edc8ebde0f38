import { type Meter, meterTable, NOOP_METER } from "@nestvisor/vmx";
import type { HostPageAllocator } from "./host-page-allocator";
import { MEMSLOT_CHANGE, type Memslots } from "./memslots";
import { MMU_EVENTS } from "./mmu-events";
import { PAGE_ROLE, roleLevel } from "./page-role";
import { type ShadowPageInfo, SP_FLAG, SP_HASH_BUCKETS, spHashBucket } from "./shadow-page";
import { isLastSpte, isShadowPresentSpte, SPTES_PER_PAGE, spteAddress } from "./spte";

/**
 * The VM-wide shadow-page bookkeeping of KVM's MMU (kvm: `kvm->arch.mmu_page_hash`,
 * `active_mmu_pages`, `mmu_valid_gen`, the gfn write-track counts, and the functions of mmu.c
 * that manage them): every page-table page L0 owns, whether the TDP MMU or the shadow MMU built it.
 *
 * Pages are ids, not objects. A page's id is the index of its host page in the
 * `HostPageAllocator` region (KVM finds a table's `kvm_mmu_page` through `page_private`), so every
 * field is one slot of a typed array sized to the region and "SPTE address → page" is a
 * subtraction. A few bytes per page (`metadataBytesPerPage`) sit beside the 4096 of the table.
 *
 * Modelled: the 4096-bucket hash by gfn and full role word (obsolete pages skipped), allocation
 * (FIFO active list, generation stamp, accounting of shadowed gfns), parent links, legacy root
 * counts, prepare/commit zapping with KVM's rule for roots still referenced (marked invalid, kept
 * until the last reference), `kvm_mmu_zap_all_fast` (generation toggle, TDP root invalidation
 * through hooks, obsolete-page zap), per-gfn write-track counts, and — with the `unsync` option —
 * unsync last-level pages: the unsync flag, the parents' unsync-child bitmaps and counts
 * (kvm: mark_unsync), `mmu_try_to_unsync_pages`, the bitmap walk of `mmu_unsync_walk`, and the
 * zap of unsync children before their parent (kvm: mmu_zap_unsync_children).
 *
 * Not modelled here (the shadow MMU's concern): syncing a page's SPTEs (`find` returns an unsync
 * hit and the caller syncs it), rmaps of leaf SPTEs, write-flooding counts, and the page-count limit
 * (`kvm_mmu_zap_oldest_mmu_pages`).
 */
export interface ShadowPageStoreOptions {
  /** Where the tables live; the store's capacity is the region's page count. */
  readonly allocator: HostPageAllocator;
  readonly meter?: Meter;
  /**
   * When given, deleting or moving a slot zaps everything (kvm: kvm_arch_flush_shadow_memslot →
   * kvm_mmu_zap_all_fast, the default KVM_X86_QUIRK_SLOT_ZAP_ALL behaviour).
   */
  readonly memslots?: Memslots;
  /**
   * kvm: `tdp_enabled`. With TDP, zapping a nested-TDP (guest_mode) page also zaps children left
   * without a parent (kvm: mmu_page_zap_pte). Default true.
   */
  readonly tdpEnabled?: boolean;
  /**
   * Unsync last-level pages, as KVM does for every shadow MMU (kvm: account_shadowed write-tracks
   * only level > 1 and write-protects a level-1 table's mappings; a later writable mapping unsyncs
   * the page). False: every page with guest PTEs write-tracks its gfn, so a guest write to any
   * shadowed table is emulated (the model's rule for formats whose sync is not modelled). Default
   * false.
   */
  readonly unsync?: boolean;
}

/** What the TDP MMU does inside `zapAllFast` (kvm: kvm_tdp_mmu_invalidate_all_roots / _zap_invalidated_roots). */
export interface ZapAllFastHooks {
  invalidateRoots(): void;
  zapInvalidatedRoots(): void;
}

const NONE = -1;
/** 32-bit words of one page's unsync-child bitmap (512 bits). */
const BITMAP_WORDS = 16;
/** Role bits of a page that shadows no guest table (kvm: !sp_has_gptes). */
const NO_GPTES = PAGE_ROLE.DIRECT | PAGE_ROLE.PASSTHROUGH;
/** kvm: gfn_write_track counts are 16 bits (`KVM_MAX_...`: WARN on overflow). */
const WRITE_TRACK_LIMIT = 0xffff;

export class ShadowPageStore {
  readonly allocator: HostPageAllocator;
  readonly meter: Meter;
  readonly tdpEnabled: boolean;
  /** Whether last-level pages may become unsync (the `unsync` option). */
  readonly unsyncEnabled: boolean;

  // Per-page fields (index = id).
  readonly #gfn: Float64Array;
  readonly #role: Uint32Array;
  readonly #rootCount: Int32Array;
  /** First parent link inline (kvm: `pte_list_head` with one entry), further ones in the link pool. */
  readonly #parentSp: Int32Array;
  readonly #parentIndex: Int16Array;
  readonly #parentCount: Int32Array;
  readonly #moreParents: Int32Array;
  readonly #flags: Uint8Array;
  /** kvm: `sp->unsync_children` — set bits in the page's unsync-child bitmap. */
  readonly #unsyncChildren: Int32Array;
  /** kvm: `sp->unsync_child_bitmap` — 512 bits (16 words) per page. */
  readonly #unsyncBitmap: Uint32Array;
  readonly #gen: Uint8Array;
  readonly #hashNext: Int32Array;
  readonly #hashPrev: Int32Array;
  /** `active_mmu_pages` links; a page on the pending invalid list reuses `#listNext`. */
  readonly #listNext: Int32Array;
  readonly #listPrev: Int32Array;

  // Link pool for parents beyond the first.
  #linkSp = new Int32Array(64);
  #linkIndex = new Int16Array(64);
  #linkNext = new Int32Array(64);
  #linkFree = NONE;
  #linkUsed = 0;

  readonly #hashHeads = new Int32Array(SP_HASH_BUCKETS).fill(NONE);
  #activeHead = NONE;
  #activeTail = NONE;
  #activeCount = 0;
  #invalidHead = NONE;
  #invalidCount = 0;
  #mmuValidGen = 0;
  #usedMmuPages = 0;
  #tdpPages = 0;
  readonly #writeTrack = new Map<number, number>();
  readonly #hooks: ZapAllFastHooks[] = [];
  /**
   * Called on every remote TLB flush (kvm: kvm_flush_remote_tlbs → KVM_REQ_TLB_FLUSH for every vCPU
   * of the VM): the VM's owner makes the request, which the vCPU serves before its next entry with a
   * flush of all its contexts (kvm_vcpu_flush_tlb_all). Null: the flush is only counted.
   */
  onRemoteFlush: (() => void) | null = null;
  /**
   * Syncs an unsync page that `find` hit exactly (kvm: kvm_sync_page, the shadow MMU's
   * `syncPage`): returns -1 when the page must be zapped, > 0 when a flush is needed, else 0.
   * Null: an unsync hit is returned as it is.
   */
  syncUnsyncHit: ((id: number) => number) | null = null;
  readonly #obsoleteRootListeners: (() => void)[] = [];
  readonly #counts: Float64Array | null;

  /** Set by `getShadowPage`: whether its last call allocated (kvm: the `created` of __kvm_mmu_get_shadow_page). */
  lastGetCreated = false;
  /** kvm: `kvm->stat.max_mmu_page_hash_collisions`. */
  maxHashCollisions = 0;
  /** kvm: `kvm->stat.mmu_cache_miss`. */
  cacheMisses = 0;
  /** Broadcasts of KVM_REQ_MMU_FREE_OBSOLETE_ROOTS. */
  freeObsoleteRootsRequests = 0;
  /** Pages currently unsync (kvm: `kvm->stat.mmu_unsync`). */
  unsyncPages = 0;

  constructor(options: ShadowPageStoreOptions) {
    const n = options.allocator.capacity;
    this.allocator = options.allocator;
    this.meter = options.meter ?? NOOP_METER;
    this.tdpEnabled = options.tdpEnabled ?? true;
    this.unsyncEnabled = options.unsync ?? false;
    this.#counts = meterTable(this.meter);
    this.#gfn = new Float64Array(n);
    this.#role = new Uint32Array(n);
    this.#rootCount = new Int32Array(n);
    this.#parentSp = new Int32Array(n).fill(NONE);
    this.#parentIndex = new Int16Array(n);
    this.#parentCount = new Int32Array(n);
    this.#moreParents = new Int32Array(n).fill(NONE);
    this.#flags = new Uint8Array(n);
    this.#unsyncChildren = new Int32Array(n);
    this.#unsyncBitmap = new Uint32Array(n * BITMAP_WORDS);
    this.#gen = new Uint8Array(n);
    this.#hashNext = new Int32Array(n).fill(NONE);
    this.#hashPrev = new Int32Array(n).fill(NONE);
    this.#listNext = new Int32Array(n).fill(NONE);
    this.#listPrev = new Int32Array(n).fill(NONE);
    options.memslots?.onChange((change) => {
      if (change.kind === MEMSLOT_CHANGE.DELETE || change.kind === MEMSLOT_CHANGE.MOVE) this.zapAllFast();
    });
  }

  /** Bytes of per-page metadata in the typed arrays (the table itself is another 4096). */
  get metadataBytesPerPage(): number {
    return (
      this.#gfn.BYTES_PER_ELEMENT +
      this.#role.BYTES_PER_ELEMENT +
      this.#rootCount.BYTES_PER_ELEMENT +
      this.#parentSp.BYTES_PER_ELEMENT +
      this.#parentIndex.BYTES_PER_ELEMENT +
      this.#parentCount.BYTES_PER_ELEMENT +
      this.#moreParents.BYTES_PER_ELEMENT +
      this.#flags.BYTES_PER_ELEMENT +
      this.#unsyncChildren.BYTES_PER_ELEMENT +
      this.#unsyncBitmap.BYTES_PER_ELEMENT * BITMAP_WORDS +
      this.#gen.BYTES_PER_ELEMENT +
      this.#hashNext.BYTES_PER_ELEMENT +
      this.#hashPrev.BYTES_PER_ELEMENT +
      this.#listNext.BYTES_PER_ELEMENT +
      this.#listPrev.BYTES_PER_ELEMENT
    );
  }

  /** kvm: `kvm->arch.mmu_valid_gen` (0 or 1). */
  get mmuValidGen(): number {
    return this.#mmuValidGen;
  }

  /** Shadow-MMU pages allocated and not yet prepared for zapping (kvm: `n_used_mmu_pages`). */
  get usedMmuPages(): number {
    return this.#usedMmuPages;
  }

  /** Live TDP MMU pages (kvm: `tdp_mmu_pages`; roots included). */
  get tdpPages(): number {
    return this.#tdpPages;
  }

  /** Pages on `active_mmu_pages`. */
  get activeCount(): number {
    return this.#activeCount;
  }

  /** Pages prepared for zapping and not yet freed. */
  get pendingZapCount(): number {
    return this.#invalidCount;
  }

  // ---- per-page fields --------------------------------------------------------------------

  /** Id of the page whose table is at `hpa`, or -1 (kvm: `to_shadow_page` / `root_to_sp`). */
  idOfHostPage(hpa: number): number {
    const id = this.allocator.pageIndex(hpa);
    return id >= 0 && (this.#flags[id]! & SP_FLAG.LIVE) !== 0 ? id : NONE;
  }

  isLive(id: number): boolean {
    return id >= 0 && id < this.#flags.length && (this.#flags[id]! & SP_FLAG.LIVE) !== 0;
  }

  hostPage(id: number): number {
    return this.allocator.pageAddress(id);
  }

  gfn(id: number): number {
    return this.#gfn[id]!;
  }

  role(id: number): number {
    return this.#role[id]!;
  }

  level(id: number): number {
    return this.#role[id]! & PAGE_ROLE.LEVEL_MASK;
  }

  rootCount(id: number): number {
    return this.#rootCount[id]!;
  }

  parentCount(id: number): number {
    return this.#parentCount[id]!;
  }

  pageGen(id: number): number {
    return this.#gen[id]!;
  }

  isTdpPage(id: number): boolean {
    return (this.#flags[id]! & SP_FLAG.TDP_MMU) !== 0;
  }

  isUnsync(id: number): boolean {
    return (this.#flags[id]! & SP_FLAG.UNSYNC) !== 0;
  }

  isWriteTracked(id: number): boolean {
    return (this.#flags[id]! & SP_FLAG.WRITE_TRACKED) !== 0;
  }

  isInvalid(id: number): boolean {
    return (this.#role[id]! & PAGE_ROLE.INVALID) !== 0;
  }

  isOnActiveList(id: number): boolean {
    return (this.#flags[id]! & SP_FLAG.ON_ACTIVE_LIST) !== 0;
  }

  /** kvm: is_obsolete_sp — invalid, or a shadow-MMU page of an older `mmu_valid_gen`. */
  isObsolete(id: number): boolean {
    const f = this.#flags[id]!;
    if ((this.#role[id]! & PAGE_ROLE.INVALID) !== 0) return true;
    return (f & SP_FLAG.TDP_MMU) === 0 && this.#gen[id] !== this.#mmuValidGen;
  }

  /**
   * Marks an unsync page (kvm: kvm_unsync_page) or clears it (kvm: kvm_unlink_unsync_page), as a
   * raw setter for tests and fixtures. The MMU itself goes through `tryToUnsyncPages` and
   * `unlinkUnsync`, which also keep the parents' bitmaps and the stat.
   */
  setUnsync(id: number, unsync: boolean): void {
    this.#requireLive(id);
    if (unsync === this.isUnsync(id)) return;
    if (unsync) {
      this.#flags[id] = this.#flags[id]! | SP_FLAG.UNSYNC;
      this.unsyncPages++;
      if ((this.#flags[id]! & SP_FLAG.TDP_MMU) === 0) this.#markParentsUnsync(id);
    } else {
      this.unlinkUnsync(id);
    }
  }

  /** kvm: `sp->unsync_children`. */
  unsyncChildren(id: number): number {
    return this.#unsyncChildren[id]!;
  }

  /**
   * kvm: mmu_try_to_unsync_pages (without prefetch) — called when a writable SPTE is about to map
   * `gfn`. A write-tracked gfn must stay write-protected; otherwise every valid page with guest PTEs
   * for the gfn must become unsync, which a sync in progress (`canUnsync` false: kvm's
   * FNAME(sync_spte)) does not allow. Pages already unsync stay so. Returns true when the new SPTE
   * must lose write permission (kvm: -EPERM).
   */
  tryToUnsyncPages(gfn: number, canUnsync: boolean): boolean {
    if (this.#writeTrack.has(gfn)) return true;
    for (let sp = this.#hashHeads[spHashBucket(gfn)]!; sp !== NONE; sp = this.#hashNext[sp]!) {
      if (!this.#isValidWithGptesFor(sp, gfn)) continue;
      if (!canUnsync) return true;
      if ((this.#flags[sp]! & SP_FLAG.UNSYNC) !== 0) continue;
      if (this.level(sp) !== 1)
        throw new Error(`shadow page ${sp} of untracked gfn 0x${gfn.toString(16)} is not last-level`);
      this.#unsyncPage(sp);
    }
    return false;
  }

  /**
   * kvm: mark_unsync — entry `index` of page `parent` leads to unsync pages: its bit is set, and on
   * the page's first unsync child its own parents are marked. For a link made to a page that is
   * unsync or has unsync children (kvm: __link_shadow_page).
   */
  markUnsyncChild(parent: number, index: number): void {
    this.#markUnsync(parent, index);
  }

  /** kvm: kvm_unlink_unsync_page — the page is in sync again (its parents' bits are the walk's business). */
  unlinkUnsync(id: number): void {
    if ((this.#flags[id]! & SP_FLAG.UNSYNC) === 0) return;
    this.#flags[id] = this.#flags[id]! & ~SP_FLAG.UNSYNC;
    this.unsyncPages--;
  }

  /**
   * kvm: mmu_unsync_walk — the unsync last-level pages reachable from page `id` through the
   * unsync-child bitmaps, appended to `out` (each once), depth first, as one batch of at most
   * `limit` walk entries: KVM's vector (`KVM_PAGE_ARRAY_NR`, 16) holds the page itself, every
   * upper page the walk enters and every unsync page, and the walk stops when it is full. The bits
   * of entries that are not present, of children with nothing to sync and of the pages appended are
   * cleared as the walk goes, an upper page's once nothing under it is left (KVM clears the last two
   * through mmu_pages_clear_parents after each sync; the caller syncs or zaps every page returned
   * before the next walk, so the state each walk sees is the same). Returns the number of pages
   * appended; call again until it returns 0.
   */
  collectUnsync(id: number, out: number[], limit = Number.POSITIVE_INFINITY): number {
    const before = out.length;
    this.#walkSlots = 1;
    this.#walkLimit = limit;
    this.#collectUnsync(id, out);
    return out.length - before;
  }

  /** Entries of the current `collectUnsync` batch, and its size. */
  #walkSlots = 0;
  #walkLimit = Number.POSITIVE_INFINITY;

  /** Whether some valid page with guest PTEs shadows `gfn` (kvm: the disallow_lpage count of account_shadowed). */
  isGfnShadowed(gfn: number): boolean {
    if (this.#writeTrack.has(gfn)) return true;
    for (let sp = this.#hashHeads[spHashBucket(gfn)]!; sp !== NONE; sp = this.#hashNext[sp]!) {
      if (this.#gfn[sp] === gfn && (this.#role[sp]! & (NO_GPTES | PAGE_ROLE.INVALID)) === 0) return true;
    }
    return false;
  }

  /**
   * Whether every mapping of `gfn` is write-protected: the gfn is write-tracked, or a valid
   * last-level page shadows it and is still sync. That is KVM's invariant: account_shadowed and the
   * sync write-protect every mapping of the gfn, and any later writable mapping would have unsynced
   * the page (mmu_try_to_unsync_pages). A guest's store to such a gfn faults.
   */
  isGfnWriteProtected(gfn: number): boolean {
    if (this.#writeTrack.has(gfn)) return true;
    if (!this.unsyncEnabled) return false;
    for (let sp = this.#hashHeads[spHashBucket(gfn)]!; sp !== NONE; sp = this.#hashNext[sp]!) {
      if (this.#isValidWithGptesFor(sp, gfn) && (this.#flags[sp]! & SP_FLAG.UNSYNC) === 0) return true;
    }
    return false;
  }

  /** Sets the role's invalid bit (kvm: `root->role.invalid = true` in kvm_tdp_mmu_invalidate_all_roots). */
  markInvalid(id: number): void {
    this.#role[id] = (this.#role[id]! | PAGE_ROLE.INVALID) >>> 0;
  }

  /** The TDP MMU's "scheduled to zap" mark (kvm: `tdp_mmu_scheduled_root_to_zap`). */
  setZapScheduled(id: number, scheduled: boolean): void {
    if (scheduled) this.#flags[id] = this.#flags[id]! | SP_FLAG.ZAP_SCHEDULED;
    else this.#flags[id] = this.#flags[id]! & ~SP_FLAG.ZAP_SCHEDULED;
  }

  isZapScheduled(id: number): boolean {
    return (this.#flags[id]! & SP_FLAG.ZAP_SCHEDULED) !== 0;
  }

  /** One page as named fields (allocates; for reports and tests). */
  describe(id: number): ShadowPageInfo {
    this.#requireLive(id);
    const f = this.#flags[id]!;
    return {
      id,
      gfn: this.#gfn[id]!,
      role: this.#role[id]!,
      level: this.level(id),
      hostPage: this.hostPage(id),
      rootCount: this.#rootCount[id]!,
      parentCount: this.#parentCount[id]!,
      unsync: (f & SP_FLAG.UNSYNC) !== 0,
      unsyncChildren: this.#unsyncChildren[id]!,
      tdpMmuPage: (f & SP_FLAG.TDP_MMU) !== 0,
      writeTracked: (f & SP_FLAG.WRITE_TRACKED) !== 0,
      mmuValidGen: this.#gen[id]!,
      invalid: this.isInvalid(id),
      obsolete: this.isObsolete(id),
      onActiveList: (f & SP_FLAG.ON_ACTIVE_LIST) !== 0,
    };
  }

  /** Ids on `active_mmu_pages`, newest first (allocates). */
  activePages(): number[] {
    const out: number[] = [];
    for (let id = this.#activeHead; id !== NONE; id = this.#listNext[id]!) out.push(id);
    return out;
  }

  // ---- lookup and allocation ----------------------------------------------------------------

  /**
   * kvm: kvm_mmu_find_shadow_page — scans the gfn's hash bucket, skipping obsolete pages, for a
   * page with this gfn and exactly this role word. A page with the same gfn, another role and
   * `unsync`, met while looking for an upper-level page, is zapped. An unsync hit is synced through
   * `syncUnsyncHit`, without write protection, and stays unsync; if its sync fails it is zapped and
   * the lookup misses (the caller builds a new page). Returns the id or -1.
   */
  find(gfn: number, role: number): number {
    this.#count(MMU_EVENTS.SHADOW_PAGE_LOOKUP);
    const wanted = role >>> 0;
    let collisions = 0;
    let zapped = false;
    let hit = NONE;
    for (let sp = this.#hashHeads[spHashBucket(gfn)]!; sp !== NONE; sp = this.#hashNext[sp]!) {
      if (this.isObsolete(sp)) continue; // kvm: for_each_valid_sp
      if (this.#gfn[sp] !== gfn) {
        collisions++;
        continue;
      }
      if (this.#role[sp] !== wanted) {
        // kvm: an upper-level page for this gfn means the guest stopped using it as a last-level table.
        if (roleLevel(wanted) > 1 && (this.#flags[sp]! & SP_FLAG.UNSYNC) !== 0) {
          this.prepareZap(sp);
          zapped = true;
        }
        continue;
      }
      hit = sp;
      break;
    }
    if (zapped) this.commitZap();
    if (collisions > this.maxHashCollisions) this.maxHashCollisions = collisions;
    if (hit === NONE) {
      this.cacheMisses++;
      return NONE;
    }
    this.#count(MMU_EVENTS.SHADOW_PAGE_HIT);
    const sync = this.syncUnsyncHit;
    if (sync !== null && (this.#flags[hit]! & SP_FLAG.UNSYNC) !== 0) {
      const synced = sync(hit);
      if (synced < 0) {
        this.prepareZap(hit);
        this.commitZap();
        this.cacheMisses++;
        return NONE;
      }
      if (synced > 0) this.remoteFlush();
    }
    return hit;
  }

  /**
   * kvm: kvm_mmu_alloc_shadow_page (and tdp_mmu_alloc_sp + tdp_mmu_init_sp for `tdp`): takes a
   * zeroed host page and stamps the page. A shadow-MMU page joins the head of the FIFO active
   * list and its hash bucket with the current `mmu_valid_gen`; if it shadows guest PTEs (indirect,
   * not passthrough) its gfn is accounted (kvm: account_shadowed): write-tracked, except for a
   * last-level page of an `unsync` store, whose mappings the shadow MMU write-protects instead. TDP
   * MMU pages are on neither list. Returns the id.
   */
  alloc(gfn: number, role: number, tdp: boolean): number {
    const id = this.allocator.pageIndex(this.allocator.alloc());
    this.#gfn[id] = gfn;
    this.#role[id] = role >>> 0;
    this.#rootCount[id] = 0;
    this.#parentSp[id] = NONE;
    this.#parentCount[id] = 0;
    this.#moreParents[id] = NONE;
    this.#gen[id] = this.#mmuValidGen;
    this.#unsyncChildren[id] = 0;
    this.#unsyncBitmap.fill(0, id * BITMAP_WORDS, (id + 1) * BITMAP_WORDS);
    this.#count(MMU_EVENTS.SHADOW_PAGE_ALLOC);
    if (tdp) {
      this.#flags[id] = SP_FLAG.LIVE | SP_FLAG.TDP_MMU;
      this.#tdpPages++;
      return id;
    }
    this.#flags[id] = SP_FLAG.LIVE;
    this.#listAddHead(id);
    this.#hashAdd(id, gfn);
    this.#usedMmuPages++;
    // kvm: sp_has_gptes — indirect and not a passthrough page; account_shadowed tracks level > 1 only.
    if ((role & NO_GPTES) === 0 && (roleLevel(role) > 1 || !this.unsyncEnabled)) {
      this.trackGfn(gfn);
      this.#flags[id] = this.#flags[id]! | SP_FLAG.WRITE_TRACKED;
    }
    return id;
  }

  /** kvm: __kvm_mmu_get_shadow_page — `find`, else `alloc`; sets `lastGetCreated`. */
  getShadowPage(gfn: number, role: number): number {
    const found = this.find(gfn, role);
    this.lastGetCreated = found === NONE;
    return found !== NONE ? found : this.alloc(gfn, role, false);
  }

  // ---- parent links -------------------------------------------------------------------------

  /** Records that entry `index` of page `parent` points to page `child` (kvm: mmu_page_add_parent_pte; `sp->ptep`). */
  linkParent(child: number, parent: number, index: number): void {
    this.#requireLive(child);
    if (this.#parentCount[child] === 0) {
      this.#parentSp[child] = parent;
      this.#parentIndex[child] = index;
    } else {
      const link = this.#newLink();
      this.#linkSp[link] = parent;
      this.#linkIndex[link] = index;
      this.#linkNext[link] = this.#moreParents[child]!;
      this.#moreParents[child] = link;
    }
    this.#parentCount[child] = this.#parentCount[child]! + 1;
  }

  /** Forgets the link from entry `index` of `parent` (kvm: mmu_page_remove_parent_pte). Throws if absent. */
  unlinkParent(child: number, parent: number, index: number): void {
    this.#requireLive(child);
    if (this.#parentCount[child] === 0) throw new Error(`shadow page ${child} has no parent links`);
    if (this.#parentSp[child] === parent && this.#parentIndex[child] === index) {
      const link = this.#moreParents[child]!;
      if (link === NONE) {
        this.#parentSp[child] = NONE;
      } else {
        this.#parentSp[child] = this.#linkSp[link]!;
        this.#parentIndex[child] = this.#linkIndex[link]!;
        this.#moreParents[child] = this.#linkNext[link]!;
        this.#freeLink(link);
      }
    } else {
      let prev = NONE;
      let link = this.#moreParents[child]!;
      while (link !== NONE && !(this.#linkSp[link] === parent && this.#linkIndex[link] === index)) {
        prev = link;
        link = this.#linkNext[link]!;
      }
      if (link === NONE) throw new Error(`shadow page ${child} has no parent link from ${parent}[${index}]`);
      if (prev === NONE) this.#moreParents[child] = this.#linkNext[link]!;
      else this.#linkNext[prev] = this.#linkNext[link]!;
      this.#freeLink(link);
    }
    this.#parentCount[child] = this.#parentCount[child]! - 1;
  }

  /** The parent page of the first link, or -1 (with `firstParentIndex`: kvm's `sp->ptep` for TDP pages). */
  firstParent(id: number): number {
    return this.#parentCount[id]! > 0 ? this.#parentSp[id]! : NONE;
  }

  firstParentIndex(id: number): number {
    return this.#parentIndex[id]!;
  }

  // ---- root references ----------------------------------------------------------------------

  /** ++root_count (kvm: mmu_alloc_root) or one more TDP root reference (kvm: kvm_tdp_mmu_get_root). */
  addRootRef(id: number, n = 1): void {
    this.#rootCount[id] = this.#rootCount[id]! + n;
  }

  /** --root_count; returns the new count. Throws if it was already 0 (a bug). */
  dropRootRef(id: number): number {
    const n = this.#rootCount[id]! - 1;
    if (n < 0) throw new Error(`shadow page ${id} dropped a root reference it did not hold`);
    this.#rootCount[id] = n;
    return n;
  }

  /**
   * Legacy root release (kvm: mmu_free_root_page for a shadow-MMU page, then the commit of
   * kvm_mmu_free_roots): one reference less; a root already invalid whose last reference goes is
   * zapped and freed. Returns true when the page was freed.
   */
  putLegacyRoot(id: number): boolean {
    if (this.dropRootRef(id) !== 0 || !this.isInvalid(id)) return false;
    this.prepareZap(id);
    this.commitZap();
    return true;
  }

  // ---- zapping ------------------------------------------------------------------------------

  /**
   * kvm: __kvm_mmu_prepare_zap_page. Clears the page's entries (children lose this parent; a
   * nested-TDP child left without parents is zapped too), clears the parent entries pointing to
   * it, stops write-tracking its gfn, drops `unsync`. A page that is not a root goes to the
   * pending invalid list (freed by `commitZap`). A root still referenced leaves the active list
   * and stays until its last reference is put; if it was not obsolete, every vCPU is asked to
   * free obsolete roots. Either way the role's `invalid` bit is set. Returns the number of pages
   * zapped (children, plus itself if not a root): non-zero means the active list changed.
   */
  prepareZap(id: number): number {
    this.#requireLive(id);
    if ((this.#flags[id]! & SP_FLAG.ON_INVALID_LIST) !== 0) return 0;
    if ((this.#flags[id]! & SP_FLAG.TDP_MMU) !== 0)
      throw new Error(`shadow page ${id} belongs to the TDP MMU`);
    const memory = this.allocator.memory;
    const page = this.hostPage(id);
    const level = this.level(id);
    let zapped = 0;
    // kvm: mmu_zap_unsync_children — the unsync pages below go first, each counted as zapped.
    if (level > 1 && this.#unsyncChildren[id]! > 0) {
      const unsync: number[] = [];
      // The public walk: it resets the batch state a sync may have left behind, and takes them all.
      this.collectUnsync(id, unsync);
      for (let i = 0; i < unsync.length; i++) {
        this.prepareZap(unsync[i]!);
        zapped++;
      }
    }
    // kvm: kvm_mmu_page_unlink_children → mmu_page_zap_pte for each entry.
    for (let i = 0; i < SPTES_PER_PAGE; i++) {
      const pa = page + i * 8;
      const lo = memory.read32(pa);
      const hi = memory.read32(pa + 4);
      if (!isShadowPresentSpte(lo)) {
        // kvm: an MMIO SPTE is cleared too (mmu_spte_clear_no_track).
        if ((lo | hi) !== 0) this.#clearSpte(pa);
        continue;
      }
      this.#clearSpte(pa);
      if (isLastSpte(lo, level)) continue;
      const child = this.idOfHostPage(spteAddress(lo, hi));
      if (child === NONE) continue; // a special root's page is not a shadow page
      this.unlinkParent(child, id, i);
      if (
        this.tdpEnabled &&
        (this.#role[child]! & PAGE_ROLE.GUEST_MODE) !== 0 &&
        this.#parentCount[child] === 0 &&
        !this.isInvalid(child)
      ) {
        zapped += this.prepareZap(child);
      }
    }
    // kvm: kvm_mmu_unlink_parents → drop_parent_pte for every parent entry.
    while (this.#parentCount[id]! > 0) {
      const parent = this.#parentSp[id]!;
      const index = this.#parentIndex[id]!;
      this.#clearSpte(this.hostPage(parent) + index * 8);
      this.unlinkParent(id, parent, index);
    }
    const f = this.#flags[id]!;
    if (!this.isInvalid(id) && (f & SP_FLAG.WRITE_TRACKED) !== 0) {
      this.untrackGfn(this.#gfn[id]!);
      this.#flags[id] = this.#flags[id]! & ~SP_FLAG.WRITE_TRACKED;
    }
    this.unlinkUnsync(id);
    let zappedRoot = false;
    if (this.#rootCount[id] === 0) {
      zapped++;
      if ((f & SP_FLAG.ON_ACTIVE_LIST) !== 0) this.#listRemove(id);
      this.#flags[id] = this.#flags[id]! | SP_FLAG.ON_INVALID_LIST;
      this.#listNext[id] = this.#invalidHead;
      this.#invalidHead = id;
      this.#invalidCount++;
      this.#usedMmuPages--; // kvm: kvm_unaccount_mmu_page
    } else {
      if ((f & SP_FLAG.ON_ACTIVE_LIST) !== 0) this.#listRemove(id);
      zappedRoot = !this.isObsolete(id);
    }
    this.markInvalid(id);
    if (zappedRoot) this.#requestFreeObsoleteRoots();
    return zapped;
  }

  /** kvm: kvm_flush_remote_tlbs — one TLB_FLUSH_REQUEST, and the request to the VM's vCPUs. */
  remoteFlush(): void {
    this.#count(MMU_EVENTS.TLB_FLUSH_REQUEST);
    this.onRemoteFlush?.();
  }

  /**
   * kvm: kvm_mmu_commit_zap_page — a remote TLB flush, then every prepared page is freed (off its
   * hash bucket, host page returned). Returns the number of pages freed.
   */
  commitZap(): number {
    if (this.#invalidHead === NONE) return 0;
    this.remoteFlush();
    let freed = 0;
    while (this.#invalidHead !== NONE) {
      const id = this.#invalidHead;
      this.#invalidHead = this.#listNext[id]!;
      this.#listNext[id] = NONE;
      this.#invalidCount--;
      this.#freePage(id, false);
      freed++;
    }
    return freed;
  }

  /**
   * Frees a TDP MMU page at once (kvm: tdp_mmu_free_sp via call_rcu). The caller has cleared its
   * parent entry and its own entries; `knownZero` passes that promise to the allocator.
   */
  freeTdpPage(id: number, knownZero: boolean): void {
    this.#requireLive(id);
    if ((this.#flags[id]! & SP_FLAG.TDP_MMU) === 0)
      throw new Error(`shadow page ${id} is not a TDP MMU page`);
    if (this.#parentCount[id] !== 0)
      throw new Error(`TDP MMU page ${id} is still linked from a parent entry`);
    this.#tdpPages--;
    this.#freePage(id, knownZero);
  }

  /** Registers the TDP MMU's part of `zapAllFast`. */
  addZapAllFastHooks(hooks: ZapAllFastHooks): void {
    this.#hooks.push(hooks);
  }

  /** Called on every KVM_REQ_MMU_FREE_OBSOLETE_ROOTS broadcast (vCPUs free obsolete roots before entry). */
  onFreeObsoleteRoots(listener: () => void): () => void {
    this.#obsoleteRootListeners.push(listener);
    return () => {
      const at = this.#obsoleteRootListeners.indexOf(listener);
      if (at >= 0) this.#obsoleteRootListeners.splice(at, 1);
    };
  }

  /**
   * kvm: kvm_mmu_zap_all_fast (memslot deletion or move, VM destruction): toggles
   * `mmu_valid_gen` so every shadow-MMU page becomes obsolete at once, invalidates the TDP roots,
   * asks every vCPU to free obsolete roots, zaps the obsolete pages from the old end of the
   * active list (kvm: kvm_zap_obsolete_pages), commits, then lets the TDP MMU zap its invalidated
   * roots. Roots still referenced survive as invalid pages until their last reference goes.
   */
  zapAllFast(): void {
    this.#mmuValidGen ^= 1;
    for (const hooks of this.#hooks) hooks.invalidateRoots();
    this.#requestFreeObsoleteRoots();
    for (let sp = this.#activeTail; sp !== NONE && this.isObsolete(sp); sp = this.#activeTail) {
      this.prepareZap(sp); // removes `sp` from the active list, so the tail moves on
    }
    this.commitZap();
    for (const hooks of this.#hooks) hooks.zapInvalidatedRoots();
  }

  // ---- write tracking -----------------------------------------------------------------------

  /** One more write-track reference on `gfn` (kvm: kvm_write_track_add_gfn / __kvm_write_track_add_gfn). */
  trackGfn(gfn: number): void {
    const n = (this.#writeTrack.get(gfn) ?? 0) + 1;
    if (n > WRITE_TRACK_LIMIT)
      throw new RangeError(`gfn 0x${gfn.toString(16)} write-track count overflows 16 bits`);
    this.#writeTrack.set(gfn, n);
  }

  /** One write-track reference less (kvm: kvm_write_track_remove_gfn); throws if `gfn` is not tracked. */
  untrackGfn(gfn: number): void {
    const n = this.#writeTrack.get(gfn);
    if (n === undefined) throw new Error(`gfn 0x${gfn.toString(16)} is not write-tracked`);
    if (n === 1) this.#writeTrack.delete(gfn);
    else this.#writeTrack.set(gfn, n - 1);
  }

  /** kvm: kvm_gfn_is_write_tracked. */
  isGfnTracked(gfn: number): boolean {
    return this.#writeTrack.has(gfn);
  }

  /** The write-track count of `gfn`. */
  writeTrackCount(gfn: number): number {
    return this.#writeTrack.get(gfn) ?? 0;
  }

  // ---- internals ----------------------------------------------------------------------------

  #count(event: number): void {
    const counts = this.#counts;
    if (counts !== null) counts[event] = counts[event]! + 1;
    else this.meter.count(event);
  }

  /** Live, not obsolete, not TDP, with guest PTEs, for `gfn` (kvm: for_each_gfn_valid_sp_with_gptes). */
  #isValidWithGptesFor(sp: number, gfn: number): boolean {
    return (
      this.#gfn[sp] === gfn &&
      (this.#role[sp]! & NO_GPTES) === 0 &&
      (this.#flags[sp]! & SP_FLAG.TDP_MMU) === 0 &&
      !this.isObsolete(sp)
    );
  }

  /** kvm: kvm_unsync_page — flag, stat, and the parents' unsync-child bits. */
  #unsyncPage(id: number): void {
    this.#count(MMU_EVENTS.UNSYNC_PAGE);
    this.#flags[id] = this.#flags[id]! | SP_FLAG.UNSYNC;
    this.unsyncPages++;
    this.#markParentsUnsync(id);
  }

  /** kvm: kvm_mmu_mark_parents_unsync — mark_unsync on every parent SPTE of `id`. */
  #markParentsUnsync(id: number): void {
    if (this.#parentCount[id] === 0) return;
    this.#markUnsync(this.#parentSp[id]!, this.#parentIndex[id]!);
    for (let link = this.#moreParents[id]!; link !== NONE; link = this.#linkNext[link]!) {
      this.#markUnsync(this.#linkSp[link]!, this.#linkIndex[link]!);
    }
  }

  /** kvm: mark_unsync — set the bit; on the page's first unsync child, mark its own parents. */
  #markUnsync(parent: number, index: number): void {
    const word = parent * BITMAP_WORDS + (index >>> 5);
    const bit = 1 << (index & 31);
    const bits = this.#unsyncBitmap[word]!;
    if ((bits & bit) !== 0) return;
    this.#unsyncBitmap[word] = (bits | bit) >>> 0;
    if (this.#unsyncChildren[parent]!++ > 0) return;
    this.#markParentsUnsync(parent);
  }

  #clearUnsyncChildBit(id: number, index: number): void {
    const word = id * BITMAP_WORDS + (index >>> 5);
    this.#unsyncBitmap[word] = (this.#unsyncBitmap[word]! & ~(1 << (index & 31))) >>> 0;
    this.#unsyncChildren[id] = this.#unsyncChildren[id]! - 1;
  }

  /** One level of `collectUnsync` (kvm: __mmu_unsync_walk); false when the batch is full (kvm: -ENOSPC). */
  #collectUnsync(id: number, out: number[]): boolean {
    const memory = this.allocator.memory;
    const page = this.hostPage(id);
    const level = this.level(id);
    const base = id * BITMAP_WORDS;
    for (let w = 0; w < BITMAP_WORDS && this.#unsyncChildren[id]! > 0; w++) {
      let bits = this.#unsyncBitmap[base + w]!;
      while (bits !== 0) {
        const b = 31 - Math.clz32(bits & -bits);
        bits = (bits & ~(1 << b)) >>> 0;
        const index = w * 32 + b;
        const lo = memory.read32(page + index * 8);
        // kvm: an entry no longer present, or a large leaf, has nothing to sync.
        const child =
          !isShadowPresentSpte(lo) || isLastSpte(lo, level)
            ? NONE
            : this.idOfHostPage(spteAddress(lo, memory.read32(page + index * 8 + 4)));
        if (child !== NONE && this.#unsyncChildren[child]! > 0) {
          // kvm: the upper page takes a vector entry before the walk enters it; a full vector ends
          // the batch there (its bit stays, the next walk comes back to it).
          if (++this.#walkSlots >= this.#walkLimit) return false;
          const complete = this.#collectUnsync(child, out);
          if (this.#unsyncChildren[child] === 0) this.#clearUnsyncChildBit(id, index);
          if (!complete) return false;
          continue;
        }
        this.#clearUnsyncChildBit(id, index);
        if (child === NONE || (this.#flags[child]! & SP_FLAG.UNSYNC) === 0 || out.includes(child)) continue;
        out.push(child);
        if (++this.#walkSlots >= this.#walkLimit) return false;
      }
    }
    return true;
  }

  #clearSpte(pa: number): void {
    this.allocator.memory.write64(pa, 0, 0);
    this.#count(MMU_EVENTS.SPTE_WRITE);
  }

  #requestFreeObsoleteRoots(): void {
    this.freeObsoleteRootsRequests++;
    for (const listener of [...this.#obsoleteRootListeners]) listener();
  }

  #requireLive(id: number): void {
    if (!this.isLive(id)) throw new RangeError(`${id} is not a live shadow page`);
  }

  /** kvm: kvm_mmu_free_shadow_page (the header) and free_page (the table). */
  #freePage(id: number, knownZero: boolean): void {
    if ((this.#flags[id]! & SP_FLAG.HASHED) !== 0) this.#hashRemove(id);
    this.#flags[id] = 0;
    this.#count(MMU_EVENTS.SHADOW_PAGE_ZAP);
    this.allocator.free(this.hostPage(id), knownZero);
  }

  #listAddHead(id: number): void {
    this.#listPrev[id] = NONE;
    this.#listNext[id] = this.#activeHead;
    if (this.#activeHead !== NONE) this.#listPrev[this.#activeHead] = id;
    else this.#activeTail = id;
    this.#activeHead = id;
    this.#activeCount++;
    this.#flags[id] = this.#flags[id]! | SP_FLAG.ON_ACTIVE_LIST;
  }

  #listRemove(id: number): void {
    const prev = this.#listPrev[id]!;
    const next = this.#listNext[id]!;
    if (prev !== NONE) this.#listNext[prev] = next;
    else this.#activeHead = next;
    if (next !== NONE) this.#listPrev[next] = prev;
    else this.#activeTail = prev;
    this.#listPrev[id] = NONE;
    this.#listNext[id] = NONE;
    this.#activeCount--;
    this.#flags[id] = this.#flags[id]! & ~SP_FLAG.ON_ACTIVE_LIST;
  }

  #hashAdd(id: number, gfn: number): void {
    const bucket = spHashBucket(gfn);
    const head = this.#hashHeads[bucket]!;
    this.#hashPrev[id] = NONE;
    this.#hashNext[id] = head;
    if (head !== NONE) this.#hashPrev[head] = id;
    this.#hashHeads[bucket] = id;
    this.#flags[id] = this.#flags[id]! | SP_FLAG.HASHED;
  }

  #hashRemove(id: number): void {
    const prev = this.#hashPrev[id]!;
    const next = this.#hashNext[id]!;
    if (prev !== NONE) this.#hashNext[prev] = next;
    else this.#hashHeads[spHashBucket(this.#gfn[id]!)] = next;
    if (next !== NONE) this.#hashPrev[next] = prev;
    this.#hashPrev[id] = NONE;
    this.#hashNext[id] = NONE;
  }

  #newLink(): number {
    if (this.#linkFree !== NONE) {
      const link = this.#linkFree;
      this.#linkFree = this.#linkNext[link]!;
      return link;
    }
    if (this.#linkUsed === this.#linkSp.length) {
      const size = this.#linkSp.length * 2;
      const sp = new Int32Array(size);
      sp.set(this.#linkSp);
      const index = new Int16Array(size);
      index.set(this.#linkIndex);
      const next = new Int32Array(size);
      next.set(this.#linkNext);
      this.#linkSp = sp;
      this.#linkIndex = index;
      this.#linkNext = next;
    }
    return this.#linkUsed++;
  }

  #freeLink(link: number): void {
    this.#linkNext[link] = this.#linkFree;
    this.#linkFree = link;
  }
}
