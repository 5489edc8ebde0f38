import { MMU_FLAG_INFO, MMU_FLAG_NAMES, MMU_FLAG_PRESETS } from "@nestvisor/mmu";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  diffFlags,
  FlagError,
  formatFlags,
  HYPERVISOR_FLAG_INFO,
  HYPERVISOR_FLAG_NAMES,
  HYPERVISOR_SWITCH_DEFAULTS,
  HYPERVISOR_SWITCH_NAMES,
  type HypervisorFlags,
  isHypervisorFlagName,
  KERNEL_BEHAVIOUR_DEFAULTS,
  KERNEL_BEHAVIOUR_NAMES,
  mmuFlagsOf,
  OPTIMIZATION_FLAG_NAMES,
  parseFlagAssignment,
  parseFlagAssignments,
  VMX_FLAG_NAMES,
  vmxFlagsOf,
  withFlags,
} from "./hypervisor-flags";

function allFlags(value: boolean): HypervisorFlags {
  const overrides: Record<string, boolean> = {};
  for (const name of HYPERVISOR_FLAG_NAMES) overrides[name] = value;
  // withFlags reads every name from base, so an all-`value` base is built through it too.
  return withFlags(overrides as unknown as HypervisorFlags, {});
}

const arbitraryFlags = fc
  .array(fc.boolean(), { minLength: HYPERVISOR_FLAG_NAMES.length, maxLength: HYPERVISOR_FLAG_NAMES.length })
  .map((bits) => {
    const overrides: Record<string, boolean> = {};
    HYPERVISOR_FLAG_NAMES.forEach((name, i) => {
      overrides[name] = bits[i] ?? false;
    });
    return withFlags(allFlags(false), overrides);
  });

function thrown(fn: () => unknown): FlagError {
  try {
    fn();
  } catch (error) {
    if (error instanceof FlagError) return error;
    throw error;
  }
  throw new Error("expected a FlagError");
}

describe("HYPERVISOR_FLAG_INFO", () => {
  it("has the six seed-003 VMX flags, every MMU flag, the kernel behaviours and four switches, each once", () => {
    expect(VMX_FLAG_NAMES).toEqual([
      "readOnlyShadowFields",
      "precomputedShadowOffsets",
      "lazyRareGuestSync",
      "noVcpuPutOnVmcsSwitch",
      "nestedEntryWriteTrims",
      "controlsShadow",
    ]);
    expect(HYPERVISOR_SWITCH_NAMES).toEqual(["ept", "l1Ept", "shadowVmcs", "tdpMmu", "hugePages"]);
    expect(KERNEL_BEHAVIOUR_NAMES).toEqual(["hostDebugctlPerEntry"]);
    expect(HYPERVISOR_FLAG_NAMES).toEqual([
      ...VMX_FLAG_NAMES,
      ...MMU_FLAG_NAMES,
      ...KERNEL_BEHAVIOUR_NAMES,
      ...HYPERVISOR_SWITCH_NAMES,
    ]);
    expect(new Set(HYPERVISOR_FLAG_NAMES).size).toBe(HYPERVISOR_FLAG_NAMES.length);
  });

  it("gives every flag a kind, seed, since, reference, summary and baseline", () => {
    for (const info of HYPERVISOR_FLAG_INFO) {
      expect(Object.isFrozen(info)).toBe(true);
      for (const text of [info.seed, info.since, info.commitOrSeries, info.summary, info.baseline]) {
        expect(text.length).toBeGreaterThan(0);
      }
    }
    const kinds = HYPERVISOR_FLAG_INFO.map((f) => f.kind);
    expect(kinds.filter((k) => k === "vmx")).toHaveLength(6);
    expect(kinds.filter((k) => k === "mmu")).toHaveLength(MMU_FLAG_NAMES.length);
    expect(kinds.filter((k) => k === "kernel")).toHaveLength(KERNEL_BEHAVIOUR_NAMES.length);
    expect(kinds.filter((k) => k === "switch")).toHaveLength(5);
  });

  it("gives today's kernel behaviours as the defaults, each naming its upstream commit", () => {
    expect(Object.keys(KERNEL_BEHAVIOUR_DEFAULTS)).toEqual([...KERNEL_BEHAVIOUR_NAMES]);
    for (const info of HYPERVISOR_FLAG_INFO.filter((f) => f.kind === "kernel")) {
      expect(KERNEL_BEHAVIOUR_DEFAULTS[info.name as keyof typeof KERNEL_BEHAVIOUR_DEFAULTS]).toBe(true);
      expect(info.commitOrSeries).toMatch(/^[0-9a-f]{12} /);
    }
  });

  it("marks the VMX flags as seed 003, landed in v5.3", () => {
    for (const info of HYPERVISOR_FLAG_INFO.filter((f) => f.kind === "vmx")) {
      expect(info.seed).toBe("003");
      expect(info.since).toBe("v5.3");
      expect(info.commitOrSeries).toContain("VMX optimizations");
    }
  });

  it("reuses MMU_FLAG_INFO's seed, since, summary and baseline", () => {
    for (const mmu of MMU_FLAG_INFO) {
      const info = HYPERVISOR_FLAG_INFO.find((f) => f.name === mmu.name);
      expect(info).toMatchObject({
        kind: "mmu",
        seed: mmu.seed,
        since: mmu.since,
        summary: mmu.summary,
        baseline: mmu.baseline,
      });
    }
  });

  it("counts every VMX and MMU flag except unloadOnExit as an optimization", () => {
    expect(OPTIMIZATION_FLAG_NAMES).toHaveLength(6 + MMU_FLAG_NAMES.length - 1);
    expect(OPTIMIZATION_FLAG_NAMES).not.toContain("unloadOnExit");
    for (const name of HYPERVISOR_SWITCH_NAMES) expect(OPTIMIZATION_FLAG_NAMES).not.toContain(name);
    for (const name of KERNEL_BEHAVIOUR_NAMES) expect(OPTIMIZATION_FLAG_NAMES).not.toContain(name);
  });
});

