import { closeSync, openSync, readSync } from "node:fs";
import { UsageError } from "../framework/errors";
import { rowProblem, type SweepRow } from "./sweep-row";

/**
 * A sweep's JSON-lines file as it is on disk: the rows of its complete lines (each ends in a
 * newline) and whether a last line was cut short — what a run killed in the middle of a write
 * leaves. A complete line that is not a sweep row is a usage error naming the file and line.
 *
 * The file is read line by line, a chunk at a time: a sweep of a million cells is far more text
 * than one JavaScript string can hold.
 */
export interface RowsFile {
  readonly rows: readonly { readonly row: SweepRow; readonly line: string; readonly lineNumber: number }[];
  /** Bytes of the complete lines (where a truncated last line starts). */
  readonly completeBytes: number;
  /** A last line without its newline was found (and ignored). */
  readonly truncated: boolean;
}

type Entry = RowsFile["rows"][number];

/** The row of complete line `lineNumber` (counted from 1), or undefined for a blank line. */
function rowOfLine(line: string, lineNumber: number, shown: string): Entry | undefined {
  if (line.trim() === "") return undefined;
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (error) {
    throw new UsageError(`${shown}:${lineNumber}: not a JSON line (${(error as Error).message})`);
  }
  const problem = rowProblem(value);
  if (problem !== undefined)
    throw new UsageError(`${shown}:${lineNumber}: not a nestvisor sweep row: ${problem}`);
  return { row: value as SweepRow, line, lineNumber };
}

export function parseRowsText(text: string, shown: string): RowsFile {
  const rows: Entry[] = [];
  const end = text.lastIndexOf("\n") + 1;
  const complete = text.slice(0, end);
  const lines = complete === "" ? [] : complete.slice(0, -1).split("\n");
  lines.forEach((line, i) => {
    const entry = rowOfLine(line, i + 1, shown);
    if (entry !== undefined) rows.push(entry);
  });
  return {
    rows,
    completeBytes: Buffer.byteLength(complete, "utf8"),
    truncated: text.length > end && text.slice(end).trim() !== "",
  };
}

/** What `readLines` found after the last complete line. */
export interface LinesEnd {
  /** Bytes of the complete lines. */
  readonly completeBytes: number;
  /** The text after the last newline ("" when the file ends in one). */
  readonly rest: string;
}

const NEWLINE = 0x0a;
/** Bytes read at a time. */
export const READ_CHUNK = 1 << 20;

/**
 * Calls `visit` with each complete line of the open file `fd` (without its newline, decoded as
 * UTF-8) and its number from 1, reading `chunkSize` bytes at a time; a line may span any number
 * of chunks. A newline byte never occurs inside a multi-byte UTF-8 sequence, so lines are split
 * on bytes and each decoded whole.
 */
export function readLines(
  fd: number,
  visit: (line: string, lineNumber: number) => void,
  chunkSize: number = READ_CHUNK,
): LinesEnd {
  const chunk = Buffer.allocUnsafe(chunkSize);
  /** The start of the current line, from earlier chunks. */
  let carry: Buffer[] = [];
  let completeBytes = 0;
  let lineNumber = 0;
  for (;;) {
    const read = readSync(fd, chunk, 0, chunkSize, null);
    if (read === 0) break;
    let start = 0;
    for (;;) {
      const newline = chunk.indexOf(NEWLINE, start);
      if (newline < 0 || newline >= read) break;
      const piece = chunk.subarray(start, newline);
      const bytes = carry.length === 0 ? piece : Buffer.concat([...carry, piece]);
      carry = [];
      completeBytes += bytes.length + 1;
      visit(bytes.toString("utf8"), ++lineNumber);
      start = newline + 1;
    }
    // The chunk buffer is reused: keep a copy of the unfinished line.
    if (start < read) carry.push(Buffer.from(chunk.subarray(start, read)));
  }
  return { completeBytes, rest: Buffer.concat(carry).toString("utf8") };
}

/** Reads `path` (shown as `shown` in messages); `chunkSize` is for tests. */
export function readRowsFile(path: string, shown: string, chunkSize: number = READ_CHUNK): RowsFile {
  const cannot = (error: unknown): UsageError => {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return new UsageError(`${shown}: no such file`);
    if (code === "EISDIR") return new UsageError(`${shown}: is a directory, not a JSON-lines file`);
    return new UsageError(`${shown}: cannot read (${(error as Error).message})`);
  };
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (error) {
    throw cannot(error);
  }
  const rows: Entry[] = [];
  try {
    const end = readLines(
      fd,
      (line, lineNumber) => {
        const entry = rowOfLine(line, lineNumber, shown);
        if (entry !== undefined) rows.push(entry);
      },
      chunkSize,
    );
    return { rows, completeBytes: end.completeBytes, truncated: end.rest.trim() !== "" };
  } catch (error) {
    // A read error (EISDIR when `path` is a directory, EIO); a bad line is already a UsageError.
    if (error instanceof UsageError || (error as NodeJS.ErrnoException).code === undefined) throw error;
    throw cannot(error);
  } finally {
    closeSync(fd);
  }
}
