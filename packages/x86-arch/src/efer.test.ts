import { describe, expect, it } from "vitest";
import { decodeRegister, describeRegister, encodeRegister } from "./bit-register";
import { EFER, EFER_LAYOUT, eferInMode } from "./efer";

describe("IA32_EFER", () => {
  it("decodes a long-mode value (SCE|LME|LMA|NXE = 0xd01)", () => {
    expect(describeRegister(EFER_LAYOUT, 0xd01).map((d) => d.name)).toEqual(["SCE", "LME", "LMA", "NXE"]);
    expect(EFER.SCE | EFER.LME | EFER.LMA | EFER.NXE).toBe(0xd01);
  });

  it("numeric constants and the layout agree bit for bit", () => {
    for (const [name, mask] of Object.entries(EFER)) {
      expect(encodeRegister(EFER_LAYOUT, { [name]: true })).toBe(BigInt(mask));
    }
  });

  it("marks every bit the SDM does not define as AMD-only", () => {
    const intel = new Set(["SCE", "LME", "LMA", "NXE"]);
    for (const f of EFER_LAYOUT.fields) {
      expect(f.description.startsWith("AMD only")).toBe(!intel.has(f.name));
    }
  });

  it("reports reserved bits as undefined", () => {
    expect(decodeRegister(EFER_LAYOUT, 0x2n).undefinedBits).toBe(0x2n);
  });
});

describe("eferInMode", () => {
  it("sets or clears LMA and LME together and keeps every other bit", () => {
    const others = (EFER.SCE | EFER.NXE | EFER.FFXSR) >>> 0;
    expect(eferInMode(others, true)).toBe((others | EFER.LMA | EFER.LME) >>> 0);
    expect(eferInMode((others | EFER.LMA | EFER.LME) >>> 0, false)).toBe(others);
    expect(eferInMode(EFER.LME, true)).toBe((EFER.LME | EFER.LMA) >>> 0);
    expect(eferInMode(0xffffffff, false)).toBe((0xffffffff & ~(EFER.LMA | EFER.LME)) >>> 0);
  });
});
