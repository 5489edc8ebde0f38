import type { BenchCase } from "@nestvisor/bench";
import { VMCS_FIELDS } from "../src/field-catalog";
import { CountingMeter } from "../src/meter";
import { VmcsProcessor } from "../src/vmcs-processor";
import { VMX_EVENTS } from "../src/vmx-events";

/** VMREAD+VMWRITE pairs per batch. */
const PAIRS = 1_000_000;

/** Throughput target for "hardware VMREAD+VMWRITE (no-op meter)", in pairs per second. */
export const HARDWARE_VMCS_ACCESS_TARGET = 40_000_000;

/** Throughput target for "hardware VMREAD+VMWRITE (counting meter)", in pairs per second. */
export const HARDWARE_VMCS_COUNTED_ACCESS_TARGET = 30_000_000;

/**
 * Every catalogued encoding (all widths, types and `_HIGH` halves), shuffled with a fixed LCG so the
 * slots are not visited in memory order.
 */
function encodingCycle(): Int32Array {
  const out = VMCS_FIELDS.map((f) => f.encoding);
  let seed = 0x7654321;
  for (let i = out.length - 1; i > 0; i--) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    const j = seed % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return Int32Array.from(out);
}

/** A processor in VMX root operation with a current VMCS; VMWRITE-to-any lets every field be written. */
function processorWithCurrentVmcs(meter?: CountingMeter): VmcsProcessor {
  const cpu = meter === undefined ? new VmcsProcessor() : new VmcsProcessor({ meter });
  cpu.vmxon(0x1000);
  cpu.vmptrld(cpu.createVmcs(0x2000).address);
  return cpu;
}

function pairsBatch(cpu: VmcsProcessor, encodings: Int32Array): () => number {
  const n = encodings.length;
  return () => {
    let sum = 0;
    let k = 0;
    for (let i = 0; i < PAIRS; i++) {
      const e = encodings[k]!;
      sum = (sum + cpu.vmwrite(e, i, sum)) | 0;
      sum = (sum + cpu.vmread(e) + cpu.hi) | 0;
      if (++k === n) k = 0;
    }
    return sum;
  };
}

export function hardwareVmcsBenchCases(): BenchCase[] {
  const encodings = encodingCycle();
  return [
    {
      name: "hardware VMREAD+VMWRITE (no-op meter)",
      unit: "pairs",
      ops: PAIRS,
      batch: pairsBatch(processorWithCurrentVmcs(), encodings),
    },
    {
      name: "hardware VMREAD+VMWRITE (counting meter)",
      unit: "pairs",
      ops: PAIRS,
      batch: pairsBatch(processorWithCurrentVmcs(new CountingMeter([VMX_EVENTS])), encodings),
    },
  ];
}
