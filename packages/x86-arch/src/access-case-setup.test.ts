import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ACCESS } from "./access";
import {
  ACCESS_CASE_ENTRY_GPAS,
  ACCESS_CASE_ENTRY_NAMES,
  ACCESS_CASE_FEATURES,
  ACCESS_CASE_LAYOUT,
  accessCaseAccess,
  accessCaseCpu,
  accessCasePagingContext,
  buildAccessCaseEntries,
  buildScenarioEntries,
  newAccessCaseEntries,
} from "./access-case-setup";
import { ACCESS_CASE_FLAG, accessCaseAt, accessCaseSpace } from "./access-case-space";
import { PAGING_MODE } from "./paging-mode";

const F = ACCESS_CASE_FLAG;
const L = ACCESS_CASE_LAYOUT;
const SPACE = accessCaseSpace();
const LA = 0xffff_9234_0012_3abcn;
/** Address bits 50:12 of an entry, without bit 36 (a reserved bit the cases set on their own). */
const ADDRESS = ((1n << 51n) - 1n) & ~0xfffn & ~(1n << 36n);

/** The 64-bit entry `i` (0 = PML4E) of `e`. */
function entry(e: Uint32Array, i: number): bigint {
  return (BigInt(e[2 * i + 1]!) << 32n) | BigInt(e[2 * i]!);
}

function bit(value: bigint, n: number): boolean {
  return ((value >> BigInt(n)) & 1n) === 1n;
}

describe("the access.c layout", () => {
  it("places each entry at its table plus 8 × the address's index at that level", () => {
    const index = (level: number) => Number((LA >> BigInt(12 + 9 * (level - 1))) & 511n);
    expect((BigInt(L.LA_HI) << 32n) | BigInt(L.LA_LO)).toBe(LA);
    expect(L.PML5E).toBe(L.PML5 + 8 * index(5));
    expect(L.PML4E).toBe(L.PML4 + 8 * index(4));
    expect(L.PDPTE).toBe(L.PDPT + 8 * index(3));
    expect(L.PDE).toBe(L.PD + 8 * index(2));
    expect(L.PTE).toBe(L.PT + 8 * index(1));
    expect(ACCESS_CASE_ENTRY_GPAS).toEqual([L.PML4E, L.PDPTE, L.PDE, L.PTE]);
    expect(ACCESS_CASE_ENTRY_NAMES).toEqual(["PML4E", "PDPTE", "PDE", "PTE"]);
  });

  it("keeps the tables below the 2-MiB aligned data region, inside the memory it asks for", () => {
    expect(L.DATA % 0x20_0000).toBe(0);
    expect(Math.max(L.PML5, L.PML4, L.PDPT, L.PD, L.PT) + 0x1000).toBeLessThanOrEqual(L.DATA);
    expect(L.DATA + 0x20_0000).toBe(L.MEMORY_BYTES);
    expect(ACCESS_CASE_FEATURES.maxPhysAddr).toBe(36);
  });
});

describe("buildAccessCaseEntries", () => {
  it("sets each entry bit from its flag (every case)", () => {
    const e = newAccessCaseEntries();
    fc.assert(
      fc.property(fc.integer({ min: 0, max: SPACE.total - 1 }), (index) => {
        const flags = accessCaseAt(SPACE, index);
        const has = (flag: number) => (flags & flag) !== 0;
        e.fill(0xdead);
        buildAccessCaseEntries(flags, e);
        const [pml4e, pdpte, pde, pte] = [0, 1, 2, 3].map((i) => entry(e, i)) as [
          bigint,
          bigint,
          bigint,
          bigint,
        ];
        expect(pml4e).toBe(BigInt(L.PDPT) | 0b111n);
        expect(pdpte).toBe(BigInt(L.PD) | 0b101n | (has(F.PDPTE_NO_WRITABLE) ? 0n : 0b10n));
        const large = has(F.PDE_PSE);
        expect(bit(pde, 7)).toBe(large);
        // Bit 13 is an address bit of the page-table pointer (0x13000), reserved in a 2-MiB PDE.
        if (large) expect(pde & ADDRESS & ~(1n << 13n)).toBe(BigInt(L.DATA));
        else expect(pde & ADDRESS).toBe(BigInt(L.PT));
        for (const [flag, n] of [
          [F.PDE_PRESENT, 0],
          [F.PDE_WRITABLE, 1],
          [F.PDE_USER, 2],
          [F.PDE_ACCESSED, 5],
          [F.PDE_DIRTY, 6],
          [F.PDE_BIT36, 36],
          [F.PDE_BIT51, 51],
          [F.PDE_NX, 63],
        ] as const) {
          expect(bit(pde, n)).toBe(has(flag));
        }
        if (large) expect(bit(pde, 13)).toBe(has(F.PDE_BIT13));
        expect(Number((pde >> 59n) & 0xfn)).toBe(has(F.PKU_PKEY) ? (large ? 1 : 2) : 0);
        expect(pte & ADDRESS).toBe(BigInt(L.DATA));
        for (const [flag, n] of [
          [F.PTE_PRESENT, 0],
          [F.PTE_WRITABLE, 1],
          [F.PTE_USER, 2],
          [F.PTE_ACCESSED, 5],
          [F.PTE_DIRTY, 6],
          [F.PTE_BIT36, 36],
          [F.PTE_BIT51, 51],
          [F.PTE_NX, 63],
        ] as const) {
          expect(bit(pte, n)).toBe(has(flag));
        }
        expect(Number((pte >> 59n) & 0xfn)).toBe(has(F.PKU_PKEY) ? 1 : 0);
        expect(pte & 0x07f0_0000_0000_0f98n).toBe(0n); // no other bits
        expect(pde & 0x07f0_0000_0000_0f18n).toBe(0n);
      }),
      { numRuns: 3000 },
    );
  });
});

