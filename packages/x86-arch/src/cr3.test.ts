import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeRegister, encodeRegister } from "./bit-register";
import {
  CR3,
  CR3_HI,
  CR3_LAYOUT,
  CR3_OPERAND_HI,
  CR3_PCID_LAYOUT,
  cr3Base,
  cr3OperandNoFlush,
  cr3Pcid,
  MOV_CR3_OPERAND_LAYOUT,
  splitCr3Operand,
  splitCr3OperandWords,
} from "./cr3";
import { fromBigInt64, toBigInt64 } from "./u64";

const u32 = fc.integer({ min: 0, max: 0xffffffff });

describe("CR3 layouts", () => {
  it("decode a PCID-less CR3 into PWT, PCD and the root address", () => {
    const d = decodeRegister(CR3_LAYOUT, 0x1_2345_6018n);
    expect(d.fields).toMatchObject({ PWT: true, PCD: true, ADDR: 0x123456, LAM_U57: false, LAM_U48: false });
    expect(d.undefinedBits).toBe(0n);
  });

  it("decode a PCIDE=1 CR3 into the PCID and the root address", () => {
    const d = decodeRegister(CR3_PCID_LAYOUT, 0x7ff_0000_1abcn);
    expect(d.fields).toMatchObject({ PCID: 0xabc, ADDR: 0x7ff00001 });
  });

  it("put LAM_U57/LAM_U48 at bits 61/62, matching CR3_HI", () => {
    expect(encodeRegister(CR3_LAYOUT, { LAM_U57: true })).toBe(toBigInt64(0, CR3_HI.LAM_U57));
    expect(encodeRegister(CR3_LAYOUT, { LAM_U48: true })).toBe(toBigInt64(0, CR3_HI.LAM_U48));
    expect(encodeRegister(CR3_LAYOUT, { PWT: true, PCD: true })).toBe(BigInt(CR3.PWT | CR3.PCD));
  });

  it("keep the no-flush bit out of CR3 and in the operand layout only", () => {
    expect(decodeRegister(CR3_PCID_LAYOUT, 1n << 63n).undefinedBits).toBe(1n << 63n);
    expect(decodeRegister(CR3_LAYOUT, 1n << 63n).undefinedBits).toBe(1n << 63n);
    expect(decodeRegister(MOV_CR3_OPERAND_LAYOUT, (1n << 63n) | 5n).fields).toMatchObject({
      NOFLUSH: true,
      PCID: 5,
    });
  });
});

describe("cr3Pcid / cr3Base", () => {
  it("extract the PCID and the address below MAXPHYADDR", () => {
    expect(cr3Pcid(0x7_1234_5fff)).toBe(0xfff);
    expect(cr3Base(0x7_1234_5fff, 32)).toBe(0x1234_5000);
    expect(cr3Base(0x7_1234_5fff, 33)).toBe(0x1_1234_5000);
    expect(cr3Base(0x7_1234_5fff, 46)).toBe(0x7_1234_5000);
    expect(cr3Base(0xfffff000, 32)).toBe(0xfffff000);
  });

  it("match a BigInt oracle for random 53-bit CR3 values and every MAXPHYADDR", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
        fc.integer({ min: 32, max: 52 }),
        (cr3, m) => {
          const big = BigInt(cr3);
          const base = big & (((1n << BigInt(m)) - 1n) & ~0xfffn);
          expect(cr3Base(cr3, m)).toBe(Number(base));
          expect(cr3Pcid(cr3)).toBe(Number(big & 0xfffn));
        },
      ),
    );
  });

  it("rejects a MAXPHYADDR outside [32, 52]", () => {
    expect(() => cr3Base(0, 53)).toThrow(RangeError);
    expect(() => cr3Base(0, 31)).toThrow(RangeError);
  });
});

describe("MOV-to-CR3 operand", () => {
  it("splits off bit 63 as the no-flush request when CR4.PCIDE = 1", () => {
    expect(splitCr3Operand(0x8000_0000_0010_3001n, true)).toEqual({ noFlush: true, value: 0x10_3001n });
    expect(splitCr3Operand(0x10_3001n, true)).toEqual({ noFlush: false, value: 0x10_3001n });
  });

  it("passes the operand on whole when CR4.PCIDE = 0", () => {
    expect(splitCr3Operand(0x8000_0000_0010_3000n, false)).toEqual({
      noFlush: false,
      value: 0x8000_0000_0010_3000n,
    });
  });

  it("gives the same answer for (lo, hi) words as for a BigInt, and the hot-path bit agrees", () => {
    fc.assert(
      fc.property(u32, u32, fc.boolean(), (lo, hi, pcide) => {
        const big = splitCr3Operand(toBigInt64(lo, hi), pcide);
        const words = splitCr3OperandWords(lo, hi, pcide);
        expect(words.noFlush).toBe(big.noFlush);
        expect(words).toMatchObject(fromBigInt64(big.value));
        expect(cr3OperandNoFlush(hi, pcide)).toBe(big.noFlush);
        if (pcide) expect(words.hi).toBe((hi & CR3_OPERAND_HI.VALUE) >>> 0);
      }),
    );
  });
});
