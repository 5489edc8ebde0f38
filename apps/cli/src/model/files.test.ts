import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { UsageError } from "../framework/errors";
import { readBytesFile, readTextFile } from "./files";

describe("reading a file a user named", () => {
  const dir = mkdtempSync(join(tmpdir(), "nestvisor-files-"));
  const file = join(dir, "w.yaml");
  writeFileSync(file, "name: x\n");

  it("reads a regular file whole", () => {
    expect(readTextFile(file, "w.yaml", "workload")).toBe("name: x\n");
  });

  it("refuses a device or FIFO instead of reading forever (/dev/zero)", () => {
    expect(() => readBytesFile("/dev/zero", "/dev/zero", "workload")).toThrow(UsageError);
    expect(() => readBytesFile("/dev/zero", "/dev/zero", "workload")).toThrow(/not a regular file/);
  });

  it("refuses a file larger than the limit, naming both sizes", () => {
    expect(() => readBytesFile(file, "w.yaml", "workload", 4)).toThrow(
      /w\.yaml: 8 bytes is too large for a workload file \(at most 4\)/,
    );
  });

  it("names a directory and a missing file", () => {
    expect(() => readBytesFile(dir, "d", "workload")).toThrow(/d: is a directory/);
    expect(() => readBytesFile(join(dir, "nope"), "nope", "workload")).toThrow(/nope: no such file/);
  });
});
