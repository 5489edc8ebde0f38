/**
 * Consumer-side view of physical memory (the rust-vmm `vm-memory` principle: define how memory is
 * accessed, not how it is provided). The page walker, the EPT walker and every layer above take a
 * `PhysicalMemory`; the dense and sparse backends implement it.
 *
 * Values are little-endian, as on x86. Addresses are numbers below 2^52. 64-bit values are either
 * two 32-bit halves (`read32(pa)`, `read32(pa + 4)`, the hot-path form, no BigInt) or a number
 * (`read64`, exact only below 2^53: use it for addresses and counters, not for raw PTEs with NX).
 *
 * An access outside the backend's range is a bug in the model or its configuration, not guest
 * behaviour (a guest's stray access is stopped earlier by EPT or a memslot check), so it throws a
 * RangeError naming the address.
 */
export interface PhysicalMemory {
  /** Addressable bytes: valid addresses are [0, size). */
  readonly size: number;
  read8(pa: number): number;
  read16(pa: number): number;
  /** Unsigned 32-bit read. */
  read32(pa: number): number;
  /** 64-bit read as a number; throws if the value is 2^53 or more. */
  read64(pa: number): number;
  write8(pa: number, value: number): void;
  write16(pa: number, value: number): void;
  write32(pa: number, value: number): void;
  /** 64-bit write from halves. */
  write64(pa: number, lo: number, hi: number): void;
  /** Copies `length` bytes starting at `pa` into a new array (edges only: dumps, parsing). */
  readBytes(pa: number, length: number): Uint8Array;
  /** Copies bytes into memory starting at `pa`. */
  writeBytes(pa: number, bytes: Uint8Array): void;
  /**
   * Optional bulk form of `read32` for hot paths (e.g. a 4-KiB VMCS image): `count` 32-bit words
   * from the 4-byte-aligned `pa` into `target[offset…]`, exactly as `read32` would return them,
   * without allocating. Use it through `readWords`, which falls back to `read32` when absent.
   */
  readWords?(pa: number, target: Uint32Array, offset: number, count: number): void;
  /** Optional bulk form of `write32` (see `readWords`); use it through `writeWords`. */
  writeWords?(pa: number, source: Uint32Array, offset: number, count: number): void;
}

function checkWordRun(pa: number, array: Uint32Array, offset: number, count: number): void {
  if (!Number.isInteger(pa) || pa % 4 !== 0) {
    throw new RangeError(`a word copy needs a 4-byte-aligned address, got 0x${pa.toString(16)}`);
  }
  if (!(Number.isInteger(offset) && Number.isInteger(count) && offset >= 0 && count >= 0)) {
    throw new RangeError(`word copy offset ${offset} and count ${count} must be non-negative integers`);
  }
  if (offset + count > array.length) {
    throw new RangeError(`word copy of ${count} at ${offset} overruns an array of ${array.length}`);
  }
}

/**
 * `count` little-endian 32-bit words of `memory` from the aligned `pa` into `target[offset…]`: the
 * backend's `readWords` when it has one, else one `read32` per word. Same values either way.
 */
export function readWords(
  memory: PhysicalMemory,
  pa: number,
  target: Uint32Array,
  offset = 0,
  count = target.length - offset,
): void {
  checkWordRun(pa, target, offset, count);
  if (memory.readWords !== undefined) {
    memory.readWords(pa, target, offset, count);
    return;
  }
  for (let i = 0; i < count; i++) target[offset + i] = memory.read32(pa + i * 4);
}

/** `count` words from `source[offset…]` into `memory` at the aligned `pa` (see `readWords`). */
export function writeWords(
  memory: PhysicalMemory,
  pa: number,
  source: Uint32Array,
  offset = 0,
  count = source.length - offset,
): void {
  checkWordRun(pa, source, offset, count);
  if (memory.writeWords !== undefined) {
    memory.writeWords(pa, source, offset, count);
    return;
  }
  for (let i = 0; i < count; i++) memory.write32(pa + i * 4, source[offset + i]!);
}

/** The error every backend raises for an address outside its range. */
export function outOfRange(backend: string, pa: number, bytes: number, size: number): RangeError {
  return new RangeError(
    `${backend}: ${bytes}-byte access at 0x${pa.toString(16)} is outside [0, 0x${size.toString(16)})`,
  );
}

/** Shared 64-bit-as-number read on top of two 32-bit reads. */
export function read64AsNumber(memory: PhysicalMemory, pa: number): number {
  const lo = memory.read32(pa);
  const hi = memory.read32(pa + 4);
  if (hi >= 0x200000) {
    throw new RangeError(
      `64-bit value at 0x${pa.toString(16)} is 2^53 or more; read it as two halves with read32`,
    );
  }
  return hi * 4294967296 + lo;
}

/** x86 is little-endian; typed arrays use the host's order, so refuse to run on a big-endian host. */
export const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
if (!HOST_IS_LITTLE_ENDIAN) throw new Error("nestvisor's memory backends require a little-endian host");
