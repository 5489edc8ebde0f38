import {
  CR0,
  CR4,
  createPagingContext,
  EFER,
  MODERN_CPU,
  type PagingRegisters,
  PTE_HI,
  PTE_LO,
  SparseMemory,
} from "@nestvisor/x86-arch";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AUDIT_FORMAT, AUDIT_PROBLEM, type AuditResult, assertAuditClean, TableAuditor } from "./audit";
import { ReferenceMapping, ReferenceTable } from "./audit-reference";
import { HostPageAllocator } from "./host-page-allocator";
import { MemslotMemory } from "./memslot-memory";
import { Memslots } from "./memslots";
import { ACC, PAGE_ROLE } from "./page-role";
import { ShadowPageStore } from "./shadow-page-store";
import { cr0WpAlternative, shadowPagingReference } from "./shadow-paging-reference";
import { HandBuiltTables } from "./testing/hand-built-tables";

const MIB = 2 ** 20;
const SLOT0_HOST = 0x2000_0000;
const TABLE_BASE = 0x1000_0000;
/** Shadow root role of a 64-bit guest with WP and NX (kvm-mmu.md §2.9, "Shadow: 0x00003704"). */
const SHADOW_ROLE = 0x00003704;
/** A kernel address: linear bits 47:0 of 0xffff_8000_0000_0000. */
const KERNEL = 2 ** 47;

const LONG_MODE = {
  cr0: (CR0.PE | CR0.PG | CR0.WP) >>> 0,
  cr4: CR4.PAE,
  efer: EFER.LME | EFER.LMA | EFER.NXE,
};

/** One guest leaf: GVA → GPA with rights (ACC form) at `level`. */
interface GuestLeaf {
  readonly gva: number;
  readonly gpa: number;
  readonly level: 1 | 2;
  readonly rights: number;
}

/**
 * Guest memory: slot 0 = gfns [0, 0x4000) at host 0x2000_0000, slot 1 = [0x4000, 0x4010) read-only
 * at host 0x3000_0000. Guest tables from GPA 0x10_0000 through the memslot view; shadow tables in
 * host memory, pages from a ShadowPageStore with KVM's gfns (guest table, or first gfn mapped).
 */
function setup(regs: Partial<PagingRegisters> = {}) {
  const host = new SparseMemory();
  const memslots = new Memslots();
  memslots.add({ id: 0, baseGfn: 0, npages: 0x4000, hostBase: SLOT0_HOST });
  memslots.add({ id: 1, baseGfn: 0x4000, npages: 0x10, hostBase: 0x3000_0000, readOnly: true });
  const guest = new MemslotMemory(host, memslots);
  let nextGuestTable = 0x10_0000;
  const guestTables = new HandBuiltTables(guest, "x86", 4, () => {
    const page = nextGuestTable;
    nextGuestTable += 4096;
    return page;
  });
  const context = createPagingContext({ ...LONG_MODE, cr3: guestTables.root, ...regs }, MODERN_CPU);
  const leaves: GuestLeaf[] = [];
  const allocator = new HostPageAllocator(host, { base: TABLE_BASE, pages: 256, zeroed: true });
  const store = new ShadowPageStore({ allocator });
  const leafOf = (gva: number) =>
    leaves.find((l) => gva >= l.gva && gva < l.gva + (l.level === 1 ? 4096 : 2 * MIB));
  let faulting = 0;
  let shadow: HandBuiltTables | null = null;
  /** kvm: FNAME(fetch) — indirect shadow pages over guest tables, direct ones below a guest large page. */
  const shadowPage = (level: number, base: number): number => {
    const role = (SHADOW_ROLE & ~PAGE_ROLE.LEVEL_MASK) | level;
    if (level === 4) return store.hostPage(store.alloc(guestTables.root / 4096, role, false));
    const leaf = leafOf(faulting)!;
    if (leaf.level <= level) {
      return store.hostPage(
        store.alloc(Math.floor(guestTables.entryAddress(faulting, level) / 4096), role, false),
      );
    }
    const gpa = leaf.gpa + (base - leaf.gva);
    return store.hostPage(store.alloc(gpa / 4096, role | PAGE_ROLE.DIRECT, false));
  };
  return {
    host,
    memslots,
    guest,
    guestTables,
    context,
    store,
    reference: shadowPagingReference(guest, context, memslots),
    mapGuest(leaf: GuestLeaf) {
      leaves.push(leaf);
      guestTables.map(leaf.gva, leaf.gpa, leaf.level, leaf.rights);
    },
    get shadow(): HandBuiltTables {
      shadow ??= new HandBuiltTables(host, "x86", 4, shadowPage);
      return shadow;
    },
    /** KVM's 4-KiB shadow leaf for a fault at `gva`, with the guest's rights (or `rights`). */
    fault(gva: number, rights?: number) {
      faulting = gva;
      const leaf = leafOf(gva)!;
      const gpa = leaf.gpa + (gva - leaf.gva);
      const slot = memslots.lookup(gpa / 4096);
      let acc = rights ?? leaf.rights;
      if (rights === undefined && memslots.readOnlyAt(slot)) acc &= ~ACC.WRITE;
      this.shadow.map(gva, memslots.hostAddressAt(slot, gpa / 4096), 1, acc);
    },
  };
}

