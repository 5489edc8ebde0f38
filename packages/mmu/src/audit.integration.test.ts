import { ACCESS, EPT_ACCESS, EPT_MEMORY_TYPE, EPTE_LO, PAGE_SIZE, PTE_HI, PTE_LO } from "@nestvisor/x86-arch";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AUDIT_FORMAT, assertAuditClean, TableAuditor } from "./audit";
import { eptOnEptReference } from "./ept-on-ept-reference";
import { shadowPagingReference } from "./shadow-paging-reference";
import type { GuestTableMode } from "./testing/guest-page-table-builder";
import { nestedEptFixture } from "./testing/nested-ept-fixture";
import { shadowPagingFixture } from "./testing/shadow-paging-fixture";

/**
 * The audit over the shadow MMU's own tables: EPT02 built by `ShadowEptMmu` and shadow page tables
 * built by `ShadowPagingMmu`, after every step of random guest-table writes (tracked, as L0
 * emulates them), guest accesses that fault, and root reloads. The audit must stay clean — leaves,
 * rights, and every table page's level, gfn and direct bit as KVM names them.
 */

const WB = EPT_MEMORY_TYPE.WB << EPTE_LO.MEMORY_TYPE_SHIFT;
/** L2 pages with 4-KiB EPT12 leaves, and one 2-MiB EPT12 page at 0x60_0000. */
const L2_PAGES = [0x1000, 0x2000, 0x3000, 0x20_0000, 0x20_1000, 0x4000_0000, 0x4000_1000];
const L2_LARGE = 0x60_0000;

type EptOp =
  | { kind: "leaf"; page: number; target: number; rwx: number }
  | { kind: "access"; page: number; large: boolean; access: number; offset: number }
  | { kind: "reload" }
  | { kind: "zapAll" };

const eptOp: fc.Arbitrary<EptOp> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("leaf" as const),
      page: fc.nat(L2_PAGES.length - 1),
      target: fc.nat(40),
      rwx: fc.constantFrom(0, 1, 3, 5, 7, 4),
    }),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant("access" as const),
      page: fc.nat(L2_PAGES.length - 1),
      large: fc.boolean(),
      access: fc.constantFrom(EPT_ACCESS.READ, EPT_ACCESS.WRITE, EPT_ACCESS.FETCH),
      offset: fc.nat(0x1f_ffff),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: "reload" as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: "zapAll" as const }) },
);

describe("audit of EPT02 built by ShadowEptMmu (integration)", () => {
  it("stays clean after every step of random EPT12 writes, L2 accesses, INVEPT and zap-alls", () => {
    let leavesAudited = 0;
    fc.assert(
      fc.property(fc.boolean(), fc.array(eptOp, { minLength: 10, maxLength: 40 }), (accessedDirty, ops) => {
        const f = nestedEptFixture({ accessedDirty, tablePages: 256, l1Pages: 0x1000 });
        const guest = f.shadow.guestMemory;
        for (const [i, gpa] of L2_PAGES.entries()) f.builder.map(gpa, 0x40_0000 + i * PAGE_SIZE);
        f.builder.map(L2_LARGE, 0x20_0000, { leafLevel: 2 });
        const targets = [
          ...Array.from({ length: 24 }, (_, i) => 0x40_0000 + i * PAGE_SIZE),
          ...Array.from({ length: 4 }, (_, i) => (f.roGfn + i) * PAGE_SIZE),
          f.builder.entryAddress(0x1000, 1) & ~0xfff, // an EPT12 table page (write-tracked)
          0x7000_0000, // no memslot
        ];
        const leafEntries = L2_PAGES.map((gpa) => f.builder.entryAddress(gpa, 1));
        const auditor = new TableAuditor({
          memory: f.memory,
          format: AUDIT_FORMAT.EPT,
          reference: eptOnEptReference(guest, f.ctx12, f.memslots),
          store: f.store,
        });
        assertAuditClean(auditor.audit(f.state.root));
        for (const o of ops) {
          if (o.kind === "leaf") {
            const target = targets[o.target % targets.length]!;
            const at = leafEntries[o.page]!;
            guest.write64(at, o.rwx === 0 ? 0 : (target | o.rwx | WB) >>> 0, 0);
            f.shadow.trackedWrite(at, 8);
          } else if (o.kind === "access") {
            const gpa = o.large ? L2_LARGE + o.offset : L2_PAGES[o.page]! + (o.offset & 0xfff);
            f.l2Access(gpa, o.access);
          } else {
            if (o.kind === "zapAll") f.store.zapAllFast();
            f.backend.putRoot(f.state.root);
            f.state.root = f.backend.allocShadowRoot(f.role, f.eptp12.value);
          }
          leavesAudited += assertAuditClean(auditor.audit(f.state.root)).leaves;
        }
      }),
      { numRuns: 40, seed: 0xa0d1 },
    );
    expect(leavesAudited).toBeGreaterThan(100);
  });
});

