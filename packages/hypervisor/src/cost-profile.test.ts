import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { COST_EVENT_NAMES } from "./cost-catalogs";
import {
  type CostProfile,
  CostProfileError,
  costProvenance,
  formatProfilePath,
  parseCostProfile,
  parseCostProfileText,
} from "./cost-profile";
import { costProfile } from "./cost-profiles";
import { validCostProfileJson } from "./testing/cost-profile-json";

function issuesOf(json: unknown, origin = "profile.json"): string[] {
  try {
    parseCostProfile(json, origin);
  } catch (error) {
    expect(error).toBeInstanceOf(CostProfileError);
    return (error as CostProfileError).message.split("\n");
  }
  throw new Error("the profile was accepted");
}

describe("parseCostProfile", () => {
  it("accepts a complete profile, freezes it and orders events by id", () => {
    const json = validCostProfileJson();
    const reversed = Object.fromEntries(Object.entries(json.events).reverse());
    const profile = parseCostProfile({ ...json, events: reversed }, "profile.json");
    expect(Object.keys(profile.events)).toEqual(COST_EVENT_NAMES);
    expect(profile.events.VMREAD).toEqual({ cycles: 10, assumption: "test value" });
    expect(profile.notes).toEqual([]);
    expect(Object.isFrozen(profile)).toBe(true);
    expect(Object.isFrozen(profile.events)).toBe(true);
    expect(Object.isFrozen(profile.events.VMREAD)).toBe(true);
  });

  it("round-trips a shipped profile through JSON text", () => {
    const shipped = costProfile("intel-server");
    const again = parseCostProfileText(JSON.stringify(shipped, null, 2), "copy.json");
    expect(again).toEqual(shipped);
  });

  it("rejects a negative number, naming origin, path and field", () => {
    const json = validCostProfileJson();
    json.events.VMREAD = { cycles: -1, source: "x" };
    expect(issuesOf(json)).toEqual([
      "profile.json: events.VMREAD.cycles: expected a non-negative number, got -1",
    ]);
  });

  it("rejects a number of the wrong type, NaN-like values and a missing number", () => {
    const json = validCostProfileJson();
    json.events.VMREAD = { cycles: "5", source: "x" };
    json.events.VMWRITE = { source: "x" };
    json.tscGHz = { value: 0, assumption: "x" };
    expect(issuesOf(json)).toEqual([
      "profile.json: tscGHz.value: expected a positive number, got 0",
      'profile.json: events.VMREAD.cycles: expected a non-negative number, got "5"',
      "profile.json: events.VMWRITE.cycles: missing (expected a non-negative number)",
    ]);
  });

  it("rejects a number without a source or an assumption", () => {
    const json = validCostProfileJson();
    json.events.VMPTRLD = { cycles: 150 };
    const [issue] = issuesOf(json);
    expect(issue).toBe(
      'profile.json: events.VMPTRLD: missing "source" or "assumption": every number must name where it comes from, or say it is assumed',
    );
  });

  it("rejects both a source and an assumption, and empty or non-string provenance", () => {
    const json = validCostProfileJson();
    json.events.VMREAD = { cycles: 5, source: "a", assumption: "b" };
    json.events.VMWRITE = { cycles: 5, source: "  " };
    json.events.VMCLEAR = { cycles: 5, assumption: 7 };
    expect(issuesOf(json)).toEqual([
      "profile.json: events.VMCLEAR.assumption: expected a non-empty string, got 7",
      'profile.json: events.VMREAD: has both "source" and "assumption"; keep the one that applies',
      'profile.json: events.VMWRITE.source: expected a non-empty string, got "  "',
    ]);
  });

  it("rejects an unknown event with a did-you-mean suggestion", () => {
    const json = validCostProfileJson();
    json.events.VMRAED = { cycles: 5, source: "x" };
    expect(issuesOf(json)).toEqual(['profile.json: events.VMRAED: unknown event (did you mean "VMREAD"?)']);
  });

  it("rejects unknown fields with a suggestion, at the top level and in an entry", () => {
    const json = validCostProfileJson();
    json.evnts = {};
    json.events.VMREAD = { cylces: 5, cycles: 5, source: "x" };
    expect(issuesOf(json)).toEqual([
      'profile.json: evnts: unknown field (did you mean "events"?); expected $schema, name, description, cpu, tscGHz, notes, events',
      'profile.json: events.VMREAD.cylces: unknown field (did you mean "cycles"?); expected cycles, source, assumption',
    ]);
  });

  it("lists the events a profile leaves unpriced", () => {
    const json = validCostProfileJson();
    delete json.events.VMREAD;
    delete json.events.EXIT_HANDLER_CPUID;
    expect(issuesOf(json)).toEqual([
      "profile.json: events: missing costs for 2 events: VMREAD, EXIT_HANDLER_CPUID (a profile prices every event of the vmx, mmu and hypervisor catalogs)",
    ]);
    const [many] = issuesOf({ ...json, events: {} });
    expect(many).toMatch(/missing costs for \d+ events: VMXON, VMXOFF, .* and \d+ more/);
  });

  it("checks the header fields", () => {
    expect(issuesOf([1, 2])).toEqual(["profile.json: expected a cost profile object, got an array"]);
    expect(issuesOf({ ...validCostProfileJson(), name: "Intel Server", cpu: "", notes: ["ok", 3] })).toEqual([
      `profile.json: name: expected lower-case letters, digits, '.', '_' or '-', got "Intel Server"`,
      'profile.json: cpu: expected a non-empty string, got ""',
      'profile.json: notes["1"]: expected a string, got 3',
    ]);
    const { tscGHz: _t, description: _d, ...partial } = validCostProfileJson();
    expect(issuesOf(partial)).toEqual([
      "profile.json: description: missing (expected a non-empty string)",
      'profile.json: tscGHz: missing (expected { "value": GHz, "source" | "assumption": "…" })',
    ]);
    expect(issuesOf({ ...validCostProfileJson(), events: "none" })).toEqual([
      'profile.json: events: expected an object mapping event names to costs, got "none"',
    ]);
    expect(issuesOf({ ...validCostProfileJson(), tscGHz: 2.5 })).toEqual([
      'profile.json: tscGHz: expected an object { "value": GHz, "source" | "assumption": "…" }, got 2.5',
    ]);
  });
});

