import { randomBytes } from "node:crypto";
import {
  accessSync,
  closeSync,
  constants,
  fchmodSync,
  fsyncSync,
  openSync,
  realpathSync,
  renameSync,
  type Stats,
  statSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { UsageError } from "../framework/errors";

/**
 * Output that may be far larger than one JavaScript string (a merged sweep of a million cells):
 * written piece by piece, in batches, and — for a whole file — never half-written.
 */

/** Characters gathered before a write. */
export const WRITE_BATCH = 1 << 20;

/** Gathers text and hands it to `sink` in pieces of about `batch` characters. */
export class BatchedWriter {
  readonly #sink: (text: string) => void;
  readonly #batch: number;
  #pieces: string[] = [];
  #length = 0;

  constructor(sink: (text: string) => void, batch: number = WRITE_BATCH) {
    this.#sink = sink;
    this.#batch = batch;
  }

  write(text: string): void {
    this.#pieces.push(text);
    this.#length += text.length;
    if (this.#length >= this.#batch) this.flush();
  }

  flush(): void {
    if (this.#length === 0) return;
    const text = this.#pieces.join("");
    this.#pieces = [];
    this.#length = 0;
    this.#sink(text);
  }
}

function statOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

/**
 * Why a file could not be written, for a message: the error code, then what it means for `path`
 * (Node's own text names the temporary file, not the one the user asked for).
 */
export function writeFailure(error: unknown, path: string): string {
  const code = (error as NodeJS.ErrnoException).code;
  const dir = dirname(path);
  if (code === "ENOENT") return `ENOENT: the directory ${dir} does not exist`;
  if (code === "ENOTDIR") return `ENOTDIR: a part of ${dir} is not a directory`;
  if (code === "EACCES" || code === "EPERM") return `${code}: permission denied (${path})`;
  if (code === "EROFS") return `EROFS: ${dir} is on a read-only file system`;
  return (error as Error).message;
}

/**
 * Checks, before any work, that `path` (shown as `shown`) can be written: not a directory, in a
 * directory that exists and is writable (for `writeWholeFile`'s temporary file), or with "append"
 * an existing file that is writable. A usage error naming the file otherwise. What goes wrong
 * later (a full disk) is still reported when writing.
 */
export function checkOutputPath(path: string, shown: string, mode: "replace" | "append" = "replace"): void {
  const cannot = (why: string): UsageError => new UsageError(`cannot write ${shown}: ${why}`);
  let existing: Stats | undefined;
  try {
    existing = statOrUndefined(path);
  } catch (error) {
    throw cannot(writeFailure(error, path));
  }
  if (existing?.isDirectory()) throw cannot("it is a directory");
  if (existing !== undefined && !existing.isFile()) return;
  if (existing !== undefined && mode === "append") {
    // Appended to in place (`sweep --out`): the file itself must be writable, not its directory.
    try {
      accessSync(path, constants.W_OK);
    } catch (error) {
      throw cannot(writeFailure(error, path));
    }
    return;
  }
  const dir = dirname(existing === undefined ? path : realpathSync(path));
  let parent: Stats | undefined;
  try {
    parent = statOrUndefined(dir);
  } catch (error) {
    throw cannot(writeFailure(error, path));
  }
  if (parent === undefined) throw cannot(`ENOENT: the directory ${dir} does not exist`);
  if (!parent.isDirectory()) throw cannot(`ENOTDIR: ${dir} is not a directory`);
  try {
    accessSync(dir, constants.W_OK);
  } catch (error) {
    throw cannot(writeFailure(error, path));
  }
}

/**
 * Writes the file `path` (shown as `shown` in messages) with what `fill` passes to its writer.
 * A regular file (or a new one) is written to a temporary file in the same directory and renamed
 * over `path` only when complete, so a failure (a full disk, an error in `fill`) leaves the old
 * file as it was; the temporary file is removed. The new file keeps an existing file's
 * permissions, and a symbolic link is followed (the file it names is replaced). Anything else
 * (a pipe, a device, any path under /dev or /proc such as /dev/stdout) is written in place. A file-system error is a usage error naming the
 * file; an error thrown by `fill` is passed on as it is.
 */
export function writeWholeFile(
  path: string,
  shown: string,
  fill: (write: (text: string) => void) => void,
  batch: number = WRITE_BATCH,
): void {
  const cannot = (error: unknown): UsageError =>
    new UsageError(`cannot write ${shown}: ${writeFailure(error, path)}`);
  let existing: Stats | undefined;
  let target: string;
  try {
    existing = statOrUndefined(path);
    target = existing === undefined ? path : realpathSync(path);
  } catch (error) {
    throw cannot(error);
  }
  if (existing?.isDirectory()) throw new UsageError(`cannot write ${shown}: it is a directory`);
  // /dev/stdout or /proc/self/fd/1 is the stream it names, even when that is a regular file.
  const inPlace = existing !== undefined && (!existing.isFile() || /^\/(dev|proc)\//.test(resolve(path)));
  const written = inPlace
    ? path
    : join(dirname(target), `.${basename(target)}.${process.pid}-${randomBytes(4).toString("hex")}.tmp`);
  let fd: number | undefined;
  try {
    fd = openSync(written, inPlace ? "w" : "wx", 0o666);
  } catch (error) {
    throw cannot(error);
  }
  let renamed = false;
  try {
    const open = fd;
    if (!inPlace && existing !== undefined) {
      try {
        fchmodSync(open, existing.mode & 0o7777);
      } catch (error) {
        throw cannot(error);
      }
    }
    const out = new BatchedWriter((text) => {
      try {
        writeSync(open, text);
      } catch (error) {
        throw cannot(error);
      }
    }, batch);
    fill((text) => out.write(text));
    out.flush();
    try {
      if (!inPlace) fsyncSync(open);
      closeSync(open);
      fd = undefined;
      if (!inPlace) renameSync(written, target);
      renamed = true;
    } catch (error) {
      throw cannot(error);
    }
  } finally {
    if (fd !== undefined) closeSync(fd);
    if (!inPlace && !renamed) {
      try {
        unlinkSync(written);
      } catch {
        // Already gone: nothing to clean up.
      }
    }
  }
}