type Fixture = ReturnType<typeof setup>;

function audit(f: Fixture): AuditResult {
  return new TableAuditor({
    memory: f.host,
    format: AUDIT_FORMAT.X86_64,
    reference: f.reference,
    store: f.store,
  }).audit(f.shadow.root);
}

function failure(result: AuditResult) {
  expect(result.ok).toBe(false);
  if (result.ok) throw new Error("unreachable");
  return result.inconsistency;
}

/** User RWX, user RX, supervisor RW NX, a kernel RX page, a 2-MiB user page, a page in a read-only slot. */
function populated(regs: Partial<PagingRegisters> = {}): Fixture {
  const f = setup(regs);
  f.mapGuest({ gva: 0x1000, gpa: 0x50_0000, level: 1, rights: ACC.ALL });
  f.mapGuest({ gva: 0x2000, gpa: 0x51_0000, level: 1, rights: ACC.USER | ACC.EXEC });
  f.mapGuest({ gva: 0x3000, gpa: 0x52_0000, level: 1, rights: ACC.WRITE });
  f.mapGuest({ gva: KERNEL, gpa: 0x60_0000, level: 1, rights: ACC.EXEC });
  f.mapGuest({ gva: 0x4000_0000, gpa: 0x80_0000, level: 2, rights: ACC.ALL });
  f.mapGuest({ gva: 0x5000, gpa: 0x400_0000, level: 1, rights: ACC.ALL });
  for (const gva of [0x1000, 0x2000, 0x3000, KERNEL, 0x4000_0000, 0x4001_5000, 0x5000]) f.fault(gva);
  return f;
}