describe("parseCostProfileText", () => {
  it("adds the line of the field at fault", () => {
    const json = validCostProfileJson();
    json.events.VMREAD = { cycles: -3, source: "x" };
    const text = JSON.stringify(json, null, 2);
    const line = text.split("\n").findIndex((l) => l.includes('"VMREAD"')) + 1;
    expect(() => parseCostProfileText(text, "my.json")).toThrow(
      `my.json:${line + 1}: events.VMREAD.cycles: expected a non-negative number, got -3`,
    );
  });

  it("puts a missing field at its parent's line", () => {
    const json = validCostProfileJson();
    json.events.VMWRITE = { source: "x" };
    const text = JSON.stringify(json, null, 2);
    const line = text.split("\n").findIndex((l) => l.includes('"VMWRITE"')) + 1;
    expect(() => parseCostProfileText(text, "my.json")).toThrow(
      `my.json:${line}: events.VMWRITE.cycles: missing`,
    );
  });

  it("names the line and column of a JSON syntax error", () => {
    let error: unknown;
    try {
      parseCostProfileText('{\n  "name": "x",\n  "cpu": ]\n}', "broken.json");
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(CostProfileError);
    expect((error as CostProfileError).message).toMatch(/^broken\.json:3: invalid JSON at column 10: /);
  });
});

describe("parseCostProfileText: duplicate keys (regression: JSON.parse kept the last one, silently)", () => {
  const text = [
    "{",
    '  "name": "dup",',
    '  "description": "d",',
    '  "cpu": "c",',
    '  "tscGHz": { "value": 3, "source": "s" },',
    '  "events": {',
    '    "VMREAD": { "cycles": 99999, "cycles": 5, "assumption": "a" }',
    "  },",
    '  "name": "dup2"',
    "}",
  ].join("\n");

  it("refuses a key given twice in one object, naming the key, its path and both places", () => {
    expect(() => parseCostProfileText(text, "dup.json")).toThrow(
      new CostProfileError("dup.json", [
        {
          path: ["events", "VMREAD", "cycles"],
          message:
            'duplicate key "cycles" at line 7, column 34 (first at line 7, column 17): a key may appear once per object',
          line: 7,
        },
        {
          path: ["name"],
          message:
            'duplicate key "name" at line 9, column 3 (first at line 2, column 3): a key may appear once per object',
          line: 9,
        },
      ]),
    );
    try {
      parseCostProfileText(text, "dup.json");
    } catch (error) {
      expect((error as Error).message.split("\n")).toEqual([
        'dup.json:7: events.VMREAD.cycles: duplicate key "cycles" at line 7, column 34 (first at line 7, column 17): a key may appear once per object',
        'dup.json:9: name: duplicate key "name" at line 9, column 3 (first at line 2, column 3): a key may appear once per object',
      ]);
    }
  });

  it("refuses an event priced twice in events", () => {
    const json = validCostProfileJson();
    const pretty = JSON.stringify(json, null, 2);
    const twice = pretty.replace(
      '"VMREAD": {',
      '"VMREAD": { "cycles": 1, "source": "first" },\n    "VMREAD": {',
    );
    const line = twice.split("\n").indexOf('    "VMREAD": {') + 1;
    expect(line).toBeGreaterThan(2);
    expect(() => parseCostProfileText(twice, "two.json")).toThrow(
      `two.json:${line}: events.VMREAD: duplicate key "VMREAD" at line ${line}, column 5 (first at line ${line - 1}, column 5)`,
    );
  });

  it("the shipped profile's file has no duplicate keys (its JSON import would hide them)", () => {
    const file = fileURLToPath(new URL("./profiles/intel-server.json", import.meta.url));
    expect(parseCostProfileText(readFileSync(file, "utf8"), "intel-server.json")).toEqual(
      costProfile("intel-server"),
    );
  });
});

describe("helpers", () => {
  it("formats paths with brackets for non-identifiers", () => {
    expect(formatProfilePath(["events", "VMREAD", "cycles"])).toBe("events.VMREAD.cycles");
    expect(formatProfilePath(["notes", "0"])).toBe('notes["0"]');
    expect(formatProfilePath([])).toBe("");
  });

  it("tags provenance", () => {
    const profile: CostProfile = costProfile("intel-server");
    expect(costProvenance(profile.events.VMCS_FULL_CONSISTENCY_CHECK).kind).toBe("source");
    expect(costProvenance(profile.events.VMREAD).kind).toBe("assumption");
    expect(costProvenance(profile.tscGHz)).toEqual({
      kind: "assumption",
      text: expect.stringContaining("nominal TSC rate"),
    });
  });
});
