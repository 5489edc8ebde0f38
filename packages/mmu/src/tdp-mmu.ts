import { type Meter, meterTable } from "@nestvisor/vmx";
import type { Gpa } from "@nestvisor/x86-arch";
import { PAGE_SIZE } from "@nestvisor/x86-arch";
import { maxMappingLevel } from "./huge-page-level";
import type { Memslots } from "./memslots";
import { writeMmioSpte } from "./mmio-spte";
import { MMU_EVENTS } from "./mmu-events";
import { PAGE_ROLE } from "./page-role";
import type { ShadowPageStore } from "./shadow-page-store";
import { SPTE_FORMAT } from "./shadow-spte";
import {
  eptLeafSpteHi,
  eptLeafSpteLo,
  eptNonLeafSpteHi,
  eptNonLeafSpteLo,
  isLastSpte,
  isShadowPresentSpte,
  SPTE_HI,
  SPTE_LO,
  SPTES_PER_PAGE,
  spteAddress,
  TerminalSpte,
  walkToTerminalSpte,
} from "./spte";

/**
 * How a TDP fault ended (kvm: the RET_PF_* codes of kvm_tdp_page_fault; both EMULATE outcomes are
 * RET_PF_EMULATE in KVM, split here by reason).
 */
export const TDP_MAP_RESULT = {
  /** An SPTE was installed (kvm: RET_PF_FIXED). */
  FIXED: 0,
  /** The leaf was already what the fault would install (kvm: RET_PF_SPURIOUS). */
  SPURIOUS: 1,
  /** The root is invalid (obsolete); the vCPU must load a new root and retry (kvm: is_page_fault_stale → RET_PF_RETRY). */
  RETRY: 2,
  /**
   * No memslot holds the gfn: the access is emulated as MMIO, and an MMIO SPTE now caches the fact
   * (kvm: kvm_handle_noslot_fault, make_mmio_spte), so the next access is an EPT misconfiguration.
   */
  EMULATE_MMIO: 3,
  /** A write to a read-only memslot (kvm: KVM_PFN_ERR_RO_FAULT → RET_PF_EMULATE): an MMIO exit, no SPTE. */
  EMULATE_READ_ONLY: 4,
  /**
   * A write fault on a write-tracked gfn (an EPT12 or guest page table L0 shadows), its leaf
   * present or just installed read-only: the write is emulated so the shadow MMU sees it (kvm:
   * page_fault_handle_page_track, or `wrprot && fault->write` in tdp_mmu_map_handle_target_level →
   * RET_PF_WRITE_PROTECTED, RET_PF_EMULATE before v6.12).
   */
  EMULATE_WRITE_PROTECTED: 5,
} as const;
export type TdpMapResult = (typeof TDP_MAP_RESULT)[keyof typeof TDP_MAP_RESULT];

export interface TdpMmuOptions {
  /** The VM's shadow-page store: TDP pages are its pages; `zapAllFast` reaches the TDP MMU through hooks. */
  readonly store: ShadowPageStore;
  readonly memslots: Memslots;
  readonly meter?: Meter;
  /**
   * Commit edbdb43fc96b (v6.4, "Preserve TDP MMU roots until they are explicitly invalidated"):
   * the TDP MMU keeps its own reference to every root, so a root outlives its last vCPU
   * reference until a memslot update or VM destruction invalidates it. Off (the kernels before):
   * putting the last vCPU reference zaps and frees the whole tree. Default true.
   */
  readonly preserveTdpRoots?: boolean;
  /**
   * The host backs the memslots with 2-MiB pages: map a 2-MiB leaf where `maxMappingLevel` allows
   * (kvm: kvm_mmu_hugepage_adjust). Off: 4-KiB leaves only. 1-GiB leaves are never built. Default
   * false.
   */
  readonly hugePages?: boolean;
}

const NONE = -1;
const TWO_32 = 4294967296;
/** Pages covered by one entry at each level (index = level): 1, 512, 512^2, 512^3, 512^4. */
const SPAN = [0, 1, 512, 512 ** 2, 512 ** 3, 512 ** 4] as const;

