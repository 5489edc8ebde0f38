import { HYPERVISOR_FLAG_NAMES, KERNEL_PRESET_NAMES } from "@nestvisor/hypervisor";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { UsageError } from "../framework/errors";
import { checkPresets, parseFlagOptions, presetFlags } from "./flag-args";

const FLAG = fc.constantFrom(...HYPERVISOR_FLAG_NAMES);
const WORD = fc.constantFrom("on", "off", "true", "false", "1", "0", "ON", " off ");
const ON = new Set(["on", "true", "1"]);

/** `--flag` items as typed: assignments, lists of them, and noise. */
const item = fc.oneof(
  fc.tuple(FLAG, WORD).map(([name, word]) => `${name}=${word}`),
  fc
    .array(fc.tuple(FLAG, WORD), { maxLength: 3 })
    .map((pairs) => pairs.map(([n, w]) => `${n}=${w}`).join(",")),
  fc.tuple(FLAG, fc.string()).map(([name, word]) => `${name}=${word}`),
  fc.string(),
);

describe("parseFlagOptions on arbitrary --flag values", () => {
  it("gives known flags with booleans, or throws a one-line UsageError", () => {
    fc.assert(
      fc.property(fc.array(item, { maxLength: 5 }), (items) => {
        try {
          const out = parseFlagOptions(items);
          for (const [name, value] of Object.entries(out)) {
            expect(HYPERVISOR_FLAG_NAMES).toContain(name);
            expect(typeof value).toBe("boolean");
          }
        } catch (error) {
          expect(error).toBeInstanceOf(UsageError);
          expect((error as Error).message).not.toMatch(/\n/);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it("agrees with the last word given for each flag when no flag is given both ways", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(FLAG, WORD), { maxLength: 8 }), (pairs) => {
        const want = new Map<string, boolean>();
        let conflict = false;
        for (const [name, word] of pairs) {
          const value = ON.has(word.trim().toLowerCase());
          if (want.has(name) && want.get(name) !== value) conflict = true;
          want.set(name, value);
        }
        const items = pairs.map(([name, word]) => `${name}=${word}`);
        if (conflict) expect(() => parseFlagOptions(items)).toThrow(/is set both (on and off|off and on)/);
        else expect(parseFlagOptions(items)).toEqual(Object.fromEntries(want));
      }),
      { numRuns: 500 },
    );
  });

  it("checks preset names: a known one passes, anything else is a UsageError", () => {
    fc.assert(
      fc.property(fc.oneof(fc.constantFrom(...KERNEL_PRESET_NAMES), fc.string()), (name) => {
        if ((KERNEL_PRESET_NAMES as readonly string[]).includes(name))
          expect(checkPresets([name])).toEqual([name]);
        else expect(() => presetFlags(name, {})).toThrow(UsageError);
      }),
      { numRuns: 300 },
    );
  });
});

describe("flag defects found by the robustness audit (regressions)", () => {
  it("a flag set both off and on is refused instead of the last one winning silently", () => {
    expect(() => parseFlagOptions(["ept=off", "ept=on"])).toThrow(
      new UsageError('flag "ept" is set both off and on; set it once'),
    );
    expect(() => parseFlagOptions(["shadowVmcs=on,shadowVmcs=0"])).toThrow(
      /"shadowVmcs" is set both on and off/,
    );
    // The same value twice is no contradiction.
    expect(parseFlagOptions(["ept=off", "ept=0"])).toEqual({ ept: false });
  });
});
