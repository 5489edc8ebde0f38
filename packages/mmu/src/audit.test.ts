import { DenseMemory, EPTE_LO, type Gpa, gpa, type PhysicalMemory } from "@nestvisor/x86-arch";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  AUDIT_FORMAT,
  AUDIT_PRESENCE,
  AUDIT_PROBLEM,
  AuditError,
  type AuditResult,
  assertAuditClean,
  auditTables,
  TableAuditor,
} from "./audit";
import { HostPageAllocator } from "./host-page-allocator";
import { Memslots } from "./memslots";
import { ACC, PAGE_ROLE } from "./page-role";
import { ShadowPageStore } from "./shadow-page-store";
import { SPTE_LO, spteAddress } from "./spte";
import { TDP_MAP_RESULT, TdpMmu } from "./tdp-mmu";
import { tdpReference } from "./tdp-reference";
import { HandBuiltTables } from "./testing/hand-built-tables";

/** 4-level TDP root role, A/D on (kvm-mmu.md §2.9), and its 5-level twin. */
const TDP_ROOT = 0x00003784;
const TDP_ROOT_5 = ((TDP_ROOT & ~PAGE_ROLE.LEVEL_MASK) | 5) >>> 0;
const GIB = 2 ** 30;
const MIB = 2 ** 20;
const TABLE_BASE = 0x10_0000;

/**
 * The guest: slot 0 = gfns [0, 0x100), a hole, slot 1 = [0x200, 0x40000) (host-contiguous with
 * slot 0's backing, so 2-MiB pages fit), slot 2 = [0x100000, 0x101000) read-only.
 */
function setup(options: { hugePages?: boolean; tablePages?: number } = {}) {
  const tablePages = options.tablePages ?? 2048;
  const memory = new DenseMemory(TABLE_BASE + tablePages * 4096);
  const allocator = new HostPageAllocator(memory, { base: TABLE_BASE, pages: tablePages, zeroed: true });
  const memslots = new Memslots();
  const store = new ShadowPageStore({ allocator, memslots });
  const tdp = new TdpMmu({ store, memslots, hugePages: options.hugePages ?? false });
  memslots.add({ id: 0, baseGfn: 0, npages: 0x100, hostBase: 4 * GIB });
  memslots.add({ id: 1, baseGfn: 0x200, npages: 0x40000 - 0x200, hostBase: 4 * GIB + 2 * MIB });
  memslots.add({ id: 2, baseGfn: 0x100000, npages: 0x1000, hostBase: 8 * GIB, readOnly: true });
  const auditor = new TableAuditor({
    memory,
    format: AUDIT_FORMAT.EPT,
    reference: tdpReference(memslots),
    store,
  });
  return { memory, allocator, memslots, store, tdp, auditor };
}

/** Index of `address` in a table of `level`. */
function indexAt(address: number, level: number): number {
  return Math.floor(address / 2 ** (12 + 9 * (level - 1))) % 512;
}

/** Entry indices from the root (level `levels`) down to `level`. */
function pathOf(address: number, levels: number, level: number): number[] {
  const out: number[] = [];
  for (let l = levels; l >= level; l--) out.push(indexAt(address, l));
  return out;
}

/** Host address of the entry at `level` on the way to `address` in the tree at `root`. */
function entryOf(
  memory: PhysicalMemory,
  root: number,
  levels: number,
  address: number,
  level: number,
): number {
  let table = root;
  for (let l = levels; l > level; l--) {
    const pa = table + indexAt(address, l) * 8;
    table = spteAddress(memory.read32(pa), memory.read32(pa + 4));
  }
  return table + indexAt(address, level) * 8;
}

function failure(result: AuditResult) {
  expect(result.ok).toBe(false);
  if (result.ok) throw new Error("unreachable");
  return result.inconsistency;
}

