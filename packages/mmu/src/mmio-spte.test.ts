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
  gpa,
  MODERN_EPT_CAPABILITIES,
} from "@nestvisor/x86-arch";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { HostPageAllocator } from "./host-page-allocator";
import { Memslots } from "./memslots";
import { MmioCache } from "./mmio-cache";
import {
  isMmioSpte,
  mmioSpteAccess,
  mmioSpteGeneration,
  mmioSpteGfn,
  mmioSpteHi,
  mmioSpteLo,
} from "./mmio-spte";
import { MMU_EVENTS } from "./mmu-events";
import { ACC } from "./page-role";
import { ShadowPageStore } from "./shadow-page-store";
import { SPTE_FORMAT } from "./shadow-spte";
import { isShadowPresentSpte, TerminalSpte } from "./spte";
import { TDP_MAP_RESULT, TdpMmu } from "./tdp-mmu";

describe("MMIO SPTEs (kvm: make_mmio_spte, is_mmio_spte, get_mmio_spte_*)", () => {
  it("keep the gfn, the 19-bit generation and (x86) the W/U rights, and are never shadow-present", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 2 ** 34 - 1 }),
        fc.integer({ min: 0, max: 0x7ffff }),
        fc.integer({ min: 0, max: 7 }),
        fc.constantFrom(SPTE_FORMAT.EPT, SPTE_FORMAT.X86),
        (gfn, generation, access, format) => {
          const lo = mmioSpteLo(format, gfn, generation, access);
          const hi = mmioSpteHi(format, gfn, generation);
          expect(isMmioSpte(format, lo, hi)).toBe(true);
          expect(isShadowPresentSpte(lo)).toBe(false);
          expect(mmioSpteGfn(lo, hi)).toBe(gfn);
          expect(mmioSpteGeneration(lo, hi)).toBe(generation);
          expect(mmioSpteAccess(format, lo)).toBe(
            format === SPTE_FORMAT.EPT ? 0 : access & (ACC.WRITE | ACC.USER),
          );
        },
      ),
    );
  });

  it("EPT format: W and X without R, which the processor reports as an EPT misconfiguration", () => {
    const lo = mmioSpteLo(SPTE_FORMAT.EPT, 0xfec00, 5, 0);
    expect(lo & 7).toBe(6);
    // x86 format: P with bit 51, a reserved bit below 52 physical-address bits.
    const hi = mmioSpteHi(SPTE_FORMAT.X86, 0xfec00, 5);
    expect(hi & (1 << 19)).not.toBe(0);
    expect(mmioSpteLo(SPTE_FORMAT.X86, 0xfec00, 5, ACC.ALL) & 1).toBe(1);
  });
});

describe("TdpMmu and MMIO (kvm: kvm_handle_noslot_fault → tdp_mmu_map_handle_target_level)", () => {
  function setup() {
    const memory = new DenseMemory(0x10_0000 + 256 * 4096);
    const allocator = new HostPageAllocator(memory, { base: 0x10_0000, pages: 256, zeroed: true });
    const meter = new CountingMeter([MMU_EVENTS]);
    const memslots = new Memslots();
    memslots.add({ baseGfn: 0, npages: 256, hostBase: 0 });
    const store = new ShadowPageStore({ allocator, meter, memslots });
    const tdp = new TdpMmu({ store, memslots, meter });
    return { memory, meter, memslots, tdp, root: tdp.allocRoot(0x00003784) };
  }

  it("a fault without a memslot caches a 4-KiB MMIO SPTE and asks for emulation, every time", () => {
    const { memory, meter, tdp, root } = setup();
    const device = gpa(0xfec0_0010);
    expect(tdp.map(root, device, false)).toBe(TDP_MAP_RESULT.EMULATE_MMIO);
    const writes = meter.byName("SPTE_WRITE");
    expect(tdp.map(root, device, true)).toBe(TDP_MAP_RESULT.EMULATE_MMIO);
    expect(meter.byName("SPTE_WRITE")).toBe(writes);
    const t = new TerminalSpte();
    tdp.terminalSpte(root, 0xfec0_0010, t);
    expect(t.level).toBe(1);
    expect(isMmioSpte(SPTE_FORMAT.EPT, t.lo, t.hi)).toBe(true);
    expect(mmioSpteGfn(t.lo, t.hi)).toBe(0xfec00);
    // The processor's walk of the same tables ends in a misconfiguration (SDM 29.3.3.1).
    const eptp = encodeEptPointer({
      memoryType: EPT_MEMORY_TYPE.WB,
      walkLength: 4,
      accessedDirty: true,
      supervisorShadowStack: false,
      root,
    });
    const walker = new EptWalker(memory, { adUpdate: AD_UPDATE.NONE });
    const ctx = createEptContext({ eptpLo: eptp.lo, eptpHi: eptp.hi }, MODERN_EPT_CAPABILITIES, 46);
    walker.walk(ctx, 0xfec0_0010, EPT_ACCESS.READ);
    expect(walker.result.outcome).toBe(EPT_OUTCOME.MISCONFIG);
  });
});

describe("MmioCache (kvm: vcpu_cache_mmio_info / vcpu_match_mmio_* / vcpu_clear_mmio_info)", () => {
  it("matches by gfn or by GVA page under the generation it was made in; clearing forgets the GVA only", () => {
    const cache = new MmioCache();
    expect(cache.matchGpa(0x1000, 0)).toBe(false);
    cache.cache(0x7000_0123, 0xfec00, ACC.ALL, 3, false);
    expect(cache.matchGva(0x7000_0ff0, 3)).toBe(true);
    expect(cache.matchGva(0x7000_0ff0, 4)).toBe(false);
    expect(cache.matchGpa(0xfec0_0010, 3)).toBe(true);
    cache.clear(0x1234_5000);
    expect(cache.matchGva(0x7000_0000, 3)).toBe(true);
    cache.clear(0x7000_0000);
    expect(cache.matchGva(0x7000_0000, 3)).toBe(false);
    expect(cache.matchGpa(0xfec0_0000, 3)).toBe(true);
    // A nested-EPT fault's address is an L2 GPA: no GVA is cached.
    cache.cache(0x7000_0000, 0xfec00, 0, 3, true);
    expect(cache.gva).toBe(0);
  });
});
