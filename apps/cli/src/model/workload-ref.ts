import { existsSync } from "node:fs";
import { resolve } from "node:path";
import {
  BUILTIN_WORKLOAD_NAMES,
  type BuiltinWorkload,
  builtinWorkload,
  findBuiltinWorkload,
  loadWorkload,
  WorkloadBuildError,
  WorkloadFileError,
  type WorkloadLevel,
  type WorkloadProgram,
} from "@nestvisor/hypervisor";
import { UsageError } from "../framework/errors";
import { didYouMean } from "../framework/suggest";
import { readTextFile } from "./files";
import { MAX_ITERATIONS } from "./model-options";

/**
 * A workload named on the command line: a built-in by name, or a YAML/JSON workload file by path.
 * Built-ins take parameters (`--param name=value`, `--level`, `--iterations`); a file sets its own
 * loops, and only its level can be overridden.
 */
export type WorkloadRef =
  | { readonly kind: "builtin"; readonly name: string; readonly builtin: BuiltinWorkload }
  | {
      readonly kind: "file";
      readonly name: string;
      readonly path: string;
      readonly program: WorkloadProgram;
    };

/** What the user asked for, on top of the workload's defaults. */
export interface WorkloadSettings {
  readonly level?: number;
  readonly iterations?: number;
  readonly params?: Readonly<Record<string, string>>;
}

const FILE_PATTERN = /[/\\]|\.(ya?ml|json)$/i;

/** Resolves a name or path; an unknown name or an unreadable or invalid file is a usage error. */
export function resolveWorkload(reference: string, cwd: string): WorkloadRef {
  if (BUILTIN_WORKLOAD_NAMES.includes(reference)) {
    return { kind: "builtin", name: reference, builtin: findBuiltinWorkload(reference) };
  }
  const path = resolve(cwd, reference);
  if (FILE_PATTERN.test(reference) || existsSync(path)) {
    const text = readTextFile(path, reference, "workload (YAML or JSON)");
    try {
      const program = loadWorkload(text, reference);
      return { kind: "file", name: program.name, path: reference, program };
    } catch (error) {
      throw workloadUsageError(error);
    }
  }
  throw new UsageError(
    `unknown workload "${reference}"${didYouMean(reference, BUILTIN_WORKLOAD_NAMES)}; built-ins: ${BUILTIN_WORKLOAD_NAMES.join(", ")} (or a .yaml/.json file)`,
  );
}

/** A model error about a workload as a usage error: the first problem, and how many more. */
export function workloadUsageError(error: unknown): unknown {
  if (error instanceof WorkloadFileError) {
    const first = error.message.split("\n")[0] ?? error.message;
    const more = error.problems.length > 1 ? ` (and ${error.problems.length - 1} more problems)` : "";
    return new UsageError(`${first}${more}`);
  }
  if (error instanceof WorkloadBuildError) {
    const first = error.problems[0];
    const text =
      first === undefined
        ? error.message
        : first.path === ""
          ? first.message
          : `${first.path}: ${first.message}`;
    const more = error.problems.length > 1 ? ` (and ${error.problems.length - 1} more problems)` : "";
    return new UsageError(`workload "${error.workload}": ${text}${more}`);
  }
  return error;
}

/** Whether the workload takes an `iterations` parameter. */
export function takesIterations(ref: WorkloadRef): boolean {
  return ref.kind === "builtin" && "iterations" in ref.builtin.parameters;
}

/** The compiled program for these settings. */
export function buildProgram(ref: WorkloadRef, settings: WorkloadSettings): WorkloadProgram {
  if (ref.kind === "file") {
    if (settings.iterations !== undefined) {
      throw new UsageError(
        `--iterations applies to built-in workloads; ${ref.path} sets its own loop counts`,
      );
    }
    if (settings.params !== undefined && Object.keys(settings.params).length > 0) {
      throw new UsageError(`--param applies to built-in workloads, not to ${ref.path}`);
    }
    if (settings.level === undefined || settings.level === ref.program.setup.level) return ref.program;
    return { ...ref.program, setup: { ...ref.program.setup, level: settings.level as WorkloadLevel } };
  }
  const parameters: Record<string, string | number> = { ...settings.params };
  if (settings.level !== undefined) parameters.level = settings.level;
  if (settings.iterations !== undefined && takesIterations(ref)) parameters.iterations = settings.iterations;
  let program: WorkloadProgram;
  try {
    program = builtinWorkload(ref.name, parameters);
  } catch (error) {
    throw workloadUsageError(error);
  }
  // The library takes up to 2^32 - 1 iterations; the CLI keeps --param to its own --iterations cap,
  // which a run finishes in minutes.
  const iterations = parameters.iterations;
  if (iterations !== undefined && Number(iterations) > MAX_ITERATIONS) {
    throw new UsageError(
      `--param iterations=${iterations}: at most ${MAX_ITERATIONS} iterations (the limit of --iterations)`,
    );
  }
  return program;
}

/** `--param name=value` items as a record (the built-in checks names and values). */
export function parseParams(items: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items) {
    const eq = item.indexOf("=");
    if (eq <= 0) throw new UsageError(`--param "${item}" is not name=value`);
    out[item.slice(0, eq).trim()] = item.slice(eq + 1).trim();
  }
  return out;
}
