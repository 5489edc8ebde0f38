import { existsSync, statSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import {
  CostProfileError,
  createModel,
  FlagError,
  type HypervisorModel,
  type ModelSpec,
  modelFromModule,
} from "@nestvisor/hypervisor";
import { CliError, EXIT, UsageError } from "../framework/errors";
import { BUNDLED_PACKAGES, useBundledPackages } from "./bundled-packages";

/**
 * `--model <module>` of run, compare, explain and sweep: a JavaScript (ESM) module whose default
 * export (or `model` export) is a `ModelSpec` of @nestvisor/hypervisor — or a function that takes
 * the base spec the command line describes (--preset, --flag, --profile) and returns one. The model
 * is built with `modelFromModule(exports, path, base)`, so the module's own preset, flags, profile
 * and policies apply on top of the command line's.
 *
 * The module's imports of @nestvisor/x86-arch, vmx, mmu and hypervisor get the binary's own copies
 * (bundled-packages.ts), so it needs nothing installed and shares the command's classes.
 *
 * Everything that can be wrong with the module is one line naming its path, exit 2: no such file,
 * an import that throws (a syntax error, a missing dependency), an export that is not a ModelSpec
 * (with a pointer to `nestvisor test` when it is the conformance suite's `ModelFactory` format).
 */

/** The members a ModelSpec may have, and what each must be. */
const SPEC_KEYS = ["name", "preset", "flags", "innerFlags", "profile", "policies"] as const;
const POLICY_KEYS = ["rootCache", "nestedSync", "reflection", "vmcsAccess"] as const;
/** Members that mark the test suite's `ModelFactory` (apps/test-suite/src/model.ts). */
const FACTORY_KEYS = ["createMachine", "hooks", "description"];
/** What a function of the test suite's `ModelKit` reads from its argument. */
const KIT_KEYS = new Set(["x86", "vmx", "mmu", "hypervisor", "defaultModel"]);

const SPEC_SHAPE = `{ ${SPEC_KEYS.map((k) => `${k}?`).join(", ")} }`;

/** The module's exports, cached by absolute path (a module is evaluated once per process anyway). */
const imported = new Map<string, Promise<Readonly<Record<string, unknown>>>>();

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "function") return "a function";
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}

/** Imports the module at `shown` (relative to `cwd`); a missing file or a failing import is a usage error. */
export async function importModelModule(
  shown: string,
  cwd: string,
): Promise<Readonly<Record<string, unknown>>> {
  const path = isAbsolute(shown) ? shown : resolve(cwd, shown);
  if (!existsSync(path)) throw new UsageError(`--model ${shown}: no such file`);
  if (statSync(path).isDirectory())
    throw new UsageError(`--model ${shown}: is a directory, not a JavaScript module`);
  let pending = imported.get(path);
  if (pending === undefined) {
    useBundledPackages();
    pending = import(pathToFileURL(path).href) as Promise<Readonly<Record<string, unknown>>>;
    imported.set(path, pending);
  }
  try {
    return await pending;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const code = (error as { code?: string }).code;
    const hint =
      code === "ERR_MODULE_NOT_FOUND" && /@nestvisor\//.test(message)
        ? ` (nestvisor provides ${BUNDLED_PACKAGES.map((p) => `@nestvisor/${p}`).join(", ")}; install any other package next to the module)`
        : code === "ERR_UNKNOWN_FILE_EXTENSION"
          ? " (a model module is JavaScript: .mjs, or .js in an ESM package)"
          : "";
    throw new UsageError(`--model ${shown}: the module failed to load: ${message}${hint}`);
  }
}

