import {
  type CostProfile,
  HYPERVISOR_FLAG_NAMES,
  type HypervisorFlagName,
  type HypervisorFlags,
  type HypervisorModel,
  type ModelSpec,
  OPTIMIZATION_FLAG_NAMES,
  type RunResult,
} from "@nestvisor/hypervisor";
import type { Progress } from "../framework/progress";
import { flagSettings, presetFlags } from "./flag-args";
import { baseModel, modelFailure } from "./model-module";
import { notModelledMessage } from "./not-modelled";
import { buildProgram, type WorkloadRef, type WorkloadSettings } from "./workload-ref";

/**
 * The runs of `nestvisor compare`: every workload at every level under every variant. A variant
 * is a model: a preset with flag overrides, or a `--model` module's model built on top of that
 * preset. With --ablate each preset is followed by one variant per optimization flag flipped
 * alone; each --vs adds one variant per preset with its flags set (a what-if, e.g. a switch). With
 * --ablate, --model or --vs the variants form one group per preset (the preset first, then its
 * models, its what-ifs, then its flipped flags), each compared with its preset; otherwise one group.
 */
export interface Variant {
  readonly label: string;
  /** The label within its group: the flipped flag or the model's name (the label without the preset). */
  readonly short: string;
  /** The preset the model runs (a module may set its own). */
  readonly preset: string;
  /** Overrides applied on top of the preset (the user's --flag ones, the ablated flag, a module's flags). */
  readonly overrides: Readonly<Partial<Record<HypervisorFlagName, boolean>>>;
  readonly flags: HypervisorFlags;
  readonly model: HypervisorModel;
  /** The --model module's model name, or null for the project's KVM model as the preset sets it. */
  readonly modelName: string | null;
  /** The flag this variant flips (ablation), if any. */
  readonly flipped?: HypervisorFlagName;
  /** Index of the group; the first variant of a group is its baseline. */
  readonly group: number;
}

/** A `--model` module, ready to build its model on top of a base spec. */
export interface ModelSource {
  /** The path as the user gave it. */
  readonly shown: string;
  build(base: ModelSpec): HypervisorModel;
}

/** The flags a model runs with, as overrides on top of its preset (the user's ones always listed). */
export function modelOverrides(
  model: HypervisorModel,
  overrides: Readonly<Partial<Record<HypervisorFlagName, boolean>>>,
): Partial<Record<HypervisorFlagName, boolean>> {
  const out: Partial<Record<HypervisorFlagName, boolean>> = { ...overrides };
  const reference = presetFlags(model.preset, overrides);
  for (const name of HYPERVISOR_FLAG_NAMES)
    if (model.config[name] !== reference[name]) out[name] = model.config[name];
  return out;
}

export function compareVariants(
  presets: readonly string[],
  overrides: Readonly<Partial<Record<HypervisorFlagName, boolean>>>,
  ablate: boolean,
  profile: CostProfile,
  models: readonly ModelSource[] = [],
  whatIfs: readonly Readonly<Partial<Record<HypervisorFlagName, boolean>>>[] = [],
): Variant[] {
  const variants: Variant[] = [];
  const grouped = ablate || models.length > 0 || whatIfs.length > 0;
  presets.forEach((preset, i) => {
    const base: ModelSpec = { preset, flags: overrides, profile };
    const model = baseModel(base);
    const group = grouped ? i : 0;
    variants.push({
      label: preset,
      short: preset,
      preset,
      overrides,
      flags: model.config,
      model,
      modelName: null,
      group,
    });
    for (const source of models) {
      const custom = source.build(base);
      const label = presets.length > 1 ? `${custom.preset} ${custom.name}` : custom.name;
      variants.push({
        label,
        short: custom.name,
        preset: custom.preset,
        overrides: modelOverrides(custom, overrides),
        flags: custom.config,
        model: custom,
        modelName: custom.name,
        group,
      });
    }
    for (const whatIf of whatIfs) {
      const setting = flagSettings(whatIf).join(",");
      const changed = model.with({ flags: whatIf });
      variants.push({
        label: `${preset} ${setting}`,
        short: setting,
        preset,
        overrides: { ...overrides, ...whatIf },
        flags: changed.config,
        model: changed,
        modelName: null,
        group,
      });
    }
    if (!ablate) return;
    for (const flag of OPTIMIZATION_FLAG_NAMES) {
      if (flag in overrides) continue;
      const flipped = { ...overrides, [flag]: !model.config[flag] };
      const setting = `${flag}=${model.config[flag] ? "off" : "on"}`;
      const flippedModel = model.with({ flags: { [flag]: !model.config[flag] } });
      variants.push({
        label: `${preset} ${setting}`,
        short: setting,
        preset,
        overrides: flipped,
        flags: flippedModel.config,
        model: flippedModel,
        modelName: null,
        flipped: flag,
        group,
      });
    }
  });
  return variants;
}

