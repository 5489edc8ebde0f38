import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DenseMemory } from "./dense-memory";
import { type PhysicalMemory, readWords, writeWords } from "./physical-memory";
import { SparseMemory } from "./sparse-memory";

/** A backend with only the scalar accessors, so the helpers take their fallback path. */
function scalarOnly(memory: PhysicalMemory): PhysicalMemory {
  return {
    size: memory.size,
    read8: (pa) => memory.read8(pa),
    read16: (pa) => memory.read16(pa),
    read32: (pa) => memory.read32(pa),
    read64: (pa) => memory.read64(pa),
    write8: (pa, v) => memory.write8(pa, v),
    write16: (pa, v) => memory.write16(pa, v),
    write32: (pa, v) => memory.write32(pa, v),
    write64: (pa, lo, hi) => memory.write64(pa, lo, hi),
    readBytes: (pa, n) => memory.readBytes(pa, n),
    writeBytes: (pa, b) => memory.writeBytes(pa, b),
  };
}

const SIZE = 4 * 4096;
const backends: [string, () => PhysicalMemory][] = [
  ["dense", () => new DenseMemory(SIZE)],
  ["sparse", () => new SparseMemory()],
  ["scalar-only", () => scalarOnly(new DenseMemory(SIZE))],
];

const run = fc.record({
  // A word-aligned start anywhere in the first three pages, so runs cross page boundaries.
  word: fc.integer({ min: 0, max: (3 * 4096) / 4 - 1 }),
  count: fc.integer({ min: 0, max: 1100 }),
  offset: fc.integer({ min: 0, max: 8 }),
  seed: fc.integer({ min: 0, max: 0xffffffff }),
  // Pages written before the copy (the rest of a sparse memory stays unallocated).
  touched: fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 4 }),
});

describe.each(backends)("readWords / writeWords on %s memory", (_name, make) => {
  it("read what read32 reads, word for word, across pages and untouched pages", () => {
    fc.assert(
      fc.property(run, ({ word, count, offset, seed, touched }) => {
        const memory = make();
        for (const page of touched) memory.write32(page * 4096 + 8, (seed ^ page) >>> 0);
        const pa = word * 4;
        const n = Math.min(count, SIZE / 4 - word);
        const target = new Uint32Array(offset + n + 2).fill(0xdeadbeef);
        readWords(memory, pa, target, offset, n);
        for (let i = 0; i < n; i++) expect(target[offset + i]).toBe(memory.read32(pa + i * 4));
        expect(target[offset + n]).toBe(0xdeadbeef);
        if (offset > 0) expect(target[offset - 1]).toBe(0xdeadbeef);
      }),
      { numRuns: 200 },
    );
  });

  it("write what write32 writes, word for word, and nothing else", () => {
    fc.assert(
      fc.property(run, ({ word, count, offset, seed }) => {
        const a = make();
        const b = make();
        const pa = word * 4;
        const n = Math.min(count, SIZE / 4 - word);
        const source = Uint32Array.from({ length: offset + n }, (_, i) => (seed + i * 0x9e3779b9) >>> 0);
        writeWords(a, pa, source, offset, n);
        for (let i = 0; i < n; i++) b.write32(pa + i * 4, source[offset + i]!);
        for (let at = 0; at < SIZE; at += 4) expect(a.read32(at)).toBe(b.read32(at));
      }),
      { numRuns: 100 },
    );
  });

  it("copy whole pages and whole sources (the backends' native-copy paths) exactly", () => {
    const aligned = fc.record({
      page: fc.integer({ min: 0, max: 1 }),
      pages: fc.integer({ min: 1, max: 2 }),
      offset: fc.constantFrom(0, 0, 3),
      seed: fc.integer({ min: 0, max: 0xffffffff }),
    });
    fc.assert(
      fc.property(aligned, ({ page, pages, offset, seed }) => {
        const n = pages * 1024;
        const pa = page * 4096;
        const source = Uint32Array.from({ length: offset + n }, (_, i) => (seed + i * 0x9e3779b9) >>> 0);
        const a = make();
        writeWords(a, pa, source, offset, n);
        const target = new Uint32Array(offset + n + 1).fill(0xdeadbeef);
        readWords(a, pa, target, offset, n);
        for (let i = 0; i < n; i++) {
          expect(a.read32(pa + i * 4)).toBe(source[offset + i]);
          expect(target[offset + i]).toBe(source[offset + i]);
        }
        expect(target[offset + n]).toBe(0xdeadbeef);
        if (offset > 0) expect(target[offset - 1]).toBe(0xdeadbeef);
        expect(a.read32(pa + n * 4)).toBe(0);
        if (pa > 0) expect(a.read32(pa - 4)).toBe(0);
      }),
      { numRuns: 40 },
    );
  });

  it("refuses unaligned addresses and runs that overrun the array", () => {
    const memory = make();
    const words = new Uint32Array(4);
    expect(() => readWords(memory, 2, words)).toThrow(/4-byte-aligned/);
    expect(() => writeWords(memory, 0x1001, words)).toThrow(/4-byte-aligned/);
    expect(() => readWords(memory, 0, words, 2, 3)).toThrow(/overruns/);
    expect(() => writeWords(memory, 0, words, -1, 1)).toThrow(/non-negative/);
  });
});

it("a sparse read of pages never written allocates nothing", () => {
  const memory = new SparseMemory();
  const target = new Uint32Array(2048).fill(7);
  readWords(memory, 0x5000, target);
  expect(target.every((w) => w === 0)).toBe(true);
  expect(memory.allocatedPages).toBe(0);
});

it("a dense copy past the end is an out-of-range error", () => {
  const memory = new DenseMemory(4096);
  expect(() => readWords(memory, 4092, new Uint32Array(2))).toThrow(/outside/);
  expect(() => writeWords(memory, 4096, new Uint32Array(1))).toThrow(/outside/);
});