describe("TableAuditor on TDP roots built by TdpMmu", () => {
  it("passes the tables of random faults, with and without 2-MiB pages, counting every leaf", () => {
    const slotGfn = fc.oneof(
      fc.integer({ min: 0, max: 0xff }),
      fc.integer({ min: 0x200, max: 0x3ffff }),
      fc.integer({ min: 0x100000, max: 0x100fff }),
      fc.integer({ min: 0x100, max: 0x1ff }), // the hole: MMIO, never mapped
    );
    fc.assert(
      fc.property(
        fc.array(fc.tuple(slotGfn, fc.boolean()), { minLength: 1, maxLength: 60 }),
        fc.boolean(),
        (faults, hugePages) => {
          const { tdp, auditor } = setup({ hugePages });
          const root = tdp.allocRoot(TDP_ROOT);
          const mapped = new Set<number>();
          for (const [gfn, write] of faults) {
            const r = tdp.map(root, (gfn * 4096 + 0x123) as Gpa, write);
            if (r === TDP_MAP_RESULT.FIXED || r === TDP_MAP_RESULT.SPURIOUS) mapped.add(gfn);
          }
          const stats = assertAuditClean(auditor.audit(root));
          if (!hugePages) expect(stats.leaves).toBe(mapped.size);
          else expect(stats.leaves).toBeLessThanOrEqual(mapped.size);
          expect(stats.entries).toBeGreaterThanOrEqual(stats.leaves);
        },
      ),
      { numRuns: 60 },
    );
  });

  it("audits a 5-level root", () => {
    const { tdp, memory, memslots, store } = setup();
    memslots.add({ id: 3, baseGfn: 2 ** 37, npages: 16, hostBase: 16 * GIB });
    const root = tdp.allocRoot(TDP_ROOT_5);
    const address = 2 ** 49 + 0x3000;
    expect(tdp.map(root, gpa(address), true)).toBe(TDP_MAP_RESULT.FIXED);
    const auditor = new TableAuditor({
      memory,
      format: AUDIT_FORMAT.EPT,
      levels: 5,
      reference: tdpReference(memslots),
      store,
    });
    expect(assertAuditClean(auditor.audit(root))).toEqual({
      tables: 5,
      entries: 5,
      leaves: 1,
      queries: 1 + 5, // one leaf, five table pages
      skippedUnsyncLeaves: 0,
    });
    const leaf = entryOf(memory, root, 5, address, 1);
    memory.write32(leaf, memory.read32(leaf) ^ 0x1000);
    const bad = failure(auditor.audit(root));
    expect(bad.problem).toBe(AUDIT_PROBLEM.WRONG_FRAME);
    expect(bad.path).toEqual(pathOf(address, 5, 1));
    expect(bad.address).toBe(address);
  });

  it("reports a leaf whose frame changed, with its path, address and both host addresses", () => {
    const { tdp, memory, auditor } = setup();
    const root = tdp.allocRoot(TDP_ROOT);
    const address = 0x1234_5000;
    expect(tdp.map(root, gpa(address), true)).toBe(TDP_MAP_RESULT.FIXED);
    expect(tdp.map(root, gpa(0x5000), false)).toBe(TDP_MAP_RESULT.FIXED);
    const leaf = entryOf(memory, root, 4, address, 1);
    const lo = memory.read32(leaf);
    memory.write32(leaf, lo ^ 0x1000);
    const bad = failure(auditor.audit(root));
    expect(bad).toMatchObject({
      problem: AUDIT_PROBLEM.WRONG_FRAME,
      format: "ept",
      path: pathOf(address, 4, 1),
      level: 1,
      address,
      entryAddress: leaf,
      entryLo: (lo ^ 0x1000) >>> 0,
      expected: 4 * GIB + address,
      found: 4 * GIB + (address ^ 0x1000),
    });
    expect(bad.message).toContain(`path [${pathOf(address, 4, 1).join(", ")}]`);
    expect(bad.message).toContain("GPA 0x12345000");
    expect(bad.message).toContain(`expected hpa 0x${(4 * GIB + address).toString(16)}`);
  });

  it("reports W added to a leaf of a read-only slot", () => {
    const { tdp, memory, auditor } = setup();
    const root = tdp.allocRoot(TDP_ROOT);
    const address = 0x1_0000_3000;
    expect(tdp.map(root, gpa(address), false)).toBe(TDP_MAP_RESULT.FIXED);
    assertAuditClean(auditor.audit(root));
    const leaf = entryOf(memory, root, 4, address, 1);
    memory.write32(leaf, memory.read32(leaf) | EPTE_LO.WRITE);
    const bad = failure(auditor.audit(root));
    expect(bad.problem).toBe(AUDIT_PROBLEM.EXCESS_RIGHTS);
    expect(bad.path).toEqual(pathOf(address, 4, 1));
    expect(bad.expected).toBe(ACC.USER | ACC.EXEC);
    expect(bad.found).toBe(ACC.ALL);
    expect(bad.message).toMatch(/grants RWX .* allows RX/);
  });

  it("accepts fewer rights than the reference (a write-protected leaf)", () => {
    const { tdp, memory, auditor } = setup();
    const root = tdp.allocRoot(TDP_ROOT);
    expect(tdp.map(root, gpa(0x4000), true)).toBe(TDP_MAP_RESULT.FIXED);
    const leaf = entryOf(memory, root, 4, 0x4000, 1);
    memory.write32(leaf, memory.read32(leaf) & ~(EPTE_LO.WRITE | EPTE_LO.EXECUTE));
    expect(auditor.audit(root).ok).toBe(true);
  });

  it("reports a non-leaf entry pointing to a page that is not a live shadow page", () => {
    const { tdp, memory, auditor, allocator } = setup();
    const root = tdp.allocRoot(TDP_ROOT);
    const address = 0x2020_0000;
    expect(tdp.map(root, gpa(address), true)).toBe(TDP_MAP_RESULT.FIXED);
    const pde = entryOf(memory, root, 4, address, 2);
    const free = allocator.pageAddress(allocator.capacity - 1); // never handed out
    expect(allocator.isAllocated(free)).toBe(false);
    memory.write32(pde, (memory.read32(pde) & 0xfff) | free);
    const bad = failure(auditor.audit(root));
    expect(bad.problem).toBe(AUDIT_PROBLEM.UNKNOWN_TABLE);
    expect(bad.path).toEqual(pathOf(address, 4, 2));
    expect(bad.level).toBe(2);
    expect(bad.found).toBe(free);
    expect(bad.message).toContain("not a live shadow page");
  });

  it("without a store, reports only pointers outside host memory", () => {
    const { tdp, memory, memslots } = setup();
    const root = tdp.allocRoot(TDP_ROOT);
    expect(tdp.map(root, gpa(0x7000), true)).toBe(TDP_MAP_RESULT.FIXED);
    const reference = tdpReference(memslots);
    expect(auditTables({ memory, format: AUDIT_FORMAT.EPT, reference, root }).ok).toBe(true);
    const pdpte = entryOf(memory, root, 4, 0x7000, 3);
    memory.write32(pdpte + 4, 0x1); // bit 32 of the address: beyond the 16-MiB host memory
    const bad = failure(auditTables({ memory, format: AUDIT_FORMAT.EPT, reference, root }));
    expect(bad.problem).toBe(AUDIT_PROBLEM.UNKNOWN_TABLE);
    expect(bad.path).toEqual([0, 0]);
    expect(bad.message).toContain("outside host memory");
  });

  it("reports a non-leaf entry pointing to a table of the wrong level", () => {
    const { tdp, memory, auditor } = setup();
    const root = tdp.allocRoot(TDP_ROOT);
    expect(tdp.map(root, gpa(0x9000), true)).toBe(TDP_MAP_RESULT.FIXED);
    const pdpte = entryOf(memory, root, 4, 0x9000, 3);
    const pte = entryOf(memory, root, 4, 0x9000, 1);
    const pt = pte - indexAt(0x9000, 1) * 8;
    memory.write32(pdpte, (memory.read32(pdpte) & 0xfff) | pt); // a PDPTE pointing at a PT
    const bad = failure(auditor.audit(root));
    expect(bad).toMatchObject({
      problem: AUDIT_PROBLEM.WRONG_TABLE_LEVEL,
      path: [0, 0],
      expected: 2,
      found: 1,
    });
  });

  it("reports the first of two swapped tables (their gfns disagree with the entries)", () => {
    const { tdp, memory, auditor } = setup();
    const root = tdp.allocRoot(TDP_ROOT);
    const a = 0x40_0000; // PD index 2
    const b = 0x60_0000; // PD index 3
    expect(tdp.map(root, gpa(a), true)).toBe(TDP_MAP_RESULT.FIXED);
    expect(tdp.map(root, gpa(b), true)).toBe(TDP_MAP_RESULT.FIXED);
    const pdeA = entryOf(memory, root, 4, a, 2);
    const pdeB = entryOf(memory, root, 4, b, 2);
    const loA = memory.read32(pdeA);
    memory.write32(pdeA, memory.read32(pdeB));
    memory.write32(pdeB, loA);
    const bad = failure(auditor.audit(root));
    expect(bad).toMatchObject({
      problem: AUDIT_PROBLEM.WRONG_TABLE_GFN,
      path: [0, 0, 2],
      address: a,
      expected: a / 4096,
      found: b / 4096,
    });
  });

  it("reports a leaf in the memslot hole as mapping what the reference does not map", () => {
    const { tdp, memory, auditor } = setup();
    const root = tdp.allocRoot(TDP_ROOT);
    expect(tdp.map(root, gpa(0xff000), true)).toBe(TDP_MAP_RESULT.FIXED); // last page of slot 0
    const leaf = entryOf(memory, root, 4, 0xff000, 1);
    memory.write64(leaf + 8, memory.read32(leaf) + 0x1000, memory.read32(leaf + 4)); // gfn 0x100: the hole
    const bad = failure(auditor.audit(root));
    expect(bad).toMatchObject({
      problem: AUDIT_PROBLEM.NOT_MAPPED,
      path: [0, 0, 0, 0x100],
      address: 0x100000,
      expected: -1,
      found: 4 * GIB + 0x100000,
    });
    expect(bad.message).toContain("the reference does not map it");
  });

  it("reports malformed entries: bit 7 above level 3, a misaligned 2-MiB frame, W without R", () => {
    {
      const { tdp, memory, auditor } = setup();
      const root = tdp.allocRoot(TDP_ROOT);
      expect(tdp.map(root, gpa(0x1000), true)).toBe(TDP_MAP_RESULT.FIXED);
      memory.write32(root, memory.read32(root) | 0x80);
      const bad = failure(auditor.audit(root));
      expect(bad).toMatchObject({ problem: AUDIT_PROBLEM.MALFORMED, path: [0], level: 4 });
      expect(bad.message).toContain("bit 7");
    }
    {
      const { tdp, memory, auditor } = setup({ hugePages: true });
      const root = tdp.allocRoot(TDP_ROOT);
      expect(tdp.map(root, gpa(0x40_1000), true)).toBe(TDP_MAP_RESULT.FIXED);
      const pde = entryOf(memory, root, 4, 0x40_0000, 2);
      expect(memory.read32(pde) & 0x80).toBe(0x80);
      assertAuditClean(auditor.audit(root));
      memory.write32(pde, memory.read32(pde) + 0x1000);
      const bad = failure(auditor.audit(root));
      expect(bad).toMatchObject({ problem: AUDIT_PROBLEM.MALFORMED, path: [0, 0, 2], level: 2 });
      expect(bad.message).toContain("not aligned to 2048 KiB");
    }
    {
      const { tdp, memory, auditor } = setup();
      const root = tdp.allocRoot(TDP_ROOT);
      expect(tdp.map(root, gpa(0x2000), true)).toBe(TDP_MAP_RESULT.FIXED);
      const leaf = entryOf(memory, root, 4, 0x2000, 1);
      memory.write32(leaf, memory.read32(leaf) & ~EPTE_LO.READ);
      expect(failure(auditor.audit(root)).message).toContain("writable but not readable");
    }
  });

  it("checks the root page itself: a live page of the root level", () => {
    const { tdp, memory, memslots, store, auditor, allocator } = setup();
    const root = tdp.allocRoot(TDP_ROOT);
    const notRoot = allocator.pageAddress(allocator.capacity - 1);
    const bad = failure(auditor.audit(notRoot));
    expect(bad).toMatchObject({ problem: AUDIT_PROBLEM.UNKNOWN_TABLE, path: [], entryAddress: -1 });
    expect(bad.message).toContain("root page");
    const five = new TableAuditor({
      memory,
      format: AUDIT_FORMAT.EPT,
      levels: 5,
      reference: tdpReference(memslots),
      store,
    });
    expect(failure(five.audit(root))).toMatchObject({
      problem: AUDIT_PROBLEM.WRONG_TABLE_LEVEL,
      expected: 5,
      found: 4,
    });
  });
});

