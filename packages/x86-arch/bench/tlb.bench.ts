import type { BenchCase } from "@nestvisor/bench";
import { ACCESS, PAGE_ACCESS } from "../src/access";
import { TLB_FLAG, TLB_MISS, Tlb } from "../src/tlb";

/** Lookups per batch. */
const LOOKUPS = 100_000;
/** Addresses a batch cycles through (a power of two). */
const STREAM = 4096;

const VPID = 1;
const PCID = 3;
/** An EP4TA tag: the lookups are of combined mappings, as in an EPT guest. */
const EPT_TAG = 0x1234;
/** A kernel-half base (bits 63:32 of 0xffff_8880_0000_0000). */
const BASE_HI = 0xffff_8880;

interface Stream {
  readonly lo: Uint32Array;
  readonly access: Uint8Array;
}

/** A deterministic pseudo-random stream (xorshift32) of addresses within `pages` 4-KiB pages. */
function stream(pages: number, seed: number): Stream {
  const lo = new Uint32Array(STREAM);
  const access = new Uint8Array(STREAM);
  let x = seed >>> 0;
  for (let i = 0; i < STREAM; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    lo[i] = ((x % pages) * 4096 + (x >>> 20)) >>> 0;
    access[i] = (x & 3) === 0 ? ACCESS.WRITE : ACCESS.READ;
  }
  return { lo, access };
}

function lookupCase(name: string, tlb: Tlb, s: Stream, insertOnMiss: boolean): BenchCase {
  return {
    name,
    unit: "lookups",
    ops: LOOKUPS,
    batch: () => {
      let sum = 0;
      for (let n = 0; n < LOOKUPS; n++) {
        const k = n & (STREAM - 1);
        const lo = s.lo[k]!;
        const i = tlb.lookup(VPID, PCID, EPT_TAG, lo, BASE_HI, s.access[k]!);
        if (i === TLB_MISS) {
          if (insertOnMiss) {
            tlb.insert(VPID, PCID, EPT_TAG, lo, BASE_HI, 4096, lo, PAGE_ACCESS.ALL, 0, TLB_FLAG.DIRTY);
          }
          sum += 1;
        } else {
          sum = (sum + tlb.physicalAddress(i, lo)) | 0;
        }
      }
      return sum;
    },
  };
}

/** Every lookup hits: 256 dirty 4-KiB pages in a 64 × 8 TLB (4 per set). */
function hitCase(): BenchCase {
  const tlb = new Tlb({ sets: 64, ways: 8 });
  for (let p = 0; p < 256; p++) {
    tlb.insert(
      VPID,
      PCID,
      EPT_TAG,
      p * 4096,
      BASE_HI,
      4096,
      0x10_0000 + p * 4096,
      PAGE_ACCESS.ALL,
      0,
      TLB_FLAG.DIRTY,
    );
  }
  return lookupCase("TLB lookup (hit)", tlb, stream(256, 0x9e37_79b9), false);
}

/**
 * About half the lookups hit: 4-KiB entries for half of 1024 pages (some global, some clean so
 * writes miss), 2-MiB entries of other contexts so that two page sizes are probed.
 */
function mixedCase(): BenchCase {
  const tlb = new Tlb({ sets: 128, ways: 8 });
  for (let p = 0; p < 1024; p += 2) {
    const flags = (p % 8 === 0 ? TLB_FLAG.GLOBAL : 0) | (p % 6 === 0 ? 0 : TLB_FLAG.DIRTY);
    tlb.insert(VPID, PCID, EPT_TAG, p * 4096, BASE_HI, 4096, p * 4096, PAGE_ACCESS.ALL, 0, flags);
  }
  for (let p = 0; p < 16; p++) {
    tlb.insert(VPID + 1, PCID, EPT_TAG, p * 2 ** 21, BASE_HI, 2 ** 21, 0, PAGE_ACCESS.ALL, 0, TLB_FLAG.DIRTY);
  }
  return lookupCase("TLB lookup (mixed hit/miss)", tlb, stream(1024, 0x1234_5678), false);
}

/** A working set twice the capacity: misses insert, evicting the LRU way (64 × 8 TLB, 1024 pages). */
function thrashCase(): BenchCase {
  const tlb = new Tlb({ sets: 64, ways: 8 });
  return lookupCase("TLB lookup + insert on miss (LRU)", tlb, stream(1024, 0xdead_beef), true);
}

/** The TLB's benchmark cases (target: tens of millions of lookups per second). */
export function tlbBenchCases(): BenchCase[] {
  return [hitCase(), mixedCase(), thrashCase()];
}
