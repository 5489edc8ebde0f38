import { CliError, EXIT, UsageError } from "../framework/errors";
import { type CellParams, gridId } from "./grid";
import type { RowsFile } from "./rows-file";
import { stableJson } from "./stable-json";
import { rowVersion, type SweepRow } from "./sweep-row";

/**
 * `nestvisor sweep merge`: shard outputs joined into one table. Every row must come from the same
 * grid; a cell found twice must be the same line (a deterministic simulation gives the same row
 * for the same cell — a difference means different versions or model modules); rows come out
 * sorted by cell index, and the cells no input holds are reported. A row must also sit at its own
 * index: a key found under two indices, or (when every cell is there) keys whose hash in index order
 * is not the grid's id, mean edited or mixed-up rows — bad input, as a row of another grid is.
 */
export interface MergeInput {
  readonly shown: string;
  readonly file: RowsFile;
}

export interface Merged {
  readonly grid: string;
  readonly gridCells: number;
  /** One row per cell present, by index. */
  readonly rows: readonly SweepRow[];
  /** Their lines as read (no newline), by index. */
  readonly lines: readonly string[];
  /** Indices of cells no input holds. */
  readonly missing: readonly number[];
  /** Rows found more than once (identical copies, kept once). */
  readonly duplicates: number;
}

export function mergeRows(inputs: readonly MergeInput[]): Merged {
  let grid: { id: string; cells: number; where: string } | undefined;
  let version: { row: SweepRow; where: string } | undefined;
  const byIndex = new Map<number, { row: SweepRow; line: string; where: string }>();
  const byKey = new Map<string, { index: number; where: string }>();
  let duplicates = 0;
  for (const input of inputs) {
    for (const { row, line, lineNumber } of input.file.rows) {
      const where = `${input.shown}:${lineNumber}`;
      if (grid === undefined) grid = { id: row.grid, cells: row.gridCells, where };
      else if (row.grid !== grid.id || row.gridCells !== grid.cells) {
        throw new UsageError(
          `${where} is a row of grid ${row.grid} (${row.gridCells} cells) but ${grid.where} of grid ${grid.id} (${grid.cells} cells): the files come from different sweeps`,
        );
      }
      // Rows of two versions may differ for reasons no check here sees: they are not mixed.
      if (version === undefined) version = { row, where };
      else if (row.nestvisor !== version.row.nestvisor) {
        throw new UsageError(
          `${where} was computed by ${rowVersion(row)} but ${version.where} by ${rowVersion(version.row)}: merge the rows of one version (run the other shards again with it)`,
        );
      }
      const sameKey = byKey.get(row.key);
      if (sameKey === undefined) byKey.set(row.key, { index: row.index, where });
      else if (sameKey.index !== row.index) {
        throw new UsageError(
          `${where} is cell ${row.index} but has the key of cell ${sameKey.index} at ${sameKey.where}: a row does not match its index (edited or mixed-up rows?)`,
        );
      }
      const seen = byIndex.get(row.index);
      if (seen === undefined) byIndex.set(row.index, { row, line, where });
      else if (seen.line === line) duplicates++;
      else {
        throw new CliError(
          `cell ${row.index} differs between ${seen.where} and ${where}: the same cell gave different rows (different nestvisor versions or model modules?)`,
          EXIT.FAILED,
        );
      }
    }
  }
  if (grid === undefined) throw new UsageError(`no rows in ${inputs.map((i) => i.shown).join(", ")}`);
  const indices = [...byIndex.keys()].sort((a, b) => a - b);
  const missing: number[] = [];
  for (let i = 0, j = 0; i < grid.cells; i++) {
    if (indices[j] === i) j++;
    else missing.push(i);
  }
  // With every cell present the keys in index order must hash to the grid's id (grid.ts), which
  // catches rows moved to other indices (their keys no longer in the grid's order). A hash does not
  // say which row moved, so the message names the files.
  if (missing.length === 0) {
    const id = gridId(indices.map((i) => byIndex.get(i)!.row.key));
    if (id !== grid.id) {
      throw new UsageError(
        `${inputs
          .filter((i) => i.file.rows.length > 0)
          .map((i) => i.shown)
          .join(
            ", ",
          )}: the keys of the ${grid.cells} cells in index order give grid ${id}, not the rows' grid ${grid.id}: some row does not match its index (edited or mixed-up rows?)`,
      );
    }
  }
  return {
    grid: grid.id,
    gridCells: grid.cells,
    rows: indices.map((i) => byIndex.get(i)!.row),
    lines: indices.map((i) => byIndex.get(i)!.line),
    missing,
    duplicates,
  };
}

/** "3, 7, 9–12, 40 and 5 more" for a sorted list of indices. */
export function describeIndices(indices: readonly number[], limit = 8): string {
  const ranges: string[] = [];
  let shown = 0;
  let i = 0;
  while (i < indices.length && ranges.length < limit) {
    let j = i;
    while (j + 1 < indices.length && indices[j + 1] === indices[j]! + 1) j++;
    ranges.push(j === i ? `${indices[i]}` : `${indices[i]}–${indices[j]}`);
    shown += j - i + 1;
    i = j + 1;
  }
  const rest = indices.length - shown;
  return `${ranges.join(", ")}${rest > 0 ? ` and ${rest} more` : ""}`;
}

export interface GuestMismatch {
  /** The workload, level, profile, iterations and parameters the cells share. */
  readonly what: string;
  readonly a: number;
  readonly b: number;
}

/**
 * Cells that ran the same workload (same level, profile, iterations and parameters) under different
 * presets, models or flags, and whose guest saw different results: an optimization must not change
 * what a guest observes, so each is a failed check (as in `compare`).
 */
export function guestMismatches(rows: readonly SweepRow[]): GuestMismatch[] {
  const first = new Map<string, SweepRow>();
  const out: GuestMismatch[] = [];
  const reported = new Set<string>();
  for (const row of rows) {
    if (row.guest === null) continue;
    const p = JSON.parse(row.key) as CellParams;
    const group = stableJson({
      workload: p.workload,
      level: p.level,
      profile: p.profile,
      iterations: p.iterations,
      params: p.params,
    });
    const seen = first.get(group);
    if (seen === undefined) first.set(group, row);
    else if (seen.guest !== row.guest && !reported.has(`${group}/${row.guest}`)) {
      reported.add(`${group}/${row.guest}`);
      out.push({ what: `${p.workload} at L${p.level}`, a: seen.index, b: row.index });
    }
  }
  return out;
}
