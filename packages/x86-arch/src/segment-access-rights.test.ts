import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeRegister } from "./bit-register";
import {
  accessRightsFromDescriptor,
  descriptorAttributesFromAccessRights,
  SEGMENT_AR,
  SEGMENT_AR_LAYOUT,
  SEGMENT_TYPE,
} from "./segment-access-rights";

describe("segment access rights (VMCS format)", () => {
  it("decodes a 64-bit ring-0 code segment (0xa09b)", () => {
    expect(decodeRegister(SEGMENT_AR_LAYOUT, 0xa09b).fields).toEqual({
      TYPE: 0xb,
      S: true,
      DPL: 0,
      P: true,
      AVL: false,
      L: true,
      "D/B": false,
      G: true,
      UNUSABLE: false,
    });
  });

  it("decodes the unusable bit and a ring-3 data segment", () => {
    const ar = SEGMENT_AR.UNUSABLE | SEGMENT_AR.P | SEGMENT_AR.S | (3 << SEGMENT_AR.DPL_SHIFT) | 3;
    expect(decodeRegister(SEGMENT_AR_LAYOUT, ar).fields).toMatchObject({ UNUSABLE: true, DPL: 3, TYPE: 3 });
    expect(SEGMENT_TYPE.ACCESSED | SEGMENT_TYPE.WRITABLE_OR_READABLE).toBe(3);
  });

  it("converts a flat 64-bit code descriptor to 0xa09b and back", () => {
    // Base 0, limit 0xfffff, G=1 L=1 P=1 DPL=0 S=1 type=0xb: high dword 0x00af9b00.
    const high = 0x00af9b00;
    expect(accessRightsFromDescriptor(high)).toBe(0xa09b);
    expect(descriptorAttributesFromAccessRights(0xa09b)).toBe(0x00a09b00);
    expect(descriptorAttributesFromAccessRights(0xa09b) | (high & 0x000f0000)).toBe(high);
  });

  it("round-trips the attribute bits and drops limit, base and unusable", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), (high) => {
        const ar = accessRightsFromDescriptor(high);
        expect(ar & ~0xf0ff).toBe(0);
        expect(descriptorAttributesFromAccessRights(ar)).toBe((high & 0x00f0ff00) >>> 0);
        expect(descriptorAttributesFromAccessRights(ar | SEGMENT_AR.UNUSABLE)).toBe(
          (high & 0x00f0ff00) >>> 0,
        );
      }),
    );
  });
});
