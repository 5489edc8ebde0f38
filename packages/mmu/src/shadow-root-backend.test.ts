import { CountingMeter } from "@nestvisor/vmx";
import { DenseMemory } from "@nestvisor/x86-arch";
import { describe, expect, it } from "vitest";
import { HostPageAllocator } from "./host-page-allocator";
import { Memslots } from "./memslots";
import { MMU_EVENTS } from "./mmu-events";
import { PAGE_ROLE } from "./page-role";
import { NO_SHADOW_PAGE } from "./root-backend";
import { ShadowMmu } from "./shadow-mmu";
import { ShadowPageStore } from "./shadow-page-store";
import { ShadowRootBackend } from "./shadow-root-backend";
import { SPTE_FORMAT } from "./shadow-spte";
import { TdpMmu } from "./tdp-mmu";

/** kvm-mmu.md §2.9: a TDP root, a shadow-EPT root, a direct PAE shadow-paging root, a PAE guest's shadow root. */
const TDP_ROOT = 0x00003784;
const SHADOW_EPT_ROOT = 0x00020704;
const DIRECT_PAE = 0x00001783;
const PAE_SHADOW = 0x00003703;

function setup(withTdp: boolean) {
  const memory = new DenseMemory(0x200_0000);
  const allocator = new HostPageAllocator(memory, { base: 0x10_0000, pages: 256, zeroed: true });
  const meter = new CountingMeter([MMU_EVENTS]);
  const memslots = new Memslots();
  memslots.add({ baseGfn: 0, npages: 0x1000, hostBase: 0x100_0000 });
  const store = new ShadowPageStore({ allocator, meter, memslots, tdpEnabled: withTdp });
  const shadow = new ShadowMmu({
    store,
    memslots,
    format: withTdp ? SPTE_FORMAT.EPT : SPTE_FORMAT.X86,
    meter,
  });
  const tdp = withTdp ? new TdpMmu({ store, memslots, meter }) : null;
  const backend = new ShadowRootBackend(tdp !== null ? { shadow, tdp } : { shadow });
  return { memory, store, shadow, tdp, backend, meter, memslots };
}

describe("ShadowRootBackend (kvm: mmu_alloc_*_roots, mmu_free_root_page, is_obsolete_root)", () => {
  it("with TDP, serves direct roots from the TDP MMU and shadow-EPT roots from the shadow MMU", () => {
    const { backend, tdp, store, memslots } = setup(true);
    const direct = backend.allocDirectRoot(TDP_ROOT);
    expect(tdp!.roots()).toEqual([direct]);
    const shadowRoot = backend.allocShadowRoot(SHADOW_EPT_ROOT, 0x30_001e);
    expect(store.isTdpPage(store.idOfHostPage(shadowRoot))).toBe(false);
    expect(store.gfn(store.idOfHostPage(shadowRoot))).toBe(0x300);
    expect(backend.rootRoleWord(direct)).toBe(TDP_ROOT);
    expect(backend.rootRoleWord(shadowRoot)).toBe(SHADOW_EPT_ROOT);
    backend.putRoot(direct);
    expect(tdp!.rootRefCount(direct)).toBe(1); // the TDP MMU keeps its own reference (v6.4+)
    backend.putRoot(shadowRoot);
    expect(store.rootCount(store.idOfHostPage(shadowRoot))).toBe(0);
    memslots.add({ baseGfn: 0x2000, npages: 1, hostBase: 0x180_0000 });
    memslots.delete(1); // kvm_mmu_zap_all_fast
    expect(backend.isObsoleteRoot(direct)).toBe(true);
    expect(backend.isObsoleteRoot(shadowRoot)).toBe(true);
  });

  it("without TDP, builds legacy direct roots: four level-2 direct pages at gfn i << 18 under a pae_root", () => {
    const { backend, shadow, store } = setup(false);
    const root = backend.allocDirectRoot(DIRECT_PAE);
    expect(shadow.isSpecialRoot(root)).toBe(true);
    expect(backend.rootRoleWord(root)).toBe(NO_SHADOW_PAGE);
    for (let i = 0; i < 4; i++) {
      const sub = store.describe(store.idOfHostPage((shadow.memory.read32(root + i * 8) & ~0xfff) >>> 0));
      expect(sub).toMatchObject({ gfn: i << 18, level: 2, writeTracked: false, rootCount: 1 });
      expect(sub.role & PAGE_ROLE.DIRECT).not.toBe(0);
    }
    const level4 = backend.allocDirectRoot((DIRECT_PAE & ~0xf) | 4);
    expect(store.describe(store.idOfHostPage(level4))).toMatchObject({ gfn: 0, level: 4 });
    expect(() => setup(false).backend.putRoot(setup(true).backend.allocDirectRoot(TDP_ROOT))).toThrow();
  });

  it("reads a PAE guest's PDPTEs from guest memory at CR3, or takes them from the option", () => {
    const { backend, shadow, store } = setup(false);
    shadow.guestMemory.write64(0x5020, 0x7001, 0);
    shadow.guestMemory.write64(0x5038, 0x8001, 0);
    const root = backend.allocShadowRoot(PAE_SHADOW, 0x5020);
    const gfnAt = (r: number, i: number) => {
      const lo = shadow.memory.read32(r + i * 8);
      return lo === 0 ? -1 : store.gfn(store.idOfHostPage((lo & ~0xfff) >>> 0));
    };
    expect([0, 1, 2, 3].map((i) => gfnAt(root, i))).toEqual([7, -1, -1, 8]);
    const withRegisters = new ShadowRootBackend({ shadow, pdptes: () => [0, 0x9001, 0, 0] });
    const other = withRegisters.allocShadowRoot(PAE_SHADOW, 0x5020);
    expect([0, 1, 2, 3].map((i) => gfnAt(other, i))).toEqual([-1, 9, -1, -1]);
  });
});
