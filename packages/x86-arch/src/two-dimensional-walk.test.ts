import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ACCESS, PAGE_ACCESS } from "./access";
import { cpuFeatures } from "./cpu-features";
import { CR0 } from "./cr0";
import { DenseMemory } from "./dense-memory";
import { type EptCapabilities, eptCapabilities, MODERN_EPT_CAPABILITIES } from "./ept-capabilities";
import { createEptContext } from "./ept-context";
import { EPTE_LO } from "./ept-entry";
import { EPT_VIOLATION } from "./ept-violation";
import { EPT_OUTCOME, EptWalker } from "./ept-walk";
import { PFERR } from "./page-fault";
import { AD_UPDATE, PageWalker, STAGE2_KIND } from "./page-walk";
import { createPagingContext, type PagingContext } from "./paging-context";
import { PTE_HI, PTE_LO } from "./paging-entry";
import { outOfRange, type PhysicalMemory, read64AsNumber } from "./physical-memory";
import { SparseMemory } from "./sparse-memory";
import {
  EPT_MBEC_TABLE,
  EPT_PERMISSION_TABLE,
  type EptExpect,
  FETCH,
  FINAL,
  GLA,
  PERM_EX,
  PERM_RD,
  RD,
  WR,
  XU,
} from "./testing/ept-outcome-tables";
import { EPT_LEAF_RWX_WB, EptTableBuilder } from "./testing/ept-table-builder";
import { PageTableBuilder } from "./testing/page-table-builder";
import { EptStage2Translator, TwoDimensionalWalker } from "./two-dimensional-walk";
import { FAULT_STAGE, WalkTrace } from "./walk-result";

const CR4_PAE = 1 << 5;
const CR4_LA57 = 1 << 12;
const EFER_LME_LMA_NXE = (1 << 8) | (1 << 10) | (1 << 11);
const features = cpuFeatures();
const USER_LINEAR = EPT_VIOLATION.USER_LINEAR;
const WRITABLE_LINEAR = EPT_VIOLATION.WRITABLE_LINEAR;
const XD_LINEAR = EPT_VIOLATION.EXECUTE_DISABLE_LINEAR;

/** Guest linear addresses of the kvm-unit-tests data page: a user mapping and a supervisor alias. */
const GVA = 0x4000_1000;
const GVA_SUPERVISOR = 0x4000_5000;
const GVA_PAGE2 = 0x4000_2000;
const DATA_GPA = 2 ** 39;
const DATA_HPA = 0x4000_0000; // 1-GiB aligned (never read: walks only compute it)
/** Guest tables live at GPA 0x200000.., mapped 1:1 by EPT with 4-KiB pages. */
const GUEST_TABLES = 0x200000;
const GUEST_TABLES_END = 0x240000;
/** Guest entries with A (and D in leaves) preset, so walks write nothing unless a test clears them. */
const UPPER = PTE_LO.PRESENT | PTE_LO.WRITABLE | PTE_LO.USER | PTE_LO.ACCESSED;
const LEAF = UPPER | PTE_LO.DIRTY;

type Op = "read" | "write" | "exec" | "supervisorExec" | "userExec";

function guestContext(root: number, extra: { cr0?: number; cr4?: number } = {}): PagingContext {
  return createPagingContext(
    {
      cr0: extra.cr0 ?? CR0.PG | CR0.PE | CR0.WP,
      cr3: root,
      cr4: CR4_PAE | (extra.cr4 ?? 0),
      efer: EFER_LME_LMA_NXE,
    },
    features,
  );
}

