import { MMU_EVENTS } from "@nestvisor/mmu";
import { CountingMeter, VMX_EVENTS } from "@nestvisor/vmx";
import { describe, expect, it } from "vitest";
import { builtinWorkload } from "./builtin-workloads";
import { HYPERVISOR_EVENTS } from "./hypervisor-events";
import { resolveFlags } from "./kernel-presets";
import { Machine } from "./machine";

function machine(name: string, level: number, preset = "v6.12", iterations = 10) {
  const meter = new CountingMeter([VMX_EVENTS, MMU_EVENTS, HYPERVISOR_EVENTS]);
  const program = builtinWorkload(name, { level, iterations });
  const m = new Machine({ program, config: resolveFlags(preset, {}), meter });
  return { m, meter };
}

describe("Machine", () => {
  it("runs cpuid at level 1", () => {
    const { m, meter } = machine("cpuid", 1);
    meter.reset();
    m.run();
    expect(m.executor.observations.iterations).toBe(10);
    expect(meter.byName("HARDWARE_VM_EXIT")).toBeGreaterThanOrEqual(10);
  });
  it("runs cpuid at level 2", () => {
    const { m, meter } = machine("cpuid", 2);
    meter.reset();
    m.run();
    expect(m.executor.observations.iterations).toBe(10);
    // Each L2 CPUID is reflected to L1, whose VMRESUME exits to L0: two hardware exits at least.
    expect(meter.byName("HARDWARE_VM_EXIT")).toBeGreaterThanOrEqual(20);
    expect(meter.byName("NESTED_VM_EXIT")).toBe(10);
  });
});
