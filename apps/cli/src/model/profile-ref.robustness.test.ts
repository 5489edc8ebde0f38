import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { costProfile } from "@nestvisor/hypervisor";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { UsageError } from "../framework/errors";
import { loadProfile, MAX_PROFILE_BYTES } from "./profile-ref";

const dir = mkdtempSync(join(tmpdir(), "nestvisor-profile-robust-"));

/** A copy of the shipped default profile as plain JSON, with `change` applied. */
function shipped(change: (json: Record<string, unknown>) => void = () => {}): string {
  const json = JSON.parse(JSON.stringify(costProfile("intel-server"))) as Record<string, unknown>;
  json.name = "mine";
  change(json);
  return JSON.stringify(json, null, 2);
}

function events(json: Record<string, unknown>): Record<string, Record<string, unknown>> {
  return json.events as Record<string, Record<string, unknown>>;
}

function load(name: string, text: string): ReturnType<typeof loadProfile> {
  writeFileSync(join(dir, name), text);
  return loadProfile(name, dir);
}

describe("--profile file.json with arbitrary content", () => {
  it("loads a profile or throws a one-line UsageError naming the file", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.jsonValue().map((v) => JSON.stringify(v)),
          fc
            .tuple(fc.constantFrom("VMREAD", "VMWRITE", "VMCLEAR"), fc.jsonValue())
            .map(([event, cycles]) => shipped((j) => (events(j)[event]!.cycles = cycles as never))),
          fc.double().map((ghz) => shipped((j) => ((j.tscGHz as Record<string, unknown>).value = ghz))),
        ),
        (text) => {
          try {
            const profile = load("p.json", text);
            expect(profile.name).toBe("mine");
          } catch (error) {
            expect(error).toBeInstanceOf(UsageError);
            expect((error as Error).message).toMatch(/^p\.json(:\d+)?: /);
            expect((error as Error).message).not.toMatch(/\n/);
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});

describe("profile defects found by the robustness audit (regressions)", () => {
  it("refuses prices so large that totals overflow (they crashed runs with 'latency NaN')", () => {
    const text = shipped((j) => (events(j).VMREAD!.cycles = 1e308));
    expect(() => load("huge.json", text)).toThrow(
      /^huge\.json:\d+: events\.VMREAD\.cycles: expected at most 1000000000 cycles, got 1e\+308$/,
    );
  });

  it("refuses a TSC rate that prints cycles as Infinity µs", () => {
    const tiny = shipped((j) => ((j.tscGHz as Record<string, unknown>).value = 1e-320));
    expect(() => load("tsc.json", tiny)).toThrow(/tscGHz\.value: expected at least 0\.001 GHz, got 1e-320$/);
  });

  it("refuses a file that takes a shipped profile's name with other prices, accepts an exact copy", () => {
    const renamed = shipped((j) => {
      j.name = "intel-server";
      events(j).VMREAD!.cycles = 999;
    });
    expect(() => load("copy.json", renamed)).toThrow(
      new UsageError(
        'copy.json: name: "intel-server" is the name of a shipped profile, but this file\'s profile differs from it; give it a name of its own',
      ),
    );
    const exact = shipped((j) => {
      j.name = "intel-server";
    });
    expect(load("exact.json", exact)).toEqual(costProfile("intel-server"));
  });

  it("refuses a file too large to be a profile before reading it", () => {
    const size = MAX_PROFILE_BYTES + 1;
    expect(() => load("big.json", " ".repeat(size))).toThrow(
      `big.json: ${size.toLocaleString("en-US")} bytes is too large for a cost profile`,
    );
  });

  it("refuses a key given twice (JSON.parse kept the last price, silently), naming file, line, path and column", () => {
    const text = shipped().replace(
      '"VMREAD": {\n      "cycles": ',
      '"VMREAD": {\n      "cycles": 99999,\n      "cycles": ',
    );
    const line = text.split("\n").indexOf('    "VMREAD": {') + 3;
    expect(line).toBeGreaterThan(3);
    expect(() => load("dup.json", text)).toThrow(
      new UsageError(
        `dup.json:${line}: events.VMREAD.cycles: duplicate key "cycles" at line ${line}, column 7 (first at line ${line - 1}, column 7): a key may appear once per object`,
      ),
    );
    const twice = text.replace('"name": "mine",', '"name": "mine",\n  "name": "other",');
    expect(() => load("dup.json", twice)).toThrow(
      /^dup\.json:3: name: duplicate key "name" at line 3, column 3 \(first at line 2, column 3\): a key may appear once per object \(and 1 more problems\)$/,
    );
  });

  it("reports a deeply nested broken file as invalid JSON (it crashed with 'Maximum call stack size exceeded')", () => {
    expect(() => load("deep.json", "[".repeat(100_000))).toThrow(
      /^deep\.json:1: invalid JSON at column 100001: /,
    );
  });

  it("a profile of many unknown events is rejected, counting them all", () => {
    const many: Record<string, unknown> = {};
    for (let i = 0; i < 20_000; i++) many[`E${i}`] = { cycles: 1, assumption: "x" };
    const text = shipped((j) => (j.events = many));
    expect(() => load("many.json", text)).toThrow(
      /^many\.json:\d+: events\.E0: unknown event \(and 20000 more problems\)$/,
    );
  });
});
