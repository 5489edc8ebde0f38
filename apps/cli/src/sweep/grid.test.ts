import { OPTIMIZATION_FLAG_NAMES } from "@nestvisor/hypervisor";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { UsageError } from "../framework/errors";
import {
  crossFlagSets,
  describeCell,
  expandGrid,
  type GridSpec,
  gridSize,
  inShard,
  parseShard,
  varyFlagSets,
} from "./grid";

const SPEC: GridSpec = {
  workloads: ["cpuid", "vmcall"],
  levels: [1, 2],
  presets: ["v5.2", "v6.12"],
  profiles: ["intel-server"],
  models: [null, "m.mjs"],
  common: { ept: true },
  flagSets: [{}, { shadowVmcs: false }],
  ablate: false,
  iterations: 10,
  params: {},
};

describe("expandGrid", () => {
  it("numbers workload × level × profile × preset × model × flag set, the last varying fastest", () => {
    const grid = expandGrid(SPEC);
    expect(grid.cells).toHaveLength(2 * 2 * 1 * 2 * 2 * 2);
    expect(grid.cells.map((c) => c.index)).toEqual(grid.cells.map((_, i) => i));
    const [first, second, third] = grid.cells;
    expect(first!.params).toEqual({
      workload: "cpuid",
      level: 1,
      preset: "v5.2",
      profile: "intel-server",
      model: null,
      flags: { ept: true },
      iterations: 10,
      params: {},
    });
    expect(second!.params.flags).toEqual({ ept: true, shadowVmcs: false });
    expect(third!.params.model).toBe("m.mjs");
    expect(grid.cells[4]!.params.preset).toBe("v6.12");
    expect(grid.cells[8]!.params.level).toBe(2);
    expect(grid.cells[16]!.params.workload).toBe("vmcall");
    expect(first!.key).toBe(
      '{"flags":{"ept":true},"iterations":10,"level":1,"model":null,"params":{},"preset":"v5.2","profile":"intel-server","workload":"cpuid"}',
    );
    expect(new Set(grid.cells.map((c) => c.key)).size).toBe(grid.cells.length);
  });

  it("gives the same id to the same grid and another id to any change", () => {
    const a = expandGrid(SPEC);
    expect(expandGrid({ ...SPEC }).id).toBe(a.id);
    expect(a.id).toMatch(/^[0-9a-f]{16}$/);
    expect(expandGrid({ ...SPEC, iterations: 11 }).id).not.toBe(a.id);
    expect(expandGrid({ ...SPEC, levels: [2, 1] }).id).not.toBe(a.id);
    expect(expandGrid({ ...SPEC, models: [null] }).id).not.toBe(a.id);
  });

  it("with ablation adds each optimization flag flipped alone per preset, and drops duplicate sets", () => {
    const spec: GridSpec = {
      ...SPEC,
      workloads: ["cpuid"],
      levels: [2],
      presets: ["v6.12"],
      models: [null],
      common: {},
      flagSets: [{}, {}],
      ablate: true,
    };
    const grid = expandGrid(spec);
    expect(grid.cells).toHaveLength(1 + OPTIMIZATION_FLAG_NAMES.length);
    expect(gridSize(spec)).toBe(grid.cells.length);
    const flipped = grid.cells.find((c) => "controlsShadow" in c.params.flags)!;
    expect(flipped.params.flags).toEqual({ controlsShadow: false });
    // v5.2 lacks most optimizations: flipping turns them on.
    const old = expandGrid({ ...spec, presets: ["v5.2"] });
    expect(old.cells.find((c) => "controlsShadow" in c.params.flags)!.params.flags).toEqual({
      controlsShadow: true,
    });
  });

  it("rejects an empty grid and one too large to hold", () => {
    expect(() => expandGrid({ ...SPEC, workloads: [] })).toThrow(/empty/);
    const names = [...OPTIMIZATION_FLAG_NAMES].slice(0, 12);
    const huge = {
      ...SPEC,
      workloads: Array.from({ length: 40 }, () => "cpuid"),
      flagSets: varyFlagSets(names),
    };
    expect(() => expandGrid(huge)).toThrow(UsageError);
  });
});

describe("flag sets", () => {
  it("--vary gives every on/off combination, all on first", () => {
    expect(varyFlagSets(["ept", "shadowVmcs"])).toEqual([
      { ept: true, shadowVmcs: true },
      { ept: true, shadowVmcs: false },
      { ept: false, shadowVmcs: true },
      { ept: false, shadowVmcs: false },
    ]);
    expect(() => varyFlagSets(["ept", "ept"])).toThrow(/twice/);
  });

  it("crosses sets with varied assignments, the varied flag winning", () => {
    expect(crossFlagSets([{}, { ept: false }], [{ ept: true }, { tdpMmu: false }])).toEqual([
      { ept: true },
      { tdpMmu: false },
      { ept: true },
      { ept: false, tdpMmu: false },
    ]);
  });
});

describe("--shard", () => {
  it("parses k/n and rejects anything else with the issue's message", () => {
    expect(parseShard("2/8")).toEqual({ k: 2, n: 8 });
    expect(() => parseShard("3/2")).toThrow("--shard 3/2: k must be between 1 and n");
    expect(() => parseShard("0/2")).toThrow("k must be between 1 and n");
    expect(() => parseShard("1/0")).toThrow("n must be between");
    expect(() => parseShard("two")).toThrow("expected k/n");
  });

  it("splits the cells into n disjoint shards that cover them all", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 0, max: 200 }), (n, cells) => {
        const owners = Array.from({ length: cells }, (_, i) =>
          Array.from({ length: n }, (_, k) => k + 1).filter((k) => inShard(i, { k, n })),
        );
        for (const list of owners) expect(list).toHaveLength(1);
      }),
    );
    expect(inShard(5, undefined)).toBe(true);
  });
});

describe("describeCell", () => {
  it("names a cell for messages", () => {
    expect(describeCell(expandGrid(SPEC).cells[3]!.params)).toBe(
      "cpuid L1 v5.2 intel-server m.mjs ept=on shadowVmcs=off",
    );
  });
});
