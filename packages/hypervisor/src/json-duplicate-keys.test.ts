import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { jsonDuplicateKeys } from "./json-duplicate-keys";

describe("jsonDuplicateKeys", () => {
  it("finds none in serialised JSON values (whose keys are unique by construction)", () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.boolean(), (value, pretty) => {
        expect(jsonDuplicateKeys(JSON.stringify(value, null, pretty ? 2 : 0))).toEqual({
          found: [],
          count: 0,
        });
      }),
      { numRuns: 300 },
    );
  });

  it("finds a key repeated in any object of a random value, with its path", () => {
    fc.assert(
      fc.property(
        fc.dictionary(fc.string({ maxLength: 6 }), fc.jsonValue({ maxDepth: 2 }), { minKeys: 1, maxKeys: 5 }),
        fc.array(
          fc.oneof(
            fc.string({ maxLength: 4 }).filter((k) => k !== "other"),
            fc.nat({ max: 3 }),
          ),
          { maxLength: 3 },
        ),
        fc.nat(),
        (object, route, pick) => {
          // Nest the object under `route` (strings are object keys, numbers array positions), then
          // give one of its keys again.
          const entries = Object.entries(object);
          const key = entries[pick % entries.length]![0];
          const members = entries.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`);
          const inner = `{${members.join(",")},${JSON.stringify(key)}:0}`;
          let text = inner;
          const path: string[] = [];
          for (const step of [...route].reverse()) {
            if (typeof step === "string") {
              text = `{"other":1,${JSON.stringify(step)}:${text}}`;
              path.unshift(step);
            } else {
              text = `[${Array.from({ length: step }, () => "{}").join(",")}${step > 0 ? "," : ""}${text}]`;
              path.unshift(String(step));
            }
          }
          const result = jsonDuplicateKeys(text);
          expect(result.count).toBe(1);
          expect(result.found[0]?.key).toBe(key);
          expect(result.found[0]?.path).toEqual([...path, key]);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("names the line and column of both occurrences, in every object of a profile's shape", () => {
    const text = [
      "{", //                               1
      '  "name": "a",', //                  2
      '  "events": {', //                   3
      '    "VMREAD": {', //                 4
      '      "cycles": 5,', //              5
      '      "cycles": 6,', //              6
      '      "source": "x"', //             7
      "    },", //                          8
      '    "VMREAD": {}', //                9
      "  },", //                            10
      '  "name": "b"', //                   11
      "}", //                               12
    ].join("\n");
    expect(jsonDuplicateKeys(text)).toEqual({
      count: 3,
      found: [
        {
          key: "cycles",
          path: ["events", "VMREAD", "cycles"],
          line: 6,
          column: 7,
          firstLine: 5,
          firstColumn: 7,
        },
        { key: "VMREAD", path: ["events", "VMREAD"], line: 9, column: 5, firstLine: 4, firstColumn: 5 },
        { key: "name", path: ["name"], line: 11, column: 3, firstLine: 2, firstColumn: 3 },
      ],
    });
  });

  it("compares keys after decoding escapes, as JSON.parse does, and skips strings that are values", () => {
    expect(jsonDuplicateKeys('{"a": 1, "\\u0061": 2}').found[0]).toMatchObject({ key: "a", column: 10 });
    expect(jsonDuplicateKeys('{"a\\"b": 1, "a\\"b": 2}').found[0]?.key).toBe('a"b');
    expect(jsonDuplicateKeys('{"a": "a", "b": ["a", "a"], "c": {"a": 1}}').count).toBe(0);
    expect(jsonDuplicateKeys('{"a": "{\\"x\\": 1, \\"x\\": 2}"}').count).toBe(0);
    expect(jsonDuplicateKeys('[{"a": 1}, {"a": 2}]').count).toBe(0);
  });

  it("describes the first `limit` duplicates and counts all, in linear time", () => {
    const keys = 200_000;
    const text = `{"events": {${Array.from({ length: keys }, () => '"E": 1').join(",\n")}}}`;
    const started = performance.now();
    const result = jsonDuplicateKeys(text, 100);
    expect(performance.now() - started).toBeLessThan(2000);
    expect(result.count).toBe(keys - 1);
    expect(result.found).toHaveLength(100);
    expect(result.found[99]).toMatchObject({ path: ["events", "E"], line: 101, column: 1, firstLine: 1 });
  });

  it("takes any nesting depth (no recursion)", () => {
    const depth = 100_000;
    const text = `${"[".repeat(depth)}{"k": 1, "k": 2}${"]".repeat(depth)}`;
    const result = jsonDuplicateKeys(text);
    expect(result.count).toBe(1);
    expect(result.found[0]?.path).toHaveLength(depth + 1);
  });
});
