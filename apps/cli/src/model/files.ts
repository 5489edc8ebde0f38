import { readFileSync, statSync } from "node:fs";
import { UsageError } from "../framework/errors";

/**
 * The largest input file read whole (workloads, profiles, scenarios, vmcs12 images): far above any
 * real one, low enough that a wrong path cannot exhaust memory. Traces pass a larger limit.
 */
export const MAX_INPUT_FILE_BYTES = 64 * 1024 * 1024;

/** Reads a file a user named, whole; a usage error names the file when it cannot be read. */
export function readBytesFile(
  path: string,
  shown: string,
  what: string,
  maxBytes: number = MAX_INPUT_FILE_BYTES,
): Uint8Array {
  try {
    const stat = statSync(path);
    if (stat.isDirectory()) throw new UsageError(`${shown}: is a directory, not a ${what} file`);
    // A device or a FIFO could be endless (/dev/zero) or block forever: only regular files are read.
    if (!stat.isFile()) throw new UsageError(`${shown}: not a regular file (expected a ${what} file)`);
    if (stat.size > maxBytes) {
      const bytes = (n: number) => n.toLocaleString("en-US");
      throw new UsageError(
        `${shown}: ${bytes(stat.size)} bytes is too large for a ${what} file (at most ${bytes(maxBytes)})`,
      );
    }
    return readFileSync(path);
  } catch (error) {
    if (error instanceof UsageError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new UsageError(`${shown}: no such file (expected a ${what} file)`);
    if (code === "EACCES") throw new UsageError(`${shown}: permission denied`);
    throw new UsageError(`${shown}: cannot read (${(error as Error).message})`);
  }
}

/** Reads a UTF-8 text file a user named (at most `maxBytes`, as `readBytesFile`). */
export function readTextFile(
  path: string,
  shown: string,
  what: string,
  maxBytes: number = MAX_INPUT_FILE_BYTES,
): string {
  return new TextDecoder("utf-8").decode(readBytesFile(path, shown, what, maxBytes));
}
