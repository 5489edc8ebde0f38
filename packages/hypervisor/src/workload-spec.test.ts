import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  checkLeaf,
  expectation,
  formatGot,
  formatNumber,
  isQuotedNumber,
  parseByteSize,
  parseInteger,
  parseIntegerText,
  parseSizeText,
  STEP_NAMES,
  STEP_TABLE,
  stepName,
  workloadDocument,
  workloadToJson,
} from "./workload-spec";

describe("integer and size text", () => {
  it("parses decimal, hex, octal and binary with separators", () => {
    expect(parseInteger("42")).toBe(42n);
    expect(parseInteger(" 0x1F ")).toBe(31n);
    expect(parseInteger("0xffff_ffff_ffff_ffff")).toBe(2n ** 64n - 1n);
    expect(parseInteger("0o17")).toBe(15n);
    expect(parseInteger("0b101")).toBe(5n);
    expect(parseInteger("abc")).toBeUndefined();
    expect(parseInteger("-1")).toBeUndefined();
    expect(parseInteger("1.5")).toBeUndefined();
  });

  it("round-trips any u64 through hex text", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), (value) => {
        expect(parseInteger(`0x${value.toString(16)}`)).toBe(value);
      }),
    );
  });

  it("parses byte sizes with binary units", () => {
    expect(parseByteSize(4096)).toBe(4096);
    expect(parseByteSize("16MiB")).toBe(16 * 2 ** 20);
    expect(parseByteSize("4K")).toBe(4096);
    expect(parseByteSize("2 GB")).toBe(2 * 2 ** 30);
    expect(parseByteSize("1tib")).toBe(2 ** 40);
    expect(parseByteSize("0x1000")).toBe(4096);
    expect(parseByteSize("16 MB of RAM")).toBeUndefined();
    expect(parseByteSize(1.5)).toBeUndefined();
  });

  it("takes from a file's strings only the forms a number cannot take, not a number in quotes", () => {
    expect(parseIntegerText("0x1F")).toBe(31n);
    expect(parseIntegerText(" 0b101 ")).toBe(5n);
    expect(parseIntegerText("0o17")).toBe(15n);
    expect(parseIntegerText("1_000")).toBe(1000n);
    expect(parseIntegerText("0x8000_0000_0000_0000")).toBe(2n ** 63n);
    for (const text of ["2", " 16 ", "0", "0x", "0x_", "_1", "1e3", "1.5", "-1", ""])
      expect(parseIntegerText(text)).toBeUndefined();
    expect(isQuotedNumber(" 16 ")).toBe(true);
    expect(isQuotedNumber("0x10")).toBe(false);
    expect(parseSizeText("16MiB")).toBe(16 * 2 ** 20);
    expect(parseSizeText("4096 B")).toBe(4096);
    expect(parseSizeText("0x1000")).toBe(4096);
    expect(parseSizeText("4096")).toBeUndefined();
  });

  it("parseIntegerText agrees with parseInteger on every string it accepts", () => {
    fc.assert(
      fc.property(
        fc.string({ unit: fc.constantFrom(..."0123456789abcdefxob_ ".split("")), maxLength: 10 }),
        (text) => {
          const value = parseIntegerText(text);
          if (value !== undefined) expect(parseInteger(text)).toBe(value);
          if (isQuotedNumber(text)) expect(value).toBeUndefined();
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("leaf checks", () => {
  it("describe what is expected and what was got", () => {
    const u32 = { kind: "int", min: 0, max: 0xffffffff } as const;
    expect(checkLeaf(u32, 7)).toBeUndefined();
    expect(checkLeaf(u32, "abc")).toBe('expected an integer in [0, 0xffffffff], got "abc"');
    expect(checkLeaf(u32, 2 ** 32)).toBe("expected an integer in [0, 0xffffffff], got 0x100000000");
    expect(checkLeaf({ kind: "u64" }, 2n ** 64n - 1n)).toBeUndefined();
    expect(checkLeaf({ kind: "u64" }, 2 ** 53)).toBe(
      "expected an integer in [0, 0xffffffffffffffff], got 0x20000000000000",
    );
    expect(checkLeaf({ kind: "choice", values: [1, 2, 4] }, 3)).toBe("expected one of 1, 2, 4, got 3");
    expect(checkLeaf({ kind: "enum", values: ["4K", "2M"] }, "8K")).toBe('expected one of 4K, 2M, got "8K"');
    expect(checkLeaf({ kind: "bool" }, "yes")).toBe('expected true or false, got "yes"');
    expect(checkLeaf({ kind: "name" }, "a b")).toMatch(/^expected a name/);
    expect(checkLeaf({ kind: "bytes", min: 4096, max: 2 ** 46 }, "16MiB")).toBeUndefined();
    expect(checkLeaf({ kind: "bytes", min: 4096, max: 2 ** 46 }, 5000)).toMatch(/multiple of 4096/);
    expect(checkLeaf({ kind: "msr" }, "IA32_EFER")).toBeUndefined();
    expect(checkLeaf({ kind: "space" }, "user 1")).toBe(
      'expected an address-space name or index, got "user 1"',
    );
    expect(checkLeaf({ kind: "object", fields: {} }, [])).toBe("expected a mapping, got a list");
    expect(checkLeaf({ kind: "steps" }, {})).toBe("expected a list of steps, got a mapping");
  });

  it("format numbers in decimal below 4096 and in hex above", () => {
    expect(formatNumber(4095)).toBe("4095");
    expect(formatNumber(4096)).toBe("0x1000");
    expect(formatNumber(-0x10000)).toBe("-0x10000");
    expect(formatNumber(2n ** 64n)).toBe("0x10000000000000000");
    expect(formatGot(null)).toBe("null");
    expect(expectation({ kind: "label" })).toBe("a non-empty string of at most 64 characters");
  });
});

describe("step table", () => {
  it("names a shorthand field that exists, for every operation that has one", () => {
    for (const name of STEP_NAMES) {
      const info: { fields: object; shorthand?: string } = STEP_TABLE[name];
      if (info.shorthand !== undefined) expect(Object.keys(info.fields)).toContain(info.shorthand);
    }
  });

  it("finds a step's operation name", () => {
    expect(stepName({ cpuid: { leaf: 0 } })).toBe("cpuid");
    expect(stepName({ cpuid: { leaf: 0 }, hlt: {} } as never)).toBeUndefined();
  });
});

describe("document form", () => {
  it("writes BigInts above 2^53 as hex strings and drops undefined fields", () => {
    const doc = workloadDocument({
      name: "x",
      steps: [{ wrmsr: { msr: 0x10, value: 2n ** 63n } }, { wrmsr: { msr: 0x10, value: 5n } }],
    });
    expect(doc).toEqual({
      name: "x",
      steps: [{ wrmsr: { msr: 0x10, value: "0x8000000000000000" } }, { wrmsr: { msr: 0x10, value: 5 } }],
    });
    expect(
      JSON.parse(workloadToJson({ name: "y", description: undefined as never, steps: [{ hlt: {} }] })),
    ).toEqual({
      name: "y",
      steps: [{ hlt: {} }],
    });
  });
});
