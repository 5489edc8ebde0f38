import { CountingMeter } from "@nestvisor/vmx";
import {
  AD_UPDATE,
  createEptContext,
  DenseMemory,
  EPT_ACCESS,
  EPT_MEMORY_TYPE,
  EptWalker,
  encodeEptPointer,
  gpa,
  MODERN_EPT_CAPABILITIES,
} from "@nestvisor/x86-arch";
import { describe, expect, it } from "vitest";
import { HostPageAllocator } from "./host-page-allocator";
import { Memslots } from "./memslots";
import { MMU_EVENTS } from "./mmu-events";
import { SHADOW_FAULT } from "./shadow-fault";
import { ShadowPageStore } from "./shadow-page-store";
import { SPTE_HI, SPTE_LO } from "./spte";
import { TDP_MAP_RESULT, TdpMmu } from "./tdp-mmu";
import { GuestEptBuilder } from "./testing/guest-ept-builder";
import { L1_REGS, L2_CR3 } from "./testing/nested-scenario";
import { realVcpuFixture } from "./testing/real-vcpu-fixture";

/**
 * Write-tracking in the TDP MMU: a gfn the shadow MMU shadows (an EPT12 table of L1's, a guest
 * page table) must not be writable in L1's EPT01, or L1's writes to it would bypass the shadow
 * MMU's zap-on-write (kvm: make_spte → mmu_try_to_unsync_pages returns -EPERM for a write-tracked
 * gfn; kvm_mmu_slot_gfn_write_protect → kvm_tdp_mmu_write_protect_gfn when a gfn becomes tracked).
 */

const TDP_ROOT = 0x00003784;
const GIB = 2 ** 30;

function setup(hugePages = false) {
  const memory = new DenseMemory(0x10_0000 + 256 * 4096);
  const allocator = new HostPageAllocator(memory, { base: 0x10_0000, pages: 256, zeroed: true });
  const meter = new CountingMeter([MMU_EVENTS]);
  const memslots = new Memslots();
  memslots.add({ baseGfn: 0, npages: 0x1000, hostBase: 4 * GIB });
  const store = new ShadowPageStore({ allocator, meter, memslots });
  const tdp = new TdpMmu({ store, memslots, meter, hugePages });
  const walker = new EptWalker(memory, { adUpdate: AD_UPDATE.NONE });
  const allows = (root: number, address: number, access: number) => {
    const eptp = encodeEptPointer({
      memoryType: EPT_MEMORY_TYPE.WB,
      walkLength: 4,
      accessedDirty: true,
      supervisorShadowStack: false,
      root,
    });
    const ctx = createEptContext({ eptpLo: eptp.lo, eptpHi: eptp.hi }, MODERN_EPT_CAPABILITIES, 46);
    return walker.walk(ctx, address, access);
  };
  return { memory, meter, store, tdp, walker, allows };
}

