import { ShadowEptMmu, ShadowPagingMmu, TdpMmu, VcpuMmu } from "@nestvisor/mmu";
import { NestedEntryChecker, ShadowVmcsSync, VmxInstructionEmulator } from "@nestvisor/vmx";
import { EptWalker, PageWalker } from "@nestvisor/x86-arch";
import type { ModelFactory, ModelHooks } from "./model";

/** Every component factory, the model's own where it gives one, the packages' otherwise. */
export type ModelParts = Required<ModelHooks>;

/** The packages' components: what the project's KVM model is built from. */
export const DEFAULT_PARTS: ModelParts = Object.freeze({
  pageWalker: (memory, options) => new PageWalker(memory, options),
  eptWalker: (memory, options) => new EptWalker(memory, options),
  vcpuMmu: (options) => new VcpuMmu(options),
  shadowPagingMmu: (shadow) => new ShadowPagingMmu(shadow),
  shadowEptMmu: (shadow) => new ShadowEptMmu(shadow),
  tdpMmu: (options) => new TdpMmu(options),
  shadowVmcsSync: (options) => new ShadowVmcsSync(options),
  entryChecker: (options) => new NestedEntryChecker(options),
  vmxInstructionEmulator: (options) => new VmxInstructionEmulator(options),
} satisfies ModelParts);

/** The model's hooks over the defaults. */
export function modelParts(model: ModelFactory): ModelParts {
  const hooks = model.hooks ?? {};
  const out: Record<string, unknown> = { ...DEFAULT_PARTS };
  for (const [name, hook] of Object.entries(hooks)) {
    if (hook === undefined) continue;
    if (!(name in DEFAULT_PARTS)) {
      throw new TypeError(
        `model "${model.name}": unknown hook "${name}"; hooks are ${Object.keys(DEFAULT_PARTS).join(", ")}`,
      );
    }
    if (typeof hook !== "function")
      throw new TypeError(`model "${model.name}": hook "${name}" is not a function`);
    out[name] = (hook as (...args: unknown[]) => unknown).bind(hooks);
  }
  return out as unknown as ModelParts;
}
