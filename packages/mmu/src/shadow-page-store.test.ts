import { CountingMeter } from "@nestvisor/vmx";
import { DenseMemory } from "@nestvisor/x86-arch";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { HostPageAllocator } from "./host-page-allocator";
import { Memslots } from "./memslots";
import { MMU_EVENTS } from "./mmu-events";
import { ACC, childRole, PAGE_ROLE } from "./page-role";
import { ShadowPageStore, type ShadowPageStoreOptions } from "./shadow-page-store";
import { eptLeafSpteHi, eptLeafSpteLo, eptNonLeafSpteHi, eptNonLeafSpteLo } from "./spte";

/** Shadow-paging root of a 64-bit 4-level guest (kvm-mmu.md §2.9). */
const SHADOW_ROOT = 0x00003704;
const SHADOW_PT = childRole(
  childRole(childRole(SHADOW_ROOT, ACC.ALL, false, 0), ACC.ALL, false, 0),
  ACC.ALL,
  false,
  0,
);
const DIRECT_PT = (SHADOW_PT | PAGE_ROLE.DIRECT) >>> 0;
/** Shadow EPT root (guest_mode). */
const SHADOW_EPT_ROOT = 0x00020704;

function setup(options: Partial<ShadowPageStoreOptions> = {}) {
  const memory = new DenseMemory(2 * 1024 * 1024);
  const allocator = new HostPageAllocator(memory, { base: 0x10_0000, pages: 128, zeroed: true });
  const meter = new CountingMeter([MMU_EVENTS]);
  const store = new ShadowPageStore({ allocator, meter, ...options });
  /** Writes a non-leaf entry `parent[index]` → `child` and records the link, as link_shadow_page does. */
  const link = (parent: number, index: number, child: number) => {
    const childHpa = store.hostPage(child);
    memory.write64(
      store.hostPage(parent) + index * 8,
      eptNonLeafSpteLo(childHpa, false),
      eptNonLeafSpteHi(childHpa, false),
    );
    store.linkParent(child, parent, index);
  };
  return { memory, allocator, meter, store, link };
}

describe("ShadowPageStore: allocation and lookup", () => {
  it("allocates a page on a zeroed host page, hashed, at the head of the active list, stamped with the generation", () => {
    const { store, meter, allocator } = setup();
    const a = store.alloc(0x1000, SHADOW_PT, false);
    const b = store.alloc(0x2000, DIRECT_PT, false);
    expect(store.activePages()).toEqual([b, a]);
    expect(store.describe(a)).toMatchObject({
      gfn: 0x1000,
      role: SHADOW_PT,
      level: 1,
      rootCount: 0,
      parentCount: 0,
      tdpMmuPage: false,
      writeTracked: true,
      mmuValidGen: 0,
      obsolete: false,
      onActiveList: true,
    });
    expect(store.describe(b).writeTracked).toBe(false); // direct pages shadow no guest table
    expect(store.isGfnTracked(0x1000)).toBe(true);
    expect(store.isGfnTracked(0x2000)).toBe(false);
    expect(store.idOfHostPage(store.hostPage(a))).toBe(a);
    expect(allocator.inUse).toBe(2);
    expect(store.usedMmuPages).toBe(2);
    expect(meter.byName("SHADOW_PAGE_ALLOC")).toBe(2);
  });

  it("finds a page only by gfn and the full role word, counting lookups and hits", () => {
    const { store, meter } = setup();
    const a = store.alloc(0x1000, SHADOW_PT, false);
    expect(store.find(0x1000, SHADOW_PT)).toBe(a);
    expect(store.find(0x1000, DIRECT_PT)).toBe(-1);
    expect(store.find(0x1001, SHADOW_PT)).toBe(-1);
    expect(store.find(0x1000, (SHADOW_PT | PAGE_ROLE.CR0_WP) ^ PAGE_ROLE.CR0_WP)).toBe(-1);
    expect(meter.byName("SHADOW_PAGE_LOOKUP")).toBe(4);
    expect(meter.byName("SHADOW_PAGE_HIT")).toBe(1);
    expect(store.cacheMisses).toBe(3);
  });

  it("getShadowPage reuses a hit and allocates on a miss (kvm: __kvm_mmu_get_shadow_page)", () => {
    const { store } = setup();
    const a = store.getShadowPage(0x44, SHADOW_ROOT);
    expect(store.lastGetCreated).toBe(true);
    expect(store.getShadowPage(0x44, SHADOW_ROOT)).toBe(a);
    expect(store.lastGetCreated).toBe(false);
  });

  it("finds every page among many in colliding buckets (random gfns and roles)", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.record({ gfn: fc.integer({ min: 0, max: 2 ** 40 - 1 }), direct: fc.boolean() }), {
          maxLength: 100,
          selector: (p) => `${p.gfn}:${p.direct}`,
        }),
        (pages) => {
          const { store } = setup();
          const ids = pages.map((p) => store.alloc(p.gfn, p.direct ? DIRECT_PT : SHADOW_PT, false));
          pages.forEach((p, i) => {
            expect(store.find(p.gfn, p.direct ? DIRECT_PT : SHADOW_PT)).toBe(ids[i]);
          });
          // Zap every other page: the rest are still found, the zapped ones are gone.
          ids.forEach((id, i) => {
            if (i % 2 === 0) store.prepareZap(id);
          });
          store.commitZap();
          pages.forEach((p, i) => {
            expect(store.find(p.gfn, p.direct ? DIRECT_PT : SHADOW_PT)).toBe(i % 2 === 0 ? -1 : ids[i]);
          });
        },
      ),
      { numRuns: 50 },
    );
  });
});

