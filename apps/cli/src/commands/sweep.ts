import { closeSync, existsSync, fsyncSync, ftruncateSync, openSync, statSync, writeSync } from "node:fs";
import { availableParallelism } from "node:os";
import { resolve } from "node:path";
import { FlagError, type HypervisorFlagName, parseFlagAssignment } from "@nestvisor/hypervisor";
import type { Command, CommandContext } from "../framework/command";
import { EXIT, UsageError } from "../framework/errors";
import { formatNumber } from "../framework/format";
import {
  booleanOption,
  integerOption,
  listOption,
  parseInteger,
  repeatedOption,
  stringOption,
} from "../framework/options";
import { writeLines } from "../framework/output";
import { ProgressBar } from "../framework/progress-bar";
import { renderTable } from "../framework/table";
import { checkPresets, flagSettings, parseFlagOptions } from "../model/flag-args";
import { importModelModule, modelFromExports } from "../model/model-module";
import {
  flagOption,
  iterationsOption,
  MAX_ITERATIONS,
  modelOption,
  paramOption,
} from "../model/model-options";
import { parseParams } from "../model/workload-ref";
import { CellRunner } from "../sweep/cell-runner";
import {
  crossFlagSets,
  expandGrid,
  type FlagSet,
  type Grid,
  type GridCell,
  type GridSpec,
  inShard,
  parseShard,
  type Shard,
  varyFlagSets,
} from "../sweep/grid";
import { describeIndices, guestMismatches, mergeRows } from "../sweep/merge";
import { writeMerged } from "../sweep/merge-output";
import { BatchedWriter, checkOutputPath, writeFailure, writeWholeFile } from "../sweep/output-file";
import { readRowsFile } from "../sweep/rows-file";
import { rowLine, rowVersion, type SweepRow } from "../sweep/sweep-row";
import { runPool } from "../sweep/worker-pool";
import { VERSION } from "../version";
import { DEFAULT_COMPARE_LEVELS, DEFAULT_COMPARE_PRESETS, DEFAULT_COMPARE_WORKLOADS } from "./compare";

/**
 * `nestvisor sweep`: a grid of runs on every core, one JSON line per cell, resumable and shardable;
 * `nestvisor sweep merge` joins shard outputs. The grid and the row are described in grid.ts and
 * sweep-row.ts; the user's guide is docs/guides/sweeps.md.
 */

const DEFAULT_PROFILE = "intel-server";
const LABEL = "nestvisor sweep";
/** Progress lines in a log: every 10 s, or every second when asked for (--progress, NESTVISOR_PROGRESS=1). */
const LOG_INTERVAL_MS = 10_000;
const FORCED_INTERVAL_MS = 1_000;

/**
 * The most worker threads --jobs starts: each holds its own copy of the model (about 20 MB), and
 * the cells are CPU-bound, so more workers than a few per core only use memory.
 */
export function maxJobs(): number {
  return Math.max(64, 4 * availableParallelism());
}

function flagSetOption(text: string): FlagSet {
  const trimmed = text.trim();
  if (trimmed === "" || trimmed === "none" || trimmed === "preset") return {};
  return parseFlagOptions([trimmed]);
}

function flagNames(names: readonly string[]): HypervisorFlagName[] {
  return names.map((name) => {
    try {
      return parseFlagAssignment(`${name}=on`).name;
    } catch (error) {
      if (error instanceof FlagError) throw new UsageError(`--vary: ${error.message}`);
      throw error;
    }
  });
}

interface Plan {
  readonly grid: Grid;
  readonly shard: Shard | undefined;
  /** This shard's cells, by index. */
  readonly mine: readonly GridCell[];
}

