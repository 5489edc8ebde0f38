import {
  type CostProfile,
  type HypervisorFlagName,
  type HypervisorFlags,
  OPTIMIZATION_FLAG_NAMES,
  type RunResult,
  runWorkload,
} from "@nestvisor/hypervisor";
import type { Progress } from "../framework/progress";
import { presetFlags } from "./flag-args";
import { buildProgram, type WorkloadRef, type WorkloadSettings } from "./workload-ref";

/**
 * The runs of `nestvisor compare`: every workload at every level under every variant. A variant
 * is a preset with flag overrides; with --ablate each preset is followed by one variant per
 * optimization flag flipped alone. Variants of one group are compared with the group's first.
 */
export interface Variant {
  readonly label: string;
  readonly preset: string;
  /** Overrides applied on top of the preset (the user's --flag ones and the ablated flag). */
  readonly overrides: Readonly<Partial<Record<HypervisorFlagName, boolean>>>;
  readonly flags: HypervisorFlags;
  /** The flag this variant flips (ablation), if any. */
  readonly flipped?: HypervisorFlagName;
  /** Index of the group; the first variant of a group is its baseline. */
  readonly group: number;
}

export function compareVariants(
  presets: readonly string[],
  overrides: Readonly<Partial<Record<HypervisorFlagName, boolean>>>,
  ablate: boolean,
): Variant[] {
  const variants: Variant[] = [];
  presets.forEach((preset, i) => {
    const flags = presetFlags(preset, overrides);
    const group = ablate ? i : 0;
    variants.push({ label: preset, preset, overrides, flags, group });
    if (!ablate) return;
    for (const flag of OPTIMIZATION_FLAG_NAMES) {
      if (flag in overrides) continue;
      const flipped = { ...overrides, [flag]: !flags[flag] };
      variants.push({
        label: `${preset} ${flag}=${flags[flag] ? "off" : "on"}`,
        preset,
        overrides: flipped,
        flags: presetFlags(preset, flipped),
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

/** Configurations the model refuses with a RangeError saying they are not modelled. */
function notModelled(error: unknown): string | undefined {
  return error instanceof RangeError && /not modelled/.test(error.message) ? error.message : undefined;
}

export interface MatrixOptions {
  readonly settings: Omit<WorkloadSettings, "level">;
  readonly profile: CostProfile;
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
          const result = runWorkload({ program, config: variant.flags, profile: options.profile });
          cells.push({ workload: w, level, variant: v, result });
        } catch (error) {
          const why = notModelled(error);
          if (why === undefined) throw error;
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
function workloadView(result: RunResult): string {
  const s = result.snapshot;
  return JSON.stringify([s.readDigest, s.guestFaults, s.operations, s.iterations, s.gprs, s.memoryDigest]);
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
