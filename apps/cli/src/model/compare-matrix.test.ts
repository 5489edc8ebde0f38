import type { ModelSpec } from "@nestvisor/hypervisor";
import { costProfile, modelFromModule, OPTIMIZATION_FLAG_NAMES } from "@nestvisor/hypervisor";
import { kvmRootCacheWithSize } from "@nestvisor/mmu";
import { describe, expect, it } from "vitest";
import { compareVariants, runMatrix, snapshotMismatches } from "./compare-matrix";
import { resolveWorkload } from "./workload-ref";

const profile = costProfile();
const rootCache8 = {
  shown: "root-cache-8.mjs",
  build: (base: ModelSpec) =>
    modelFromModule(
      { default: { name: "rc8", policies: { rootCache: kvmRootCacheWithSize(8) } } },
      "rc8",
      base,
    ),
};

describe("compareVariants", () => {
  it("is one variant per preset, the user's flags applied to each", () => {
    const variants = compareVariants(["v5.2", "v6.12"], { controlsShadow: false }, false, profile);
    expect(variants.map((v) => v.label)).toEqual(["v5.2", "v6.12"]);
    expect(variants.every((v) => v.flags.controlsShadow === false && v.group === 0)).toBe(true);
  });

  it("adds one variant per optimization flag flipped alone with --ablate, skipping flags the user set", () => {
    const variants = compareVariants(["v6.12"], { controlsShadow: true }, true, profile);
    expect(variants).toHaveLength(OPTIMIZATION_FLAG_NAMES.length);
    const flipped = variants.find((v) => v.flipped === "lazyRareGuestSync")!;
    expect(flipped.label).toBe("v6.12 lazyRareGuestSync=off");
    expect(flipped.flags.lazyRareGuestSync).toBe(false);
    expect(flipped.flags.controlsShadow).toBe(true);
    expect(variants.some((v) => v.flipped === "controlsShadow")).toBe(false);
  });

  it("puts each model right after its preset, one group per preset, built on the preset and the user's flags", () => {
    const variants = compareVariants(["v5.2", "v6.12"], { ept: false }, false, profile, [rootCache8]);
    expect(variants.map((v) => v.label)).toEqual(["v5.2", "v5.2 rc8", "v6.12", "v6.12 rc8"]);
    expect(variants.map((v) => v.group)).toEqual([0, 0, 1, 1]);
    expect(variants.map((v) => v.modelName)).toEqual([null, "rc8", null, "rc8"]);
    const model = variants[1]!;
    expect(model.short).toBe("rc8");
    expect(model.preset).toBe("v5.2");
    expect(model.overrides).toEqual({ ept: false });
    expect(model.model.policies.rootCache?.prevRoots).toBe(8);
    expect(variants[0]!.model.policies.rootCache).toBeUndefined();
  });

  it("reports a module's own flags as overrides on top of its preset", () => {
    const own = {
      shown: "own.mjs",
      build: (base: ModelSpec) =>
        modelFromModule({ default: { name: "own", flags: { shadowVmcs: false } } }, "own", base),
    };
    const [, variant] = compareVariants(["v6.12"], { ept: false }, false, profile, [own]);
    expect(variant!.overrides).toEqual({ ept: false, shadowVmcs: false });
    expect(variant!.label).toBe("own");
  });
});

describe("runMatrix", () => {
  it("runs every cell, marks configurations the model does not cover, and finds no guest-visible difference", () => {
    const workloads = [resolveWorkload("cpuid", process.cwd())];
    const variants = [
      ...compareVariants(["v5.2", "v6.12"], {}, false, profile),
      ...compareVariants(["v6.12"], { ept: false }, false, profile),
    ].map((v, i) => ({
      ...v,
      label: `${v.label}#${i}`,
    }));
    const matrix = runMatrix(workloads, [1, 2], variants, {
      settings: { iterations: 20, params: {} },
    });
    expect(matrix.cells).toHaveLength(6);
    expect(matrix.cell(0, 2, 0)!.result!.cyclesPerIteration).toBeGreaterThan(
      matrix.cell(0, 2, 1)!.result!.cyclesPerIteration,
    );
    expect(matrix.cell(0, 2, 2)!.result).toBeNull();
    expect(matrix.cell(0, 2, 2)!.skipped).toMatch(/not modelled/);
    expect(matrix.cell(0, 1, 2)!.result).not.toBeNull();
    expect(snapshotMismatches(matrix)).toEqual([]);
  });

  it("runs a model variant through its own model", () => {
    const workloads = [resolveWorkload("cr3_switch", process.cwd())];
    const variants = compareVariants(["v6.12"], { ept: false }, false, profile, [rootCache8]);
    const matrix = runMatrix(workloads, [1], variants, {
      settings: { iterations: 50, params: { processes: "8" } },
    });
    const kvm = matrix.cell(0, 1, 0)!.result!;
    const rc8 = matrix.cell(0, 1, 1)!.result!;
    expect(rc8.cyclesPerIteration).toBeLessThan(kvm.cyclesPerIteration);
    expect(snapshotMismatches(matrix)).toEqual([]);
  });
});
