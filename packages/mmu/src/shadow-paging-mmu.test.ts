import {
  ACCESS,
  AD_UPDATE,
  createPagingContext,
  MODERN_CPU,
  PAGE_ACCESS,
  PageWalker,
  PFERR,
  PTE_HI,
  PTE_LO,
} from "@nestvisor/x86-arch";
import { describe, expect, it } from "vitest";
import { PAGE_ROLE } from "./page-role";
import { NO_SHADOW_PAGE } from "./root-backend";
import { SHADOW_FAULT } from "./shadow-fault";
import { X86_SPTE_HI, X86_SPTE_LO } from "./shadow-spte";
import { GUEST_PTE_PWU } from "./testing/guest-page-table-builder";
import { auditShadowPaging, shadowLeaves } from "./testing/shadow-audit";
import { shadowPagingFixture } from "./testing/shadow-paging-fixture";

const P = PTE_LO.PRESENT;
const RW = PTE_LO.WRITABLE;
const US = PTE_LO.USER;
const USER_READ = ACCESS.USER;
const USER_WRITE = ACCESS.USER | ACCESS.WRITE;

type Fixture = ReturnType<typeof shadowPagingFixture>;

function expectClean(f: Fixture): number {
  const audit = auditShadowPaging(f.shadow, f.state.root, f.regs());
  expect(audit.problems).toEqual([]);
  return audit.leaves;
}

/** The shadow translation of a linear address (a supervisor-read probe). */
function shadowWalk(f: Fixture, laLo: number, laHi = 0) {
  const walker = new PageWalker(f.memory, { adUpdate: AD_UPDATE.NONE });
  const ok = walker.walk(f.hardwareContext(), laLo, laHi, 0);
  return { ok, pa: walker.result.pa, access: walker.result.pageAccess };
}

/** The guest leaf entry's low word. */
function guestLeaf(f: Fixture, la: number, level = 1): number {
  return f.shadow.guestMemory.read32(f.builder.entryAddress(la, level));
}

