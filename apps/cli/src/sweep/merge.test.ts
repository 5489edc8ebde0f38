import { describe, expect, it } from "vitest";
import { CliError, UsageError } from "../framework/errors";
import { fakeRow } from "../testing/sweep-rows";
import { gridId } from "./grid";
import { describeIndices, guestMismatches, mergeRows } from "./merge";
import { parseRowsText } from "./rows-file";
import { rowLine, type SweepRow } from "./sweep-row";

function file(shown: string, rows: SweepRow[]) {
  return { shown, file: parseRowsText(rows.map((r) => `${rowLine(r)}\n`).join(""), shown) };
}

/** The id of fakeRow's 4-cell grid: the hash of its keys in index order. */
const GRID = gridId([0, 1, 2, 3].map((i) => fakeRow(i).key));
/** A row of that grid. */
const row = (index: number, more: Partial<SweepRow> = {}): SweepRow =>
  fakeRow(index, { grid: GRID, ...more });

describe("mergeRows", () => {
  it("joins shards into rows sorted by index, keeping identical duplicates once", () => {
    const merged = mergeRows([file("b.jsonl", [row(3), row(1)]), file("a.jsonl", [row(2), row(0), row(1)])]);
    expect(merged.rows.map((r) => r.index)).toEqual([0, 1, 2, 3]);
    expect(merged.lines[0]).toBe(rowLine(row(0)));
    expect(merged.missing).toEqual([]);
    expect(merged.duplicates).toBe(1);
    expect(merged.gridCells).toBe(4);
  });

  it("refuses to mix rows of two nestvisor versions", () => {
    const mixed = () =>
      mergeRows([file("a", [row(0, { nestvisor: "1.0.0" })]), file("b", [row(1, { nestvisor: "1.1.0" })])]);
    expect(mixed).toThrow(UsageError);
    expect(mixed).toThrow(
      "b:1 was computed by nestvisor 1.1.0 but a:1 by nestvisor 1.0.0: merge the rows of one version",
    );
    const unrecorded = () => mergeRows([file("a", [row(0, { nestvisor: "1.0.0" })]), file("b", [row(1)])]);
    expect(unrecorded).toThrow("b:1 was computed by an unrecorded version but a:1 by nestvisor 1.0.0");
  });

  it("lists the cells no file holds", () => {
    expect(mergeRows([file("a", [fakeRow(2)])]).missing).toEqual([0, 1, 3]);
  });

  it("refuses rows of another grid and a cell that differs between files", () => {
    expect(() =>
      mergeRows([file("a", [fakeRow(0)]), file("b", [fakeRow(1, { grid: "ffffffffffffffff" })])]),
    ).toThrow(UsageError);
    const conflict = () =>
      mergeRows([file("a", [fakeRow(0)]), file("b", [fakeRow(0, { cyclesPerIteration: 1 })])]);
    expect(conflict).toThrow(CliError);
    expect(conflict).toThrow("cell 0 differs between a:1 and b:1");
    expect(() => mergeRows([file("a", [])])).toThrow("no rows in a");
  });

  it("refuses a key found under two indices, naming both places (bad input, exit 2)", () => {
    const moved = () =>
      mergeRows([file("a.jsonl", [row(0), row(1)]), file("b.jsonl", [row(2, { key: row(0).key })])]);
    expect(moved).toThrow(UsageError);
    expect(moved).toThrow(
      "b.jsonl:1 is cell 2 but has the key of cell 0 at a.jsonl:1: a row does not match its index (edited or mixed-up rows?)",
    );
  });

  it("refuses a complete grid whose keys in index order are not the grid's (rows swapped)", () => {
    const swapped = () =>
      mergeRows([file("a.jsonl", [row(0), { ...row(2), index: 1 }, { ...row(1), index: 2 }, row(3)])]);
    expect(swapped).toThrow(UsageError);
    expect(swapped).toThrow(
      `a.jsonl: the keys of the 4 cells in index order give grid ${gridId([0, 2, 1, 3].map((i) => row(i).key))}, not the rows' grid ${GRID}: some row does not match its index`,
    );
    // Rows of another grid id altogether (fakeRow's own id is not the hash of its keys).
    expect(() =>
      mergeRows([
        file(
          "b.jsonl",
          [0, 1, 2, 3].map((i) => fakeRow(i)),
        ),
      ]),
    ).toThrow(/^b\.jsonl: the keys of the 4 cells in index order give grid/);
    // Until every cell is there the hash cannot be checked.
    expect(mergeRows([file("a.jsonl", [row(0), { ...row(2), index: 1 }])]).missing).toEqual([2, 3]);
  });
});

describe("describeIndices", () => {
  it("folds runs into ranges and counts what it leaves out", () => {
    expect(describeIndices([1, 2, 3, 7, 9, 10])).toBe("1–3, 7, 9–10");
    expect(describeIndices([0, 2, 4, 6], 2)).toBe("0, 2 and 2 more");
    expect(describeIndices([])).toBe("");
  });
});

describe("guestMismatches", () => {
  it("finds cells of the same workload whose guest saw different results, ignoring not-modelled cells", () => {
    const key = (preset: string) =>
      JSON.stringify({ workload: "cpuid", level: 2, profile: "p", iterations: 5, params: {}, preset });
    const rows = [
      fakeRow(0, { key: key("a"), guest: "1" }),
      fakeRow(1, { key: key("b"), guest: "1" }),
      fakeRow(2, { key: key("c"), guest: null }),
    ];
    expect(guestMismatches(rows)).toEqual([]);
    expect(guestMismatches([...rows, fakeRow(3, { key: key("d"), guest: "2" })])).toEqual([
      { what: "cpuid at L2", a: 0, b: 3 },
    ]);
  });
});
