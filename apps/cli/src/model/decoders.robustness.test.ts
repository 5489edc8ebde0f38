import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { UsageError } from "../framework/errors";
import { DECODE_KINDS, decodeKind, parseValue } from "./decoders";

/**
 * Robustness of `nestvisor decode`: every kind, given any value (empty, blank, negative, huge,
 * non-numeric, odd prefixes), decodes it or throws a one-line UsageError that quotes the value.
 */

const ODD_VALUES = [
  "",
  " ",
  "0x",
  "0X",
  "-1",
  "-0x1",
  "+5",
  "1.5",
  "1e3",
  "0b",
  "0o",
  "0b102",
  "abc",
  "1 2",
  "0x 1",
  "١٢",
  "0x٣",
  "99999999999999999999999999999",
  "0xffffffffffffffffffffffff",
  "18446744073709551615",
  "18446744073709551616",
  "0xFFFFFFFF",
  "__proto__",
  "constructor",
  "toString",
];

const value: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(...ODD_VALUES),
  fc.string({ maxLength: 30 }),
  fc.string({ unit: "binary", maxLength: 30 }),
  fc.bigInt({ min: -(1n << 80n), max: 1n << 80n }).map((n) => n.toString()),
  fc.bigInt({ min: 0n, max: 1n << 80n }).map((n) => `0x${n.toString(16)}`),
  fc.bigInt({ min: 0n, max: 1n << 80n }).map((n) => `0X${n.toString(16).toUpperCase()}`),
);

const REASONS = [
  "IO_INSTRUCTION",
  "CR_ACCESS",
  "EPT_VIOLATION",
  "INVLPG",
  "CPUID",
  "30",
  "0x8000001e",
  "",
  "x",
];

function decodes(kind: string, text: string, reason?: string): void {
  try {
    const out = decodeKind(kind).decode(text, reason === undefined ? {} : { reason });
    expect(out.lines.length).toBeGreaterThan(0);
    expect(JSON.parse(JSON.stringify(out.json))).toEqual(out.json);
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    const message = (error as Error).message;
    expect(message).not.toMatch(/\n/);
    expect(message.length).toBeGreaterThan(0);
  }
}

describe("decode <kind> <any value>", () => {
  it("every kind decodes the value or throws a one-line UsageError", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...DECODE_KINDS.map((k) => k.name)),
        value,
        fc.constantFrom(...REASONS),
        (kind, text, reason) => {
          decodes(kind, text, kind === "exit-qual" ? reason : undefined);
        },
      ),
      { numRuns: 800 },
    );
  });

  it("every kind and every odd value, exhaustively", () => {
    for (const kind of DECODE_KINDS) {
      for (const text of ODD_VALUES)
        decodes(kind.name, text, kind.name === "exit-qual" ? "CR_ACCESS" : undefined);
    }
  });
});

describe("decode defects found by the robustness audit (regressions)", () => {
  it("says a number wider than 64 bits does not fit, not that it is not a number", () => {
    expect(() => parseValue("18446744073709551616", 64, "cr0")).toThrow(
      /^cr0 18446744073709551616 does not fit in 64 bits$/,
    );
    expect(() => parseValue("0xffffffffffffffffffff", 32, "interruption information")).toThrow(
      /^interruption information 0xffffffffffffffffffff does not fit in 32 bits$/,
    );
    expect(() => decodeKind("exit-reason").decode("99999999999999999999999", {})).toThrow(
      /^exit reason 99999999999999999999999 does not fit in 32 bits$/,
    );
    expect(() => parseValue("-1", 64, "cr0")).toThrow(/^cr0 "-1" is not a number/);
  });

  it("exit-reason: reports reserved bits 25:16 and 30 instead of ignoring them", () => {
    const out = decodeKind("exit-reason").decode("65536", {});
    expect(out.lines[0]).toBe("0x00010000 EXCEPTION_NMI");
    expect(out.lines).toContain("  reserved bits set: 0x00010000 (bits 25:16 and 30 read as 0)");
    expect(out.json).toMatchObject({ basic: 0, reservedBits: "0x10000" });
    expect(decodeKind("exit-reason").decode("0x40000030", {}).json).toMatchObject({
      reservedBits: "0x40000000",
    });
    const clean = decodeKind("exit-reason").decode("0x80000021", {});
    expect(clean.json).toMatchObject({ reservedBits: "0x0", failedVmentry: true });
    expect(clean.lines.join("\n")).not.toContain("reserved");
  });
});
