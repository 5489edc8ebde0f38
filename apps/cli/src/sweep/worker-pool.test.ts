import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CliError } from "../framework/errors";
import { CellRunner } from "./cell-runner";
import { expandGrid, type GridSpec } from "./grid";
import type { SweepRow } from "./sweep-row";
import { runPool, workerEntry } from "./worker-pool";

const repo = join(import.meta.dirname, "../../../..");
const SPEC: GridSpec = {
  workloads: ["cpuid", "toggle_cr0_wp"],
  levels: [1, 2],
  presets: ["v5.2", "v6.12"],
  profiles: ["intel-server"],
  models: [null],
  common: {},
  flagSets: [{}, { controlsShadow: false }],
  ablate: false,
  iterations: 10,
  params: {},
};

describe("workerEntry", () => {
  it("is sweep-worker.js next to the bundle's chunk, or the TypeScript source through tsx", () => {
    const built = workerEntry("file:///opt/nestvisor/dist/sweep-ABC.js");
    expect(built).toEqual({
      target: new URL("file:///opt/nestvisor/dist/sweep-worker.js"),
      eval: false,
      execArgv: [],
    });
    const source = workerEntry("file:///repo/apps/cli/src/sweep/worker-pool.ts");
    expect(source.eval).toBe(true);
    expect(source.target).toContain('"file:///repo/apps/cli/src/sweep/sweep-worker.ts"');
  });
});

describe("runPool", () => {
  it("runs every cell once in worker threads, each row equal to the in-process one", async () => {
    const grid = expandGrid(SPEC);
    const frame = { grid: grid.id, gridCells: grid.cells.length };
    const rows: SweepRow[] = [];
    await runPool({
      jobs: 3,
      data: { cwd: repo, ...frame },
      cells: grid.cells,
      onRow: (row) => rows.push(row),
    });
    expect(rows.map((r) => r.index).sort((a, b) => a - b)).toEqual(grid.cells.map((c) => c.index));
    const runner = new CellRunner(repo);
    for (const row of rows) expect(row).toEqual(await runner.run(grid.cells[row.index]!, frame));
  });

  it("stops at the first failing cell with its message and exit code", async () => {
    const grid = expandGrid({ ...SPEC, models: ["no-such-model.mjs"] });
    const run = runPool({
      jobs: 2,
      data: { cwd: repo, grid: grid.id, gridCells: grid.cells.length },
      cells: grid.cells,
      onRow: () => {},
    });
    await expect(run).rejects.toBeInstanceOf(CliError);
    await expect(run).rejects.toMatchObject({
      exitCode: 2,
      message: "--model no-such-model.mjs: no such file",
    });
  });

  it("fails naming the cell when a worker exits in the middle of it, whatever the exit code", async () => {
    // A model module whose root-cache policy ends its thread (process.exit in a worker ends the
    // worker only): exit code 1 is also what terminate() gives, which must not hide it.
    const dir = mkdtempSync(join(tmpdir(), "nestvisor-pool-"));
    for (const code of [0, 1, 3]) {
      writeFileSync(
        join(dir, `exit-${code}.mjs`),
        `export default { name: "exit-${code}", policies: { rootCache: { name: "x", prevRoots: 3, newPgd() { process.exit(${code}); } } } };\n`,
      );
    }
    for (const code of [0, 1, 3]) {
      const grid = expandGrid({
        ...SPEC,
        workloads: ["cr3_switch"],
        levels: [1],
        presets: ["v6.12"],
        models: [null, `exit-${code}.mjs`],
        common: { ept: false },
        flagSets: [{}],
      });
      const rows: number[] = [];
      const run = runPool({
        jobs: 1,
        data: { cwd: dir, grid: grid.id, gridCells: grid.cells.length },
        cells: grid.cells,
        onRow: (row) => rows.push(row.index),
      });
      await expect(run).rejects.toBeInstanceOf(CliError);
      await expect(run).rejects.toMatchObject({
        exitCode: 1,
        message: `sweep worker died running cell 1 (cr3_switch L1 v6.12 intel-server exit-${code}.mjs ept=off) with exit code ${code}`,
      });
      expect(rows).toEqual([0]);
    }
  });
});
