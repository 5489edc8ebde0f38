import { mkdirSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { UsageError } from "../framework/errors";
import { checkOutputPath, writeWholeFile } from "./output-file";

const fresh = (): string => mkdtempSync(join(tmpdir(), "nestvisor-out-robust-"));

describe("output paths (regressions of the robustness audit)", () => {
  it("checkOutputPath accepts a new or existing file in a writable directory", () => {
    const dir = fresh();
    expect(() => checkOutputPath(join(dir, "new.svg"), "new.svg")).not.toThrow();
    writeFileSync(join(dir, "old.svg"), "x");
    expect(() => checkOutputPath(join(dir, "old.svg"), "old.svg")).not.toThrow();
    expect(() => checkOutputPath("/dev/null", "/dev/null")).not.toThrow();
    expect(() => checkOutputPath(join(dir, "old.svg"), "old.svg", "append")).not.toThrow();
    expect(() => checkOutputPath(dir, "dir", "append")).toThrow(
      new UsageError("cannot write dir: it is a directory"),
    );
    expect(readdirSync(dir)).toEqual(["old.svg"]);
  });

  it("checkOutputPath names the file and why it cannot be written, before any work", () => {
    const dir = fresh();
    mkdirSync(join(dir, "sub"));
    writeFileSync(join(dir, "file"), "x");
    const cases: [string, string, RegExp][] = [
      [
        join(dir, "none", "x.json"),
        "none/x.json",
        /^cannot write none\/x\.json: ENOENT: the directory .*none does not exist$/,
      ],
      [join(dir, "sub"), "sub", /^cannot write sub: it is a directory$/],
      [join(dir, "file", "x.json"), "file/x.json", /^cannot write file\/x\.json: ENOTDIR: /],
    ];
    for (const [path, shown, message] of cases) {
      let thrown: unknown;
      try {
        checkOutputPath(path, shown);
      } catch (error) {
        thrown = error;
      }
      expect(thrown, shown).toBeInstanceOf(UsageError);
      expect((thrown as Error).message).toMatch(message);
    }
    expect(readdirSync(dir).sort()).toEqual(["file", "sub"]);
  });

  it("writeWholeFile names the directory that is missing, not its temporary file", () => {
    const dir = fresh();
    expect(() => writeWholeFile(join(dir, "none", "x"), "none/x", (write) => write("x"))).toThrow(
      new UsageError(`cannot write none/x: ENOENT: the directory ${join(dir, "none")} does not exist`),
    );
    expect(readdirSync(dir)).toEqual([]);
  });
});
