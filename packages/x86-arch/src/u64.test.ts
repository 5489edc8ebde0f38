import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { formatHex64, fromBigInt64, mask32, parseU64, toBigInt64 } from "./u64";

describe("parseU64", () => {
  it("reads decimal, 0x, 0b and 0o text, with _ between digits and an optional n suffix", () => {
    expect(parseU64("0")).toBe(0n);
    expect(parseU64(" 4096 ")).toBe(4096n);
    expect(parseU64("0xFFFF_FFFF_ffff_ffff")).toBe(2n ** 64n - 1n);
    expect(parseU64("0b1010")).toBe(10n);
    expect(parseU64("0o17")).toBe(15n);
    expect(parseU64("1_000_000")).toBe(1_000_000n);
    expect(parseU64("0x80000011n")).toBe(0x80000011n);
  });

  it("refuses misplaced separators, signs, fractions, exponents and empty digits", () => {
    for (const bad of [
      "",
      "_1",
      "1_",
      "1__0",
      "0x_1",
      "0x1_",
      "-1",
      "+1",
      "1.5",
      "1e3",
      "0x",
      "n",
      "0xg",
      "1 2",
    ]) {
      expect(() => parseU64(bad), bad).toThrow(SyntaxError);
    }
  });

  it("refuses values of 2^64 and more with a RangeError", () => {
    expect(() => parseU64("18446744073709551616")).toThrow(RangeError);
    expect(() => parseU64("0x1_0000_0000_0000_0000")).toThrow(/does not fit in 64 bits/);
  });

  it("reads back any 64-bit value written in hex or decimal, grouped or not", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.boolean(), (value, hex) => {
        const digits = hex ? value.toString(16) : value.toString();
        const grouped = digits.replace(/\B(?=(.{4})+$)/g, "_");
        expect(parseU64(hex ? `0x${grouped}` : grouped)).toBe(value);
      }),
      { numRuns: 300 },
    );
  });
});

describe("64-bit halves", () => {
  it("split and join BigInts modulo 2^64, and format them as 16 hex digits", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }), (value) => {
        const { lo, hi } = fromBigInt64(value);
        expect(toBigInt64(lo, hi)).toBe(BigInt.asUintN(64, value));
        expect(formatHex64(lo, hi)).toBe(`0x${BigInt.asUintN(64, value).toString(16).padStart(16, "0")}`);
      }),
      { numRuns: 300 },
    );
  });

  it("masks bit fields of one word", () => {
    expect(mask32(0, 32)).toBe(0xffffffff);
    expect(mask32(4, 4)).toBe(0xf0);
    expect(mask32(31, 1)).toBe(0x80000000);
  });
});