describe("ShadowPagingMmu: 4-level guests (kvm: paging64 page_fault)", () => {
  it("maps each faulted GVA to the guest's page in host memory with the guest's rights", () => {
    const f = shadowPagingFixture("level4");
    const { builder, guestHost } = f;
    builder.map(0x40_0000, 0x10_0000);
    builder.map(0x40_1000, 0x10_1000, { leafLo: P });
    builder.map(0x40_2000, 0x10_2000, { leafHi: PTE_HI.XD });
    builder.map(0x60_0000, 0x20_0000, { leafLevel: 2 });
    builder.map(0x8000_0000_1000, 0x10_3000); // GVA 0xffff8000_00001000
    builder.map(0x40_3000, f.roGfn * 4096);

    expect(f.guestAccess(0x40_0008, 0, USER_READ)).toMatchObject({
      ok: true,
      pa: guestHost + 0x10_0008,
      faults: 1,
    });
    // A read of a clean page leaves W out; the guest's leaf got A, not D.
    expect(shadowWalk(f, 0x40_0000).access).toBe(PAGE_ACCESS.USER | PAGE_ACCESS.EXEC);
    expect(guestLeaf(f, 0x40_0000) & (PTE_LO.ACCESSED | PTE_LO.DIRTY)).toBe(PTE_LO.ACCESSED);
    // The write faults on the read-only SPTE, sets D, and gets W.
    expect(f.guestAccess(0x40_0008, 0, USER_WRITE)).toMatchObject({ ok: true, faults: 1 });
    expect(guestLeaf(f, 0x40_0000) & PTE_LO.DIRTY).toBe(PTE_LO.DIRTY);
    expect(shadowWalk(f, 0x40_0000).access).toBe(PAGE_ACCESS.ALL);

    expect(f.guestAccess(0x40_1000, 0, ACCESS.READ)).toMatchObject({ ok: true, pa: guestHost + 0x10_1000 });
    expect(shadowWalk(f, 0x40_1000).access).toBe(PAGE_ACCESS.EXEC);
    expect(f.guestAccess(0x40_2000, 0, USER_WRITE)).toMatchObject({ ok: true, pa: guestHost + 0x10_2000 });
    expect(shadowWalk(f, 0x40_2000).access).toBe(PAGE_ACCESS.USER | PAGE_ACCESS.WRITE);
    const nxLeaf = f.memory.read32(leafSpteAddress(f, 0x40_2000) + 4);
    expect((nxLeaf & X86_SPTE_HI.NX) >>> 0).toBe(X86_SPTE_HI.NX);

    // A 2-MiB guest page is shadowed by a direct page of 4-KiB leaves, whose role carries the
    // leaf's rights: once a write dirtied the guest page, a direct page with W replaces the
    // read-only one (kvm: validate_direct_spte), and the old one's leaves are gone with it.
    expect(f.guestAccess(0x60_0123, 0, USER_READ)).toMatchObject({ ok: true, pa: guestHost + 0x20_0123 });
    const readOnly = f.store.idOfHostPage(leafSpteAddress(f, 0x60_0000) & ~0xfff);
    expect(f.guestAccess(0x7f_f000, 0, USER_WRITE)).toMatchObject({ ok: true, pa: guestHost + 0x3f_f000 });
    const direct = f.store.describe(f.store.idOfHostPage(leafSpteAddress(f, 0x60_0000) & ~0xfff));
    expect(direct.id).not.toBe(readOnly);
    expect(direct.role & PAGE_ROLE.DIRECT).not.toBe(0);
    expect(direct.gfn).toBe(0x200);
    expect((direct.role & PAGE_ROLE.ACCESS_MASK) >>> PAGE_ROLE.ACCESS_SHIFT).toBe(PAGE_ACCESS.ALL);
    expect(f.store.parentCount(readOnly)).toBe(0);
    expect(shadowWalk(f, 0x60_0000).ok).toBe(false);

    // The upper half of the address space (bit 47 set).
    expect(f.guestAccess(0x1000, 0xffff_8000, ACCESS.READ)).toMatchObject({
      ok: true,
      pa: guestHost + 0x10_3000,
    });

    // A read-only memslot: a read maps it read-only, a write is emulated.
    expect(f.guestAccess(0x40_3000, 0, USER_READ)).toMatchObject({ ok: true, pa: f.roHost });
    expect(f.guestAccess(0x40_3000, 0, USER_WRITE).outcome).toBe(SHADOW_FAULT.EMULATE_READ_ONLY);

    expect(expectClean(f)).toBe(6);
    expect(f.meter.byName("SHADOW_FAULT")).toBe(f.meter.byName("GUEST_WALK"));
    // Every guest table on a shadowed path is write-tracked.
    for (const la of [0x40_0000, 0x60_0000]) {
      for (let level = la === 0x60_0000 ? 2 : 1; level <= 4; level++) {
        expect(f.store.isGfnTracked(Math.floor(f.builder.entryAddress(la, level) / 4096))).toBe(true);
      }
    }
  });

  it("injects the #PF the guest's tables raise, with x86-arch's error code, and sets no A/D flag", () => {
    const cases: {
      name: string;
      options: Parameters<typeof shadowPagingFixture>[1];
      la: number;
      access: number;
      code: number;
    }[] = [
      { name: "not present", options: {}, la: 0x90_0000, access: USER_READ, code: PFERR.USER },
      { name: "user write to a read-only page", options: {}, la: 0x40_1000, access: USER_WRITE, code: 7 },
      { name: "supervisor write with CR0.WP", options: {}, la: 0x40_1000, access: ACCESS.WRITE, code: 3 },
      { name: "user read of a supervisor page", options: {}, la: 0x40_4000, access: USER_READ, code: 5 },
      {
        name: "fetch of an NX page",
        options: {},
        la: 0x40_2000,
        access: ACCESS.FETCH | ACCESS.USER,
        code: 0x15,
      },
      { name: "reserved bit", options: {}, la: 0x40_5000, access: USER_READ, code: 0xd },
      { name: "SMEP", options: { smep: true }, la: 0x40_0000, access: ACCESS.FETCH, code: 0x11 },
      { name: "SMAP", options: { smap: true }, la: 0x40_0000, access: ACCESS.READ, code: 1 },
    ];
    for (const c of cases) {
      const f = shadowPagingFixture("level4", c.options);
      f.builder.map(0x40_0000, 0x10_0000);
      f.builder.map(0x40_1000, 0x10_1000, { leafLo: P | US });
      f.builder.map(0x40_2000, 0x10_2000, { leafHi: PTE_HI.XD });
      f.builder.map(0x40_4000, 0x10_4000, { leafLo: P | RW });
      f.builder.map(0x40_5000, 0x10_5000, { leafHi: 1 << 19 }); // bit 51, above MAXPHYADDR 46
      const r = f.guestAccess(c.la, 0, c.access);
      expect(r.outcome, c.name).toBe(SHADOW_FAULT.INJECT_PAGE_FAULT);
      expect(r.last?.errorCode, c.name).toBe(c.code);
      expect(r.last?.addressLo).toBe(c.la);
      const oracle = new PageWalker(f.shadow.guestMemory, { adUpdate: AD_UPDATE.NONE });
      oracle.walk(createPagingContext(f.regs(), MODERN_CPU), c.la, 0, c.access);
      expect(r.last?.errorCode, c.name).toBe(oracle.result.errorCode);
      for (let level = 1; level <= 4; level++) {
        const at = f.builder.entryAddress(c.la, level);
        if (at >= 0) expect(f.shadow.guestMemory.read32(at) & PTE_LO.ACCESSED, c.name).toBe(0);
      }
      expect(shadowLeaves(f.shadow, f.state.root), c.name).toEqual([]);
    }
  });

  it("emulates CR0.WP = 0: a kernel write to a read-only user page gets a writable supervisor-only SPTE", () => {
    const f = shadowPagingFixture("level4", { wp: false, smep: true });
    expect(f.role & PAGE_ROLE.CR0_WP).toBe(0);
    expect(f.role & PAGE_ROLE.SMEP_ANDNOT_WP).not.toBe(0);
    f.builder.map(0x40_0000, 0x10_0000, { leafLo: P | US });
    expect(f.guestAccess(0x40_0000, 0, ACCESS.WRITE)).toMatchObject({ ok: true, faults: 1 });
    expect(shadowWalk(f, 0x40_0000).access).toBe(PAGE_ACCESS.WRITE); // no U, and no X with SMEP
    expect(guestLeaf(f, 0x40_0000) & PTE_LO.DIRTY).toBe(PTE_LO.DIRTY);
    expectClean(f);
    // A user read then needs the user version back.
    expect(f.guestAccess(0x40_0000, 0, USER_READ)).toMatchObject({ ok: true, faults: 1 });
    expect(shadowWalk(f, 0x40_0000).access).toBe(PAGE_ACCESS.USER | PAGE_ACCESS.EXEC);
    expectClean(f);
  });

  it("emulates a kernel write to a read-only page table with CR0.WP = 0 without touching its SPTE", () => {
    const f = shadowPagingFixture("level4", { wp: false });
    f.builder.map(0x40_0000, 0x10_0000);
    const ptPage = f.builder.entryAddress(0x40_0000, 1) & ~0xfff;
    f.builder.map(0x50_0000, ptPage, { leafLo: P | US });
    expect(f.guestAccess(0x40_0000, 0, USER_READ).ok).toBe(true);
    expect(f.guestAccess(0x50_0000, 0, USER_READ).ok).toBe(true);
    const spte = f.memory.read32(leafSpteAddress(f, 0x50_0000));
    // kvm: page_fault_handle_page_track comes before the CR0.WP = 0 rewrite of the rights.
    expect(f.guestAccess(0x50_0000, 0, ACCESS.WRITE).outcome).toBe(SHADOW_FAULT.EMULATE_WRITE_PROTECTED);
    expect(f.memory.read32(leafSpteAddress(f, 0x50_0000))).toBe(spte);
    expect(shadowWalk(f, 0x50_0000).access).toBe(PAGE_ACCESS.USER | PAGE_ACCESS.EXEC);
  });
});

