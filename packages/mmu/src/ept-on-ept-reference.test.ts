import {
  createEptContext,
  EPT_MEMORY_TYPE,
  EPTE_LO,
  encodeEptPointer,
  MODERN_EPT_CAPABILITIES,
  SparseMemory,
} from "@nestvisor/x86-arch";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AUDIT_FORMAT, AUDIT_PROBLEM, type AuditResult, assertAuditClean, TableAuditor } from "./audit";
import { ReferenceMapping, ReferenceTable } from "./audit-reference";
import { eptOnEptReference } from "./ept-on-ept-reference";
import { HostPageAllocator } from "./host-page-allocator";
import { MemslotMemory } from "./memslot-memory";
import { Memslots } from "./memslots";
import { ACC, PAGE_ROLE } from "./page-role";
import { ShadowPageStore } from "./shadow-page-store";
import { HandBuiltTables } from "./testing/hand-built-tables";

/** Shadow-EPT root role, 4-level, A/D on (kvm-mmu.md §2.9). */
const SHADOW_EPT_ROLE = 0x00020704;
const MIB = 2 ** 20;
const TABLE_BASE = 0x1000_0000;
/** L1 gfns [0x10, ...) hold EPT12's tables. */
const EPT12_TABLES_GFN = 0x10;

/** One EPT12 leaf: L2 GPA → L1 GPA with rights (ACC form) at `level`. */
interface Ept12Leaf {
  readonly l2: number;
  readonly l1: number;
  readonly level: 1 | 2;
  readonly rights: number;
}

/**
 * L1's memory: slot 0 = L1 gfns [0, 0x1000) at host 0x2000_0000; slot 1 = [0x1000, 0x1100)
 * read-only at host 0x3000_0000; a hole at [0x1100, 0x2000); slot 2 = [0x2000, 0x2400) at host
 * 0x4000_0000. EPT12 lives in slot 0, built through the memslot view; EPT02 in host memory, its
 * pages from a ShadowPageStore with the role and gfn KVM would give them.
 */