describe("TdpMmu and write-tracked gfns", () => {
  it("maps a tracked gfn without W and emulates a write to it, leaf absent or present", () => {
    const { store, tdp, allows, walker } = setup();
    const root = tdp.allocRoot(TDP_ROOT);
    store.trackGfn(0x42);
    // Not present: mapped read-only and the write emulated at once (kvm: `wrprot && fault->write`
    // in tdp_mmu_map_handle_target_level); returning FIXED would drop the write.
    expect(tdp.map(root, gpa(0x42_000), true)).toBe(TDP_MAP_RESULT.EMULATE_WRITE_PROTECTED);
    expect(allows(root, 0x42_000, EPT_ACCESS.READ)).toBe(true);
    expect(walker.result.leafLo & SPTE_LO.WRITABLE).toBe(0);
    expect(walker.result.leafHi & SPTE_HI.MMU_WRITABLE).toBe(0);
    expect(walker.result.leafHi & SPTE_HI.HOST_WRITABLE).toBe(SPTE_HI.HOST_WRITABLE);
    expect(allows(root, 0x42_000, EPT_ACCESS.WRITE)).toBe(false);
    // A later write faults on the present read-only leaf (kvm: page_fault_handle_page_track).
    expect(tdp.map(root, gpa(0x42_000), true)).toBe(TDP_MAP_RESULT.EMULATE_WRITE_PROTECTED);
    expect(tdp.map(root, gpa(0x42_000), false)).toBe(TDP_MAP_RESULT.SPURIOUS);
    // Untracked again: the next write fault makes the leaf writable.
    store.untrackGfn(0x42);
    expect(tdp.map(root, gpa(0x42_000), true)).toBe(TDP_MAP_RESULT.FIXED);
    expect(allows(root, 0x42_000, EPT_ACCESS.WRITE)).toBe(true);
  });

  it("writeProtectGfn drops W from the leaf in every valid root and requests one flush", () => {
    const { tdp, allows, meter, memory } = setup();
    const a = tdp.allocRoot(TDP_ROOT);
    const b = tdp.allocRoot((TDP_ROOT | (1 << 17)) >>> 0); // a guest-mode root
    for (const root of [a, b]) {
      tdp.map(root, gpa(0x7000), true);
      tdp.map(root, gpa(0x8000), true);
    }
    const before = meter.snapshot();
    expect(tdp.writeProtectGfn(7)).toBe(true);
    expect(meter.diff(before)).toEqual({ SPTE_WRITE: 2, TLB_FLUSH_REQUEST: 1 });
    for (const root of [a, b]) {
      expect(allows(root, 0x7000, EPT_ACCESS.READ | EPT_ACCESS.FETCH)).toBe(true);
      expect(allows(root, 0x7000, EPT_ACCESS.WRITE)).toBe(false);
      expect(allows(root, 0x8000, EPT_ACCESS.WRITE)).toBe(true);
    }
    // Nothing writable left, nothing mapped: no change, no flush.
    const snap = memory.read32(0x10_0000);
    expect(tdp.writeProtectGfn(7)).toBe(false);
    expect(tdp.writeProtectGfn(0x900)).toBe(false);
    expect(memory.read32(0x10_0000)).toBe(snap);
  });

  it("with huge pages, write-protects a 2-MiB leaf over a newly tracked gfn, then splits it into 4-KiB leaves", () => {
    const { store, tdp, allows, walker, meter } = setup(true);
    const root = tdp.allocRoot(TDP_ROOT);
    tdp.map(root, gpa(0x20_0000), true);
    expect(allows(root, 0x21_0000, EPT_ACCESS.WRITE)).toBe(true);
    expect(walker.result.pageSize).toBe(0x20_0000);
    store.trackGfn(0x210);
    // kvm: kvm_tdp_mmu_write_protect_gfn — the huge leaf loses W and stays (reads still hit it).
    expect(tdp.writeProtectGfn(0x210)).toBe(true);
    expect(allows(root, 0x20_0000, EPT_ACCESS.READ)).toBe(true);
    expect(walker.result.pageSize).toBe(0x20_0000);
    expect(allows(root, 0x20_0000, EPT_ACCESS.WRITE)).toBe(false);
    // A write to the tracked gfn through the present leaf is emulated at once, nothing walked
    // (page_fault_handle_page_track comes first in kvm_tdp_mmu_page_fault).
    let before = meter.snapshot();
    expect(tdp.map(root, gpa(0x21_0000), true)).toBe(TDP_MAP_RESULT.EMULATE_WRITE_PROTECTED);
    expect(meter.diff(before)).toEqual({ TDP_FAULT: 1 });
    expect(allows(root, 0x21_0000, EPT_ACCESS.READ)).toBe(true);
    expect(walker.result.pageSize).toBe(0x20_0000);
    // A write to an untracked gfn of the range wants 4 KiB now (the tracked gfn disallows 2 MiB):
    // the leaf is split into 512 read-only leaves (tdp_mmu_split_huge_page), the target gets W.
    before = meter.snapshot();
    expect(tdp.map(root, gpa(0x21_1000), true)).toBe(TDP_MAP_RESULT.FIXED);
    expect(meter.diff(before)).toEqual({ TDP_FAULT: 1, SHADOW_PAGE_ALLOC: 1, SPTE_WRITE: 512 + 1 + 1 });
    expect(allows(root, 0x21_1000, EPT_ACCESS.WRITE)).toBe(true);
    expect(walker.result.pageSize).toBe(4096);
    expect(allows(root, 0x21_0000, EPT_ACCESS.READ)).toBe(true);
    expect(walker.result.pageSize).toBe(4096);
    expect(allows(root, 0x21_0000, EPT_ACCESS.WRITE)).toBe(false);
    expect(allows(root, 0x3f_f000, EPT_ACCESS.READ)).toBe(true);
    expect(allows(root, 0x3f_f000, EPT_ACCESS.WRITE)).toBe(false);
    // Untracked again, the range is mapped by one 2-MiB leaf: the table goes (handle_removed_pt).
    store.untrackGfn(0x210);
    expect(tdp.map(root, gpa(0x22_0000), true)).toBe(TDP_MAP_RESULT.FIXED);
    expect(allows(root, 0x21_0000, EPT_ACCESS.WRITE)).toBe(true);
    expect(walker.result.pageSize).toBe(0x20_0000);
  });

  it("through ShadowMmu's hook: an EPT12 table L1 wrote before L2 ran loses W in EPT01 once L0 shadows it", () => {
    const f = realVcpuFixture();
    const tree = new GuestEptBuilder(f.l1Memory, 0x80_0000, 4);
    tree.map(0x1000, 0x40_0000);
    // L1 builds its EPT12 through its own EPT01 mapping (writable: nobody shadows it yet).
    for (let page = tree.root; page < tree.nextFree; page += 4096) {
      expect(f.l1Fault(page, true)).toBe(TDP_MAP_RESULT.FIXED);
      expect(f.ept01Allows(page, EPT_ACCESS.WRITE)).toBe(true);
    }
    f.vcpu.nestedVmEntry({ ...L1_REGS, cr3: L2_CR3, eptp: tree.eptp(true).value });
    f.vcpu.reload();
    expect(f.l2Access(0x1000, EPT_ACCESS.READ)).toBe(SHADOW_FAULT.FIXED);
    f.vcpu.nestedVmExit(L1_REGS);
    f.vcpu.reload();
    for (let page = tree.root; page < tree.nextFree; page += 4096) {
      expect(f.store.isGfnTracked(page / 4096)).toBe(true);
      expect(f.ept01Allows(page, EPT_ACCESS.READ)).toBe(true);
      expect(f.ept01Allows(page, EPT_ACCESS.WRITE)).toBe(false);
      expect(f.l1Fault(page, true)).toBe(TDP_MAP_RESULT.EMULATE_WRITE_PROTECTED);
    }
    expect(f.ept01Allows(0x40_0000, EPT_ACCESS.WRITE)).toBe(false); // L2's page: L1 never touched it, so EPT01 does not map it
    f.auditAll();
  });
});
