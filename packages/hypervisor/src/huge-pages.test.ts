import { CountingMeter } from "@nestvisor/vmx";
import { describe, expect, it } from "vitest";
import { auditMachine } from "./audit-machine";
import { BUILTIN_WORKLOAD_NAMES, builtinWorkload } from "./builtin-workloads";
import { COST_CATALOGS } from "./cost-catalogs";
import { resolveFlags } from "./kernel-presets";
import { Machine } from "./machine";
import { guestStateSnapshot } from "./run-workload";
import { shortBuiltinParams, workloadView } from "./testing/short-runs";

/**
 * The `hugePages` switch across the layers: every level's host backs its guests' memory with 2-MiB
 * pages (kvm: kvm_mmu_hugepage_adjust), so a nested guest's first touch of a 2-MiB region costs one
 * fault at each level instead of one per 4-KiB page (cloud-hypervisor#6060). The guest sees the
 * same either way.
 */
function run(name: string, params: Record<string, number>, overrides: Record<string, boolean>) {
  const meter = new CountingMeter(COST_CATALOGS);
  const m = new Machine({
    program: builtinWorkload(name, params),
    config: resolveFlags("v6.12", overrides),
    meter,
  });
  m.run();
  return { m, meter };
}

describe("hugePages: 2-MiB host pages at every level", () => {
  it("L1 touching 512 pages of one 2-MiB region: one EPT violation for the region", () => {
    const small = run("touch_memory", { level: 1, pages: 512 }, {});
    const huge = run("touch_memory", { level: 1, pages: 512 }, { hugePages: true });
    expect(small.meter.byName("TDP_FAULT")).toBeGreaterThanOrEqual(512);
    // The region's one fault, plus one per 2-MiB region of the kernel mappings the workload touches.
    expect(huge.meter.byName("TDP_FAULT")).toBeLessThanOrEqual(8);
    expect(guestStateSnapshot(huge.m)).toEqual(guestStateSnapshot(small.m));
    auditMachine(huge.m);
  });

  it("L2 touching 512 pages: L1's EPT12 and L0's EPT02 each fault once for the region", () => {
    const small = run("touch_memory", { level: 2, pages: 512 }, {});
    const huge = run("touch_memory", { level: 2, pages: 512 }, { hugePages: true });
    // L0's shadow-EPT faults and L1's TDP faults (counted at both levels by one meter).
    expect(small.meter.byName("SHADOW_EPT_FAULT")).toBeGreaterThanOrEqual(512);
    expect(huge.meter.byName("SHADOW_EPT_FAULT")).toBeLessThanOrEqual(16);
    expect(huge.meter.byName("TDP_FAULT")).toBeLessThanOrEqual(16);
    expect(huge.meter.byName("HARDWARE_VM_EXIT")).toBeLessThan(small.meter.byName("HARDWARE_VM_EXIT") / 20);
    expect(workloadView(guestStateSnapshot(huge.m))).toEqual(workloadView(guestStateSnapshot(small.m)));
    auditMachine(huge.m);
  });

  it("every built-in at L1 and L2, on shadow paging and with L1 on shadow paging, and cpuid/touch_memory at L3: same guest state, clean audit", () => {
    const runs: [string, number, Record<string, boolean>][] = [];
    for (const name of BUILTIN_WORKLOAD_NAMES) {
      runs.push([name, 1, {}], [name, 1, { ept: false }], [name, 2, {}], [name, 2, { l1Ept: false }]);
      runs.push([name, 2, { tdpMmu: false }]);
    }
    runs.push(["cpuid", 3, {}], ["touch_memory", 3, {}]);
    for (const [name, level, overrides] of runs) {
      const label = `${name} at L${level} ${JSON.stringify(overrides)}`;
      const small = run(name, shortBuiltinParams(name, level, { pages: 64 }), overrides);
      const huge = run(name, shortBuiltinParams(name, level, { pages: 64 }), {
        ...overrides,
        hugePages: true,
      });
      expect(workloadView(guestStateSnapshot(huge.m)), label).toEqual(
        workloadView(guestStateSnapshot(small.m)),
      );
      expect(() => auditMachine(huge.m), label).not.toThrow();
    }
  });
});
