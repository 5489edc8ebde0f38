import {
  CostAccumulator,
  compileCostTable,
  costProfile,
  guestStateSnapshot,
  Machine,
} from "@nestvisor/hypervisor";
import type { ModelFactory, ModelMachine, ModelMachineOptions } from "./model";
import { DEFAULT_PARTS } from "./model-parts";

/**
 * The project's KVM model (`@nestvisor/hypervisor`'s `Machine`) as a `ModelFactory`: the model the
 * suite checks when no `--model` is given. Its hooks are the packages' components, so every suite
 * runs the same code the machine does.
 */
export const KVM_MODEL: ModelFactory = Object.freeze({
  name: "kvm",
  description: "the project's KVM model (@nestvisor/hypervisor Machine with the packages' MMU and VMX parts)",
  createMachine(options: ModelMachineOptions): ModelMachine {
    const meter = new CostAccumulator(compileCostTable(costProfile()));
    const machine = new Machine({
      program: options.program,
      config: options.config,
      ...(options.innerConfig === undefined ? {} : { innerConfig: options.innerConfig }),
      meter,
    });
    return {
      level: machine.level,
      levels: machine.kvms,
      run: () => machine.run(),
      snapshot: () => guestStateSnapshot(machine),
    };
  },
  hooks: DEFAULT_PARTS,
});
