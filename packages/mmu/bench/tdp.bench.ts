import type { BenchCase } from "@nestvisor/bench";
import { DenseMemory, type Gpa } from "@nestvisor/x86-arch";
import { HostPageAllocator } from "../src/host-page-allocator";
import { Memslots } from "../src/memslots";
import { ShadowPageStore } from "../src/shadow-page-store";
import { TDP_MAP_RESULT, TdpMmu } from "../src/tdp-mmu";

/** Faults per batch. */
const FAULTS = 4096;
/** Host pages for tables: enough for 4096 faults scattered over 4 GiB (about 1800 tables). */
const TABLE_PAGES = 4096;
/** The guest: one 4-GiB slot backed from host 4 GiB up. */
const SLOT_PAGES = 2 ** 20;
const SLOT_HOST = 2 ** 32;
/** 4-level TDP root role, A/D on (kvm-mmu.md §2.9). */
const TDP_ROOT = 0x00003784;
const TABLE_BYTES = 4096;

/** A deterministic pseudo-random sequence (xorshift32), so every run faults the same addresses. */
function random(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

function fixture() {
  const memory = new DenseMemory(TABLE_PAGES * TABLE_BYTES);
  const allocator = new HostPageAllocator(memory, { base: 0, pages: TABLE_PAGES, zeroed: true });
  const memslots = new Memslots();
  const store = new ShadowPageStore({ allocator, memslots });
  const tdp = new TdpMmu({ store, memslots });
  const slot = memslots.add({ id: 0, baseGfn: 0, npages: SLOT_PAGES, hostBase: SLOT_HOST });
  return { memslots, store, tdp, slot };
}

/** `count` gpas of distinct random pages of the slot, with random offsets in the page. */
function gpas(seed: number, count: number): Float64Array {
  const next = random(seed);
  const seen = new Set<number>();
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    let gfn: number;
    do gfn = next() % SLOT_PAGES;
    while (seen.has(gfn));
    seen.add(gfn);
    out[i] = gfn * TABLE_BYTES + (next() & 0xff8);
  }
  return out;
}

/** Table bytes plus the store's per-page metadata (kvm: a 4-KiB `spt` page plus `struct kvm_mmu_page`). */
export function bytesPerShadowPage(): { table: number; metadata: number; total: number } {
  const metadata = fixture().store.metadataBytesPerPage;
  return { table: TABLE_BYTES, metadata, total: TABLE_BYTES + metadata };
}

/**
 * The TDP MMU's fault path on one core: 4096 faults at fresh random gpas of a 4-GiB slot per
 * batch, (a) after a memslot delete + re-create (kvm_mmu_zap_all_fast: every table rebuilt, the
 * vCPU loads a new root), and (b) after zapping only the leaves (tables kept, one SPTE per
 * fault); plus shadow-page allocation and freeing, named with the bytes each page costs.
 */
export function tdpBenchCases(): BenchCase[] {
  const sets = [gpas(0x5eed, FAULTS), gpas(0xbeef, FAULTS), gpas(0xcafe, FAULTS), gpas(0xf00d, FAULTS)];

  const fresh = fixture();
  let freshRoot = fresh.tdp.allocRoot(TDP_ROOT);
  let freshBatch = 0;

  const kept = fixture();
  const keptRoot = kept.tdp.allocRoot(TDP_ROOT);
  let keptBatch = 0;

  const pages = fixture().store;
  const ids = new Int32Array(FAULTS);
  const size = bytesPerShadowPage();

  return [
    {
      name: "TDP faults handled (zap all + refault: new tables)",
      unit: "faults",
      ops: FAULTS,
      batch: () => {
        const { memslots, tdp } = fresh;
        memslots.delete(0);
        memslots.add({ id: 0, baseGfn: 0, npages: SLOT_PAGES, hostBase: SLOT_HOST });
        tdp.putRoot(freshRoot);
        freshRoot = tdp.allocRoot(TDP_ROOT);
        const set = sets[freshBatch++ & 3]!;
        let fixed = 0;
        for (let i = 0; i < FAULTS; i++) {
          if (tdp.map(freshRoot, set[i]! as Gpa, (i & 1) === 0) === TDP_MAP_RESULT.FIXED) fixed++;
        }
        return fixed + fresh.store.tdpPages;
      },
    },
    {
      name: "TDP faults handled (leaf zap + refault: tables kept)",
      unit: "faults",
      ops: FAULTS,
      batch: () => {
        const { tdp } = kept;
        tdp.zapGfnRange(0, SLOT_PAGES);
        const set = sets[keptBatch++ & 3]!;
        let fixed = 0;
        for (let i = 0; i < FAULTS; i++) {
          if (tdp.map(keptRoot, set[i]! as Gpa, (i & 1) === 0) === TDP_MAP_RESULT.FIXED) fixed++;
        }
        return fixed + kept.store.tdpPages;
      },
    },
    {
      name: `shadow page alloc + zap (${size.total} bytes per shadow page: ${size.table} table + ${size.metadata} metadata)`,
      unit: "pages",
      ops: FAULTS,
      batch: () => {
        for (let i = 0; i < FAULTS; i++) ids[i] = pages.alloc(i, 0x00003701, false);
        let sum = 0;
        for (let i = 0; i < FAULTS; i++) sum += pages.prepareZap(ids[i]!);
        return sum + pages.commitZap();
      },
    },
  ];
}