describe("buildScenarioEntries", () => {
  it("builds P|W|U upper entries and a PTE with the page's rights and key", () => {
    const e = newAccessCaseEntries();
    buildScenarioEntries({ user: false, writable: true, pkey: 5 }, e);
    expect([0, 1, 2].map((i) => entry(e, i))).toEqual([
      BigInt(L.PDPT | 7),
      BigInt(L.PD | 7),
      BigInt(L.PT | 7),
    ]);
    expect(entry(e, 3)).toBe((5n << 59n) | BigInt(L.DATA) | 0b011n);
    buildScenarioEntries({ user: true, writable: false, pkey: 0 }, e);
    expect(entry(e, 3)).toBe(BigInt(L.DATA) | 0b101n);
  });
});

describe("accessCaseCpu", () => {
  it("reads EFER.NXE, CR0.WP, CR4.SMEP/PKE from the flags, with no SMAP, AC or PKS", () => {
    const cpu = accessCaseCpu(F.CPU_EFER_NX | F.CPU_CR4_SMEP | F.PTE_PRESENT);
    expect(cpu).toEqual({
      key: F.CPU_EFER_NX | F.CPU_CR4_SMEP,
      nxe: true,
      wp: false,
      smep: true,
      smap: false,
      ac: false,
      pke: false,
      pks: false,
      pkru: 0xfffffffc,
      pkrs: 0,
    });
    expect(Object.isFrozen(cpu)).toBe(true);
  });

  it("opens key 0, denies key 2, and gives key 1 the case's PKRU rights", () => {
    expect(accessCaseCpu(F.CPU_CR4_PKE).pkru).toBe(0x30);
    expect(accessCaseCpu(F.CPU_CR4_PKE | F.PKU_AD).pkru).toBe(0x34);
    expect(accessCaseCpu(F.CPU_CR4_PKE | F.PKU_WD).pkru).toBe(0x38);
    expect(accessCaseCpu(F.CPU_CR4_PKE | F.PKU_AD | F.PKU_WD).pkru).toBe(0x3c);
  });

  it("returns one object per state whatever the other flags", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: SPACE.total - 1 }),
        fc.integer({ min: 0, max: SPACE.total - 1 }),
        (i, j) => {
          const a = accessCaseAt(SPACE, i);
          const b = accessCaseAt(SPACE, j);
          const ca = accessCaseCpu(a);
          const cb = accessCaseCpu(b);
          expect(ca === cb).toBe(ca.key === cb.key);
          expect(ca.key < 2 ** 30).toBe(true);
        },
      ),
    );
    expect(accessCaseCpu(F.CPU_CR0_WP | F.PTE_USER)).toBe(accessCaseCpu(F.CPU_CR0_WP | F.ACCESS_FETCH));
  });
});

describe("accessCasePagingContext", () => {
  it("is 4- or 5-level IA-32e paging rooted at the layout's PML4 or PML5, with the state's switches", () => {
    const cpu = { ...accessCaseCpu(F.CPU_CR0_WP | F.CPU_EFER_NX | F.CPU_CR4_PKE), smap: true, ac: true };
    const four = accessCasePagingContext(cpu, 4);
    expect(four.mode).toBe(PAGING_MODE.LEVEL4);
    expect(four.root).toBe(L.PML4);
    expect(four.features).toBe(ACCESS_CASE_FEATURES);
    expect([four.wp, four.nxe, four.smep, four.smap]).toEqual([true, true, false, true]);
    const five = accessCasePagingContext(accessCaseCpu(F.CPU_CR4_SMEP), 5);
    expect(five.mode).toBe(PAGING_MODE.LEVEL5);
    expect(five.root).toBe(L.PML5);
    expect([five.wp, five.nxe, five.smep, five.smap]).toEqual([false, false, true, false]);
  });
});

describe("accessCaseAccess", () => {
  it("maps ACCESS_USER/WRITE/FETCH to ACCESS bits", () => {
    expect(accessCaseAccess(F.PTE_PRESENT | F.ACCESS_TWICE)).toBe(ACCESS.READ);
    expect(accessCaseAccess(F.ACCESS_USER | F.ACCESS_WRITE)).toBe(ACCESS.USER | ACCESS.WRITE);
    expect(accessCaseAccess(F.ACCESS_FETCH)).toBe(ACCESS.FETCH);
    expect(accessCaseAccess(F.ACCESS_USER | F.ACCESS_FETCH)).toBe(ACCESS.USER | ACCESS.FETCH);
  });
});
