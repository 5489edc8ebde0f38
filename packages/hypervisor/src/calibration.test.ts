import { describe, expect, it } from "vitest";
import { CALIBRATION_FACTS, checkCalibration } from "./calibration";
import { isCostEventName } from "./cost-catalogs";
import { costProfile } from "./cost-profiles";
import { compileCostTable, cyclesOfNamed } from "./cost-table";

const table = compileCostTable(costProfile("intel-server"));

describe("calibration facts", () => {
  it("are well formed: a source, a range, a recipe of priced events", () => {
    expect(new Set(CALIBRATION_FACTS.map((f) => f.id)).size).toBe(CALIBRATION_FACTS.length);
    for (const fact of CALIBRATION_FACTS) {
      expect(fact.source.length, fact.id).toBeGreaterThan(20);
      expect(fact.recipeSource.length, fact.id).toBeGreaterThan(20);
      expect(fact.min, fact.id).toBeGreaterThan(0);
      expect(fact.max, fact.id).toBeGreaterThanOrEqual(fact.min);
      for (const [name, count] of Object.entries(fact.recipe)) {
        expect(isCostEventName(name), name).toBe(true);
        expect(count, name).toBeGreaterThan(0);
      }
    }
  });

  it("are components only: no recipe contains a nested entry or exit (composites are predictions)", () => {
    const composite = [
      "NESTED_VM_ENTRY",
      "NESTED_VM_EXIT",
      "NESTED_EXIT_REFLECTED",
      "EMULATED_VMRESUME",
      "EMULATED_VMLAUNCH",
      "GUEST_COMPUTE_CYCLES",
    ];
    for (const fact of CALIBRATION_FACTS) {
      for (const name of composite) expect(fact.recipe, fact.id).not.toHaveProperty(name);
      // A recipe with hardware exits is a single-level round trip: exactly one exit.
      const exits = (fact.recipe as Record<string, number>).HARDWARE_VM_EXIT ?? 0;
      expect(exits, fact.id).toBeLessThanOrEqual(1);
    }
  });
});

describe("the default profile against the component facts", () => {
  it("lands every fact within its published range", () => {
    const checks = checkCalibration(table);
    expect(checks.length).toBe(CALIBRATION_FACTS.length);
    for (const check of checks) {
      expect(check.ok, `${check.fact.id}: ${check.cycles} not in ${check.fact.min}–${check.fact.max}`).toBe(
        true,
      );
    }
  });

  it("builds the single-level CPUID round trip from hardware exit/entry, dispatch, handler and VMCS accesses", () => {
    const cpuid = CALIBRATION_FACTS.find((f) => f.id === "single-level-cpuid-round-trip")!;
    const cycles =
      table.costOf("HARDWARE_VM_EXIT") +
      table.costOf("EXIT_DISPATCH") +
      table.costOf("EXIT_HANDLER_CPUID") +
      6 * table.costOf("VMREAD") +
      2 * table.costOf("VMWRITE") +
      table.costOf("VMRESUME") +
      table.costOf("HARDWARE_VM_ENTRY");
    expect(cycles).toBe(1026);
    expect(cyclesOfNamed(cpuid.recipe as Record<string, number>, table)).toBe(cycles);
    // calibration.md §1: 1,018–1,053 (A) and 1,050–1,110 (B).
    expect(cycles).toBeGreaterThanOrEqual(1018);
    expect(cycles).toBeLessThanOrEqual(1110);
    // The hardware share is the assumed half of the round trip (calibration.md §5).
    const hardware =
      table.costOf("HARDWARE_VM_EXIT") + table.costOf("HARDWARE_VM_ENTRY") + table.costOf("VMRESUME");
    expect(hardware / cycles).toBeCloseTo(0.49, 2);
  });

  it("gives the per-component savings the seeds state", () => {
    const byId = new Map(checkCalibration(table).map((c) => [c.fact.id, c.cycles]));
    expect(byId.get("seed-000-mmu-reinit-per-nested-exit")).toBe(1010);
    expect(byId.get("seed-003-vcpu-put-load-per-round-trip")).toBe(1060);
    expect(byId.get("seed-003-rare-guest-field-sync")).toBe(210);
    expect(byId.get("seed-003-shadow-offset-lookups-per-direction")).toBe(102);
    expect(byId.get("seed-003-full-consistency-check")).toBe(400);
    expect(byId.get("seed-003-read-only-field-copies")).toBe(81);
  });

  it("has teeth: the uncalibrated profiles fail", () => {
    for (const name of ["zero", "uniform"]) {
      const checks = checkCalibration(compileCostTable(costProfile(name)));
      expect(
        checks.every((c) => !c.ok),
        name,
      ).toBe(true);
    }
  });
});
