import { builtinWorkload, resolveFlags, runWorkload } from "@nestvisor/hypervisor";
import { describe, expect, it } from "vitest";
import { KVM_MODEL } from "./kvm-model";

describe("KVM_MODEL", () => {
  it("builds the hypervisor's Machine: same snapshot as runWorkload, with every level exposed", () => {
    const program = builtinWorkload("cpuid", { level: 2, iterations: 3 });
    const config = resolveFlags("v6.12", {});
    const machine = KVM_MODEL.createMachine({ program, config });
    expect(machine.level).toBe(2);
    expect(machine.levels).toHaveLength(2);
    machine.run();
    expect(machine.snapshot()).toEqual(runWorkload({ program, config }).snapshot);
  });

  it("passes innerConfig to the guest hypervisors", () => {
    const program = builtinWorkload("cpuid", { level: 2, iterations: 1 });
    const machine = KVM_MODEL.createMachine({
      program,
      config: resolveFlags("none", {}),
      innerConfig: resolveFlags("v6.12", {}),
    });
    const levels = machine.levels as unknown as { config: { controlsShadow: boolean } }[];
    expect(levels[0]!.config.controlsShadow).toBe(false);
    expect(levels[1]!.config.controlsShadow).toBe(true);
  });
});
