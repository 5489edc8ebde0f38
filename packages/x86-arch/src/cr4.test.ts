import { describe, expect, it } from "vitest";
import { decodeRegister, describeRegister, encodeRegister } from "./bit-register";
import { CR4, CR4_HI, CR4_LAYOUT } from "./cr4";
import { toBigInt64 } from "./u64";

describe("CR4", () => {
  it("decodes 0x3406e0 (a typical 64-bit Linux value) to the expected flags", () => {
    const set = describeRegister(CR4_LAYOUT, 0x3406e0).map((d) => d.name);
    expect(set).toEqual(["PAE", "MCE", "PGE", "OSFXSR", "OSXMMEXCPT", "OSXSAVE", "SMEP", "SMAP"]);
    expect(decodeRegister(CR4_LAYOUT, 0x3406e0).undefinedBits).toBe(0n);
  });

  it("numeric constants and the layout agree bit for bit", () => {
    for (const [name, mask] of Object.entries(CR4)) {
      expect(encodeRegister(CR4_LAYOUT, { [name]: true })).toBe(BigInt(mask));
    }
    expect(encodeRegister(CR4_LAYOUT, { FRED: true })).toBe(toBigInt64(0, CR4_HI.FRED));
  });

  it("places the paging bits where the SDM does", () => {
    expect(CR4.PSE).toBe(0x10);
    expect(CR4.PAE).toBe(0x20);
    expect(CR4.LA57).toBe(0x1000);
    expect(CR4.PCIDE).toBe(0x20000);
    expect(CR4.SMEP).toBe(0x100000);
    expect(CR4.SMAP).toBe(0x200000);
    expect(CR4.PKE).toBe(0x400000);
    expect(CR4.CET).toBe(0x800000);
    expect(CR4.PKS).toBe(0x1000000);
  });

  it("leaves bits 15 and 26 reserved", () => {
    const reserved = (1n << 15n) | (1n << 26n) | (1n << 33n);
    expect(decodeRegister(CR4_LAYOUT, reserved).undefinedBits).toBe(reserved);
  });
});
