// `pnpm bench` for @nestvisor/cli: reading KVM traces (`nestvisor trace`).
import { type BenchCase, measure, renderTable } from "@nestvisor/bench";
import { TRACE_LINES_TARGET, traceBenchCases } from "./trace.bench";

const budgetMs = Number(process.env.BENCH_MS ?? 1000);
if (!Number.isFinite(budgetMs) || budgetMs <= 0) {
  process.stderr.write(`BENCH_MS must be a positive number of milliseconds, got "${process.env.BENCH_MS}"\n`);
  process.exit(2);
}

const cases: BenchCase[] = [...traceBenchCases()];
/** Throughput targets by case name, shown in the table's last column. */
const targets: Record<string, number> = {
  "trace lines parsed (traceStats, mixed ftrace/perf)": TRACE_LINES_TARGET,
};
const results = cases.map((c) => {
  const result = measure(c, { budgetMs });
  const target = targets[c.name];
  return target === undefined ? result : { ...result, target };
});
process.stdout.write(`${renderTable("@nestvisor/cli (one core)", results)}\n`);