describe("isHypervisorFlagName", () => {
  it("accepts exactly the flag names", () => {
    for (const name of HYPERVISOR_FLAG_NAMES) expect(isHypervisorFlagName(name)).toBe(true);
    expect(isHypervisorFlagName("ro_shadow_fields")).toBe(false);
    expect(isHypervisorFlagName("toString")).toBe(false);
    expect(isHypervisorFlagName("")).toBe(false);
  });
});

describe("mmuFlagsOf / vmxFlagsOf", () => {
  it("extract exactly their part, frozen", () => {
    const flags = withFlags(allFlags(false), { splitGuestMmu: true, controlsShadow: true, ept: true });
    const mmu = mmuFlagsOf(flags);
    const vmx = vmxFlagsOf(flags);
    expect(Object.keys(mmu)).toEqual([...MMU_FLAG_NAMES]);
    expect(Object.keys(vmx)).toEqual([...VMX_FLAG_NAMES]);
    expect(mmu.splitGuestMmu).toBe(true);
    expect(mmu.reuseCurrentRoot).toBe(false);
    expect(vmx.controlsShadow).toBe(true);
    expect(vmx.readOnlyShadowFields).toBe(false);
    expect(Object.isFrozen(mmu)).toBe(true);
    expect(Object.isFrozen(vmx)).toBe(true);
  });

  it("round-trips the MMU presets of @nestvisor/mmu", () => {
    for (const preset of Object.values(MMU_FLAG_PRESETS)) {
      expect(mmuFlagsOf(withFlags(allFlags(true), preset))).toEqual(preset);
    }
  });
});

describe("withFlags", () => {
  it("applies overrides to a copy and freezes it", () => {
    const base = allFlags(true);
    const out = withFlags(base, { tdpMmu: false, lazyRareGuestSync: false });
    expect(out.tdpMmu).toBe(false);
    expect(out.lazyRareGuestSync).toBe(false);
    expect(base.tdpMmu).toBe(true);
    expect(diffFlags(base, out)).toEqual(["lazyRareGuestSync", "tdpMmu"]);
    expect(Object.isFrozen(out)).toBe(true);
    expect(Object.keys(out)).toEqual([...HYPERVISOR_FLAG_NAMES]);
  });

  it("rejects an unknown name with a suggestion and the list of flags", () => {
    const error = thrown(() => withFlags(allFlags(true), { read_only_shadow_fields: false }));
    expect(error.name).toBe("FlagError");
    expect(error.message).toContain('unknown hypervisor flag "read_only_shadow_fields"');
    expect(error.message).toContain('(did you mean "readOnlyShadowFields"?)');
    expect(error.message).toContain("known flags: readOnlyShadowFields, ");
    expect(thrown(() => withFlags(allFlags(true), { tdpMmmu: true })).message).toContain(
      '(did you mean "tdpMmu"?)',
    );
    expect(thrown(() => withFlags(allFlags(true), { zzzzzz: true })).message).not.toContain("did you mean");
  });

  it("rejects a value that is not a boolean, naming the flag and the value", () => {
    expect(thrown(() => withFlags(allFlags(true), { ept: "on" })).message).toBe(
      'flag "ept" must be true or false, not "on"',
    );
    expect(thrown(() => withFlags(allFlags(true), { ept: 1 })).message).toContain('"ept"');
    expect(thrown(() => withFlags(allFlags(true), { ept: null })).message).toContain("not null");
    expect(thrown(() => withFlags(allFlags(true), { ept: undefined })).message).toContain("not undefined");
  });
});

