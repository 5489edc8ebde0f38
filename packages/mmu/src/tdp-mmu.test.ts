import { CountingMeter } from "@nestvisor/vmx";
import {
  AD_UPDATE,
  createEptContext,
  DenseMemory,
  EPT_ACCESS,
  EPT_MEMORY_TYPE,
  EPT_OUTCOME,
  EptWalker,
  encodeEptPointer,
  type Gpa,
  gpa,
  MODERN_EPT_CAPABILITIES,
  SparseMemory,
} from "@nestvisor/x86-arch";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { HostPageAllocator } from "./host-page-allocator";
import { Memslots } from "./memslots";
import { MMU_EVENTS } from "./mmu-events";
import { PAGE_ROLE } from "./page-role";
import { ShadowPageStore } from "./shadow-page-store";
import { SPTE_HI, SPTE_LO } from "./spte";
import { TDP_MAP_RESULT, TdpMmu, type TdpMmuOptions } from "./tdp-mmu";

/** TDP root roles (kvm-mmu.md §2.9): 4-level, A/D on; the same for L2; A/D off; SMM. */
const TDP_ROOT = 0x00003784;
const TDP_ROOT_L2 = 0x00023784;
const TDP_ROOT_NO_AD = (TDP_ROOT | PAGE_ROLE.AD_DISABLED) >>> 0;
const TDP_ROOT_SMM = (TDP_ROOT | (1 << PAGE_ROLE.SMM_SHIFT)) >>> 0;

const GIB = 2 ** 30;

function setup(options: Partial<Omit<TdpMmuOptions, "store" | "memslots">> = {}, tablePages = 1024) {
  const memory = new DenseMemory(0x10_0000 + tablePages * 4096);
  const allocator = new HostPageAllocator(memory, { base: 0x10_0000, pages: tablePages, zeroed: true });
  const meter = new CountingMeter([MMU_EVENTS]);
  const memslots = new Memslots();
  const store = new ShadowPageStore({ allocator, meter, memslots });
  const tdp = new TdpMmu({ store, memslots, meter, ...options });
  const walker = new EptWalker(memory, { adUpdate: AD_UPDATE.NONE });
  const walk = (root: number, address: number, access: number = EPT_ACCESS.READ, adEnabled = true) => {
    const eptp = encodeEptPointer({
      memoryType: EPT_MEMORY_TYPE.WB,
      walkLength: 4,
      accessedDirty: adEnabled,
      supervisorShadowStack: false,
      root,
    });
    const ctx = createEptContext({ eptpLo: eptp.lo, eptpHi: eptp.hi }, MODERN_EPT_CAPABILITIES, 46);
    walker.walk(ctx, address, access);
    return walker.result;
  };
  return { memory, allocator, meter, memslots, store, tdp, walk };
}