export interface Cell {
  readonly workload: number;
  readonly level: number;
  readonly variant: number;
  /** Null when the model does not cover this configuration (`skipped` says why). */
  readonly result: RunResult | null;
  readonly skipped?: string;
}

export interface Matrix {
  readonly workloads: readonly WorkloadRef[];
  readonly levels: readonly number[];
  readonly variants: readonly Variant[];
  readonly cells: readonly Cell[];
  cell(workload: number, level: number, variant: number): Cell | undefined;
}

export interface MatrixOptions {
  readonly settings: Omit<WorkloadSettings, "level">;
  readonly progress?: Progress;
}

export function runMatrix(
  workloads: readonly WorkloadRef[],
  levels: readonly number[],
  variants: readonly Variant[],
  options: MatrixOptions,
): Matrix {
  const cells: Cell[] = [];
  const total = workloads.length * levels.length * variants.length;
  options.progress?.start(total);
  workloads.forEach((ref, w) => {
    for (const level of levels) {
      const program = buildProgram(ref, { ...options.settings, level });
      variants.forEach((variant, v) => {
        options.progress?.tick(cells.length, `${ref.name} L${level} ${variant.label}`);
        try {
          const result = variant.model.run(program);
          cells.push({ workload: w, level, variant: v, result });
        } catch (error) {
          const why = notModelledMessage(error);
          if (why === undefined) {
            if (variant.modelName === null) throw error;
            throw modelFailure(error, variant.modelName, `${ref.name} at L${level}`);
          }
          cells.push({ workload: w, level, variant: v, result: null, skipped: why });
        }
      });
    }
  });
  options.progress?.finish();
  const index = new Map(cells.map((c) => [`${c.workload}/${c.level}/${c.variant}`, c]));
  return {
    workloads,
    levels,
    variants,
    cells,
    cell: (workload, level, variant) => index.get(`${workload}/${level}/${variant}`),
  };
}

/** What the workload itself can observe (DESIGN.md §2.3), without the guest hypervisors' vmcs12. */
export function workloadView(result: RunResult): string {
  const s = result.snapshot;
  return JSON.stringify([
    s.readDigest,
    s.guestFaults,
    s.operations,
    s.iterations,
    s.gprs,
    s.memoryDigest,
    s.deviceDigest,
  ]);
}

export interface SnapshotMismatch {
  readonly workload: string;
  readonly level: number;
  readonly a: string;
  readonly b: string;
}

/**
 * Every (workload, level) whose guest saw different results under two variants: an optimization
 * must never change what a guest observes, so any entry is a failed check.
 */
export function snapshotMismatches(matrix: Matrix): SnapshotMismatch[] {
  const out: SnapshotMismatch[] = [];
  matrix.workloads.forEach((ref, w) => {
    for (const level of matrix.levels) {
      let first: { label: string; view: string } | undefined;
      matrix.variants.forEach((variant, v) => {
        const result = matrix.cell(w, level, v)?.result;
        if (!result) return;
        const view = workloadView(result);
        if (first === undefined) first = { label: variant.label, view };
        else if (view !== first.view)
          out.push({ workload: ref.name, level, a: first.label, b: variant.label });
      });
    }
  });
  return out;
}
