// `pnpm bench` for @nestvisor/hypervisor. Other parts of the package append their cases to `cases`.
import { type BenchCase, measure, renderTable } from "@nestvisor/bench";
import { COST_COUNT_TARGET, costAccumulatorBenchCases } from "./cost-accumulator.bench";
import { L2_CPUID_TARGET, memoryPerL2Vcpu, nestedRoundTripBenchCases } from "./nested-round-trip.bench";
import { primitiveFloorBenchCase } from "./primitive-floor.bench";
import { TRACER_SPAN_TARGET, tracerBenchCases } from "./tracer.bench";

const budgetMs = Number(process.env.BENCH_MS ?? 1000);
if (!Number.isFinite(budgetMs) || budgetMs <= 0) {
  process.stderr.write(`BENCH_MS must be a positive number of milliseconds, got "${process.env.BENCH_MS}"\n`);
  process.exit(2);
}

// The simulated machines first: the micro-benchmarks after them drive shared code (meters, tracers)
// with other classes, and V8's feedback from that would slow the machines down if they ran later.
const floor = primitiveFloorBenchCase();
const cases: BenchCase[] = [
  ...nestedRoundTripBenchCases(),
  floor.case,
  ...costAccumulatorBenchCases(),
  ...tracerBenchCases(),
];
/** Throughput targets by case name, shown in the table's last column. */
const targets: Record<string, number> = {
  "CostAccumulator.count": COST_COUNT_TARGET,
  "TimelineTracer span (begin + end)": TRACER_SPAN_TARGET,
  "L2 cpuid round trip (v6.12)": L2_CPUID_TARGET,
};
const results = cases.map((c) => {
  const result = measure(c, { budgetMs });
  const target = targets[c.name];
  return target === undefined ? result : { ...result, target };
});
process.stdout.write(`${renderTable("@nestvisor/hypervisor (one core)", results)}\n`);
const w = floor.work;
process.stdout.write(
  `one L2 cpuid round trip (v6.12) executes ${w.vmreads} VMREADs and ${w.vmwrites} VMWRITEs, reads ` +
    `${w.vmcs12Reads} and writes ${w.vmcs12Writes} vmcs12 fields, and calls the meter ${w.meterCalls} times; ` +
    "the floor row replays exactly that work without the logic around it\n",
);
const perVcpu = memoryPerL2Vcpu();
process.stdout.write(
  `memory per simulated L2 vCPU (booted L2 machine, heap): ${(perVcpu / 1024).toFixed(0)} KiB\n`,
);
