import { spawnSync } from "node:child_process";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";

// `pnpm test` is what CI runs, so the lint and format rules are held here rather than left to a
// `pnpm lint` that nobody is made to run. Only tracked files are checked: turbo builds and tests
// other packages at the same time, and their temporary files (tsup's bundled configs, vitest
// reports) come and go in the tree while this runs.
const root = resolve(import.meta.dirname, "../../..");

function trackedFiles(): string[] {
  const git = spawnSync("git", ["ls-files", "-z"], { cwd: root, encoding: "utf8" });
  if (git.status !== 0) throw new Error(`git ls-files failed: ${git.stderr}`);
  return git.stdout.split("\0").filter((file) => file !== "");
}

describe("this repository", () => {
  it("passes biome check (lint and format) on every tracked file", () => {
    const files = trackedFiles();
    expect(files.length).toBeGreaterThan(100);
    const biome = spawnSync(
      resolve(root, "node_modules/.bin/biome"),
      ["check", "--files-ignore-unknown=true", "--no-errors-on-unmatched", ...files],
      { cwd: root, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 },
    );
    // On failure the message is biome's own report: which file, which rule, the fix.
    expect(biome.status, `${biome.stdout}\n${biome.stderr}`).toBe(0);
  });
});
