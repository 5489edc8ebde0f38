import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { parseCommandLine, runCommand, UsageError } from "./command";

function io(cwd = process.cwd()) {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { stdout: (t: string) => out.push(t), stderr: (t: string) => err.push(t), cwd } };
}

const EXAMPLES = resolve(import.meta.dirname, "../../../examples/models");

describe("parseCommandLine", () => {
  it("reads every option", () => {
    const p = parseCommandLine([
      "--model",
      "m.mjs",
      "--preset",
      "v5.3",
      "--flag",
      "controlsShadow=off",
      "--flag",
      "tdpMmu=on,reuseCurrentRoot=0",
      "--filter",
      "^vmx/",
      "--full",
      "--seed",
      "7",
      "--junit",
      "out.xml",
      "--tap",
      "--quiet",
    ]);
    expect(p).toMatchObject({
      model: "m.mjs",
      preset: "v5.3",
      full: true,
      seed: 7,
      junit: "out.xml",
      tap: true,
      quiet: true,
    });
    expect(p.flags).toEqual({ controlsShadow: false, tdpMmu: true, reuseCurrentRoot: false });
    expect(p.filter?.test("vmx/launch")).toBe(true);
    expect(p.filter?.test("vmx-checks/eptp")).toBe(false);
  });

  it("rejects mistakes with a message that names them", () => {
    expect(() => parseCommandLine(["--preset", "5.3"])).toThrow(/did you mean "v5.3"/);
    expect(() => parseCommandLine(["--flag", "controlShadow=off"])).toThrow(
      /--flag controlShadow=off: unknown hypervisor flag/,
    );
    expect(() => parseCommandLine(["--flag", "tdpMmu=on", "--flag", "tdpMmu=off"])).toThrow(/more than once/);
    expect(() => parseCommandLine(["--filter", "("])).toThrow(UsageError);
    expect(() => parseCommandLine(["--seed", "1.5"])).toThrow(/--seed 1.5: expected an integer/);
    expect(() => parseCommandLine(["--tap", "--json"])).toThrow(/choose one/);
    expect(() => parseCommandLine(["--list", "--tap"])).toThrow(/--list prints no TAP report/);
    expect(() => parseCommandLine(["--list", "--junit", "out.xml"])).toThrow(/--list writes no JUnit report/);
    expect(() => parseCommandLine(["--bogus"])).toThrow(UsageError);
  });
});