describe("TdpMmu roots (kvm: kvm_tdp_mmu_alloc_root / kvm_tdp_mmu_put_root)", () => {
  it("reuses a valid root with an equal role word and makes a new one otherwise", () => {
    const { tdp, meter } = setup();
    const a = tdp.allocRoot(TDP_ROOT);
    expect(tdp.rootRefCount(a)).toBe(2); // one for the vCPU, one kept by the TDP MMU
    expect(tdp.allocRoot(TDP_ROOT)).toBe(a);
    expect(tdp.rootRefCount(a)).toBe(3);
    const l2 = tdp.allocRoot(TDP_ROOT_L2);
    const smm = tdp.allocRoot(TDP_ROOT_SMM);
    expect(new Set([a, l2, smm]).size).toBe(3);
    expect(tdp.roots()).toEqual([smm, l2, a]);
    expect(meter.byName("ROOT_ALLOC")).toBe(3);
    expect(meter.byName("SHADOW_PAGE_ALLOC")).toBe(3);
    expect(tdp.getRoot(a)).toBe(true);
    expect(tdp.rootRefCount(a)).toBe(4);
  });

  it("starts a root at one reference without preserveTdpRoots (before v6.4)", () => {
    const { tdp } = setup({ preserveTdpRoots: false });
    expect(tdp.rootRefCount(tdp.allocRoot(TDP_ROOT))).toBe(1);
  });

  it("refuses indirect, invalid and non-EPT-level roles, and unknown roots", () => {
    const { tdp } = setup();
    expect(() => tdp.allocRoot(0x00003704)).toThrow(/direct/);
    expect(() => tdp.allocRoot(TDP_ROOT | PAGE_ROLE.INVALID)).toThrow(/valid/);
    expect(() => tdp.allocRoot((TDP_ROOT & ~0xf) | 3)).toThrow(/level 3/);
    expect(() => tdp.putRoot(0x12_3000)).toThrow(/not a TDP MMU root/);
  });

  it("with preserveTdpRoots, keeps the tree when the last vCPU reference goes (v6.4+)", () => {
    const { tdp, meter, memslots, walk } = setup();
    memslots.add({ baseGfn: 0, npages: 1024, hostBase: 4 * GIB });
    const root = tdp.allocRoot(TDP_ROOT);
    tdp.map(root, gpa(0x3000), false);
    tdp.putRoot(root);
    expect(tdp.rootRefCount(root)).toBe(1);
    expect(meter.byName("ROOT_DESTROY")).toBe(0);
    expect(meter.byName("SHADOW_PAGE_ZAP")).toBe(0);
    expect(tdp.allocRoot(TDP_ROOT)).toBe(root);
    expect(meter.byName("ROOT_ALLOC")).toBe(1);
    expect(walk(root, 0x3008).hpa).toBe(4 * GIB + 0x3008);
    expect(tdp.map(root, gpa(0x3000), false)).toBe(TDP_MAP_RESULT.SPURIOUS);
  });

  it("without preserveTdpRoots, destroys the whole tree with the last vCPU reference (before v6.4)", () => {
    const { tdp, meter, memslots, allocator, walk } = setup({ preserveTdpRoots: false });
    memslots.add({ baseGfn: 0, npages: 0x100000, hostBase: 4 * GIB });
    const root = tdp.allocRoot(TDP_ROOT);
    expect(tdp.allocRoot(TDP_ROOT)).toBe(root); // a second vCPU shares it
    for (const address of [0x1000, 0x20_0000, 0x4000_0000, 0x8000_0000]) tdp.map(root, gpa(address), true);
    const pages = allocator.inUse;
    expect(pages).toBe(1 + 1 + 3 + 4); // root, one PDPT, three PDs, four PTs
    tdp.putRoot(root);
    expect(meter.byName("ROOT_DESTROY")).toBe(0);
    tdp.putRoot(root);
    expect(meter.byName("ROOT_DESTROY")).toBe(1);
    expect(meter.byName("SHADOW_PAGE_ZAP")).toBe(pages);
    expect(allocator.inUse).toBe(0);
    expect(tdp.roots()).toEqual([]);
    const again = tdp.allocRoot(TDP_ROOT);
    expect(meter.byName("ROOT_ALLOC")).toBe(2);
    expect(walk(again, 0x1000).ok).toBe(false);
  });

  it("invalidation zaps the tree but keeps a referenced root, empty and invalid, until it is put", () => {
    for (const preserveTdpRoots of [true, false]) {
      const { tdp, store, meter, memslots, allocator, walk } = setup({ preserveTdpRoots });
      const slot = memslots.add({ baseGfn: 0, npages: 1024, hostBase: 4 * GIB });
      memslots.add({ baseGfn: 0x10000, npages: 16, hostBase: 8 * GIB });
      const root = tdp.allocRoot(TDP_ROOT);
      tdp.map(root, gpa(0x5000), true);
      const before = allocator.inUse;
      memslots.delete(slot); // kvm_mmu_zap_all_fast
      expect(store.isInvalid(store.idOfHostPage(root))).toBe(true);
      expect(tdp.rootRefCount(root)).toBe(1); // the vCPU's
      expect(allocator.inUse).toBe(1);
      expect(meter.byName("SHADOW_PAGE_ZAP")).toBe(before - 1);
      expect(meter.byName("ROOT_DESTROY")).toBe(0);
      expect(walk(root, 0x5000).ok).toBe(false);
      expect(tdp.map(root, gpa(0x1000_0000), false)).toBe(TDP_MAP_RESULT.RETRY);
      const fresh = tdp.allocRoot(TDP_ROOT); // the invalid root's word differs: a new root
      expect(fresh).not.toBe(root);
      tdp.putRoot(root);
      expect(meter.byName("ROOT_DESTROY")).toBe(1);
      expect(tdp.roots()).toEqual([fresh]);
      expect(store.freeObsoleteRootsRequests).toBe(1);
    }
  });

  it("with preserveTdpRoots, invalidation destroys a root no vCPU references", () => {
    const { tdp, meter, memslots, allocator } = setup();
    const slot = memslots.add({ baseGfn: 0, npages: 1024, hostBase: 4 * GIB });
    const root = tdp.allocRoot(TDP_ROOT);
    tdp.map(root, gpa(0x5000), false);
    tdp.putRoot(root);
    memslots.delete(slot);
    expect(meter.byName("ROOT_DESTROY")).toBe(1);
    expect(meter.byName("SHADOW_PAGE_ZAP")).toBe(4);
    expect(allocator.inUse).toBe(0);
    expect(tdp.roots()).toEqual([]);
  });
});

