import {
  builtinWorkload,
  createModel,
  type GuestStateSnapshot,
  modelFromModule,
} from "@nestvisor/hypervisor";
import { describe, expect, it } from "vitest";
import * as module from "./model.mjs";

const ORIGIN = "examples/dvh-virtual-passthrough/model.mjs";
const IO_WORKLOADS = ["inl_from_kernel", "outl_to_kernel", "inl_from_qemu", "inl_from_pmtimer"];

/** What the nested guest itself observes: everything but the guest hypervisors' vmcs12. */
function l2View(snapshot: GuestStateSnapshot) {
  const { vmcs12: _vmcs12, ...view } = snapshot;
  return view;
}

describe("dvh-virtual-passthrough", () => {
  const dvh = modelFromModule(module, ORIGIN);

  it("exports its reflection policy and a model that uses it", () => {
    expect(dvh.name).toBe("kvm-dvh-io");
    expect(dvh.policies.reflection).toBe(module.virtualPassthrough);
  });

  it("nested port I/O costs what it costs at L1: one exit, handled by L0", () => {
    for (const name of IO_WORKLOADS) {
      const single = createModel().run(builtinWorkload(name, { level: 1, iterations: 20 }));
      const program = builtinWorkload(name, { level: 2, iterations: 20 });
      const nested = createModel().run(program);
      const result = dvh.run(program);
      expect(l2View(result.snapshot), name).toEqual(l2View(nested.snapshot));
      expect(result.counts.NESTED_EXIT_REFLECTED ?? 0, name).toBe(0);
      expect(result.counts.NESTED_EXIT_HANDLED_BY_L0, name).toBe(result.iterations);
      expect(result.counts.HARDWARE_VM_EXIT, name).toBe(single.counts.HARDWARE_VM_EXIT);
      // Within 2% of the single-level figure (L0 only adds its reflection decision).
      expect(Math.abs(result.cyclesPerIteration / single.cyclesPerIteration - 1), name).toBeLessThan(0.02);
      expect(result.cyclesPerIteration, name).toBeLessThan(nested.cyclesPerIteration);
    }
  });

  it("is not transparent to L1: the guest hypervisor no longer sees the exits it asked for", () => {
    const program = builtinWorkload("inl_from_qemu", { level: 2, iterations: 5 });
    const nested = createModel().run(program);
    const result = dvh.run(program);
    expect(result.snapshot.vmcs12).not.toEqual(nested.snapshot.vmcs12);
  });

  it("leaves every other exit to KVM's decision", () => {
    const program = builtinWorkload("cpuid", { level: 2, iterations: 10 });
    expect(dvh.run(program).counts).toEqual(createModel().run(program).counts);
    const mixed = builtinWorkload("mixed", { level: 2, iterations: 3 });
    const base = createModel().run(mixed);
    const result = dvh.run(mixed);
    expect(l2View(result.snapshot)).toEqual(l2View(base.snapshot));
    // Two of the exits reflected per tick are I/O (one in-kernel, one userspace port); L0 keeps those.
    const reflected = (base.counts.NESTED_EXIT_REFLECTED ?? 0) - (result.counts.NESTED_EXIT_REFLECTED ?? 0);
    expect(reflected).toBe(2 * result.iterations);
    expect(result.counts.NESTED_EXIT_HANDLED_BY_L0 ?? 0).toBe(
      (base.counts.NESTED_EXIT_HANDLED_BY_L0 ?? 0) + reflected,
    );
  });
});
