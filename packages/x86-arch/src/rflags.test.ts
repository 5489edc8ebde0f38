import { describe, expect, it } from "vitest";
import { decodeRegister, describeRegister, encodeRegister } from "./bit-register";
import { RFLAGS, RFLAGS_LAYOUT, RFLAGS_RESET } from "./rflags";

describe("RFLAGS", () => {
  it("decodes the reset value 0x2 as only the fixed bit", () => {
    expect(RFLAGS_RESET).toBe(RFLAGS.FIXED1);
    expect(describeRegister(RFLAGS_LAYOUT, RFLAGS_RESET).map((d) => d.name)).toEqual(["FIXED1"]);
  });

  it("decodes IOPL as a 2-bit field", () => {
    const d = decodeRegister(RFLAGS_LAYOUT, 0x3202);
    expect(d.fields).toMatchObject({ IF: true, IOPL: 3, FIXED1: true, TF: false });
    expect((0x3202 & RFLAGS.IOPL_MASK) >>> RFLAGS.IOPL_SHIFT).toBe(3);
  });

  it("numeric flag constants and the layout agree bit for bit", () => {
    for (const [name, mask] of Object.entries(RFLAGS)) {
      if (name.startsWith("IOPL")) continue;
      expect(encodeRegister(RFLAGS_LAYOUT, { [name]: true })).toBe(BigInt(mask));
    }
    expect(encodeRegister(RFLAGS_LAYOUT, { IOPL: 3 })).toBe(BigInt(RFLAGS.IOPL_MASK));
  });

  it("leaves bits 3, 5, 15 and 22+ reserved", () => {
    const reserved = (1n << 3n) | (1n << 5n) | (1n << 15n) | (1n << 22n) | (1n << 63n);
    expect(decodeRegister(RFLAGS_LAYOUT, reserved).undefinedBits).toBe(reserved);
  });
});
