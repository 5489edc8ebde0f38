import type { BenchCase } from "@nestvisor/bench";
import { ControlsShadow } from "../src/controls-shadow";
import { CountingMeter } from "../src/meter";
import { ShadowVmcsSync } from "../src/shadow-vmcs-sync";
import { VmcsProcessor } from "../src/vmcs-processor";
import { Vmcs12 } from "../src/vmcs12";
import { VMX_EVENTS } from "../src/vmx-events";

/** Copy pairs per batch. */
const PAIRS = 20_000;

/**
 * Throughput target for "copy_vmcs12_to_shadow + copy_shadow_to_vmcs12 pair", in pairs per second
 * (≤ 1 µs per pair: 35 VMWRITEs + 24 VMREADs + 6 VMCS-pointer instructions, all counted).
 */
export const SHADOW_VMCS_COPY_PAIR_TARGET = 1_000_000;

/** A vCPU with vmcs01 current and shadowing enabled for a current vmcs12; flags as given. */
function syncWith(flags: {
  readonly precomputedShadowOffsets: boolean;
  readonly readOnlyShadowFields: boolean;
}) {
  const cpu = new VmcsProcessor({ meter: new CountingMeter([VMX_EVENTS]) });
  cpu.vmxon(0x1000);
  const vmcs01 = cpu.createVmcs(0x2000);
  const vmcs02 = cpu.createVmcs(0x3000);
  const shadowVmcs = cpu.createVmcs(0x4000, { shadow: true });
  cpu.vmptrld(vmcs01.address);
  const controls = new ControlsShadow(cpu, { perVmcsShadow: true });
  controls.switchTo(vmcs01);
  const sync = new ShadowVmcsSync({ controls, vmcs01, vmcs02, shadowVmcs, ...flags });
  const vmcs12 = new Vmcs12();
  sync.currentVmcsLoaded(vmcs12);
  return { sync, vmcs12, shadowVmcs };
}

function pairBatch(flags: Parameters<typeof syncWith>[0]): () => number {
  const { sync, vmcs12, shadowVmcs } = syncWith(flags);
  return () => {
    let sum = 0;
    for (let i = 0; i < PAIRS; i++) {
      sync.copyVmcs12ToShadow(vmcs12);
      sync.copyShadowToVmcs12(vmcs12);
      sum = (sum + shadowVmcs.data[i & 63]!) | 0;
    }
    return sum + PAIRS;
  };
}

export function shadowVmcsBenchCases(): BenchCase[] {
  return [
    {
      name: "copy_vmcs12_to_shadow + copy_shadow_to_vmcs12 pair",
      unit: "pairs",
      ops: PAIRS,
      batch: pairBatch({ precomputedShadowOffsets: true, readOnlyShadowFields: true }),
    },
    {
      name: "copy pair, v5.2 (runtime offset lookups, RO copied back)",
      unit: "pairs",
      ops: PAIRS,
      batch: pairBatch({ precomputedShadowOffsets: false, readOnlyShadowFields: false }),
    },
  ];
}
