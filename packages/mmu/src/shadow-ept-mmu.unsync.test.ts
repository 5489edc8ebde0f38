import { EPT_ACCESS, EPTE_LO, PAGE_SIZE } from "@nestvisor/x86-arch";
import { describe, expect, it } from "vitest";
import { MMU_EVENTS, type MmuEventName } from "./mmu-events";
import { SHADOW_FAULT } from "./shadow-fault";
import { EPT12_LEAF_RWX } from "./testing/guest-ept-builder";
import { nestedEptFixture } from "./testing/nested-ept-fixture";
import { auditShadowEpt } from "./testing/shadow-audit";

/** L1 data pages the EPT12 leaves point to. */
const DATA = 0x40_0000;

/**
 * A nested-EPT fixture with an unsync store and L2 pages 0..3 mapped by one EPT12 leaf table, each
 * touched once by L2 (so EPT02 has one last-level shadow page with four present leaves).
 */
function setup() {
  const f = nestedEptFixture({ unsync: true, tablePages: 256, l1Pages: 0x1000 });
  for (let i = 0; i < 4; i++) f.builder.map(i * PAGE_SIZE, DATA + i * PAGE_SIZE);
  for (let i = 0; i < 4; i++) expect(f.l2Access(i * PAGE_SIZE, EPT_ACCESS.READ).ok).toBe(true);
  const leafTableGfn = Math.floor(f.builder.entryAddress(0, 1) / PAGE_SIZE);
  const leafPage = f.shadow.shadowPagesOf(leafTableGfn)[0]!;
  const count = (name: MmuEventName) => f.meter.get(MMU_EVENTS[name]);
  /** INVEPT of L1, then the reload before the next entry (kvm: handle_invept, kvm_mmu_load). */
  const inveptAndReload = () => {
    f.backend.putRoot(f.state.root);
    f.state.root = f.backend.allocShadowRoot(f.role, f.eptp12.value);
    f.ept.syncRoots(f.state.root, f.ctx12);
  };
  /** L1's store to its EPT12: emulated if tracked; else a fault that unsyncs (L0's make_spte), then the store. */
  const l1Write = (at: number, lo: number, hi: number) => {
    const gfn = Math.floor(at / PAGE_SIZE);
    f.shadow.guestMemory.write64(at, lo, hi);
    if (f.store.isGfnTracked(gfn)) f.shadow.trackedWrite(at, 8);
    else if (f.store.isGfnWriteProtected(gfn)) expect(f.store.tryToUnsyncPages(gfn, true)).toBe(false);
  };
  return { f, leafTableGfn, leafPage, count, inveptAndReload, l1Write };
}

