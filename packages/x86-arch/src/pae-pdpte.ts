import { type CpuFeatures, reservedAddressMaskHigh } from "./cpu-features";
import { CR0 } from "./cr0";
import { CR4 } from "./cr4";
import { EFER } from "./efer";
import type { PhysicalMemory } from "./physical-memory";

/** Reserved bits of a present PAE PDPTE's low word: 2:1 and 8:5 (SDM 4.4.1, Table 4-8). */
export const PDPTE_RESERVED_LO = 0x1e6;

export type PdpteLoad =
  | { readonly ok: true; readonly pdptes: readonly number[] }
  | {
      readonly ok: false /** Index of the first present PDPTE with a reserved bit set (MOV to CR3 raises #GP(0)). */;
      readonly badIndex: number;
    };

/**
 * PAE paging is in use, so the PDPTE registers are (SDM 4.1.1, 4.4.1): CR0.PG and CR4.PAE outside
 * IA-32e mode (EFER.LMA clear; kvm: is_pae_paging).
 */
export function isPaePaging(cr0: number, cr4: number, efer: number): boolean {
  return (cr0 & CR0.PG) !== 0 && (cr4 & CR4.PAE) !== 0 && (efer & EFER.LMA) === 0;
}

/** The page-directory-pointer table a PAE CR3 names: bits 31:5 (SDM 4.4.1). */
export function pdptAddress(cr3: number): number {
  return (cr3 & 0xffffffe0) >>> 0;
}

/**
 * Loads the four PDPTE registers from the 32-byte-aligned table CR3 points to, as MOV to CR3 (and
 * MOV to CR0/CR4 entering PAE paging) does in PAE mode (SDM 4.4.1). A present PDPTE with a
 * reserved bit set makes the instruction fault with #GP(0) instead.
 */
export function loadPdptes(memory: PhysicalMemory, cr3: number, features: CpuFeatures): PdpteLoad {
  const out = new Float64Array(4);
  const bad = loadPdptesInto(memory, pdptAddress(cr3), features, out);
  return bad < 0 ? { ok: true, pdptes: Array.from(out) } : { ok: false, badIndex: bad };
}

/**
 * `loadPdptes` without allocating, for hot paths: the four PDPTEs of the table at `table` (a
 * 32-byte-aligned address in `memory`, e.g. CR3 bits 31:5, or where EPT translated them) into
 * `out`. Returns -1, or the index of the first present PDPTE with a reserved bit set (then `out` is
 * unspecified).
 */
export function loadPdptesInto(
  memory: PhysicalMemory,
  table: number,
  features: CpuFeatures,
  out: Float64Array,
): number {
  const reservedHi = reservedAddressMaskHigh(features.maxPhysAddr) | 0xfff00000; // bits 63:M
  for (let i = 0; i < 4; i++) {
    const lo = memory.read32(table + i * 8);
    const hi = memory.read32(table + i * 8 + 4);
    if ((lo & 1) !== 0 && ((lo & PDPTE_RESERVED_LO) !== 0 || (hi & reservedHi) !== 0)) return i;
    out[i] = hi * 4294967296 + lo;
  }
  return -1;
}