function setup(
  opts: { eptAd?: boolean; mbec?: boolean; caps?: EptCapabilities; dataLevel?: 1 | 2 | 3 } = {},
) {
  const host = new DenseMemory(16 * 1024 * 1024);
  const ept = new EptTableBuilder(host, 0x100000);
  const allXu = opts.mbec ? XU : 0;
  const eptMap = (gpa: number, hpa: number, leafLevel: 1 | 2 | 3 = 1) =>
    ept.map(gpa, hpa, { leafLevel, upperLo: EPTE_LO.XWR | allXu, leafLo: EPT_LEAF_RWX_WB | allXu });
  for (let page = GUEST_TABLES; page < GUEST_TABLES_END; page += 4096) eptMap(page, page);
  eptMap(DATA_GPA, DATA_HPA, opts.dataLevel ?? 1);
  if ((opts.dataLevel ?? 1) === 1) eptMap(DATA_GPA + 0x1000, DATA_HPA + 0x1000);

  const guest = new PageTableBuilder(host, GUEST_TABLES); // GPA == HPA for table pages
  guest.map(GVA, DATA_GPA, { upperLo: UPPER, leafLo: LEAF });
  guest.map(GVA_PAGE2, DATA_GPA + 0x1000, { upperLo: UPPER, leafLo: LEAF });
  guest.map(GVA_SUPERVISOR, DATA_GPA, { upperLo: UPPER, leafLo: LEAF & ~PTE_LO.USER });
  const gctx = guestContext(guest.root);
  const eptp = ept.eptp({ accessedDirty: opts.eptAd ?? false });
  const ectx = createEptContext(
    { eptpLo: eptp.lo, eptpHi: eptp.hi, modeBasedExecute: opts.mbec ?? false },
    opts.caps ?? MODERN_EPT_CAPABILITIES,
    46,
  );
  const walker = new TwoDimensionalWalker(host, gctx, ectx);

  const run = (op: Op, gva = GVA) => {
    if (op === "read") return walker.walk(gva, 0, ACCESS.READ);
    if (op === "write") return walker.walk(gva, 0, ACCESS.WRITE);
    if (op === "exec") return walker.walk(gva + 8, 0, ACCESS.FETCH);
    if (op === "supervisorExec") return walker.walk(GVA_SUPERVISOR + 8, 0, ACCESS.FETCH);
    return walker.walk(gva + 8, 0, ACCESS.FETCH | ACCESS.USER);
  };
  /** "ok", "misconfig", "#PF <code>" or the qualification without bits 11:9 (as the tests mask it). */
  const outcome = (op: Op, gva = GVA): EptExpect | string => {
    if (run(op, gva)) return "ok";
    if (walker.result.stage === FAULT_STAGE.GUEST) return `#PF ${walker.result.errorCode}`;
    if (walker.fault.outcome === EPT_OUTCOME.MISCONFIG) return "misconfig";
    return walker.fault.qualification & ~EPT_VIOLATION.ADVANCED_MASK;
  };
  /** Replaces bits 2:0 and 10 of the EPT entry at `level` for `gpa`. */
  const twiddleEpt = (gpa: number, level: number, perms: number) => {
    const { lo, hi } = ept.entry(gpa, level);
    ept.setEntry(gpa, level, ((lo & ~(EPTE_LO.XWR | XU)) | perms) >>> 0, hi);
  };
  /** Guest-physical address of the guest entry at `level` for `gva`. */
  const guestEntryGpa = (gva: number, level: number) => {
    const trace = new WalkTrace();
    new PageWalker(host, { adUpdate: AD_UPDATE.NONE }).walk(gctx, gva, 0, ACCESS.READ, trace);
    return trace.entries().find((e) => e.level === level)!.address;
  };
  return { host, ept, guest, gctx, ectx, walker, run, outcome, twiddleEpt, guestEntryGpa };
}

