import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { fakeRow } from "../testing/sweep-rows";
import { parseRowsText, readRowsFile } from "./rows-file";
import { rowLine } from "./sweep-row";

describe("parseRowsText", () => {
  it("reads complete lines and notices a last line cut short", () => {
    const text = `${rowLine(fakeRow(0))}\n${rowLine(fakeRow(1))}\n${rowLine(fakeRow(2)).slice(0, 40)}`;
    const file = parseRowsText(text, "out.jsonl");
    expect(file.rows.map((r) => r.row.index)).toEqual([0, 1]);
    expect(file.rows[1]!.lineNumber).toBe(2);
    expect(file.truncated).toBe(true);
    expect(file.completeBytes).toBe(Buffer.byteLength(text.slice(0, text.lastIndexOf("\n") + 1)));
    expect(parseRowsText("", "x").rows).toEqual([]);
    expect(parseRowsText(`${rowLine(fakeRow(0))}\n`, "x").truncated).toBe(false);
  });

  it("names the file and line of a complete line that is not a sweep row", () => {
    expect(() => parseRowsText(`${rowLine(fakeRow(0))}\n{"a":1}\n`, "out.jsonl")).toThrow(
      'out.jsonl:2: not a nestvisor sweep row: no "grid"',
    );
    expect(() => parseRowsText("nope\n", "out.jsonl")).toThrow(/^out\.jsonl:1: not a JSON line/);
    expect(() => parseRowsText(`${rowLine(fakeRow(9))}\n`, "o")).toThrow(
      '"index" is not an integer in [0, 4)',
    );
  });

  it("reports a missing file as a usage error", () => {
    const dir = mkdtempSync(join(tmpdir(), "nestvisor-rows-"));
    expect(() => readRowsFile(join(dir, "none.jsonl"), "none.jsonl")).toThrow("none.jsonl: no such file");
    writeFileSync(join(dir, "a.jsonl"), `${rowLine(fakeRow(3))}\n`);
    expect(readRowsFile(join(dir, "a.jsonl"), "a.jsonl").rows[0]!.row.index).toBe(3);
  });
});
