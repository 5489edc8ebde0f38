import { costProfile, OPTIMIZATION_FLAG_NAMES } from "@nestvisor/hypervisor";
import { describe, expect, it } from "vitest";
import { compareVariants, runMatrix, snapshotMismatches } from "./compare-matrix";
import { resolveWorkload } from "./workload-ref";

describe("compareVariants", () => {
  it("is one variant per preset, the user's flags applied to each", () => {
    const variants = compareVariants(["v5.2", "v6.12"], { controlsShadow: false }, false);
    expect(variants.map((v) => v.label)).toEqual(["v5.2", "v6.12"]);
    expect(variants.every((v) => v.flags.controlsShadow === false && v.group === 0)).toBe(true);
  });

  it("adds one variant per optimization flag flipped alone with --ablate, skipping flags the user set", () => {
    const variants = compareVariants(["v6.12"], { controlsShadow: true }, true);
    expect(variants).toHaveLength(OPTIMIZATION_FLAG_NAMES.length);
    const flipped = variants.find((v) => v.flipped === "lazyRareGuestSync")!;
    expect(flipped.label).toBe("v6.12 lazyRareGuestSync=off");
    expect(flipped.flags.lazyRareGuestSync).toBe(false);
    expect(flipped.flags.controlsShadow).toBe(true);
    expect(variants.some((v) => v.flipped === "controlsShadow")).toBe(false);
  });
});

describe("runMatrix", () => {
  it("runs every cell, marks configurations the model does not cover, and finds no guest-visible difference", () => {
    const workloads = [resolveWorkload("cpuid", process.cwd())];
    const variants = [
      ...compareVariants(["v5.2", "v6.12"], {}, false),
      ...compareVariants(["v6.12"], { ept: false }, false),
    ].map((v, i) => ({
      ...v,
      label: `${v.label}#${i}`,
    }));
    const matrix = runMatrix(workloads, [1, 2], variants, {
      settings: { iterations: 20, params: {} },
      profile: costProfile(),
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
});
