import { describe, expect, it } from "vitest";
import { builtinWorkload } from "./builtin-workloads";
import { resolveFlags } from "./kernel-presets";
import { runWorkload } from "./run-workload";

const run = (
  name: string,
  level: number,
  preset: string,
  params: Record<string, number> = { iterations: 20 },
) => runWorkload({ program: builtinWorkload(name, { level, ...params }), config: resolveFlags(preset, {}) });

describe("runWorkload", () => {
  it("prices a single-level CPUID round trip near the published 1,018–1,110 cycles", () => {
    const r = run("cpuid", 1, "v6.12");
    expect(r.iterations).toBe(20);
    expect(r.cyclesPerIteration).toBeGreaterThan(800);
    expect(r.cyclesPerIteration).toBeLessThan(1600);
    expect(r.attribution.byLevel[0]! + r.attribution.byLevel[1]!).toBeCloseTo(r.totalCycles, 3);
  });

  it("a nested CPUID costs far more at L2 than at L1, and v5.2 more than v5.3", () => {
    const l1 = run("cpuid", 1, "v6.12").cyclesPerIteration;
    const v52 = run("cpuid", 2, "v5.2").cyclesPerIteration;
    const v53 = run("cpuid", 2, "v5.3").cyclesPerIteration;
    expect(v53).toBeGreaterThan(5 * l1);
    expect(v52).toBeGreaterThan(v53);
  });

  it("attributes the reflected exit's L1 work to level 1 and the VMRESUME exits to L0", () => {
    const r = run("cpuid", 2, "v6.12");
    expect(r.attribution.byLevel[1]!).toBeGreaterThan(0);
    expect(r.attribution.byLevel[0]!).toBeGreaterThan(r.attribution.byLevel[1]!);
    expect(r.counts.NESTED_EXIT_REFLECTED).toBe(20);
  });
});
