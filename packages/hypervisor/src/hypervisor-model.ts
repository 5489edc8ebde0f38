import type { Meter } from "@nestvisor/vmx";
import { CostAccumulator } from "./cost-accumulator";
import type { CostProfile } from "./cost-profile";
import { costProfile } from "./cost-profiles";
import { compileCostTable } from "./cost-table";
import { FlagError, type FlagOverrides, type HypervisorFlags, withFlags } from "./hypervisor-flags";
import { DEFAULT_PRESET_NAME, resolveFlags } from "./kernel-presets";
import { Machine } from "./machine";
import type { ModelPolicies } from "./model-policies";
import { type RunResult, runWorkload } from "./run-workload";
import type { Tracer } from "./tracer";
import type { WorkloadProgram } from "./workload-ops";

/**
 * What a model is made of (issue: composable hypervisor models): a kernel preset, flags on top of
 * it (for L0 and, when they differ, for the guest hypervisors), a cost profile and replacement
 * policies. Flags and presets are part of the same description as the policies: the preset's flags
 * configure KVM's default policies, and a policy given here replaces the default outright.
 *
 * A user's model module (`--model <module>` of the CLI and of the conformance suite) exports one of
 * these as its default export (or as `model`).
 */
export interface ModelSpec {
  /** For reports; default derived from the preset and policies. */
  readonly name?: string;
  /** Kernel preset (default `v6.12`). */
  readonly preset?: string;
  /** Flags on top of the preset, for every level. */
  readonly flags?: FlagOverrides;
  /** Flags for the guest hypervisors only, on top of `flags` (a guest hypervisor is its own kernel). */
  readonly innerFlags?: FlagOverrides;
  /** Cost profile: a built-in name or a parsed profile (default `intel-server`). */
  readonly profile?: string | CostProfile;
  readonly policies?: ModelPolicies;
}

/** A model ready to run workloads. */
export interface HypervisorModel {
  readonly name: string;
  readonly preset: string;
  /** L0's flags. */
  readonly config: HypervisorFlags;
  /** The guest hypervisors' flags. */
  readonly innerConfig: HypervisorFlags;
  readonly profile: CostProfile;
  readonly policies: ModelPolicies;
  /** Boots a machine for `program` (its level decides how many KVMs). */
  createMachine(
    program: WorkloadProgram,
    options?: { readonly meter?: Meter; readonly tracer?: Tracer },
  ): Machine;
  /** Boots, runs and reports (see `runWorkload`). */
  run(program: WorkloadProgram, options?: { readonly tracer?: Tracer }): RunResult;
  /** The same model with more flags (and optionally another preset or profile) applied. */
  with(spec: ModelSpec): HypervisorModel;
}

/** Assembles a model from its description with one call; every part defaults to today's KVM. */
export function createModel(spec: ModelSpec = {}): HypervisorModel {
  const preset = spec.preset ?? DEFAULT_PRESET_NAME;
  const config = resolveFlags(preset, spec.flags ?? {});
  const innerConfig = spec.innerFlags === undefined ? config : withFlags(config, spec.innerFlags);
  const profile = typeof spec.profile === "object" ? spec.profile : costProfile(spec.profile);
  const policies = spec.policies ?? {};
  const custom = Object.keys(policies).filter((k) => policies[k as keyof ModelPolicies] !== undefined);
  const name = spec.name ?? (custom.length === 0 ? `kvm-${preset}` : `kvm-${preset}+${custom.join("+")}`);
  const withPolicies = Object.keys(policies).length === 0 ? {} : { policies };
  const withInner = innerConfig === config ? {} : { innerConfig };
  return Object.freeze({
    name,
    preset,
    config,
    innerConfig,
    profile,
    policies,
    createMachine(program, options = {}) {
      return new Machine({
        program,
        config,
        ...withInner,
        meter: options.meter ?? new CostAccumulator(compileCostTable(profile)),
        ...(options.tracer === undefined ? {} : { tracer: options.tracer }),
        ...withPolicies,
      });
    },
    run(program, options = {}) {
      return runWorkload({
        program,
        config,
        ...withInner,
        profile,
        ...(options.tracer === undefined ? {} : { tracer: options.tracer }),
        ...withPolicies,
      });
    },
    with(more: ModelSpec) {
      return createModel({
        ...spec,
        ...more,
        flags: { ...(spec.flags ?? {}), ...(more.flags ?? {}) },
        ...(spec.innerFlags === undefined && more.innerFlags === undefined
          ? {}
          : { innerFlags: { ...(spec.innerFlags ?? {}), ...(more.innerFlags ?? {}) } }),
        policies: { ...policies, ...(more.policies ?? {}) },
      });
    },
  } satisfies HypervisorModel);
}

/**
 * The model a user's module describes: its default export (or `model` export) is a `ModelSpec`, or a
 * function that receives the base spec (from command-line options) and returns one. Errors name
 * `origin` (the module path) and what is wrong.
 */
export function modelFromModule(
  exports: Readonly<Record<string, unknown>>,
  origin: string,
  base: ModelSpec = {},
): HypervisorModel {
  const candidate = exports.default ?? exports.model;
  if (candidate === undefined) {
    throw new FlagError(
      `${origin}: a model module must export a ModelSpec (or a function returning one) as default or as "model"`,
    );
  }
  const spec = typeof candidate === "function" ? (candidate as (b: ModelSpec) => unknown)(base) : candidate;
  if (spec === null || typeof spec !== "object") {
    throw new FlagError(
      `${origin}: the model export is ${spec === null ? "null" : typeof spec}, not a ModelSpec object`,
    );
  }
  const s = spec as ModelSpec;
  return createModel({
    ...base,
    ...s,
    flags: { ...(base.flags ?? {}), ...(s.flags ?? {}) },
    policies: { ...(base.policies ?? {}), ...(s.policies ?? {}) },
  });
}
