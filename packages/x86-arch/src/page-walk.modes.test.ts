import { describe, expect, it } from "vitest";
import { ACCESS, accessOf, PAGE_ACCESS } from "./access";
import { type CpuFeatures, cpuFeatures } from "./cpu-features";
import { CR0 } from "./cr0";
import { CR4 } from "./cr4";
import { DenseMemory } from "./dense-memory";
import { EFER } from "./efer";
import { isPaePaging, loadPdptes, loadPdptesInto, pdptAddress } from "./pae-pdpte";
import { PFERR } from "./page-fault";
import { AD_UPDATE, PageWalker } from "./page-walk";
import { createPagingContext } from "./paging-context";
import { PAGE_1G, PAGE_2M, PAGE_4K, PAGE_4M, PTE_HI, PTE_LO } from "./paging-entry";
import { GUEST_FAULT, WalkTrace } from "./walk-result";

/** Targeted tests per paging mode (SDM 4.3 32-bit, 4.4 PAE, 4.5 4-/5-level), traces and error codes. */

const CR4_PSE = 1 << 4;
const CR4_PAE = 1 << 5;
const CR4_LA57 = 1 << 12;
const CR4_SMEP = 1 << 20;
const EFER_LME_LMA = (1 << 8) | (1 << 10);
const EFER_NXE = 1 << 11;
const PG = CR0.PG | CR0.PE;
const { PRESENT: P, WRITABLE: W, USER: U, ACCESSED: A, DIRTY: D, PAGE_SIZE: PS } = PTE_LO;
const PRW = P | W | U;

function memory(): DenseMemory {
  return new DenseMemory(16 * 1024 * 1024);
}

