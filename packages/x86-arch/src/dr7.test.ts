import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeRegister, describeRegister, encodeRegister } from "./bit-register";
import { DR7, DR7_LAYOUT, DR7_LEN, DR7_RESET, DR7_RW, dr7AsHeld, dr7LenShift, dr7RwShift } from "./dr7";

describe("DR7", () => {
  it("has reset value 0x400: no breakpoint enabled, only the fixed bit 10", () => {
    expect(DR7_RESET).toBe(0x400);
    expect(DR7_RESET & DR7.ENABLE_MASK).toBe(0);
    expect(describeRegister(DR7_LAYOUT, DR7_RESET).map((d) => d.name)).toEqual(["FIXED1"]);
  });

  it("decodes a 4-byte write watchpoint in slot 1 (G1, R/W1=01, LEN1=11)", () => {
    const dr7 = DR7_RESET | DR7.G1 | (DR7_RW.WRITE << dr7RwShift(1)) | (DR7_LEN.BYTES_4 << dr7LenShift(1));
    expect(dr7).toBe(0xd00408);
    expect(decodeRegister(DR7_LAYOUT, dr7).fields).toMatchObject({ G1: true, "R/W1": 1, LEN1: 3, L1: false });
  });

  it("numeric flag constants and the layout agree bit for bit", () => {
    for (const [name, mask] of Object.entries(DR7)) {
      if (name === "ENABLE_MASK") continue;
      expect(encodeRegister(DR7_LAYOUT, { [name]: true })).toBe(BigInt(mask));
    }
    for (let n = 0; n < 4; n++) {
      expect(DR7_LAYOUT.fields.find((f) => f.name === `R/W${n}`)?.lsb).toBe(dr7RwShift(n));
      expect(DR7_LAYOUT.fields.find((f) => f.name === `LEN${n}`)?.lsb).toBe(dr7LenShift(n));
    }
    expect(() => dr7RwShift(4)).toThrow(RangeError);
  });

  it("spells out the 2-bit R/W and LEN encodings in the descriptions", () => {
    const rw0 = DR7_LAYOUT.fields.find((f) => f.name === "R/W0");
    const len0 = DR7_LAYOUT.fields.find((f) => f.name === "LEN0");
    expect(rw0?.description).toMatch(
      /00 instruction execution.*01 data writes.*10 I\/O.*11 data reads\/writes/,
    );
    expect(len0?.description).toMatch(/00 1 byte.*01 2 bytes.*10 8 bytes.*11 4 bytes/);
  });

  it("leaves bits 12, 14, 15 and 63:32 reserved", () => {
    const reserved = (1n << 12n) | (1n << 14n) | (1n << 15n) | (1n << 32n);
    expect(decodeRegister(DR7_LAYOUT, reserved).undefinedBits).toBe(reserved);
  });
});

describe("dr7AsHeld", () => {
  it("clears reserved bits 12, 14 and 15, sets bit 10, keeps every other bit", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), (value) => {
        const held = dr7AsHeld(value);
        expect(held & 0xd000).toBe(0);
        expect(held & DR7.FIXED1).toBe(DR7.FIXED1);
        expect((held ^ value) & ~0xd400).toBe(0);
      }),
    );
    expect(dr7AsHeld(0)).toBe(DR7_RESET);
    expect(dr7AsHeld(0xffffffff)).toBe(0xffff2fff);
  });
});
