// `pnpm bench` for @nestvisor/mmu: throughput of the MMU's table builds and checks on one core.
// Other parts of the package append their cases to `cases`.
import { type BenchCase, measure, renderTable } from "@nestvisor/bench";
import { auditBenchCases } from "./audit.bench";
import { permissionBenchCases } from "./permission.bench";
import { ROOT_SWITCH_TARGET, rootSwitchBenchCases } from "./root-switch.bench";
import { shadowEptBenchCases } from "./shadow-ept.bench";
import { bytesPerShadowPage, tdpBenchCases } from "./tdp.bench";

const budgetMs = Number(process.env.BENCH_MS ?? 1000);
if (!Number.isFinite(budgetMs) || budgetMs <= 0) {
  process.stderr.write(`BENCH_MS must be a positive number of milliseconds, got "${process.env.BENCH_MS}"\n`);
  process.exit(2);
}

const cases: BenchCase[] = [
  ...permissionBenchCases(),
  ...tdpBenchCases(),
  ...rootSwitchBenchCases(),
  ...auditBenchCases(),
  ...shadowEptBenchCases(),
];
/** Throughput targets by case name, shown in the table's last column. */
const targets: Record<string, number> = { "root switches (kvm_mmu_new_pgd hit)": ROOT_SWITCH_TARGET };
const results = cases.map((c) => {
  const result = measure(c, { budgetMs });
  const target = targets[c.name];
  return target === undefined ? result : { ...result, target };
});
process.stdout.write(`${renderTable("@nestvisor/mmu (one core)", results)}\n`);
const page = bytesPerShadowPage();
process.stdout.write(
  `bytes per shadow page: ${page.total} (${page.table} table + ${page.metadata} metadata)\n`,
);