/** Reads the grid options, checks every value (workloads, levels, presets, flags, profiles, models) and expands the grid. */
async function plan(ctx: CommandContext): Promise<Plan> {
  const workloads = [...new Set(listOption(ctx.values, "workloads") ?? DEFAULT_COMPARE_WORKLOADS)];
  const levels = [
    ...new Set(
      (listOption(ctx.values, "levels") ?? DEFAULT_COMPARE_LEVELS.map(String)).map((l) =>
        parseInteger(l.replace(/^L/i, ""), "a level in --levels", 1, 3),
      ),
    ),
  ];
  const presets = [
    ...new Set(checkPresets(listOption(ctx.values, "presets") ?? [...DEFAULT_COMPARE_PRESETS])),
  ];
  const profiles = [...new Set(listOption(ctx.values, "profiles") ?? [DEFAULT_PROFILE])];
  const modelPaths = [...new Set(repeatedOption(ctx.values, "model"))];
  const common = parseFlagOptions(repeatedOption(ctx.values, "flag"));
  const sets = repeatedOption(ctx.values, "flags").map(flagSetOption);
  const vary = listOption(ctx.values, "vary");
  const flagSets = crossFlagSets(
    sets.length === 0 ? [{}] : sets,
    vary === undefined ? [{}] : varyFlagSets(flagNames(vary)),
  );
  const iterations = integerOption(ctx.values, "iterations", 1, MAX_ITERATIONS) ?? null;
  const params = parseParams(repeatedOption(ctx.values, "param"));
  const shardText = stringOption(ctx.values, "shard");
  const shard = shardText === undefined ? undefined : parseShard(shardText);

  // Every value is checked here, before any worker starts: a bad one is one line and exit 2.
  const runner = new CellRunner(ctx.cwd);
  const profileObjects = profiles.map((p) => runner.profile(p));
  for (const workload of workloads) {
    for (const level of levels) {
      runner.program({
        index: 0,
        key: "",
        params: {
          workload,
          level,
          preset: presets[0]!,
          profile: profiles[0]!,
          model: null,
          flags: {},
          iterations,
          params,
        },
      });
    }
  }
  for (const shown of modelPaths) {
    const exports = await importModelModule(shown, ctx.cwd);
    for (const preset of presets)
      for (const profile of profileObjects)
        modelFromExports(exports, shown, { preset, flags: common, profile });
  }
  const spec: GridSpec = {
    workloads,
    levels,
    presets,
    profiles,
    models: [null, ...modelPaths],
    common,
    flagSets,
    ablate: booleanOption(ctx.values, "ablate"),
    iterations,
    params,
  };
  const grid = expandGrid(spec);
  return { grid, shard, mine: grid.cells.filter((c) => inShard(c.index, shard)) };
}

/**
 * The rows already in `--out` for this grid; a truncated last line is cut off so that it is written
 * again — except under --dry-run, which changes nothing and only says what a run would drop.
 */
function resumeFrom(
  ctx: CommandContext,
  path: string,
  shown: string,
  grid: Grid,
  dryRun: boolean,
): Map<number, SweepRow> {
  const done = new Map<number, SweepRow>();
  if (!existsSync(path)) return done;
  const file = readRowsFile(path, shown);
  for (const { row, lineNumber } of file.rows) {
    if (row.grid !== grid.id || row.gridCells !== grid.cells.length) {
      throw new UsageError(
        `${shown}:${lineNumber} is a row of another grid (${row.grid}, ${row.gridCells} cells; this grid is ${grid.id}, ${grid.cells.length} cells): use another --out or delete the file`,
      );
    }
    if (grid.cells[row.index]!.key !== row.key)
      throw new UsageError(`${shown}:${lineNumber}: cell ${row.index} has another key than this grid's`);
    if (row.nestvisor !== VERSION) {
      throw new UsageError(
        `${shown}:${lineNumber} was computed by ${rowVersion(row)}, this is nestvisor ${VERSION}: use another --out, or delete the file to run the grid again`,
      );
    }
    done.set(row.index, row);
  }
  if (file.truncated && dryRun) {
    const cut = statSync(path).size - file.completeBytes;
    ctx.warn(
      `${shown}: a truncated last line (${formatNumber(cut)} bytes, an interrupted run) would be dropped and its cell run again; --dry-run leaves the file as it is`,
    );
  } else if (file.truncated) {
    const fd = openSync(path, "r+");
    try {
      ftruncateSync(fd, file.completeBytes);
    } finally {
      closeSync(fd);
    }
    ctx.warn(`${shown}: dropped a truncated last line (an interrupted run); that cell runs again`);
  }
  return done;
}

