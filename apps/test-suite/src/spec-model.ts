import {
  formatFlags,
  guestStateSnapshot,
  HYPERVISOR_FLAG_NAMES,
  type HypervisorFlags,
  type HypervisorModel,
  withFlags,
} from "@nestvisor/hypervisor";
import type { ModelFactory, ModelMachine, ModelMachineOptions } from "./model";

/** The flags where `inner` differs from `outer`: a model's `innerFlags`, recovered from its configs. */
function innerOverrides(outer: HypervisorFlags, inner: HypervisorFlags): Partial<Record<string, boolean>> {
  const out: Record<string, boolean> = {};
  for (const name of HYPERVISOR_FLAG_NAMES) if (inner[name] !== outer[name]) out[name] = inner[name];
  return out;
}

/** Policy names a model replaces, for descriptions ("root cache, reflection"). */
export function policyNames(model: HypervisorModel): string[] {
  return Object.entries(model.policies)
    .filter(([, policy]) => policy !== undefined)
    .map(([name]) => name);
}

/**
 * A hypervisor model assembled from a `ModelSpec` (`createModel`, `modelFromModule`) as the suite's
 * `ModelFactory` (issue 7/8: one description of a model for `nestvisor` and the conformance suite):
 *
 * - machines: for each configuration a suite asks for, the model with exactly those flags
 *   (`model.with({ flags })`, the same preset, profile and policies) builds the machine, so every
 *   machine-level suite (nested, differential, audit) runs the model's policies at every level. The
 *   guest hypervisors keep the model's own `innerFlags` on top of what the suite asks for them.
 * - components: the model's policies (`ModelFactory.policies`): the mmu suite gives every `VcpuMmu`
 *   its root cache, the VMX world uses its nested sync (and its VMCS access for an enlightened L1).
 * - baseline: its preset and flags (the command line's under the module's own) are the run's.
 */
export function specModelFactory(model: HypervisorModel, origin: string): ModelFactory {
  const inner = innerOverrides(model.config, model.innerConfig);
  const byConfig = new Map<string, HypervisorModel>();
  const configured = (config: HypervisorFlags, innerConfig: HypervisorFlags): HypervisorModel => {
    const key = `${formatFlags(config)}|${formatFlags(innerConfig)}`;
    let m = byConfig.get(key);
    if (m === undefined) {
      m = model.with({ flags: config, innerFlags: innerConfig });
      byConfig.set(key, m);
    }
    return m;
  };
  const policies = policyNames(model);
  return Object.freeze({
    name: model.name,
    description: `hypervisor model ${model.name} from ${origin} (preset ${model.preset}, ${policies.length === 0 ? "KVM's policies" : `policies: ${policies.join(", ")}`})`,
    createMachine(options: ModelMachineOptions): ModelMachine {
      const innerConfig = withFlags(options.innerConfig ?? options.config, inner);
      const machine = configured(options.config, innerConfig).createMachine(options.program);
      return {
        level: machine.level,
        levels: machine.kvms,
        run: () => machine.run(),
        snapshot: () => guestStateSnapshot(machine),
      };
    },
    policies: model.policies,
    baseline: Object.freeze({ preset: model.preset, config: model.config }),
  } satisfies ModelFactory);
}