type PagingOp =
  | { kind: "leaf"; page: number; target: number; flags: number; xd: boolean }
  | { kind: "access"; page: number; access: number; offset: number }
  | { kind: "reload" }
  | { kind: "zapAll" };

const pagingOp: fc.Arbitrary<PagingOp> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("leaf" as const),
      page: fc.nat(11),
      target: fc.nat(30),
      flags: fc.oneof(fc.constantFrom(0x07, 0x27, 0x67, 0x25, 0x65, 0x63), fc.nat(0x7f)),
      xd: fc.boolean(),
    }),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant("access" as const),
      page: fc.nat(11),
      access: fc.constantFrom(
        ACCESS.READ,
        ACCESS.WRITE,
        ACCESS.FETCH,
        ACCESS.USER,
        ACCESS.USER | ACCESS.WRITE,
        ACCESS.USER | ACCESS.FETCH,
      ),
      offset: fc.nat(0xfff),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: "reload" as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: "zapAll" as const }) },
);

describe("audit of shadow page tables built by ShadowPagingMmu (integration)", () => {
  const cases: { mode: GuestTableMode; wp: boolean; smep: boolean }[] = [
    { mode: "level4", wp: true, smep: false },
    { mode: "level4", wp: false, smep: true },
    { mode: "pae", wp: true, smep: false },
    { mode: "bit32", wp: false, smep: false },
  ];
  for (const { mode, wp, smep } of cases) {
    it(`stays clean for a ${mode} guest (CR0.WP=${wp ? 1 : 0}, SMEP=${smep ? 1 : 0}) after every step`, () => {
      let leavesAudited = 0;
      fc.assert(
        fc.property(fc.array(pagingOp, { minLength: 10, maxLength: 40 }), (ops) => {
          const f = shadowPagingFixture(mode, { wp, smep, tablePages: 256, guestPages: 0x1000 });
          const guest = f.shadow.guestMemory;
          const regions =
            mode === "level4"
              ? [0x40_0000, 0x60_0000, 0x8000_0000_0000]
              : [0x40_0000, 0x60_0000, 0xc000_0000];
          const pages = regions.flatMap((base) => [0, 1, 2, 3].map((i) => base + i * PAGE_SIZE));
          for (const [i, la] of pages.entries()) f.builder.map(la, 0x40_0000 + i * PAGE_SIZE);
          if (mode === "bit32") f.builder.map(0x80_0000, 0x80_0000, { leafLevel: 2 }); // a 4-MiB page
          f.reload();
          const leafEntries = pages.map((la) => f.builder.entryAddress(la, 1));
          const targets = [
            ...Array.from({ length: 24 }, (_, i) => 0x40_0000 + i * PAGE_SIZE),
            ...Array.from({ length: 4 }, (_, i) => (f.roGfn + i) * PAGE_SIZE),
            f.builder.entryAddress(regions[0]!, 1) & ~0xfff, // a guest page table (write-tracked)
          ];
          const audit = () =>
            new TableAuditor({
              memory: f.memory,
              format: mode === "level4" ? AUDIT_FORMAT.X86_64 : AUDIT_FORMAT.X86_PAE,
              reference: shadowPagingReference(guest, f.state.ctx, f.memslots),
              store: f.store,
            }).audit(f.state.root);
          assertAuditClean(audit());
          for (const o of ops) {
            if (o.kind === "leaf") {
              const target = targets[o.target % targets.length]!;
              const at = leafEntries[o.page]!;
              const lo = ((target | o.flags) & ~PTE_LO.PAGE_SIZE) >>> 0;
              if (mode === "bit32") guest.write32(at, lo);
              else guest.write64(at, lo, o.xd ? PTE_HI.XD : 0);
              f.shadow.trackedWrite(at, mode === "bit32" ? 4 : 8, mode !== "bit32");
            } else if (o.kind === "access") {
              const la = pages[o.page]! + o.offset;
              f.guestAccess(la % 2 ** 32, Math.floor(la / 2 ** 32), o.access);
              if (mode === "bit32") f.guestAccess(0x80_0000 + o.offset * 0x400, 0, o.access);
            } else {
              if (o.kind === "zapAll") f.store.zapAllFast();
              f.reload();
            }
            leavesAudited += assertAuditClean(audit()).leaves;
          }
        }),
        { numRuns: 25, seed: 0x5a0d },
      );
      expect(leavesAudited).toBeGreaterThan(50);
    });
  }
});