// ---------------------------------------------------------------------------------------------
describe("no paging", () => {
  it("uses the low 32 bits of the linear address as the physical address and reads nothing", () => {
    const m = memory();
    const ctx = createPagingContext({ cr0: CR0.PE, cr3: 0x1000, cr4: 0, efer: 0 }, cpuFeatures());
    const walker = new PageWalker(m);
    const trace = new WalkTrace();
    expect(walker.walk(ctx, 0xdead_beef, 0x1234, ACCESS.WRITE | ACCESS.USER, trace)).toBe(true);
    expect(walker.result).toMatchObject({ pa: 0xdead_beef, pageSize: PAGE_4K, pageAccess: PAGE_ACCESS.ALL });
    expect(walker.result.memoryReads).toBe(0);
    expect(trace.count).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------
describe("32-bit paging", () => {
  const PD = 0x10_0000;
  const PT = 0x10_1000;
  const features = cpuFeatures({ maxPhysAddr: 46 });
  const ctx32 = (opts: { cr4?: number; efer?: number; wp?: boolean; f?: CpuFeatures } = {}) =>
    createPagingContext(
      {
        cr0: PG | (opts.wp === false ? 0 : CR0.WP),
        cr3: PD | 0x18,
        cr4: opts.cr4 ?? CR4_PSE,
        efer: opts.efer ?? 0,
      },
      opts.f ?? features,
    );

  it("walks PDE → PTE with 4-byte entries, ignores the high half of the address and records the trace", () => {
    const m = memory();
    const la = 0x8040_3abc; // PDE 0x201, PTE 0x003
    m.write32(PD + 0x201 * 4, PT | PRW);
    m.write32(PT + 3 * 4, 0x0055_5000 | PRW | A | D);
    const walker = new PageWalker(m);
    const trace = new WalkTrace();
    expect(walker.walk(ctx32(), la, 0xffff_ffff, accessOf("write", 3), trace)).toBe(true);
    expect(walker.result).toMatchObject({
      pa: 0x0055_5abc,
      pageSize: PAGE_4K,
      level: 1,
      pageAccess: PAGE_ACCESS.ALL, // no XD in 32-bit paging
      pkey: 0,
      memoryReads: 2,
    });
    // The trace holds the values as read; the walk then set A in the PDE.
    expect(trace.entries()).toEqual([
      { address: PD + 0x201 * 4, lo: PT | PRW, hi: 0, level: 2 },
      { address: PT + 12, lo: 0x0055_5000 | PRW | A | D, hi: 0, level: 1 },
    ]);
    expect(m.read32(PD + 0x201 * 4)).toBe((PT | PRW | A) >>> 0); // A written into the 4-byte PDE
  });

  it("maps a 4-MiB page with CR4.PSE=1", () => {
    const m = memory();
    m.write32(PD + 0x3ff * 4, 0x0fc0_0000 | PRW | PS);
    const walker = new PageWalker(m, { adUpdate: AD_UPDATE.NONE });
    expect(walker.walk(ctx32(), 0xffd2_3456, 0, ACCESS.READ)).toBe(true);
    expect(walker.result).toMatchObject({ pa: 0x0fd2_3456, pageSize: PAGE_4M, level: 2 });
  });

  it("PSE-36: PDE bits 20:13 give physical-address bits 39:32 of a 4-MiB page", () => {
    const m = memory();
    const pde = 0x0040_0000 | (0xa5 << 13) | PRW | PS; // bits 39:32 = 0xa5
    m.write32(PD, pde);
    const walker = new PageWalker(m, { adUpdate: AD_UPDATE.NONE });
    expect(walker.walk(ctx32(), 0x0012_3456, 0, ACCESS.READ)).toBe(true);
    expect(walker.result.pa).toBe(0xa5 * 2 ** 32 + 0x0052_3456);
    expect(walker.result.leafLo).toBe(pde >>> 0);
  });

  it("PSE-36 reserves bit 21 and the high-address bits at or above min(MAXPHYADDR, 40)", () => {
    const m = memory();
    const walker = new PageWalker(m, { adUpdate: AD_UPDATE.NONE });
    const walkPde = (pde: number, f: CpuFeatures) => {
      m.write32(PD, pde >>> 0);
      walker.walk(ctx32({ f }), 0x1000, 0, ACCESS.READ);
      return walker.result.ok ? "ok" : walker.result.errorCode;
    };
    const large = 0x0040_0000 | PRW | PS;
    const m46 = cpuFeatures({ maxPhysAddr: 46 });
    const m36 = cpuFeatures({ maxPhysAddr: 36 });
    const noPse36 = cpuFeatures({ maxPhysAddr: 46, pse36: false });
    expect(walkPde(large | (1 << 21), m46)).toBe(PFERR.PRESENT | PFERR.RSVD);
    expect(walkPde(large | (1 << 20), m46)).toBe("ok"); // address bit 39
    expect(walkPde(large | (1 << 16), m36)).toBe("ok"); // address bit 35
    expect(walker.result.pa).toBe(2 ** 35 + 0x0040_1000);
    expect(walkPde(large | (1 << 17), m36)).toBe(PFERR.PRESENT | PFERR.RSVD); // address bit 36
    expect(walkPde(large | (1 << 13), noPse36)).toBe(PFERR.PRESENT | PFERR.RSVD);
  });

  it("with CR4.PSE=0 the PDE's bit 7 is ignored: the PDE points to a page table", () => {
    const m = memory();
    m.write32(PD, PT | PRW | PS);
    m.write32(PT + 5 * 4, 0x0077_7000 | PRW);
    const walker = new PageWalker(m, { adUpdate: AD_UPDATE.NONE });
    expect(walker.walk(ctx32({ cr4: 0 }), 0x5123, 0, ACCESS.READ)).toBe(true);
    expect(walker.result).toMatchObject({ pa: 0x0077_7123, pageSize: PAGE_4K, level: 1 });
    // With CR4.PSE=1 the same PDE maps a 4-MiB page: base bits 31:22 = 0, and PT's bit 20
    // (0x10_1000) read as PSE-36 bits 20:13 = 0x80, i.e. physical-address bit 39.
    expect(walker.walk(ctx32(), 0x5123, 0, ACCESS.READ)).toBe(true);
    expect(walker.result).toMatchObject({ pa: 0x80 * 2 ** 32 + 0x5123, pageSize: PAGE_4M, level: 2 });
  });

  it("has no execute-disable: EFER.NXE neither forbids fetches nor adds I/D; SMEP adds I/D", () => {
    const m = memory();
    m.write32(PD, PT | P | W); // supervisor PDE
    m.write32(PT, 0x0020_0000 | P | W);
    const walker = new PageWalker(m, { adUpdate: AD_UPDATE.NONE });
    expect(walker.walk(ctx32({ efer: EFER_NXE }), 0, 0, ACCESS.FETCH)).toBe(true);
    expect(walker.walk(ctx32({ efer: EFER_NXE }), 0, 0, accessOf("fetch", 3))).toBe(false);
    expect(walker.result.errorCode).toBe(PFERR.PRESENT | PFERR.USER); // no I/D
    expect(walker.walk(ctx32({ cr4: CR4_PSE | CR4_SMEP }), 0, 0, accessOf("fetch", 3))).toBe(false);
    expect(walker.result.errorCode).toBe(PFERR.PRESENT | PFERR.USER | PFERR.FETCH);
  });

  it("sets D in the 4-byte PTE on a write and nothing in the high neighbour", () => {
    const m = memory();
    m.write32(PD, PT | PRW);
    m.write32(PT, 0x0020_0000 | PRW);
    m.write32(PT + 4, 0x1234_5678);
    const walker = new PageWalker(m);
    expect(walker.walk(ctx32(), 0x10, 0, ACCESS.WRITE)).toBe(true);
    expect(m.read32(PT)).toBe(0x0020_0000 | PRW | A | D);
    expect(m.read32(PT + 4)).toBe(0x1234_5678);
    expect(walker.result.memoryWrites).toBe(2);
  });
});

// ---------------------------------------------------------------------------------------------
describe("PAE paging", () => {
  const PDPT = 0x10_0fe0; // 32-byte aligned, not page aligned
  const PD0 = 0x10_1000;
  const PD3 = 0x10_2000;
  const PT = 0x10_3000;
  const features = cpuFeatures({ maxPhysAddr: 40 });

  function setup() {
    const m = memory();
    m.write64(PDPT, PD0 | P, 0);
    m.write64(PDPT + 8, 0, 0); // not present
    m.write64(PDPT + 16, 0xdead_b000, 0x8000_0000); // not present, junk allowed
    m.write64(PDPT + 24, PD3 | P | 0x18, 0); // PWT|PCD allowed
    m.write64(PD0 + 8, PT | PRW, 0);
    m.write64(PT + 0x10 * 8, 0x0050_0000 | PRW, 0);
    m.write64(PD3 + 0x1ff * 8, 0x00e0_0000 | PRW | PS, 0);
    const loaded = loadPdptes(m, PDPT | 0x8, features);
    if (!loaded.ok) throw new Error("PDPTEs rejected");
    const ctx = (efer = EFER_NXE, cr4 = 0) =>
      createPagingContext(
        { cr0: PG | CR0.WP, cr3: PDPT | 0x8, cr4: CR4_PAE | cr4, efer, pdptes: loaded.pdptes },
        features,
      );
    return { m, ctx, pdptes: loaded.pdptes };
  }

  it("walks PDPTE register → PDE → PTE, recording the PDPTE with address -1", () => {
    const { m, ctx } = setup();
    const walker = new PageWalker(m, { adUpdate: AD_UPDATE.NONE });
    const trace = new WalkTrace();
    expect(walker.walk(ctx(), 0x0021_0abc, 0, ACCESS.READ, trace)).toBe(true);
    expect(walker.result).toMatchObject({ pa: 0x0050_0abc, pageSize: PAGE_4K, level: 1, memoryReads: 2 });
    expect(trace.entries()).toEqual([
      { address: -1, lo: PD0 | P, hi: 0, level: 3 },
      { address: PD0 + 8, lo: PT | PRW, hi: 0, level: 2 },
      { address: PT + 0x80, lo: 0x0050_0000 | PRW, hi: 0, level: 1 },
    ]);
  });

  it("maps 2-MiB pages through the last PDPTE", () => {
    const { m, ctx } = setup();
    const walker = new PageWalker(m, { adUpdate: AD_UPDATE.NONE });
    expect(walker.walk(ctx(), 0xffe1_2345, 0, ACCESS.READ)).toBe(true);
    expect(walker.result).toMatchObject({ pa: 0x00e1_2345, pageSize: PAGE_2M, level: 2 });
  });

  it("a PDPTE that is not present faults at level 3 with only W/U/I in the error code", () => {
    const { m, ctx } = setup();
    const walker = new PageWalker(m);
    const trace = new WalkTrace();
    expect(walker.walk(ctx(), 0x4000_0000, 0, accessOf("write", 3), trace)).toBe(false);
    expect(walker.result).toMatchObject({ level: 3, guestFault: GUEST_FAULT.NOT_PRESENT, memoryReads: 0 });
    expect(walker.result.errorCode).toBe(PFERR.WRITE | PFERR.USER);
    expect(trace.entries()).toEqual([{ address: -1, lo: 0, hi: 0, level: 3 }]);
    expect(walker.walk(ctx(), 0x8000_0000, 0, ACCESS.FETCH)).toBe(false);
    expect(walker.result.errorCode).toBe(PFERR.FETCH);
    expect(walker.result.level).toBe(3);
  });

  it("uses the PDPTE registers, not memory: a later change to the PDPT has no effect until reloaded", () => {
    const { m, ctx } = setup();
    m.write64(PDPT, 0, 0);
    const walker = new PageWalker(m, { adUpdate: AD_UPDATE.NONE });
    expect(walker.walk(ctx(), 0x0021_0000, 0, ACCESS.READ)).toBe(true);
  });

  it("loadPdptes rejects a present PDPTE with bits 2:1, 8:5 or 63:MAXPHYADDR, naming the first", () => {
    const m = memory();
    const bad = (lo: number, hi: number, index = 2) => {
      for (let i = 0; i < 4; i++) m.write64(PDPT + i * 8, PD0 | P, 0);
      m.write64(PDPT + index * 8, lo, hi);
      return loadPdptes(m, PDPT, features);
    };
    for (const bit of [1, 2, 5, 6, 7, 8]) {
      expect(bad(PD0 | P | (1 << bit), 0)).toEqual({ ok: false, badIndex: 2 });
    }
    expect(bad(PD0 | P, 1 << 8)).toEqual({ ok: false, badIndex: 2 }); // bit 40 = MAXPHYADDR
    expect(bad(PD0 | P, 1 << 31, 1)).toEqual({ ok: false, badIndex: 1 }); // bit 63
    expect(bad(PD0 | P, 1 << 7)).toMatchObject({ ok: true }); // bit 39 is an address bit
    expect(bad(PD0 | 0x1e6, 0xffff_ffff)).toMatchObject({ ok: true }); // not present: anything goes
    expect(bad(PD0 | P | 0xe18, 0)).toMatchObject({ ok: true }); // PWT, PCD, bits 11:9
  });

  it("PAE paging needs CR0.PG and CR4.PAE without EFER.LMA; its table is at CR3 bits 31:5", () => {
    expect(isPaePaging(CR0.PG, CR4.PAE, 0)).toBe(true);
    expect(isPaePaging(CR0.PG, CR4.PAE, EFER.LMA)).toBe(false);
    expect(isPaePaging(0, CR4.PAE, 0)).toBe(false);
    expect(isPaePaging(CR0.PG, 0, 0)).toBe(false);
    expect(pdptAddress(0x1234_5678)).toBe(0x1234_5660);
    expect(pdptAddress(0xffff_ffff)).toBe(0xffff_ffe0);
  });

  it("loadPdptesInto reads the same four values as loadPdptes, allocating nothing", () => {
    const m = memory();
    for (let i = 0; i < 4; i++) m.write64(PDPT + i * 8, (PD0 + i * 0x1000) | P, i);
    const out = new Float64Array(4);
    expect(loadPdptesInto(m, PDPT, features, out)).toBe(-1);
    const loaded = loadPdptes(m, PDPT, features);
    expect(loaded.ok && Array.from(out)).toEqual(loaded.ok ? loaded.pdptes : null);
    m.write64(PDPT + 3 * 8, PD0 | P | 2, 0);
    expect(loadPdptesInto(m, PDPT, features, out)).toBe(3);
  });

  it("XD needs EFER.NXE: with it a fetch faults with I/D, without it bit 63 is reserved", () => {
    const { m, ctx } = setup();
    m.write64(PT + 0x10 * 8, 0x0050_0000 | PRW, PTE_HI.XD);
    const walker = new PageWalker(m, { adUpdate: AD_UPDATE.NONE });
    expect(walker.walk(ctx(), 0x0021_0000, 0, ACCESS.FETCH)).toBe(false);
    expect(walker.result.errorCode).toBe(PFERR.PRESENT | PFERR.FETCH);
    expect(walker.result.guestFault).toBe(GUEST_FAULT.ACCESS_RIGHTS);
    expect(walker.walk(ctx(), 0x0021_0000, 0, ACCESS.READ)).toBe(true);
    expect(walker.result.pageAccess).toBe(PAGE_ACCESS.WRITE | PAGE_ACCESS.USER);
    expect(walker.walk(ctx(0), 0x0021_0000, 0, ACCESS.READ)).toBe(false);
    expect(walker.result.errorCode).toBe(PFERR.PRESENT | PFERR.RSVD);
    expect(walker.walk(ctx(0), 0x0021_0000, 0, ACCESS.FETCH)).toBe(false);
    expect(walker.result.errorCode).toBe(PFERR.PRESENT | PFERR.RSVD); // no NXE, no SMEP: no I/D
  });

  it("reserves bits 62:MAXPHYADDR in PDEs and PTEs (protection keys do not exist in PAE paging)", () => {
    const { m, ctx } = setup();
    const walker = new PageWalker(m, { adUpdate: AD_UPDATE.NONE });
    for (const hiBit of [8, 20, 27, 30]) {
      m.write64(PT + 0x10 * 8, 0x0050_0000 | PRW, 1 << hiBit); // bits 40, 52, 59, 62
      expect(walker.walk(ctx(), 0x0021_0000, 0, ACCESS.READ)).toBe(false);
      expect(walker.result).toMatchObject({ errorCode: PFERR.PRESENT | PFERR.RSVD, level: 1 });
    }
    m.write64(PT + 0x10 * 8, 0x0050_0000 | PRW, 1 << 7); // bit 39 < MAXPHYADDR 40
    expect(walker.walk(ctx(), 0x0021_0000, 0, ACCESS.READ)).toBe(true);
    expect(walker.result.pa).toBe(2 ** 39 + 0x0050_0000);
  });
});

// ---------------------------------------------------------------------------------------------
/** Lays out 64-bit tables for any linear address given as halves (up to 57 bits). */
function longTables(m: DenseMemory, levels: 4 | 5, root: number) {
  let next = root + 0x1000;
  const index = (laLo: number, laHi: number, level: number) => {
    if (level === 1) return (laLo >>> 12) & 0x1ff;
    if (level === 2) return (laLo >>> 21) & 0x1ff;
    if (level === 3) return ((laLo >>> 30) | ((laHi & 0x7f) << 2)) & 0x1ff;
    if (level === 4) return (laHi >>> 7) & 0x1ff;
    return (laHi >>> 16) & 0x1ff;
  };
  /** Maps the page at (laLo, laHi) with a leaf at `leafLevel`; returns the entry addresses, top first. */
  const map = (laLo: number, laHi: number, leafLevel: number, leafLo: number, leafHi: number) => {
    const addresses: number[] = [];
    let table = root;
    for (let level = levels; level > leafLevel; level--) {
      const at = table + index(laLo, laHi, level) * 8;
      addresses.push(at);
      if ((m.read32(at) & P) === 0) {
        m.write64(at, next | PRW, 0);
        next += 0x1000;
      }
      table = m.read32(at) & 0xffff_f000;
    }
    const at = table + index(laLo, laHi, leafLevel) * 8;
    addresses.push(at);
    m.write64(at, leafLo >>> 0, leafHi >>> 0);
    return addresses;
  };
  return { map };
}

describe("4-level and 5-level paging", () => {
  const ROOT = 0x10_0000;
  const ctx64 = (levels: 4 | 5, f: CpuFeatures = cpuFeatures(), efer = EFER_NXE, cr4 = 0) =>
    createPagingContext(
      {
        cr0: PG | CR0.WP,
        cr3: ROOT,
        cr4: CR4_PAE | (levels === 5 ? CR4_LA57 : 0) | cr4,
        efer: EFER_LME_LMA | efer,
      },
      f,
    );

  it("5-level: translates a 57-bit address, using linear-address bits up to 56 (laHi bits up to 24)", () => {
    const m = memory();
    const t = longTables(m, 5, ROOT);
    const laHi = 0x01ab_cdef; // bits 56:32
    const laLo = 0x1234_5678;
    const entries = t.map(laLo, laHi, 1, 0x0066_6000 | PRW, 0);
    const walker = new PageWalker(m, { adUpdate: AD_UPDATE.NONE });
    const trace = new WalkTrace();
    expect(walker.walk(ctx64(5), laLo, laHi, ACCESS.READ, trace)).toBe(true);
    expect(walker.result).toMatchObject({ pa: 0x0066_6678, level: 1, memoryReads: 5 });
    expect(entries[0]).toBe(ROOT + 0x1ab * 8); // PML5 index = bits 56:48
    expect(trace.entries().map((e) => [e.address, e.level])).toEqual(entries.map((a, i) => [a, 5 - i]));
    // Bits 63:57 are not translated (canonicality is the caller's #GP check).
    expect(walker.walk(ctx64(5), laLo, (laHi | 0xfe00_0000) >>> 0, ACCESS.READ)).toBe(true);
    // Flipping bit 56 selects another PML5E.
    expect(walker.walk(ctx64(5), laLo, laHi ^ 0x0100_0000, ACCESS.READ)).toBe(false);
    expect(walker.result).toMatchObject({ level: 5, guestFault: GUEST_FAULT.NOT_PRESENT });
  });

  it("4-level: bits 63:48 are not translated", () => {
    const m = memory();
    const t = longTables(m, 4, ROOT);
    t.map(0x0000_1000, 0x7fff, 1, 0x0066_6000 | PRW, 0);
    const walker = new PageWalker(m, { adUpdate: AD_UPDATE.NONE });
    expect(walker.walk(ctx64(4), 0x1000, 0xffff_7fff, ACCESS.READ)).toBe(true);
    expect(walker.result.pa).toBe(0x0066_6000);
  });

  it("1-GiB pages with Page1GB; without it PDPTE.PS is a reserved bit", () => {
    const m = memory();
    const t = longTables(m, 4, ROOT);
    t.map(0x4000_0000, 0x12, 3, 0xc000_0000 | PRW | PS, 0x3); // pa 0x3_c000_0000
    const walker = new PageWalker(m, { adUpdate: AD_UPDATE.NONE });
    expect(walker.walk(ctx64(4), 0x4abc_def0, 0x12, ACCESS.READ)).toBe(true);
    expect(walker.result).toMatchObject({ pa: 0x3_cabc_def0, pageSize: PAGE_1G, level: 3 });
    expect(walker.walk(ctx64(4, cpuFeatures({ gbPages: false })), 0x4abc_def0, 0x12, ACCESS.READ)).toBe(
      false,
    );
    expect(walker.result).toMatchObject({ errorCode: PFERR.PRESENT | PFERR.RSVD, level: 3 });
  });

  it("a 1-GiB page reserves bits 29:13 (bit 12 is PAT); a 2-MiB page bits 20:13", () => {
    const m = memory();
    const t = longTables(m, 4, ROOT);
    const walker = new PageWalker(m, { adUpdate: AD_UPDATE.NONE });
    const probe = (laLo: number, leafLevel: number, leafLo: number) => {
      t.map(laLo, 0, leafLevel, leafLo, 0);
      walker.walk(ctx64(4), laLo, 0, ACCESS.READ);
      return walker.result.ok ? "ok" : walker.result.errorCode;
    };
    const gb = 0x4000_0000 | PRW | PS;
    expect(probe(0x4000_0000, 3, gb | (1 << 12))).toBe("ok");
    expect(probe(0x4000_0000, 3, gb | (1 << 13))).toBe(PFERR.PRESENT | PFERR.RSVD);
    expect(probe(0x4000_0000, 3, gb | (1 << 29))).toBe(PFERR.PRESENT | PFERR.RSVD);
    const mb = 0x0020_0000 | PRW | PS;
    expect(probe(0x8020_0000, 2, mb | (1 << 12))).toBe("ok");
    expect(probe(0x8020_0000, 2, mb | (1 << 20))).toBe(PFERR.PRESENT | PFERR.RSVD);
    expect(probe(0x8020_0000, 2, (0x0040_0000 | PRW | PS) >>> 0)).toBe("ok"); // bit 22: address
    expect(walker.result.pageSize).toBe(PAGE_2M);
  });

  it("PS in a PML4E or PML5E is a reserved bit", () => {
    for (const levels of [4, 5] as const) {
      const m = memory();
      m.write64(ROOT, 0x20_0000 | PRW | PS, 0);
      const walker = new PageWalker(m, { adUpdate: AD_UPDATE.NONE });
      expect(walker.walk(ctx64(levels), 0, 0, ACCESS.WRITE)).toBe(false);
      expect(walker.result).toMatchObject({
        errorCode: PFERR.PRESENT | PFERR.RSVD | PFERR.WRITE,
        level: levels,
      });
    }
  });

  it("XD with EFER.NXE=0 is a reserved-bit fault at the level that has it", () => {
    const m = memory();
    const t = longTables(m, 4, ROOT);
    const entries = t.map(0x2000, 0, 1, 0x0030_0000 | PRW, 0);
    m.write32(entries[1]! + 4, PTE_HI.XD); // the PDPTE
    const walker = new PageWalker(m, { adUpdate: AD_UPDATE.NONE });
    expect(walker.walk(ctx64(4, cpuFeatures(), 0), 0x2000, 0, accessOf("read", 3))).toBe(false);
    expect(walker.result).toMatchObject({
      errorCode: PFERR.PRESENT | PFERR.RSVD | PFERR.USER,
      level: 3,
      guestFault: GUEST_FAULT.RESERVED_BIT,
    });
    expect(walker.walk(ctx64(4), 0x2000, 0, accessOf("read", 3))).toBe(true);
    expect(walker.result.pageAccess).toBe(PAGE_ACCESS.WRITE | PAGE_ACCESS.USER); // XD from the PDPTE
  });

  it("the I/D bit: only for fetches, and only with EFER.NXE or CR4.SMEP", () => {
    const m = memory();
    const walker = new PageWalker(m, { adUpdate: AD_UPDATE.NONE });
    const code = (efer: number, cr4: number, access: number) => {
      walker.walk(ctx64(4, cpuFeatures(), efer, cr4), 0x7000, 0, access); // not present
      return walker.result.errorCode;
    };
    const fetch = accessOf("fetch", 0);
    const userFetch = accessOf("fetch", 3);
    expect(code(0, 0, fetch)).toBe(0);
    expect(code(EFER_NXE, 0, fetch)).toBe(PFERR.FETCH);
    expect(code(0, CR4_SMEP, fetch)).toBe(PFERR.FETCH);
    expect(code(0, 0, userFetch)).toBe(PFERR.USER);
    expect(code(EFER_NXE, CR4_SMEP, userFetch)).toBe(PFERR.USER | PFERR.FETCH);
    expect(code(EFER_NXE, CR4_SMEP, accessOf("read", 0))).toBe(0);
    expect(code(EFER_NXE, CR4_SMEP, accessOf("write", 3))).toBe(PFERR.WRITE | PFERR.USER);
    // The same holds for reserved-bit and rights faults.
    t4ForRights(m);
    walker.walk(ctx64(4, cpuFeatures(), 0, 0), 0x9000, 0, userFetch);
    expect(walker.result.errorCode).toBe(PFERR.PRESENT | PFERR.USER);
    walker.walk(ctx64(4, cpuFeatures(), 0, CR4_SMEP), 0x9000, 0, userFetch);
    expect(walker.result.errorCode).toBe(PFERR.PRESENT | PFERR.USER | PFERR.FETCH);
  });

  /** A supervisor-only page at 0x9000 for the rights checks above. */
  function t4ForRights(m: DenseMemory) {
    longTables(m, 4, ROOT).map(0x9000, 0, 1, 0x0040_0000 | P | W, 0);
  }

  it("the trace stops at the faulting entry and is reset by each walk", () => {
    const m = memory();
    const t = longTables(m, 4, ROOT);
    const entries = t.map(0x3000, 0, 1, 0x0030_0000 | PRW, 0x1 << PTE_HI.PKEY_SHIFT);
    const walker = new PageWalker(m);
    const trace = new WalkTrace();
    walker.walk(ctx64(4), 0x3000, 0, ACCESS.READ, trace);
    expect(trace.count).toBe(4);
    expect(trace.entries()[3]).toEqual({ address: entries[3], lo: 0x0030_0000 | PRW, hi: 1 << 27, level: 1 });
    expect(walker.result.leafLo).toBe(0x0030_0000 | PRW | A); // after the A update
    m.write64(entries[2]!, 0, 0); // PDE not present
    walker.walk(ctx64(4), 0x3000, 0, ACCESS.READ, trace);
    expect(trace.entries().map((e) => e.level)).toEqual([4, 3, 2]);
    expect(trace.entries()[2]).toEqual({ address: entries[2], lo: 0, hi: 0, level: 2 });
  });

  it("reports the protection key only when CR4.PKE or CR4.PKS is set", () => {
    const m = memory();
    const t = longTables(m, 4, ROOT);
    t.map(0x3000, 0, 1, 0x0030_0000 | PRW, 0xb << PTE_HI.PKEY_SHIFT);
    const walker = new PageWalker(m, { adUpdate: AD_UPDATE.NONE });
    walker.walk(ctx64(4), 0x3000, 0, ACCESS.READ);
    expect(walker.result.pkey).toBe(0);
    walker.walk(ctx64(4, cpuFeatures(), EFER_NXE, 1 << 22), 0x3000, 0, ACCESS.READ);
    expect(walker.result.pkey).toBe(0xb);
    walker.walk(ctx64(4, cpuFeatures(), EFER_NXE, 1 << 24), 0x3000, 0, ACCESS.READ);
    expect(walker.result.pkey).toBe(0xb);
  });
});
