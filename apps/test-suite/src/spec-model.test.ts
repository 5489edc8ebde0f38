import {
  builtinWorkload,
  createModel,
  type ExitReflectionQuery,
  type Kvm,
  resolveFlags,
  withFlags,
} from "@nestvisor/hypervisor";
import { kvmRootCacheWithSize } from "@nestvisor/mmu";
import { ShadowVmcsSync } from "@nestvisor/vmx";
import { describe, expect, it } from "vitest";
import { KVM_MODEL } from "./kvm-model";
import { policyNames, specModelFactory } from "./spec-model";

const kvmsOf = (levels: unknown) => levels as readonly Kvm[];

describe("specModelFactory: a ModelSpec's model as the suite's ModelFactory", () => {
  it("builds each machine with the configuration asked for and the model's policies at every level", () => {
    const rootCache = kvmRootCacheWithSize(5);
    const syncLevels: number[] = [];
    const queries: ExitReflectionQuery[] = [];
    const model = createModel({
      name: "probe",
      policies: {
        rootCache,
        nestedSync: (options, context) => {
          syncLevels.push(context.level);
          return new ShadowVmcsSync(options);
        },
        reflection: (query) => {
          queries.push(query);
          return query.kvmDecision;
        },
      },
    });
    const factory = specModelFactory(model, "test");
    const config = resolveFlags("v5.3");
    const machine = factory.createMachine({
      program: builtinWorkload("cpuid", { level: 2, iterations: 2 }),
      config,
    });
    machine.run();
    const kvms = kvmsOf(machine.levels);
    expect(kvms.map((k) => k.level)).toEqual([0, 1]);
    expect(kvms.map((k) => k.config)).toEqual([config, config]);
    expect(kvms.every((k) => k.mmu.rootCache === rootCache)).toBe(true);
    expect(kvms.every((k) => k.policies.reflection === model.policies.reflection)).toBe(true);
    expect(syncLevels).toContain(0);
    expect(queries.length).toBeGreaterThan(0);
    expect(queries.every((q) => q.level === 0)).toBe(true);
  });

  it("keeps the model's inner flags on top of what a suite asks for the guest hypervisors", () => {
    const model = createModel({ preset: "v6.12", innerFlags: { shadowVmcs: false } });
    const factory = specModelFactory(model, "test");
    const config = resolveFlags("none");
    const machine = factory.createMachine({
      program: builtinWorkload("cpuid", { level: 3, iterations: 1 }),
      config,
      innerConfig: withFlags(config, { controlsShadow: true }),
    });
    const kvms = kvmsOf(machine.levels);
    expect(kvms[0]!.config).toEqual(config);
    expect(kvms[1]!.config).toEqual(withFlags(config, { controlsShadow: true, shadowVmcs: false }));
    expect(kvms[2]!.config).toEqual(kvms[1]!.config);
  });

  it("without policies it is the project's model: the same guest-visible state", () => {
    const factory = specModelFactory(createModel(), "test");
    const options = {
      program: builtinWorkload("mixed", { level: 2, iterations: 2 }),
      config: resolveFlags(),
    };
    const a = factory.createMachine(options);
    const b = KVM_MODEL.createMachine(options);
    a.run();
    b.run();
    expect(a.snapshot()).toEqual(b.snapshot());
  });

  it("carries the model's baseline, policies and a description naming them", () => {
    const model = createModel({
      preset: "v5.7",
      flags: { shadowVmcs: false },
      policies: { rootCache: kvmRootCacheWithSize(8) },
    });
    const factory = specModelFactory(model, "--model x.mjs");
    expect(factory.name).toBe("kvm-v5.7+rootCache");
    expect(factory.baseline).toEqual({ preset: "v5.7", config: resolveFlags("v5.7", { shadowVmcs: false }) });
    expect(factory.policies).toBe(model.policies);
    expect(factory.hooks).toBeUndefined();
    expect(factory.description).toBe(
      "hypervisor model kvm-v5.7+rootCache from --model x.mjs (preset v5.7, policies: rootCache)",
    );
    expect(policyNames(createModel())).toEqual([]);
  });
});