describe("TdpMmu.map (kvm: kvm_tdp_mmu_map)", () => {
  it("builds the missing tables and a writable WB leaf, counting the work", () => {
    const { tdp, meter, memslots, walk, store } = setup();
    memslots.add({ baseGfn: 0x40300, npages: 0x100, hostBase: 4 * GIB + 0x40_0000 });
    const root = tdp.allocRoot(TDP_ROOT);
    expect(tdp.map(root, gpa(0x4030_2abc), false)).toBe(TDP_MAP_RESULT.FIXED);
    expect(meter.byName("TDP_FAULT")).toBe(1);
    expect(meter.byName("SHADOW_PAGE_ALLOC")).toBe(4); // root + PDPT + PD + PT
    expect(meter.byName("SPTE_WRITE")).toBe(4); // three links and the leaf
    const r = walk(root, 0x4030_2abc, EPT_ACCESS.WRITE);
    expect(r.ok).toBe(true);
    expect(r.hpa).toBe(4 * GIB + 0x40_2abc);
    expect(r.pageSize).toBe(4096);
    expect(r.permissions & 7).toBe(7);
    expect(r.memoryType).toBe(EPT_MEMORY_TYPE.WB);
    expect(r.ignorePat).toBe(true);
    expect(r.leafLo & (SPTE_LO.ACCESSED | SPTE_LO.DIRTY)).toBe(SPTE_LO.ACCESSED | SPTE_LO.DIRTY);
    expect(r.leafHi & (SPTE_HI.HOST_WRITABLE | SPTE_HI.MMU_WRITABLE)).toBe(
      SPTE_HI.HOST_WRITABLE | SPTE_HI.MMU_WRITABLE,
    );
    // Each table has the root's role one level down and the first gfn its parent entry maps.
    const tables = [1, 2, 3].map((i) => store.describe(store.idOfHostPage(store.allocator.pageAddress(i))));
    expect(tables.map((t) => [t.level, t.gfn, t.role, t.parentCount, t.tdpMmuPage])).toEqual([
      [3, 0, (TDP_ROOT & ~0xf) | 3, 1, true],
      [2, 0x40000, (TDP_ROOT & ~0xf) | 2, 1, true],
      [1, 0x40200, (TDP_ROOT & ~0xf) | 1, 1, true],
    ]);
    // A neighbour in the same PT needs one more SPTE only.
    expect(tdp.map(root, gpa(0x4030_3000), true)).toBe(TDP_MAP_RESULT.FIXED);
    expect(meter.byName("SPTE_WRITE")).toBe(5);
    expect(tdp.map(root, gpa(0x4030_3000), true)).toBe(TDP_MAP_RESULT.SPURIOUS);
    expect(meter.byName("TDP_FAULT")).toBe(3);
  });

  it("maps read-only slots without W and sends writes to emulation; no slot is MMIO", () => {
    const { tdp, memslots, walk } = setup();
    memslots.add({ baseGfn: 0x10, npages: 4, hostBase: 0x7000_0000, readOnly: true });
    const root = tdp.allocRoot(TDP_ROOT);
    expect(tdp.map(root, gpa(0x11000), true)).toBe(TDP_MAP_RESULT.EMULATE_READ_ONLY);
    expect(walk(root, 0x11000).ok).toBe(false);
    expect(tdp.map(root, gpa(0x11000), false)).toBe(TDP_MAP_RESULT.FIXED);
    const r = walk(root, 0x11000);
    expect(r.ok).toBe(true);
    expect(r.permissions & 7).toBe(SPTE_LO.READABLE | SPTE_LO.EXECUTABLE);
    expect(r.leafHi & SPTE_HI.HOST_WRITABLE).toBe(0);
    expect(walk(root, 0x11000, EPT_ACCESS.WRITE).outcome).toBe(EPT_OUTCOME.VIOLATION);
    expect(tdp.map(root, gpa(0x9000_0000), false)).toBe(TDP_MAP_RESULT.EMULATE_MMIO);
    expect(() => tdp.map(root, gpa(2 ** 48), false)).toThrow(/beyond a 4-level/);
  });

  it("builds A/D-disabled entries for an A/D-disabled root", () => {
    const { tdp, memslots, walk } = setup();
    memslots.add({ baseGfn: 0, npages: 16, hostBase: 0x7000_0000 });
    const root = tdp.allocRoot(TDP_ROOT_NO_AD);
    tdp.map(root, gpa(0x2000), true);
    const r = walk(root, 0x2000, EPT_ACCESS.WRITE, false);
    expect(r.ok).toBe(true);
    expect(r.leafLo & (SPTE_LO.ACCESSED | SPTE_LO.DIRTY)).toBe(0);
    expect(r.leafHi & SPTE_HI.TDP_AD_DISABLED).toBe(SPTE_HI.TDP_AD_DISABLED);
  });

  it("maps 2-MiB leaves only where a whole aligned 2 MiB of one slot is 2-MiB aligned in host memory", () => {
    const { tdp, memslots, walk, meter } = setup({ hugePages: true });
    memslots.add({ baseGfn: 0x200, npages: 0x400, hostBase: 4 * GIB }); // aligned, 2 × 2 MiB
    memslots.add({ baseGfn: 0x1000, npages: 0x200, hostBase: 4 * GIB + 0x1000 }); // misaligned host
    memslots.add({ baseGfn: 0x2100, npages: 0x200, hostBase: 6 * GIB + 0x10_0000 }); // straddles
    const root = tdp.allocRoot(TDP_ROOT);
    tdp.map(root, gpa(0x2f_1234), false);
    const big = walk(root, 0x2f_1234);
    expect(big.pageSize).toBe(2 * 1024 * 1024);
    expect(big.hpa).toBe(4 * GIB + 0x0f_1234);
    expect(walk(root, 0x20_0000).hpa).toBe(4 * GIB);
    expect(meter.byName("SHADOW_PAGE_ALLOC")).toBe(3); // root, PDPT, PD: no PT
    tdp.map(root, gpa(0x100_0000), false);
    expect(walk(root, 0x100_0000).pageSize).toBe(4096);
    tdp.map(root, gpa(0x220_0000), false);
    expect(walk(root, 0x220_0000).pageSize).toBe(4096);
  });

  it("works with its tables above 4 GiB of host memory (address bits in the high word)", () => {
    const memory = new SparseMemory();
    const allocator = new HostPageAllocator(memory, { base: 0x3_0000_0000, pages: 64, zeroed: true });
    const memslots = new Memslots();
    const store = new ShadowPageStore({ allocator, memslots });
    const tdp = new TdpMmu({ store, memslots, preserveTdpRoots: false });
    const slot = memslots.add({ baseGfn: 0, npages: 0x100000, hostBase: 0x5_0000_0000 });
    const root = tdp.allocRoot(TDP_ROOT);
    for (const address of [0x1000, 0x8000_0000, 0xc020_0000]) tdp.map(root, gpa(address), true);
    const walker = new EptWalker(memory, { adUpdate: AD_UPDATE.NONE });
    const eptp = encodeEptPointer({
      memoryType: EPT_MEMORY_TYPE.WB,
      walkLength: 4,
      accessedDirty: true,
      supervisorShadowStack: false,
      root,
    });
    const ctx = createEptContext({ eptpLo: eptp.lo, eptpHi: eptp.hi }, MODERN_EPT_CAPABILITIES, 46);
    expect(walker.walk(ctx, 0xc020_0010, EPT_ACCESS.WRITE)).toBe(true);
    expect(walker.result.hpa).toBe(0x5_c020_0010);
    expect(allocator.inUse).toBe(1 + 1 + 3 + 3);
    tdp.zapGfnRange(0, 0x100000);
    expect(walker.walk(ctx, 0xc020_0010, EPT_ACCESS.READ)).toBe(false);
    memslots.delete(slot);
    tdp.putRoot(root);
    expect(allocator.inUse).toBe(0);
    expect(store.tdpPages).toBe(0);
  });

  it("zaps the leaves of a gfn range in valid roots and keeps the tables", () => {
    const { tdp, memslots, walk, allocator, meter } = setup();
    memslots.add({ baseGfn: 0, npages: 64, hostBase: 4 * GIB });
    const root = tdp.allocRoot(TDP_ROOT);
    for (let gfn = 0; gfn < 64; gfn++) tdp.map(root, gpa(gfn * 4096), false);
    const pages = allocator.inUse;
    expect(tdp.zapGfnRange(10, 20)).toBe(true);
    expect(allocator.inUse).toBe(pages);
    for (let gfn = 0; gfn < 64; gfn++) expect(walk(root, gfn * 4096).ok).toBe(gfn < 10 || gfn >= 20);
    expect(tdp.zapGfnRange(10, 20)).toBe(false);
    expect(tdp.zapGfnRange(5, 5)).toBe(false);
    expect(meter.byName("TLB_FLUSH_REQUEST")).toBe(1);
  });
});