describe("parseFlagAssignment", () => {
  it("accepts on/off, true/false and 1/0 in any case, with spaces around", () => {
    expect(parseFlagAssignment("ept=on")).toEqual({ name: "ept", value: true });
    expect(parseFlagAssignment("ept=off")).toEqual({ name: "ept", value: false });
    expect(parseFlagAssignment("tdpMmu=true")).toEqual({ name: "tdpMmu", value: true });
    expect(parseFlagAssignment("tdpMmu=FALSE")).toEqual({ name: "tdpMmu", value: false });
    expect(parseFlagAssignment(" controlsShadow = 1 ")).toEqual({ name: "controlsShadow", value: true });
    expect(parseFlagAssignment("controlsShadow=0")).toEqual({ name: "controlsShadow", value: false });
  });

  it("names the bad text in every error", () => {
    expect(thrown(() => parseFlagAssignment("ept")).message).toBe(
      'flag assignment "ept" has no "=": write name=on or name=off',
    );
    expect(thrown(() => parseFlagAssignment("=on")).message).toContain('"=on" has no flag name');
    expect(thrown(() => parseFlagAssignment("ept=yes")).message).toBe(
      'flag assignment "ept=yes": value "yes" for "ept" is not one of on, off, true, false, 1, 0',
    );
    expect(thrown(() => parseFlagAssignment("ept=")).message).toContain('value "" for "ept"');
    expect(thrown(() => parseFlagAssignment("ept=constructor")).message).toContain('value "constructor"');
    const unknown = thrown(() => parseFlagAssignment("lazyRareGuestSinc=on"));
    expect(unknown.message).toContain('unknown hypervisor flag "lazyRareGuestSinc"');
    expect(unknown.message).toContain('(did you mean "lazyRareGuestSync"?)');
  });
});

describe("parseFlagAssignments", () => {
  it("reads a comma-separated list and skips empty items", () => {
    expect(parseFlagAssignments("ept=off, tdpMmu=on,,")).toEqual({ ept: false, tdpMmu: true });
    expect(parseFlagAssignments("")).toEqual({});
  });

  it("rejects a flag assigned twice", () => {
    expect(thrown(() => parseFlagAssignments("ept=on,ept=off")).message).toBe(
      'flag "ept" is assigned more than once in "ept=on,ept=off"',
    );
  });
});

describe("formatFlags", () => {
  it("prints every flag as name=on/off in order", () => {
    const text = formatFlags(withFlags(allFlags(false), { ept: true }));
    expect(text.startsWith("readOnlyShadowFields=off,")).toBe(true);
    expect(text).toContain(",ept=on,l1Ept=off,");
    expect(text.split(",")).toHaveLength(HYPERVISOR_FLAG_NAMES.length);
  });

  it("round-trips through parseFlagAssignments from any base", () => {
    fc.assert(
      fc.property(arbitraryFlags, arbitraryFlags, (flags, base) => {
        const parsed = withFlags(base, parseFlagAssignments(formatFlags(flags)));
        expect(parsed).toEqual(flags);
        expect(diffFlags(parsed, flags)).toEqual([]);
      }),
    );
  });
});

describe("diffFlags", () => {
  it("lists exactly the differing names, in flag order", () => {
    fc.assert(
      fc.property(arbitraryFlags, arbitraryFlags, (a, b) => {
        const diff = diffFlags(a, b);
        for (const name of HYPERVISOR_FLAG_NAMES) expect(diff.includes(name)).toBe(a[name] !== b[name]);
        expect(diff).toEqual(HYPERVISOR_FLAG_NAMES.filter((n) => diff.includes(n)));
      }),
    );
  });
});

describe("HYPERVISOR_SWITCH_DEFAULTS", () => {
  it("is every switch on but hugePages (4-KiB host pages), frozen", () => {
    expect(HYPERVISOR_SWITCH_DEFAULTS).toEqual({
      ept: true,
      l1Ept: true,
      shadowVmcs: true,
      tdpMmu: true,
      hugePages: false,
    });
    expect(Object.isFrozen(HYPERVISOR_SWITCH_DEFAULTS)).toBe(true);
  });
});
