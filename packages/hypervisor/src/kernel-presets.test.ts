import { MMU_FLAG_PRESETS } from "@nestvisor/mmu";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  diffFlags,
  FlagError,
  HYPERVISOR_FLAG_NAMES,
  HYPERVISOR_SWITCH_NAMES,
  type HypervisorFlagName,
  KERNEL_BEHAVIOUR_NAMES,
  mmuFlagsOf,
  OPTIMIZATION_FLAG_NAMES,
  VMX_FLAG_NAMES,
  vmxFlagsOf,
} from "./hypervisor-flags";
import {
  DEFAULT_PRESET_NAME,
  isKernelPresetName,
  KERNEL_PRESET_NAMES,
  KERNEL_PRESETS,
  type KernelPresetName,
  kernelPreset,
  resolveFlags,
} from "./kernel-presets";

function presetMessage(name: string): string {
  try {
    kernelPreset(name);
  } catch (error) {
    if (error instanceof FlagError) return error.message;
    throw error;
  }
  throw new Error(`expected "${name}" to be rejected`);
}

describe("KERNEL_PRESETS", () => {
  it("has every preset, complete and frozen", () => {
    expect(KERNEL_PRESET_NAMES).toEqual([
      "none",
      "v4.19",
      "v4.20",
      "v5.2",
      "v5.3",
      "v5.6",
      "v5.7",
      "v5.17",
      "v6.12",
      "all",
    ]);
    expect(Object.keys(KERNEL_PRESETS)).toEqual([...KERNEL_PRESET_NAMES]);
    expect(Object.isFrozen(KERNEL_PRESETS)).toBe(true);
    for (const name of KERNEL_PRESET_NAMES) {
      const preset = KERNEL_PRESETS[name];
      expect(preset.name).toBe(name);
      expect(Object.keys(preset.flags)).toEqual([...HYPERVISOR_FLAG_NAMES]);
      for (const flag of HYPERVISOR_FLAG_NAMES) expect(typeof preset.flags[flag]).toBe("boolean");
      expect(preset.kernel.length).toBeGreaterThan(0);
      expect(preset.description.length).toBeGreaterThan(0);
      expect(Object.isFrozen(preset)).toBe(true);
      expect(Object.isFrozen(preset.flags)).toBe(true);
      expect(Object.isFrozen(preset.changes)).toBe(true);
      for (const change of preset.changes) expect(Object.isFrozen(change)).toBe(true);
    }
  });

  it("documents exactly the flags that differ from the previous preset", () => {
    for (let i = 1; i < KERNEL_PRESET_NAMES.length; i++) {
      const previous = KERNEL_PRESETS[KERNEL_PRESET_NAMES[i - 1] as KernelPresetName];
      const preset = KERNEL_PRESETS[KERNEL_PRESET_NAMES[i] as KernelPresetName];
      expect(
        preset.changes.map((c) => c.flag),
        preset.name,
      ).toEqual(diffFlags(previous.flags, preset.flags));
      for (const change of preset.changes) {
        expect(change.commitOrSeries.length).toBeGreaterThan(0);
        expect(change.note.length).toBeGreaterThan(0);
      }
    }
    expect(KERNEL_PRESETS.none.changes).toEqual([]);
  });

  it("turns optimizations on monotonically from v4.19 to all", () => {
    const history = KERNEL_PRESET_NAMES.slice(1);
    for (let i = 1; i < history.length; i++) {
      const earlier = KERNEL_PRESETS[history[i - 1] as KernelPresetName].flags;
      const later = KERNEL_PRESETS[history[i] as KernelPresetName].flags;
      for (const flag of OPTIMIZATION_FLAG_NAMES) {
        if (earlier[flag]) expect(later[flag], `${history[i]} ${flag}`).toBe(true);
      }
      // tdpMmu, the only switch presets change, also only goes from off to on.
      if (earlier.tdpMmu) expect(later.tdpMmu).toBe(true);
    }
  });

  it("has none as every optimization off and all as every optimization on", () => {
    for (const flag of OPTIMIZATION_FLAG_NAMES) {
      expect(KERNEL_PRESETS.none.flags[flag]).toBe(false);
      expect(KERNEL_PRESETS.all.flags[flag]).toBe(true);
    }
    for (const name of KERNEL_PRESET_NAMES) expect(KERNEL_PRESETS[name].flags.unloadOnExit).toBe(false);
  });

  it("keeps the switches at their defaults (hugePages off), except tdpMmu before v5.15", () => {
    const noTdpMmu = new Set(["v4.19", "v4.20", "v5.2", "v5.3", "v5.6", "v5.7"]);
    for (const name of KERNEL_PRESET_NAMES) {
      const flags = KERNEL_PRESETS[name].flags;
      for (const sw of HYPERVISOR_SWITCH_NAMES) {
        const expected = sw === "hugePages" ? false : !(sw === "tdpMmu" && noTdpMmu.has(name));
        expect(flags[sw], `${name} ${sw}`).toBe(expected);
      }
    }
  });

  it("has today's kernel behaviours in none, v6.12 and all, and the earlier ones before", () => {
    const today = new Set(["none", "v6.12", "all"]);
    for (const name of KERNEL_PRESET_NAMES) {
      const flags = KERNEL_PRESETS[name].flags;
      for (const behaviour of KERNEL_BEHAVIOUR_NAMES) {
        expect(flags[behaviour], `${name} ${behaviour}`).toBe(today.has(name));
      }
    }
  });

  it("differs between v5.2 and v5.3 in exactly the six VMX flags", () => {
    const diff = diffFlags(KERNEL_PRESETS["v5.2"].flags, KERNEL_PRESETS["v5.3"].flags);
    expect(diff).toEqual([...VMX_FLAG_NAMES]);
    expect(Object.values(vmxFlagsOf(KERNEL_PRESETS["v5.2"].flags))).toEqual(VMX_FLAG_NAMES.map(() => false));
    expect(Object.values(vmxFlagsOf(KERNEL_PRESETS["v5.3"].flags))).toEqual(VMX_FLAG_NAMES.map(() => true));
  });

  it("has the VMX flags off before v5.3 and on from v5.3", () => {
    const before = new Set(["none", "v4.19", "v4.20", "v5.2"]);
    for (const name of KERNEL_PRESET_NAMES) {
      for (const flag of VMX_FLAG_NAMES) expect(KERNEL_PRESETS[name].flags[flag]).toBe(!before.has(name));
    }
  });

  it("takes its MMU part from @nestvisor/mmu's preset for the same kernel or range", () => {
    const mmuPresetOf: Record<KernelPresetName, keyof typeof MMU_FLAG_PRESETS> = {
      none: "none",
      "v4.19": "none",
      "v4.20": "v4.20",
      "v5.2": "v4.20",
      "v5.3": "v4.20",
      "v5.6": "v4.20",
      "v5.7": "v5.7",
      "v5.17": "v5.16",
      "v6.12": "v6.12",
      all: "all",
    };
    for (const name of KERNEL_PRESET_NAMES) {
      expect(mmuFlagsOf(KERNEL_PRESETS[name].flags), name).toEqual(MMU_FLAG_PRESETS[mmuPresetOf[name]]);
      if (Object.hasOwn(MMU_FLAG_PRESETS, name)) expect(mmuPresetOf[name]).toBe(name);
    }
  });

  it("has all = v6.12 plus the unmerged seed-001 patch 18, and says so", () => {
    expect(diffFlags(KERNEL_PRESETS["v6.12"].flags, KERNEL_PRESETS.all.flags)).toEqual([
      "keepRootsOnAllRoleChanges",
    ]);
    expect(KERNEL_PRESETS.all.description).toContain("patch 18");
    expect(KERNEL_PRESETS.all.changes.map((c) => c.flag)).toEqual(["keepRootsOnAllRoleChanges"]);
  });

  it("has v5.2 = v4.20 and v5.6 = v5.3 (the kernels just before a seed landed)", () => {
    expect(diffFlags(KERNEL_PRESETS["v5.2"].flags, KERNEL_PRESETS["v4.20"].flags)).toEqual([]);
    expect(diffFlags(KERNEL_PRESETS["v5.6"].flags, KERNEL_PRESETS["v5.3"].flags)).toEqual([]);
  });
});