describe("ShadowEptMmu with unsync last-level pages (kvm: mmu_try_to_unsync_pages and the sync paths)", () => {
  it("accounts an EPT12 leaf table by write protection, not write tracking; its upper tables stay tracked", () => {
    const { f, leafTableGfn, leafPage } = setup();
    expect(f.store.level(leafPage)).toBe(1);
    expect(f.store.isGfnTracked(leafTableGfn)).toBe(false);
    expect(f.store.isGfnWriteProtected(leafTableGfn)).toBe(true);
    expect(f.store.isGfnShadowed(leafTableGfn)).toBe(true);
    const pdTableGfn = Math.floor(f.builder.entryAddress(0, 2) / PAGE_SIZE);
    expect(f.store.isGfnTracked(pdTableGfn)).toBe(true);
    // An upper-level table can never be unsynced: the write must be emulated.
    expect(f.store.tryToUnsyncPages(pdTableGfn, true)).toBe(true);
  });

  it("unsyncs the page once, marks the unsync-child bits up to the root, and then lets L1 write freely", () => {
    const { f, leafTableGfn, leafPage, count } = setup();
    expect(f.store.tryToUnsyncPages(leafTableGfn, false)).toBe(true); // a sync in progress may not unsync
    expect(f.store.isUnsync(leafPage)).toBe(false);
    expect(f.store.tryToUnsyncPages(leafTableGfn, true)).toBe(false);
    expect(f.store.tryToUnsyncPages(leafTableGfn, true)).toBe(false);
    expect(count("UNSYNC_PAGE")).toBe(1);
    expect(f.store.unsyncPages).toBe(1);
    expect(f.store.isUnsync(leafPage)).toBe(true);
    expect(f.store.isGfnWriteProtected(leafTableGfn)).toBe(false);
    // Each upper page on the path has exactly one unsync child: the bits go up to the root.
    const root = f.store.idOfHostPage(f.state.root);
    expect(f.store.unsyncChildren(root)).toBe(1);
    const pd = f.store.firstParent(leafPage);
    expect(f.store.unsyncChildren(pd)).toBe(1);
    expect(f.store.unsyncChildren(f.store.firstParent(pd))).toBe(1);
  });

  it("installs a new EPT12 leaf (non-present → present) without any sync, as L1 need not flush for it", () => {
    const { f, leafTableGfn, count, l1Write } = setup();
    l1Write(f.builder.entryAddress(4 * PAGE_SIZE, 1), (DATA + 9 * PAGE_SIZE) | EPT12_LEAF_RWX, 0);
    expect(f.store.isGfnWriteProtected(leafTableGfn)).toBe(false);
    const r = f.l2Access(4 * PAGE_SIZE + 8, EPT_ACCESS.WRITE);
    expect(r.ok).toBe(true);
    expect(r.hpa).toBe(f.memslots.gfnToHpa(Math.floor(DATA / PAGE_SIZE) + 9) + 8);
    expect(count("SYNC_PAGE")).toBe(0);
    expect(count("SYNC_CHILDREN")).toBe(0);
    expect(auditShadowEpt(f.shadow, f.state.root, f.ctx12).problems).toEqual([]);
  });

  it("resyncs on the reload after INVEPT: a changed leaf is dropped, the page is write-protected again", () => {
    const { f, leafTableGfn, leafPage, count, inveptAndReload, l1Write } = setup();
    // L1 points L2 page 1 elsewhere and makes page 2 read-only; L2's stale EPT02 still maps the old ones.
    l1Write(f.builder.entryAddress(PAGE_SIZE, 1), (DATA + 7 * PAGE_SIZE) | EPT12_LEAF_RWX, 0);
    l1Write(
      f.builder.entryAddress(2 * PAGE_SIZE, 1),
      (DATA + 2 * PAGE_SIZE) | (EPT12_LEAF_RWX & ~EPTE_LO.WRITE),
      0,
    );
    expect(f.store.isUnsync(leafPage)).toBe(true);
    expect(auditShadowEpt(f.shadow, f.state.root, f.ctx12).problems).not.toEqual([]);
    inveptAndReload();
    expect(count("SYNC_CHILDREN")).toBe(1);
    expect(count("SYNC_PAGE")).toBe(1);
    expect(count("SYNC_SPTE")).toBe(4); // the four present leaves
    expect(f.store.isUnsync(leafPage)).toBe(false);
    expect(f.store.unsyncPages).toBe(0);
    expect(f.store.isGfnWriteProtected(leafTableGfn)).toBe(true);
    expect(f.store.unsyncChildren(f.store.idOfHostPage(f.state.root))).toBe(0);
    expect(auditShadowEpt(f.shadow, f.state.root, f.ctx12).problems).toEqual([]);
    const moved = f.l2Access(PAGE_SIZE, EPT_ACCESS.READ);
    expect(moved.hpa).toBe(f.memslots.gfnToHpa(Math.floor(DATA / PAGE_SIZE) + 7));
    const readOnly = f.l2Access(2 * PAGE_SIZE, EPT_ACCESS.WRITE);
    expect(readOnly.outcome).toBe(SHADOW_FAULT.INJECT_EPT_VIOLATION);
    // A second reload finds nothing to sync.
    inveptAndReload();
    expect(count("SYNC_CHILDREN")).toBe(1);
  });

  it("syncs an unsync page found by lookup without write-protecting it (kvm_mmu_find_shadow_page)", () => {
    const { f, leafPage, count, l1Write } = setup();
    l1Write(f.builder.entryAddress(PAGE_SIZE, 1), (DATA + 7 * PAGE_SIZE) | EPT12_LEAF_RWX, 0);
    // L1 rewrites the PDE above (a tracked table: emulated, and the EPT02 link to the page is zapped).
    const pde = f.builder.entryAddress(0, 2);
    l1Write(pde, f.shadow.guestMemory.read32(pde), f.shadow.guestMemory.read32(pde + 4));
    expect(f.store.parentCount(leafPage)).toBe(0);
    const r = f.l2Access(PAGE_SIZE, EPT_ACCESS.READ);
    expect(r.ok).toBe(true);
    expect(r.hpa).toBe(f.memslots.gfnToHpa(Math.floor(DATA / PAGE_SIZE) + 7));
    expect(count("SYNC_PAGE")).toBe(1);
    expect(count("SYNC_CHILDREN")).toBe(0);
    expect(f.shadow.shadowPagesOf(Math.floor(f.builder.entryAddress(0, 1) / PAGE_SIZE))).toEqual([leafPage]);
    expect(f.store.isUnsync(leafPage)).toBe(true);
    expect(auditShadowEpt(f.shadow, f.state.root, f.ctx12).problems).toEqual([]);
  });

  it("syncs the unsync pages below an upper page before linking it (FNAME(fetch) → mmu_sync_children)", () => {
    const { f, leafPage, count, l1Write } = setup();
    l1Write(f.builder.entryAddress(PAGE_SIZE, 1), (DATA + 7 * PAGE_SIZE) | EPT12_LEAF_RWX, 0);
    // L1 rewrites its PML4 entry: the root's link to the PDPT page is zapped; the PDPT page stays.
    const pml4e = f.builder.entryAddress(0, 4);
    l1Write(pml4e, f.shadow.guestMemory.read32(pml4e), f.shadow.guestMemory.read32(pml4e + 4));
    const r = f.l2Access(PAGE_SIZE, EPT_ACCESS.READ);
    expect(r.ok).toBe(true);
    expect(r.hpa).toBe(f.memslots.gfnToHpa(Math.floor(DATA / PAGE_SIZE) + 7));
    expect(count("SYNC_CHILDREN")).toBe(1);
    expect(f.store.isUnsync(leafPage)).toBe(false);
    expect(auditShadowEpt(f.shadow, f.state.root, f.ctx12).problems).toEqual([]);
  });

  it("zaps the unsync pages below a zapped upper page, each counted, and keeps the counters balanced", () => {
    const { f, leafTableGfn, leafPage, l1Write } = setup();
    l1Write(f.builder.entryAddress(PAGE_SIZE, 1), (DATA + 7 * PAGE_SIZE) | EPT12_LEAF_RWX, 0);
    const pd = f.store.firstParent(leafPage);
    // The PD page loses its only link first, so only the unsync child comes with it.
    expect(f.store.prepareZap(pd)).toBe(2);
    f.store.commitZap();
    expect(f.store.isLive(leafPage)).toBe(false);
    expect(f.store.unsyncPages).toBe(0);
    expect(f.store.isGfnShadowed(leafTableGfn)).toBe(false);
    expect(f.store.isGfnWriteProtected(leafTableGfn)).toBe(false);
  });

  it("syncs in batches of one 16-entry walk: root, upper pages and unsync pages share the vector (mmu_unsync_walk)", () => {
    const f = fortyUnsyncPages();
    const before = f.meter.snapshot();
    f.backend.putRoot(f.state.root);
    f.state.root = f.backend.allocShadowRoot(f.role, f.eptp12.value);
    f.ept.syncRoots(f.state.root, f.ctx12);
    // Each walk holds the root, the PDPT and PD pages, then 13 unsync pages: 13 + 13 + 13 + 1.
    const d = f.meter.diff(before);
    expect(d.SYNC_CHILDREN).toBe(4);
    expect(d.SYNC_PAGE).toBe(40);
    expect(d.SYNC_SPTE).toBe(40);
    expect(f.store.unsyncPages).toBe(0);
    expect(f.store.unsyncChildren(f.store.idOfHostPage(f.state.root))).toBe(0);
    expect(auditShadowEpt(f.shadow, f.state.root, f.ctx12).problems).toEqual([]);
  });

  it("zaps every unsync page below a zapped upper page, whatever batch a sync left the walk in", () => {
    const f = fortyUnsyncPages();
    // One batch of a sync (13 pages brought back in line), leaving the walk's vector full.
    const batch: number[] = [];
    expect(f.store.collectUnsync(f.store.idOfHostPage(f.state.root), batch, 16)).toBe(13);
    for (const sp of batch) f.store.unlinkUnsync(sp);
    expect(f.store.unsyncPages).toBe(27);
    const pd = f.shadow.shadowPagesOf(Math.floor(f.builder.entryAddress(0, 2) / PAGE_SIZE))[0]!;
    // The PD and the 40 pages below it: the 27 still unsync and the 13 synced ones.
    expect(f.store.prepareZap(pd)).toBe(41);
    f.store.commitZap();
    expect(f.store.unsyncPages).toBe(0);
  });
});

/** 40 L2 pages 2 MiB apart: 40 EPT12 leaf tables under one PD, so 40 unsync last-level EPT02 pages. */
function fortyUnsyncPages() {
  const f = nestedEptFixture({ unsync: true, tablePages: 256, l1Pages: 0x1000 });
  const leafTables: number[] = [];
  for (let i = 0; i < 40; i++) {
    f.builder.map(i * 0x20_0000, DATA + i * PAGE_SIZE);
    expect(f.l2Access(i * 0x20_0000, EPT_ACCESS.READ).ok).toBe(true);
    leafTables.push(Math.floor(f.builder.entryAddress(i * 0x20_0000, 1) / PAGE_SIZE));
  }
  for (const gfn of leafTables) expect(f.store.tryToUnsyncPages(gfn, true)).toBe(false);
  expect(f.store.unsyncPages).toBe(40);
  return f;
}
