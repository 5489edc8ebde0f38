import type { BenchCase } from "@nestvisor/bench";
import type { FieldWidth } from "../src/field-encoding";
import { Vmcs12 } from "../src/vmcs12";
import { type Vmcs12Field, vmcs12Layout } from "../src/vmcs12-layout";

/** VMREAD+VMWRITE pairs per batch. */
const PAIRS = 1_000_000;

/** Throughput target for "vmcs12 VMREAD+VMWRITE by encoding", in pairs per second. */
export const VMCS12_ACCESS_TARGET = 50_000_000;

/**
 * The fields a batch cycles through: every encoding vmcs12 stores (all widths, `_HIGH` halves
 * included), shuffled with a fixed LCG so the access pattern is not sequential in memory.
 */
function fieldCycle(): Vmcs12Field[] {
  const out = [...vmcs12Layout().fields];
  let seed = 0x1234567;
  for (let i = out.length - 1; i > 0; i--) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    const j = seed % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

export function vmcs12BenchCases(): BenchCase[] {
  const fields = fieldCycle();
  const encodings = Int32Array.from(fields, (f) => f.encoding);
  const offsets = Int32Array.from(fields, (f) => f.offset);
  const widths = Uint8Array.from(fields, (f) => f.width);
  const n = encodings.length;

  const byEncoding = new Vmcs12();
  const byOffset = new Vmcs12();

  return [
    {
      name: "vmcs12 VMREAD+VMWRITE by encoding",
      unit: "pairs",
      ops: PAIRS,
      batch: () => {
        const v = byEncoding;
        let sum = 0;
        let k = 0;
        for (let i = 0; i < PAIRS; i++) {
          const e = encodings[k]!;
          v.write(e, i, sum);
          sum = (sum + v.read(e) + v.hi) | 0;
          if (++k === n) k = 0;
        }
        return sum;
      },
    },
    {
      name: "vmcs12 VMREAD+VMWRITE by precomputed offset",
      unit: "pairs",
      ops: PAIRS,
      batch: () => {
        const v = byOffset;
        let sum = 0;
        let k = 0;
        for (let i = 0; i < PAIRS; i++) {
          const offset = offsets[k]!;
          const width = widths[k]! as FieldWidth;
          v.writeAt(offset, width, i, sum);
          sum = (sum + v.readAt(offset, width) + v.hi) | 0;
          if (++k === n) k = 0;
        }
        return sum;
      },
    },
  ];
}
