import type { BenchCase } from "@nestvisor/bench";
import { ACCESS } from "../src/access";
import { cpuFeatures } from "../src/cpu-features";
import { CR0 } from "../src/cr0";
import { DenseMemory } from "../src/dense-memory";
import { loadPdptes } from "../src/pae-pdpte";
import { AD_UPDATE, PageWalker } from "../src/page-walk";
import { createPagingContext, type PagingContext } from "../src/paging-context";
import { PTE_LO } from "../src/paging-entry";
import type { PhysicalMemory } from "../src/physical-memory";
import { SparseMemory } from "../src/sparse-memory";
import { PageTableBuilder } from "../src/testing/page-table-builder";
import { WalkTrace } from "../src/walk-result";

/** Walks per batch. */
const WALKS = 100_000;
/** Distinct mapped pages the batch cycles through (a power of two). */
const PAGES = 4096;

const CR4_PAE = 1 << 5;
const CR4_LA57 = 1 << 12;
const EFER_LME_LMA_NXE = (1 << 8) | (1 << 10) | (1 << 11);
const EFER_NXE = 1 << 11;
const features = cpuFeatures();

/** Entries with A (and D on the leaf) already set, so HARDWARE walks write nothing. */
const UPPER = PTE_LO.PRESENT | PTE_LO.WRITABLE | PTE_LO.USER | PTE_LO.ACCESSED;
const LEAF = UPPER | PTE_LO.DIRTY;

/** The linear addresses of a batch, as the walker takes them (two 32-bit halves). */
interface AddressSet {
  readonly lo: Uint32Array;
  readonly hi: Uint32Array;
}

/**
 * `PAGES` pages spread over many page tables: page i sits in 2-MiB region i / 8 (so 512 page
 * tables are touched) at an offset that varies, under a base that uses every upper index.
 */
function addresses(base: number): AddressSet {
  const lo = new Uint32Array(PAGES);
  const hi = new Uint32Array(PAGES);
  for (let i = 0; i < PAGES; i++) {
    const la = base + Math.floor(i / 8) * 0x20_0000 + (i % 8) * 0x1000 * 37 + ((i * 8) & 0xff8);
    lo[i] = la >>> 0;
    hi[i] = Math.floor(la / 2 ** 32);
  }
  return { lo, hi };
}

function longModeCase(
  name: string,
  memory: PhysicalMemory,
  levels: 4 | 5,
  base: number,
  withTrace: boolean,
): BenchCase {
  const tables = new PageTableBuilder(memory, 0x10_0000, levels);
  const set = addresses(base);
  for (let i = 0; i < PAGES; i++) {
    const la = set.hi[i]! * 2 ** 32 + set.lo[i]!;
    tables.map(la - (la % 4096), 0x100_0000 + i * 4096, { upperLo: UPPER, leafLo: LEAF });
  }
  const ctx = createPagingContext(
    {
      cr0: CR0.PG | CR0.PE | CR0.WP,
      cr3: tables.root,
      cr4: CR4_PAE | (levels === 5 ? CR4_LA57 : 0),
      efer: EFER_LME_LMA_NXE,
    },
    features,
  );
  return walkCase(name, memory, ctx, set, withTrace);
}

function walkCase(
  name: string,
  memory: PhysicalMemory,
  ctx: PagingContext,
  set: AddressSet,
  withTrace: boolean,
): BenchCase {
  const walker = new PageWalker(memory, { adUpdate: AD_UPDATE.HARDWARE });
  const trace = withTrace ? new WalkTrace() : null;
  const { lo, hi } = set;
  return {
    name,
    unit: "walks",
    ops: WALKS,
    batch: () => {
      let sum = 0;
      let writes = 0;
      const result = walker.result;
      for (let i = 0; i < WALKS; i++) {
        const j = i & (PAGES - 1);
        const access = (i & 3) === 0 ? ACCESS.WRITE : ACCESS.READ; // one write in four
        if (!walker.walk(ctx, lo[j]!, hi[j]!, access, trace)) throw new Error(`${name}: walk ${j} faulted`);
        sum = (sum + result.pa) | 0;
        writes += result.memoryWrites;
      }
      if (writes !== 0) throw new Error(`${name}: walks wrote A/D bits`);
      return sum;
    },
  };
}

/** PAE: a PDPT of four entries, 2048 page tables reached through them. */
function paeCase(): BenchCase {
  const memory = new DenseMemory(64 * 1024 * 1024);
  let next = 0x10_0000;
  const alloc = () => {
    const page = next;
    next += 4096;
    return page;
  };
  const pdpt = alloc();
  const set = addresses(0x4000_0000);
  for (let i = 0; i < PAGES; i++) {
    const la = set.lo[i]!;
    const pdpteAddr = pdpt + (la >>> 30) * 8;
    if ((memory.read32(pdpteAddr) & 1) === 0) memory.write64(pdpteAddr, alloc() | PTE_LO.PRESENT, 0);
    const pd = memory.read32(pdpteAddr) & 0xfffff000;
    const pdeAddr = pd + ((la >>> 21) & 0x1ff) * 8;
    if ((memory.read32(pdeAddr) & 1) === 0) memory.write64(pdeAddr, alloc() | UPPER, 0);
    const pt = memory.read32(pdeAddr) & 0xfffff000;
    memory.write64(pt + ((la >>> 12) & 0x1ff) * 8, (0x200_0000 + i * 4096) | LEAF, 0);
  }
  const loaded = loadPdptes(memory, pdpt, features);
  if (!loaded.ok) throw new Error("PAE bench: bad PDPTE");
  const ctx = createPagingContext(
    { cr0: CR0.PG | CR0.PE | CR0.WP, cr3: pdpt, cr4: CR4_PAE, efer: EFER_NXE, pdptes: loaded.pdptes },
    features,
  );
  return walkCase("PAE walk", memory, ctx, set, false);
}

/** The walker's benchmark cases (`pnpm bench` target: ≥ 10 M 4-level walks per second). */
export function walkBenchCases(): BenchCase[] {
  return [
    longModeCase("4-level walk, 4 KiB pages", new DenseMemory(64 * 1024 * 1024), 4, 0x7f12_3400_0000, false),
    longModeCase("4-level walk with trace", new DenseMemory(64 * 1024 * 1024), 4, 0x7f12_3400_0000, true),
    longModeCase("5-level walk", new DenseMemory(64 * 1024 * 1024), 5, 0x1b_cdef_1200_0000, false),
    paeCase(),
    longModeCase("4-level walk on SparseMemory", new SparseMemory(), 4, 0x7f12_3400_0000, false),
  ];
}
