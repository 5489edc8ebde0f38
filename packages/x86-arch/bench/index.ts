// `pnpm bench` for @nestvisor/x86-arch: throughput of the walkers and the TLB on one core.
// Targets come from the x86-arch issue: ≥ 10 M 4-level walks/s and ≥ 2 M 2D walks/s.
import { type BenchCase, measure, renderTable } from "@nestvisor/bench";
import { eptBenchCases } from "./ept.bench";
import { tlbBenchCases } from "./tlb.bench";
import { walkBenchCases } from "./walk.bench";

const TARGETS: Readonly<Record<string, number>> = {
  "4-level walk, 4 KiB pages": 10_000_000,
  "2D walk (4-level guest on 4-level EPT)": 2_000_000,
};

const budgetMs = Number(process.env.BENCH_MS ?? 1000);
if (!Number.isFinite(budgetMs) || budgetMs <= 0) {
  process.stderr.write(`BENCH_MS must be a positive number of milliseconds, got "${process.env.BENCH_MS}"\n`);
  process.exit(2);
}

const cases: BenchCase[] = [...walkBenchCases(), ...eptBenchCases(), ...tlbBenchCases()];
const results = cases.map((c) => {
  const target = TARGETS[c.name];
  const result = measure(c, { budgetMs });
  return target === undefined ? result : { ...result, target };
});
process.stdout.write(`${renderTable("@nestvisor/x86-arch (one core)", results)}\n`);
