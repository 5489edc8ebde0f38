import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeRegister } from "./bit-register";
import { keyRights, PKEY, PKRS_LAYOUT, PKRU_LAYOUT, withKeyRights } from "./protection-key-rights";

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const key = fc.integer({ min: 0, max: 15 });

describe("PKRU / IA32_PKRS", () => {
  it("reads 0x55555554 as keys 1-15 access-disabled and key 0 open", () => {
    const value = 0x55555554;
    expect(keyRights(value, 0)).toEqual({ accessDisable: false, writeDisable: false });
    for (let k = 1; k < 16; k++) {
      expect(keyRights(value, k)).toEqual({ accessDisable: true, writeDisable: false });
    }
    const fields = decodeRegister(PKRU_LAYOUT, value).fields;
    expect(fields.AD0).toBe(false);
    expect(fields.AD15).toBe(true);
    expect(fields.WD7).toBe(false);
  });

  it("share one format: AD at bit 2k, WD at bit 2k+1", () => {
    expect(PKRS_LAYOUT.fields.map((f) => [f.name, f.lsb])).toEqual(
      PKRU_LAYOUT.fields.map((f) => [f.name, f.lsb]),
    );
    expect(PKRU_LAYOUT.fields).toHaveLength(32);
    expect(keyRights(PKEY.ALL_WD, 9)).toEqual({ accessDisable: false, writeDisable: true });
  });

  it("withKeyRights changes exactly one key's pair and keyRights reads it back", () => {
    fc.assert(
      fc.property(u32, key, fc.boolean(), fc.boolean(), (value, k, ad, wd) => {
        const rights = { accessDisable: ad, writeDisable: wd };
        const updated = withKeyRights(value, k, rights);
        expect(keyRights(updated, k)).toEqual(rights);
        const others = ~(3 << (2 * k)) >>> 0;
        expect((updated & others) >>> 0).toBe((value & others) >>> 0);
        expect(updated).toBeGreaterThanOrEqual(0);
        expect(updated).toBeLessThanOrEqual(0xffffffff);
      }),
    );
  });

  it("rejects keys outside 0-15", () => {
    expect(() => keyRights(0, 16)).toThrow(RangeError);
    expect(() => withKeyRights(0, -1, { accessDisable: true, writeDisable: false })).toThrow(RangeError);
  });
});