/** The ModelSpec a module exports, checked member by member; `base` is passed to a function export. */
export function modelSpecOf(
  exports: Readonly<Record<string, unknown>>,
  shown: string,
  base: ModelSpec,
): ModelSpec {
  const names = Object.keys(exports);
  const candidate = exports.default ?? exports.model;
  if (candidate === undefined) {
    const factoryHint = "createModel" in exports ? " (a createModel export is the test suite's format)" : "";
    throw new UsageError(
      `--model ${shown}: the module exports no "default" or "model" (exports: ${names.join(", ") || "none"})${factoryHint}; expected a ModelSpec ${SPEC_SHAPE} or a function (base) => ModelSpec`,
    );
  }
  let spec: unknown = candidate;
  if (typeof candidate === "function") {
    // A function of the test suite's kit reads kit.mmu, kit.defaultModel, …: note what it reads.
    const kitReads = new Set<string>();
    const watched = new Proxy(base, {
      get(target, key, receiver) {
        if (typeof key === "string" && KIT_KEYS.has(key)) kitReads.add(key);
        return Reflect.get(target, key, receiver);
      },
    });
    const suiteModel = (): UsageError =>
      new UsageError(
        `--model ${shown}: the export is a function of the test suite's kit (it reads ${[...kitReads].map((k) => `kit.${k}`).join(", ")}): a conformance-suite model, not a ModelSpec ${SPEC_SHAPE}; run it with nestvisor test --model ${shown}`,
      );
    try {
      spec = (candidate as (b: ModelSpec) => unknown)(watched);
    } catch (error) {
      if (kitReads.size > 0) throw suiteModel();
      throw new UsageError(
        `--model ${shown}: the export is a function and it threw when called with the base ModelSpec: ${(error as Error).message}`,
      );
    }
    if (kitReads.size > 0) throw suiteModel();
    if (spec instanceof Promise) {
      throw new UsageError(
        `--model ${shown}: the export function returned a Promise; it must return the ModelSpec itself`,
      );
    }
  }
  if (spec === null || typeof spec !== "object" || Array.isArray(spec)) {
    throw new UsageError(
      `--model ${shown}: the model export is ${describe(spec)}, not a ModelSpec ${SPEC_SHAPE}`,
    );
  }
  const record = spec as Record<string, unknown>;
  const factory = FACTORY_KEYS.filter((k) => k in record);
  if (factory.length > 0) {
    throw new UsageError(
      `--model ${shown}: the module exports a test-suite ModelFactory (it has ${factory.join(", ")}), not a ModelSpec ${SPEC_SHAPE}; run it with nestvisor test --model ${shown}`,
    );
  }
  const unknown = Object.keys(record).filter((k) => !(SPEC_KEYS as readonly string[]).includes(k));
  if (unknown.length > 0) {
    throw new UsageError(
      `--model ${shown}: unknown ModelSpec member${unknown.length > 1 ? "s" : ""} ${unknown.join(", ")}; a ModelSpec is ${SPEC_SHAPE}`,
    );
  }
  const check = (ok: boolean, member: string, expected: string): void => {
    if (!ok)
      throw new UsageError(
        `--model ${shown}: ${member} is ${describe(record[member.split(".")[0]!])}, expected ${expected}`,
      );
  };
  const isRecord = (v: unknown): boolean => v !== null && typeof v === "object" && !Array.isArray(v);
  if (record.name !== undefined) check(typeof record.name === "string", "name", "a string");
  if (record.preset !== undefined) check(typeof record.preset === "string", "preset", "a preset name");
  if (record.flags !== undefined) check(isRecord(record.flags), "flags", "an object of flag: boolean");
  if (record.innerFlags !== undefined)
    check(isRecord(record.innerFlags), "innerFlags", "an object of flag: boolean");
  if (record.profile !== undefined)
    check(
      typeof record.profile === "string" || isRecord(record.profile),
      "profile",
      "a profile name or a parsed CostProfile",
    );
  if (record.policies !== undefined) {
    check(isRecord(record.policies), "policies", "an object of ModelPolicies");
    const policies = record.policies as Record<string, unknown>;
    const extra = Object.keys(policies).filter((k) => !(POLICY_KEYS as readonly string[]).includes(k));
    if (extra.length > 0) {
      throw new UsageError(
        `--model ${shown}: unknown polic${extra.length > 1 ? "ies" : "y"} ${extra.join(", ")}; ModelPolicies has ${POLICY_KEYS.join(", ")}`,
      );
    }
    const rootCache = policies.rootCache as Record<string, unknown> | undefined;
    if (
      rootCache !== undefined &&
      !(
        isRecord(rootCache) &&
        typeof rootCache.newPgd === "function" &&
        typeof rootCache.prevRoots === "number"
      )
    ) {
      throw new UsageError(
        `--model ${shown}: policies.rootCache is not a RootCachePolicy { name, prevRoots, newPgd() }`,
      );
    }
    for (const key of ["nestedSync", "reflection", "vmcsAccess"] as const) {
      const value = policies[key];
      if (value !== undefined && typeof value !== "function")
        throw new UsageError(`--model ${shown}: policies.${key} is ${describe(value)}, expected a function`);
    }
  }
  return record as ModelSpec;
}

/** Builds the model a module describes on top of `base`; bad presets, flags or profiles name the module. */
export function modelFromExports(
  exports: Readonly<Record<string, unknown>>,
  shown: string,
  base: ModelSpec,
): HypervisorModel {
  const spec = modelSpecOf(exports, shown, base);
  try {
    return modelFromModule({ default: spec }, shown, base);
  } catch (error) {
    if (error instanceof FlagError || error instanceof CostProfileError || error instanceof RangeError)
      throw new UsageError(`--model ${shown}: ${(error as Error).message.split("\n")[0]}`);
    throw error;
  }
}

/** Imports `shown` and builds its model on top of `base`. */
export async function loadModelModule(shown: string, cwd: string, base: ModelSpec): Promise<HypervisorModel> {
  return modelFromExports(await importModelModule(shown, cwd), shown, base);
}

/** The project's KVM model for a base spec (what runs when no --model is given). */
export function baseModel(base: ModelSpec): HypervisorModel {
  try {
    return createModel(base);
  } catch (error) {
    if (error instanceof FlagError) throw new UsageError(error.message);
    throw error;
  }
}

/**
 * A model's run that throws something other than "not modelled": the model (usually a user's
 * policy) failed, which is exit 1 with the model and the workload named.
 */
export function modelFailure(error: unknown, model: string, where: string): CliError {
  const message = error instanceof Error ? error.message : String(error);
  return new CliError(`model ${model} failed on ${where}: ${message}`, EXIT.FAILED);
}
