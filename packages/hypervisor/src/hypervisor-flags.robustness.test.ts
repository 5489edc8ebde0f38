import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  FlagError,
  HYPERVISOR_FLAG_NAMES,
  HYPERVISOR_SWITCH_DEFAULTS,
  parseFlagAssignment,
  parseFlagAssignments,
  withFlags,
} from "./hypervisor-flags";
import { kernelPreset, resolveFlags } from "./kernel-presets";

const FLAG = fc.constantFrom(...HYPERVISOR_FLAG_NAMES);

/** `name=value` text as typed: right, misspelt, noise around `=`, any string. */
const assignment = fc.oneof(
  fc
    .tuple(FLAG, fc.constantFrom("on", "off", "TRUE", "0", " 1 ", "yes", "", "onn"))
    .map(([n, w]) => `${n}=${w}`),
  fc.tuple(fc.string(), fc.string()).map(([n, w]) => `${n}=${w}`),
  fc.constantFrom("__proto__=on", "constructor=off", "toString=1", "hasOwnProperty=0"),
  fc.string(),
);

function onlyFlagErrors(work: () => void): void {
  try {
    work();
  } catch (error) {
    expect(error).toBeInstanceOf(FlagError);
    expect((error as Error).message).not.toBe("");
  }
}

describe("flag parsing on arbitrary input", () => {
  it("parseFlagAssignment gives a known flag and a boolean, or a FlagError quoting the text", () => {
    fc.assert(
      fc.property(assignment, (text) => {
        try {
          const { name, value } = parseFlagAssignment(text);
          expect(HYPERVISOR_FLAG_NAMES).toContain(name);
          expect(typeof value).toBe("boolean");
        } catch (error) {
          expect(error).toBeInstanceOf(FlagError);
          const message = (error as Error).message;
          // The whole text, or the unknown name in it.
          expect(message.includes(`"${text}"`) || message.includes("unknown hypervisor flag")).toBe(true);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it("parseFlagAssignments on any comma-separated text throws only FlagError", () => {
    fc.assert(
      fc.property(fc.array(assignment, { maxLength: 5 }), (items) => {
        onlyFlagErrors(() => parseFlagAssignments(items.join(",")));
      }),
      { numRuns: 500 },
    );
  });

  it("withFlags on any record (JSON from a file) gives a complete flag set or a FlagError", () => {
    const overrides = fc.oneof(
      fc.dictionary(fc.oneof(FLAG, fc.string()), fc.jsonValue(), { maxKeys: 4 }),
      fc.dictionary(FLAG, fc.boolean(), { maxKeys: 6 }),
      fc.constant(JSON.parse('{"__proto__": true}') as Record<string, unknown>),
    );
    fc.assert(
      fc.property(overrides, (record) => {
        try {
          const flags = withFlags(resolveFlags(), record);
          expect(Object.keys(flags).sort()).toEqual([...HYPERVISOR_FLAG_NAMES].sort());
          for (const [name, value] of Object.entries(record))
            expect(flags[name as keyof typeof flags]).toBe(value);
        } catch (error) {
          expect(error).toBeInstanceOf(FlagError);
        }
      }),
      { numRuns: 500 },
    );
  });

  it("kernelPreset on any name gives a preset with every switch set, or a FlagError", () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.string(), fc.constantFrom("v5.2", "5.2", "v5.4", "V6.12", "all", "")),
        (name) => {
          try {
            const preset = kernelPreset(name);
            for (const key of Object.keys(HYPERVISOR_SWITCH_DEFAULTS)) expect(key in preset.flags).toBe(true);
          } catch (error) {
            expect(error).toBeInstanceOf(FlagError);
            expect((error as Error).message).toContain(`unknown kernel preset "${name}"`);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