/**
 * KVM's TDP MMU for an Intel host (kvm: arch/x86/kvm/mmu/tdp_mmu.c): L0's EPT tables for a
 * direct MMU role, built fault by fault from the memslots in host memory.
 *
 * Roots are a VM-wide list with reference counts (kvm: `kvm->arch.tdp_mmu_roots`,
 * `tdp_mmu_root_count`): `allocRoot` reuses a valid root with an equal role word or makes one;
 * `putRoot` drops a vCPU's reference; `invalidateAllRoots` + `zapInvalidatedRoots` are the TDP part
 * of `kvm_mmu_zap_all_fast`. Zapping is synchronous (KVM defers freeing with RCU and, before
 * v6.6, zapped invalidated roots in a worker); the counts are the same.
 */
export class TdpMmu {
  readonly store: ShadowPageStore;
  readonly memslots: Memslots;
  readonly meter: Meter;
  readonly preserveTdpRoots: boolean;
  readonly hugePages: boolean;
  /** Root ids, newest first (kvm: list_add_rcu at the head). */
  readonly #roots: number[] = [];
  /** Scratch for walks to a leaf. */
  readonly #terminal = new TerminalSpte();
  readonly #counts: Float64Array | null;

  constructor(options: TdpMmuOptions) {
    this.store = options.store;
    this.memslots = options.memslots;
    this.meter = options.meter ?? options.store.meter;
    this.preserveTdpRoots = options.preserveTdpRoots ?? true;
    this.hugePages = options.hugePages ?? false;
    this.#counts = meterTable(this.meter);
    this.store.addZapAllFastHooks({
      invalidateRoots: () => this.invalidateAllRoots(),
      zapInvalidatedRoots: () => this.zapInvalidatedRoots(),
    });
  }

  /** Host-physical addresses of the roots on the list, newest first (allocates). */
  roots(): number[] {
    return this.#roots.map((id) => this.store.hostPage(id));
  }