describe("TableAuditor on hand-built EPT tables", () => {
  function handSetup() {
    const memory = new DenseMemory(TABLE_BASE + 64 * 4096);
    const allocator = new HostPageAllocator(memory, { base: TABLE_BASE, pages: 64, zeroed: true });
    const memslots = new Memslots();
    const tables = new HandBuiltTables(memory, "ept", 4, () => allocator.alloc());
    const audit = () =>
      auditTables({ memory, format: AUDIT_FORMAT.EPT, reference: tdpReference(memslots), root: tables.root });
    return { memory, memslots, tables, audit };
  }

  it("checks every 4-KiB subpage of a large leaf, one query per run the reference calls contiguous", () => {
    const { memslots, tables, audit } = handSetup();
    // gfns [0x400, 0x500) and [0x500, 0x600): one 2-MiB guest range in two slots.
    memslots.add({ id: 0, baseGfn: 0x400, npages: 0x100, hostBase: 4 * GIB });
    const second = memslots.add({ id: 1, baseGfn: 0x500, npages: 0x100, hostBase: 4 * GIB + MIB });
    tables.map(0x40_0000, 4 * GIB, 2, ACC.ALL);
    expect(assertAuditClean(audit())).toMatchObject({ leaves: 1, queries: 2 });
    // The second half backed elsewhere: the leaf's second MiB is wrong.
    memslots.delete(second);
    memslots.add({ id: 1, baseGfn: 0x500, npages: 0x100, hostBase: 6 * GIB });
    expect(failure(audit())).toMatchObject({
      problem: AUDIT_PROBLEM.WRONG_FRAME,
      path: [0, 0, 2],
      address: 0x50_0000,
      expected: 6 * GIB,
      found: 4 * GIB + MIB,
    });
    // Contiguous again but read-only: W is too much for the second half only.
    memslots.delete(1);
    memslots.add({ id: 1, baseGfn: 0x500, npages: 0x100, hostBase: 4 * GIB + MIB, readOnly: true });
    expect(failure(audit())).toMatchObject({ problem: AUDIT_PROBLEM.EXCESS_RIGHTS, address: 0x50_0000 });
    // A hole in the middle.
    memslots.delete(1);
    memslots.add({ id: 1, baseGfn: 0x501, npages: 0xff, hostBase: 4 * GIB + MIB + 4096 });
    expect(failure(audit())).toMatchObject({ problem: AUDIT_PROBLEM.NOT_MAPPED, address: 0x50_0000 });
  });

  it("KVM presence skips entries without bit 11; hardware presence audits them", () => {
    const { memory, memslots, tables, audit } = handSetup();
    memslots.add({ id: 0, baseGfn: 0, npages: 16, hostBase: 4 * GIB });
    tables.map(0x1000, 4 * GIB + 0x1000, 1, ACC.ALL);
    const stray = tables.entryAddress(0x1000, 1) + 8 * 31; // gfn 0x20: no slot
    memory.write64(stray, (0x7 | 0x30 | (4 * GIB + 0x20000)) >>> 0, 1); // RWX, WB, no bit 11
    expect(assertAuditClean(audit())).toMatchObject({ leaves: 1 });
    const hardware = auditTables({
      memory,
      format: AUDIT_FORMAT.EPT,
      reference: tdpReference(memslots),
      presence: AUDIT_PRESENCE.HARDWARE,
      root: tables.root,
    });
    expect(failure(hardware)).toMatchObject({ problem: AUDIT_PROBLEM.NOT_MAPPED, address: 0x20000 });
  });

  it("skips the leaves of unsync pages unless told not to", () => {
    const memory = new DenseMemory(TABLE_BASE + 16 * 4096);
    const allocator = new HostPageAllocator(memory, { base: TABLE_BASE, pages: 16, zeroed: true });
    const store = new ShadowPageStore({ allocator });
    const memslots = new Memslots();
    memslots.add({ id: 0, baseGfn: 0, npages: 16, hostBase: 4 * GIB });
    const role = (level: number) => ((TDP_ROOT & ~PAGE_ROLE.LEVEL_MASK) | level) >>> 0;
    const tables = new HandBuiltTables(memory, "ept", 4, (level, base) =>
      store.hostPage(store.alloc(base / 4096, role(level), false)),
    );
    tables.map(0x3000, 4 * GIB + 0x3000, 1, ACC.ALL);
    tables.map(0x4000, 4 * GIB + 0x9000, 1, ACC.ALL); // wrong frame
    const pt = tables.entryAddress(0x3000, 1) - 3 * 8;
    store.setUnsync(store.idOfHostPage(pt), true);
    const options = {
      memory,
      format: AUDIT_FORMAT.EPT,
      reference: tdpReference(memslots),
      store,
      root: tables.root,
    };
    expect(assertAuditClean(auditTables(options))).toMatchObject({ leaves: 2, skippedUnsyncLeaves: 2 });
    expect(failure(auditTables({ ...options, skipUnsync: false }))).toMatchObject({
      problem: AUDIT_PROBLEM.WRONG_FRAME,
      path: [0, 0, 0, 4],
    });
  });

  it("checks the direct bit of table pages against the reference", () => {
    const memory = new DenseMemory(TABLE_BASE + 16 * 4096);
    const allocator = new HostPageAllocator(memory, { base: TABLE_BASE, pages: 16, zeroed: true });
    const store = new ShadowPageStore({ allocator });
    const memslots = new Memslots();
    memslots.add({ id: 0, baseGfn: 0, npages: 16, hostBase: 4 * GIB });
    const tables = new HandBuiltTables(memory, "ept", 4, (level, base) => {
      const word = (TDP_ROOT & ~PAGE_ROLE.LEVEL_MASK) | level;
      return store.hostPage(store.alloc(base / 4096, level === 2 ? word & ~PAGE_ROLE.DIRECT : word, false));
    });
    tables.map(0x3000, 4 * GIB + 0x3000, 1, ACC.ALL);
    const bad = failure(
      auditTables({
        memory,
        format: AUDIT_FORMAT.EPT,
        reference: tdpReference(memslots),
        store,
        root: tables.root,
      }),
    );
    expect(bad).toMatchObject({
      problem: AUDIT_PROBLEM.WRONG_TABLE_KIND,
      path: [0, 0],
      expected: 1,
      found: 0,
    });
    expect(bad.message).toContain("indirect page");
  });
});

