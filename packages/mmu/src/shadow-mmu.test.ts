import { CountingMeter } from "@nestvisor/vmx";
import { DenseMemory, EPT_ACCESS, SparseMemory } from "@nestvisor/x86-arch";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { HostPageAllocator } from "./host-page-allocator";
import { Memslots } from "./memslots";
import { MMU_EVENTS } from "./mmu-events";
import { PAGE_ROLE } from "./page-role";
import { NO_SHADOW_PAGE } from "./root-backend";
import { ShadowEptMmu } from "./shadow-ept-mmu";
import { ShadowMmu } from "./shadow-mmu";
import { ShadowPageStore } from "./shadow-page-store";
import { ShadowPagingMmu } from "./shadow-paging-mmu";
import { SPTE_FORMAT } from "./shadow-spte";
import { spteIndex } from "./spte";
import { nestedEptFixture } from "./testing/nested-ept-fixture";

/** A 4-level shadow-paging root role (kvm-mmu.md §2.9: 0x00003704) and a PAE one (0x00003703). */
const LEVEL4 = 0x00003704;
const PAE = 0x00003703;

function setup(format: 0 | 1 = SPTE_FORMAT.X86, onWriteProtectGfn?: (gfn: number) => boolean) {
  const memory = new DenseMemory(0x200_0000);
  const allocator = new HostPageAllocator(memory, { base: 0x10_0000, pages: 256, zeroed: true });
  const meter = new CountingMeter([MMU_EVENTS]);
  const memslots = new Memslots();
  memslots.add({ baseGfn: 0, npages: 0x1000, hostBase: 0x100_0000 });
  const store = new ShadowPageStore({ allocator, meter, memslots, tdpEnabled: false });
  const shadow = new ShadowMmu({
    store,
    memslots,
    format,
    meter,
    ...(onWriteProtectGfn ? { onWriteProtectGfn } : {}),
  });
  return { memory, allocator, meter, memslots, store, shadow };
}

describe("spteIndex (kvm: SPTE_INDEX)", () => {
  it("selects address bits 20:12, 29:21, 38:30, 47:39 and 56:48", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 53 - 1 }),
        fc.integer({ min: 1, max: 5 }),
        (address, level) => {
          const lo = address % 2 ** 32;
          const hi = Math.floor(address / 2 ** 32);
          expect(spteIndex(lo, hi, level)).toBe(Math.floor(address / 2 ** (12 + 9 * (level - 1))) % 512);
        },
      ),
    );
  });
});

