import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { UsageError } from "../framework/errors";
import { fakeRow } from "../testing/sweep-rows";
import { MAX_CELLS } from "./grid";
import { mergeRows } from "./merge";
import { parseRowsText } from "./rows-file";
import { rowLine, rowProblem } from "./sweep-row";

/** A JSON line: a real row, a row with one member replaced by any JSON value, or any JSON. */
const line = fc.oneof(
  fc.nat({ max: 3 }).map((i) => rowLine(fakeRow(i))),
  fc
    .tuple(
      fc.constantFrom(
        "grid",
        "gridCells",
        "index",
        "key",
        "level",
        "flags",
        "counters",
        "cyclesPerIteration",
      ),
      fc.jsonValue(),
    )
    .map(([member, value]) => JSON.stringify({ ...fakeRow(0), [member]: value })),
  fc.jsonValue().map((value) => JSON.stringify(value)),
  fc.string(),
);

describe("sweep rows files on arbitrary text", () => {
  it("parse to rows, or a one-line UsageError naming the file and line", () => {
    fc.assert(
      fc.property(fc.array(line, { maxLength: 6 }), fc.boolean(), (lines, cut) => {
        const text = lines.join("\n") + (cut ? "" : "\n");
        try {
          const file = parseRowsText(text, "shard.jsonl");
          for (const { row } of file.rows) expect(rowProblem(row)).toBeUndefined();
        } catch (error) {
          expect(error).toBeInstanceOf(UsageError);
          expect((error as Error).message).toMatch(/^shard\.jsonl:\d+: /);
          expect((error as Error).message).not.toMatch(/\n/);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it("rowProblem never throws, whatever the JSON", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const problem = rowProblem(value);
        expect(problem === undefined || typeof problem === "string").toBe(true);
      }),
      { numRuns: 500 },
    );
  });
});

describe("rows defects found by the robustness audit (regressions)", () => {
  it("a row claiming more cells than a sweep has is refused before merging lists the missing ones", () => {
    // Before the fix, merging this one row tried to list 9e15 missing cells: V8 aborted the process.
    for (const gridCells of [MAX_CELLS + 1, 900_000_000, 9_000_000_000_000_000]) {
      const text = `${rowLine(fakeRow(0, { gridCells }))}\n`;
      expect(() => parseRowsText(text, "big.jsonl")).toThrow(
        new UsageError(
          `big.jsonl:1: not a nestvisor sweep row: "gridCells" is ${gridCells}, more than a sweep grid has (at most ${MAX_CELLS})`,
        ),
      );
    }
  });

  it("a row of the largest grid still merges, listing what is missing", () => {
    const file = parseRowsText(`${rowLine(fakeRow(0, { gridCells: MAX_CELLS }))}\n`, "max.jsonl");
    const merged = mergeRows([{ shown: "max.jsonl", file }]);
    expect(merged.missing).toHaveLength(MAX_CELLS - 1);
  });
});
