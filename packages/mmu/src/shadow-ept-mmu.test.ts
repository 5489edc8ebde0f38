import { EXIT_REASON } from "@nestvisor/vmx";
import {
  AD_UPDATE,
  EPT_ACCESS,
  EPT_MEMORY_TYPE,
  EPT_VIOLATION,
  EPTE_LO,
  EptWalker,
  encodeEptPointer,
} from "@nestvisor/x86-arch";
import { describe, expect, it } from "vitest";
import { MMU_CONTEXT_KIND, MmuContext } from "./mmu-context";
import { DEFAULT_MMU_FLAGS } from "./mmu-flags";
import { PAGE_ROLE } from "./page-role";
import { NO_SHADOW_PAGE } from "./root-backend";
import { kvmMmuFreeRoots, kvmMmuLoad, rootsMatchingEptp } from "./root-cache";
import { SHADOW_FAULT } from "./shadow-fault";
import { SPTE_LO } from "./spte";
import { EPT12_LEAF_RWX } from "./testing/guest-ept-builder";
import { nestedEptFixture } from "./testing/nested-ept-fixture";
import { auditShadowEpt, shadowLeaves } from "./testing/shadow-audit";

const WB = EPT_MEMORY_TYPE.WB << EPTE_LO.MEMORY_TYPE_SHIFT;
const R = EPTE_LO.READ;
const W = EPTE_LO.WRITE;
const X = EPTE_LO.EXECUTE;
const GLA_FINAL = EPT_VIOLATION.GLA_VALID | EPT_VIOLATION.FINAL_TRANSLATION;

type Fixture = ReturnType<typeof nestedEptFixture>;

function expectClean(f: Fixture): number {
  const audit = auditShadowEpt(f.shadow, f.state.root, f.ctx12);
  expect(audit.problems).toEqual([]);
  return audit.leaves;
}

/** EPT02's translation of an L2 GPA with every right it grants (a probe: no fault handling). */
function ept02(f: Fixture, gpa: number) {
  const walker = new EptWalker(f.memory, { adUpdate: AD_UPDATE.NONE });
  const ok = walker.walk(f.ctx02(f.state.root), gpa, 0);
  return { ok, hpa: walker.result.hpa, rwx: walker.result.permissions & 7 };
}

