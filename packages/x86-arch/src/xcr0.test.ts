import { describe, expect, it } from "vitest";
import { describeRegister, encodeRegister } from "./bit-register";
import { XCR0, XCR0_LAYOUT, XCR0_USER_COMPONENTS, XSS_SUPERVISOR_COMPONENTS } from "./xcr0";

describe("XCR0 / IA32_XSS", () => {
  it("decodes 0x2e7 (x87, SSE, AVX, AVX-512, PKRU)", () => {
    expect(describeRegister(XCR0_LAYOUT, 0x2e7).map((d) => d.name)).toEqual([
      "X87",
      "SSE",
      "AVX",
      "OPMASK",
      "ZMM_Hi256",
      "Hi16_ZMM",
      "PKRU",
    ]);
  });

  it("numeric constants and the layout agree bit for bit", () => {
    const byUpperName = new Map(XCR0_LAYOUT.fields.map((f) => [f.name.toUpperCase(), f.name]));
    for (const [name, mask] of Object.entries(XCR0)) {
      const layoutName = byUpperName.get(name);
      expect(layoutName).toBeDefined();
      expect(encodeRegister(XCR0_LAYOUT, { [layoutName as string]: true })).toBe(BigInt(mask));
    }
  });

  it("splits every component between XCR0 and IA32_XSS, and says which in the description", () => {
    expect(XCR0_USER_COMPONENTS & XSS_SUPERVISOR_COMPONENTS).toBe(0);
    const all = Object.values(XCR0).reduce((a, b) => a | b, 0);
    expect(XCR0_USER_COMPONENTS | XSS_SUPERVISOR_COMPONENTS).toBe(all);
    for (const f of XCR0_LAYOUT.fields) {
      const xssOnly = (XSS_SUPERVISOR_COMPONENTS & (1 << f.lsb)) !== 0;
      expect(f.description.includes("IA32_XSS only")).toBe(xssOnly);
    }
    expect(XSS_SUPERVISOR_COMPONENTS & XCR0.PT).toBe(XCR0.PT);
    expect(XSS_SUPERVISOR_COMPONENTS & (XCR0.CET_U | XCR0.CET_S)).toBe(XCR0.CET_U | XCR0.CET_S);
  });

  it("numbers AMX and APX components 17, 18 and 19", () => {
    expect(XCR0.TILECFG).toBe(1 << 17);
    expect(XCR0.TILEDATA).toBe(1 << 18);
    expect(XCR0.APX).toBe(1 << 19);
  });
});