describe("TwoDimensionalWalker: translation and memory references", () => {
  it("translates through guest paging and EPT, reading 4 × (4 + 1) + 4 = 24 entries", () => {
    const { walker } = setup();
    expect(walker.walk(GVA + 0x234, 0, ACCESS.READ)).toBe(true);
    expect(walker.result.pa).toBe(DATA_HPA + 0x234);
    expect(walker.result.pageSize).toBe(4096);
    expect(walker.result.pageAccess).toBe(PAGE_ACCESS.ALL);
    expect(walker.result.memoryReads).toBe(24);
    expect(walker.result.memoryWrites).toBe(0);
    expect(walker.stage2.finalGpa).toBe(DATA_GPA + 0x234);
    expect(walker.stage2.finalPageSize).toBe(4096);
    expect(walker.stage2.finalPermissions).toBe(EPTE_LO.XWR);
    expect(walker.fault.outcome).toBe(EPT_OUTCOME.OK);
  });

  it("reads fewer EPT entries when EPT maps 1-GiB pages: 4 × (2 + 1) + 2 = 14", () => {
    const host = new DenseMemory(8 * 1024 * 1024);
    const ept = new EptTableBuilder(host, 0x400000);
    ept.map(0, 0, { leafLevel: 3 });
    ept.map(DATA_GPA, 0x4000_0000, { leafLevel: 3 });
    const guest = new PageTableBuilder(host, 0x100000);
    guest.map(GVA, DATA_GPA + 0x5000, { upperLo: UPPER, leafLo: LEAF });
    const eptp = ept.eptp();
    const walker = new TwoDimensionalWalker(
      host,
      guestContext(guest.root),
      createEptContext({ eptpLo: eptp.lo, eptpHi: eptp.hi }, MODERN_EPT_CAPABILITIES, 46),
    );
    expect(walker.walk(GVA, 0, ACCESS.WRITE)).toBe(true);
    expect(walker.result.pa).toBe(0x4000_5000);
    expect(walker.result.memoryReads).toBe(14);
    expect(walker.stage2.finalPageSize).toBe(1024 * 1024 * 1024);
  });

  it("walks a 5-level guest under 5-level EPT: 5 × (5 + 1) + 5 = 35 references", () => {
    const host = new DenseMemory(8 * 1024 * 1024);
    const ept = new EptTableBuilder(host, 0x400000, 5);
    for (let page = 0x100000; page < 0x120000; page += 4096) ept.map(page, page);
    ept.map(DATA_GPA, DATA_HPA);
    const guest = new PageTableBuilder(host, 0x100000, 5);
    const la = 0x1_2345_6789_a000; // bits 56:48 index the PML5
    guest.map(la, DATA_GPA, { upperLo: UPPER, leafLo: LEAF });
    const eptp = ept.eptp();
    const walker = new TwoDimensionalWalker(
      host,
      guestContext(guest.root, { cr4: CR4_LA57 }),
      createEptContext({ eptpLo: eptp.lo, eptpHi: eptp.hi }, MODERN_EPT_CAPABILITIES, 46),
    );
    expect(walker.walk(0x6789_a123, 0x1_2345, ACCESS.READ)).toBe(true);
    expect(walker.result.pa).toBe(DATA_HPA + 0x123);
    expect(walker.result.memoryReads).toBe(35);
  });

  it("reports a guest #PF with its error code after translating the entries it read", () => {
    const { walker, outcome } = setup();
    expect(outcome("write", 0x8000_0000)).toBe(`#PF ${PFERR.WRITE}`);
    expect(walker.result.level).toBe(3);
    expect(walker.result.memoryReads).toBe(2 + 2 * 4);
    expect(walker.fault.outcome).toBe(EPT_OUTCOME.OK);
  });

  it("records the guest entries at the host addresses it read them from", () => {
    const { walker, guestEntryGpa } = setup();
    const trace = new WalkTrace();
    walker.walk(GVA, 0, ACCESS.READ, trace);
    expect(trace.count).toBe(4);
    expect(trace.address[3]).toBe(guestEntryGpa(GVA, 1)); // identity-mapped table pages
  });

  it("is what a PageWalker over host memory with an attached EptStage2Translator does", () => {
    const a = setup();
    const b = setup();
    const stage2 = new EptStage2Translator(new EptWalker(b.host), b.ectx);
    const pageWalker = new PageWalker(b.host, { stage2 });
    stage2.attach(pageWalker.result);
    b.twiddleEpt(DATA_GPA, 1, 0x1);
    a.twiddleEpt(DATA_GPA, 1, 0x1);
    for (const access of [ACCESS.READ, ACCESS.WRITE, ACCESS.FETCH | ACCESS.USER]) {
      const okA = a.walker.walk(GVA, 0, access);
      const okB = pageWalker.walk(b.gctx, GVA, 0, access);
      expect(okB).toBe(okA);
      expect({ ...pageWalker.result }).toEqual({ ...a.walker.result });
      if (!okA) expect(stage2.fault.qualification).toBe(a.walker.fault.qualification);
    }
  });
});