describe("shadowPagingReference (GVA → guest walk → GPA → memslot)", () => {
  it("gives the guest walk's ACC, the host page, and the rest of the guest page as span", () => {
    const f = populated();
    const out = new ReferenceMapping();
    expect(f.reference.translate(0x2000, out)).toBe(true);
    expect(out).toMatchObject({ gpa: 0x51_0000, hpa: SLOT0_HOST + 0x51_0000, rights: ACC.USER | ACC.EXEC });
    expect(out).toMatchObject({ altRights: -1, span: 4096 });
    expect(f.reference.translate(0x3000, out)).toBe(true);
    expect(out.rights).toBe(ACC.WRITE); // supervisor, NX
    expect(f.reference.translate(0x4001_5000, out)).toBe(true);
    expect(out).toMatchObject({ gpa: 0x81_5000, rights: ACC.ALL, span: 2 * MIB - 0x15000 });
    expect(f.reference.translate(0x5000, out)).toBe(true);
    expect(out).toMatchObject({ hpa: 0x3000_0000, rights: ACC.USER | ACC.EXEC }); // read-only slot
    expect(f.reference.translate(0x6000, out)).toBe(false);
  });

  it("ignores SMAP and protection keys, which the processor applies to the shadow itself", () => {
    const f = populated({ cr4: CR4.PAE | CR4.SMAP | CR4.PKE, pkru: 0xffffffff });
    const out = new ReferenceMapping();
    expect(f.reference.translate(0x1000, out)).toBe(true);
    expect(out.rights).toBe(ACC.ALL);
  });

  it("with CR0.WP=0 offers the writable supervisor variant of a read-only page", () => {
    const f = populated({ cr0: CR0.PE | CR0.PG, cr4: CR4.PAE | CR4.SMEP });
    const out = new ReferenceMapping();
    f.reference.translate(0x2000, out);
    expect(out).toMatchObject({ rights: ACC.USER | ACC.EXEC, altRights: ACC.WRITE });
    f.reference.translate(0x1000, out);
    expect(out.altRights).toBe(-1); // already writable
    expect(cr0WpAlternative(ACC.USER | ACC.EXEC, false, false)).toBe(ACC.WRITE | ACC.EXEC);
    expect(cr0WpAlternative(ACC.EXEC, false, true)).toBe(ACC.WRITE);
    expect(cr0WpAlternative(ACC.USER, true, false)).toBe(-1);
  });

  it("expects shadows of the guest's tables, and direct pages below a guest large page", () => {
    const f = populated();
    const table = new ReferenceTable();
    expect(f.reference.expectedTable?.(0, 4, table)).toBe(true);
    expect(table).toMatchObject({ gfn: f.guestTables.root / 4096, direct: false });
    expect(f.reference.expectedTable?.(0x4000_0000, 2, table)).toBe(true);
    expect(table.direct).toBe(false);
    expect(f.reference.expectedTable?.(0x4000_0000, 1, table)).toBe(true);
    expect(table).toMatchObject({ gfn: 0x800, direct: true });
    expect(f.reference.expectedTable?.(2 ** 46, 2, table)).toBe(false); // nothing mapped there
  });

  it("probes without setting the guest's A/D bits", () => {
    const f = populated();
    const pte = f.guestTables.entryAddress(0x1000, 1);
    f.guest.write32(pte, f.guest.read32(pte) & ~PTE_LO.ACCESSED);
    const before = f.guest.readBytes(0x10_0000, 8 * 4096);
    f.reference.translate(0x1000, new ReferenceMapping());
    expect(f.guest.readBytes(0x10_0000, 8 * 4096)).toEqual(before);
  });
});

