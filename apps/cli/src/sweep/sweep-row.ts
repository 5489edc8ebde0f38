import type { ResultRow } from "../model/result-row";
import { VERSION } from "../version";
import { MAX_CELLS } from "./grid";

/**
 * One line of a sweep's JSON-lines output: the row `compare --json` prints (workload, level,
 * preset, model, profile, flags, cyclesPerIteration, cyclesByLevel, counters — every figure per
 * iteration) with the cell around it: the grid's id and size, the cell's index and key (the stable
 * JSON of its parameters), the nestvisor version that computed it (rows of two versions are not
 * mixed: resuming and merging refuse them), and a digest of what the workload observed (`guest`) so
 * that runs whose guest saw different results can be found. A configuration the model does not cover has null
 * figures and says why in `notModelled`.
 */
export interface SweepRow {
  readonly grid: string;
  readonly gridCells: number;
  /** The nestvisor version that computed the row (absent in rows of versions before it was recorded). */
  readonly nestvisor?: string;
  readonly index: number;
  readonly key: string;
  readonly workload: string;
  readonly level: number;
  readonly preset: string;
  readonly model: string | null;
  readonly profile: string;
  readonly flags: Readonly<Record<string, boolean>>;
  readonly cyclesPerIteration: number | null;
  readonly cyclesByLevel: Readonly<Record<string, number>>;
  readonly counters: Readonly<Record<string, number>>;
  /** 16 hex digits of SHA-256 over the workload's view of the run (null when not modelled). */
  readonly guest: string | null;
  readonly notModelled?: string;
}

export interface CellFrame {
  readonly grid: string;
  readonly gridCells: number;
  readonly index: number;
  readonly key: string;
}

/** A row from a run's result row. */
export function sweepRow(frame: CellFrame, row: ResultRow, guest: string): SweepRow {
  return {
    grid: frame.grid,
    gridCells: frame.gridCells,
    nestvisor: VERSION,
    index: frame.index,
    key: frame.key,
    ...row,
    guest,
  };
}

/** A row for a configuration the model does not cover. */
export function notModelledRow(
  frame: CellFrame,
  label: Omit<ResultRow, "level" | "cyclesPerIteration" | "cyclesByLevel" | "counters">,
  level: number,
  why: string,
): SweepRow {
  return {
    grid: frame.grid,
    gridCells: frame.gridCells,
    nestvisor: VERSION,
    index: frame.index,
    key: frame.key,
    workload: label.workload,
    level,
    preset: label.preset,
    model: label.model,
    profile: label.profile,
    flags: label.flags,
    cyclesPerIteration: null,
    cyclesByLevel: {},
    counters: {},
    guest: null,
    notModelled: why,
  };
}

/** How a row's version reads in messages. */
export function rowVersion(row: SweepRow): string {
  return row.nestvisor === undefined ? "an unrecorded version" : `nestvisor ${row.nestvisor}`;
}

/** The line written for a row (no trailing newline). Key order is the interface's, so equal rows are equal text. */
export function rowLine(row: SweepRow): string {
  return JSON.stringify(row);
}

const NUMBER_OR_NULL = (v: unknown): boolean => v === null || typeof v === "number";

/**
 * A cell's key is the stable JSON of its parameters (grid.ts): an object with at least the workload
 * and the level, which merging reads back (guest-visible differences are grouped by workload).
 */
function isCellKey(key: string): boolean {
  let value: unknown;
  try {
    value = JSON.parse(key);
  } catch {
    return false;
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) return false;
  const params = value as Record<string, unknown>;
  return typeof params.workload === "string" && typeof params.level === "number";
}

/** Checks a parsed line is a sweep row; returns what is wrong, or undefined. */
export function rowProblem(value: unknown): string | undefined {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return "not a JSON object";
  const r = value as Record<string, unknown>;
  if (typeof r.grid !== "string") return 'no "grid" (not a nestvisor sweep row)';
  if (typeof r.gridCells !== "number" || !Number.isSafeInteger(r.gridCells) || r.gridCells < 1)
    return '"gridCells" is not a positive integer';
  // No sweep has more cells (grid.ts); merging lists the missing ones, so a larger count is refused.
  if (r.gridCells > MAX_CELLS)
    return `"gridCells" is ${r.gridCells}, more than a sweep grid has (at most ${MAX_CELLS})`;
  if (typeof r.index !== "number" || !Number.isSafeInteger(r.index) || r.index < 0 || r.index >= r.gridCells)
    return `"index" is not an integer in [0, ${r.gridCells})`;
  if (r.nestvisor !== undefined && typeof r.nestvisor !== "string")
    return '"nestvisor" is not a version string';
  if (typeof r.key !== "string") return '"key" is not a string';
  if (!isCellKey(r.key)) return '"key" is not the JSON of a cell\'s parameters';
  if (typeof r.workload !== "string" || typeof r.preset !== "string" || typeof r.profile !== "string")
    return "workload, preset or profile is not a string";
  if (typeof r.level !== "number") return '"level" is not a number';
  if (!NUMBER_OR_NULL(r.cyclesPerIteration)) return '"cyclesPerIteration" is not a number';
  for (const member of ["flags", "cyclesByLevel", "counters"])
    if (r[member] === null || typeof r[member] !== "object") return `"${member}" is not an object`;
  return undefined;
}
