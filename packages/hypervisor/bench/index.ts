// `pnpm bench` for @nestvisor/hypervisor. Other parts of the package append their cases to `cases`.
import { type BenchCase, measure, renderTable } from "@nestvisor/bench";
import { COST_COUNT_TARGET, costAccumulatorBenchCases } from "./cost-accumulator.bench";

const budgetMs = Number(process.env.BENCH_MS ?? 1000);
if (!Number.isFinite(budgetMs) || budgetMs <= 0) {
  process.stderr.write(`BENCH_MS must be a positive number of milliseconds, got "${process.env.BENCH_MS}"\n`);
  process.exit(2);
}

const cases: BenchCase[] = [...costAccumulatorBenchCases()];
/** Throughput targets by case name, shown in the table's last column. */
const targets: Record<string, number> = { "CostAccumulator.count": COST_COUNT_TARGET };
const results = cases.map((c) => {
  const result = measure(c, { budgetMs });
  const target = targets[c.name];
  return target === undefined ? result : { ...result, target };
});
process.stdout.write(`${renderTable("@nestvisor/hypervisor (one core)", results)}\n`);
