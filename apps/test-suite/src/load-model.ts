import { existsSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import * as hypervisor from "@nestvisor/hypervisor";
import * as mmu from "@nestvisor/mmu";
import * as vmx from "@nestvisor/vmx";
import * as x86 from "@nestvisor/x86-arch";
import { KVM_MODEL } from "./kvm-model";
import type { ModelFactory, ModelKit, ModelModuleExport } from "./model";
import { modelParts } from "./model-parts";

/** A `--model` module that cannot be used: names the file and what is wrong with it. */
export class ModelLoadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ModelLoadError";
  }
}

/** The packages and the default model, as given to a model module's function. */
export const MODEL_KIT: ModelKit = Object.freeze({ x86, vmx, mmu, hypervisor, defaultModel: KVM_MODEL });

function isFactory(value: unknown): value is ModelFactory {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.name === "string" && typeof v.createMachine === "function";
}

/**
 * Checks what a module exported: a `ModelFactory`, or a function of the `ModelKit` returning one
 * (possibly async). `where` names the module in messages.
 */
export async function resolveModelExport(
  exported: ModelModuleExport | unknown,
  where: string,
): Promise<ModelFactory> {
  let value = exported;
  if (typeof value === "function") value = await (value as (kit: ModelKit) => unknown)(MODEL_KIT);
  if (!isFactory(value)) {
    throw new ModelLoadError(
      `${where}: the export is not a model factory: expected { name: string, createMachine(options) } ` +
        "or a function (kit) => such an object",
    );
  }
  try {
    modelParts(value);
  } catch (error) {
    throw new ModelLoadError(`${where}: ${(error as Error).message}`);
  }
  return value;
}

/**
 * Loads a model module: its `default` export, else `model`, else `createModel` (see
 * `ModelModuleExport`). Relative paths are taken from `cwd`. The module is plain JavaScript (ESM)
 * or anything Node can import.
 */
export async function loadModel(specifier: string, cwd: string = process.cwd()): Promise<ModelFactory> {
  const path = isAbsolute(specifier) ? specifier : resolve(cwd, specifier);
  if (!existsSync(path)) throw new ModelLoadError(`--model ${specifier}: no such file (${path})`);
  let module: Record<string, unknown>;
  try {
    module = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
  } catch (error) {
    throw new ModelLoadError(`--model ${specifier}: the module failed to load: ${(error as Error).message}`);
  }
  const exported = module.default ?? module.model ?? module.createModel;
  if (exported === undefined) {
    throw new ModelLoadError(
      `--model ${specifier}: the module exports no "default", "model" or "createModel" (exports: ${Object.keys(module).join(", ") || "none"})`,
    );
  }
  return resolveModelExport(exported, `--model ${specifier}`);
}