describe("ShadowPageStore: zapping", () => {
  it("zaps a page: parent and child entries cleared, links gone, write-tracking dropped, freed at commit", () => {
    const { store, memory, meter, allocator, link } = setup();
    const root = store.alloc(0x10, SHADOW_ROOT, false);
    const mid = store.alloc(0x20, childRole(SHADOW_ROOT, ACC.ALL, false, 3), false);
    const leafTable = store.alloc(0x30, childRole(store.role(mid), ACC.ALL, false, 5), false);
    link(root, 3, mid);
    link(mid, 5, leafTable);
    memory.write64(
      store.hostPage(leafTable) + 8,
      eptLeafSpteLo(0x9000, 1, true, false),
      eptLeafSpteHi(0x9000, true, true, false),
    );
    const writesBefore = meter.byName("SPTE_WRITE");

    const zapped = store.prepareZap(mid);
    expect(zapped).toBe(1);
    expect(memory.read32(store.hostPage(root) + 3 * 8)).toBe(0);
    expect(memory.read32(store.hostPage(mid) + 5 * 8)).toBe(0);
    expect(store.parentCount(leafTable)).toBe(0);
    expect(store.isInvalid(mid)).toBe(true);
    expect(store.isGfnTracked(0x20)).toBe(false);
    expect(store.pendingZapCount).toBe(1);
    expect(store.isLive(mid)).toBe(true);
    expect(meter.byName("SPTE_WRITE") - writesBefore).toBe(2);

    expect(store.commitZap()).toBe(1);
    expect(store.isLive(mid)).toBe(false);
    expect(store.find(0x20, childRole(SHADOW_ROOT, ACC.ALL, false, 3))).toBe(-1);
    expect(allocator.inUse).toBe(2);
    expect(meter.byName("SHADOW_PAGE_ZAP")).toBe(1);
    expect(meter.byName("TLB_FLUSH_REQUEST")).toBe(1);
    // The leaf table is still live (parentless), its leaf entry untouched.
    expect(memory.read32(store.hostPage(leafTable) + 8)).not.toBe(0);
  });

  it("keeps a zapped root that is still referenced: invalid, off the active list, until the last reference", () => {
    const { store, allocator } = setup();
    const root = store.alloc(0x10, SHADOW_ROOT, false);
    store.addRootRef(root);
    store.addRootRef(root);
    const zapped = store.prepareZap(root);
    expect(zapped).toBe(0); // a root does not count itself
    expect(store.pendingZapCount).toBe(0);
    expect(store.isLive(root)).toBe(true);
    expect(store.isInvalid(root)).toBe(true);
    expect(store.isOnActiveList(root)).toBe(false);
    expect(store.freeObsoleteRootsRequests).toBe(1); // kvm: KVM_REQ_MMU_FREE_OBSOLETE_ROOTS
    expect(store.find(0x10, SHADOW_ROOT)).toBe(-1); // obsolete pages are skipped
    expect(store.putLegacyRoot(root)).toBe(false);
    expect(store.isLive(root)).toBe(true);
    expect(store.putLegacyRoot(root)).toBe(true);
    expect(store.isLive(root)).toBe(false);
    expect(allocator.inUse).toBe(0);
    expect(() => store.dropRootRef(store.alloc(1, SHADOW_ROOT, false))).toThrow(/did not hold/);
  });

  it("zaps an unsync last-level page met while looking up an upper-level page for its gfn", () => {
    const { store } = setup();
    const pt = store.alloc(0x50, SHADOW_PT, false);
    store.setUnsync(pt, true);
    const pd = childRole(childRole(SHADOW_ROOT, ACC.ALL, false, 0), ACC.ALL, false, 0);
    expect(store.find(0x50, pd)).toBe(-1);
    expect(store.isLive(pt)).toBe(false);
    // A synced page survives the same lookup.
    const pt2 = store.alloc(0x60, SHADOW_PT, false);
    store.find(0x60, pd);
    expect(store.isLive(pt2)).toBe(true);
  });

  it("with TDP, zaps a nested-TDP child left without a parent (kvm: mmu_page_zap_pte)", () => {
    for (const tdpEnabled of [true, false]) {
      const { store, link } = setup({ tdpEnabled });
      const root = store.alloc(0x10, SHADOW_EPT_ROOT, false);
      const child = store.alloc(0x20, childRole(SHADOW_EPT_ROOT, ACC.ALL, false, 0), false);
      link(root, 0, child);
      store.addRootRef(root);
      expect(store.prepareZap(root)).toBe(tdpEnabled ? 1 : 0);
      store.commitZap();
      expect(store.isLive(child)).toBe(!tdpEnabled);
    }
  });

  it("clears every parent entry of a page shared by several parents", () => {
    const { store, memory, link } = setup();
    const parents = [0, 1, 2].map((i) => store.alloc(0x100 + i, SHADOW_ROOT, false));
    const child = store.alloc(0x200, childRole(SHADOW_ROOT, ACC.ALL, false, 0), false);
    parents.forEach((p, i) => {
      link(p, 10 + i, child);
    });
    expect(store.parentCount(child)).toBe(3);
    store.unlinkParent(child, parents[1]!, 11);
    expect(store.parentCount(child)).toBe(2);
    expect(() => store.unlinkParent(child, parents[1]!, 11)).toThrow(/no parent link/);
    store.prepareZap(child);
    store.commitZap();
    expect(memory.read32(store.hostPage(parents[0]!) + 10 * 8)).toBe(0);
    expect(memory.read32(store.hostPage(parents[2]!) + 12 * 8)).toBe(0);
    expect(memory.read32(store.hostPage(parents[1]!) + 11 * 8)).not.toBe(0); // unlinked before: untouched
  });
});

