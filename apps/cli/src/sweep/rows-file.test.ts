import { closeSync, mkdtempSync, openSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { fakeRow } from "../testing/sweep-rows";
import { parseRowsText, readLines, readRowsFile } from "./rows-file";
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

  it("refuses a row whose key is not the JSON of a cell's parameters", () => {
    for (const key of ["not json", "[1]", "7", '{"level":1}', '{"workload":"cpuid"}']) {
      expect(() =>
        parseRowsText(`${rowLine(fakeRow(0))}\n${rowLine(fakeRow(1, { key }))}\n`, "out.jsonl"),
      ).toThrow(`out.jsonl:2: not a nestvisor sweep row: "key" is not the JSON of a cell's parameters`);
    }
  });

  it("reports a missing file as a usage error", () => {
    const dir = mkdtempSync(join(tmpdir(), "nestvisor-rows-"));
    expect(() => readRowsFile(join(dir, "none.jsonl"), "none.jsonl")).toThrow("none.jsonl: no such file");
    writeFileSync(join(dir, "a.jsonl"), `${rowLine(fakeRow(3))}\n`);
    expect(readRowsFile(join(dir, "a.jsonl"), "a.jsonl").rows[0]!.row.index).toBe(3);
  });
});

/** `text` in a fresh file, opened for reading. */
function withFile<T>(text: string | Uint8Array, use: (fd: number, path: string) => T): T {
  const path = join(mkdtempSync(join(tmpdir(), "nestvisor-lines-")), "rows.jsonl");
  writeFileSync(path, text);
  const fd = openSync(path, "r");
  try {
    return use(fd, path);
  } finally {
    closeSync(fd);
  }
}

describe("readLines", () => {
  it("joins lines that span chunk boundaries, multi-byte characters included", () => {
    const text = "ab\n\ncdéf€ghij\nk😀lmnopqrstuvwxyz\nrest";
    for (const chunkSize of [1, 2, 3, 5, 7, 64]) {
      const seen: [string, number][] = [];
      const end = withFile(text, (fd) => readLines(fd, (line, n) => seen.push([line, n]), chunkSize));
      expect(seen, `chunk ${chunkSize}`).toEqual([
        ["ab", 1],
        ["", 2],
        ["cdéf€ghij", 3],
        ["k😀lmnopqrstuvwxyz", 4],
      ]);
      expect(end).toEqual({ completeBytes: Buffer.byteLength(text) - 4, rest: "rest" });
    }
  });

  it("splits any text as String.split does, at any chunk size", () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.string({ unit: "grapheme" }), fc.constant("\n")), { maxLength: 30 }),
        fc.integer({ min: 1, max: 17 }),
        (parts, chunkSize) => {
          const text = parts.join("");
          const seen: string[] = [];
          const end = withFile(text, (fd) => readLines(fd, (line) => seen.push(line), chunkSize));
          const pieces = text.split("\n");
          expect(seen).toEqual(pieces.slice(0, -1));
          expect(end.rest).toBe(pieces.at(-1));
          expect(end.completeBytes).toBe(Buffer.byteLength(text) - Buffer.byteLength(pieces.at(-1)!));
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe("readRowsFile", () => {
  it("reads a file in small chunks exactly as the whole text parses", () => {
    const lines = [0, 1, 2, 3].map((i) => rowLine(fakeRow(i, { notModelled: "é€😀".repeat(i) })));
    for (const text of [
      `${lines.join("\n")}\n`,
      `${lines.slice(0, 3).join("\n")}\n\n${lines[3]!.slice(0, 30)}`,
      `${lines.slice(0, 2).join("\n")}\n  `,
    ]) {
      const whole = parseRowsText(text, "rows.jsonl");
      for (const chunkSize of [1, 13, 100, 4096])
        expect(withFile(text, (_, path) => readRowsFile(path, "rows.jsonl", chunkSize))).toEqual(whole);
    }
  });

  it("names the file and line of a bad line found in a later chunk", () => {
    const text = `${rowLine(fakeRow(0))}\n${rowLine(fakeRow(1))}\n{"grid":1}\n`;
    expect(() => withFile(text, (_, path) => readRowsFile(path, "rows.jsonl", 16))).toThrow(
      'rows.jsonl:3: not a nestvisor sweep row: no "grid"',
    );
  });

  it("reports a directory as a usage error", () => {
    const dir = mkdtempSync(join(tmpdir(), "nestvisor-rows-"));
    expect(() => readRowsFile(dir, "d")).toThrow("d: is a directory, not a JSON-lines file");
  });
});