function setup() {
  const host = new SparseMemory();
  const memslots = new Memslots();
  memslots.add({ id: 0, baseGfn: 0, npages: 0x1000, hostBase: 0x2000_0000 });
  memslots.add({ id: 1, baseGfn: 0x1000, npages: 0x100, hostBase: 0x3000_0000, readOnly: true });
  memslots.add({ id: 2, baseGfn: 0x2000, npages: 0x400, hostBase: 0x4000_0000 });
  const l1 = new MemslotMemory(host, memslots);
  let nextL1Table = EPT12_TABLES_GFN * 4096;
  const ept12 = new HandBuiltTables(l1, "ept", 4, () => {
    const page = nextL1Table;
    nextL1Table += 4096;
    return page;
  });
  const { lo, hi } = encodeEptPointer({
    memoryType: EPT_MEMORY_TYPE.WB,
    walkLength: 4,
    accessedDirty: true,
    supervisorShadowStack: false,
    root: ept12.root,
  });
  const context = createEptContext({ eptpLo: lo, eptpHi: hi }, MODERN_EPT_CAPABILITIES, 46);
  const leaves: Ept12Leaf[] = [];
  const allocator = new HostPageAllocator(host, { base: TABLE_BASE, pages: 512, zeroed: true });
  const store = new ShadowPageStore({ allocator });

  /** The L1 gfn an L2 GPA lands on, or -1. */
  const l1Of = (l2: number): number => {
    for (const leaf of leaves) {
      const size = leaf.level === 1 ? 4096 : 2 * MIB;
      if (l2 >= leaf.l2 && l2 < leaf.l2 + size) return leaf.l1 + (l2 - leaf.l2);
    }
    return -1;
  };
  /** The L2 GPA of the fault being handled (the tables it creates are for it). */
  let faulting = 0;
  /** kvm: FNAME(fetch) — shadow EPT02 pages: indirect over EPT12 tables, direct below an EPT12 large page. */
  const ept02Page = (level: number, base: number): number => {
    const role = (SHADOW_EPT_ROLE & ~PAGE_ROLE.LEVEL_MASK) | level;
    if (level === 4) return store.hostPage(store.alloc(ept12.root / 4096, role, false));
    const leaf = leaves.find((f) => faulting >= f.l2 && faulting < f.l2 + (f.level === 1 ? 4096 : 2 * MIB));
    if (leaf === undefined) throw new Error(`no EPT12 leaf for 0x${faulting.toString(16)}`);
    if (leaf.level <= level) {
      return store.hostPage(store.alloc(Math.floor(ept12.entryAddress(faulting, level) / 4096), role, false));
    }
    return store.hostPage(store.alloc(l1Of(base) / 4096, role | PAGE_ROLE.DIRECT, false));
  };
  let ept02: HandBuiltTables | null = null;

  return {
    host,
    memslots,
    l1,
    ept12,
    context,
    store,
    leaves,
    l1Of,
    reference: eptOnEptReference(l1, context, memslots),
    /** Maps an EPT12 leaf. */
    map12(leaf: Ept12Leaf) {
      leaves.push(leaf);
      ept12.map(leaf.l2, leaf.l1, leaf.level, leaf.rights);
    },
    /** The EPT02 tables (created on first use, so the EPT12 mappings can name the root's gfn). */
    get ept02(): HandBuiltTables {
      ept02 ??= new HandBuiltTables(host, "ept", 4, ept02Page);
      return ept02;
    },
    /** KVM's EPT02 leaf for a fault at L2 GPA `l2` (4 KiB): EPT12's rights AND the slot's. */
    fault(l2: number, dropWrite = false) {
      faulting = l2;
      const l1Gpa = l1Of(l2);
      const slot = memslots.lookup(l1Gpa / 4096);
      const leaf = leaves.find((f) => l2 >= f.l2 && l2 < f.l2 + (f.level === 1 ? 4096 : 2 * MIB))!;
      let rights = leaf.rights;
      if (memslots.readOnlyAt(slot) || dropWrite) rights &= ~ACC.WRITE;
      this.ept02.map(l2, memslots.hostAddressAt(slot, l1Gpa / 4096), 1, rights);
    },
  };
}

type Fixture = ReturnType<typeof setup>;

function audit(f: Fixture, withStore = true): AuditResult {
  return new TableAuditor({
    memory: f.host,
    format: AUDIT_FORMAT.EPT,
    reference: f.reference,
    store: withStore ? f.store : null,
  }).audit(f.ept02.root);
}

function failure(result: AuditResult) {
  expect(result.ok).toBe(false);
  if (result.ok) throw new Error("unreachable");
  return result.inconsistency;
}

/** A fixture with a 4-KiB R-only page, a 4-KiB RWX page in the read-only slot, and a 2-MiB RX page. */
function populated(): Fixture {
  const f = setup();
  f.map12({ l2: 0x1000, l1: 0x50_0000, level: 1, rights: ACC.USER });
  f.map12({ l2: 0x2000, l1: 0x100_0000, level: 1, rights: ACC.ALL }); // L1 gfn 0x1000: read-only slot
  f.map12({ l2: 0x4000_0000, l1: 0x200_0000, level: 2, rights: ACC.USER | ACC.EXEC });
  f.map12({ l2: 0x3000, l1: 0x110_0000, level: 1, rights: ACC.ALL }); // L1 gfn 0x1100: the hole
  f.fault(0x1000);
  f.fault(0x2000);
  f.fault(0x4000_0000);
  f.fault(0x4001_3000);
  return f;
}

