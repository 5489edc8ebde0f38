import type { BenchCase } from "@nestvisor/bench";
import { EPT_VIOLATION } from "@nestvisor/x86-arch";
import { SHADOW_FAULT } from "../src/shadow-fault";
import { nestedEptFixture } from "../src/testing/nested-ept-fixture";

/** Faults per batch. */
const FAULTS = 4096;
/** L2 pages EPT12 maps (64 MiB of L2 GPA), onto the lower half of L1's 64 MiB. */
const L2_PAGES = 16384;
const L1_PAGES = 0x4000;
const L1_TARGET_PAGES = 8192;
/** Host pages for EPT02: one shadow page per EPT12 table (35 here), with room to spare. */
const TABLE_PAGES = 256;
const GLA_FINAL = EPT_VIOLATION.GLA_VALID | EPT_VIOLATION.FINAL_TRANSLATION;

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

/** `count` distinct random L2 pages, as L2 GPAs with random offsets. */
function l2Gpas(seed: number, count: number): Float64Array {
  const next = random(seed);
  const seen = new Set<number>();
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    let page: number;
    do page = next() % L2_PAGES;
    while (seen.has(page));
    seen.add(page);
    out[i] = page * 4096 + (next() & 0xff8);
  }
  return out;
}

/** L0 with shadow EPT for an L2 whose EPT12 (A/D on) maps 64 MiB of L2 GPA onto L1 memory. */
function fixture() {
  const f = nestedEptFixture({ accessedDirty: true, tablePages: TABLE_PAGES, l1Pages: L1_PAGES });
  for (let page = 0; page < L2_PAGES; page++) {
    f.builder.map(page * 4096, ((page * 7919) % L1_TARGET_PAGES) * 4096);
  }
  return f;
}

/**
 * The shadow-EPT fault path on one core (kvm: handle_ept_violation → ept_page_fault): 4096 EPT02
 * violations at fresh random L2 GPAs per batch, half reads and half writes, each walking EPT12 in
 * L1 memory and building EPT02, (a) after a zap-all (kvm_mmu_zap_all_fast: every shadow page
 * rebuilt, a new root loaded), and (b) after L1 rewrote each faulted page's EPT12 PTE (the tracked
 * write zaps the EPT02 leaf; tables are kept) — the tracked write is part of each operation there.
 */
export function shadowEptBenchCases(): BenchCase[] {
  const sets = [
    l2Gpas(0x5eed, FAULTS),
    l2Gpas(0xbeef, FAULTS),
    l2Gpas(0xcafe, FAULTS),
    l2Gpas(0xf00d, FAULTS),
  ];

  const fresh = fixture();
  let freshBatch = 0;

  const kept = fixture();
  let keptBatch = 0;
  const keptEntries = sets.map((set) => Float64Array.from(set, (gpa) => kept.builder.entryAddress(gpa, 1)));
  const guest = kept.shadow.guestMemory;
  // Warm the kept EPT02: every page table of the four sets is shadowed once.
  for (const set of sets)
    for (const gpa of set) kept.ept.fault(kept.state.root, kept.ctx12, gpa, 2 | GLA_FINAL);

  return [
    {
      name: "EPT02 faults handled (zap all + refault: new tables)",
      unit: "faults",
      ops: FAULTS,
      batch: () => {
        const f = fresh;
        f.store.zapAllFast();
        f.backend.putRoot(f.state.root);
        f.state.root = f.backend.allocShadowRoot(f.role, f.eptp12.value);
        const set = sets[freshBatch++ & 3]!;
        let fixed = 0;
        for (let i = 0; i < FAULTS; i++) {
          const access = (i & 1) === 0 ? EPT_VIOLATION.READ : EPT_VIOLATION.WRITE;
          const r = f.ept.fault(f.state.root, f.ctx12, set[i]!, access | GLA_FINAL);
          if (r.outcome === SHADOW_FAULT.FIXED) fixed++;
        }
        return fixed + f.store.usedMmuPages;
      },
    },
    {
      name: "EPT02 faults handled (EPT12 PTE rewritten: tracked write + refault, tables kept)",
      unit: "faults",
      ops: FAULTS,
      batch: () => {
        const f = kept;
        const k = keptBatch++ & 3;
        const set = sets[k]!;
        const entries = keptEntries[k]!;
        let fixed = 0;
        for (let i = 0; i < FAULTS; i++) {
          const at = entries[i]!;
          // L1 rewrites the PTE (same value): its write to a tracked page is emulated by L0.
          guest.write32(at, guest.read32(at));
          f.shadow.trackedWrite(at, 8);
          const access = (i & 1) === 0 ? EPT_VIOLATION.READ : EPT_VIOLATION.WRITE;
          const r = f.ept.fault(f.state.root, f.ctx12, set[i]!, access | GLA_FINAL);
          if (r.outcome === SHADOW_FAULT.FIXED) fixed++;
        }
        return fixed + f.shadow.pteWrites;
      },
    },
  ];
}