/** Host address of the leaf SPTE for a GVA (the shadow tables must exist). */
function leafSpteAddress(f: Fixture, la: number): number {
  let table: number;
  let level: number;
  if (f.shadow.isSpecialRoot(f.state.root)) {
    const entry = f.state.root + (Math.floor(la / 2 ** 30) % 4) * 8;
    table = (f.memory.read32(entry) & 0xfffff000) >>> 0;
    level = 2;
  } else {
    table = f.state.root;
    level = 4;
  }
  for (; level > 1; level--) {
    const entry = table + (Math.floor(la / 2 ** (12 + 9 * (level - 1))) % 512) * 8;
    table = (f.memory.read32(entry + 4) & 0xfffff) * 2 ** 32 + ((f.memory.read32(entry) & 0xfffff000) >>> 0);
  }
  return table + (Math.floor(la / 4096) % 512) * 8;
}

describe("ShadowPagingMmu: PAE and 32-bit guests under a pae_root (kvm: mmu_alloc_shadow_roots)", () => {
  it("shadows a PAE guest: one level-2 root per present PDPTE, walked by the processor in PAE mode", () => {
    const f = shadowPagingFixture("pae");
    f.builder.map(0x1000, 0x10_0000);
    f.builder.map(0xc000_0000, 0x11_0000); // PDPTE 3
    f.builder.map(0xc060_0000, 0x20_0000, { leafLevel: 2 });
    f.reload();
    const root = f.state.root;
    expect(f.shadow.isSpecialRoot(root)).toBe(true);
    expect(root).toBeLessThan(2 ** 32);
    expect(f.backend.rootRoleWord(root)).toBe(NO_SHADOW_PAGE);
    expect(f.backend.isObsoleteRoot(root)).toBe(true);
    expect(f.memory.read32(root + 8)).toBe(0); // PDPTE 1 is not present
    expect(f.memory.read32(root) & 0xfff).toBe(1); // P only: PDPTE bits 2:1 and 8:5 are reserved
    expect(f.meter.byName("ROOT_ALLOC")).toBe(2);
    expect(f.guestAccess(0x1000, 0, USER_WRITE)).toMatchObject({ ok: true, pa: f.guestHost + 0x10_0000 });
    expect(f.guestAccess(0xc000_0000, 0, USER_READ)).toMatchObject({ ok: true, pa: f.guestHost + 0x11_0000 });
    expect(f.guestAccess(0xc070_0000, 0, USER_READ)).toMatchObject({ ok: true, pa: f.guestHost + 0x30_0000 });
    const notPresent = f.guestAccess(0x4000_0000, 0, USER_WRITE);
    expect(notPresent.outcome).toBe(SHADOW_FAULT.INJECT_PAGE_FAULT);
    expect(notPresent.last?.errorCode).toBe(PFERR.USER | PFERR.WRITE);
    expect(expectClean(f)).toBe(3);
    // Putting the root frees its page; the level-2 roots stay hashed.
    const inUse = f.allocator.inUse;
    f.backend.putRoot(root);
    expect(f.allocator.inUse).toBe(inUse - 1);
    f.state.root = f.backend.allocShadowRoot(f.role, f.builder.cr3);
    expect(f.meter.byName("ROOT_ALLOC")).toBe(2);
    expect(f.guestAccess(0x1000, 0, USER_WRITE)).toMatchObject({ ok: true, faults: 0 });
  });

  it("shadows a 32-bit guest with quadrants: four PAE directories per guest directory, two tables per guest table", () => {
    const f = shadowPagingFixture("bit32");
    f.builder.map(0x1000, 0x10_0000);
    f.builder.map(0x30_0000, 0x10_1000); // PTE index 768: the upper half of the guest table
    f.builder.map(0xc040_0000, 0x40_0000, { leafLevel: 2 }); // 4-MiB page, PDE 769: quadrant 3
    // Same SPTE indexes in the other quadrants: PDE 1 (quadrant 0) and PTE 256 (lower half).
    f.builder.map(0x40_1000, 0x10_3000);
    f.builder.map(0x10_0000, 0x10_4000);
    f.reload();
    expect(f.guestAccess(0x1000, 0, USER_READ)).toMatchObject({ ok: true, pa: f.guestHost + 0x10_0000 });
    expect(f.guestAccess(0x30_0000, 0, USER_READ)).toMatchObject({ ok: true, pa: f.guestHost + 0x10_1000 });
    expect(f.guestAccess(0xc07f_f000, 0, USER_WRITE)).toMatchObject({
      ok: true,
      pa: f.guestHost + 0x7f_f000,
    });
    const quadrantOf = (la: number) =>
      (f.store.role(f.store.idOfHostPage(leafSpteAddress(f, la) & ~0xfff)) & PAGE_ROLE.QUADRANT_MASK) >>>
      PAGE_ROLE.QUADRANT_SHIFT;
    expect(f.guestAccess(0x40_1000, 0, USER_READ)).toMatchObject({ ok: true, pa: f.guestHost + 0x10_3000 });
    expect(f.guestAccess(0x10_0000, 0, USER_READ)).toMatchObject({ ok: true, pa: f.guestHost + 0x10_4000 });
    expect(quadrantOf(0x1000)).toBe(0);
    expect(quadrantOf(0x30_0000)).toBe(1);
    expect(quadrantOf(0x10_0000)).toBe(0);
    const pt = Math.floor(f.builder.entryAddress(0x1000, 1) / 4096);
    expect(f.shadow.shadowPagesOf(pt)).toHaveLength(2);
    const pd = Math.floor(f.builder.cr3 / 4096);
    expect(f.shadow.shadowPagesOf(pd)).toHaveLength(4);
    expect(expectClean(f)).toBe(5);
    // A 4-byte write to the PDE of the 4-MiB page zaps both 2-MiB SPTEs of quadrant 3 only.
    const pde = f.builder.entryAddress(0xc040_0000, 2);
    f.shadow.guestMemory.write32(pde, 0);
    expect(f.shadow.trackedWrite(pde, 4, false)).toBe(4);
    expect(shadowWalk(f, 0xc07f_f000).ok).toBe(false);
    expect(shadowWalk(f, 0x1000).ok).toBe(true);
    expect(shadowWalk(f, 0x40_1000).ok).toBe(true); // quadrant 0, same SPTE index: untouched
    // A 4-byte write to PTE 768 zaps the leaf in the upper-half table.
    const pte = f.builder.entryAddress(0x30_0000, 1);
    f.shadow.guestMemory.write32(pte, (0x10_2000 | GUEST_PTE_PWU) >>> 0);
    f.shadow.trackedWrite(pte, 4, false);
    expect(shadowWalk(f, 0x30_0000).ok).toBe(false);
    expect(shadowWalk(f, 0x10_0000).ok).toBe(true); // the lower-half table: untouched
    expect(f.guestAccess(0x30_0000, 0, USER_READ)).toMatchObject({ ok: true, pa: f.guestHost + 0x10_2000 });
    expectClean(f);
  });
});