describe("TwoDimensionalWalker: kvm-unit-tests final-translation outcomes (vmx-tests.md §8)", () => {
  for (const row of EPT_PERMISSION_TABLE) {
    it(`${row.name}: EPT entry at every level, and 2-MiB / 1-GiB EPT leaves`, () => {
      const cases: { level: number; dataLevel: 1 | 2 | 3 }[] = [
        { level: 1, dataLevel: 1 },
        { level: 2, dataLevel: 1 },
        { level: 3, dataLevel: 1 },
        { level: 4, dataLevel: 1 },
        { level: 2, dataLevel: 2 },
        { level: 3, dataLevel: 3 },
      ];
      for (const { level, dataLevel } of cases) {
        const s = setup({ caps: eptCapabilities({ executeOnly: row.executeOnly }), dataLevel });
        s.twiddleEpt(DATA_GPA, level, row.perms);
        (["read", "write", "exec"] as const).forEach((op, i) => {
          const expected = row.expect[i];
          expect(s.outcome(op), `${op}, EPT level ${level}`).toBe(expected);
          if (expected === "ok") return;
          // GUEST_PHYSICAL_ADDRESS is the accessed GPA (+8 for the fetch), as is the linear address.
          expect(s.walker.result.stage).toBe(FAULT_STAGE.STAGE2_FINAL);
          expect(s.walker.fault.gpa).toBe(op === "exec" ? DATA_GPA + 8 : DATA_GPA);
          expect(s.walker.fault.laLo).toBe(op === "exec" ? GVA + 8 : GVA);
          expect(s.walker.fault.kind).toBe(STAGE2_KIND.FINAL);
        });
        // Fixed, the access is retried successfully.
        s.twiddleEpt(DATA_GPA, level, 0x7);
        for (const op of ["read", "write", "exec"] as const) expect(s.outcome(op)).toBe("ok");
      }
    });
  }

  it("MMIO-style: a not-present EPT entry faults the read, then read-only faults the write", () => {
    const { outcome, twiddleEpt } = setup();
    twiddleEpt(DATA_GPA, 1, 0);
    expect(outcome("read")).toBe(RD | FINAL);
    twiddleEpt(DATA_GPA, 1, 0x1);
    expect(outcome("read")).toBe("ok");
    expect(outcome("write")).toBe(WR | PERM_RD | FINAL);
  });
});

describe("TwoDimensionalWalker: mode-based execute control", () => {
  // vmx-tests.md §8 phrases MBEC as "CPL3 fetch needs bit 10, CPL0 fetch needs bit 2"; the SDM
  // (29.3.3.2) decides by the linear address's U/S, so the supervisor fetch here uses a supervisor
  // page and the user fetch a user page, where both readings agree.
  for (const row of EPT_MBEC_TABLE) {
    it(`${row.name} (0x${row.perms.toString(16)})`, () => {
      for (const level of [1, 2, 3, 4]) {
        const s = setup({ mbec: true });
        s.twiddleEpt(DATA_GPA, level, row.perms);
        (["read", "write", "supervisorExec", "userExec"] as const).forEach((op, i) => {
          expect(s.outcome(op), `${op}, EPT level ${level}`).toBe(row.expect[i]);
        });
      }
    });
  }

  it("governs a CPL0 fetch from a user page by bit 10, since the linear address is user-mode", () => {
    const { outcome, twiddleEpt } = setup({ mbec: true });
    twiddleEpt(DATA_GPA, 1, 0x5); // R, supervisor-execute only
    expect(outcome("exec")).toBe(FETCH | PERM_RD | PERM_EX | FINAL);
    expect(outcome("supervisorExec")).toBe("ok");
    twiddleEpt(DATA_GPA, 1, 0x1 | XU);
    expect(outcome("exec")).toBe("ok");
  });

  it("treats every linear address as user-mode, read/write and executable with guest paging off", () => {
    const s = setup({ mbec: true });
    s.walker.setGuestContext(guestContext(0, { cr0: CR0.PE }));
    const la = GUEST_TABLES + 0x3000;
    s.twiddleEpt(la, 1, 0x5);
    expect(s.walker.walk(la + 4, 0, ACCESS.FETCH)).toBe(false);
    expect(s.walker.fault.qualification).toBe(
      FETCH | PERM_RD | PERM_EX | FINAL | USER_LINEAR | WRITABLE_LINEAR,
    );
    expect(s.walker.result.memoryReads).toBe(4);
    s.twiddleEpt(la, 1, 0x1 | XU);
    expect(s.walker.walk(la + 4, 0, ACCESS.FETCH)).toBe(true);
    expect(s.walker.result.pa).toBe(la + 4);
  });
});