describe("eptOnEptReference (L2 GPA → EPT12 → L1 GPA → memslot)", () => {
  it("composes EPT12's rights with the memslot's, and spans to the end of the EPT12 page", () => {
    const f = populated();
    const out = new ReferenceMapping();
    expect(f.reference.translate(0x1000, out)).toBe(true);
    expect(out).toMatchObject({
      gpa: 0x50_0000,
      hpa: 0x2050_0000,
      rights: ACC.USER,
      altRights: -1,
      span: 4096,
    });
    expect(f.reference.translate(0x2000, out)).toBe(true);
    expect(out).toMatchObject({ gpa: 0x100_0000, hpa: 0x3000_0000, rights: ACC.USER | ACC.EXEC });
    expect(f.reference.translate(0x4001_3000, out)).toBe(true);
    expect(out).toMatchObject({ gpa: 0x201_3000, hpa: 0x4001_3000, rights: ACC.USER | ACC.EXEC });
    expect(out.span).toBe(2 * MIB - 0x13000);
  });

  it("maps nothing where EPT12 has no entry, is misconfigured, or leads outside the memslots", () => {
    const f = populated();
    const out = new ReferenceMapping();
    expect(f.reference.translate(0x5000, out)).toBe(false);
    expect(f.reference.translate(0x3000, out)).toBe(false); // L1 gfn 0x1100: no slot
    const pte = f.ept12.entryAddress(0x1000, 1);
    f.l1.write32(pte, (f.l1.read32(pte) & ~EPTE_LO.XWR) | EPTE_LO.WRITE); // W without R
    expect(f.reference.translate(0x1000, out)).toBe(false);
  });

  it("ANDs EPT12's rights over every level, not just the leaf's", () => {
    const f = populated();
    f.map12({ l2: 0x5000, l1: 0x50_5000, level: 1, rights: ACC.ALL });
    f.fault(0x5000);
    const pde = f.ept12.entryAddress(0x5000, 2);
    f.l1.write32(pde, (f.l1.read32(pde) & ~EPTE_LO.XWR) | EPTE_LO.READ | EPTE_LO.EXECUTE);
    const out = new ReferenceMapping();
    f.reference.translate(0x5000, out);
    expect(out.rights).toBe(ACC.USER | ACC.EXEC);
    expect(failure(audit(f))).toMatchObject({ problem: AUDIT_PROBLEM.EXCESS_RIGHTS, path: [0, 0, 0, 5] });
  });

  it("probes EPT12 without touching its A/D bits", () => {
    const f = populated();
    const pte = f.ept12.entryAddress(0x1000, 1);
    f.l1.write32(pte, f.l1.read32(pte) & ~EPTE_LO.ACCESSED);
    const before = f.l1.readBytes(EPT12_TABLES_GFN * 4096, 8 * 4096);
    f.reference.translate(0x1000, new ReferenceMapping());
    f.reference.expectedTable?.(0x1000, 1, new ReferenceTable());
    expect(f.l1.readBytes(EPT12_TABLES_GFN * 4096, 8 * 4096)).toEqual(before);
  });

  it("expects EPT02 pages to shadow EPT12's tables, and direct pages below an EPT12 large page", () => {
    const f = populated();
    const table = new ReferenceTable();
    expect(f.reference.expectedTable?.(0, 4, table)).toBe(true);
    expect(table).toMatchObject({ gfn: f.ept12.root / 4096, direct: false });
    expect(f.reference.expectedTable?.(0, 1, table)).toBe(true);
    expect(table).toMatchObject({ gfn: Math.floor(f.ept12.entryAddress(0x1000, 1) / 4096), direct: false });
    expect(f.reference.expectedTable?.(0x4000_0000, 2, table)).toBe(true);
    expect(table.direct).toBe(false);
    expect(f.reference.expectedTable?.(0x4000_0000, 1, table)).toBe(true);
    expect(table).toMatchObject({ gfn: 0x2000, direct: true });
    expect(f.reference.expectedTable?.(0x8000_0000, 1, table)).toBe(false); // EPT12 has nothing there
    expect(f.reference.expectedTable?.(0x1000, 5, table)).toBe(false); // above EPT12's 4-level root
  });
});

