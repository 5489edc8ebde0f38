import { outOfRange, type PhysicalMemory, read64AsNumber } from "./physical-memory";

/** Largest dense backend: 32-bit typed-array indexing (`pa >>> 2`) must stay exact. */
export const DENSE_MEMORY_MAX_BYTES = 2 ** 32;

/**
 * Physical memory as one contiguous ArrayBuffer of `size` bytes: the fastest backend, for guests
 * with a few GiB or less. Aligned 32-bit accesses index a Uint32Array directly.
 */
export class DenseMemory implements PhysicalMemory {
  readonly size: number;
  readonly #bytes: Uint8Array;
  readonly #words: Uint32Array;

  constructor(size: number) {
    if (!Number.isInteger(size) || size <= 0 || size % 4096 !== 0 || size > DENSE_MEMORY_MAX_BYTES) {
      throw new RangeError(`dense memory size ${size} must be a positive multiple of 4096 up to 4 GiB`);
    }
    this.size = size;
    const buffer = new ArrayBuffer(size);
    this.#bytes = new Uint8Array(buffer);
    this.#words = new Uint32Array(buffer);
  }

  #check(pa: number, bytes: number): void {
    if (!(pa >= 0 && pa + bytes <= this.size)) throw outOfRange("dense memory", pa, bytes, this.size);
  }

  read8(pa: number): number {
    this.#check(pa, 1);
    return this.#bytes[pa]!;
  }

  read16(pa: number): number {
    this.#check(pa, 2);
    return this.#bytes[pa]! | (this.#bytes[pa + 1]! << 8);
  }

  read32(pa: number): number {
    this.#check(pa, 4);
    if ((pa & 3) === 0) return this.#words[pa >>> 2]!;
    const b = this.#bytes;
    return (b[pa]! | (b[pa + 1]! << 8) | (b[pa + 2]! << 16) | (b[pa + 3]! << 24)) >>> 0;
  }

  read64(pa: number): number {
    return read64AsNumber(this, pa);
  }

  write8(pa: number, value: number): void {
    this.#check(pa, 1);
    this.#bytes[pa] = value;
  }

  write16(pa: number, value: number): void {
    this.#check(pa, 2);
    this.#bytes[pa] = value;
    this.#bytes[pa + 1] = value >>> 8;
  }

  write32(pa: number, value: number): void {
    this.#check(pa, 4);
    if ((pa & 3) === 0) {
      this.#words[pa >>> 2] = value;
      return;
    }
    const b = this.#bytes;
    b[pa] = value;
    b[pa + 1] = value >>> 8;
    b[pa + 2] = value >>> 16;
    b[pa + 3] = value >>> 24;
  }

  write64(pa: number, lo: number, hi: number): void {
    this.write32(pa, lo);
    this.write32(pa + 4, hi);
  }

  readWords(pa: number, target: Uint32Array, offset: number, count: number): void {
    this.#check(pa, count * 4);
    const first = pa >>> 2;
    target.set(this.#words.subarray(first, first + count), offset);
  }

  writeWords(pa: number, source: Uint32Array, offset: number, count: number): void {
    this.#check(pa, count * 4);
    this.#words.set(source.subarray(offset, offset + count), pa >>> 2);
  }

  readBytes(pa: number, length: number): Uint8Array {
    this.#check(pa, length);
    return this.#bytes.slice(pa, pa + length);
  }

  writeBytes(pa: number, bytes: Uint8Array): void {
    this.#check(pa, bytes.length);
    this.#bytes.set(bytes, pa);
  }
}
