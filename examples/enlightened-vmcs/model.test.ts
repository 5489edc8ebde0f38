import { builtinWorkload, createModel, type ModelSpec, modelFromModule } from "@nestvisor/hypervisor";
import { describe, expect, it } from "vitest";
import * as module from "./model.mjs";

const ORIGIN = "examples/enlightened-vmcs/model.mjs";
const load = (base: ModelSpec = {}) => modelFromModule(module, ORIGIN, base);

/** The nested workloads, small enough for a test run. */
const NESTED = [
  builtinWorkload("cpuid", { level: 2, iterations: 20 }),
  builtinWorkload("vmcall", { level: 2, iterations: 20 }),
  builtinWorkload("inl_from_qemu", { level: 2, iterations: 20 }),
  builtinWorkload("toggle_cr0_wp", { level: 2, iterations: 20 }),
  builtinWorkload("cr3_switch", { level: 2, iterations: 5 }),
  builtinWorkload("touch_memory", { level: 2, pages: 32 }),
  builtinWorkload("mixed", { level: 2, iterations: 5 }),
];

describe("enlightened-vmcs", () => {
  it("replaces the VMCS access of guest hypervisors and L0's nested sync", () => {
    const model = load();
    expect(model.name).toBe("kvm-evmcs");
    expect(typeof model.policies.vmcsAccess).toBe("function");
    expect(typeof model.policies.nestedSync).toBe("function");
  });

  it("every nested workload: the guest sees what it sees with shadow VMCS, for fewer cycles", () => {
    const kvm = createModel();
    const evmcs = load();
    for (const program of NESTED) {
      const base = kvm.run(program);
      const result = evmcs.run(program);
      expect(result.snapshot, program.name).toEqual(base.snapshot);
      expect(result.cyclesPerIteration, program.name).toBeLessThan(base.cyclesPerIteration);
      // No VMREAD/VMWRITE of L1 reaches L0, and no shadow-VMCS copy (VMCLEAR of the shadow) is made.
      expect(result.counts.EMULATED_VMREAD ?? 0, program.name).toBe(0);
      expect(result.counts.EMULATED_VMWRITE ?? 0, program.name).toBe(0);
      expect(result.counts.VMCLEAR ?? 0, program.name).toBe(0);
    }
  });

  it("one CPUID round trip through L1: hardware VMCS work traded for memory copies", () => {
    const program = builtinWorkload("cpuid", { level: 2, iterations: 50 });
    const base = createModel().run(program);
    const result = load().run(program);
    const per = (r: typeof base, name: string) => (r.counts[name] ?? 0) / r.iterations;
    expect(per(base, "VMPTRLD")).toBe(6);
    expect(per(result, "VMPTRLD")).toBe(2);
    expect(per(base, "VMCLEAR")).toBe(2);
    expect(per(result, "VMWRITE")).toBeLessThan(per(base, "VMWRITE"));
    expect(per(result, "VMCS12_WRITE")).toBeGreaterThan(per(base, "VMCS12_WRITE"));
    // The rare guest fields are read at every exit instead of being deferred.
    expect(per(base, "RARE_FIELD_VMREAD_DEFERRED")).toBe(35);
    expect(per(result, "RARE_FIELD_VMREAD_DEFERRED")).toBe(0);
    expect(per(result, "PREPARE_VMCS02_RARE")).toBe(1);
    // About a thousand cycles per round trip with the intel-server profile.
    expect(base.cyclesPerIteration - result.cyclesPerIteration).toBeGreaterThan(800);
  });

  it("beats both shadow VMCS and no shadowing, also under the 2019 preset", () => {
    const program = builtinWorkload("toggle_cr0_wp", { level: 2, iterations: 20 });
    for (const preset of ["v5.2", "v6.12"]) {
      const shadow = createModel({ preset }).run(program);
      const none = createModel({ preset, flags: { shadowVmcs: false } }).run(program);
      const evmcs = load({ preset }).run(program);
      expect(evmcs.snapshot).toEqual(shadow.snapshot);
      expect(evmcs.cyclesPerIteration).toBeLessThan(shadow.cyclesPerIteration);
      expect(shadow.cyclesPerIteration).toBeLessThan(none.cyclesPerIteration);
    }
  });

  it("at three levels the inner KVM, which gets no shadow VMCS, stops exiting on VMREAD/VMWRITE", () => {
    const program = builtinWorkload("cpuid", { level: 3, iterations: 3 });
    const base = createModel().run(program);
    const result = load().run(program);
    expect(result.snapshot).toEqual(base.snapshot);
    expect(result.cyclesPerIteration * 4).toBeLessThan(base.cyclesPerIteration);
  });
});
