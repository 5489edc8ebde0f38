import {
  ACCESS,
  AD_UPDATE,
  createPagingContext,
  MODERN_CPU,
  PAGE_SIZE,
  PageWalker,
  PTE_HI,
  PTE_LO,
} from "@nestvisor/x86-arch";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SHADOW_FAULT } from "./shadow-fault";
import type { GuestTableMode } from "./testing/guest-page-table-builder";
import { auditShadowPaging } from "./testing/shadow-audit";
import { shadowPagingFixture } from "./testing/shadow-paging-fixture";

/** GVAs of the model: 4 pages under each of three page directories entries. */
function regionsOf(mode: GuestTableMode): number[] {
  // 4-level: two PDEs of one PD and one page in the upper half (PML4 entry 256); PAE: PDPTEs 0 and 3.
  return mode === "level4" ? [0x40_0000, 0x60_0000, 0x8000_0000_0000] : [0x40_0000, 0x60_0000, 0xc000_0000];
}

type Op =
  | {
      kind: "leaf";
      page: number;
      target: number;
      flags: number;
      xd: boolean;
      reserved: boolean;
      halves: boolean;
    }
  | { kind: "pde"; region: number; flags: number; xd: boolean }
  | { kind: "access"; page: number; access: number; offset: number }
  | { kind: "reload" }
  | { kind: "zapAll" };

const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant("leaf" as const),
      page: fc.nat(11),
      target: fc.nat(30),
      // P, R/W, U/S, PWT, PCD, A, D: often a plain present user page, clean or dirty.
      flags: fc.oneof(fc.constantFrom(0x07, 0x27, 0x67), fc.nat(0x7f)),
      xd: fc.boolean(),
      reserved: fc.nat(9).map((n) => n === 0),
      halves: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("pde" as const),
      region: fc.nat(2),
      flags: fc.nat(7).map((n) => n | PTE_LO.PRESENT),
      xd: fc.nat(3).map((n) => n === 0),
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

describe("ShadowPagingMmu property: the shadow tables always agree with the guest's composed with the memslots", () => {
  for (const mode of ["level4", "pae"] as const) {
    it(`${mode} guest: random guest table writes (tracked), accesses, reloads and zap-alls`, () => {
      const seen = new Map<string, number>();
      const note = (what: string) => seen.set(what, (seen.get(what) ?? 0) + 1);
      fc.assert(
        fc.property(fc.array(op, { minLength: 20, maxLength: 60 }), (ops) => {
          const f = shadowPagingFixture(mode, { tablePages: 256, guestPages: 0x1000 });
          const guest = f.shadow.guestMemory;
          const regions = regionsOf(mode);
          const pages = regions.flatMap((base) => [0, 1, 2, 3].map((i) => base + i * PAGE_SIZE));
          pages.forEach((la, i) => {
            f.builder.map(la, 0x40_0000 + i * PAGE_SIZE);
          });
          f.reload();
          const leafEntries = pages.map((la) => f.builder.entryAddress(la, 1));
          const pdes = regions.map((la) => f.builder.entryAddress(la, 2));
          const tablePages = new Set<number>();
          for (const la of regions) {
            for (let level = 1; level <= (mode === "level4" ? 4 : 2); level++) {
              tablePages.add(f.builder.entryAddress(la, level) & ~0xfff);
            }
          }
          const targets = [
            ...Array.from({ length: 16 }, (_, i) => 0x40_0000 + i * PAGE_SIZE),
            ...Array.from({ length: 4 }, (_, i) => (f.roGfn + i) * PAGE_SIZE),
            ...tablePages,
            0x7000_0000,
          ];
          const oracle = new PageWalker(guest, { adUpdate: AD_UPDATE.NONE });
          /** The guest writes one of its entries; the write faults (tracked) and L0 emulates it. */
          const guestWrite = (at: number, lo: number, hi: number, halves: boolean) => {
            if (halves) {
              guest.write32(at, lo);
              f.shadow.trackedWrite(at, 4);
              guest.write32(at + 4, hi);
              f.shadow.trackedWrite(at + 4, 4);
            } else {
              guest.write64(at, lo, hi);
              f.shadow.trackedWrite(at, 8);
            }
          };
          for (const o of ops) {
            if (o.kind === "leaf") {
              const target = targets[o.target % targets.length]!;
              let hi = o.xd ? PTE_HI.XD : 0;
              if (o.reserved) hi |= 1 << 18; // bit 50: above MAXPHYADDR
              guestWrite(leafEntries[o.page]!, (target | o.flags) >>> 0, hi >>> 0, o.halves);
            } else if (o.kind === "pde") {
              const at = pdes[o.region]!;
              const lo = (guest.read32(at) & ~0x7) | o.flags;
              const hi = (guest.read32(at + 4) & ~PTE_HI.XD) | (o.xd ? PTE_HI.XD : 0);
              guestWrite(at, lo >>> 0, hi >>> 0, false);
            } else if (o.kind === "access") {
              const la = pages[o.page]! + o.offset;
              const laLo = la % 2 ** 32;
              const laHi = Math.floor(la / 2 ** 32);
              const r = f.guestAccess(laLo, laHi, o.access);
              const guestCtx = createPagingContext(f.regs(), MODERN_CPU);
              const ok = oracle.walk(guestCtx, laLo, laHi, o.access);
              note(r.ok ? "ok" : `outcome ${r.outcome}`);
              if (r.ok) {
                expect(ok).toBe(true);
              } else if (r.outcome === SHADOW_FAULT.INJECT_PAGE_FAULT) {
                expect(ok).toBe(false);
                expect(r.last!.errorCode).toBe(oracle.result.errorCode);
              } else {
                expect(ok).toBe(true);
                const gfn = Math.floor(oracle.result.pa / PAGE_SIZE);
                if (r.outcome === SHADOW_FAULT.EMULATE_MMIO) expect(f.memslots.lookup(gfn)).toBe(-1);
                else if (r.outcome === SHADOW_FAULT.EMULATE_READ_ONLY)
                  expect(gfn).toBeGreaterThanOrEqual(f.roGfn);
                else {
                  expect(r.outcome).toBe(SHADOW_FAULT.EMULATE_WRITE_PROTECTED);
                  expect(f.store.isGfnTracked(gfn)).toBe(true);
                }
              }
            } else {
              if (o.kind === "zapAll") f.store.zapAllFast();
              f.reload();
            }
            const audit = auditShadowPaging(f.shadow, f.state.root, f.regs());
            expect(audit.problems).toEqual([]);
            if (audit.leaves > 0) note("leaves audited");
          }
          if (f.shadow.pteWrites > 0) note("tracked writes");
        }),
        { numRuns: 50, seed: 0xc0ffee },
      );
      for (const what of [
        "ok",
        "leaves audited",
        "tracked writes",
        `outcome ${SHADOW_FAULT.INJECT_PAGE_FAULT}`,
        `outcome ${SHADOW_FAULT.EMULATE_WRITE_PROTECTED}`,
        `outcome ${SHADOW_FAULT.EMULATE_MMIO}`,
        `outcome ${SHADOW_FAULT.EMULATE_READ_ONLY}`,
      ]) {
        expect(seen.get(what) ?? 0, what).toBeGreaterThan(0);
      }
    });
  }
});
