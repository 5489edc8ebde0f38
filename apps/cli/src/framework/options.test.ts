import { describe, expect, it } from "vitest";
import { UsageError } from "./errors";
import {
  integerOption,
  listOption,
  type OptionSpec,
  parseInteger,
  parseOptions,
  repeatedOption,
  stringOption,
} from "./options";

const SPECS: OptionSpec[] = [
  { name: "presets", type: "string", description: "p" },
  { name: "flag", type: "string", multiple: true, description: "f" },
  { name: "json", type: "boolean", description: "j" },
  { name: "level", type: "string", description: "l" },
];

describe("parseOptions", () => {
  it("collects values, repeated options and positionals", () => {
    const parsed = parseOptions(
      ["x", "--presets", "v5.2,v6.12", "--flag", "a=on", "--flag=b=off", "--json"],
      SPECS,
    );
    expect(parsed.positionals).toEqual(["x"]);
    expect(listOption(parsed.values, "presets")).toEqual(["v5.2", "v6.12"]);
    expect(repeatedOption(parsed.values, "flag")).toEqual(["a=on", "b=off"]);
    expect(parsed.values.json).toBe(true);
    expect(stringOption(parsed.values, "level")).toBeUndefined();
  });

  it("turns Node's messages into one-line usage errors with suggestions", () => {
    expect(() => parseOptions(["--preset", "x"], SPECS)).toThrow(
      /unknown option --preset \(did you mean "--presets"\?\)/,
    );
    expect(() => parseOptions(["--level"], SPECS)).toThrow(/option --level needs a value/);
    expect(() => parseOptions(["--json=1"], SPECS)).toThrow(UsageError);
    // A negative number among the arguments (`decode cr0 -1`) is named as such.
    expect(() => parseOptions(["cr0", "-1"], SPECS)).toThrow(
      /unknown option -1: a negative number is not an option \(to pass text that starts with "-" as an argument, put -- before it\)/,
    );
  });

  it("checks integers and their range", () => {
    expect(parseInteger("0x10", "n", 0, 100)).toBe(16);
    expect(parseInteger("1_000", "n", 0, 10_000)).toBe(1000);
    expect(() => parseInteger("ten", "--iterations", 1, 10)).toThrow(
      /--iterations must be an integer in \[1, 10\], not "ten"/,
    );
    expect(() => parseInteger("0", "n", 1, 10)).toThrow(UsageError);
    expect(integerOption(parseOptions(["--level", "3"], SPECS).values, "level", 1, 3)).toBe(3);
  });

  it("rejects an empty list", () => {
    expect(() => listOption(parseOptions(["--presets", ","], SPECS).values, "presets")).toThrow(
      /needs at least one value/,
    );
  });
});