describe("ShadowEptMmu: EPT02 from EPT12 and the memslots (kvm: ept_page_fault, FNAME(fetch))", () => {
  it("translates every faulted L2 GPA to L1's page in host memory with the AND of L1's and L0's rights", () => {
    const f = nestedEptFixture();
    const { builder, l1Host } = f;
    builder.map(0x1000, 0x40_0000);
    builder.map(0x2000, 0x41_0000, { leafLo: R | WB });
    builder.map(0x3000, 0x42_0000, { leafLo: R | X | WB });
    builder.map(0x4000, 0x43_0000, { leafLo: X | WB });
    builder.map(0x40_0000, 0x44_0000, { upperLo: R | X }); // a new PD entry granting R+X only
    builder.map(0x60_0000, f.roGfn * 4096); // L1's read-only slot
    const cases: [number, number, number, number][] = [
      // L2 GPA, access, host address, EPT02 rights
      [0x1000, EPT_ACCESS.WRITE, l1Host + 0x40_0000, R | W | X],
      [0x2000, EPT_ACCESS.READ, l1Host + 0x41_0000, R],
      [0x3000, EPT_ACCESS.FETCH, l1Host + 0x42_0000, R | X],
      [0x4000, EPT_ACCESS.FETCH, l1Host + 0x43_0000, X],
      [0x40_0000, EPT_ACCESS.READ, l1Host + 0x44_0000, R | X],
      [0x60_0000, EPT_ACCESS.READ, f.roHost, R | X],
    ];
    for (const [gpa, access, hpa, rwx] of cases) {
      const access2 = f.l2Access(gpa + 0x10, access);
      expect(access2).toMatchObject({ ok: true, hpa: hpa + 0x10, faults: 1 });
      expect(ept02(f, gpa + 0x10)).toEqual({ ok: true, hpa: hpa + 0x10, rwx });
    }
    expect(expectClean(f)).toBe(cases.length);
    expect(f.meter.byName("SHADOW_EPT_FAULT")).toBe(cases.length);
    expect(f.meter.byName("GUEST_WALK")).toBe(cases.length);
    // Root + PDPT + PD shadows, and one shadow page per EPT12 page table (three of them).
    expect(f.meter.byName("SHADOW_PAGE_ALLOC")).toBe(6);
    expect(f.store.usedMmuPages).toBe(6);
    // Every EPT12 table EPT02 shadows is write-tracked.
    for (const gpa of [0x1000, 0x40_0000, 0x60_0000]) {
      for (let level = 1; level <= 4; level++) {
        const tableGfn = Math.floor(f.builder.entryAddress(gpa, level) / 4096);
        expect(f.store.isGfnTracked(tableGfn)).toBe(true);
      }
    }
    // A second access needs no fault; a write to a read-only page is L1's violation.
    expect(f.l2Access(0x3008, EPT_ACCESS.READ)).toMatchObject({ ok: true, faults: 0 });
    expect(f.l2Access(0x2000, EPT_ACCESS.WRITE).outcome).toBe(SHADOW_FAULT.INJECT_EPT_VIOLATION);
  });

  it("keeps W out while a clean EPT12 leaf is only read, and grants it once a write sets D (kvm: protect_clean_gpte)", () => {
    const f = nestedEptFixture({ accessedDirty: true });
    f.builder.map(0x5000, 0x45_0000);
    const pte = f.builder.entryAddress(0x5000, 1);
    const guest = f.shadow.guestMemory;
    expect(f.l2Access(0x5000, EPT_ACCESS.READ)).toMatchObject({ ok: true, faults: 1 });
    expect(ept02(f, 0x5000).rwx).toBe(R | X);
    expect(guest.read32(pte) & (EPTE_LO.ACCESSED | EPTE_LO.DIRTY)).toBe(EPTE_LO.ACCESSED);
    for (let level = 2; level <= 4; level++) {
      expect(guest.read32(f.builder.entryAddress(0x5000, level)) & EPTE_LO.ACCESSED).not.toBe(0);
    }
    const write = f.l2Access(0x5000, EPT_ACCESS.WRITE);
    expect(write).toMatchObject({ ok: true, faults: 1 });
    expect(write.last?.outcome).toBe(SHADOW_FAULT.FIXED);
    expect(guest.read32(pte) & EPTE_LO.DIRTY).toBe(EPTE_LO.DIRTY);
    expect(ept02(f, 0x5000).rwx).toBe(R | W | X);
    const lo = f.memory.read32(shadowLeafAddress(f, 0x5000));
    expect(lo & (SPTE_LO.ACCESSED | SPTE_LO.DIRTY)).toBe(SPTE_LO.ACCESSED | SPTE_LO.DIRTY);
    expectClean(f);
  });

  it("shadows a 2-MiB EPT12 leaf with a direct page of 4-KiB leaves", () => {
    const f = nestedEptFixture();
    f.builder.map(0x80_0000, 0x60_0000, { leafLevel: 2, leafLo: R | W | WB });
    expect(f.l2Access(0x80_5123, EPT_ACCESS.READ)).toMatchObject({ ok: true, hpa: f.l1Host + 0x60_5123 });
    expect(f.l2Access(0x9f_f000, EPT_ACCESS.WRITE)).toMatchObject({ ok: true, hpa: f.l1Host + 0x7f_f000 });
    const table = f.store.idOfHostPage(shadowLeafAddress(f, 0x80_5000) & ~0xfff);
    const page = f.store.describe(table);
    expect(page.level).toBe(1);
    expect(page.role & PAGE_ROLE.DIRECT).not.toBe(0);
    expect(page.gfn).toBe(0x600);
    expect(page.writeTracked).toBe(false);
    expect((page.role & PAGE_ROLE.ACCESS_MASK) >>> PAGE_ROLE.ACCESS_SHIFT).toBe(0b110); // ACC_USER | ACC_WRITE
    expect(expectClean(f)).toBe(2);
  });

  it("walks a 5-level EPT12", () => {
    const f = nestedEptFixture({ levels: 5 });
    const gpa = 2 ** 48 + 0x7000;
    f.builder.map(gpa, 0x47_0000);
    expect(f.l2Access(gpa, EPT_ACCESS.READ)).toMatchObject({ ok: true, hpa: f.l1Host + 0x47_0000 });
    expect(f.store.level(f.store.idOfHostPage(f.state.root))).toBe(5);
    expectClean(f);
  });
});

