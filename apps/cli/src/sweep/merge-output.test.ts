import { describe, expect, it } from "vitest";
import { toCsv } from "../framework/csv";
import { fakeRow } from "../testing/sweep-rows";
import { gridId } from "./grid";
import { mergeRows } from "./merge";
import { CSV_HEADER, csvRecords, writeMerged } from "./merge-output";
import { parseRowsText } from "./rows-file";
import { rowLine } from "./sweep-row";

const GRID = gridId([0, 1, 2, 3].map((i) => fakeRow(i).key));
const ROWS = [
  fakeRow(2, { grid: GRID }),
  fakeRow(0, { grid: GRID, flags: { ept: false, shadowVmcs: true }, model: "m.mjs" }),
  fakeRow(1, { grid: GRID, cyclesPerIteration: null, notModelled: 'not modelled: "x", y' }),
];
const merged = mergeRows([
  { shown: "a", file: parseRowsText(ROWS.map((r) => `${rowLine(r)}\n`).join(""), "a") },
]);

function pieces(csv: boolean): string[] {
  const out: string[] = [];
  writeMerged(merged, csv, (text) => out.push(text));
  return out;
}

describe("writeMerged", () => {
  it("writes the JSON lines one at a time, in cell order, as they were read", () => {
    expect(pieces(false)).toEqual([0, 1, 2].map((i) => `${merged.lines[i]}\n`));
    expect(pieces(false)[0]).toBe(`${rowLine(ROWS[1]!)}\n`);
  });

  it("writes the long-format CSV one record at a time, equal to the table as a whole", () => {
    const out = pieces(true);
    expect(out.every((line) => line.endsWith("\n") && line.indexOf("\n") === line.length - 1)).toBe(true);
    expect(out.join("")).toBe(toCsv(CSV_HEADER, merged.rows.flatMap(csvRecords)));
    expect(out).toContain("0,cpuid,1,v6.12,m.mjs,intel-server,ept=off;shadowVmcs=on,cycles.L1,300\n");
    expect(out).toContain('1,cpuid,1,v6.12,,intel-server,,notModelled,"not modelled: ""x"", y"\n');
    expect(out).toContain("2,cpuid,1,v6.12,,intel-server,,counter.HARDWARE_VM_EXIT,1\n");
  });
});
