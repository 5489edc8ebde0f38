import type { BenchCase } from "@nestvisor/bench";
import {
  hardwareVmcsSlot,
  type Meter,
  VMX_EVENTS,
  Vmcs12,
  VmcsFieldList,
  VmcsProcessor,
  vmcs12Layout,
} from "@nestvisor/vmx";
import { builtinWorkload } from "../src/builtin-workloads";
import { CostAccumulator } from "../src/cost-accumulator";
import { costProfile } from "../src/cost-profiles";
import { compileCostTable } from "../src/cost-table";
import { resolveFlags } from "../src/kernel-presets";
import { Machine } from "../src/machine";

/**
 * A reference for the L2 CPUID target: the model's own primitives for one round trip, run alone.
 * A round trip is first measured — how many VMREADs and VMWRITEs it executes, how many vmcs12 fields
 * KVM reads and writes in memory, how many times it calls the meter — and then exactly that work is
 * replayed with none of the logic that decides it: the VMREADs and VMWRITEs as two field-list runs
 * on a `VmcsProcessor` (the fastest form the model has, one dispatch per list), the vmcs12 accesses
 * as `Vmcs12.read`/`write`, and the remaining meter calls on the same kind of `CostAccumulator`.
 * What a round trip costs above this is its control logic; this much no reorganisation removes.
 */

/** Meter calls and per-event units of one measured round trip. */
interface RoundTripWork {
  readonly vmreads: number;
  readonly vmwrites: number;
  readonly vmcs12Reads: number;
  readonly vmcs12Writes: number;
  readonly meterCalls: number;
}

/** A CostAccumulator that also counts how often it is called (a wrapper, so hot paths treat it alike). */
class CallCountingMeter implements Meter {
  calls = 0;
  readonly inner: CostAccumulator;
  constructor(inner: CostAccumulator) {
    this.inner = inner;
  }
  count(event: number, n = 1): void {
    this.calls++;
    this.inner.count(event, n);
  }
}

function newAccumulator(): CostAccumulator {
  return new CostAccumulator(compileCostTable(costProfile("intel-server")));
}

/** Measures the primitives of `iterations` L2 CPUID round trips under `preset`, per round trip. */
function measureRoundTripWork(preset: string, iterations: number): RoundTripWork {
  const meter = new CallCountingMeter(newAccumulator());
  const machine = new Machine({
    program: builtinWorkload("cpuid", { level: 2, iterations }),
    config: resolveFlags(preset, {}),
    meter,
  });
  machine.run();
  const counts = meter.inner.counts;
  const before = Float64Array.from(counts);
  const callsBefore = meter.calls;
  machine.executor.cursor.reset();
  machine.run();
  const per = (event: number): number => Math.round((counts[event]! - before[event]!) / iterations);
  return {
    vmreads: per(VMX_EVENTS.VMREAD),
    vmwrites: per(VMX_EVENTS.VMWRITE),
    vmcs12Reads: per(VMX_EVENTS.VMCS12_READ),
    vmcs12Writes: per(VMX_EVENTS.VMCS12_WRITE),
    meterCalls: Math.round((meter.calls - callsBefore) / iterations),
  };
}

/** `n` fields stored in vmcs12 that the processor also has, cycling through the layout. */
function fieldList(n: number, skip: number): VmcsFieldList {
  const stored = vmcs12Layout().fields.filter((f) => hardwareVmcsSlot(f.encoding) >= 0);
  return new VmcsFieldList(Array.from({ length: n }, (_, i) => stored[(i + skip) % stored.length]!.encoding));
}

const ROUND_TRIPS = 2000;

export function primitiveFloorBenchCase(preset = "v6.12"): { case: BenchCase; work: RoundTripWork } {
  const work = measureRoundTripWork(preset, 200);
  const meter = newAccumulator();
  const processor = new VmcsProcessor({ meter });
  processor.vmxon(0x1000);
  const vmcs = processor.createVmcs(0x2000);
  processor.vmptrld(vmcs.address);
  const vmcs12 = new Vmcs12();
  const reads = fieldList(work.vmreads, 0);
  const writes = fieldList(work.vmwrites, 7);
  const memoryReads = fieldList(work.vmcs12Reads, 13).encodings;
  const memoryWrites = fieldList(work.vmcs12Writes, 29).encodings;
  // The two list runs count once each; every other meter call of the round trip is made here.
  const otherCalls = Math.max(0, work.meterCalls - 2);
  const OTHER = VMX_EVENTS.VMPTRLD;
  return {
    work,
    case: {
      name: `L2 cpuid (${preset}) primitives alone (floor, reference)`,
      unit: "round trips",
      ops: ROUND_TRIPS,
      batch: () => {
        let sum = 0;
        for (let r = 0; r < ROUND_TRIPS; r++) {
          processor.vmwriteFromVmcs12(writes, vmcs12);
          processor.vmreadIntoVmcs12(reads, vmcs12);
          for (let i = 0; i < memoryReads.length; i++) sum += vmcs12.read(memoryReads[i]!);
          for (let i = 0; i < memoryWrites.length; i++) vmcs12.write(memoryWrites[i]!, r, 0);
          for (let i = 0; i < otherCalls; i++) meter.count(OTHER);
        }
        return (sum + meter.totalCycles) | 0;
      },
    },
  };
}