  /** Reference count of the root at `rootHpa` (kvm: tdp_mmu_root_count). */
  rootRefCount(rootHpa: number): number {
    return this.store.rootCount(this.#rootId(rootHpa));
  }

  /**
   * kvm: kvm_tdp_mmu_alloc_root — the valid root whose role word equals `role` (equal words are
   * also in the same address space, `role.smm`), with one more reference; else a new root with
   * two references (one for the vCPU, one kept by the TDP MMU) or, without `preserveTdpRoots`,
   * one. Returns the root's host-physical address. Throws for a role that is not direct.
   */
  allocRoot(role: number): number {
    const word = role >>> 0;
    if ((word & PAGE_ROLE.DIRECT) === 0 || (word & PAGE_ROLE.INVALID) !== 0) {
      throw new RangeError(`TDP MMU root role 0x${word.toString(16)} must be direct and valid`);
    }
    const level = word & PAGE_ROLE.LEVEL_MASK;
    if (level !== 4 && level !== 5)
      throw new RangeError(`TDP MMU root level ${level} is not 4 or 5 (EPT walk length)`);
    const store = this.store;
    for (const id of this.#roots) {
      if (store.role(id) === word) {
        store.addRootRef(id);
        return store.hostPage(id);
      }
    }
    const id = store.alloc(0, word, true);
    store.addRootRef(id, this.preserveTdpRoots ? 2 : 1);
    this.#roots.unshift(id);
    this.#count(MMU_EVENTS.ROOT_ALLOC);
    return store.hostPage(id);
  }

  /** Another reference to a live root (kvm: kvm_tdp_mmu_get_root); false if its count is already 0. */
  getRoot(rootHpa: number): boolean {
    const id = this.#rootId(rootHpa);
    if (this.store.rootCount(id) === 0) return false;
    this.store.addRootRef(id);
    return true;
  }

  /**
   * A vCPU puts its reference (kvm: kvm_tdp_mmu_put_root, from mmu_free_root_page). When the
   * count reaches zero the root goes: with `preserveTdpRoots` only an invalidated root can get
   * there (its tree is already zapped); without, the last vCPU reference of a valid root
   * invalidates it and destroys the whole tree (ROOT_DESTROY plus a SHADOW_PAGE_ZAP per page).
   * ROOT_DROP is counted by the caller that releases the slot (the root cache).
   */
  putRoot(rootHpa: number): void {
    this.#put(this.#rootId(rootHpa));
  }

  /**
   * kvm: kvm_tdp_mmu_invalidate_all_roots — marks every valid root invalid and schedules it for
   * zapping. Since v6.4 the TDP MMU's own reference is handed to the zap; before, the zap took a
   * reference of its own.
   */
  invalidateAllRoots(): void {
    const store = this.store;
    for (const id of this.#roots) {
      if (store.isInvalid(id)) continue;
      store.markInvalid(id);
      store.setZapScheduled(id, true);
      if (!this.preserveTdpRoots) store.addRootRef(id);
    }
  }

  /**
   * kvm: kvm_tdp_mmu_zap_invalidated_roots — zaps the tree of every root scheduled by
   * `invalidateAllRoots`, then puts the reference the zap held. A root some vCPU still references
   * stays on the list, invalid and empty, until that vCPU puts it.
   */
  zapInvalidatedRoots(): void {
    const store = this.store;
    for (const id of [...this.#roots]) {
      if (!store.isZapScheduled(id)) continue;
      store.setZapScheduled(id, false);
      this.#zapRoot(id);
      this.#put(id);
    }
  }

  /**
   * kvm: kvm_tdp_mmu_zap_leafs (from kvm_zap_gfn_range) — clears every leaf SPTE mapping a gfn in
   * [startGfn, endGfn) in every valid root; page tables stay. Returns whether anything was
   * zapped (a TLB flush is then requested and counted).
   */
  zapGfnRange(startGfn: number, endGfn: number): boolean {
    if (!(endGfn > startGfn)) return false;
    let flush = false;
    for (const id of this.#roots) {
      if (this.store.isInvalid(id)) continue;
      if (this.#zapLeafs(this.store.hostPage(id), this.store.level(id), 0, startGfn, endGfn)) flush = true;
    }
    if (flush) this.store.remoteFlush();
    return flush;
  }

  /**
   * A TDP page fault at `gpa` through the root at `rootHpa` (kvm: kvm_tdp_page_fault →
   * kvm_faultin_pfn → kvm_tdp_mmu_map): walks the root's tables from the top, allocating and
   * linking a table wherever an entry is missing, and installs the leaf (make_spte) for the
   * memslot's host page: R and X always, W unless the slot is read-only, WB with ignore-PAT, A/D
   * per the role's `ad_disabled`. Counts TDP_FAULT, SPTE_WRITE per entry written and
   * SHADOW_PAGE_ALLOC per table. `writeFault` matters for read-only slots and write-tracked gfns.
   *
   * A leaf gets W only through make_spte's check (kvm: mmu_try_to_unsync_pages, asked for every
   * fault since the TDP MMU maps with ACC_ALL, unless the old leaf was writable). A write-tracked
   * gfn (an upper-level table the shadow MMU shadows, e.g. an EPT12 PML4) is mapped without W, so
   * L1's writes to it exit and are emulated: a write fault whose translation was present returns
   * EMULATE_WRITE_PROTECTED before anything is walked (kvm: page_fault_handle_page_track, first in
   * kvm_tdp_mmu_page_fault; `present` is the fault's P bit — the EPT violation's readable/writable/
   * executable bits — and by default whether a leaf at any level maps the gfn now), and so does a
   * write fault that had to install the read-only leaf (kvm: tdp_mmu_map_handle_target_level,
   * `wrprot && fault->write`), so the write is never lost to a retry. A gfn shadowed only by
   * last-level pages of an unsync store has those pages unsynced and gets a writable leaf: the
   * fault is FIXED and the guest's store re-executes.
   *
   * With `hugePages` the leaf is 2 MiB where `maxMappingLevel` allows (a 2-MiB range holding a
   * shadowed gfn gets 4-KiB leaves: kvm_mmu_gfn_disallow_lpage). A 2-MiB leaf where a 4-KiB one is
   * now wanted is split into a table of 512 leaves with its rights (kvm: tdp_mmu_split_huge_page,
   * make_huge_page_split_spte); a table where a 2-MiB leaf is now wanted is replaced by the leaf,
   * the tables below freed, and the TLBs flushed (kvm: tdp_mmu_map_handle_target_level,
   * handle_removed_pt).
   */
  map(rootHpa: number, gpa: Gpa, writeFault: boolean, present?: boolean): TdpMapResult {
    this.#count(MMU_EVENTS.TDP_FAULT);
    const store = this.store;
    const memory = store.allocator.memory;
    const rootId = this.#rootId(rootHpa);
    const role = store.role(rootId);
    let level = role & PAGE_ROLE.LEVEL_MASK;
    const gfn = Math.floor(gpa / PAGE_SIZE);
    if (!(gfn >= 0 && gfn < SPAN[level]! * SPTES_PER_PAGE)) {
      throw new RangeError(`gpa 0x${gpa.toString(16)} is beyond a ${level}-level EPT root`);
    }
    // kvm: page_fault_handle_page_track — a write to a tracked gfn through a present translation.
    const tracked = store.isGfnTracked(gfn);
    if (tracked && writeFault && (present ?? this.#leafEntry(rootHpa, level, gfn) >= 0)) {
      return TDP_MAP_RESULT.EMULATE_WRITE_PROTECTED;
    }
    if (store.isInvalid(rootId)) return TDP_MAP_RESULT.RETRY;
    const memslots = this.memslots;
    const slot = memslots.lookup(gfn);
    // kvm: kvm_handle_noslot_fault — no memslot: the walk goes on to cache an MMIO SPTE at 4 KiB.
    const mmio = slot < 0;
    const readOnly = !mmio && memslots.readOnlyAt(slot);
    if (readOnly && writeFault) return TDP_MAP_RESULT.EMULATE_READ_ONLY;
    const goal = !mmio && this.hugePages ? maxMappingLevel(memslots, store, slot, gfn) : 1;
    const adDisabled = (role & PAGE_ROLE.AD_DISABLED) !== 0;

    let table = rootHpa;
    let tableId = rootId;
    for (;;) {
      const span = SPAN[level]!;
      const index = Math.floor(gfn / span) & 511;
      const pa = table + index * 8;
      const lo = memory.read32(pa);
      const hi = memory.read32(pa + 4);
      const present = isShadowPresentSpte(lo);

      if (level === goal && mmio) {
        // kvm: tdp_mmu_map_handle_target_level → make_mmio_spte; RET_PF_EMULATE even when the
        // entry was already there (a fault that raced with another vCPU's).
        if (writeMmioSpte(memory, pa, SPTE_FORMAT.EPT, gfn, memslots.generation, 0)) {
          this.#count(MMU_EVENTS.SPTE_WRITE);
        }
        return TDP_MAP_RESULT.EMULATE_MMIO;
      }

      if (level === goal) {
        // kvm: tdp_mmu_map_handle_target_level → make_spte.
        const leafGfn = gfn - (gfn % span);
        const pageHpa = memslots.hostAddressAt(slot, leafGfn);
        // kvm: make_spte — no unsync check when the old leaf was already writable.
        const wasWritable = present && isLastSpte(lo, level) && (lo & SPTE_LO.WRITABLE) !== 0;
        const wrprot = !readOnly && !wasWritable && store.tryToUnsyncPages(leafGfn, true);
        const writable = !readOnly && !wrprot;
        const newLo = eptLeafSpteLo(pageHpa, level, writable, adDisabled);
        const newHi = eptLeafSpteHi(pageHpa, !readOnly, writable, adDisabled);
        if (present && lo === newLo && hi === newHi) return TDP_MAP_RESULT.SPURIOUS;
        memory.write64(pa, newLo, newHi);
        this.#count(MMU_EVENTS.SPTE_WRITE);
        if (present && !isLastSpte(lo, level)) {
          // kvm: a table replaced by a huge leaf — handle_removed_pt frees it, then a flush.
          this.#freeChild(spteAddress(lo, hi), level - 1);
          store.remoteFlush();
        }
        // kvm: tdp_mmu_map_handle_target_level — a write fault whose leaf make_spte had to
        // write-protect is emulated now, not retried: the new read-only leaf would only fault again.
        if (wrprot && writeFault) return TDP_MAP_RESULT.EMULATE_WRITE_PROTECTED;
        return TDP_MAP_RESULT.FIXED;
      }

      if (present && !isLastSpte(lo, level)) {
        table = spteAddress(lo, hi);
        tableId = store.idOfHostPage(table);
        level--;
        continue;
      }

      // kvm: tdp_mmu_alloc_sp + tdp_mmu_init_child_sp (the parent's role one level down), then
      // tdp_mmu_link_sp, or tdp_mmu_split_huge_page over a huge leaf.
      const childId = store.alloc(
        gfn - (gfn % span),
        ((role & ~PAGE_ROLE.LEVEL_MASK) | (level - 1)) >>> 0,
        true,
      );
      const child = store.hostPage(childId);
      if (present) this.#splitInto(child, level - 1, lo, hi);
      memory.write64(pa, eptNonLeafSpteLo(child, adDisabled), eptNonLeafSpteHi(child, adDisabled));
      this.#count(MMU_EVENTS.SPTE_WRITE);
      store.linkParent(childId, tableId, index);
      table = child;
      tableId = childId;
      level--;
    }
  }

  /**
   * kvm: get_sptes_lockless on a TDP MMU root (kvm_tdp_mmu_get_walk) — walks towards `gpa` and leaves
   * in `out` the first entry that is a leaf or not shadow-present (an MMIO SPTE is such an entry).
   */
  terminalSpte(rootHpa: number, gpa: number, out: TerminalSpte): void {
    const store = this.store;
    const level = store.role(this.#rootId(rootHpa)) & PAGE_ROLE.LEVEL_MASK;
    walkToTerminalSpte(store.allocator.memory, rootHpa, level, gpa >>> 0, Math.floor(gpa / TWO_32), out);
  }

  /**
   * `gfn` became shadowed, or its unsync pages are being synced (kvm: kvm_mmu_slot_gfn_write_protect
   * → kvm_tdp_mmu_write_protect_gfn, the `onWriteProtectGfn` hook of `ShadowMmu`): W is cleared
   * from the leaf mapping it in every valid root, a 2-MiB leaf over it included (the next fault in
   * its range wants 4-KiB leaves and splits it), so the guest's next write to it faults. Returns
   * whether an SPTE changed; then a remote flush is requested unless `flush` is false (the caller
   * flushes once for the shadow MMU's mappings and these).
   */
  writeProtectGfn(gfn: number, flush = true): boolean {
    const store = this.store;
    const memory = store.allocator.memory;
    let changed = false;
    for (const id of this.#roots) {
      if (store.isInvalid(id)) continue;
      const level = store.level(id);
      if (!(gfn >= 0 && gfn < SPAN[level]! * SPTES_PER_PAGE)) continue;
      const pa = this.#leafEntry(store.hostPage(id), level, gfn);
      if (pa < 0) continue;
      const lo = memory.read32(pa);
      const hi = memory.read32(pa + 4);
      if ((lo & SPTE_LO.WRITABLE) === 0 && (hi & SPTE_HI.MMU_WRITABLE) === 0) continue;
      // kvm: write_protect_gfn clears PT_WRITABLE_MASK and shadow_mmu_writable_mask.
      memory.write64(pa, (lo & ~SPTE_LO.WRITABLE) >>> 0, (hi & ~SPTE_HI.MMU_WRITABLE) >>> 0);
      this.#count(MMU_EVENTS.SPTE_WRITE);
      changed = true;
    }
    if (changed && flush) this.store.remoteFlush();
    return changed;
  }

  // ---- internals ----------------------------------------------------------------------------

  #count(event: number): void {
    const counts = this.#counts;
    if (counts !== null) counts[event] = counts[event]! + 1;
    else this.meter.count(event);
  }

  #rootId(rootHpa: number): number {
    const id = this.store.idOfHostPage(rootHpa);
    if (id === NONE || !this.store.isTdpPage(id) || !this.#roots.includes(id)) {
      throw new RangeError(`0x${rootHpa.toString(16)} is not a TDP MMU root`);
    }
    return id;
  }

  /** Drops one reference; the root goes at zero (kvm: kvm_tdp_mmu_put_root; before v6.4 also the zap). */
  #put(id: number): void {
    const store = this.store;
    if (store.dropRootRef(id) > 0) return;
    if (!store.isInvalid(id)) {
      if (this.preserveTdpRoots) {
        throw new Error(
          "the last reference to a valid TDP root was put: the TDP MMU's own reference is missing",
        );
      }
      store.markInvalid(id); // kvm (before v6.4): kvm_tdp_root_mark_invalid, then the zap
    }
    this.#zapRoot(id);
    this.#roots.splice(this.#roots.indexOf(id), 1);
    store.freeTdpPage(id, true);
    this.#count(MMU_EVENTS.ROOT_DESTROY);
  }

  /** kvm: tdp_mmu_zap_root — every present entry of the root cleared, every table below freed. */
  #zapRoot(id: number): void {
    this.#clearTable(this.store.hostPage(id), this.store.level(id));
  }

  /** Clears the present entries of the table at `table` (level `level`), freeing the tables below. */
  #clearTable(table: number, level: number): void {
    const memory = this.store.allocator.memory;
    for (let i = 0; i < SPTES_PER_PAGE; i++) {
      const pa = table + i * 8;
      const lo = memory.read32(pa);
      if (!isShadowPresentSpte(lo)) continue;
      const hi = memory.read32(pa + 4);
      memory.write64(pa, 0, 0);
      this.#count(MMU_EVENTS.SPTE_WRITE);
      if (!isLastSpte(lo, level)) this.#freeChild(spteAddress(lo, hi), level - 1);
    }
  }

