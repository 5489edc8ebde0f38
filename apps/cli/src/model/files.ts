import { readFileSync, statSync } from "node:fs";
import { UsageError } from "../framework/errors";

/** Reads a file a user named; a missing or unreadable file is a usage error naming it. */
export function readBytesFile(path: string, shown: string, what: string): Uint8Array {
  try {
    if (statSync(path).isDirectory()) throw new UsageError(`${shown}: is a directory, not a ${what} file`);
    return readFileSync(path);
  } catch (error) {
    if (error instanceof UsageError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new UsageError(`${shown}: no such file (expected a ${what} file)`);
    if (code === "EACCES") throw new UsageError(`${shown}: permission denied`);
    throw new UsageError(`${shown}: cannot read (${(error as Error).message})`);
  }
}

/** Reads a UTF-8 text file a user named. */
export function readTextFile(path: string, shown: string, what: string): string {
  return new TextDecoder("utf-8").decode(readBytesFile(path, shown, what));
}
