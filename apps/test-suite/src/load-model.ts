import { existsSync, statSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { HypervisorModel, ModelPolicies, ModelSpec } from "@nestvisor/hypervisor";
import * as hypervisor from "@nestvisor/hypervisor";
import * as mmu from "@nestvisor/mmu";
import * as vmx from "@nestvisor/vmx";
import * as x86 from "@nestvisor/x86-arch";
import { KVM_MODEL } from "./kvm-model";
import type { ModelFactory, ModelKit, ModelModuleArgument, ModelModuleExport } from "./model";
import { modelParts } from "./model-parts";
import { specModelFactory } from "./spec-model";

/** A `--model` module that cannot be used: names the file and what is wrong with it. */
export class ModelLoadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ModelLoadError";
  }
}

/** The packages and the default model, as given to a model module's function. */
export const MODEL_KIT: ModelKit = Object.freeze({ x86, vmx, mmu, hypervisor, defaultModel: KVM_MODEL });

/** What `ModelSpec` holds (`@nestvisor/hypervisor`'s createModel reads nothing else). */
const SPEC_KEYS: readonly string[] = ["name", "preset", "flags", "innerFlags", "profile", "policies"];
/** The policies a `ModelSpec` may replace, and what each must be. */
const POLICY_KINDS: Readonly<Record<keyof ModelPolicies, "object" | "function" | "boolean">> = {
  rootCache: "object",
  nestedSync: "function",
  reflection: "function",
  vmcsAccess: "function",
  unsyncShadowPages: "boolean",
};

function isFactory(value: unknown): value is ModelFactory {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.name === "string" && typeof v.createMachine === "function";
}

/** The argument of a module's function: the kit, and the run's base spec. */
export function moduleArgument(base: ModelSpec = {}): ModelModuleArgument {
  return Object.freeze({
    ...MODEL_KIT,
    ...(base.preset === undefined ? {} : { preset: base.preset }),
    ...(base.flags === undefined ? {} : { flags: base.flags }),
  });
}

/**
 * The `ModelSpec` in `value`, or a message saying why it is none. `fromFunction`: the value was
 * returned by a function of the module argument, whose kit members it may have spread.
 */
function specOf(value: object, fromFunction: boolean): ModelSpec | string {
  const spec: Record<string, unknown> = {};
  const unknown: string[] = [];
  for (const [key, v] of Object.entries(value)) {
    if (SPEC_KEYS.includes(key)) spec[key] = v;
    else if (!(fromFunction && key in MODEL_KIT)) unknown.push(key);
  }
  if (unknown.length > 0) {
    return `not a model factory (no createMachine function) nor a ModelSpec (unknown member${unknown.length > 1 ? "s" : ""} ${unknown.join(", ")}; a ModelSpec has ${SPEC_KEYS.join(", ")})`;
  }
  if (spec.name !== undefined && typeof spec.name !== "string") return "the ModelSpec's name is not a string";
  if (spec.preset !== undefined && typeof spec.preset !== "string")
    return "the ModelSpec's preset is not a string";
  for (const key of ["flags", "innerFlags", "policies"]) {
    const v = spec[key];
    if (v !== undefined && (typeof v !== "object" || v === null))
      return `the ModelSpec's ${key} is not an object`;
  }
  const policies = (spec.policies ?? {}) as Record<string, unknown>;
  for (const [name, policy] of Object.entries(policies)) {
    if (policy === undefined) continue;
    const kind = POLICY_KINDS[name as keyof ModelPolicies];
    if (kind === undefined)
      return `unknown policy "${name}"; policies are ${Object.keys(POLICY_KINDS).join(", ")}`;
    if (typeof policy !== kind || policy === null)
      return `policy "${name}" is not a${kind === "object" ? "n object" : ` ${kind}`}`;
  }
  const rootCache = policies.rootCache as Record<string, unknown> | undefined;
  if (
    rootCache !== undefined &&
    (typeof rootCache.newPgd !== "function" || typeof rootCache.prevRoots !== "number")
  )
    return 'policy "rootCache" is not a RootCachePolicy ({ name, prevRoots, newPgd(ctx, pgd, role, env) })';
  return spec as ModelSpec;
}

/**
 * Checks what a module exported and makes it a `ModelFactory`: a factory as it is; a `ModelSpec`
 * assembled with `createModel` over `base` (the run's `--preset`/`--flag`; the spec's own preset
 * and flags win, as with `nestvisor --model`, see `modelFromModule`); a function is first called
 * with `moduleArgument(base)` (possibly async). `where` names the module in messages.
 */
export async function resolveModelExport(
  exported: ModelModuleExport | unknown,
  where: string,
  base: ModelSpec = {},
): Promise<ModelFactory> {
  let value = exported;
  const fromFunction = typeof value === "function";
  if (fromFunction) value = await (value as (argument: ModelModuleArgument) => unknown)(moduleArgument(base));
  if (typeof value !== "object" || value === null) {
    throw new ModelLoadError(
      `${where}: the export is ${value === null ? "null" : typeof value}: expected a model factory { name, createMachine(options) }, ` +
        "a ModelSpec { name?, preset?, flags?, innerFlags?, profile?, policies? }, or a function (kit and base spec) => either",
    );
  }
  if (isFactory(value)) {
    try {
      modelParts(value);
    } catch (error) {
      throw new ModelLoadError(`${where}: ${(error as Error).message}`);
    }
    return value;
  }
  const spec = specOf(value, fromFunction);
  if (typeof spec === "string") throw new ModelLoadError(`${where}: the export is ${spec}`);
  let model: HypervisorModel;
  try {
    model = hypervisor.modelFromModule({ default: spec }, where, base);
  } catch (error) {
    throw new ModelLoadError(`${where}: ${(error as Error).message}`);
  }
  return specModelFactory(model, where);
}

/**
 * Loads a model module: its `default` export, else `model`, else `createModel` (see
 * `ModelModuleExport`). Relative paths are taken from `cwd`. The module is plain JavaScript (ESM)
 * or anything Node can import. `base` is the run's preset and flags, for a ModelSpec module.
 */
export async function loadModel(
  specifier: string,
  cwd: string = process.cwd(),
  base: ModelSpec = {},
): Promise<ModelFactory> {
  const path = isAbsolute(specifier) ? specifier : resolve(cwd, specifier);
  if (!existsSync(path)) throw new ModelLoadError(`--model ${specifier}: no such file (${path})`);
  if (statSync(path).isDirectory())
    throw new ModelLoadError(`--model ${specifier}: is a directory, not a module file`);
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
  return resolveModelExport(exported, `--model ${specifier}`, base);
}