/** Host address of the EPT02 leaf SPTE for an L2 GPA (the tables must exist). */
function shadowLeafAddress(f: Fixture, gpa: number): number {
  let table = f.state.root;
  for (let level = f.store.level(f.store.idOfHostPage(table)); level > 1; level--) {
    const entry = table + (Math.floor(gpa / 2 ** (12 + 9 * (level - 1))) % 512) * 8;
    table = (f.memory.read32(entry + 4) & 0xfffff) * 2 ** 32 + ((f.memory.read32(entry) & 0xfffff000) >>> 0);
  }
  return table + (Math.floor(gpa / 4096) % 512) * 8;
}

describe("ShadowEptMmu: faults that are L1's (kvm: nested_ept_inject_page_fault)", () => {
  it("reflects an EPT violation with the access, EPT12's R/W/X AND and bits 7:8 of the hardware qualification", () => {
    const f = nestedEptFixture({ accessedDirty: true });
    f.builder.map(0x2000, 0x41_0000, { leafLo: R | WB });
    const probe = new EptWalker(f.shadow.guestMemory, { adUpdate: AD_UPDATE.NONE });
    const cases: [number, number, number][] = [
      // L2 GPA, access, expected qualification bits 5:0
      [0x8000_0000, EPT_ACCESS.READ, EPT_VIOLATION.READ], // no PDPT entry: nothing readable
      [0x2000, EPT_ACCESS.WRITE, EPT_VIOLATION.WRITE | EPT_VIOLATION.READABLE],
      [0x2000, EPT_ACCESS.FETCH, EPT_VIOLATION.FETCH | EPT_VIOLATION.READABLE],
      [0x3000, EPT_ACCESS.READ, EPT_VIOLATION.READ], // the PTE is not present
    ];
    const leavesBefore = shadowLeaves(f.shadow, f.state.root).length;
    for (const [gpa, access, expected] of cases) {
      // The hardware qualification of the EPT02 violation, with advanced and NMI bits set too.
      const hardware = access | EPT_VIOLATION.GLA_VALID | EPT_VIOLATION.FINAL_TRANSLATION | 0xe00 | 0x1000;
      const r = f.ept.fault(f.state.root, f.ctx12, gpa + 0x18, hardware);
      expect(r.outcome).toBe(SHADOW_FAULT.INJECT_EPT_VIOLATION);
      expect(r.exitReason).toBe(EXIT_REASON.EPT_VIOLATION);
      expect(r.gpa).toBe(gpa + 0x18);
      expect(r.qualification).toBe(expected | GLA_FINAL);
      // The same bits x86-arch's walker reports for EPT12 itself.
      probe.walk(f.ctx12, gpa + 0x18, access, 0);
      expect(r.qualification & 0x3f).toBe(probe.result.qualification & 0x3f);
    }
    // A guest paging-structure access carries GLA valid without "final translation".
    const paging = f.ept.fault(
      f.state.root,
      f.ctx12,
      0x3000,
      EPT_VIOLATION.READ | EPT_VIOLATION.WRITE | 0x80,
    );
    expect(paging.qualification).toBe(EPT_VIOLATION.READ | EPT_VIOLATION.WRITE | EPT_VIOLATION.GLA_VALID);
    // Nothing was installed and no A/D flag of EPT12 was set by the failed walks.
    expect(shadowLeaves(f.shadow, f.state.root).length).toBe(leavesBefore);
    expect(f.shadow.guestMemory.read32(f.builder.entryAddress(0x2000, 1)) & EPTE_LO.ACCESSED).toBe(0);
    expect(f.meter.byName("SPTE_WRITE")).toBe(0);
  });

  it("reflects a misconfigured EPT12 entry as an EPT misconfiguration with qualification 0", () => {
    const f = nestedEptFixture();
    f.builder.map(0x6000, 0x46_0000, { leafLo: W | WB }); // write without read
    f.builder.map(0x7000, 0x47_0000, { leafLo: R | (2 << EPTE_LO.MEMORY_TYPE_SHIFT) }); // reserved memory type
    for (const gpa of [0x6000, 0x7000]) {
      const r = f.ept.fault(f.state.root, f.ctx12, gpa, EPT_VIOLATION.READ | GLA_FINAL);
      expect(r.outcome).toBe(SHADOW_FAULT.INJECT_EPT_MISCONFIG);
      expect(r.exitReason).toBe(EXIT_REASON.EPT_MISCONFIG);
      expect(r.qualification).toBe(0);
      expect(r.gpa).toBe(gpa);
    }
  });

  it("emulates an L1 GPA in no memslot as MMIO and a write to a read-only slot; maps a read of it read-only", () => {
    const f = nestedEptFixture();
    f.builder.map(0x7000, 0x4000_0000); // L1 gfn 0x40000: no memslot
    f.builder.map(0x8000, f.roGfn * 4096 + 0x1000);
    expect(f.l2Access(0x7000, EPT_ACCESS.READ).outcome).toBe(SHADOW_FAULT.EMULATE_MMIO);
    expect(f.l2Access(0x8000, EPT_ACCESS.WRITE).outcome).toBe(SHADOW_FAULT.EMULATE_READ_ONLY);
    expect(f.l2Access(0x8000, EPT_ACCESS.READ)).toMatchObject({ ok: true, hpa: f.roHost + 0x1000 });
    expect(ept02(f, 0x8000).rwx).toBe(R | X);
    expect(f.l2Access(0x8000, EPT_ACCESS.WRITE).outcome).toBe(SHADOW_FAULT.EMULATE_READ_ONLY);
    expectClean(f);
  });

  it("uses the dummy root when the EPT12 root is in no memslot", () => {
    const f = nestedEptFixture();
    const eptp = encodeEptPointer({
      memoryType: EPT_MEMORY_TYPE.WB,
      walkLength: 4,
      accessedDirty: false,
      supervisorShadowStack: false,
      root: 0x7000_0000,
    });
    const dummy = f.backend.allocShadowRoot(f.role, eptp.hi * 2 ** 32 + eptp.lo);
    expect(f.shadow.isDummyRoot(dummy)).toBe(true);
    expect(f.backend.rootRoleWord(dummy)).toBe(NO_SHADOW_PAGE);
    expect(f.backend.isObsoleteRoot(dummy)).toBe(true);
    expect(f.backend.allocShadowRoot(f.role, eptp.hi * 2 ** 32 + eptp.lo)).toBe(dummy);
    f.backend.putRoot(dummy);
    expect(f.meter.byName("ROOT_ALLOC")).toBe(1); // the fixture's root only
  });
});

