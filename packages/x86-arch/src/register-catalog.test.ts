import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type BitField,
  decodeRegister,
  definedMask,
  describeRegister,
  encodeRegister,
  type RegisterLayout,
} from "./bit-register";
import { CR0_LAYOUT } from "./cr0";
import { CR3_LAYOUT, MOV_CR3_OPERAND_LAYOUT } from "./cr3";
import { FEATURE_CONTROL_LAYOUT } from "./msr";
import { PFERR_LAYOUT } from "./page-fault";
import { registerLayout, registerNames } from "./register-catalog";

const EXTRA_LAYOUTS: readonly RegisterLayout[] = [MOV_CR3_OPERAND_LAYOUT, FEATURE_CONTROL_LAYOUT];
const ALL_LAYOUTS: readonly RegisterLayout[] = [...registerNames().map(registerLayout), ...EXTRA_LAYOUTS];

const maskOf = (f: BitField) => ((1n << BigInt(f.width)) - 1n) << BigInt(f.lsb);

describe("registerLayout / registerNames", () => {
  it("lists the names the CLI decoder offers", () => {
    expect(registerNames()).toEqual([
      "cr0",
      "cr3",
      "cr3-pcid",
      "cr4",
      "efer",
      "rflags",
      "xcr0",
      "pkru",
      "pkrs",
      "segment-ar",
      "dr7",
      "debugctl",
      "pferr",
      "pte",
      "pte32",
      "eptp",
      "ept-entry",
      "ept-violation",
      "ept-vpid-cap",
    ]);
  });

  it("looks names up case-insensitively and reuses CR0_LAYOUT and PFERR_LAYOUT", () => {
    expect(registerLayout("CR0")).toBe(CR0_LAYOUT);
    expect(registerLayout("PfErr")).toBe(PFERR_LAYOUT);
    expect(registerLayout(" cr3 ")).toBe(CR3_LAYOUT);
    expect(registerLayout("CR3-PCID").name).toBe("CR3 (CR4.PCIDE=1)");
  });

  it("rejects an unknown name with a RangeError that lists the valid names", () => {
    expect(() => registerLayout("cr5")).toThrow(RangeError);
    expect(() => registerLayout("cr5")).toThrow(/"cr5".*cr0, cr3, cr3-pcid, cr4, efer.*pferr/);
    expect(() => registerLayout("constructor")).toThrow(RangeError);
  });
});

describe.each(ALL_LAYOUTS.map((layout) => [layout.name, layout] as const))("layout %s", (_name, layout) => {
  it("has fields in ascending bit order, inside the register, without overlaps or duplicate names", () => {
    let covered = 0n;
    let previousLsb = -1;
    const names = new Set<string>();
    for (const f of layout.fields) {
      expect(f.width).toBeGreaterThanOrEqual(1);
      expect(f.lsb + f.width).toBeLessThanOrEqual(layout.width);
      expect(f.lsb).toBeGreaterThan(previousLsb);
      expect(covered & maskOf(f)).toBe(0n);
      expect(names.has(f.name)).toBe(false);
      expect(f.description.length).toBeGreaterThan(0);
      covered |= maskOf(f);
      previousLsb = f.lsb;
      names.add(f.name);
    }
    expect(covered).toBe(definedMask(layout));
    expect(layout.source.length).toBeGreaterThan(0);
  });

  it("encode(decode(v)) keeps exactly the defined bits, for random values of the register's width", () => {
    const max = (1n << BigInt(layout.width)) - 1n;
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max }), (v) => {
        const decoded = decodeRegister(layout, v);
        expect(encodeRegister(layout, decoded.fields)).toBe(v & definedMask(layout));
        expect(decoded.undefinedBits).toBe(v & ~definedMask(layout));
      }),
      { numRuns: 300 },
    );
  });

  it("describes a value with every field set as every field, in bit order", () => {
    const described = describeRegister(layout, definedMask(layout));
    expect(described.map((d) => d.name)).toEqual(layout.fields.map((f) => f.name));
  });
});
