import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { jsonErrorOffset } from "./json-error-offset";

describe("jsonErrorOffset", () => {
  it("accepts exactly what JSON.parse accepts (random JSON values, serialised)", () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.boolean(), (value, pretty) => {
        expect(jsonErrorOffset(JSON.stringify(value, null, pretty ? 2 : 0))).toBe(-1);
      }),
    );
  });

  it("agrees with JSON.parse on random text", () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(...'{}[]:,"\\ 0123-.eEtruefalsn\n') }), (text) => {
        let valid = true;
        try {
          JSON.parse(text);
        } catch {
          valid = false;
        }
        expect(jsonErrorOffset(text) === -1).toBe(valid);
      }),
    );
  });

  it("points at the offending character", () => {
    expect(jsonErrorOffset('{"a": ]}')).toBe(6);
    expect(jsonErrorOffset('{"a": 1,}')).toBe(8);
    expect(jsonErrorOffset('{"a": 01}')).toBe(7);
    expect(jsonErrorOffset('"\\x"')).toBe(2);
    expect(jsonErrorOffset('"\\u12g4"')).toBe(5);
    expect(jsonErrorOffset("[1, 2")).toBe(5);
    expect(jsonErrorOffset("{} x")).toBe(3);
    expect(jsonErrorOffset("")).toBe(0);
  });
});

describe("jsonErrorOffset on deeply nested text (regression: it recursed and overflowed the stack)", () => {
  it("reports where 100,000 unclosed brackets end, and accepts them closed", () => {
    const depth = 100_000;
    expect(jsonErrorOffset("[".repeat(depth))).toBe(depth);
    expect(jsonErrorOffset(`${'{"a":'.repeat(depth)}1${"}".repeat(depth - 1)}`)).toBe(5 * depth + depth);
    expect(jsonErrorOffset(`${"[".repeat(depth)}${"]".repeat(depth)}`)).toBe(-1);
    expect(jsonErrorOffset(`${'{"a":['.repeat(depth)}1${"]}".repeat(depth)}`)).toBe(-1);
    expect(jsonErrorOffset(`${"[".repeat(depth)}1,]${"]".repeat(depth - 1)}`)).toBe(depth + 2);
  });
});