describe("ShadowPageStore: mmu_valid_gen and zap_all_fast", () => {
  it("toggling the generation makes every shadow page obsolete at once, then zaps them", () => {
    const { store, allocator } = setup();
    const a = store.alloc(0x1, SHADOW_PT, false);
    const b = store.alloc(0x2, DIRECT_PT, false);
    const seen: { obsolete: boolean[]; found: number; gen: number }[] = [];
    store.addZapAllFastHooks({
      invalidateRoots: () => {
        seen.push({
          obsolete: [store.isObsolete(a), store.isObsolete(b)],
          found: store.find(0x1, SHADOW_PT),
          gen: store.mmuValidGen,
        });
      },
      zapInvalidatedRoots: () => {},
    });
    expect(store.isObsolete(a)).toBe(false);
    store.zapAllFast();
    expect(seen).toEqual([{ obsolete: [true, true], found: -1, gen: 1 }]);
    expect(store.isLive(a)).toBe(false);
    expect(store.isLive(b)).toBe(false);
    expect(store.activeCount).toBe(0);
    expect(allocator.inUse).toBe(0);
    expect(store.isGfnTracked(0x1)).toBe(false);
    store.zapAllFast();
    expect(store.mmuValidGen).toBe(0);
  });

  it("pages made after the toggle are valid; referenced roots survive as invalid until put", () => {
    const { store } = setup();
    const root = store.alloc(0x10, SHADOW_ROOT, false);
    store.addRootRef(root);
    let requests = 0;
    store.onFreeObsoleteRoots(() => requests++);
    store.zapAllFast();
    expect(store.isLive(root)).toBe(true);
    expect(store.isObsolete(root)).toBe(true);
    expect(requests).toBe(1); // the zap of an already-obsolete root asks nothing more
    const fresh = store.getShadowPage(0x10, SHADOW_ROOT);
    expect(fresh).not.toBe(root);
    expect(store.pageGen(fresh)).toBe(1);
    expect(store.isObsolete(fresh)).toBe(false);
    expect(store.putLegacyRoot(root)).toBe(true);
  });

  it("deleting or moving a memslot zaps all, creating one does not (kvm: kvm_arch_flush_shadow_memslot)", () => {
    const memslots = new Memslots();
    const { store } = setup({ memslots });
    const slot = memslots.add({ baseGfn: 0, npages: 16, hostBase: 0x40_0000 });
    const a = store.alloc(0x3, SHADOW_PT, false);
    memslots.add({ baseGfn: 0x100, npages: 16, hostBase: 0x80_0000 });
    expect(store.isLive(a)).toBe(true);
    memslots.move(slot, 0x200);
    expect(store.isLive(a)).toBe(false);
    const b = store.alloc(0x3, SHADOW_PT, false);
    memslots.delete(slot);
    expect(store.isLive(b)).toBe(false);
    expect(store.mmuValidGen).toBe(0);
  });
});