describe("the audit of hand-built EPT02 tables", () => {
  it("passes KVM-shaped EPT02 tables, store checks included", () => {
    const f = populated();
    expect(assertAuditClean(audit(f))).toMatchObject({ tables: 6, leaves: 4, skippedUnsyncLeaves: 0 });
  });

  it("reports a changed frame with the path of the leaf", () => {
    const f = populated();
    const leaf = f.ept02.entryAddress(0x4001_3000, 1);
    f.host.write32(leaf, f.host.read32(leaf) + 0x1000);
    expect(failure(audit(f))).toMatchObject({
      problem: AUDIT_PROBLEM.WRONG_FRAME,
      path: [0, 1, 0, 0x13],
      address: 0x4001_3000,
      expected: 0x4001_3000,
      found: 0x4001_4000,
    });
  });

  it("reports W where EPT12 grants R only, and W on an L1 page in a read-only slot", () => {
    const f = populated();
    const leaf = f.ept02.entryAddress(0x1000, 1);
    f.host.write32(leaf, f.host.read32(leaf) | EPTE_LO.WRITE);
    const bad = failure(audit(f));
    expect(bad).toMatchObject({
      problem: AUDIT_PROBLEM.EXCESS_RIGHTS,
      path: [0, 0, 0, 1],
      expected: ACC.USER,
    });
    expect(bad.message).toContain("grants RW on L2 GPA 0x1000; the reference allows R");
    const g = populated();
    const ro = g.ept02.entryAddress(0x2000, 1);
    g.host.write32(ro, g.host.read32(ro) | EPTE_LO.WRITE);
    expect(failure(audit(g))).toMatchObject({ problem: AUDIT_PROBLEM.EXCESS_RIGHTS, path: [0, 0, 0, 2] });
  });

  it("reports X where EPT12 denies it, but accepts W withheld (a clean or write-tracked page)", () => {
    const f = populated();
    const leaf = f.ept02.entryAddress(0x1000, 1);
    f.host.write32(leaf, f.host.read32(leaf) | EPTE_LO.EXECUTE);
    expect(failure(audit(f)).problem).toBe(AUDIT_PROBLEM.EXCESS_RIGHTS);
    const g = setup();
    g.map12({ l2: 0x7000, l1: 0x7000, level: 1, rights: ACC.ALL });
    g.fault(0x7000, true);
    expect(audit(g).ok).toBe(true);
  });

  it("reports a stale EPT02 leaf after L1 remaps or unmaps its EPT12 entry", () => {
    const f = populated();
    const pte = f.ept12.entryAddress(0x1000, 1);
    f.l1.write32(pte, f.l1.read32(pte) + 0x1000); // L1 moves L2's page without INVEPT
    expect(failure(audit(f))).toMatchObject({
      problem: AUDIT_PROBLEM.WRONG_FRAME,
      address: 0x1000,
      expected: 0x2050_1000,
      found: 0x2050_0000,
    });
    f.l1.write64(pte, 0, 0); // ... or unmaps it
    expect(failure(audit(f))).toMatchObject({ problem: AUDIT_PROBLEM.NOT_MAPPED, address: 0x1000 });
  });

  it("reports an EPT02 leaf whose L1 page is outside the memslots (MMIO)", () => {
    const f = populated();
    f.ept02.map(0x3000, 0x2110_0000, 1, ACC.ALL);
    expect(failure(audit(f))).toMatchObject({ problem: AUDIT_PROBLEM.NOT_MAPPED, path: [0, 0, 0, 3] });
  });

  it("reports an EPT02 page with the wrong gfn or kind, and one the store does not know", () => {
    const f = populated();
    const pde = f.ept02.entryAddress(0x4000_0000, 2);
    const directPt = f.store.idOfHostPage(f.ept02.entryAddress(0x4000_0000, 1) - 0);
    expect(f.store.role(directPt) & PAGE_ROLE.DIRECT).toBe(PAGE_ROLE.DIRECT);
    // Point the PDE at the indirect PT that shadows EPT12's PT for L2 GPA 0x1000.
    const indirectPt = f.ept02.entryAddress(0x1000, 1) - 8;
    f.host.write32(pde, (f.host.read32(pde) & 0xfff) | indirectPt);
    expect(failure(audit(f))).toMatchObject({
      problem: AUDIT_PROBLEM.WRONG_TABLE_GFN,
      path: [0, 1, 0],
      expected: 0x2000,
      found: Math.floor(f.ept12.entryAddress(0x1000, 1) / 4096),
    });
    const g = populated();
    const gPde = g.ept02.entryAddress(0x4000_0000, 2);
    const stray = TABLE_BASE + 400 * 4096;
    g.host.write32(gPde, (g.host.read32(gPde) & 0xfff) | stray);
    expect(failure(audit(g))).toMatchObject({ problem: AUDIT_PROBLEM.UNKNOWN_TABLE, found: stray });
    expect(audit(g, false).ok).toBe(true); // without a store: any page in memory will do (it is empty)
  });

  it("after random EPT12 mappings and faults, is clean, and finds any one corrupted leaf by its path", () => {
    const leafArb = fc.record({
      l2Page: fc.integer({ min: 0, max: 0x3ff }),
      l1Page: fc.oneof(fc.integer({ min: 0x100, max: 0xfff }), fc.integer({ min: 0x1000, max: 0x10ff })),
      rights: fc.constantFrom(ACC.USER, ACC.USER | ACC.WRITE, ACC.USER | ACC.EXEC, ACC.ALL, ACC.EXEC),
    });
    fc.assert(
      fc.property(
        fc.uniqueArray(leafArb, { minLength: 1, maxLength: 24, selector: (l) => l.l2Page }),
        fc.nat(),
        fc.constantFrom("frame", "write", "read", "exec"),
        (mapped, pick, corruption) => {
          const f = setup();
          for (const m of mapped)
            f.map12({ l2: m.l2Page * 4096, l1: m.l1Page * 4096, level: 1, rights: m.rights });
          for (const m of mapped) f.fault(m.l2Page * 4096, (m.l2Page & 3) === 0);
          const stats = assertAuditClean(audit(f));
          expect(stats.leaves).toBe(mapped.length);
          const victim = mapped[pick % mapped.length]!;
          const entry = f.ept02.entryAddress(victim.l2Page * 4096, 1);
          const lo = f.host.read32(entry);
          const bit =
            corruption === "frame"
              ? 0x1000
              : corruption === "write"
                ? EPTE_LO.WRITE
                : corruption === "read"
                  ? EPTE_LO.READ
                  : EPTE_LO.EXECUTE;
          const allowed =
            f.l1Of(victim.l2Page * 4096) >= 0x100_0000 ? victim.rights & ~ACC.WRITE : victim.rights;
          const acc = bit === EPTE_LO.READ ? ACC.USER : bit === EPTE_LO.WRITE ? ACC.WRITE : ACC.EXEC;
          // A right already there, or one the reference grants (W withheld from a writable page), is no corruption.
          if (corruption !== "frame" && ((lo & bit) !== 0 || (allowed & acc) !== 0)) return;
          f.host.write32(entry, corruption === "frame" ? lo ^ bit : lo | bit);
          const bad = failure(audit(f));
          expect(bad.path).toEqual([0, 0, Math.floor(victim.l2Page / 512), victim.l2Page % 512]);
          expect([AUDIT_PROBLEM.WRONG_FRAME, AUDIT_PROBLEM.EXCESS_RIGHTS, AUDIT_PROBLEM.MALFORMED]).toContain(
            bad.problem,
          );
        },
      ),
      { numRuns: 80 },
    );
  });
});