function dryRun(
  ctx: CommandContext,
  plan: Plan,
  done: ReadonlyMap<number, SweepRow>,
  hasOut: boolean,
): number {
  const { grid, shard, mine } = plan;
  if (booleanOption(ctx.values, "json")) {
    // A million cells are more text than one string holds: written in batches.
    const out = new BatchedWriter((text) => ctx.out.write(text));
    for (const c of mine)
      out.write(
        `${JSON.stringify({ index: c.index, key: c.key, ...(hasOut ? { done: done.has(c.index) } : {}) })}\n`,
      );
    out.flush();
    return EXIT.OK;
  }
  const finished = mine.filter((c) => done.has(c.index)).length;
  const head =
    `${formatNumber(grid.cells.length)} cells in grid ${grid.id}` +
    (shard === undefined ? "" : `; shard ${shard.k}/${shard.n}: ${formatNumber(mine.length)} cells`) +
    (hasOut ? `; ${formatNumber(finished)} already done` : "");
  const rows = mine.map((c) => {
    const p = c.params;
    const flags = flagSettings(p.flags).join(",");
    return [
      String(c.index),
      p.workload,
      `L${p.level}`,
      p.preset,
      p.profile,
      p.model ?? "",
      flags,
      ...(hasOut ? [done.has(c.index) ? "done" : ""] : []),
    ];
  });
  writeLines(ctx.out, [
    head,
    "",
    ...renderTable(
      [
        { header: "cell", align: "right" },
        { header: "workload", minWidth: 10 },
        { header: "level" },
        { header: "preset" },
        { header: "profile", minWidth: 8 },
        { header: "model", minWidth: 8 },
        { header: "flags", minWidth: 8 },
        ...(hasOut ? [{ header: "status" }] : []),
      ],
      rows,
      { style: ctx.style },
    ),
  ]);
  return EXIT.OK;
}

function checkGuests(ctx: CommandContext, rows: readonly SweepRow[]): number {
  const mismatches = guestMismatches(rows);
  if (mismatches.length === 0) return EXIT.OK;
  const m = mismatches[0]!;
  ctx.warn(
    `check failed: ${m.what} saw different guest-visible results in cells ${m.a} and ${m.b}` +
      (mismatches.length > 1 ? ` (and ${mismatches.length - 1} more)` : ""),
  );
  return EXIT.FAILED;
}

export const sweepMergeCommand: Command = {
  name: "sweep merge",
  summary: "join sweep outputs (shards, or resumed runs) into one table sorted by cell",
  usage: "sweep merge <file.jsonl>... [options]",
  description:
    "Every row must come from the same grid, and a cell found in two files must be the same row. The rows come out " +
    "sorted by cell index, as JSON lines (or long-format CSV with --csv). Cells no file holds are listed on stderr " +
    "and make the exit code 1, as does a guest-visible difference between cells that ran the same workload.",
  options: [
    {
      name: "out",
      short: "o",
      type: "string",
      value: "file",
      description: "write the result here instead of stdout",
    },
    {
      name: "csv",
      type: "boolean",
      description: "long-format CSV: index,workload,level,preset,model,profile,flags,metric,value",
    },
    { name: "quiet", short: "q", type: "boolean", description: "no summary on stderr" },
  ],
  positionals: { min: 1, max: 100_000, names: "sweep output files" },
  examples: [
    {
      command: "nestvisor sweep merge shard-*.jsonl --out sweep.jsonl",
      description: "join the shards of a cluster run",
    },
    {
      command: "nestvisor sweep merge sweep.jsonl --csv > sweep.csv",
      description: "a table for a spreadsheet",
    },
  ],
  run(ctx) {
    const out = stringOption(ctx.values, "out");
    if (out !== undefined) checkOutputPath(resolve(ctx.cwd, out), out);
    const inputs = ctx.positionals.map((shown) => {
      const file = readRowsFile(resolve(ctx.cwd, shown), shown);
      if (file.truncated) ctx.warn(`${shown}: ignored a truncated last line (an interrupted run)`);
      return { shown, file };
    });
    const merged = mergeRows(inputs);
    const csv = booleanOption(ctx.values, "csv");
    // Line by line (a merged sweep may be more text than one string holds); a whole --out file is
    // written beside its place and renamed there when complete, so a failure leaves the old file.
    if (out === undefined) {
      const writer = new BatchedWriter((text) => ctx.out.write(text));
      writeMerged(merged, csv, (text) => writer.write(text));
      writer.flush();
    } else writeWholeFile(resolve(ctx.cwd, out), out, (write) => writeMerged(merged, csv, write));
    const quiet = booleanOption(ctx.values, "quiet");
    if (!quiet) {
      ctx.err.write(
        `nestvisor ${ctx.name}: ${formatNumber(merged.rows.length)} of ${formatNumber(merged.gridCells)} cells of grid ${merged.grid} from ${inputs.length} file${inputs.length === 1 ? "" : "s"}` +
          (merged.duplicates > 0 ? ` (${formatNumber(merged.duplicates)} duplicate rows kept once)` : "") +
          (out === undefined ? "" : ` → ${out}`) +
          "\n",
      );
    }
    let code: number = checkGuests(ctx, merged.rows);
    if (merged.missing.length > 0) {
      ctx.warn(
        `${formatNumber(merged.missing.length)} of ${formatNumber(merged.gridCells)} cells missing: ${describeIndices(merged.missing)} (run the shards that hold them, then merge again)`,
      );
      code = EXIT.FAILED;
    }
    return code;
  },
};

