import type { BenchCase } from "@nestvisor/bench";
import { CountingMeter, EXIT_REASON, type Meter, VMX_EVENTS } from "@nestvisor/vmx";
import { CostAccumulator } from "../src/cost-accumulator";
import { COST_CATALOGS } from "../src/cost-catalogs";
import { costProfile } from "../src/cost-profiles";
import { compileCostTable } from "../src/cost-table";
import { HYPERVISOR_EVENTS } from "../src/hypervisor-events";

/** Counts per batch. */
const COUNTS = 100_000;
/** Exits per batch (each begins, counts 8 events, ends). */
const EXITS = 10_000;

/**
 * Throughput target for "CostAccumulator.count", in counts per second: pricing and attributing a
 * count must stay within a few times a CountingMeter's plain add (≥ 50 M/s, 20 ns per count).
 */
export const COST_COUNT_TARGET = 50_000_000;

const EVENTS = [
  VMX_EVENTS.VMREAD,
  VMX_EVENTS.VMWRITE,
  HYPERVISOR_EVENTS.HARDWARE_VM_EXIT,
  HYPERVISOR_EVENTS.EXIT_DISPATCH,
  HYPERVISOR_EVENTS.EXIT_HANDLER_CPUID,
  VMX_EVENTS.VMRESUME,
  HYPERVISOR_EVENTS.HARDWARE_VM_ENTRY,
  HYPERVISOR_EVENTS.GUEST_COMPUTE_CYCLES,
];

function countBatch(meter: Meter, total: () => number): () => number {
  return () => {
    for (let i = 0; i < COUNTS; i++) meter.count(EVENTS[i & 7]!, 1);
    return total();
  };
}

export function costAccumulatorBenchCases(): BenchCase[] {
  const table = compileCostTable(costProfile("intel-server"));
  const acc = new CostAccumulator(table);
  const counting = new CountingMeter(COST_CATALOGS);
  const exits = new CostAccumulator(table, { sampleCapacity: 65_536 });
  return [
    {
      name: "CostAccumulator.count",
      unit: "counts",
      ops: COUNTS,
      batch: countBatch(acc, () => acc.totalCycles | 0),
    },
    {
      name: "CountingMeter.count (reference)",
      unit: "counts",
      ops: COUNTS,
      batch: countBatch(counting, () => counting.counts[VMX_EVENTS.VMREAD]! | 0),
    },
    {
      name: "exit begin + 8 counts + end (latency sample)",
      unit: "exits",
      ops: EXITS,
      batch: () => {
        for (let i = 0; i < EXITS; i++) {
          exits.beginExit(2, EXIT_REASON.CPUID);
          for (let e = 0; e < 8; e++) exits.count(EVENTS[e]!, 1);
          exits.endExit();
        }
        return exits.latency.recorded | 0;
      },
    },
  ];
}