describe("ShadowPagingMmu: write-tracked guest tables (kvm: zap on write)", () => {
  it("emulates the guest's writes to its own page tables, and the zapped SPTE is rebuilt from the new entry", () => {
    const f = shadowPagingFixture("level4");
    f.builder.map(0x40_0000, 0x10_0000);
    const pte = f.builder.entryAddress(0x40_0000, 1);
    const ptPage = pte - (pte % 4096);
    f.builder.map(0x50_0000, ptPage); // the guest maps its page table to edit it
    expect(f.guestAccess(0x40_0000, 0, USER_READ).ok).toBe(true);
    expect(f.guestAccess(0x50_0000, 0, USER_READ)).toMatchObject({ ok: true, pa: f.guestHost + ptPage });
    expect(shadowWalk(f, 0x50_0000).access & PAGE_ACCESS.WRITE).toBe(0);
    const write = f.guestAccess(0x50_0000 + (pte % 4096), 0, USER_WRITE);
    expect(write.outcome).toBe(SHADOW_FAULT.EMULATE_WRITE_PROTECTED);
    // The emulator writes the new PTE (4 bytes: PAE-mode paging widens it to the entry) and reports it.
    f.shadow.guestMemory.write32(pte, (0x10_7000 | GUEST_PTE_PWU) >>> 0);
    expect(f.shadow.trackedWrite(pte, 4)).toBe(1);
    expect(f.meter.byName("TRACKED_WRITE")).toBe(1);
    expect(shadowWalk(f, 0x40_0000).ok).toBe(false);
    expectClean(f);
    expect(f.guestAccess(0x40_0000, 0, USER_READ)).toMatchObject({ ok: true, pa: f.guestHost + 0x10_7000 });
    expectClean(f);
  });

  it("write-protects a page's writable SPTEs when the guest starts using it as a page table", () => {
    const f = shadowPagingFixture("level4");
    f.builder.map(0x40_0000, 0x10_0000);
    const page = f.builder.allocPage();
    f.builder.map(0x70_0000, page);
    expect(f.guestAccess(0x70_0000, 0, USER_WRITE).ok).toBe(true);
    expect(shadowWalk(f, 0x70_0000).access & PAGE_ACCESS.WRITE).toBe(PAGE_ACCESS.WRITE);
    f.shadow.guestMemory.write64(page, (0x10_8000 | GUEST_PTE_PWU) >>> 0, 0);
    const pde = f.builder.entryAddress(0x80_0000, 2);
    f.shadow.guestMemory.write64(pde, (page | GUEST_PTE_PWU) >>> 0, 0);
    f.shadow.trackedWrite(pde, 8);
    expect(f.guestAccess(0x80_0000, 0, USER_READ)).toMatchObject({ ok: true, pa: f.guestHost + 0x10_8000 });
    expect(f.shadow.writeProtectedSptes).toBe(1);
    expect(shadowWalk(f, 0x70_0000).access & PAGE_ACCESS.WRITE).toBe(0);
    expect(f.memory.read32(leafSpteAddress(f, 0x70_0000)) & X86_SPTE_LO.MMU_WRITABLE).toBe(0);
    expectClean(f);
  });
});

