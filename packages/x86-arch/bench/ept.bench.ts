import type { BenchCase } from "@nestvisor/bench";
import { ACCESS } from "../src/access";
import { cpuFeatures } from "../src/cpu-features";
import { CR0 } from "../src/cr0";
import { DenseMemory } from "../src/dense-memory";
import { MODERN_EPT_CAPABILITIES } from "../src/ept-capabilities";
import { createEptContext } from "../src/ept-context";
import { EPT_VIOLATION } from "../src/ept-violation";
import { EPT_ACCESS, EptWalker } from "../src/ept-walk";
import { createPagingContext } from "../src/paging-context";
import { EptTableBuilder } from "../src/testing/ept-table-builder";
import { PageTableBuilder } from "../src/testing/page-table-builder";
import { TwoDimensionalWalker } from "../src/two-dimensional-walk";

const WALKS_PER_BATCH = 10_000;
const ADDRESSES = 1024;
const GUEST_TABLES = 0x100000;
const GUEST_TABLES_END = 0x400000;
const EPT_TABLES = 0x800000;

/** A deterministic pseudo-random sequence (xorshift32), so every run walks the same addresses. */
function random(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
}

/**
 * 1024 guest pages at random linear addresses in one GiB, mapped to random guest-physical pages
 * (4-KiB pages, A/D preset so walks write nothing); EPT maps the guest tables 1:1 and the data
 * pages to scattered host pages, all with 4-KiB EPT pages: every 2D walk makes 24 references.
 */
function buildFixture() {
  const host = new DenseMemory(16 * 1024 * 1024);
  const ept = new EptTableBuilder(host, EPT_TABLES);
  const guest = new PageTableBuilder(host, GUEST_TABLES); // guest tables: GPA == HPA
  const next = random(0x5eed);
  const laLo = new Uint32Array(ADDRESSES);
  const gpas = new Float64Array(ADDRESSES);
  const used = new Set<number>();
  for (let i = 0; i < ADDRESSES; i++) {
    let page: number;
    do
      page = Math.floor(next() * 262144); // 4-KiB pages in 1 GiB
    while (used.has(page));
    used.add(page);
    const la = 0x4000_0000 + page * 4096;
    const gpa = 0x1_0000_0000 + Math.floor(next() * 1_000_000) * 4096;
    guest.map(la, gpa, { upperLo: 0x27, leafLo: 0x67 });
    ept.map(gpa, 0x2_0000_0000 + i * 3 * 4096);
    laLo[i] = la + (i & 0xff) * 8;
    gpas[i] = gpa + (i & 0xff) * 8;
  }
  for (let page = GUEST_TABLES; page < GUEST_TABLES_END; page += 4096) ept.map(page, page);
  const eptp = ept.eptp();
  const eptContext = createEptContext({ eptpLo: eptp.lo, eptpHi: eptp.hi }, MODERN_EPT_CAPABILITIES, 46);
  const guestContext = createPagingContext(
    { cr0: CR0.PG | CR0.PE | CR0.WP, cr3: guest.root, cr4: 1 << 5, efer: (1 << 8) | (1 << 10) | (1 << 11) },
    cpuFeatures(),
  );
  return { host, eptContext, guestContext, laLo, gpas };
}

export function eptBenchCases(): BenchCase[] {
  const fixture = buildFixture();
  const { host, eptContext, guestContext, laLo, gpas } = fixture;

  const eptWalker = new EptWalker(host);
  const twoD = new TwoDimensionalWalker(host, guestContext, eptContext);
  const result = twoD.result;
  const eptResult = eptWalker.result;
  const linear = EPT_VIOLATION.GLA_VALID | EPT_VIOLATION.FINAL_TRANSLATION;

  return [
    {
      name: "EPT walk (4-level)",
      unit: "walks",
      ops: WALKS_PER_BATCH,
      batch: () => {
        let sum = 0;
        for (let i = 0; i < WALKS_PER_BATCH; i++) {
          eptWalker.walk(eptContext, gpas[i & (ADDRESSES - 1)]!, EPT_ACCESS.READ, linear);
          sum = (sum + (eptResult.hpa & 0xffff) + eptResult.entryReads) | 0;
        }
        return sum;
      },
    },
    {
      name: "2D walk (4-level guest on 4-level EPT)",
      unit: "walks",
      ops: WALKS_PER_BATCH,
      batch: () => {
        let sum = 0;
        for (let i = 0; i < WALKS_PER_BATCH; i++) {
          twoD.walk(laLo[i & (ADDRESSES - 1)]!, 0, ACCESS.READ);
          sum = (sum + (result.pa & 0xffff) + result.memoryReads) | 0;
        }
        return sum;
      },
    },
  ];
}
