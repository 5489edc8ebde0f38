import { MAX_PHYSICAL_ADDRESS_BITS, PAGE_SIZE } from "./address";
import { outOfRange, type PhysicalMemory, read64AsNumber } from "./physical-memory";

const SIZE = 2 ** MAX_PHYSICAL_ADDRESS_BITS;
const WORDS_PER_PAGE = PAGE_SIZE / 4;

/**
 * Physical memory over the whole 52-bit space, allocating a 4-KiB page only when it is first
 * written. Reads of untouched pages return zero and allocate nothing. A one-entry cache of the last
 * page used keeps page-table walks (several reads in one page) off the Map.
 */
export class SparseMemory implements PhysicalMemory {
  readonly size = SIZE;
  readonly #pages = new Map<number, Uint32Array>();
  #cachedFrame = -1;
  #cachedPage: Uint32Array | undefined;

  /** Number of pages allocated so far. */
  get allocatedPages(): number {
    return this.#pages.size;
  }

  /** Frame numbers of allocated pages, ascending. */
  allocatedFrames(): number[] {
    return [...this.#pages.keys()].sort((a, b) => a - b);
  }

  #page(pa: number, bytes: number, allocate: boolean): Uint32Array | undefined {
    if (!(pa >= 0 && pa + bytes <= SIZE)) throw outOfRange("sparse memory", pa, bytes, SIZE);
    const frame = Math.floor(pa / PAGE_SIZE);
    if (frame === this.#cachedFrame) return this.#cachedPage;
    let page = this.#pages.get(frame);
    if (page === undefined) {
      if (!allocate) return undefined;
      page = new Uint32Array(WORDS_PER_PAGE);
      this.#pages.set(frame, page);
    }
    this.#cachedFrame = frame;
    this.#cachedPage = page;
    return page;
  }

  read8(pa: number): number {
    const page = this.#page(pa, 1, false);
    if (page === undefined) return 0;
    const offset = pa % PAGE_SIZE;
    return (page[offset >>> 2]! >>> ((offset & 3) * 8)) & 0xff;
  }

  read16(pa: number): number {
    return this.read8(pa) | (this.read8(pa + 1) << 8);
  }

  read32(pa: number): number {
    const offset = pa % PAGE_SIZE;
    if ((offset & 3) === 0) {
      const page = this.#page(pa, 4, false);
      return page === undefined ? 0 : page[offset >>> 2]!;
    }
    return (
      (this.read8(pa) |
        (this.read8(pa + 1) << 8) |
        (this.read8(pa + 2) << 16) |
        (this.read8(pa + 3) << 24)) >>>
      0
    );
  }

  read64(pa: number): number {
    return read64AsNumber(this, pa);
  }

  write8(pa: number, value: number): void {
    const page = this.#page(pa, 1, true)!;
    const offset = pa % PAGE_SIZE;
    const shift = (offset & 3) * 8;
    const index = offset >>> 2;
    page[index] = (page[index]! & ~(0xff << shift)) | ((value & 0xff) << shift);
  }

  write16(pa: number, value: number): void {
    this.write8(pa, value);
    this.write8(pa + 1, value >>> 8);
  }

  write32(pa: number, value: number): void {
    const offset = pa % PAGE_SIZE;
    if ((offset & 3) === 0) {
      this.#page(pa, 4, true)![offset >>> 2] = value;
      return;
    }
    this.write8(pa, value);
    this.write8(pa + 1, value >>> 8);
    this.write8(pa + 2, value >>> 16);
    this.write8(pa + 3, value >>> 24);
  }

  write64(pa: number, lo: number, hi: number): void {
    this.write32(pa, lo);
    this.write32(pa + 4, hi);
  }

  /** Page by page: words of a page never written read as zero (and allocate nothing). */
  readWords(pa: number, target: Uint32Array, offset: number, count: number): void {
    if (!(pa >= 0 && pa + count * 4 <= SIZE)) throw outOfRange("sparse memory", pa, count * 4, SIZE);
    let done = 0;
    while (done < count) {
      const at = pa + done * 4;
      const first = (at % PAGE_SIZE) >>> 2;
      const n = Math.min(count - done, WORDS_PER_PAGE - first);
      const page = this.#page(at, 4, false);
      if (page === undefined) target.fill(0, offset + done, offset + done + n);
      // A whole page (a 4-KiB VMCS image) is one native copy; `set` of the page itself allocates
      // nothing, where a view of part of it would.
      else if (n === WORDS_PER_PAGE) target.set(page, offset + done);
      else for (let i = 0; i < n; i++) target[offset + done + i] = page[first + i]!;
      done += n;
    }
  }

  writeWords(pa: number, source: Uint32Array, offset: number, count: number): void {
    if (!(pa >= 0 && pa + count * 4 <= SIZE)) throw outOfRange("sparse memory", pa, count * 4, SIZE);
    let done = 0;
    while (done < count) {
      const at = pa + done * 4;
      const first = (at % PAGE_SIZE) >>> 2;
      const n = Math.min(count - done, WORDS_PER_PAGE - first);
      const page = this.#page(at, 4, true)!;
      // The whole source array in one native copy (as in readWords: no view to allocate).
      if (done === 0 && offset === 0 && n === source.length) page.set(source, first);
      else for (let i = 0; i < n; i++) page[first + i] = source[offset + done + i]!;
      done += n;
    }
  }

  readBytes(pa: number, length: number): Uint8Array {
    if (!(pa >= 0 && pa + length <= SIZE)) throw outOfRange("sparse memory", pa, length, SIZE);
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) out[i] = this.read8(pa + i);
    return out;
  }

  writeBytes(pa: number, bytes: Uint8Array): void {
    if (!(pa >= 0 && pa + bytes.length <= SIZE)) throw outOfRange("sparse memory", pa, bytes.length, SIZE);
    for (let i = 0; i < bytes.length; i++) this.write8(pa + i, bytes[i]!);
  }
}