describe("assertAuditClean", () => {
  it("returns the stats of a clean audit and throws an AuditError with the message otherwise", () => {
    const { tdp, memory, auditor } = setup();
    const root = tdp.allocRoot(TDP_ROOT);
    expect(tdp.map(root, gpa(0x6000), true)).toBe(TDP_MAP_RESULT.FIXED);
    expect(assertAuditClean(auditor.audit(root)).leaves).toBe(1);
    const leaf = entryOf(memory, root, 4, 0x6000, 1);
    memory.write32(leaf, memory.read32(leaf) ^ 0x2000);
    const result = auditor.audit(root);
    expect(() => assertAuditClean(result)).toThrow(AuditError);
    try {
      assertAuditClean(result);
    } catch (error) {
      expect(error).toBeInstanceOf(AuditError);
      const e = error as AuditError;
      expect(e.inconsistency.problem).toBe(AUDIT_PROBLEM.WRONG_FRAME);
      expect(e.message).toBe(
        "ept audit against memslots: level-1 entry 0x06000001_00004b77 at hpa " +
          `0x${leaf.toString(16)}, path [0, 0, 0, 6] maps GPA 0x6000 to hpa 0x100004000; expected hpa 0x100006000`,
      );
    }
  });

  it("rejects a level count other than 4 or 5", () => {
    const { memory, memslots } = setup();
    expect(
      () =>
        new TableAuditor({
          memory,
          format: AUDIT_FORMAT.EPT,
          levels: 3 as 4,
          reference: tdpReference(memslots),
        }),
    ).toThrow(/not 4 or 5/);
  });
});

describe("TableAuditor leaves no trace", () => {
  it("reads the tables only", () => {
    const { tdp, memory, auditor } = setup();
    const root = tdp.allocRoot(TDP_ROOT);
    for (const a of [0x1000, 0x20_0000, 0x3000_0000])
      expect(tdp.map(root, gpa(a), true)).toBe(TDP_MAP_RESULT.FIXED);
    const before = memory.readBytes(TABLE_BASE, 16 * 4096);
    auditor.audit(root);
    expect(memory.readBytes(TABLE_BASE, 16 * 4096)).toEqual(before);
    expect(SPTE_LO.MMU_PRESENT).toBe(1 << 11);
  });
});
