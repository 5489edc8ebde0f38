import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeRegister, encodeRegister } from "./bit-register";
import { eptCapabilities, MODERN_EPT_CAPABILITIES } from "./ept-capabilities";
import {
  checkEptPointer,
  decodeEptPointer,
  EPT_MEMORY_TYPE,
  EPTP,
  EPTP_LAYOUT,
  type EptPointer,
  encodeEptPointer,
} from "./ept-pointer";
import { fromBigInt64, toBigInt64 } from "./u64";

const eptpArbitrary: fc.Arbitrary<EptPointer> = fc.record({
  memoryType: fc.integer({ min: 0, max: 7 }),
  walkLength: fc.integer({ min: 1, max: 8 }),
  accessedDirty: fc.boolean(),
  supervisorShadowStack: fc.boolean(),
  root: fc.integer({ min: 0, max: 2 ** 40 - 1 }).map((frame) => frame * 4096),
});

const valid = (fields: Partial<EptPointer> = {}) =>
  encodeEptPointer({
    memoryType: EPT_MEMORY_TYPE.WB,
    walkLength: 4,
    accessedDirty: false,
    supervisorShadowStack: false,
    root: 0x12345000,
    ...fields,
  });

describe("EPTP encode/decode", () => {
  it("packs the fields at their SDM positions", () => {
    const { lo, hi } = encodeEptPointer({
      memoryType: 6,
      walkLength: 4,
      accessedDirty: true,
      supervisorShadowStack: false,
      root: 0x3_0000_1000,
    });
    expect(lo).toBe(0x1000 | 0x40 | 0x18 | 6);
    expect(hi).toBe(3);
    expect(lo & EPTP.MEMORY_TYPE_MASK).toBe(6);
  });

  it("round-trips fields (property)", () => {
    fc.assert(
      fc.property(eptpArbitrary, (eptp) => {
        const { lo, hi } = encodeEptPointer(eptp);
        expect(decodeEptPointer(lo, hi)).toEqual(eptp);
      }),
    );
  });

  it("round-trips raw values without reserved bits, and agrees with the layout (property)", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (raw) => {
        const defined = raw & ~0xf00n & ((1n << 52n) - 1n);
        const { lo, hi } = fromBigInt64(defined);
        const back = encodeEptPointer(decodeEptPointer(lo, hi));
        expect(toBigInt64(back.lo, back.hi)).toBe(defined);
        const fields = decodeRegister(EPTP_LAYOUT, defined).fields;
        expect(encodeRegister(EPTP_LAYOUT, fields)).toBe(defined);
        expect(fields.MT).toBe(Number(defined & 7n));
        expect(fields["PWL-1"]).toBe(decodeEptPointer(lo, hi).walkLength - 1);
      }),
    );
  });

  it("rejects fields that do not fit", () => {
    expect(() => valid({ memoryType: 8 })).toThrow(RangeError);
    expect(() => valid({ walkLength: 0 })).toThrow(RangeError);
    expect(() => valid({ walkLength: 9 })).toThrow(RangeError);
    expect(() => valid({ root: 0x1234 })).toThrow(RangeError);
    expect(() => valid({ root: 2 ** 52 })).toThrow(RangeError);
  });
});

describe("checkEptPointer (VM-entry check, SDM 27.2.1.1)", () => {
  const caps = MODERN_EPT_CAPABILITIES;
  const check = (eptp: { lo: number; hi: number }, c = caps, maxPhysAddr = 46) =>
    checkEptPointer(eptp.lo, eptp.hi, c, maxPhysAddr);

  it("accepts WB and UC with a 4- or 5-level walk", () => {
    expect(check(valid())).toBeNull();
    expect(check(valid({ memoryType: EPT_MEMORY_TYPE.UC, walkLength: 5 }))).toBeNull();
    expect(check(valid({ accessedDirty: true, supervisorShadowStack: true }))).toBeNull();
  });

  it("requires a memory type the capability MSR reports", () => {
    for (const type of [1, 2, 3, 4, 5, 7]) expect(check(valid({ memoryType: type }))).toMatch(/memory type/);
    expect(check(valid(), eptCapabilities({ memoryTypeWb: false }))).toMatch(/memory type 6/);
    expect(check(valid({ memoryType: 0 }), eptCapabilities({ memoryTypeUc: false }))).toMatch(
      /memory type 0/,
    );
  });

  it("requires a supported page-walk length", () => {
    for (const length of [1, 2, 3, 6, 7, 8])
      expect(check(valid({ walkLength: length }))).toMatch(/walk length/);
    expect(check(valid({ walkLength: 5 }), eptCapabilities({ walkLength5: false }))).toMatch(/length 5/);
    expect(check(valid(), eptCapabilities({ walkLength4: false }))).toMatch(/length 4/);
  });

  it("allows the A/D bit only when A/D flags are supported", () => {
    expect(check(valid({ accessedDirty: true }), eptCapabilities({ accessedDirty: false }))).toMatch(/bit 6/);
  });

  it("treats bit 7 as reserved without supervisor shadow-stack control", () => {
    expect(
      check(valid({ supervisorShadowStack: true }), eptCapabilities({ supervisorShadowStack: false })),
    ).toMatch(/bit 7/);
  });

  it("requires bits 11:8 and MAXPHYADDR..63 to be zero", () => {
    for (const bit of [8, 9, 10, 11]) {
      const e = valid();
      expect(check({ lo: (e.lo | (1 << bit)) >>> 0, hi: e.hi })).toMatch(/11:8/);
    }
    const e = valid();
    expect(check({ lo: e.lo, hi: 1 << 14 })).toMatch(/63:46/); // bit 46
    expect(check({ lo: e.lo, hi: 1 << 13 })).toBeNull(); // bit 45 < MAXPHYADDR
    expect(check({ lo: e.lo, hi: 0x80000000 })).toMatch(/beyond MAXPHYADDR/); // bit 63
    expect(check({ lo: e.lo, hi: 1 << 13 }, caps, 40)).toMatch(/63:40/);
  });
});