export const sweepCommand: Command = {
  name: "sweep",
  summary:
    "Run a grid of workloads × levels × presets × flag sets × profiles × models on every core, one JSON line per cell.",
  usage: "sweep [options] | sweep merge <file.jsonl>...",
  description:
    "Each cell is one run, a pure function of its parameters (the simulation is deterministic); its key is the stable " +
    "JSON of those parameters, its index its place in the grid (workload, then level, profile, preset, model, flag " +
    "set, the last varying fastest). The flag-set dimension: each --flags value is one set (default: the preset as " +
    "it is); --vary a,b crosses the sets with every on/off combination of a and b; --ablate adds, for each preset and " +
    "set, each optimization flag flipped alone; --flag applies to every cell. Models: the project's KVM model plus " +
    "each --model module. Rows (compare --json's row plus grid, gridCells, index, key and a digest of what the guest " +
    "saw) are JSON lines, appended to --out as each cell finishes; run the same command again to resume, and " +
    "--shard k/n to run every n-th cell on n machines, then sweep merge. Without --out, rows go to stdout in cell " +
    "order. Cells whose guest saw different results for the same workload are a failed check (exit 1).",
  options: [
    {
      name: "workloads",
      short: "w",
      type: "string",
      value: "a,b",
      description: "built-in workloads or workload files",
      defaultText: "the vmexit-style built-ins",
    },
    { name: "levels", short: "l", type: "string", value: "1,2,3", description: "levels", defaultText: "1,2" },
    {
      name: "presets",
      short: "p",
      type: "string",
      value: "a,b",
      description: "kernel presets",
      defaultText: DEFAULT_COMPARE_PRESETS.join(","),
    },
    {
      name: "profiles",
      type: "string",
      value: "a,b",
      description: "cost profiles (names or JSON files)",
      defaultText: DEFAULT_PROFILE,
    },
    modelOption("a model module, run next to the project's KVM model", true),
    {
      name: "flags",
      type: "string",
      multiple: true,
      value: "a=off,b=on",
      description: "one flag set of the flag dimension ('none' for the preset as it is)",
    },
    {
      name: "vary",
      type: "string",
      value: "a,b",
      description: "cross the flag sets with every on/off of these flags",
    },
    {
      name: "ablate",
      type: "boolean",
      description: "add each optimization flag flipped alone, per preset and flag set",
    },
    flagOption("flag set on every cell, under the flag sets"),
    iterationsOption("iterations of workloads that take an iterations parameter", "each workload's"),
    paramOption("built-in workload parameter, for every cell"),
    {
      name: "jobs",
      short: "j",
      type: "string",
      value: "N",
      description: "worker threads",
      defaultText: "the available cores",
    },
    {
      name: "shard",
      type: "string",
      value: "k/n",
      description: "run only the cells whose index % n is k-1 (k from 1 to n)",
    },
    {
      name: "out",
      short: "o",
      type: "string",
      value: "file.jsonl",
      description: "append rows here as cells finish; an existing file is resumed",
    },
    { name: "dry-run", type: "boolean", description: "list the cells (of this shard) and run nothing" },
    {
      name: "json",
      type: "boolean",
      description: "with --dry-run, the cells as JSON lines (rows are always JSON lines); no progress",
    },
    {
      name: "progress",
      type: "boolean",
      description: "progress on stderr even when it is not a terminal, every second",
    },
    { name: "quiet", short: "q", type: "boolean", description: "no progress and no summary on stderr" },
  ],
  subcommands: [sweepMergeCommand],
  examples: [
    {
      command: "nestvisor sweep --levels 1,2,3 --presets v5.2,v6.12 --ablate --out ablate.jsonl",
      description: "every optimization flipped alone, at three levels, under two kernels",
    },
    {
      command: "nestvisor sweep -m examples/root-cache-8/model.mjs -w cr3_switch -l 1 -f ept=off -n 100",
      description: "a model module next to KVM, rows on stdout",
    },
    {
      command: "nestvisor sweep --vary shadowVmcs,controlsShadow,lazyRareGuestSync --dry-run",
      description: "list the cells of a full factorial over three flags",
    },
    {
      command: "nestvisor sweep --ablate --shard 3/8 --out shard-3.jsonl",
      description: "the third of eight machines (then: nestvisor sweep merge shard-*.jsonl)",
    },
  ],
  async run(ctx) {
    const jobs = integerOption(ctx.values, "jobs", 1, maxJobs()) ?? availableParallelism();
    const outShown = stringOption(ctx.values, "out");
    const outPath = outShown === undefined ? undefined : resolve(ctx.cwd, outShown);
    if (outPath !== undefined) checkOutputPath(outPath, outShown!, "append");
    const planned = await plan(ctx);
    const { grid, shard, mine } = planned;
    const done =
      outPath === undefined
        ? new Map<number, SweepRow>()
        : resumeFrom(ctx, outPath, outShown!, grid, booleanOption(ctx.values, "dry-run"));
    if (booleanOption(ctx.values, "dry-run")) return dryRun(ctx, planned, done, outPath !== undefined);

    const todo = mine.filter((c) => !done.has(c.index));
    const quiet = booleanOption(ctx.values, "quiet");
    const forced = booleanOption(ctx.values, "progress") || ctx.env.NESTVISOR_PROGRESS === "1";
    const showProgress =
      !quiet && !booleanOption(ctx.values, "json") && (forced || ctx.env.NESTVISOR_PROGRESS !== "0");
    const tty = ctx.err.isTTY === true;
    const bar = new ProgressBar(ctx.err, LABEL, {
      tty,
      intervalMs: forced ? FORCED_INTERVAL_MS : LOG_INTERVAL_MS,
      unit: "cells",
    });
    const rows: SweepRow[] = [...done.values()].filter((r) => inShard(r.index, shard));
    const workers = Math.max(1, Math.min(jobs, todo.length));
    const start = performance.now();
    let fd: number | undefined;
    if (outPath !== undefined) {
      try {
        fd = openSync(outPath, "a");
      } catch (error) {
        throw new UsageError(`cannot write ${outShown}: ${writeFailure(error, outPath)}`);
      }
    }
    // Without --out, rows go to stdout in cell order: a row waits until the cells before it are done.
    const pending = new Map<number, SweepRow>();
    let nextOut = 0;
    const emit = (row: SweepRow): void => {
      rows.push(row);
      if (fd !== undefined) {
        writeSync(fd, `${rowLine(row)}\n`);
        return;
      }
      pending.set(row.index, row);
      let text = "";
      while (nextOut < todo.length && pending.has(todo[nextOut]!.index)) {
        text += `${rowLine(pending.get(todo[nextOut]!.index)!)}\n`;
        pending.delete(todo[nextOut]!.index);
        nextOut++;
      }
      if (text !== "") ctx.out.write(text);
    };
    if (showProgress && todo.length > 0) bar.start(mine.length, mine.length - todo.length, forced);
    try {
      await runPool({
        jobs: workers,
        data: { cwd: ctx.cwd, grid: grid.id, gridCells: grid.cells.length },
        cells: todo,
        onRow: (row) => {
          emit(row);
          if (showProgress) bar.advance();
        },
      });
    } finally {
      if (showProgress) bar.finish();
      if (fd !== undefined) {
        fsyncSync(fd);
        closeSync(fd);
      }
    }
    const seconds = (performance.now() - start) / 1000;
    if (!quiet) {
      const resumed = mine.length - todo.length;
      const scope =
        shard === undefined ? "" : ` (shard ${shard.k}/${shard.n} of ${formatNumber(grid.cells.length)})`;
      const what =
        todo.length === 0
          ? `nothing to run: all ${formatNumber(mine.length)} cells${scope} are in ${outShown}`
          : `${formatNumber(todo.length)} cells${scope} in ${seconds.toFixed(1)} s (${formatNumber(todo.length / Math.max(seconds, 1e-9), 1)} cells/s, ${workers} worker${workers === 1 ? "" : "s"})` +
            (resumed > 0 ? `, ${formatNumber(resumed)} already done` : "") +
            (outShown === undefined ? "" : ` → ${outShown}`);
      ctx.err.write(`${LABEL}: ${what}\n`);
    }
    const notModelled = rows.filter((r) => r.notModelled !== undefined).length;
    if (notModelled > 0 && !quiet)
      ctx.warn(
        `${formatNumber(notModelled)} cells are configurations the model does not cover (rows with notModelled)`,
      );
    return checkGuests(ctx, rows);
  },
};
