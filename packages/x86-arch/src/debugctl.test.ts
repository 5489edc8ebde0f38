import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeRegister, definedMask, encodeRegister } from "./bit-register";
import { DEBUGCTL, DEBUGCTL_LAYOUT } from "./debugctl";
import { MSR } from "./msr";

describe("IA32_DEBUGCTL", () => {
  it("is MSR 1D9H with LBR, BTF and FREEZE_IN_SMM at bits 0, 1 and 14", () => {
    expect(MSR.IA32_DEBUGCTL).toBe(0x1d9);
    expect(DEBUGCTL.LBR).toBe(0x1);
    expect(DEBUGCTL.BTF).toBe(0x2);
    expect(DEBUGCTL.FREEZE_IN_SMM).toBe(0x4000);
    expect(decodeRegister(DEBUGCTL_LAYOUT, 0x4001).fields).toMatchObject({
      LBR: true,
      BTF: false,
      FREEZE_IN_SMM: true,
    });
  });

  it("numeric constants and the layout agree bit for bit, and leave bits 5:3, 13 and 63:16 reserved", () => {
    for (const [name, mask] of Object.entries(DEBUGCTL)) {
      expect(DEBUGCTL_LAYOUT.fields.find((f) => f.name === name)).toBeDefined();
      expect(encodeRegister(DEBUGCTL_LAYOUT, { [name]: true })).toBe(BigInt(mask));
    }
    expect(definedMask(DEBUGCTL_LAYOUT)).toBe(0xdfc7n);
  });

  it("decodes and re-encodes every value within the defined bits", () => {
    fc.assert(
      fc.property(fc.nat({ max: 0xffff }), (raw) => {
        const value = raw & 0xdfc7;
        const { fields } = decodeRegister(DEBUGCTL_LAYOUT, value);
        expect(encodeRegister(DEBUGCTL_LAYOUT, fields)).toBe(BigInt(value));
      }),
    );
  });
});
