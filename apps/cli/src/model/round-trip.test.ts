import { builtinWorkload, costProfile, createModel, resolveFlags, runWorkload } from "@nestvisor/hypervisor";
import { describe, expect, it } from "vitest";
import { flagEffects } from "./flag-effects";
import { alignSteps, recordRoundTrip, type Step } from "./round-trip";

const profile = costProfile();

function cpuid(preset: string) {
  const program = builtinWorkload("cpuid", { level: 2, iterations: 3 });
  return { program, model: createModel({ preset, profile }), iterations: 3, select: {} };
}

describe("recordRoundTrip", () => {
  it("cuts a nested CPUID round trip into steps whose cycles add up to the run's cycles per iteration", () => {
    const options = cpuid("v6.12");
    const recorded = recordRoundTrip(options);
    const trip = recorded.trip!;
    expect(trip.reason).toBe("CPUID");
    expect(recorded.trips).toBe(3);
    const run = runWorkload({
      program: builtinWorkload("cpuid", { level: 2, iterations: 50 }),
      config: resolveFlags("v6.12"),
      profile,
    });
    expect(trip.cycles).toBe(run.cyclesPerIteration);
    const steps = trip.steps.map((s) => `${s.transition ?? `L${s.level}`} ${s.step}`);
    expect(steps[0]).toBe("L2→L0 VM exit: CPUID");
    expect(steps).toContain("L0 decide: L1 asked for this exit, reflect it");
    expect(steps).toContain("L1 CPUID exit handler");
    expect(steps).toContain("L1→L0 VM exit: VMRESUME");
    expect(steps.at(-1)).toBe("L0→L2 VM entry into L2");
    expect(trip.byLevel[0]! + trip.byLevel[1]! + trip.byLevel[2]!).toBe(trip.cycles);
  });

  it("finds which flags change which step, and that a removed exit is a removed round trip", () => {
    const options = cpuid("v6.12");
    const recorded = recordRoundTrip(options);
    const effects = flagEffects(recorded.trip!, recorded.anchor!, options);
    const summary = new Map(effects.summary.map((s) => [s.flag, s]));
    expect(summary.get("controlsShadow")!.delta).toBeGreaterThan(0);
    expect(summary.get("ept")!.skipped).toBe("not modelled");
    const entryIndex = recorded.trip!.steps.length - 1;
    expect(effects.byStep[entryIndex]!.map((e) => e.flag)).toContain("controlsShadow");
    expect(
      effects.added.find((a) => a.flag === "shadowVmcs")!.steps.some((s) => s.step === "VM exit: VMREAD"),
    ).toBe(true);
    // Today's kernel lets L2 toggle CR0.WP without exiting; before v6.4 every toggle exited.
    const toggle = {
      ...cpuid("v5.17"),
      program: builtinWorkload("toggle_cr0_wp", { level: 2, iterations: 3 }),
    };
    const old = recordRoundTrip(toggle);
    expect(old.trip!.reason).toBe("CR_ACCESS");
    const newer = recordRoundTrip({
      ...toggle,
      model: createModel({ preset: "v6.12" }),
      select: { fromEnd: old.anchor! },
    });
    expect(newer.trip).toBeUndefined();
  });

  it("aligns step lists on their longest common subsequence", () => {
    const step = (name: string): Step => ({ level: 0, step: name, kvm: "", events: [], cycles: 0 });
    const a = ["a", "b", "c", "d"].map(step);
    const b = ["a", "x", "c", "d", "y"].map(step);
    expect(alignSteps(a, b)).toEqual([
      [0, 0],
      [2, 2],
      [3, 3],
    ]);
  });
});
