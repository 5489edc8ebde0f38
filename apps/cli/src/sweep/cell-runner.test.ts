import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CliError, EXIT, UsageError } from "../framework/errors";
import { tempFiles } from "../testing/run-cli";
import { CellRunner } from "./cell-runner";
import { expandGrid, type GridSpec } from "./grid";

const repo = join(import.meta.dirname, "../../../..");
const SPEC: GridSpec = {
  workloads: ["cpuid"],
  levels: [2],
  presets: ["v6.12"],
  profiles: ["intel-server"],
  models: [null, "examples/enlightened-vmcs/model.mjs"],
  common: {},
  flagSets: [{}],
  ablate: false,
  iterations: 20,
  params: {},
};

describe("CellRunner", () => {
  it("gives compare's row for a cell, with the grid around it and a digest of what the guest saw", async () => {
    const grid = expandGrid(SPEC);
    const runner = new CellRunner(repo);
    const frame = { grid: grid.id, gridCells: grid.cells.length };
    const kvm = await runner.run(grid.cells[0]!, frame);
    expect(kvm).toMatchObject({
      grid: grid.id,
      gridCells: 2,
      index: 0,
      key: grid.cells[0]!.key,
      workload: "cpuid",
      level: 2,
      preset: "v6.12",
      model: null,
      profile: "intel-server",
      flags: {},
      cyclesPerIteration: 8142,
    });
    expect(kvm.guest).toMatch(/^[0-9a-f]{16}$/);
    const evmcs = await runner.run(grid.cells[1]!, frame);
    expect(evmcs.model).toBe("kvm-evmcs");
    expect(evmcs.cyclesPerIteration).toBe(7110);
    expect(evmcs.guest).toBe(kvm.guest);
    // Pure: the same cell gives the same row again, in a fresh runner too.
    expect(await new CellRunner(repo).run(grid.cells[1]!, frame)).toEqual(evmcs);
  });

  it("marks a configuration the model does not cover instead of failing", async () => {
    const grid = expandGrid({ ...SPEC, models: [null], common: { ept: false } });
    const row = await new CellRunner(repo).run(grid.cells[0]!, { grid: grid.id, gridCells: 1 });
    expect(row.cyclesPerIteration).toBeNull();
    expect(row.guest).toBeNull();
    expect(row.notModelled).toMatch(/not modelled/);
  });

  it("fails with the model and the cell named when a model's policy throws", async () => {
    const dir = tempFiles({
      "bad.mjs":
        'export default { name: "bad", policies: { reflection: () => { throw new Error("oops"); } } };',
    });
    const grid = expandGrid({ ...SPEC, models: ["bad.mjs"] });
    const failure = new CellRunner(dir).run(grid.cells[0]!, { grid: grid.id, gridCells: 1 });
    await expect(failure).rejects.toThrow(
      "model bad failed on cell 0 (cpuid L2 v6.12 intel-server bad.mjs): oops",
    );
    await expect(failure).rejects.toMatchObject({ exitCode: EXIT.FAILED });
    await expect(failure).rejects.toBeInstanceOf(CliError);
    const missing = expandGrid({ ...SPEC, models: ["none.mjs"] });
    await expect(
      new CellRunner(dir).run(missing.cells[0]!, { grid: "x", gridCells: 1 }),
    ).rejects.toBeInstanceOf(UsageError);
  });
});
