// `pnpm bench` for @nestvisor/mmu: throughput of the MMU's table builds and checks on one core.
// Other parts of the package append their cases to `cases`.
import { type BenchCase, measure, renderTable } from "@nestvisor/bench";
import { permissionBenchCases } from "./permission.bench";
import { bytesPerShadowPage, tdpBenchCases } from "./tdp.bench";

const budgetMs = Number(process.env.BENCH_MS ?? 1000);
if (!Number.isFinite(budgetMs) || budgetMs <= 0) {
  process.stderr.write(`BENCH_MS must be a positive number of milliseconds, got "${process.env.BENCH_MS}"\n`);
  process.exit(2);
}

const cases: BenchCase[] = [...permissionBenchCases(), ...tdpBenchCases()];
const results = cases.map((c) => measure(c, { budgetMs }));
process.stdout.write(`${renderTable("@nestvisor/mmu (one core)", results)}\n`);
const page = bytesPerShadowPage();
process.stdout.write(
  `bytes per shadow page: ${page.total} (${page.table} table + ${page.metadata} metadata)\n`,
);