  /** Frees a table whose parent entry was just cleared, and everything below it. */
  #freeChild(table: number, level: number): void {
    const store = this.store;
    const id = store.idOfHostPage(table);
    store.unlinkParent(id, store.firstParent(id), store.firstParentIndex(id));
    this.#clearTable(table, level);
    store.freeTdpPage(id, true);
  }

  /**
   * kvm: tdp_mmu_zap_leafs over [start, end) below the table at `table` (level `level`) whose
   * first entry maps `baseGfn`. Returns whether a leaf was cleared.
   */
  #zapLeafs(table: number, level: number, baseGfn: number, start: number, end: number): boolean {
    const memory = this.store.allocator.memory;
    const span = SPAN[level]!;
    const first = Math.max(0, Math.floor((start - baseGfn) / span));
    const last = Math.min(SPTES_PER_PAGE - 1, Math.floor((end - 1 - baseGfn) / span));
    let zapped = false;
    for (let i = first; i <= last; i++) {
      const pa = table + i * 8;
      const lo = memory.read32(pa);
      if (!isShadowPresentSpte(lo)) continue;
      if (isLastSpte(lo, level)) {
        memory.write64(pa, 0, 0);
        this.#count(MMU_EVENTS.SPTE_WRITE);
        zapped = true;
      } else if (
        this.#zapLeafs(spteAddress(lo, memory.read32(pa + 4)), level - 1, baseGfn + i * span, start, end)
      ) {
        zapped = true;
      }
    }
    return zapped;
  }

  /** Host address of the present leaf (of any level) mapping `gfn` under the root at `rootHpa` (level `level`), or -1. */
  #leafEntry(rootHpa: number, level: number, gfn: number): number {
    const t = this.#terminal;
    walkToTerminalSpte(
      this.store.allocator.memory,
      rootHpa,
      level,
      (gfn * PAGE_SIZE) >>> 0,
      Math.floor(gfn / 1048576),
      t,
    );
    return t.level !== 0 && isShadowPresentSpte(t.lo) ? t.pa : -1;
  }

  /**
   * kvm: make_huge_page_split_spte for each entry of the new table at `child` (level `level`): the
   * huge leaf (lo, hi) with its rights and A/D bits, the address advanced by the entry's span, and
   * the page-size bit dropped at level 1.
   */
  #splitInto(child: number, level: number, hugeLo: number, hugeHi: number): void {
    const memory = this.store.allocator.memory;
    const base = spteAddress(hugeLo, hugeHi);
    const keepLo = (hugeLo & ~SPTE_LO.ADDRESS & (level === 1 ? ~SPTE_LO.PAGE_SIZE : ~0)) >>> 0;
    const keepHi = (hugeHi & ~SPTE_HI.ADDRESS) >>> 0;
    const step = SPAN[level]! * PAGE_SIZE;
    for (let i = 0; i < SPTES_PER_PAGE; i++) {
      const address = base + i * step;
      memory.write64(
        child + i * 8,
        (keepLo | ((address % TWO_32) & SPTE_LO.ADDRESS)) >>> 0,
        (keepHi | (Math.floor(address / TWO_32) & SPTE_HI.ADDRESS)) >>> 0,
      );
      this.#count(MMU_EVENTS.SPTE_WRITE);
    }
  }
}