describe("ShadowPageStore: write tracking and layout", () => {
  it("counts write-track references per gfn", () => {
    const { store } = setup();
    const a = store.alloc(0x77, SHADOW_PT, false);
    const b = store.alloc(0x77, childRole(SHADOW_ROOT, ACC.ALL, false, 0), false);
    expect(store.writeTrackCount(0x77)).toBe(2);
    store.trackGfn(0x78);
    expect(store.isGfnTracked(0x78)).toBe(true);
    store.untrackGfn(0x78);
    expect(store.isGfnTracked(0x78)).toBe(false);
    expect(() => store.untrackGfn(0x78)).toThrow(/not write-tracked/);
    store.prepareZap(a);
    expect(store.writeTrackCount(0x77)).toBe(1);
    store.prepareZap(b);
    store.commitZap();
    expect(store.isGfnTracked(0x77)).toBe(false);
  });

  it("keeps 116 bytes of metadata per page (48, plus the unsync-child count and 512-bit bitmap) beside the 4096-byte table", () => {
    expect(setup().store.metadataBytesPerPage).toBe(116);
  });

  it("refuses to zap a TDP page through the shadow path, or free a shadow page as TDP", () => {
    const { store } = setup();
    const tdp = store.alloc(0, 0x3784, true);
    const shadow = store.alloc(0, SHADOW_ROOT, false);
    expect(store.isTdpPage(tdp)).toBe(true);
    expect(store.tdpPages).toBe(1);
    expect(store.isOnActiveList(tdp)).toBe(false);
    expect(() => store.prepareZap(tdp)).toThrow(/TDP MMU/);
    expect(() => store.freeTdpPage(shadow, true)).toThrow(/not a TDP MMU page/);
    expect(() => store.describe(99)).toThrow(/not a live shadow page/);
  });
});