describe("the audit of hand-built shadow page tables (4-level)", () => {
  it("passes KVM-shaped shadow tables, store checks included", () => {
    expect(assertAuditClean(audit(populated()))).toMatchObject({ leaves: 7, skippedUnsyncLeaves: 0 });
  });

  it("reports W on a page the guest maps read-only (CR0.WP=1) and on a read-only memslot", () => {
    const f = populated();
    const leaf = f.shadow.entryAddress(0x2000, 1);
    f.host.write32(leaf, f.host.read32(leaf) | PTE_LO.WRITABLE);
    const bad = failure(audit(f));
    expect(bad).toMatchObject({ problem: AUDIT_PROBLEM.EXCESS_RIGHTS, path: [0, 0, 0, 2], address: 0x2000 });
    expect(bad.message).toContain("grants UWX on GVA 0x2000; the reference allows UX");
    const g = populated();
    const ro = g.shadow.entryAddress(0x5000, 1);
    g.host.write32(ro, g.host.read32(ro) | PTE_LO.WRITABLE);
    expect(failure(audit(g))).toMatchObject({ problem: AUDIT_PROBLEM.EXCESS_RIGHTS, path: [0, 0, 0, 5] });
  });

  it("reports X on an NX page and U on a supervisor page", () => {
    const f = populated();
    const leaf = f.shadow.entryAddress(0x3000, 1);
    f.host.write32(leaf + 4, f.host.read32(leaf + 4) & ~PTE_HI.XD);
    expect(failure(audit(f))).toMatchObject({
      problem: AUDIT_PROBLEM.EXCESS_RIGHTS,
      found: ACC.WRITE | ACC.EXEC,
    });
    const g = populated();
    const kernel = g.shadow.entryAddress(KERNEL, 1);
    g.host.write32(kernel, g.host.read32(kernel) | PTE_LO.USER);
    expect(failure(audit(g))).toMatchObject({ problem: AUDIT_PROBLEM.EXCESS_RIGHTS, path: [256, 0, 0, 0] });
  });

  it("names a kernel GVA in canonical form", () => {
    const f = populated();
    const leaf = f.shadow.entryAddress(KERNEL, 1);
    f.host.write32(leaf, f.host.read32(leaf) ^ 0x3000);
    const bad = failure(audit(f));
    expect(bad).toMatchObject({ problem: AUDIT_PROBLEM.WRONG_FRAME, address: KERNEL, path: [256, 0, 0, 0] });
    expect(bad.message).toContain("GVA 0xffff800000000000");
  });

  it("reports a shadow leaf the guest has since unmapped (no INVLPG / write-protect fault)", () => {
    const f = populated();
    f.guest.write64(f.guestTables.entryAddress(0x1000, 1), 0, 0);
    expect(failure(audit(f))).toMatchObject({ problem: AUDIT_PROBLEM.NOT_MAPPED, address: 0x1000 });
  });

  it("reports a shadow page with the wrong gfn (a stale page after the guest swapped tables)", () => {
    const f = populated();
    // The guest points PD entry 0 at another page table: the shadow still links the old one's shadow.
    const pde = f.guestTables.entryAddress(0x1000, 2);
    f.guest.write32(pde, (f.guest.read32(pde) & 0xfff) | 0x70_0000);
    f.guest.write64(0x70_0000 + 8, (0x50_0000 | 0x7) >>> 0, 0);
    const bad = failure(audit(f));
    expect(bad).toMatchObject({ problem: AUDIT_PROBLEM.WRONG_TABLE_GFN, path: [0, 0, 0], expected: 0x700 });
  });

  it("with CR0.WP=0 accepts a writable supervisor-only shadow of a read-only user page, NX under SMEP", () => {
    const writableSupervisor = (f: Fixture, exec: boolean) =>
      f.fault(0x2000, ACC.WRITE | (exec ? ACC.EXEC : 0));
    const noSmep = populated({ cr0: CR0.PE | CR0.PG });
    writableSupervisor(noSmep, true);
    expect(audit(noSmep).ok).toBe(true);
    const smep = populated({ cr0: CR0.PE | CR0.PG, cr4: CR4.PAE | CR4.SMEP });
    writableSupervisor(smep, true);
    const bad = failure(audit(smep));
    expect(bad.problem).toBe(AUDIT_PROBLEM.EXCESS_RIGHTS);
    expect(bad.message).toContain("the reference allows UX (or W)");
    writableSupervisor(smep, false);
    expect(audit(smep).ok).toBe(true);
    const userToo = populated({ cr0: CR0.PE | CR0.PG });
    userToo.fault(0x2000, ACC.ALL);
    expect(failure(audit(userToo)).problem).toBe(AUDIT_PROBLEM.EXCESS_RIGHTS);
  });

  it("with CR0.WP=0 still refuses W over a read-only memslot, even supervisor-only", () => {
    const f = populated({ cr0: CR0.PE | CR0.PG });
    f.mapGuest({ gva: 0x6000, gpa: 0x400_1000, level: 1, rights: ACC.USER | ACC.EXEC }); // read-only slot
    f.fault(0x6000, ACC.EXEC); // supervisor-only, no W: fine
    expect(audit(f).ok).toBe(true);
    f.fault(0x6000, ACC.WRITE | ACC.EXEC);
    expect(failure(audit(f))).toMatchObject({ problem: AUDIT_PROBLEM.EXCESS_RIGHTS, path: [0, 0, 0, 6] });
  });

  it("reads a large x86 leaf's frame without its PAT bit (bit 12)", () => {
    const f = populated();
    f.shadow.map(0x4020_0000, SLOT0_HOST + 0xa0_0000, 2, ACC.ALL);
    f.mapGuest({ gva: 0x4020_0000, gpa: 0xa0_0000, level: 2, rights: ACC.ALL });
    expect(audit(f).ok).toBe(true);
    const pde = f.shadow.entryAddress(0x4020_0000, 2);
    f.host.write32(pde, f.host.read32(pde) | PTE_LO.PAT_LARGE);
    expect(assertAuditClean(audit(f)).leaves).toBe(8);
  });

  it("finds any one corrupted leaf among random guest mappings (property)", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(
          fc.record({
            page: fc.integer({ min: 0, max: 0x3ff }),
            gfn: fc.integer({ min: 0x200, max: 0x3fff }),
            rights: fc.integer({ min: 0, max: 7 }),
          }),
          { minLength: 1, maxLength: 20, selector: (m) => m.page },
        ),
        fc.nat(),
        fc.constantFrom(0x1000, PTE_LO.WRITABLE, PTE_LO.USER),
        (mappings, pick, bit) => {
          const f = setup();
          for (const m of mappings)
            f.mapGuest({ gva: m.page * 4096, gpa: m.gfn * 4096, level: 1, rights: m.rights });
          for (const m of mappings) f.fault(m.page * 4096);
          assertAuditClean(audit(f));
          const victim = mappings[pick % mappings.length]!;
          const entry = f.shadow.entryAddress(victim.page * 4096, 1);
          const lo = f.host.read32(entry);
          if (bit !== 0x1000 && ((lo & bit) !== 0 || (victim.rights & bit) !== 0)) return;
          f.host.write32(entry, bit === 0x1000 ? lo ^ bit : lo | bit);
          const bad = failure(audit(f));
          expect(bad.path).toEqual([0, 0, Math.floor(victim.page / 512), victim.page % 512]);
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe("the audit of a PAE shadow root", () => {
  /**
   * A 32-bit guest (CR4.PSE): PD at GPA 0x20_0000; PDE 0 → PT at 0x20_1000 whose PTE 1 maps GVA
   * 0x1000 → 0x50_0000 user read-only; PDE 0x300 maps GVA 0xc000_0000 as a 4-MiB supervisor RW page
   * at 0x40_0000, PDE 0x301 GVA 0xc040_0000 likewise at 0xc0_0000. KVM shadows it with PAE tables (kvm-mmu.md §2.9: "32-bit 2-level ... Shadow:
   * level 3"): four PAE-root entries, level-2 pages each shadowing a quarter of the guest PD
   * (role.quadrant), a level-1 page shadowing half of the guest PT, and direct pages below the 4-MiB page.
   */
  function bit32() {
    const host = new SparseMemory();
    const memslots = new Memslots();
    memslots.add({ id: 0, baseGfn: 0, npages: 0x4000, hostBase: SLOT0_HOST });
    const guest = new MemslotMemory(host, memslots);
    guest.write32(0x20_0000, 0x20_1000 | 0x7);
    guest.write32(0x20_1000 + 4, 0x50_0000 | 0x5);
    guest.write32(0x20_0000 + 0x300 * 4, 0x40_0000 | 0x83);
    guest.write32(0x20_0000 + 0x301 * 4, 0xc0_0000 | 0x83);
    const context = createPagingContext(
      { cr0: CR0.PE | CR0.PG | CR0.WP, cr4: CR4.PSE, cr3: 0x20_0000, efer: 0 },
      MODERN_CPU,
    );
    const allocator = new HostPageAllocator(host, { base: TABLE_BASE, pages: 64, zeroed: true });
    const store = new ShadowPageStore({ allocator });
    const role = 0x00003713; // kvm-mmu.md §2.9: 32-bit 2-level, PSE, WP
    const pages: Record<string, [number, number]> = {
      "2:0": [0x200, 0],
      "2:3221225472": [0x200, 0],
      "1:0": [0x201, 0],
      "1:3221225472": [0x400, PAGE_ROLE.DIRECT],
      "1:3223322624": [0x600, PAGE_ROLE.DIRECT],
    };
    const shadow = new HandBuiltTables(host, "x86-pae", 3, (level, base) => {
      if (level === 3) return allocator.alloc(); // KVM's pae_root is not a shadow page
      const [gfn, direct] = pages[`${level}:${base}`]!;
      return store.hostPage(store.alloc(gfn, ((role & ~PAGE_ROLE.LEVEL_MASK) | level | direct) >>> 0, false));
    });
    shadow.map(0x1000, SLOT0_HOST + 0x50_0000, 1, ACC.USER | ACC.EXEC);
    shadow.map(0xc000_0000, SLOT0_HOST + 0x40_0000, 1, ACC.WRITE | ACC.EXEC);
    shadow.map(0xc030_0000, SLOT0_HOST + 0x70_0000, 1, ACC.WRITE | ACC.EXEC);
    const auditor = new TableAuditor({
      memory: host,
      format: AUDIT_FORMAT.X86_PAE,
      reference: shadowPagingReference(guest, context, memslots),
      store,
    });
    return { host, guest, shadow, auditor };
  }

  it("passes the PAE shadow of a 32-bit guest and reports a bad leaf by [PDPTE, PDE, PTE]", () => {
    const { host, shadow, auditor } = bit32();
    expect(assertAuditClean(auditor.audit(shadow.root))).toMatchObject({ tables: 6, leaves: 3 });
    const leaf = shadow.entryAddress(0xc030_0000, 1);
    host.write32(leaf, host.read32(leaf) ^ 0x1000);
    const bad = failure(auditor.audit(shadow.root));
    expect(bad).toMatchObject({
      problem: AUDIT_PROBLEM.WRONG_FRAME,
      path: [3, 1, 0x100],
      address: 0xc030_0000,
    });
    expect(bad.message).toContain("x86-pae audit");
    expect(bad.message).toContain("GVA 0xc0300000");
  });

  it("checks a 2-MiB shadow leaf over half of a guest 4-MiB page, and the PAE root's pointers", () => {
    const { host, shadow, auditor, guest } = bit32();
    shadow.map(0xc060_0000, SLOT0_HOST + 0xe0_0000, 2, ACC.WRITE | ACC.EXEC); // 2nd half of PDE 0x301's page
    expect(auditor.audit(shadow.root).ok).toBe(true);
    guest.write32(0x20_0000 + 0x300 * 4, 0x80_0000 | 0x83); // the guest moves its 4-MiB page
    expect(failure(auditor.audit(shadow.root))).toMatchObject({
      problem: AUDIT_PROBLEM.WRONG_TABLE_GFN,
      path: [3, 0],
    });
    const root3 = shadow.entryAddress(0xc000_0000, 3);
    host.write32(root3, 0x7fff_f001); // a PDPTE pointing at no shadow page
    expect(failure(auditor.audit(shadow.root))).toMatchObject({
      problem: AUDIT_PROBLEM.UNKNOWN_TABLE,
      path: [3],
    });
  });

  it("audits the direct PAE shadow of a guest with paging off (linear = physical)", () => {
    const host = new SparseMemory();
    const memslots = new Memslots();
    memslots.add({ id: 0, baseGfn: 0, npages: 0x4000, hostBase: SLOT0_HOST });
    const context = createPagingContext({ cr0: CR0.PE, cr4: 0, cr3: 0, efer: 0 }, MODERN_CPU);
    const allocator = new HostPageAllocator(host, { base: TABLE_BASE, pages: 16, zeroed: true });
    const store = new ShadowPageStore({ allocator });
    const shadow = new HandBuiltTables(host, "x86-pae", 3, (level, base) =>
      level === 3 ? allocator.alloc() : store.hostPage(store.alloc(base / 4096, 0x00001780 | level, false)),
    );
    shadow.map(0x5000, SLOT0_HOST + 0x5000, 1, ACC.ALL);
    shadow.map(0x20_0000, SLOT0_HOST + 0x20_0000, 2, ACC.ALL);
    const auditor = new TableAuditor({
      memory: host,
      format: AUDIT_FORMAT.X86_PAE,
      reference: shadowPagingReference(new MemslotMemory(host, memslots), context, memslots),
      store,
    });
    expect(assertAuditClean(auditor.audit(shadow.root))).toMatchObject({ leaves: 2 });
    const leaf = shadow.entryAddress(0x5000, 1);
    host.write32(leaf, host.read32(leaf) + 0x1000);
    expect(failure(auditor.audit(shadow.root))).toMatchObject({
      problem: AUDIT_PROBLEM.WRONG_FRAME,
      path: [0, 0, 5],
    });
  });

  it("audits the PAE shadow of a PAE guest, whose PDPTEs come from registers", () => {
    const host = new SparseMemory();
    const memslots = new Memslots();
    memslots.add({ id: 0, baseGfn: 0, npages: 0x4000, hostBase: SLOT0_HOST });
    const guest = new MemslotMemory(host, memslots);
    guest.write64(0x30_0000 + 0x1000 * 0, 0x31_0000 | 0x7, 0); // PD[0] → PT
    guest.write64(0x31_0000 + 8 * 2, 0x55_0000 | 0x3, PTE_HI.XD); // GVA 0x2000 → supervisor RW NX
    const context = createPagingContext(
      {
        cr0: CR0.PE | CR0.PG | CR0.WP,
        cr4: CR4.PAE,
        cr3: 0x2f_0000,
        efer: EFER.NXE,
        pdptes: [0x30_0001, 0, 0, 0],
      },
      MODERN_CPU,
    );
    const allocator = new HostPageAllocator(host, { base: TABLE_BASE, pages: 16, zeroed: true });
    const store = new ShadowPageStore({ allocator });
    const gfns: Record<number, number> = { 2: 0x300, 1: 0x310 };
    const shadow = new HandBuiltTables(host, "x86-pae", 3, (level) =>
      level === 3 ? allocator.alloc() : store.hostPage(store.alloc(gfns[level]!, 0x00003700 | level, false)),
    );
    shadow.map(0x2000, SLOT0_HOST + 0x55_0000, 1, ACC.WRITE);
    const reference = shadowPagingReference(guest, context, memslots);
    const table = new ReferenceTable();
    expect(reference.expectedTable?.(0, 2, table)).toBe(true);
    expect(table.gfn).toBe(0x300);
    expect(reference.expectedTable?.(0x2000, 3, table)).toBe(false); // the PDPTEs are registers, not a table
    const auditor = new TableAuditor({ memory: host, format: AUDIT_FORMAT.X86_PAE, reference, store });
    expect(assertAuditClean(auditor.audit(shadow.root))).toMatchObject({ leaves: 1 });
    const leaf = shadow.entryAddress(0x2000, 1);
    host.write32(leaf + 4, host.read32(leaf + 4) & ~PTE_HI.XD);
    expect(failure(auditor.audit(shadow.root))).toMatchObject({
      problem: AUDIT_PROBLEM.EXCESS_RIGHTS,
      path: [0, 0, 2],
    });
  });
});
