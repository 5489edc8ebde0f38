import type { RunResult } from "@nestvisor/hypervisor";

/**
 * One result as `--json` prints it (the row shape): every figure per iteration of the
 * workload (cycles and counters), `flags` the overrides applied on top of the preset, `model` the
 * name of the `--model` module's model (null for the project's KVM model as the preset configures
 * it), `profile` the cost profile's name. `compare`, `run` and `sweep` print the same shape.
 */
export interface ResultRow {
  readonly workload: string;
  readonly level: number;
  readonly preset: string;
  readonly model: string | null;
  readonly profile: string;
  readonly flags: Readonly<Record<string, boolean>>;
  readonly cyclesPerIteration: number;
  /** Cycles per iteration spent at each level ("L0", "L1", …). */
  readonly cyclesByLevel: Readonly<Record<string, number>>;
  /** Non-zero event counts per iteration, by event name. */
  readonly counters: Readonly<Record<string, number>>;
}

/** Per-iteration figures are rounded to 6 significant decimals so JSON stays readable. */
function tidy(value: number): number {
  return Number.isInteger(value) ? value : Number(value.toPrecision(9));
}

export function iterationsOf(result: RunResult): number {
  return Math.max(1, result.iterations);
}

/** What a row says about the run besides its figures. */
export interface RowLabel {
  readonly workload: string;
  readonly preset: string;
  readonly model: string | null;
  readonly profile: string;
  readonly flags: Readonly<Record<string, boolean>>;
}

export function resultRow(label: RowLabel, result: RunResult): ResultRow {
  const n = iterationsOf(result);
  const cyclesByLevel: Record<string, number> = {};
  for (let level = 0; level <= result.level; level++) {
    cyclesByLevel[`L${level}`] = tidy((result.attribution.byLevel[level] ?? 0) / n);
  }
  const counters: Record<string, number> = {};
  for (const event of result.attribution.events) counters[event.name] = tidy(event.count / n);
  return {
    workload: label.workload,
    level: result.level,
    preset: label.preset,
    model: label.model,
    profile: label.profile,
    flags: { ...label.flags },
    cyclesPerIteration: tidy(result.cyclesPerIteration),
    cyclesByLevel,
    counters,
  };
}
