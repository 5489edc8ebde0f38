import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { UsageError } from "./errors";
import {
  COMMON_OPTIONS,
  integerOption,
  listOption,
  type OptionSpec,
  parseInteger,
  parseOptions,
  repeatedOption,
  stringOption,
} from "./options";

/** The shapes of option the commands declare: lists, repeatable, single values, booleans. */
const SPECS: readonly OptionSpec[] = [
  { name: "workloads", short: "w", type: "string", description: "list" },
  { name: "levels", short: "l", type: "string", description: "list" },
  { name: "presets", short: "p", type: "string", description: "list" },
  { name: "flag", short: "f", type: "string", multiple: true, description: "repeatable" },
  { name: "iterations", short: "n", type: "string", description: "number" },
  { name: "profile", type: "string", description: "one value" },
  { name: "out", short: "o", type: "string", description: "one value" },
  { name: "ablate", type: "boolean", description: "switch" },
  { name: "json", type: "boolean", description: "switch" },
  ...COMMON_OPTIONS,
];

const OPTION_WORDS = SPECS.flatMap((s) => [`--${s.name}`, ...(s.short === undefined ? [] : [`-${s.short}`])]);

/** Tokens a user might type: known options (bare, with `=value`), values that look like options, noise. */
const token = fc.oneof(
  fc.constantFrom(...OPTION_WORDS),
  fc.constantFrom(
    "--",
    "-",
    "-0",
    "-5",
    "1e3",
    "0x10",
    "NaN",
    "Infinity",
    "1.5",
    "9007199254740993",
    "",
    "=",
  ),
  fc.tuple(fc.constantFrom(...SPECS.map((s) => `--${s.name}`)), fc.string()).map(([o, v]) => `${o}=${v}`),
  fc.string().map((s) => `--${s}`),
  fc.string().map((s) => `-${s}`),
  fc.string(),
);

/** Runs `work`; anything thrown must be a one-line UsageError. Returns the message, if any. */
function usageErrorOf(work: () => void): string | undefined {
  try {
    work();
    return undefined;
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    const message = (error as UsageError).message;
    expect(message).not.toBe("");
    expect(message).not.toMatch(/\n/);
    return message;
  }
}

describe("parseOptions on arbitrary argv", () => {
  it("throws nothing but a one-line UsageError, and neither do the typed accessors", () => {
    fc.assert(
      fc.property(fc.array(token, { maxLength: 10 }), (argv) => {
        const message = usageErrorOf(() => {
          const parsed = parseOptions(argv, SPECS);
          for (const spec of SPECS) {
            usageErrorOf(() => stringOption(parsed.values, spec.name));
            usageErrorOf(() => repeatedOption(parsed.values, spec.name));
            usageErrorOf(() => listOption(parsed.values, spec.name));
            usageErrorOf(() => integerOption(parsed.values, spec.name, 1, 100_000));
          }
        });
        // Every parse error names what is wrong; none is Node's vague "bad value".
        if (message !== undefined) expect(message).not.toMatch(/^(bad value for |option an option )/);
      }),
      { numRuns: 2000 },
    );
  });

  it("keeps every value of a repeated string option, in order", () => {
    fc.assert(
      fc.property(
        fc.array(fc.stringMatching(/^[a-z0-9.]{1,8}$/), { minLength: 1, maxLength: 5 }),
        (names) => {
          const parsed = parseOptions(
            names.flatMap((n) => ["-w", n]),
            SPECS,
          );
          expect(repeatedOption(parsed.values, "workloads")).toEqual(names);
          expect(listOption(parsed.values, "workloads")).toEqual(names);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe("parseInteger on arbitrary text", () => {
  it("returns a safe integer in range or throws a UsageError quoting the text and the range", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.bigInt({ min: -(2n ** 60n), max: 2n ** 60n }).map(String),
          fc.double().map(String),
          fc.nat().map((n) => `0x${n.toString(16)}`),
        ),
        (text) => {
          let value: number | undefined;
          const message = usageErrorOf(() => {
            value = parseInteger(text, "--top", 0, 1000);
          });
          if (message === undefined) {
            expect(Number.isSafeInteger(value)).toBe(true);
            expect(value).toBeGreaterThanOrEqual(0);
            expect(value).toBeLessThanOrEqual(1000);
          } else {
            expect(message).toBe(`--top must be an integer in [0, 1000], not ${JSON.stringify(text)}`);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("reads every integer in range written in decimal, hex or with _ between digits", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 100_000 }), (n) => {
        expect(parseInteger(String(n), "n", 1, 100_000)).toBe(n);
        expect(parseInteger(`0x${n.toString(16)}`, "n", 1, 100_000)).toBe(n);
        expect(parseInteger(` ${n.toLocaleString("en-US").replace(/,/g, "_")} `, "n", 1, 100_000)).toBe(n);
      }),
      { numRuns: 300 },
    );
  });
});

describe("option defects found by the robustness audit (regressions)", () => {
  it("a list option given twice keeps both values instead of the last (-w a -w b)", () => {
    const parsed = parseOptions(["-w", "cpuid", "-w", "vmcall,toggle_cr0_wp"], SPECS);
    expect(listOption(parsed.values, "workloads")).toEqual(["cpuid", "vmcall", "toggle_cr0_wp"]);
  });

  it("a single-valued option given twice with different values is refused, naming both", () => {
    const parsed = parseOptions(["-n", "5", "--iterations=7"], SPECS);
    expect(() => stringOption(parsed.values, "iterations")).toThrow(
      new UsageError('option --iterations is given 2 times ("5", "7"); give it once'),
    );
    expect(() => integerOption(parsed.values, "iterations", 1, 10)).toThrow(UsageError);
    // The same value twice is no contradiction.
    expect(integerOption(parseOptions(["-n", "5", "-n", "5"], SPECS).values, "iterations", 1, 10)).toBe(5);
  });

  it("an empty value is refused, naming the option", () => {
    for (const argv of [["--profile="], ["--out", ""], ["--profile", "  "]]) {
      expect(() => stringOption(parseOptions(argv, SPECS).values, argv[0]!.replace(/^--|=$/g, ""))).toThrow(
        /^option --(profile|out) needs a value, not "\s*"$/,
      );
    }
  });

  it("a value starting with '-' after an option names the option and that value", () => {
    expect(() => parseOptions(["--iterations", "-5"], SPECS)).toThrow(
      new UsageError(
        'option --iterations needs a value, but "-5" follows it (to give a value that starts with "-", write --iterations=-5)',
      ),
    );
    expect(() => parseOptions(["-o", "--json"], SPECS)).toThrow(/^option --out needs a value, but "--json"/);
    // After the option, with =, it is a value (which the typed accessor then checks).
    const parsed = parseOptions(["--iterations=-5"], SPECS);
    expect(() => integerOption(parsed.values, "iterations", 1, 10)).toThrow(
      '--iterations must be an integer in [1, 10], not "-5"',
    );
  });

  it("underscores are accepted only between digits", () => {
    for (const text of ["_1_", "1__0", "_", "0x_ff", "1_"])
      expect(() => parseInteger(text, "n", 0, 10_000)).toThrow(UsageError);
    expect(parseInteger("0xff_ff", "n", 0, 100_000)).toBe(0xffff);
  });

  it("an unknown option is quoted whole, even with a quote in it", () => {
    expect(() => parseOptions(["--a'b"], SPECS)).toThrow(new UsageError("unknown option --a'b"));
  });
});