describe("TwoDimensionalWalker: advanced VM-exit information (bits 11:9)", () => {
  it("reports the linear address's U/S, R/W and XD for final translations only", () => {
    const s = setup();
    s.guest.map(0x4000_7000, DATA_GPA, {
      upperLo: UPPER,
      leafLo: LEAF & ~PTE_LO.WRITABLE,
      leafHi: PTE_HI.XD,
    });
    s.twiddleEpt(DATA_GPA, 1, 0);
    s.run("read");
    expect(s.walker.fault.qualification).toBe(RD | FINAL | USER_LINEAR | WRITABLE_LINEAR);
    s.run("read", GVA_SUPERVISOR);
    expect(s.walker.fault.qualification).toBe(RD | FINAL | WRITABLE_LINEAR);
    s.run("read", 0x4000_7000);
    expect(s.walker.fault.qualification).toBe(RD | FINAL | USER_LINEAR | XD_LINEAR);
    // A paging-structure access reports none of them.
    s.twiddleEpt(s.guestEntryGpa(GVA, 1), 1, 0);
    s.run("read");
    expect(s.walker.fault.qualification).toBe(RD | GLA);
  });

  it("leaves them out without the capability", () => {
    const s = setup({ caps: eptCapabilities({ advancedExitInfo: false }) });
    s.twiddleEpt(DATA_GPA, 1, 0);
    s.run("read");
    expect(s.walker.fault.qualification).toBe(RD | FINAL);
  });
});

describe("TwoDimensionalWalker: guest paging-structure accesses (kvm-unit-tests _paddr_*)", () => {
  const ALL_OPS = ["read", "write", "exec", "userExec"] as const;
  const A = PTE_LO.ACCESSED;
  const D = PTE_LO.DIRTY;

  /** Restricts the EPT leaf of the guest page-table page holding GVA's PTE and presets the PTE's A/D. */
  function paddr(eptPerms: number, eptAd: boolean, guestAd: number) {
    const s = setup({ eptAd });
    const pteGpa = s.guestEntryGpa(GVA, 1);
    const ptPage = pteGpa - (pteGpa % 4096);
    s.host.write32(pteGpa, ((s.host.read32(pteGpa) & ~(A | D)) | guestAd) >>> 0);
    s.twiddleEpt(ptPage, 1, eptPerms);
    return { ...s, pteGpa, ptPage };
  }

  const rows: {
    perms: number;
    eptAd: boolean;
    guestAd: number[];
    expect: (op: (typeof ALL_OPS)[number]) => EptExpect;
  }[] = [
    { perms: 0, eptAd: false, guestAd: [A | D], expect: () => RD | GLA },
    { perms: 0, eptAd: true, guestAd: [A | D], expect: () => RD | WR | GLA },
    { perms: 1, eptAd: false, guestAd: [0], expect: () => WR | RD | PERM_RD | GLA },
    {
      perms: 1,
      eptAd: false,
      guestAd: [A],
      expect: (op) => (op === "write" ? WR | RD | PERM_RD | GLA : "ok"),
    },
    { perms: 1, eptAd: false, guestAd: [A | D], expect: () => "ok" },
    { perms: 1, eptAd: true, guestAd: [0, A, A | D], expect: () => WR | RD | PERM_RD | GLA },
    { perms: 5, eptAd: false, guestAd: [0], expect: () => WR | RD | PERM_RD | PERM_EX | GLA },
    {
      perms: 5,
      eptAd: false,
      guestAd: [A],
      expect: (op) => (op === "write" ? WR | RD | PERM_RD | PERM_EX | GLA : "ok"),
    },
    { perms: 5, eptAd: false, guestAd: [A | D], expect: () => "ok" },
    { perms: 5, eptAd: true, guestAd: [0, A | D], expect: () => WR | RD | PERM_RD | PERM_EX | GLA },
    { perms: 3, eptAd: false, guestAd: [0, A, A | D], expect: () => "ok" },
    { perms: 3, eptAd: true, guestAd: [0, A, A | D], expect: () => "ok" },
    { perms: 7, eptAd: false, guestAd: [0, A | D], expect: () => "ok" },
    { perms: 7, eptAd: true, guestAd: [0, A | D], expect: () => "ok" },
  ];

  for (const row of rows) {
    for (const guestAd of row.guestAd) {
      it(`EPT perms ${row.perms}, EPT A/D ${row.eptAd ? "on" : "off"}, guest PTE A/D ${guestAd >>> 5}`, () => {
        for (const op of ALL_OPS) {
          const s = paddr(row.perms, row.eptAd, guestAd);
          const expected = row.expect(op);
          expect(s.outcome(op), op).toBe(expected);
          if (expected !== "ok") {
            expect(s.walker.result.stage).toBe(FAULT_STAGE.STAGE2_PAGING_STRUCTURE);
            expect(s.walker.result.level).toBe(1);
            expect(s.walker.fault.gpa).toBe(s.pteGpa);
            expect(s.walker.fault.laLo).toBe(op === "read" || op === "write" ? GVA : GVA + 8);
            // The PTE is untouched by a faulting access.
            expect(s.host.read32(s.pteGpa) & (A | D)).toBe(guestAd);
            continue;
          }
          // After success the PTE has A, and D if the op wrote or D was preset.
          const pte = s.host.read32(s.pteGpa);
          expect(pte & A).toBe(A);
          expect(pte & D).toBe(op === "write" || (guestAd & D) !== 0 ? D : 0);
          if (row.eptAd) {
            // EPT A on every level mapping the page-table page, D only on the leaf.
            for (const level of [4, 3, 2]) {
              expect(s.ept.entry(s.ptPage, level).lo & (EPTE_LO.ACCESSED | EPTE_LO.DIRTY)).toBe(
                EPTE_LO.ACCESSED,
              );
            }
            expect(s.ept.entry(s.ptPage, 1).lo & (EPTE_LO.ACCESSED | EPTE_LO.DIRTY)).toBe(
              EPTE_LO.ACCESSED | EPTE_LO.DIRTY,
            );
          }
        }
      });
    }
  }

  it("reports RD|GLA for a not-present EPT entry of the guest PD page, plus WR with EPT A/D", () => {
    for (const eptAd of [false, true]) {
      const s = setup({ eptAd });
      const pdeGpa = s.guestEntryGpa(GVA, 2);
      s.twiddleEpt(pdeGpa - (pdeGpa % 4096), 1, 0);
      expect(s.outcome("read")).toBe(eptAd ? RD | WR | GLA : RD | GLA);
      expect(s.walker.result.level).toBe(2);
      expect(s.walker.fault.gpa).toBe(pdeGpa);
      expect(s.walker.fault.kind).toBe(STAGE2_KIND.PAGING_READ);
    }
  });

  it("needs EPT write access to set a guest accessed flag in a non-leaf entry", () => {
    const s = setup();
    const pdeGpa = s.guestEntryGpa(GVA, 2);
    s.host.write32(pdeGpa, (s.host.read32(pdeGpa) & ~PTE_LO.ACCESSED) >>> 0);
    s.twiddleEpt(pdeGpa - (pdeGpa % 4096), 1, 0x1);
    expect(s.outcome("read")).toBe(RD | WR | PERM_RD | GLA);
    expect(s.walker.fault.kind).toBe(STAGE2_KIND.PAGING_WRITE);
    expect(s.walker.result.level).toBe(2);
  });
});

