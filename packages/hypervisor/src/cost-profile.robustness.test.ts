import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { COST_EVENT_NAMES } from "./cost-catalogs";
import {
  CostProfileError,
  MAX_EVENT_CYCLES,
  MAX_TSC_GHZ,
  MIN_TSC_GHZ,
  parseCostProfile,
  parseCostProfileText,
} from "./cost-profile";
import { validCostProfileJson } from "./testing/cost-profile-json";

/** Runs `parse`; it may only return a profile or throw a CostProfileError with at least one issue. */
function outcome(parse: () => unknown): CostProfileError | undefined {
  try {
    parse();
    return undefined;
  } catch (error) {
    expect(error).toBeInstanceOf(CostProfileError);
    expect((error as CostProfileError).issues.length).toBeGreaterThan(0);
    return error as CostProfileError;
  }
}

const EVENT = fc.constantFrom(...COST_EVENT_NAMES);

describe("parseCostProfile on arbitrary input", () => {
  it("throws nothing but a CostProfileError, whatever the value", () => {
    fc.assert(
      fc.property(fc.anything({ withNullPrototype: true, withBigInt: true, withMap: true }), (value) => {
        outcome(() => parseCostProfile(value, "any.json"));
      }),
      { numRuns: 500 },
    );
  });

  it("throws nothing but a CostProfileError, whatever the text", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json()), (text) => {
        outcome(() => parseCostProfileText(text, "any.json"));
      }),
      { numRuns: 500 },
    );
  });

  it("accepts an event price exactly when it is a number in [0, MAX_EVENT_CYCLES], else names the event", () => {
    fc.assert(
      fc.property(EVENT, fc.oneof(fc.double(), fc.jsonValue()), (event, cycles) => {
        const json = validCostProfileJson();
        json.events[event] = { cycles, assumption: "x" };
        const error = outcome(() => parseCostProfile(json, "p.json"));
        const good = typeof cycles === "number" && cycles >= 0 && cycles <= MAX_EVENT_CYCLES;
        expect(error === undefined).toBe(good);
        if (error !== undefined) expect(error.issues[0]!.path).toEqual(["events", event, "cycles"]);
      }),
      { numRuns: 500 },
    );
  });

  it("accepts a TSC rate exactly when it is a number in [MIN_TSC_GHZ, MAX_TSC_GHZ]", () => {
    fc.assert(
      fc.property(fc.double(), (value) => {
        const json = { ...validCostProfileJson(), tscGHz: { value, assumption: "x" } };
        const error = outcome(() => parseCostProfile(json, "p.json"));
        expect(error === undefined).toBe(value >= MIN_TSC_GHZ && value <= MAX_TSC_GHZ);
      }),
      { numRuns: 300 },
    );
  });
});

/**
 * `value` as pretty JSON, with the member named by `path` given a second time, last in its object
 * (with the value `again`).
 */
function withDuplicate(value: unknown, path: readonly string[], again: unknown, indent = ""): string {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return JSON.stringify(value);
  const inner = `${indent}  `;
  const members = Object.entries(value).map(
    ([key, item]) =>
      `${inner}${JSON.stringify(key)}: ${withDuplicate(item, key === path[0] ? path.slice(1) : [], again, inner)}`,
  );
  if (path.length === 1) members.push(`${inner}${JSON.stringify(path[0])}: ${JSON.stringify(again)}`);
  return `{\n${members.join(",\n")}\n${indent}}`;
}

/** The text at 1-based `line` and `column`. */
function at(text: string, line: number, column: number): string {
  return (text.split("\n")[line - 1] ?? "").slice(column - 1);
}

