/**
 * Scanning text as UTF-16 code units for the trace reader (trace-line.ts): a typed-array copy of the
 * text, JavaScript's blank and word classes, word matching, and decimal and hex numbers read in
 * place. Nothing here allocates per call.
 */

import { Buffer } from "node:buffer";

const U32_MAX = 0xffffffff;

/**
 * Text as UTF-16 code units (what `charCodeAt` returns), which the reader scans: indexing a typed
 * array is much cheaper than `charCodeAt`.
 */
export type Codes = Uint16Array;

/** The code units of a string, exactly (lone surrogates too). */
export function toCodes(text: string): Codes {
  const bytes = Buffer.from(text, "utf16le");
  if (bytes.byteOffset % 2 === 0) return new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.length >>> 1);
  const codes = new Uint16Array(text.length);
  for (let i = 0; i < text.length; i++) codes[i] = text.charCodeAt(i);
  return codes;
}

/** The string of code units [s, e). */
export function textOf(t: Codes, s: number, e: number): string {
  let text = "";
  for (let i = s; i < e; i += 4096) {
    text += String.fromCharCode.apply(null, t.subarray(i, Math.min(e, i + 4096)) as unknown as number[]);
  }
  return text;
}

// ---------------------------------------------------------------------------------------------
// Characters.

/** JavaScript's `\s`: what the regular expressions (and trim) take as a blank. */
export function isBlank(c: number): boolean {
  if (c <= 0x20) return c === 0x20 || (c >= 0x09 && c <= 0x0d);
  if (c < 0xa0) return false;
  return (
    c === 0xa0 ||
    c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) ||
    c === 0x2028 ||
    c === 0x2029 ||
    c === 0x202f ||
    c === 0x205f ||
    c === 0x3000 ||
    c === 0xfeff
  );
}

export function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

/** `[A-Za-z_]`. */
export function isIdentStart(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c === 0x5f;
}

/** `\w`. */
export function isWord(c: number): boolean {
  return isIdentStart(c) || isDigit(c);
}

const HEX_DIGITS = new Int8Array(128).fill(-1);
for (let d = 0; d < 16; d++) {
  HEX_DIGITS["0123456789abcdef".charCodeAt(d)] = d;
  HEX_DIGITS["0123456789ABCDEF".charCodeAt(d)] = d;
}

/** The value of a hex digit, or -1. */
export function hexDigit(c: number): number {
  return c < 128 ? HEX_DIGITS[c]! : -1;
}

export function skipBlanks(t: Codes, i: number, e: number): number {
  while (i < e && isBlank(t[i]!)) i++;
  return i;
}

export function skipDigits(t: Codes, i: number, e: number): number {
  while (i < e && isDigit(t[i]!)) i++;
  return i;
}

/** The code units of a constant word (ASCII). */
export function codesOf(word: string): Codes {
  const codes = new Uint16Array(word.length);
  for (let i = 0; i < word.length; i++) codes[i] = word.charCodeAt(i);
  return codes;
}

/** Whether `word` (lower-case ASCII) is at `i` in any case, within [i, e). */
export function matchesCi(t: Codes, i: number, e: number, word: Codes): boolean {
  if (i + word.length > e) return false;
  for (let k = 0; k < word.length; k++) {
    const w = word[k]!;
    const c = t[i + k]!;
    if (c !== w && !(w >= 0x61 && w <= 0x7a && c === w - 0x20)) return false;
  }
  return true;
}

/** Whether `word` is at i (no bounds check). */
export function sameAt(t: Codes, i: number, word: Codes): boolean {
  for (let k = 0; k < word.length; k++) if (t[i + k] !== word[k]) return false;
  return true;
}

/** Whether `word` (exact case) is at `i`, within [i, e). */
export function matchesAt(t: Codes, i: number, e: number, word: Codes): boolean {
  return i + word.length <= e && sameAt(t, i, word);
}

/** The first index of `word` in [from, e), or -1 (never looks past e: the text may go on). */
export function indexIn(t: Codes, word: Codes, from: number, e: number): number {
  const first = word[0]!;
  for (let i = from; i + word.length <= e; i++) if (t[i]! === first && sameAt(t, i, word)) return i;
  return -1;
}

/** `\b` before the character at i of the piece [s, e). */
export function wordStartsAt(t: Codes, s: number, i: number): boolean {
  return i === s || !isWord(t[i - 1]!);
}

/** `\b` after the character before j of the piece [s, e). */
export function wordEndsAt(t: Codes, j: number, e: number): boolean {
  return j === e || !isWord(t[j]!);
}

/** Decimal digits [s, e) as a number: exact up to 2 ** 53, larger beyond (compare only). */
export function decimalValue(t: Codes, s: number, e: number): number {
  let n = 0;
  for (let i = s; i < e; i++) n = n * 10 + (t[i]! - 0x30);
  return n;
}

/** Whether the decimal digits [s, e) are a value below 2 ** 64. */
export function decimalFits64(t: Codes, s: number, e: number): boolean {
  while (s < e && t[s]! === 0x30) s++;
  const n = e - s;
  if (n !== 20) return n < 20;
  const max = "18446744073709551615";
  for (let k = 0; k < 20; k++) {
    const d = t[s + k]! - max.charCodeAt(k);
    if (d !== 0) return d < 0;
  }
  return true;
}

/** Results of parseHex: the low and high halves (a typed array: a module variable would box them). */
export const HEX = new Float64Array(2);
export const HEX_OK = 0;
export const HEX_NOT_HEX = 1;
export const HEX_TOO_WIDE = 2;

/**
 * Reads hex digits [s, e) into HEX: HEX_OK, HEX_NOT_HEX (empty, or a character that is not a
 * hex digit) or HEX_TOO_WIDE (2 ** 64 or more).
 */
export function parseHexDigits(t: Codes, s: number, e: number): number {
  if (s >= e) return HEX_NOT_HEX;
  // The last 8 digits are the low half; the ones before, the high half (exact while it fits).
  const mid = Math.max(e - 8, s);
  let hi = 0;
  for (let i = s; i < mid; i++) {
    const d = hexDigit(t[i]!);
    if (d < 0) return HEX_NOT_HEX;
    hi = hi * 16 + d;
  }
  let lo = 0;
  for (let i = mid; i < e; i++) {
    const d = hexDigit(t[i]!);
    if (d < 0) return HEX_NOT_HEX;
    lo = lo * 16 + d;
  }
  HEX[0] = lo;
  HEX[1] = hi;
  return hi > U32_MAX ? HEX_TOO_WIDE : HEX_OK;
}

/** A payload number (one trailing ',' or ';' dropped, then an optional 0x) into HEX. */
export function parseHexNumber(t: Codes, s: number, e: number): number {
  if (e > s) {
    const last = t[e - 1]!;
    if (last === 0x2c || last === 0x3b) e--;
  }
  if (e - s >= 2 && t[s]! === 0x30 && (t[s + 1]! | 0x20) === 0x78) s += 2;
  return parseHexDigits(t, s, e);
}
