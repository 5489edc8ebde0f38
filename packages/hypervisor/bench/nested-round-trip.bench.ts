import v8 from "node:v8";
import vm from "node:vm";
import type { BenchCase } from "@nestvisor/bench";
import { builtinWorkload } from "../src/builtin-workloads";
import { CostAccumulator } from "../src/cost-accumulator";
import { costProfile } from "../src/cost-profiles";
import { compileCostTable } from "../src/cost-table";
import { resolveFlags } from "../src/kernel-presets";
import { Machine } from "../src/machine";

/** Issue target: simulated nested (L2) CPUID round trips per second of wall time, one core, v6.12. */
export const L2_CPUID_TARGET = 1_000_000;

const ROUND_TRIPS = 2000;
/** An L3 round trip is ~500× an L2 one: a smaller batch keeps the bench short. */
const L3_ROUND_TRIPS = 200;

function cpuidMachine(level: number, preset: string, iterations = ROUND_TRIPS): Machine {
  const meter = new CostAccumulator(compileCostTable(costProfile("intel-server")));
  return new Machine({
    program: builtinWorkload("cpuid", { level, iterations }),
    config: resolveFlags(preset, {}),
    meter,
  });
}

/** Runs the same machine's program again: the vCPU goes on from where it stopped. */
function rerun(machine: Machine): () => number {
  return () => {
    machine.executor.cursor.reset();
    machine.run();
    return machine.executor.observations.operations;
  };
}

export function nestedRoundTripBenchCases(): BenchCase[] {
  return [
    {
      name: "L1 cpuid round trip (v6.12)",
      unit: "round trips",
      ops: ROUND_TRIPS,
      batch: rerun(cpuidMachine(1, "v6.12")),
    },
    {
      name: "L2 cpuid round trip (v6.12)",
      unit: "round trips",
      ops: ROUND_TRIPS,
      batch: rerun(cpuidMachine(2, "v6.12")),
    },
    {
      name: "L2 cpuid round trip (v5.2)",
      unit: "round trips",
      ops: ROUND_TRIPS,
      batch: rerun(cpuidMachine(2, "v5.2")),
    },
    {
      name: "L3 cpuid round trip (v6.12)",
      unit: "round trips",
      ops: L3_ROUND_TRIPS,
      batch: rerun(cpuidMachine(3, "v6.12", L3_ROUND_TRIPS)),
    },
  ];
}

/**
 * A full garbage collection, so that heap figures count live objects only (without one, a collection
 * in the middle of the measurement made the difference negative). Uses `globalThis.gc` when node runs
 * with --expose-gc, else enables it for this process (node:v8 flags, read back through node:vm).
 */
function collectGarbage(): void {
  let gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) {
    v8.setFlagsFromString("--expose-gc");
    gc = vm.runInNewContext("gc") as () => void;
  }
  gc();
}

/** Heap bytes per booted L2 machine (L0 + L1 KVM, vmcs01/02/12, MMU tables, the L2 vCPU), averaged over `n`. */
export function memoryPerL2Vcpu(n = 20): number {
  const keep: Machine[] = [];
  collectGarbage();
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < n; i++) {
    const m = cpuidMachine(2, "v6.12");
    m.run();
    keep.push(m);
  }
  collectGarbage();
  const after = process.memoryUsage().heapUsed;
  if (keep.length !== n) throw new Error("machines were dropped before the measurement");
  return (after - before) / n;
}