describe("parseCostProfileText and duplicate keys", () => {
  const json = validCostProfileJson();
  const memberPaths: string[][] = [];
  for (const key of Object.keys(json)) memberPaths.push([key]);
  for (const key of ["value", "source"]) memberPaths.push(["tscGHz", key]);
  for (const event of COST_EVENT_NAMES) {
    memberPaths.push(["events", event]);
    for (const key of ["cycles", "assumption"]) memberPaths.push(["events", event, key]);
  }

  it("refuses any member given twice, whatever the second value, naming its path and both places", () => {
    fc.assert(
      fc.property(fc.constantFrom(...memberPaths), fc.jsonValue({ maxDepth: 1 }), (path, again) => {
        const text = withDuplicate(json, path, again);
        const error = outcome(() => parseCostProfileText(text, "dup.json"))!;
        expect(error.issues).toHaveLength(1);
        const issue = error.issues[0]!;
        expect(issue.path).toEqual(path);
        const key = path[path.length - 1]!;
        const match = /at line (\d+), column (\d+) \(first at line (\d+), column (\d+)\)/.exec(issue.message);
        expect(match).not.toBeNull();
        const [line, column, firstLine, firstColumn] = match!.slice(1).map(Number) as [
          number,
          number,
          number,
          number,
        ];
        expect(issue.line).toBe(line);
        expect(line).toBeGreaterThan(firstLine);
        expect(at(text, line, column).startsWith(`${JSON.stringify(key)}: ${JSON.stringify(again)}`)).toBe(
          true,
        );
        expect(at(text, firstLine, firstColumn).startsWith(`${JSON.stringify(key)}: `)).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it("still accepts the same profile written once", () => {
    expect(parseCostProfileText(withDuplicate(json, [], null), "once.json").name).toBe("test-profile");
  });

  it("refuses a profile of 200,000 duplicate keys quickly, listing the first 100", () => {
    const many = `{"events": {${Array.from({ length: 200_000 }, () => '"VMREAD": {}').join(",\n")}}}`;
    const started = performance.now();
    const error = outcome(() => parseCostProfileText(many, "many.json"))!;
    expect(performance.now() - started).toBeLessThan(2000);
    expect(error.issues).toHaveLength(101);
    expect(error.issues[0]!.line).toBe(2);
    expect(error.issues[100]!.message).toBe("199899 more duplicate keys, not listed");
  });
});

describe("cost profile defects found by the robustness audit (regressions)", () => {
  it("refuses a price so large that cycle totals overflow, naming the field and the value", () => {
    const json = validCostProfileJson();
    json.events.VMREAD = { cycles: 1e308, assumption: "typo" };
    expect(() => parseCostProfile(json, "p.json")).toThrow(
      new CostProfileError("p.json", [
        { path: ["events", "VMREAD", "cycles"], message: "expected at most 1000000000 cycles, got 1e+308" },
      ]),
    );
  });

  it("refuses a TSC rate that prints cycles as Infinity µs, or an absurdly large one", () => {
    const tiny = { ...validCostProfileJson(), tscGHz: { value: 1e-320, assumption: "x" } };
    expect(() => parseCostProfile(tiny, "p.json")).toThrow(
      "p.json: tscGHz.value: expected at least 0.001 GHz, got 1e-320",
    );
    const huge = { ...validCostProfileJson(), tscGHz: { value: 1e300, assumption: "x" } };
    expect(() => parseCostProfile(huge, "p.json")).toThrow(
      "p.json: tscGHz.value: expected at most 1000 GHz, got 1e+300",
    );
  });

  it("locates and suggests only the first issues of a file with thousands (it took minutes)", () => {
    const json = validCostProfileJson();
    for (let i = 0; i < 5000; i++) json.events[`VMREAD${i}`] = { cycles: 1, assumption: "x" };
    const error = outcome(() => parseCostProfileText(JSON.stringify(json, null, 1), "many.json"))!;
    expect(error.issues).toHaveLength(5000);
    expect(error.issues.filter((issue) => issue.line !== undefined)).toHaveLength(100);
    // VMREAD50 and VMREAD150 are both within three edits of VMREAD: only the first gets the hint.
    expect(error.issues[50]!.message).toBe('unknown event (did you mean "VMREAD"?)');
    expect(error.issues[150]!.message).toBe("unknown event");
  });
});