interface SlotPlan {
  readonly gap: number;
  readonly npages: number;
  readonly readOnly: boolean;
}

const slotPlans = fc.array(
  fc.record({
    gap: fc.oneof(fc.integer({ min: 0, max: 600 }), fc.integer({ min: 0, max: 2 ** 26 })),
    npages: fc.integer({ min: 1, max: 3000 }),
    readOnly: fc.boolean(),
  }),
  { minLength: 1, maxLength: 4 },
);
const faultPlans = fc.array(
  fc.record({
    slot: fc.nat(),
    at: fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }),
    byte: fc.integer({ min: 0, max: 4095 }),
    write: fc.boolean(),
  }),
  { minLength: 1, maxLength: 60 },
);

/** Lays the planned slots out upwards from gfn 0x80, each backed by its own GiB of host memory. */
function layout(memslots: Memslots, plans: readonly SlotPlan[]) {
  let next = 0x80;
  return plans.map((plan, i) => {
    const baseGfn = next + plan.gap;
    next = baseGfn + plan.npages;
    const hostBase = (4 + i) * GIB + (i % 2) * 0x20_0000;
    const id = memslots.add({ baseGfn, npages: plan.npages, hostBase, readOnly: plan.readOnly });
    return { id, baseGfn, npages: plan.npages, hostBase, readOnly: plan.readOnly };
  });
}

