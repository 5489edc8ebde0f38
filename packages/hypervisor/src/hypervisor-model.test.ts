import { kvmRootCacheWithSize } from "@nestvisor/mmu";
import { ShadowVmcsSync } from "@nestvisor/vmx";
import { describe, expect, it } from "vitest";
import { builtinWorkload } from "./builtin-workloads";
import { createModel, modelFromModule } from "./hypervisor-model";
import { resolveFlags } from "./kernel-presets";
import { runWorkload } from "./run-workload";

describe("createModel", () => {
  it("today's KVM by default, the same as runWorkload with v6.12", () => {
    const program = builtinWorkload("cpuid", { level: 2, iterations: 5 });
    const model = createModel();
    expect(model.name).toBe("kvm-v6.12");
    const a = model.run(program);
    const b = runWorkload({ program, config: resolveFlags("v6.12", {}) });
    expect(a.cyclesPerIteration).toBe(b.cyclesPerIteration);
    expect(a.snapshot).toEqual(b.snapshot);
  });

  it("presets, flags and inner flags are part of the same description", () => {
    const model = createModel({
      preset: "v5.2",
      flags: { controlsShadow: true },
      innerFlags: { shadowVmcs: false },
    });
    expect(model.config.controlsShadow).toBe(true);
    expect(model.config.readOnlyShadowFields).toBe(false);
    expect(model.innerConfig.shadowVmcs).toBe(false);
    expect(model.with({ flags: { readOnlyShadowFields: true } }).config.readOnlyShadowFields).toBe(true);
    expect(() => createModel({ flags: { noSuchFlag: true } })).toThrow(/noSuchFlag/);
  });

  it("a larger root cache stops shadow-paging misses when processes outnumber KVM's three slots", () => {
    const program = builtinWorkload("cr3_switch", { level: 1, iterations: 6, processes: 6 });
    const kvm = createModel({ flags: { ept: false } }).run(program);
    const eight = createModel({
      flags: { ept: false },
      policies: { rootCache: kvmRootCacheWithSize(8) },
    }).run(program);
    expect(eight.snapshot).toEqual(kvm.snapshot);
    expect(kvm.counts.PGD_MISS ?? 0).toBeGreaterThan(eight.counts.PGD_MISS ?? 0);
    expect(eight.cyclesPerIteration).toBeLessThan(kvm.cyclesPerIteration);
  });

  it("a reflection policy that keeps CPUID from L1 changes what the guest sees", () => {
    const program = builtinWorkload("cpuid", { level: 2, iterations: 3 });
    const kvm = createModel().run(program);
    const broken = createModel({
      policies: { reflection: (q) => (q.reason === 10 ? false : q.kvmDecision) },
    }).run(program);
    expect(broken.counts.NESTED_EXIT_REFLECTED ?? 0).toBe(0);
    expect(broken.snapshot.vmcs12).not.toEqual(kvm.snapshot.vmcs12);
  });

  it("a nested-sync policy replaces ShadowVmcsSync", () => {
    let built = 0;
    class CountingSync extends ShadowVmcsSync {}
    const model = createModel({
      policies: {
        nestedSync: (options) => {
          built++;
          return new CountingSync(options);
        },
      },
    });
    model.run(builtinWorkload("cpuid", { level: 2, iterations: 2 }));
    expect(built).toBeGreaterThan(0);
  });

  it("reads a model module's default export, a function export, and rejects a bad one", () => {
    expect(modelFromModule({ default: { preset: "v5.3" } }, "m.mjs").preset).toBe("v5.3");
    expect(
      modelFromModule({ model: (b: { preset?: string }) => ({ ...b, name: "x" }) }, "m.mjs", {
        preset: "v5.7",
      }).name,
    ).toBe("x");
    expect(() => modelFromModule({}, "m.mjs")).toThrow(/m\.mjs: a model module must export/);
    expect(() => modelFromModule({ default: 3 }, "m.mjs")).toThrow(/m\.mjs: the model export is number/);
  });
});
