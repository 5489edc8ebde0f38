import type { BenchCase } from "@nestvisor/bench";
import { DenseMemory, type Gpa } from "@nestvisor/x86-arch";
import { AUDIT_FORMAT, assertAuditClean, TableAuditor } from "../src/audit";
import { HostPageAllocator } from "../src/host-page-allocator";
import { Memslots } from "../src/memslots";
import { ShadowPageStore } from "../src/shadow-page-store";
import { TDP_MAP_RESULT, TdpMmu } from "../src/tdp-mmu";
import { tdpReference } from "../src/tdp-reference";

/** Leaves in the audited root. */
const LEAVES = 4096;
/** Host pages for tables: enough for 4096 faults scattered over 4 GiB. */
const TABLE_PAGES = 4096;
/** The guest: one 4-GiB slot backed from host 4 GiB up. */
const SLOT_PAGES = 2 ** 20;
const SLOT_HOST = 2 ** 32;
/** 4-level TDP root role, A/D on (kvm-mmu.md §2.9). */
const TDP_ROOT = 0x00003784;

/** A deterministic pseudo-random sequence (xorshift32). */
function random(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

/**
 * The audit's cost as tests pay it after every step: a TDP root with 4096 leaves, audited against
 * the memslots with the shadow-page-store checks (live page, level, gfn, direct bit) on every
 * table, reported as whole audits per second and as present entries audited per second. Two
 * layouts: leaves at random gfns of a 4-GiB slot (about 1750 mostly empty tables: the scan of
 * empty entries dominates) and at 4096 contiguous gfns (11 tables).
 */
export function auditBenchCases(): BenchCase[] {
  return [...rootCases("random gfns", random(0xa0d17)), ...rootCases("contiguous gfns", counter())];
}

/** 0, 1, 2, ...: gfns of one contiguous 16-MiB range. */
function counter(): () => number {
  let n = 0;
  return () => n++;
}

function rootCases(layout: string, nextGfn: () => number): BenchCase[] {
  const memory = new DenseMemory(TABLE_PAGES * 4096);
  const allocator = new HostPageAllocator(memory, { base: 0, pages: TABLE_PAGES, zeroed: true });
  const memslots = new Memslots();
  const store = new ShadowPageStore({ allocator, memslots });
  const tdp = new TdpMmu({ store, memslots });
  memslots.add({ id: 0, baseGfn: 0, npages: SLOT_PAGES, hostBase: SLOT_HOST });
  const root = tdp.allocRoot(TDP_ROOT);
  let leaves = 0;
  while (leaves < LEAVES) {
    if (tdp.map(root, ((nextGfn() % SLOT_PAGES) * 4096) as Gpa, true) === TDP_MAP_RESULT.FIXED) leaves++;
  }
  const auditor = new TableAuditor({
    memory,
    format: AUDIT_FORMAT.EPT,
    reference: tdpReference(memslots),
    store,
  });
  const stats = assertAuditClean(auditor.audit(root));
  const batch = () => {
    const result = auditor.audit(root);
    if (!result.ok) throw new Error(result.inconsistency.message);
    return result.stats.entries;
  };
  return [
    {
      name: `audit of a TDP root with ${LEAVES} leaves (${layout}: ${stats.tables} tables)`,
      unit: "audits",
      ops: 1,
      batch,
    },
    {
      name: `TDP entries audited (${layout}: ${stats.entries} per audit)`,
      unit: "entries",
      ops: stats.entries,
      batch,
    },
  ];
}