describe("TdpMmu property: the EPT tables translate every faulted gpa to its memslot page", () => {
  it("after random faults, random memslot deletes and refaults on a new root", () => {
    fc.assert(
      fc.property(
        slotPlans,
        faultPlans,
        fc.array(fc.nat(), { maxLength: 3 }),
        fc.boolean(),
        fc.boolean(),
        (plans, faultsPlanned, deletions, hugePages, adDisabled) => {
          const { tdp, memslots, walk, allocator, store, meter } = setup({ hugePages }, 2048);
          const slots = layout(memslots, plans);
          const faults = faultsPlanned.map((f) => {
            const slot = slots[f.slot % slots.length]!;
            const gfn = slot.baseGfn + Math.floor(f.at * slot.npages);
            return {
              slot,
              address: gfn * 4096 + f.byte,
              expected: slot.hostBase + (gfn - slot.baseGfn) * 4096 + f.byte,
              write: f.write,
            };
          });
          const role = adDisabled ? TDP_ROOT_NO_AD : TDP_ROOT;
          const mappedPages = new Set<number>();
          const faultAll = (root: number, alive: (slotId: number) => boolean) => {
            mappedPages.clear();
            for (const f of faults) {
              const result = tdp.map(root, f.address as Gpa, f.write);
              if (!alive(f.slot.id)) {
                expect(result).toBe(TDP_MAP_RESULT.EMULATE_MMIO);
              } else if (f.slot.readOnly && f.write) {
                expect(result).toBe(TDP_MAP_RESULT.EMULATE_READ_ONLY);
              } else {
                expect([TDP_MAP_RESULT.FIXED, TDP_MAP_RESULT.SPURIOUS]).toContain(result);
                mappedPages.add(Math.floor(f.address / 4096));
              }
            }
          };
          const check = (root: number, alive: (slotId: number) => boolean) => {
            for (const f of faults) {
              const r = walk(root, f.address, EPT_ACCESS.READ, !adDisabled);
              const mapped = mappedPages.has(Math.floor(f.address / 4096));
              if (!alive(f.slot.id) || !mapped) {
                // Only a huge leaf of a sibling fault can cover an unfaulted page of a live slot.
                if (!alive(f.slot.id) || !hugePages) expect(r.ok).toBe(false);
                continue;
              }
              expect(r.ok).toBe(true);
              expect(r.hpa).toBe(f.expected);
              expect(r.permissions & 7).toBe(f.slot.readOnly ? 5 : 7);
              expect(walk(root, f.address, EPT_ACCESS.WRITE, !adDisabled).ok).toBe(!f.slot.readOnly);
            }
            expect(allocator.inUse).toBe(store.tdpPages);
            expect(meter.byName("SHADOW_PAGE_ALLOC") - meter.byName("SHADOW_PAGE_ZAP")).toBe(store.tdpPages);
          };

          let root = tdp.allocRoot(role);
          const deleted = new Set<number>();
          const alive = (id: number) => !deleted.has(id);
          faultAll(root, alive);
          check(root, alive);

          for (const pick of deletions) {
            const victim = slots[pick % slots.length]!;
            if (deleted.has(victim.id)) continue;
            memslots.delete(victim.id);
            deleted.add(victim.id);
            // The old root is invalid and empty: nothing translates through it any more.
            expect(tdp.map(root, faults[0]!.address as Gpa, false)).toBe(TDP_MAP_RESULT.RETRY);
            for (const f of faults)
              expect(walk(root, f.address, EPT_ACCESS.READ, !adDisabled).ok).toBe(false);
            tdp.putRoot(root);
            root = tdp.allocRoot(role);
            faultAll(root, alive);
            check(root, alive);
          }
          expect(tdp.roots()).toEqual([root]);
        },
      ),
      { numRuns: 60 },
    );
  });

  it("zapping a gfn range removes exactly the leaves that overlap it", () => {
    fc.assert(
      fc.property(
        slotPlans,
        faultPlans,
        fc.nat(),
        fc.integer({ min: 1, max: 2000 }),
        fc.boolean(),
        (plans, faultsPlanned, startPick, length, hugePages) => {
          const { tdp, memslots, walk } = setup({ hugePages }, 2048);
          const slots = layout(memslots, plans);
          const root = tdp.allocRoot(TDP_ROOT);
          const mapped: { address: number; firstGfn: number; pages: number }[] = [];
          for (const f of faultsPlanned) {
            const slot = slots[f.slot % slots.length]!;
            const address = (slot.baseGfn + Math.floor(f.at * slot.npages)) * 4096 + f.byte;
            if (tdp.map(root, address as Gpa, f.write) === TDP_MAP_RESULT.EMULATE_READ_ONLY) continue;
            const r = walk(root, address);
            const pages = r.pageSize / 4096;
            mapped.push({ address, firstGfn: Math.floor(address / r.pageSize) * pages, pages });
          }
          const last = slots[slots.length - 1]!;
          const start = startPick % (last.baseGfn + last.npages);
          tdp.zapGfnRange(start, start + length);
          for (const m of mapped) {
            const overlaps = m.firstGfn < start + length && start < m.firstGfn + m.pages;
            expect(walk(root, m.address).ok).toBe(!overlaps);
          }
        },
      ),
      { numRuns: 60 },
    );
  });
});