describe("ShadowEptMmu: write-tracked EPT12 (kvm: account_shadowed, kvm_mmu_track_write)", () => {
  it("zaps the EPT02 leaf when L1 rewrites an EPT12 PTE, and a refault rebuilds it from the new entry", () => {
    const f = nestedEptFixture();
    f.builder.map(0x1000, 0x40_0000);
    f.builder.map(0x2000, 0x41_0000);
    f.l2Access(0x1000, EPT_ACCESS.WRITE);
    f.l2Access(0x2000, EPT_ACCESS.READ);
    const pte = f.builder.entryAddress(0x1000, 1);
    // L1 remaps L2 0x1000 read-only to another page: its write faults (tracked), L0 emulates it.
    f.shadow.guestMemory.write64(pte, (0x48_0000 | R | WB) >>> 0, 0);
    expect(f.shadow.trackedWrite(pte, 8)).toBe(1);
    expect(f.meter.byName("TRACKED_WRITE")).toBe(1);
    expect(f.shadow.pteWrites).toBe(1);
    expect(ept02(f, 0x1000).ok).toBe(false);
    expect(ept02(f, 0x2000).ok).toBe(true); // the neighbour is untouched
    expectClean(f);
    expect(f.l2Access(0x1000, EPT_ACCESS.READ)).toMatchObject({
      ok: true,
      hpa: f.l1Host + 0x48_0000,
      faults: 1,
    });
    expect(ept02(f, 0x1000).rwx).toBe(R);
    expectClean(f);
    // A write to an entry EPT02 does not shadow changes nothing but is still a tracked write.
    f.shadow.guestMemory.write64(pte + 8 * 100, (0x49_0000 | R | WB) >>> 0, 0);
    expect(f.shadow.trackedWrite(pte + 8 * 100, 8)).toBe(1);
    expect(f.shadow.trackedWrite(0x5_0000, 8)).toBe(0); // not a shadowed table
    expect(f.meter.byName("TRACKED_WRITE")).toBe(2);
  });

  it("drops the link to a child when L1 rewrites an upper EPT12 entry; the child page stays in the hash", () => {
    const f = nestedEptFixture();
    f.builder.map(0x40_1000, 0x40_0000);
    f.l2Access(0x40_1000, EPT_ACCESS.READ);
    const pde = f.builder.entryAddress(0x40_1000, 2);
    const oldPt = Math.floor(f.builder.entryAddress(0x40_1000, 1) / 4096);
    const [oldChild] = f.shadow.shadowPagesOf(oldPt);
    // L1 points the PDE at a new page table mapping the same L2 page elsewhere.
    const newPt = f.builder.allocPage();
    f.shadow.guestMemory.write64(newPt + 8, (0x4a_0000 | R | W | X | WB) >>> 0, 0);
    f.shadow.guestMemory.write64(pde, (newPt | R | W | X) >>> 0, 0);
    f.shadow.trackedWrite(pde, 8);
    expect(ept02(f, 0x40_1000).ok).toBe(false);
    expect(f.store.isLive(oldChild!)).toBe(true);
    expect(f.store.parentCount(oldChild!)).toBe(0);
    expect(f.l2Access(0x40_1000, EPT_ACCESS.READ)).toMatchObject({ ok: true, hpa: f.l1Host + 0x4a_0000 });
    expect(f.shadow.shadowPagesOf(newPt / 4096)).toHaveLength(1);
    expectClean(f);
  });

  it("maps an EPT12 table page read-only for L2 and emulates L2's writes to it", () => {
    const f = nestedEptFixture();
    f.builder.map(0x1000, 0x40_0000);
    f.l2Access(0x1000, EPT_ACCESS.READ);
    const ptPage = f.builder.entryAddress(0x1000, 1) & ~0xfff;
    const pdPage = f.builder.entryAddress(0x1000, 2) & ~0xfff;
    f.builder.map(0x9000, ptPage);
    f.builder.map(0xa000, pdPage);
    expect(f.l2Access(0x9000, EPT_ACCESS.READ)).toMatchObject({ ok: true, hpa: f.l1Host + ptPage });
    expect(ept02(f, 0x9000).rwx).toBe(R | X);
    // A write through the present, read-only SPTE: kvm page_fault_handle_page_track.
    const write = f.l2Access(0x9000, EPT_ACCESS.WRITE);
    expect(write.outcome).toBe(SHADOW_FAULT.EMULATE_WRITE_PROTECTED);
    // A first access that is a write installs the read-only SPTE and asks for emulation (kvm: mmu_set_spte).
    const first = f.l2Access(0xa000, EPT_ACCESS.WRITE);
    expect(first).toMatchObject({ ok: false, faults: 1, outcome: SHADOW_FAULT.EMULATE_WRITE_PROTECTED });
    expect(ept02(f, 0xa000)).toEqual({ ok: true, hpa: f.l1Host + pdPage, rwx: R | X });
    expectClean(f);
  });

  it("write-protects L2's writable mappings of a page when L1 starts using it as an EPT12 table", () => {
    const f = nestedEptFixture();
    f.builder.map(0x1000, 0x40_0000);
    const page = f.builder.allocPage();
    f.builder.map(0xb000, page);
    expect(f.l2Access(0xb000, EPT_ACCESS.WRITE).ok).toBe(true);
    expect(ept02(f, 0xb000).rwx).toBe(R | W | X);
    // L1 links `page` as the page table of L2 0xc0_0000.
    f.shadow.guestMemory.write64(page + 8 * 0, (0x4b_0000 | EPT12_LEAF_RWX) >>> 0, 0);
    const pde = f.builder.entryAddress(0xc0_0000, 2);
    f.shadow.guestMemory.write64(pde, (page | R | W | X) >>> 0, 0);
    f.shadow.trackedWrite(pde, 8);
    expect(f.l2Access(0xc0_0000, EPT_ACCESS.READ)).toMatchObject({ ok: true, hpa: f.l1Host + 0x4b_0000 });
    expect(f.shadow.writeProtectedSptes).toBe(1);
    expect(ept02(f, 0xb000).rwx).toBe(R | X);
    expect(f.l2Access(0xb000, EPT_ACCESS.WRITE).outcome).toBe(SHADOW_FAULT.EMULATE_WRITE_PROTECTED);
    expectClean(f);
  });

  it("zaps a whole shadow page on the third write in a row to an upper-level table, or on a misaligned write", () => {
    const f = nestedEptFixture();
    f.builder.map(0x1000, 0x40_0000);
    f.builder.map(0x20_1000, 0x40_1000);
    f.l2Access(0x1000, EPT_ACCESS.READ);
    f.l2Access(0x20_1000, EPT_ACCESS.READ);
    const pd = Math.floor(f.builder.entryAddress(0x1000, 2) / 4096);
    const [pdPage] = f.shadow.shadowPagesOf(pd);
    const unusedPde = pd * 4096 + 8 * 300;
    f.shadow.trackedWrite(unusedPde, 8);
    f.shadow.trackedWrite(unusedPde, 8);
    expect(f.shadow.writeFloodingCount(pdPage!)).toBe(2);
    // A fault through the page shows it is in use (kvm: clear_sp_write_flooding_count).
    f.builder.map(0x3000, 0x40_3000);
    f.l2Access(0x3000, EPT_ACCESS.READ);
    expect(f.shadow.writeFloodingCount(pdPage!)).toBe(0);
    f.shadow.trackedWrite(unusedPde, 8);
    f.shadow.trackedWrite(unusedPde, 8);
    expect(f.shadow.flooded).toBe(0);
    f.shadow.trackedWrite(unusedPde, 8);
    expect(f.shadow.flooded).toBe(1);
    expect(f.store.isLive(pdPage!)).toBe(false);
    expect(ept02(f, 0x1000).ok).toBe(false);
    expectClean(f);
    // Last-level pages are never flooded (KVM could unsync them) but a misaligned write zaps them.
    f.l2Access(0x1000, EPT_ACCESS.READ);
    const pt = f.builder.entryAddress(0x1000, 1);
    const [ptPage] = f.shadow.shadowPagesOf(Math.floor(pt / 4096));
    for (let i = 0; i < 4; i++) f.shadow.trackedWrite(pt + 8 * 200, 8);
    expect(f.store.isLive(ptPage!)).toBe(true);
    f.shadow.trackedWrite(pt + 6, 4, false);
    expect(f.store.isLive(ptPage!)).toBe(false);
    expect(f.shadow.flooded).toBe(2);
    // A 1-byte write to the start of an entry is not misaligned.
    f.l2Access(0x1000, EPT_ACCESS.READ);
    const [again] = f.shadow.shadowPagesOf(Math.floor(pt / 4096));
    f.shadow.trackedWrite(pt, 1);
    expect(f.store.isLive(again!)).toBe(true);
    expect(ept02(f, 0x1000).ok).toBe(false);
    expectClean(f);
  });
});