describe("TwoDimensionalWalker: EPT accessed and dirty flags (eptad tests)", () => {
  it("sets A on the data page's EPT leaf for a read and A+D for a write, only with EPTP bit 6", () => {
    for (const eptAd of [false, true]) {
      const s = setup({ eptAd });
      expect(s.run("read")).toBe(true);
      expect(s.run("write", GVA_PAGE2)).toBe(true);
      const page1 = s.ept.entry(DATA_GPA, 1).lo & (EPTE_LO.ACCESSED | EPTE_LO.DIRTY);
      const page2 = s.ept.entry(DATA_GPA + 0x1000, 1).lo & (EPTE_LO.ACCESSED | EPTE_LO.DIRTY);
      expect(page1).toBe(eptAd ? EPTE_LO.ACCESSED : 0);
      expect(page2).toBe(eptAd ? EPTE_LO.ACCESSED | EPTE_LO.DIRTY : 0);
      // The second walk finds the table pages' EPT flags already set: only page 2's leaf changes.
      expect(s.walker.result.memoryWrites).toBe(eptAd ? 1 : 0);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Property: a 2D walk equals a 1D guest walk whose entry addresses and final address are each
// translated through EPT (modelled here as a page map), on random guest and EPT mappings.

/** Guest-physical memory as the guest sees it: each page lives at the host page the map gives. */
class GuestView implements PhysicalMemory {
  readonly size = 2 ** 52;
  readonly host: PhysicalMemory;
  readonly frames = new Map<number, number>();
  #nextHostFrame: number;

  constructor(host: PhysicalMemory, firstHostFrame: number) {
    this.host = host;
    this.#nextHostFrame = firstHostFrame;
  }

  /** Host address of `gpa`, giving its page a host page (3 frames apart: not identity) on first use. */
  hpa(gpa: number): number {
    const frame = Math.floor(gpa / 4096);
    let hostFrame = this.frames.get(frame);
    if (hostFrame === undefined) {
      hostFrame = this.#nextHostFrame;
      this.#nextHostFrame += 3;
      this.frames.set(frame, hostFrame);
    }
    return hostFrame * 4096 + (gpa % 4096);
  }

  read8(pa: number): number {
    return this.host.read8(this.hpa(pa));
  }
  read16(pa: number): number {
    return this.host.read16(this.hpa(pa));
  }
  read32(pa: number): number {
    return this.host.read32(this.hpa(pa));
  }
  read64(pa: number): number {
    return read64AsNumber(this, pa);
  }
  write8(pa: number, value: number): void {
    this.host.write8(this.hpa(pa), value);
  }
  write16(pa: number, value: number): void {
    this.host.write16(this.hpa(pa), value);
  }
  write32(pa: number, value: number): void {
    this.host.write32(this.hpa(pa), value);
  }
  write64(pa: number, lo: number, hi: number): void {
    this.write32(pa, lo);
    this.write32(pa + 4, hi);
  }
  readBytes(pa: number, length: number): Uint8Array {
    throw outOfRange("guest view (not used by walks)", pa, length, this.size);
  }
  writeBytes(pa: number, bytes: Uint8Array): void {
    throw outOfRange("guest view (not used by walks)", pa, bytes.length, this.size);
  }
}

const EPT_PERMS = [0, 1, 3, 4, 5, 7] as const; // 0 = not mapped at all

describe("TwoDimensionalWalker vs composed 1D walks (property)", () => {
  it("matches the guest walk with every entry address and the final address translated through EPT", () => {
    const mappingArbitrary = fc.record({
      pml4: fc.integer({ min: 0, max: 255 }),
      rest: fc.integer({ min: 0, max: 2 ** 27 - 1 }), // bits 38:12 of the linear address
      gpaFrame: fc.integer({ min: 0x10000, max: 0x1ffff }),
      large: fc.boolean(),
      leafLo: fc.constantFrom(LEAF, LEAF, LEAF, LEAF & ~PTE_LO.WRITABLE, LEAF & ~PTE_LO.USER),
      xd: fc.constantFrom(false, false, false, true),
    });
    fc.assert(
      fc.property(
        fc.array(mappingArbitrary, { minLength: 1, maxLength: 4 }),
        fc.integer({ min: 0, max: 7 }), // which mapping to walk (past the last: an unmapped address)
        fc.integer({ min: 0, max: 0xfff }),
        fc.constantFrom(
          ACCESS.READ,
          ACCESS.WRITE,
          ACCESS.FETCH,
          ACCESS.READ | ACCESS.USER,
          ACCESS.FETCH | ACCESS.USER,
        ),
        // Page-table pages mostly RWX, so walks reach their final access; data pages anything.
        fc.array(
          fc.oneof(
            { arbitrary: fc.constant(7), weight: 12 },
            { arbitrary: fc.constantFrom(...EPT_PERMS), weight: 1 },
          ),
          { minLength: 32, maxLength: 32 },
        ),
        fc.array(fc.constantFrom(...EPT_PERMS, 7, 3), { minLength: 8, maxLength: 8 }),
        fc.boolean(),
        (mappings, pick, offset, access, tablePerms, dataPerms, eptAd) => {
          const host = new SparseMemory();
          const view = new GuestView(host, 0x40000);
          const guest = new PageTableBuilder(view, 0x100000);
          for (const m of mappings) {
            const la = m.pml4 * 2 ** 39 + m.rest * 4096;
            guest.map(
              m.large ? la - (la % 0x200000) : la,
              m.large ? m.gpaFrame * 4096 - ((m.gpaFrame * 4096) % 0x200000) : m.gpaFrame * 4096,
              {
                leafLevel: m.large ? 2 : 1,
                upperLo: UPPER,
                leafLo: m.leafLo,
                leafHi: m.xd ? PTE_HI.XD : 0,
              },
            );
          }
          const target = pick < 6 ? mappings[pick % mappings.length] : undefined;
          const la =
            (target === undefined ? 256 * 2 ** 39 : target.pml4 * 2 ** 39 + target.rest * 4096) + offset;
          const laLo = la % 2 ** 32;
          const laHi = Math.floor(la / 2 ** 32);
          const gctx = guestContext(guest.root);

          // The oracle's first stage: the guest walk alone, over the guest's view of its memory.
          const oneD = new PageWalker(view, { adUpdate: AD_UPDATE.NONE });
          const trace = new WalkTrace();
          const oneDOk = oneD.walk(gctx, laLo, laHi, access, trace);
          if (oneDOk) view.hpa(oneD.result.pa);

          // EPT: every guest page the view placed, with permissions from the pool (0 = unmapped).
          const ept = new EptTableBuilder(host, 0x1_0000_0000);
          const permsOf = new Map<number, number>();
          let i = 0;
          for (const [frame, hostFrame] of view.frames) {
            const pool = frame < 0x10000 ? tablePerms : dataPerms; // tables sit below GPA 0x10000000
            const perms = pool[i++ % pool.length]!;
            permsOf.set(frame, perms);
            if (perms !== 0) ept.map(frame * 4096, hostFrame * 4096, { leafLo: perms | (6 << 3) });
          }
          const eptp = ept.eptp({ accessedDirty: eptAd });
          const ectx = createEptContext({ eptpLo: eptp.lo, eptpHi: eptp.hi }, MODERN_EPT_CAPABILITIES, 46);
          const twoD = new TwoDimensionalWalker(host, gctx, ectx);
          const ok = twoD.walk(laLo, laHi, access);

          // The oracle's second stage: each entry read needs R (and W with EPT A/D), in order.
          const need = eptAd ? 3 : 1;
          for (const entry of trace.entries()) {
            const perms = permsOf.get(Math.floor(entry.address / 4096))!;
            if ((perms & need) !== need) {
              expect(ok).toBe(false);
              expect(twoD.result.stage).toBe(FAULT_STAGE.STAGE2_PAGING_STRUCTURE);
              expect(twoD.result.level).toBe(entry.level);
              expect(twoD.fault.gpa).toBe(entry.address);
              expect(twoD.fault.qualification).toBe(need | (perms << 3) | GLA);
              return;
            }
          }
          if (!oneDOk) {
            expect(ok).toBe(false);
            expect(twoD.result.stage).toBe(FAULT_STAGE.GUEST);
            expect(twoD.result.errorCode).toBe(oneD.result.errorCode);
            expect(twoD.result.level).toBe(oneD.result.level);
            return;
          }
          const gpa = oneD.result.pa;
          const perms = permsOf.get(Math.floor(gpa / 4096))!;
          const eptAccess = access & ACCESS.WRITE ? WR : access & ACCESS.FETCH ? FETCH : RD;
          const needFinal = eptAccess === FETCH ? 4 : eptAccess;
          if ((perms & needFinal) !== needFinal) {
            const pageAccess = oneD.result.pageAccess;
            let advanced = 0;
            if (pageAccess & PAGE_ACCESS.USER) advanced |= USER_LINEAR;
            if (pageAccess & PAGE_ACCESS.WRITE) advanced |= WRITABLE_LINEAR;
            if ((pageAccess & PAGE_ACCESS.EXEC) === 0) advanced |= XD_LINEAR;
            expect(ok).toBe(false);
            expect(twoD.result.stage).toBe(FAULT_STAGE.STAGE2_FINAL);
            expect(twoD.fault.gpa).toBe(gpa);
            expect(twoD.fault.qualification).toBe(eptAccess | (perms << 3) | FINAL | advanced);
            return;
          }
          expect(ok).toBe(true);
          expect(twoD.result.pa).toBe(view.hpa(gpa));
          expect(twoD.result.pageSize).toBe(oneD.result.pageSize);
          expect(twoD.result.pageAccess).toBe(oneD.result.pageAccess);
          expect(twoD.result.memoryReads).toBe(trace.count * 5 + 4);
        },
      ),
      { numRuns: 400 },
    );
  });
});
