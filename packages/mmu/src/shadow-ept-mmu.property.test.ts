import {
  AD_UPDATE,
  EPT_ACCESS,
  EPT_MEMORY_TYPE,
  EPT_OUTCOME,
  EPTE_LO,
  EptWalker,
  PAGE_SIZE,
} from "@nestvisor/x86-arch";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MMU_EVENTS } from "./mmu-events";
import { SHADOW_FAULT } from "./shadow-fault";
import { nestedEptFixture } from "./testing/nested-ept-fixture";
import { auditShadowEpt } from "./testing/shadow-audit";

const WB = EPT_MEMORY_TYPE.WB << EPTE_LO.MEMORY_TYPE_SHIFT;
const BAD_TYPE = 2 << EPTE_LO.MEMORY_TYPE_SHIFT;
/** L2 pages of the model: 4 in each of three page tables (two PDs, two PDPT entries). */
const L2_PAGES = [
  ...Array.from({ length: 4 }, (_, i) => i * PAGE_SIZE),
  ...Array.from({ length: 4 }, (_, i) => 0x20_0000 + i * PAGE_SIZE),
  ...Array.from({ length: 4 }, (_, i) => 0x4000_0000 + i * PAGE_SIZE),
];
/** The three EPT12 PD entries above those tables. */
const REGIONS = [0, 0x20_0000, 0x4000_0000];

type Op =
  | { kind: "leaf"; page: number; target: number; rwx: number; badType: boolean; halves: boolean }
  | { kind: "pde"; region: number; rwx: number }
  | { kind: "access"; page: number; access: number; offset: number }
  | { kind: "invept" }
  | { kind: "zapAll" };

const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant("leaf" as const),
      page: fc.nat(L2_PAGES.length - 1),
      target: fc.nat(30),
      rwx: fc.nat(7),
      badType: fc.nat(4).map((n) => n === 0),
      halves: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("pde" as const),
      region: fc.nat(REGIONS.length - 1),
      rwx: fc.constantFrom(0, 1, 3, 5, 7, 4),
    }),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant("access" as const),
      page: fc.nat(L2_PAGES.length - 1),
      access: fc.constantFrom(EPT_ACCESS.READ, EPT_ACCESS.WRITE, EPT_ACCESS.FETCH),
      offset: fc.nat(0xfff),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: "invept" as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: "zapAll" as const }) },
);

/**
 * One property over a store with or without unsync last-level pages. Without: every EPT12 store to a
 * shadowed table is emulated and zaps at once. With: a store to a last-level table unsyncs it, and
 * L1 behaves as KVM's does — it flushes (INVEPT) after changing an entry that was present, and not
 * after making one present — so EPT02 agrees with EPT12 after every operation either way.
 */