describe("INVEPT through the root cache (kvm: handle_invept on guest_mmu)", () => {
  function withContext() {
    const f = nestedEptFixture();
    const ctx = new MmuContext(MMU_CONTEXT_KIND.GUEST_MMU);
    ctx.rootRole = f.role;
    const env = { backend: f.backend, meter: f.meter, flags: DEFAULT_MMU_FLAGS };
    f.backend.putRoot(f.state.root);
    kvmMmuLoad(ctx, f.eptp12.value, env);
    f.state.root = ctx.rootHpa;
    f.builder.map(0x1000, 0x40_0000);
    f.builder.map(0x20_0000, 0x41_0000);
    f.l2Access(0x1000, EPT_ACCESS.WRITE);
    f.l2Access(0x20_0000, EPT_ACCESS.READ);
    return { f, ctx, env };
  }

  it("single-context frees the roots of that EPTP; the shadow pages stay hashed and in sync", () => {
    const { f, ctx, env } = withContext();
    const root = ctx.rootHpa;
    const other = f.eptp12.value + 0x1000 * 0x100;
    expect(rootsMatchingEptp(ctx, other)).toBe(0);
    kvmMmuFreeRoots(ctx, rootsMatchingEptp(ctx, f.eptp12.value | 0x40), env); // A/D bit differs: same table
    expect(ctx.hasRoot).toBe(false);
    expect(f.meter.byName("ROOT_DROP")).toBe(1);
    expect(f.meter.byName("SHADOW_PAGE_ZAP")).toBe(0);
    expect(f.store.rootCount(f.store.idOfHostPage(root))).toBe(0);
    const allocs = f.meter.byName("SHADOW_PAGE_ALLOC");
    kvmMmuLoad(ctx, f.eptp12.value, env);
    expect(ctx.rootHpa).toBe(root);
    expect(f.meter.byName("SHADOW_PAGE_ALLOC")).toBe(allocs);
    expect(f.meter.byName("ROOT_ALLOC")).toBe(1);
    expect(f.l2Access(0x1000, EPT_ACCESS.WRITE)).toMatchObject({ ok: true, faults: 0 });
    expectClean(f);
  });

  it("global frees every root; a root zapped meanwhile is destroyed with its last reference", () => {
    const { f, ctx, env } = withContext();
    const root = ctx.rootHpa;
    f.memslots.delete(1); // kvm_mmu_zap_all_fast: every shadow page obsolete, the root invalid
    expect(f.backend.isObsoleteRoot(root)).toBe(true);
    expect(f.store.isInvalid(f.store.idOfHostPage(root))).toBe(true);
    kvmMmuFreeRoots(ctx, 0xf, env);
    expect(f.meter.byName("ROOT_DESTROY")).toBe(1);
    expect(f.allocator.inUse).toBe(0);
    kvmMmuLoad(ctx, f.eptp12.value, env);
    f.state.root = ctx.rootHpa;
    expect(f.meter.byName("ROOT_ALLOC")).toBe(2);
    expect(f.l2Access(0x1000, EPT_ACCESS.WRITE)).toMatchObject({ ok: true, faults: 1 });
    expectClean(f);
  });

  it("retries a fault on a root made obsolete under it", () => {
    const { f } = withContext();
    f.builder.map(0x3000, 0x43_0000);
    f.store.zapAllFast();
    const r = f.ept.fault(f.state.root, f.ctx12, 0x3000, EPT_VIOLATION.READ | GLA_FINAL);
    expect(r.outcome).toBe(SHADOW_FAULT.RETRY);
    expect(shadowLeaves(f.shadow, f.state.root)).toEqual([]);
  });
});
