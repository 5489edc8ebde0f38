import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  ACCESS_CASE_FLAG,
  ACCESS_CASE_FLAG_COUNT,
  ACCESS_CASE_FLAG_NAMES,
  ACCESS_CASE_FREE_FLAGS,
  ACCESS_CASE_PKU_FLAGS,
  accessCaseAt,
  accessCaseIndex,
  accessCaseSliceSize,
  accessCaseSpace,
  describeAccessCase,
  forEachAccessCase,
  isLegalAccessCase,
} from "./access-case-space";

const F = ACCESS_CASE_FLAG;
const WITH_PKU = accessCaseSpace();
const WITHOUT_PKU = accessCaseSpace({ protectionKeys: false });
const anyFlags = fc.integer({ min: 0, max: 2 ** ACCESS_CASE_FLAG_COUNT - 1 });

function ascending(values: Int32Array): boolean {
  for (let i = 1; i < values.length; i++) if (values[i - 1]! >= values[i]!) return false;
  return true;
}

describe("access.c case flags", () => {
  it("are 30 distinct bits named in bit order", () => {
    const values = Object.values(F);
    expect(values).toHaveLength(ACCESS_CASE_FLAG_COUNT);
    expect(values.reduce((a, b) => a | b, 0)).toBe(2 ** ACCESS_CASE_FLAG_COUNT - 1);
    ACCESS_CASE_FLAG_NAMES.forEach((name, i) => {
      expect(F[name]).toBe(1 << i);
    });
  });

  it("describe a case by its flags' names", () => {
    expect(describeAccessCase(F.PTE_PRESENT | F.ACCESS_USER)).toBe("pte_present access_user");
    expect(describeAccessCase(F.CPU_CR4_PKE)).toBe("cpu_cr4_pke");
    expect(describeAccessCase(0)).toBe("(no flags)");
  });
});

describe("the legality rules", () => {
  it("reject a write fetch, PKRU rights without CR4.PKE, PDE bit 13 without PS, two reserved bits", () => {
    expect(isLegalAccessCase(F.ACCESS_WRITE | F.ACCESS_FETCH)).toBe(false);
    expect(isLegalAccessCase(F.PKU_AD)).toBe(false);
    expect(isLegalAccessCase(F.PKU_WD)).toBe(false);
    expect(isLegalAccessCase(F.PKU_AD | F.PKU_WD | F.CPU_CR4_PKE)).toBe(true);
    expect(isLegalAccessCase(F.PDE_BIT13)).toBe(false);
    expect(isLegalAccessCase(F.PDE_BIT13 | F.PDE_PSE)).toBe(true);
    expect(isLegalAccessCase(F.PTE_BIT51 | F.PDE_BIT36)).toBe(false);
    expect(isLegalAccessCase(F.PDE_BIT13 | F.PDE_PSE | F.PTE_BIT36)).toBe(false);
    expect(isLegalAccessCase(F.PTE_NX | F.PDE_NX)).toBe(false);
    expect(isLegalAccessCase(F.PTE_NX | F.PDE_NX | F.CPU_EFER_NX)).toBe(true);
    expect(isLegalAccessCase(F.PTE_NX | F.PDE_BIT51)).toBe(false);
    expect(isLegalAccessCase(F.PTE_NX | F.PDE_BIT51 | F.CPU_EFER_NX)).toBe(true);
  });

  it("keep CR4.SMEP with user accesses (access.c drops them only for its harness) and reject bits above 29", () => {
    expect(isLegalAccessCase(F.CPU_CR4_SMEP | F.ACCESS_USER | F.ACCESS_FETCH)).toBe(true);
    expect(isLegalAccessCase(1 << ACCESS_CASE_FLAG_COUNT)).toBe(false);
    expect(isLegalAccessCase(-1)).toBe(false);
  });

  it("never depend on the free flags", () => {
    fc.assert(
      fc.property(anyFlags, (flags) => {
        expect(isLegalAccessCase(flags)).toBe(isLegalAccessCase(flags & ~ACCESS_CASE_FREE_FLAGS));
      }),
    );
  });
});