function ept12Property(unsync: boolean) {
  const seen = new Map<string, number>();
  const note = (what: string) => seen.set(what, (seen.get(what) ?? 0) + 1);
  fc.assert(
    fc.property(fc.boolean(), fc.array(op, { minLength: 20, maxLength: 60 }), (accessedDirty, ops) => {
      const f = nestedEptFixture({ accessedDirty, tablePages: 256, l1Pages: 0x1000, unsync });
      const guest = f.shadow.guestMemory;
      // EPT12 for the model, built before L2 runs (nothing is shadowed below the root yet).
      L2_PAGES.forEach((gpa, i) => {
        f.builder.map(gpa, 0x40_0000 + (i % 16) * PAGE_SIZE);
      });
      const tablePages = new Set<number>();
      for (const gpa of REGIONS) {
        for (let level = 1; level <= 4; level++) tablePages.add(f.builder.entryAddress(gpa, level) & ~0xfff);
      }
      // Targets: 16 data pages, 4 read-only pages, the EPT12 table pages, and L1 GPAs outside any slot.
      const targets = [
        ...Array.from({ length: 16 }, (_, i) => 0x40_0000 + i * PAGE_SIZE),
        ...Array.from({ length: 4 }, (_, i) => (f.roGfn + i) * PAGE_SIZE),
        ...tablePages,
        0x7000_0000,
      ];
      // Where the entries are (tables never move; a PDE may become non-present).
      const leafEntries = L2_PAGES.map((gpa) => f.builder.entryAddress(gpa, 1));
      const pdes = REGIONS.map((gpa) => f.builder.entryAddress(gpa, 2));
      const probe = new EptWalker(guest, { adUpdate: AD_UPDATE.NONE });
      /** INVEPT, then the reload before the next entry (kvm: handle_invept frees the root; kvm_mmu_load syncs). */
      const reload = () => {
        f.backend.putRoot(f.state.root);
        f.state.root = f.backend.allocShadowRoot(f.role, f.eptp12.value);
        f.ept.syncRoots(f.state.root, f.ctx12);
        expect(f.store.unsyncChildren(f.store.idOfHostPage(f.state.root))).toBe(0);
      };
      /**
       * L1 stores to an EPT12 entry as KVM's L1 does under L0: a tracked (upper-level) table's store
       * is emulated; a write-protected last-level table's store faults once, L0's make_spte unsyncs
       * the pages, and the store re-executes; otherwise it just happens. Changing an entry that was
       * present is followed by an INVEPT (KVM flushes remote TLBs for it); a new entry is not.
       */
      const l1Store = (at: number, bytes: 4 | 8, lo: number, hi: number) => {
        const gfn = Math.floor(at / PAGE_SIZE);
        const tracked = f.store.isGfnTracked(gfn);
        if (!tracked && f.store.isGfnWriteProtected(gfn)) {
          expect(f.store.tryToUnsyncPages(gfn, true)).toBe(false);
          note("unsynced");
        }
        if (bytes === 8) guest.write64(at, lo, hi);
        else guest.write32(at, lo);
        if (tracked) {
          f.shadow.trackedWrite(at, bytes);
          note("tracked writes");
        }
      };
      const l1Write = (at: number, lo: number, hi: number, halves: boolean) => {
        const wasPresent = (guest.read32(at) & EPTE_LO.XWR) !== 0;
        if (halves) {
          l1Store(at, 4, lo, 0);
          l1Store(at + 4, 4, hi, 0);
        } else {
          l1Store(at, 8, lo, hi);
        }
        if (unsync && wasPresent) reload();
      };
      /** isGfnWriteProtected against a recount over the shadow pages of each EPT12 table. */
      const checkProtection = () => {
        for (const table of tablePages) {
          const gfn = table / PAGE_SIZE;
          const pages = f.shadow.shadowPagesOf(gfn);
          const expected = pages.some((id) => f.store.level(id) > 1 || !f.store.isUnsync(id));
          expect(f.store.isGfnWriteProtected(gfn)).toBe(expected);
        }
      };
      for (const o of ops) {
        if (o.kind === "leaf") {
          const target = targets[o.target % targets.length]!;
          const lo = o.rwx === 0 ? 0 : (target | o.rwx | (o.badType ? BAD_TYPE : WB)) >>> 0;
          l1Write(leafEntries[o.page]!, lo, 0, o.halves);
        } else if (o.kind === "pde") {
          const at = pdes[o.region]!;
          const lo = guest.read32(at);
          l1Write(at, ((lo & ~EPTE_LO.XWR) | o.rwx) >>> 0, guest.read32(at + 4), false);
        } else if (o.kind === "access") {
          const gpa = L2_PAGES[o.page]! + o.offset;
          const r = f.l2Access(gpa, o.access);
          const ok12 = probe.walk(f.ctx12, gpa, o.access, 0);
          note(r.ok ? "ok" : `outcome ${r.outcome}`);
          if (r.ok) {
            expect(ok12).toBe(true);
          } else if (r.outcome === SHADOW_FAULT.INJECT_EPT_VIOLATION) {
            expect(probe.result.outcome).toBe(EPT_OUTCOME.VIOLATION);
            expect(r.last!.qualification & 0x3f).toBe(probe.result.qualification & 0x3f);
            expect(r.last!.gpa).toBe(gpa);
          } else if (r.outcome === SHADOW_FAULT.INJECT_EPT_MISCONFIG) {
            expect(probe.result.outcome).toBe(EPT_OUTCOME.MISCONFIG);
          } else if (r.outcome === SHADOW_FAULT.EMULATE_MMIO) {
            expect(f.memslots.lookup(Math.floor(probe.result.hpa / PAGE_SIZE))).toBe(-1);
          } else if (r.outcome === SHADOW_FAULT.EMULATE_READ_ONLY) {
            expect(o.access).toBe(EPT_ACCESS.WRITE);
          } else {
            expect(r.outcome).toBe(SHADOW_FAULT.EMULATE_WRITE_PROTECTED);
            expect(f.store.isGfnWriteProtected(Math.floor(probe.result.hpa / PAGE_SIZE))).toBe(true);
          }
        } else {
          if (o.kind === "zapAll") f.store.zapAllFast();
          reload();
        }
        checkProtection();
        const audit = auditShadowEpt(f.shadow, f.state.root, f.ctx12);
        expect(audit.problems).toEqual([]);
        if (audit.leaves > 0) note("leaves audited");
      }
      if (f.meter.get(MMU_EVENTS.SYNC_PAGE) > 0) note("synced");
    }),
    { numRuns: 60, seed: 0x5eed },
  );
  // The runs reached every kind of outcome, not only the easy ones.
  for (const what of [
    "ok",
    "leaves audited",
    "tracked writes",
    ...(unsync ? ["unsynced", "synced"] : []),
    `outcome ${SHADOW_FAULT.INJECT_EPT_VIOLATION}`,
    `outcome ${SHADOW_FAULT.INJECT_EPT_MISCONFIG}`,
    `outcome ${SHADOW_FAULT.EMULATE_WRITE_PROTECTED}`,
    `outcome ${SHADOW_FAULT.EMULATE_MMIO}`,
  ]) {
    expect(seen.get(what) ?? 0, what).toBeGreaterThan(0);
  }
}

describe("ShadowEptMmu property: EPT02 always agrees with EPT12 composed with the memslots", () => {
  it("after random EPT12 writes (tracked), L2 accesses, INVEPT and zap-alls", () => ept12Property(false));
  it("with unsync last-level pages, for an L1 that flushes after changing a present entry", () =>
    ept12Property(true));
});
