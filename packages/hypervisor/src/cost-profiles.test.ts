import { MMU_EVENTS } from "@nestvisor/mmu";
import { VMX_EVENTS } from "@nestvisor/vmx";
import { describe, expect, it } from "vitest";
import { costProvenance } from "./cost-profile";
import { COST_PROFILE_NAMES, costProfile, DEFAULT_COST_PROFILE_NAME, flatCostProfile } from "./cost-profiles";
import { HYPERVISOR_EVENTS } from "./hypervisor-events";

describe("shipped cost profiles", () => {
  const catalogNames = [...VMX_EVENTS.names, ...MMU_EVENTS.names, ...HYPERVISOR_EVENTS.names];

  for (const name of COST_PROFILE_NAMES) {
    it(`${name}: prices every event of the vmx, mmu and hypervisor catalogs, each with a source or an assumption`, () => {
      const profile = costProfile(name);
      expect(profile.name).toBe(name);
      expect(Object.keys(profile.events).sort()).toEqual([...catalogNames].sort());
      for (const event of catalogNames) {
        const entry = profile.events[event];
        expect(Number.isFinite(entry.cycles) && entry.cycles >= 0, event).toBe(true);
        const { text } = costProvenance(entry);
        expect(text.trim().length, event).toBeGreaterThan(0);
      }
      expect(costProvenance(profile.tscGHz).text.length).toBeGreaterThan(0);
      expect(profile.tscGHz.value).toBeGreaterThan(0);
    });
  }

  it("defaults to intel-server and caches what it parsed", () => {
    expect(DEFAULT_COST_PROFILE_NAME).toBe("intel-server");
    expect(costProfile()).toBe(costProfile("intel-server"));
  });

  it("intel-server documents that composite figures were not fitted", () => {
    const profile = costProfile("intel-server");
    expect(profile.description).toMatch(/never used to set any number/);
    expect(profile.notes.join("\n")).toMatch(
      /composite figure is an output of the model and must not be used to tune/,
    );
  });

  it("intel-server takes its few sourced numbers from calibration.md or from definitions", () => {
    const profile = costProfile("intel-server");
    const sourced = Object.entries(profile.events).filter(([, entry]) => "source" in entry);
    expect(sourced.map(([name]) => name).sort()).toEqual([
      "GUEST_COMPUTE_CYCLES",
      "RARE_FIELD_VMREAD_DEFERRED",
      "SHADOW_FIELD_OFFSET_LOOKUP",
      "SHADOW_PAGE_HIT",
      "VMCS_FULL_CONSISTENCY_CHECK",
    ]);
    for (const [, entry] of sourced) {
      expect(costProvenance(entry).text).toMatch(/^(calibration\.md §\d|definition:)/);
    }
  });

  it("zero and uniform are flat", () => {
    expect(Object.values(costProfile("zero").events).every((e) => e.cycles === 0)).toBe(true);
    expect(Object.values(costProfile("uniform").events).every((e) => e.cycles === 1)).toBe(true);
    expect(flatCostProfile("seven", 7, "d", "why").events.VMREAD).toEqual({ cycles: 7, assumption: "why" });
  });

  it("rejects an unknown profile name with a suggestion", () => {
    expect(() => costProfile("intel-sever")).toThrow(
      'unknown cost profile "intel-sever" (did you mean "intel-server"?); shipped profiles: intel-server, zero, uniform',
    );
  });
});
