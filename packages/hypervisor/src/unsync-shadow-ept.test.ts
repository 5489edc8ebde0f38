import { CountingMeter } from "@nestvisor/vmx";
import { describe, expect, it } from "vitest";
import { auditMachine } from "./audit-machine";
import { BUILTIN_WORKLOAD_NAMES, builtinWorkload } from "./builtin-workloads";
import { COST_CATALOGS } from "./cost-catalogs";
import { resolveFlags } from "./kernel-presets";
import { Machine } from "./machine";
import type { ModelPolicies } from "./model-policies";
import { NestedVmxCpu } from "./nested-vmx-cpu";
import { guestStateSnapshot, runWorkload } from "./run-workload";
import { shortBuiltinParams } from "./testing/short-runs";

/**
 * Unsync last-level shadow-EPT pages across the layers (kvm: mmu_try_to_unsync_pages). L1's stores
 * to its EPT12 leaf tables, which L0's EPT02 shadows, fault once per table and re-execute, instead
 * of each being an exit and an emulated write; the guest sees the same either way.
 */
function touchMemory(policies: ModelPolicies, pages = 64) {
  const meter = new CountingMeter(COST_CATALOGS);
  const m = new Machine({
    program: builtinWorkload("touch_memory", { level: 2, pages }),
    config: resolveFlags("v6.12", {}),
    meter,
    policies,
  });
  const l1 = m.kvms[1]!;
  if (!(l1.cpu instanceof NestedVmxCpu)) throw new Error("L1 runs on a nested VmxCpu");
  const cpu = l1.cpu;
  let faults = 0;
  let emulated = 0;
  const trackedWrite = cpu.trackedWrite.bind(cpu);
  cpu.trackedWrite = (gpa: number, bytes: number, lo: number, hi: number) => {
    faults++;
    const done = trackedWrite(gpa, bytes, lo, hi);
    if (done) emulated++;
    return done;
  };
  m.run();
  return { m, meter, faults, emulated };
}

describe("unsync last-level shadow-EPT pages", () => {
  it("L1's stores to an EPT12 leaf table fault once, unsync it and re-execute (touch_memory at L2)", () => {
    const off = touchMemory({ unsyncShadowPages: false });
    const on = touchMemory({});
    // Off: every store to the leaf table (one per new page) is an emulated write.
    expect(off.faults).toBeGreaterThanOrEqual(63);
    expect(off.emulated).toBe(off.faults);
    expect(off.meter.byName("UNSYNC_PAGE")).toBe(0);
    // On: the first store to each EPT12 leaf table L1 fills (L2's low memory and the touched region)
    // unsyncs that table's one EPT02 page and re-executes; the upper tables stay emulated.
    expect(on.faults).toBeLessThanOrEqual(4);
    expect(on.meter.byName("UNSYNC_PAGE")).toBe(2);
    expect(on.faults - on.emulated).toBe(2);
    expect(on.meter.byName("TRACKED_WRITE")).toBe(on.emulated);
    // L1 never flushes EPT12 here, so nothing is resynced.
    for (const event of ["SYNC_CHILDREN", "SYNC_PAGE", "SYNC_SPTE"]) expect(on.meter.byName(event)).toBe(0);
    expect(on.m.kvms[0]!.store.unsyncPages).toBe(2);
    expect(guestStateSnapshot(on.m)).toEqual(guestStateSnapshot(off.m));
    auditMachine(on.m);
  });

  it("INVEPT and the reload that follows resync the unsync page (kvm_mmu_load → kvm_mmu_sync_roots)", () => {
    const { m, meter } = touchMemory({});
    const l0 = m.kvms[0]!;
    expect(l0.nested.guestMode).toBe(true);
    const unsync = l0.store.unsyncPages;
    expect(unsync).toBeGreaterThan(0);
    l0.invalidateNestedEpt(2, 0);
    l0.reloadMmu();
    expect(meter.byName("SYNC_CHILDREN")).toBe(1);
    expect(meter.byName("SYNC_PAGE")).toBe(unsync);
    expect(meter.byName("SYNC_SPTE")).toBeGreaterThanOrEqual(64);
    expect(l0.store.unsyncPages).toBe(0);
    auditMachine(m);
  });

  it("every built-in at L2 and L3 (and at L2 without L1 EPT) gives the guest the same state with unsync off", () => {
    const runs: [string, number, Record<string, boolean>][] = [];
    for (const name of BUILTIN_WORKLOAD_NAMES) runs.push([name, 2, {}], [name, 2, { l1Ept: false }]);
    runs.push(["cpuid", 3, {}], ["touch_memory", 3, {}]);
    for (const [name, level, overrides] of runs) {
      const run = (policies: ModelPolicies) =>
        runWorkload({
          program: builtinWorkload(name, shortBuiltinParams(name, level)),
          config: resolveFlags("v6.12", overrides),
          policies,
        });
      const on = run({});
      const off = run({ unsyncShadowPages: false });
      expect(on.snapshot, `${name} at L${level} ${JSON.stringify(overrides)}`).toEqual(off.snapshot);
      if (overrides.l1Ept === false) expect(on.counts.UNSYNC_PAGE ?? 0).toBe(0);
    }
  });
});
