import {
  chmodSync,
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { UsageError } from "../framework/errors";
import { BatchedWriter, writeWholeFile } from "./output-file";

const fresh = (): string => mkdtempSync(join(tmpdir(), "nestvisor-out-"));

describe("BatchedWriter", () => {
  it("hands the text on in batches of about the batch size, nothing lost or reordered", () => {
    const got: string[] = [];
    const out = new BatchedWriter((text) => got.push(text), 10);
    for (const piece of ["abc", "defg", "hijk", "l", "mnopqrstuvwxyz", "!"]) out.write(piece);
    expect(got).toEqual(["abcdefghijk", "lmnopqrstuvwxyz"]);
    out.flush();
    out.flush();
    expect(got).toEqual(["abcdefghijk", "lmnopqrstuvwxyz", "!"]);
  });
});

describe("writeWholeFile", () => {
  it("replaces a file with what fill writes, keeping its permissions and leaving no temporary file", () => {
    const dir = fresh();
    const path = join(dir, "merged.jsonl");
    writeFileSync(path, "old\n");
    chmodSync(path, 0o640);
    writeWholeFile(
      path,
      "merged.jsonl",
      (write) => {
        for (let i = 0; i < 100; i++) write(`line ${i}\n`);
      },
      16,
    );
    expect(readFileSync(path, "utf8")).toBe(Array.from({ length: 100 }, (_, i) => `line ${i}\n`).join(""));
    expect(statSync(path).mode & 0o777).toBe(0o640);
    expect(readdirSync(dir)).toEqual(["merged.jsonl"]);
    writeWholeFile(join(dir, "new.jsonl"), "new.jsonl", (write) => write("x\n"));
    expect(readFileSync(join(dir, "new.jsonl"), "utf8")).toBe("x\n");
  });

  it("leaves the old file as it was, and no temporary file, when writing fails half way", () => {
    const dir = fresh();
    const path = join(dir, "merged.jsonl");
    writeFileSync(path, "old\n");
    const failing = () =>
      writeWholeFile(
        path,
        "merged.jsonl",
        (write) => {
          for (let i = 0; i < 10; i++) write(`line ${i}\n`);
          throw new Error("disk on fire");
        },
        8,
      );
    expect(failing).toThrow("disk on fire");
    expect(readFileSync(path, "utf8")).toBe("old\n");
    expect(readdirSync(dir)).toEqual(["merged.jsonl"]);
  });

  it("replaces the file a symbolic link names, and refuses a directory or a missing directory", () => {
    const dir = fresh();
    mkdirSync(join(dir, "real"));
    writeFileSync(join(dir, "real", "t.jsonl"), "old\n");
    symlinkSync(join(dir, "real", "t.jsonl"), join(dir, "link.jsonl"));
    writeWholeFile(join(dir, "link.jsonl"), "link.jsonl", (write) => write("new\n"));
    expect(readFileSync(join(dir, "real", "t.jsonl"), "utf8")).toBe("new\n");
    expect(readdirSync(join(dir, "real"))).toEqual(["t.jsonl"]);
    expect(() => writeWholeFile(join(dir, "real"), "real", () => {})).toThrow(
      new UsageError("cannot write real: it is a directory"),
    );
    expect(() => writeWholeFile(join(dir, "none", "x"), "none/x", () => {})).toThrow(
      /^cannot write none\/x: ENOENT/,
    );
  });

  it("writes a device, and /dev/fd/N even when it is a regular file, in place", () => {
    writeWholeFile("/dev/null", "/dev/null", (write) => write("gone\n"));
    expect(statSync("/dev/null").isCharacterDevice()).toBe(true);
    const dir = fresh();
    const path = join(dir, "appended.txt");
    writeFileSync(path, "kept\n");
    const inode = statSync(path).ino;
    const fd = openSync(path, "a");
    try {
      writeWholeFile(`/dev/fd/${fd}`, "/dev/fd", (write) => write("more\n"));
    } finally {
      closeSync(fd);
    }
    // Opened and written as it is (as `> /dev/stdout` would), not replaced by a rename.
    expect(readFileSync(path, "utf8")).toBe("more\n");
    expect(statSync(path).ino).toBe(inode);
    expect(readdirSync(dir)).toEqual(["appended.txt"]);
  });
});