describe("ShadowPagingMmu: guest paging off (kvm: nonpaging_page_fault, mmu_alloc_direct_roots)", () => {
  it("maps guest-physical addresses through a direct PAE root with all rights", () => {
    const f = shadowPagingFixture("pae");
    const role = 0x00001783; // kvm-mmu.md §2.9: CR0.PG = 0, shadow
    const root = f.backend.allocDirectRoot(role);
    expect(f.shadow.isSpecialRoot(root)).toBe(true);
    const gpa = 0x4000_0000 + 0x12_3456; // the second GiB: direct root 1 (gfn 1 << 18)
    f.memslots.add({ id: 2, baseGfn: 0x40000, npages: 0x200, hostBase: f.guestHost });
    const r = f.paging.nonpagingFault(root, gpa, PFERR.WRITE);
    expect(r.outcome).toBe(SHADOW_FAULT.FIXED);
    expect(r.hpa).toBe(f.guestHost + 0x12_3000);
    f.state.root = root;
    expect(shadowWalk(f, gpa)).toEqual({ ok: true, pa: f.guestHost + 0x12_3456, access: PAGE_ACCESS.ALL });
    const subRoot = f.store.describe(f.store.idOfHostPage((f.memory.read32(root + 8) & 0xfffff000) >>> 0));
    expect(subRoot.gfn).toBe(1 << 18);
    expect(subRoot.role).toBe((role & ~0xf) | 2);
    expect(f.paging.nonpagingFault(root, 0x9000_0000, 0).outcome).toBe(SHADOW_FAULT.EMULATE_MMIO);
    expect(f.paging.nonpagingFault(root, f.roGfn * 4096, PFERR.WRITE).outcome).toBe(
      SHADOW_FAULT.EMULATE_READ_ONLY,
    );
    expect(f.paging.nonpagingFault(root, gpa, PFERR.WRITE | PFERR.PRESENT).outcome).toBe(
      SHADOW_FAULT.SPURIOUS,
    );
  });
});