describe("ShadowMmu roots (kvm: mmu_alloc_root, mmu_free_root_page)", () => {
  it("finds a root in the hash again; putting the last reference keeps a valid root, destroys an invalid one", () => {
    const { shadow, store, meter } = setup();
    const a = shadow.allocShadowRoots(LEVEL4, 0x5000, null);
    expect(shadow.allocShadowRoots(LEVEL4, 0x5123, null)).toBe(a); // same gfn, same role
    expect(shadow.allocShadowRoots(LEVEL4 & ~PAGE_ROLE.CR0_WP, 0x5000, null)).not.toBe(a);
    const id = store.idOfHostPage(a);
    expect(store.rootCount(id)).toBe(2);
    expect(meter.byName("ROOT_ALLOC")).toBe(2);
    expect(store.isGfnTracked(5)).toBe(true);
    expect(shadow.rootRoleWord(a)).toBe(LEVEL4);
    shadow.putRoot(a);
    shadow.putRoot(a);
    expect(store.isLive(id)).toBe(true);
    expect(shadow.isObsoleteRoot(a)).toBe(false);
    expect(shadow.isRootStale(a)).toBe(false);
    shadow.allocShadowRoots(LEVEL4, 0x5000, null);
    store.prepareZap(id);
    store.commitZap();
    expect(shadow.rootRoleWord(a)).toBe((LEVEL4 | PAGE_ROLE.INVALID) >>> 0);
    expect(shadow.isObsoleteRoot(a)).toBe(true);
    expect(shadow.isRootStale(a)).toBe(true);
    shadow.putRoot(a);
    expect(store.isLive(id)).toBe(false);
    expect(meter.byName("ROOT_DESTROY")).toBe(1);
  });

  it("builds a PAE root from the present, visible PDPTEs and frees its page on put", () => {
    const { shadow, store, allocator } = setup();
    const pdptes = [0x7001, 0, 0x9000_0001, 0x8001]; // the third names gfn 0x90000: no memslot
    const root = shadow.allocShadowRoots(PAE, 0x6000, pdptes);
    expect(shadow.isSpecialRoot(root)).toBe(true);
    expect(shadow.rootRoleWord(root)).toBe(NO_SHADOW_PAGE);
    expect(shadow.isObsoleteRoot(root)).toBe(true);
    expect(shadow.memory.read32(root + 8)).toBe(0);
    expect(shadow.memory.read32(root + 16)).toBe(0);
    const sub = store.describe(store.idOfHostPage((shadow.memory.read32(root) & ~0xfff) >>> 0));
    expect(sub).toMatchObject({ gfn: 7, level: 2, rootCount: 1, writeTracked: true });
    expect(sub.role).toBe((PAE & ~0xf) | 2);
    expect(shadow.isRootStale(root)).toBe(false);
    store.prepareZap(sub.id);
    expect(shadow.isRootStale(root)).toBe(true);
    const inUse = allocator.inUse;
    shadow.putRoot(root);
    expect(shadow.isSpecialRoot(root)).toBe(false);
    expect(allocator.inUse).toBe(inUse - 2); // the pae_root page and the invalid level-2 root
  });

  it("gives the quarters of a 32-bit guest's directory to four level-2 roots", () => {
    const { shadow, store } = setup();
    const role = (PAE | PAGE_ROLE.HAS_4_BYTE_GPTE) >>> 0;
    const root = shadow.allocShadowRoots(role, 0x6000, null);
    for (let i = 0; i < 4; i++) {
      const sub = store.describe(store.idOfHostPage((shadow.memory.read32(root + i * 8) & ~0xfff) >>> 0));
      expect(sub.gfn).toBe(6);
      expect((sub.role & PAGE_ROLE.QUADRANT_MASK) >>> PAGE_ROLE.QUADRANT_SHIFT).toBe(i);
    }
  });

  it("refuses roles it cannot build, and a PAE root above 4 GiB", () => {
    const { shadow } = setup();
    expect(() => shadow.allocShadowRoots(0x3784, 0x5000, null)).toThrow(/direct/);
    expect(() => shadow.allocShadowRoots(0x3702, 0x5000, null)).toThrow(/level 2/);
    expect(() => shadow.allocShadowRoots(PAE, 0x5000, null)).toThrow(/PDPTE/);
    expect(() => shadow.allocDirectRoots(LEVEL4)).toThrow(/not direct/);
    expect(() => shadow.putRoot(0x12_3000)).toThrow(/not a shadow-MMU root/);
    expect(() => new ShadowEptMmu(shadow)).toThrow(/EPT format/);
    expect(() => new ShadowPagingMmu(setup(SPTE_FORMAT.EPT).shadow)).toThrow(/X86 format/);

    const memory = new SparseMemory();
    const allocator = new HostPageAllocator(memory, { base: 2 ** 33, pages: 16, zeroed: true });
    const memslots = new Memslots();
    memslots.add({ baseGfn: 0, npages: 16, hostBase: 0 });
    const store = new ShadowPageStore({ allocator, memslots });
    const high = new ShadowMmu({ store, memslots, format: SPTE_FORMAT.X86 });
    expect(() => high.allocDirectRoots(0x1783)).toThrow(/below 4 GiB/);
    expect(allocator.inUse).toBe(0);
  });

  it("uses one dummy root for every invisible root gfn", () => {
    const { shadow, allocator } = setup();
    const dummy = shadow.allocShadowRoots(LEVEL4, 0x7000_0000, null);
    expect(shadow.isDummyRoot(dummy)).toBe(true);
    expect(shadow.allocShadowRoots(PAE, 0x7000_0000, null)).toBe(dummy);
    expect(shadow.isRootStale(dummy)).toBe(true);
    expect(shadow.fetch(dummy, 0, 0, 1, 0, 7, 0, false)).toBe(2); // RETRY
    shadow.putRoot(dummy);
    expect(allocator.inUse).toBe(1);
  });
});

describe("ShadowMmu write tracking", () => {
  it("tells the owner of other mappings when a gfn becomes shadowed, once", () => {
    const gfns: number[] = [];
    const { shadow } = setup(SPTE_FORMAT.X86, (gfn) => gfns.push(gfn) > 0);
    shadow.allocShadowRoots(LEVEL4, 0x5000, null);
    shadow.allocShadowRoots(LEVEL4 & ~PAGE_ROLE.CR0_WP, 0x5000, null); // a second page for gfn 5
    shadow.allocShadowRoots(LEVEL4, 0x6000, null);
    expect(gfns).toEqual([5, 6]);
  });

  it("ignores writes to gfns it shadows nothing for, and counts the others", () => {
    const { shadow, meter } = setup();
    shadow.allocShadowRoots(LEVEL4, 0x5000, null);
    expect(shadow.trackedWrite(0x9000, 8)).toBe(0);
    expect(shadow.trackedWrite(0x5008, 8)).toBe(1);
    expect(meter.byName("TRACKED_WRITE")).toBe(1);
    expect(shadow.shadowPagesOf(5)).toHaveLength(1);
    expect(() => shadow.trackedWrite(0x5000, 0)).toThrow(RangeError);
  });

  it("refuses to build under a PAE root whose entry is empty (the PDPTEs changed without a reload)", () => {
    const { shadow } = setup();
    const root = shadow.allocShadowRoots(PAE, 0x6000, [0x7001, 0, 0, 0]);
    expect(() => shadow.fetch(root, 0x4000_0000, 0, 1, 0x10, 7, 0, false)).toThrow(/reload the root/);
  });

  it("counts SPTE writes and shadow pages the way the TDP MMU does", () => {
    const f = nestedEptFixture();
    f.builder.map(0x1000, 0x40_0000);
    f.l2Access(0x1000, EPT_ACCESS.WRITE);
    // Three links (PML4E, PDPTE, PDE) and one leaf.
    expect(f.meter.byName("SPTE_WRITE")).toBe(4);
    expect(f.meter.byName("SHADOW_PAGE_ALLOC")).toBe(4);
    expect(f.meter.byName("SHADOW_PAGE_LOOKUP")).toBe(4);
  });
});
