import { readFileSync } from "node:fs";
import { UsageError } from "../framework/errors";
import { rowProblem, type SweepRow } from "./sweep-row";

/**
 * A sweep's JSON-lines file as it is on disk: the rows of its complete lines (each ends in a
 * newline) and whether a last line was cut short — what a run killed in the middle of a write
 * leaves. A complete line that is not a sweep row is a usage error naming the file and line.
 */
export interface RowsFile {
  readonly rows: readonly { readonly row: SweepRow; readonly line: string; readonly lineNumber: number }[];
  /** Bytes of the complete lines (where a truncated last line starts). */
  readonly completeBytes: number;
  /** A last line without its newline was found (and ignored). */
  readonly truncated: boolean;
}

export function parseRowsText(text: string, shown: string): RowsFile {
  const rows: RowsFile["rows"][number][] = [];
  const end = text.lastIndexOf("\n") + 1;
  const complete = text.slice(0, end);
  const lines = complete === "" ? [] : complete.slice(0, -1).split("\n");
  lines.forEach((line, i) => {
    if (line.trim() === "") return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (error) {
      throw new UsageError(`${shown}:${i + 1}: not a JSON line (${(error as Error).message})`);
    }
    const problem = rowProblem(value);
    if (problem !== undefined)
      throw new UsageError(`${shown}:${i + 1}: not a nestvisor sweep row: ${problem}`);
    rows.push({ row: value as SweepRow, line, lineNumber: i + 1 });
  });
  return {
    rows,
    completeBytes: Buffer.byteLength(complete, "utf8"),
    truncated: text.length > end && text.slice(end).trim() !== "",
  };
}

/** Reads `path` (shown as `shown` in messages). */
export function readRowsFile(path: string, shown: string): RowsFile {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new UsageError(`${shown}: no such file`);
    if (code === "EISDIR") throw new UsageError(`${shown}: is a directory, not a JSON-lines file`);
    throw new UsageError(`${shown}: cannot read (${(error as Error).message})`);
  }
  return parseRowsText(text, shown);
}
