/**
 * 64-bit values as two unsigned 32-bit halves (DESIGN.md §2.5). Hot paths keep page-table entries
 * and VMCS fields as (lo, hi) words; BigInt appears only at the edges (parsing, printing, oracles).
 */

const TWO_32 = 4294967296;

/** Low 32 bits of a non-negative integer below 2^53. */
export function lo32(value: number): number {
  return value >>> 0;
}

/** High 32 bits (bits 52:32) of a non-negative integer below 2^53. */
export function hi32(value: number): number {
  return Math.floor(value / TWO_32) >>> 0;
}

/** Joins two halves into a number; exact while `hi` < 2^21 (the value is below 2^53). */
export function join64(lo: number, hi: number): number {
  return (hi >>> 0) * TWO_32 + (lo >>> 0);
}

/** Joins two halves into a BigInt (edges only). */
export function toBigInt64(lo: number, hi: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}

/** Splits a BigInt (taken modulo 2^64) into halves (edges only). */
export function fromBigInt64(value: bigint): { lo: number; hi: number } {
  const v = BigInt.asUintN(64, value);
  return { lo: Number(v & 0xffffffffn), hi: Number(v >> 32n) };
}

/**
 * Parses `0x…`, `0b…`, `0o…` or decimal text, with `_` only between digits and an optional BigInt
 * `n` suffix (text copied from code), into a 64-bit BigInt; throws on anything else.
 */
export function parseU64(text: string): bigint {
  const trimmed = text.trim();
  if (!/^(0x[0-9a-f]+(_[0-9a-f]+)*|0b[01]+(_[01]+)*|0o[0-7]+(_[0-7]+)*|[0-9]+(_[0-9]+)*)n?$/i.test(trimmed)) {
    throw new SyntaxError(`"${text}" is not an unsigned integer (decimal, 0x…, 0b… or 0o…)`);
  }
  const value = BigInt(trimmed.replace(/_/g, "").replace(/n$/i, ""));
  if (value >= 1n << 64n) throw new RangeError(`"${text}" does not fit in 64 bits`);
  return value;
}

/** Formats halves as `0x` followed by 16 hex digits. */
export function formatHex64(lo: number, hi: number): string {
  return `0x${(hi >>> 0).toString(16).padStart(8, "0")}${(lo >>> 0).toString(16).padStart(8, "0")}`;
}

/** Mask of bits [lsb, lsb+width) within one 32-bit word, as an unsigned number. */
export function mask32(lsb: number, width: number): number {
  if (width >= 32) return 0xffffffff;
  return ((((1 << width) >>> 0) - 1) * 2 ** lsb) >>> 0;
}
