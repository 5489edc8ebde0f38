import { describe, expect, it } from "vitest";
import {
  DEFAULT_MMU_FLAGS,
  diffMmuFlags,
  MMU_FLAG_INFO,
  MMU_FLAG_NAMES,
  MMU_FLAG_PRESETS,
  mmuFlagPreset,
  mmuFlags,
} from "./mmu-flags";

describe("MMU flag presets (kvm-mmu.md §7.4)", () => {
  it("today is every merged optimization on; all adds only the unmerged patch 18", () => {
    expect(DEFAULT_MMU_FLAGS).toBe(MMU_FLAG_PRESETS.today);
    expect(mmuFlagPreset("v6.12")).toEqual(DEFAULT_MMU_FLAGS);
    expect(DEFAULT_MMU_FLAGS.unloadOnExit).toBe(false);
    expect(DEFAULT_MMU_FLAGS.keepRootsOnAllRoleChanges).toBe(false);
    for (const name of MMU_FLAG_NAMES)
      if (name !== "unloadOnExit" && name !== "keepRootsOnAllRoleChanges")
        expect(DEFAULT_MMU_FLAGS[name]).toBe(true);
    expect(diffMmuFlags(DEFAULT_MMU_FLAGS, mmuFlagPreset("all"))).toEqual(["keepRootsOnAllRoleChanges"]);
  });

  it("none is every flag off", () => {
    for (const name of MMU_FLAG_NAMES) expect(MMU_FLAG_PRESETS.none[name]).toBe(false);
  });

  it("each release turns on what its series added", () => {
    expect(diffMmuFlags(MMU_FLAG_PRESETS.none, mmuFlagPreset("v4.20"))).toEqual([
      "splitGuestMmu",
      "skipUnchangedMmuInit",
    ]);
    expect(diffMmuFlags(mmuFlagPreset("v4.20"), mmuFlagPreset("v5.7"))).toEqual([
      "fastSwitchIgnoresCr3ForDirect",
      "reuseCurrentRoot",
    ]);
    expect(diffMmuFlags(mmuFlagPreset("v5.7"), mmuFlagPreset("v5.16"))).toEqual(["keepRootsOnPgeChange"]);
    expect(diffMmuFlags(mmuFlagPreset("v5.16"), mmuFlagPreset("v5.18"))).toEqual(["keepRootsOnRoleChange"]);
    expect(diffMmuFlags(mmuFlagPreset("v5.18"), mmuFlagPreset("v6.4"))).toEqual([
      "keepRootsOnWpOnlyChange",
      "preserveTdpRoots",
    ]);
  });

  it("names the unknown preset", () => {
    expect(() => mmuFlagPreset("v3.10")).toThrow(/unknown MMU flag preset "v3\.10".*none/);
    expect(() => mmuFlagPreset("toString")).toThrow(RangeError);
  });

  it("describes every flag once", () => {
    expect(new Set(MMU_FLAG_INFO.map((f) => f.name)).size).toBe(MMU_FLAG_INFO.length);
    expect(Object.keys(DEFAULT_MMU_FLAGS).sort()).toEqual([...MMU_FLAG_NAMES].sort());
  });
});

describe("mmuFlags validator", () => {
  it("applies overrides to a base and freezes the result", () => {
    const f = mmuFlags({ reuseCurrentRoot: false }, MMU_FLAG_PRESETS.today);
    expect(f.reuseCurrentRoot).toBe(false);
    expect(f.splitGuestMmu).toBe(true);
    expect(Object.isFrozen(f)).toBe(true);
  });

  it("names an unknown flag and a non-boolean value", () => {
    expect(() => mmuFlags({ reuseCurrentRot: true })).toThrow(/unknown MMU flag "reuseCurrentRot"/);
    expect(() => mmuFlags({ splitGuestMmu: "yes" })).toThrow(
      /"splitGuestMmu" must be true or false, not "yes"/,
    );
  });
});