describe("kernelPreset", () => {
  it("returns the named preset", () => {
    for (const name of KERNEL_PRESET_NAMES) expect(kernelPreset(name)).toBe(KERNEL_PRESETS[name]);
    expect(isKernelPresetName(DEFAULT_PRESET_NAME)).toBe(true);
    expect(DEFAULT_PRESET_NAME).toBe("v6.12");
  });

  it("rejects unknown names with a suggestion and the list", () => {
    const message = presetMessage("nonee");
    expect(message).toContain('unknown kernel preset "nonee" (did you mean "none"?)');
    expect(message).toContain(`known presets: ${KERNEL_PRESET_NAMES.join(", ")}`);
    expect(presetMessage("5.3")).toContain('(did you mean "v5.3"?)');
    expect(presetMessage("v5.4")).toContain("(no preset models that kernel)");
    expect(presetMessage("v5.4")).not.toContain("did you mean");
    expect(presetMessage("toString")).not.toContain("did you mean");
  });
});

describe("resolveFlags", () => {
  it("defaults to today's preset with no overrides", () => {
    expect(resolveFlags()).toEqual(KERNEL_PRESETS["v6.12"].flags);
    expect(resolveFlags("v5.2")).toEqual(KERNEL_PRESETS["v5.2"].flags);
  });

  it("applies exactly the given overrides on top of the preset", () => {
    const names = fc.constantFrom(...KERNEL_PRESET_NAMES);
    const overrides = fc.dictionary(fc.constantFrom(...HYPERVISOR_FLAG_NAMES), fc.boolean());
    fc.assert(
      fc.property(names, overrides, (name, over) => {
        const preset = KERNEL_PRESETS[name].flags;
        const flags = resolveFlags(name, over);
        for (const flag of HYPERVISOR_FLAG_NAMES) {
          const expected = Object.hasOwn(over, flag) ? over[flag as HypervisorFlagName] : preset[flag];
          expect(flags[flag]).toBe(expected);
        }
        const changed = Object.keys(over).filter(
          (f) => over[f as HypervisorFlagName] !== preset[f as HypervisorFlagName],
        );
        expect(new Set(diffFlags(preset, flags))).toEqual(new Set(changed));
        expect(Object.isFrozen(flags)).toBe(true);
      }),
    );
  });

  it("reports a bad preset or override as a FlagError", () => {
    expect(() => resolveFlags("v9.99")).toThrow(FlagError);
    expect(() => resolveFlags("v6.12", { keepRootsOnWpOnlyChang: true })).toThrow(
      /did you mean "keepRootsOnWpOnlyChange"/,
    );
    expect(() => resolveFlags("v6.12", { ept: "off" })).toThrow(
      'flag "ept" must be true or false, not "off"',
    );
  });
});
