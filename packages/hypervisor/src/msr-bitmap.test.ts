import { DenseMemory } from "@nestvisor/x86-arch";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MsrBitmapMerge, msrBitmapIntercepts, writeMsrBitmap } from "./msr-bitmap";

const A = 0x1000;
const B = 0x2000;
const T = 0x3000;

/** Three random 4-KiB bitmaps in one memory. */
function bitmaps(bytes: readonly number[]): DenseMemory {
  const memory = new DenseMemory(0x4000);
  for (let i = 0; i < bytes.length; i++) memory.write8(A + (i % 12288), bytes[i]!);
  return memory;
}

const MSRS = [0xc000_0100, 0xc000_0101, 0xc000_0102, 0x48, 0x49, 0x10b, 0x174] as const;

describe("MsrBitmapMerge (kvm: nested_vmx_set_intercept_for_msr per merged MSR)", () => {
  it("intercepts a merged access when either bitmap does, and leaves every other bit alone", () => {
    const merge = new MsrBitmapMerge([
      [0xc000_0100, true, true],
      [0x48, true, true],
      [0x49, false, true],
      [0x10b, false, true],
    ]);
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 12288, maxLength: 12288 }),
        (bytes) => {
          const memory = bitmaps(bytes);
          // A copy of the target as it was, at address 0, to compare the bits the merge must keep.
          for (let i = 0; i < 4096; i++) memory.write8(i, memory.read8(T + i));
          merge.merge(memory, A, memory, B, memory, T);
          const merged = new Set(["r:c0000100", "w:c0000100", "r:48", "w:48", "w:49", "w:10b"]);
          for (const index of MSRS) {
            for (const write of [false, true]) {
              const key = `${write ? "w" : "r"}:${index.toString(16)}`;
              const want = merged.has(key)
                ? msrBitmapIntercepts(memory, A, index, write) || msrBitmapIntercepts(memory, B, index, write)
                : msrBitmapIntercepts(memory, 0, index, write);
              expect(msrBitmapIntercepts(memory, T, index, write), key).toBe(want);
            }
          }
          // Only the bytes holding merged bits change: C0000100H read/write (0x420, 0xc20), 48H/49H
          // read/write (0x9, 0x809), 10BH write (0x821).
          const mergedBytes = new Set([0x420, 0xc20, 0x9, 0x809, 0x821]);
          for (let i = 0; i < 4096; i++) {
            if (!mergedBytes.has(i))
              expect(memory.read8(T + i), `byte 0x${i.toString(16)}`).toBe(memory.read8(i));
          }
        },
      ),
      { numRuns: 50 },
    );
  });

  it("passes an MSR through only when both bitmaps do", () => {
    const memory = new DenseMemory(0x4000);
    writeMsrBitmap(memory, A, [0xc000_0100, 0xc000_0101]);
    writeMsrBitmap(memory, B, [0xc000_0100]);
    writeMsrBitmap(memory, T, []);
    new MsrBitmapMerge([
      [0xc000_0100, true, true],
      [0xc000_0101, true, true],
    ]).merge(memory, A, memory, B, memory, T);
    expect(msrBitmapIntercepts(memory, T, 0xc000_0100, false)).toBe(false);
    expect(msrBitmapIntercepts(memory, T, 0xc000_0100, true)).toBe(false);
    expect(msrBitmapIntercepts(memory, T, 0xc000_0101, false)).toBe(true);
  });

  it("refuses an MSR outside the bitmap's ranges", () => {
    expect(() => new MsrBitmapMerge([[0x4000_0000, true, false]])).toThrow(/no bit/);
  });
});
