import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { runCli } from "../testing/run-cli";

/** `nestvisor test`: the conformance suite's command under the main one. */

const REPO = resolve(import.meta.dirname, "../../../..");

describe("nestvisor test", () => {
  it("--help shows the suite's usage under our name, with examples", () => {
    const r = runCli(["test", "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: nestvisor test \[options\]\n/);
    expect(r.stdout).toContain("--filter <regex>");
    expect(r.stdout).toContain("Examples:\n  # ");
    expect(r.stdout).not.toContain("nestvisor-test-suite");
    for (const line of r.stdout.split("\n")) expect(line.length, line).toBeLessThanOrEqual(100);
  });

  it("runs the suites a filter selects and exits 0 when nothing fails", () => {
    const r = runCli(["test", "--filter", "^mmu/", "--quiet"], { cwd: REPO });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("PASS mmu/root-cache-table");
    expect(r.stdout).toMatch(/SUMMARY: \d+ tests, 0 unexpected failures/);
    const tap = runCli(["test", "--filter", "^mmu/round-trips$", "--tap", "--quiet"], { cwd: REPO });
    expect(tap.stdout).toMatch(/^TAP version 14\n/);
  });

  it("exits 1 with the suite's report when a model breaks a rule", () => {
    const r = runCli(
      ["test", "--model", "examples/models/broken-root-cache.mjs", "--filter", "^mmu/", "--quiet"],
      { cwd: REPO },
    );
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("FAIL mmu/");
    expect(r.stdout).toContain("is_root_usable");
  });

  it("exits 2 for bad usage, one line in our name", () => {
    const bad = runCli(["test", "--bogus"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^nestvisor test: .*'--bogus'.* \(see nestvisor test --help\)\n$/);
    const none = runCli(["test", "--filter", "^nothing-matches$", "--quiet"]);
    expect(none.code).toBe(2);
    expect(none.stderr).toBe("nestvisor test: no case group matches --filter ^nothing-matches$\n");
    const missing = runCli(["test", "--model", "missing.mjs"]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^nestvisor test: /);
  });
});
