import { describe, expect, it } from "vitest";
import { ACCESS, accessOf, PAGE_ACCESS } from "./access";
import { cpuFeatures } from "./cpu-features";
import { CR0 } from "./cr0";
import { DenseMemory } from "./dense-memory";
import { PFERR } from "./page-fault";
import { AD_UPDATE, PageWalker } from "./page-walk";
import { createPagingContext } from "./paging-context";
import { PTE_LO } from "./paging-entry";
import { PageTableBuilder } from "./testing/page-table-builder";
import { FAULT_STAGE, GUEST_FAULT, WalkTrace } from "./walk-result";

const CR4_PAE = 1 << 5;
const EFER_LME_LMA_NXE = (1 << 8) | (1 << 10) | (1 << 11);
const features = cpuFeatures();

function setup() {
  const memory = new DenseMemory(16 * 1024 * 1024);
  const tables = new PageTableBuilder(memory, 0x100000);
  const ctx = (extra: { cr0?: number; cr4?: number; rflags?: number; pkru?: number } = {}) =>
    createPagingContext(
      {
        cr0: CR0.PG | CR0.PE | (extra.cr0 ?? CR0.WP),
        cr3: tables.root,
        cr4: CR4_PAE | (extra.cr4 ?? 0),
        efer: EFER_LME_LMA_NXE,
        rflags: extra.rflags ?? 0,
        pkru: extra.pkru ?? 0,
      },
      features,
    );
  return { memory, tables, ctx };
}

describe("PageWalker, 4-level paging", () => {
  it("translates a 4-KiB page and reports permissions, size and the entries it read", () => {
    const { memory, tables, ctx } = setup();
    tables.map(0x7fff_1234_5000, 0x345000);
    const walker = new PageWalker(memory);
    const trace = new WalkTrace();
    expect(walker.walk(ctx(), 0x1234_5abc, 0x7fff, ACCESS.USER, trace)).toBe(true);
    expect(walker.result.pa).toBe(0x345abc);
    expect(walker.result.pageSize).toBe(4096);
    expect(walker.result.pageAccess).toBe(PAGE_ACCESS.ALL);
    expect(trace.count).toBe(4);
    expect([...trace.level.slice(0, 4)]).toEqual([4, 3, 2, 1]);
  });

  it("sets A on every level and D on the leaf for a write", () => {
    const { memory, tables, ctx } = setup();
    tables.map(0x4000_0000, 0x200000);
    const walker = new PageWalker(memory);
    const trace = new WalkTrace();
    walker.walk(ctx(), 0x4000_0000, 0, ACCESS.WRITE, trace);
    for (const e of trace.entries()) {
      const lo = memory.read32(e.address);
      expect(lo & PTE_LO.ACCESSED).toBe(PTE_LO.ACCESSED);
      expect(lo & PTE_LO.DIRTY).toBe(e.level === 1 ? PTE_LO.DIRTY : 0);
    }
  });

  it("faults a user write to a read-only page with P|W|U and sets no leaf A", () => {
    const { memory, tables, ctx } = setup();
    tables.map(0x5000, 0x9000, { leafLo: PTE_LO.PRESENT | PTE_LO.USER });
    const walker = new PageWalker(memory);
    expect(walker.walk(ctx(), 0x5000, 0, accessOf("write", 3))).toBe(false);
    expect(walker.result.stage).toBe(FAULT_STAGE.GUEST);
    expect(walker.result.guestFault).toBe(GUEST_FAULT.ACCESS_RIGHTS);
    expect(walker.result.errorCode).toBe(PFERR.PRESENT | PFERR.WRITE | PFERR.USER);
  });

  it("lets a supervisor write through a read-only page only when CR0.WP is clear", () => {
    const { memory, tables, ctx } = setup();
    tables.map(0x5000, 0x9000, { leafLo: PTE_LO.PRESENT });
    const walker = new PageWalker(memory, { adUpdate: AD_UPDATE.NONE });
    expect(walker.walk(ctx({ cr0: 0 }), 0x5000, 0, ACCESS.WRITE)).toBe(true);
    expect(walker.walk(ctx(), 0x5000, 0, ACCESS.WRITE)).toBe(false);
    expect(walker.result.errorCode).toBe(PFERR.PRESENT | PFERR.WRITE);
  });

  it("maps 2-MiB and 1-GiB pages", () => {
    const { memory, tables, ctx } = setup();
    tables.map(0x4020_0000, 0x60_0000, { leafLevel: 2 });
    tables.map(0x80_0000_0000, 0x4000_0000, { leafLevel: 3 });
    const walker = new PageWalker(memory);
    expect(walker.walk(ctx(), 0x4021_2345, 0, ACCESS.READ)).toBe(true);
    expect(walker.result).toMatchObject({ pa: 0x61_2345, pageSize: 2 * 1024 * 1024, level: 2 });
    expect(walker.walk(ctx(), 0x0123_4567, 0x80, ACCESS.READ)).toBe(true);
    expect(walker.result).toMatchObject({ pa: 0x4123_4567, pageSize: 1024 * 1024 * 1024, level: 3 });
  });

  it("reports a reserved bit with P|RSVD and a missing entry without P", () => {
    const { memory, tables, ctx } = setup();
    tables.map(0x6000, 0x9000, { leafHi: 1 << 19 }); // bit 51 > MAXPHYADDR 46
    const walker = new PageWalker(memory);
    expect(walker.walk(ctx(), 0x6000, 0, ACCESS.FETCH)).toBe(false);
    expect(walker.result.errorCode).toBe(PFERR.PRESENT | PFERR.RSVD | PFERR.FETCH);
    expect(walker.walk(ctx(), 0x7000, 0, ACCESS.USER)).toBe(false);
    expect(walker.result.errorCode).toBe(PFERR.USER);
    expect(walker.result.guestFault).toBe(GUEST_FAULT.NOT_PRESENT);
  });
});