describe("runCommand (in process)", () => {
  it("--help prints the usage", async () => {
    const c = io();
    expect(await runCommand(["--help"], c.io)).toBe(0);
    expect(c.out.join("")).toContain("Usage: nestvisor-test-suite");
  });

  it("--list prints the groups with case counts and per-suite totals, without running", async () => {
    const c = io();
    expect(await runCommand(["--list"], c.io)).toBe(0);
    const text = c.out.join("");
    for (const suite of [
      "access",
      "vmx",
      "vmx-checks",
      "shadow-vmcs",
      "ept",
      "mmu",
      "nested",
      "differential",
      "audit",
    ]) {
      expect(text).toMatch(new RegExp(`^${suite} +\\d+ groups? +\\d+ cases$`, "m"));
    }
    expect(text).toMatch(/^access\/walker +3624960 /m);
    expect(text).toMatch(/^total +\d+ groups +\d+ cases$/m);
    expect(c.err).toEqual([]);
  });

  it("--list --json prints the listed groups as a JSON array, in the text listing's order", async () => {
    const c = io();
    expect(await runCommand(["--list", "--json", "--filter", "^(access/walker|vmx/launch)$"], c.io)).toBe(0);
    expect(c.err).toEqual([]);
    const listed = JSON.parse(c.out.join(""));
    expect(listed).toEqual([
      {
        id: "access/walker",
        suite: "access",
        group: "walker",
        cases: 3624960,
        description: expect.any(String),
      },
      { id: "vmx/launch", suite: "vmx", group: "launch", cases: 10, description: expect.any(String) },
    ]);
    const all = io();
    expect(await runCommand(["--list", "--json"], all.io)).toBe(0);
    const groups = JSON.parse(all.out.join("")) as { id: string; suite: string; group: string }[];
    const text = io();
    await runCommand(["--list"], text.io);
    const textIds = text.out
      .join("")
      .split("\n")
      .filter((line) => /^\S+\/\S+ /.test(line))
      .map((line) => line.slice(0, line.indexOf(" ")));
    expect(groups.map((g) => g.id)).toEqual(textIds);
    for (const g of groups) expect(`${g.suite}/${g.group}`).toBe(g.id);
  });

  it("--list with --tap or --junit is a usage error (exit 2), not a silently ignored option", async () => {
    const c = io();
    expect(await runCommand(["--list", "--tap"], c.io)).toBe(2);
    expect(c.out).toEqual([]);
    expect(c.err.join("")).toBe(
      "nestvisor-test-suite: --list prints no TAP report: use --list or --list --json\n(see --help)\n",
    );
  });

  it("runs a filtered run: text report on stdout, progress on stderr, exit 0", async () => {
    const c = io();
    expect(await runCommand(["--filter", "^(vmx/launch|mmu/round-trips)$"], c.io)).toBe(0);
    const text = c.out.join("");
    expect(text).toContain("PASS vmx/launch (10 tests)");
    expect(text).toContain("PASS mmu/round-trips (9 tests)");
    expect(text).toMatch(/SUMMARY: 19 tests, 0 unexpected failures, 0 expected failures, 0 skipped/);
    expect(c.err.join("")).toMatch(/^\[1\/2\] PASS vmx\/launch \(10 tests\) [\d.]+ s$/m);
  });

  it("--tap and --junit", async () => {
    const dir = mkdtempSync(join(tmpdir(), "nestvisor-junit-"));
    const c = io(dir);
    expect(
      await runCommand(["--filter", "^vmx/launch$", "--tap", "--junit", "report.xml", "--quiet"], c.io),
    ).toBe(0);
    expect(c.out.join("")).toMatch(/^TAP version 14\n1\.\.1\n/);
    expect(c.err).toEqual([]);
    expect(readFileSync(join(dir, "report.xml"), "utf8")).toContain('name="vmx/launch"');
  });

  it("--json writes the report object", async () => {
    const c = io();
    expect(await runCommand(["--filter", "^mmu/round-trips$", "--json", "--quiet"], c.io)).toBe(0);
    const report = JSON.parse(c.out.join(""));
    expect(report.model).toBe("kvm");
    expect(report.groups[0].verdict).toBe("PASS");
  });

  it("exits 1 when a group fails (the broken example model) and 2 for usage errors", async () => {
    const c = io();
    expect(
      await runCommand(
        ["--model", join(EXAMPLES, "broken-root-cache.mjs"), "--filter", "^mmu/root-role", "--quiet"],
        c.io,
      ),
    ).toBe(1);
    expect(c.out.join("")).toMatch(/FAIL mmu\/root-role-invariant/);
    const u = io();
    expect(await runCommand(["--filter", "^nothing-matches$"], u.io)).toBe(2);
    expect(u.err.join("")).toMatch(/no case group matches/);
    const m = io();
    expect(await runCommand(["--model", "missing.mjs"], m.io)).toBe(2);
    expect(m.err.join("")).toMatch(/--model missing.mjs: no such file/);
    const d = io(tmpdir());
    expect(await runCommand(["--model", "."], d.io)).toBe(2);
    expect(d.err.join("")).toBe("nestvisor-test-suite: --model .: is a directory, not a module file\n");
  });

  it("gives a ModelSpec module --preset and --flag as its base spec; the module's own flags win", async () => {
    const dir = mkdtempSync(join(tmpdir(), "nestvisor-spec-"));
    writeFileSync(
      join(dir, "spec.mjs"),
      "export default (base) => ({ name: 'spec-' + base.preset, flags: { shadowVmcs: false } });",
    );
    const c = io(dir);
    const argv = ["--model", "spec.mjs", "--preset", "v5.3", "--flag", "shadowVmcs=on,controlsShadow=on"];
    expect(await runCommand([...argv, "--filter", "^mmu/round-trips$", "--json", "--quiet"], c.io)).toBe(0);
    const report = JSON.parse(c.out.join(""));
    expect(report.model).toBe("spec-v5.3");
    expect(report.preset).toBe("v5.3");
    expect(report.flags).toMatch(/(^|,)shadowVmcs=off(,|$)/);
    expect(report.flags).toMatch(/(^|,)controlsShadow=on(,|$)/);
    const bad = io(dir);
    writeFileSync(join(dir, "bad.mjs"), "export default { flags: { shadowVmcs: 'yes' } };");
    expect(await runCommand(["--model", "bad.mjs"], bad.io)).toBe(2);
    expect(bad.err.join("")).toMatch(/--model bad\.mjs: flag "shadowVmcs" must be true or false/);
  });
});