describe("the case space", () => {
  it("has 885 legal constrained combinations × 2^16 free ones = 57,999,360 cases", () => {
    // Counted by hand from the rules: 3 access kinds (not write+fetch) × 5 PKU settings (PKE off,
    // or on with any AD/WD) × 59 reserved-bit settings. With EFER.NXE the two XD flags are free
    // (4) and at most one of PDE/PTE bits 51/36 (and PDE bit 13 with PS) is set: 4 × (5 + 6);
    // without, XD joins the reserved bits: (7 + 8).
    expect(3 * 5 * (4 * (5 + 6) + (7 + 8))).toBe(885);
    expect(WITH_PKU.constrained).toHaveLength(885);
    expect(WITH_PKU.free).toHaveLength(2 ** 16);
    expect(WITH_PKU.total).toBe(57_999_360);
  });

  it("without protection keys: 177 × 2^15 = 5,799,936 cases, none with a PKU flag", () => {
    expect(WITHOUT_PKU.constrained).toHaveLength(3 * 59);
    expect(WITHOUT_PKU.free).toHaveLength(2 ** 15);
    expect(WITHOUT_PKU.total).toBe(5_799_936);
    for (const c of WITHOUT_PKU.constrained) expect(c & ACCESS_CASE_PKU_FLAGS).toBe(0);
    for (const f of WITHOUT_PKU.free) expect(f & ACCESS_CASE_PKU_FLAGS).toBe(0);
  });

  it("lists legal values only, ascending, over disjoint masks", () => {
    for (const space of [WITH_PKU, WITHOUT_PKU]) {
      expect(ascending(space.constrained)).toBe(true);
      expect(ascending(space.free)).toBe(true);
      expect(space.constrained.every((c) => isLegalAccessCase(c) && (c & ~space.constrainedMask) === 0)).toBe(
        true,
      );
      expect(space.constrainedMask & space.freeMask).toBe(0);
    }
  });

  it("case index → flags → index is the identity, and every case is legal", () => {
    for (const space of [WITH_PKU, WITHOUT_PKU]) {
      fc.assert(
        fc.property(fc.integer({ min: 0, max: space.total - 1 }), (index) => {
          const flags = accessCaseAt(space, index);
          expect(isLegalAccessCase(flags)).toBe(true);
          expect(accessCaseIndex(space, flags)).toBe(index);
        }),
        { numRuns: 2000 },
      );
    }
  });

  it("holds exactly the legal flag combinations (with protection keys)", () => {
    fc.assert(
      fc.property(anyFlags, (flags) => {
        const index = accessCaseIndex(WITH_PKU, flags);
        expect(index >= 0).toBe(isLegalAccessCase(flags));
        if (index >= 0) expect(accessCaseAt(WITH_PKU, index)).toBe(flags);
      }),
      { numRuns: 5000 },
    );
  });

  it("finds no case with a PKU flag in the space without protection keys", () => {
    expect(accessCaseIndex(WITHOUT_PKU, F.PKU_PKEY)).toBe(-1);
    expect(accessCaseIndex(WITHOUT_PKU, F.CPU_CR4_PKE)).toBe(-1);
    expect(accessCaseIndex(WITHOUT_PKU, 0)).toBe(0);
    expect(() => accessCaseAt(WITHOUT_PKU, WITHOUT_PKU.total)).toThrow(RangeError);
    expect(() => accessCaseAt(WITHOUT_PKU, -1)).toThrow(RangeError);
  });
});

describe("slices", () => {
  it("have sizes adding up to the space, and forEachAccessCase visits that many distinct cases", () => {
    let sum = 0;
    for (let s = 0; s < 4096; s++) sum += accessCaseSliceSize(WITH_PKU, 4096, s);
    expect(sum).toBe(WITH_PKU.total);
    for (const s of [0, 7, 4095]) {
      const seen = new Set<number>();
      const n = forEachAccessCase(WITH_PKU, 4096, s, (flags) => seen.add(flags));
      expect(n).toBe(accessCaseSliceSize(WITH_PKU, 4096, s));
      expect(seen.size).toBe(n);
    }
    expect(accessCaseSliceSize(WITH_PKU, 32, 0)).toBe(WITH_PKU.total / 32);
    expect(accessCaseSliceSize(WITH_PKU, 1, 0)).toBe(WITH_PKU.total);
  });

  it("partition the space: every case lands in exactly one slice, the one its indexes name", () => {
    const space = WITHOUT_PKU;
    const slices = 8;
    const seen = new Uint8Array(space.total);
    const n = space.free.length;
    for (let s = 0; s < slices; s++) {
      let wrongSlice = 0;
      forEachAccessCase(space, slices, s, (flags) => {
        const index = accessCaseIndex(space, flags);
        seen[index]!++;
        const i = Math.floor(index / n);
        const j = index % n;
        if ((((j - 7 * i) % slices) + slices) % slices !== s) wrongSlice++;
      });
      expect(wrongSlice).toBe(0);
    }
    expect(seen.every((x) => x === 1)).toBe(true);
  });

  it("each meet every constrained value and both values of every free flag", () => {
    const slices = 256;
    for (const s of [0, 1, 255]) {
      const constrained = new Set<number>();
      let freeOr = 0;
      let freeAnd = ACCESS_CASE_FREE_FLAGS;
      forEachAccessCase(WITH_PKU, slices, s, (flags) => {
        constrained.add(flags & WITH_PKU.constrainedMask);
        freeOr |= flags & ACCESS_CASE_FREE_FLAGS;
        freeAnd &= flags;
      });
      expect(constrained.size).toBe(885);
      expect(freeOr).toBe(ACCESS_CASE_FREE_FLAGS);
      expect(freeAnd).toBe(0);
    }
  });

  it("reject a slice outside [0, slices)", () => {
    expect(() => accessCaseSliceSize(WITH_PKU, 4, 4)).toThrow(RangeError);
    expect(() => forEachAccessCase(WITH_PKU, 0, 0, () => {})).toThrow(RangeError);
  });
});
