import { readFileSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { COMMANDS } from "./commands/registry";
import { BINARY, runCli } from "./testing/run-cli";

const ANSI = new RegExp(`${String.fromCharCode(27)}\\[`);
const version = (
  JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }
).version;

describe("nestvisor (the binary)", () => {
  it("prints its version and exits 0", () => {
    expect(runCli(["--version"])).toEqual({ code: 0, stdout: `${version}\n`, stderr: "" });
    expect(runCli(["-V"]).stdout).toBe(`${version}\n`);
  });

  it("starts without loading the model: --version only imports small chunks", () => {
    const source = readFileSync(BINARY, "utf8");
    const imported = [...source.matchAll(/^import\s[^;]*?from\s+"(\.\/[^"]+)"/gm)].map((m) => m[1]!);
    const bytes = imported.reduce(
      (total, file) => total + statSync(join(dirname(BINARY), file)).size,
      statSync(BINARY).size,
    );
    expect(bytes).toBeLessThan(64 * 1024);
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      const start = performance.now();
      runCli(["--version"]);
      times.push(performance.now() - start);
    }
    // The target is 150 ms on a quiet machine (measured: about 70 ms); a loaded CI runner gets slack.
    expect(Math.min(...times)).toBeLessThan(1000);
  });

  it("lists every command in --help, and each command's --help has examples", () => {
    const top = runCli(["--help"]);
    expect(top.code).toBe(0);
    for (const c of COMMANDS) expect(top.stdout).toContain(`  ${c.name} `);
    for (const args of [
      ["compare"],
      ["run"],
      ["explain"],
      ["decode"],
      ["vmcs12", "layout"],
      ["vmcs12", "dump"],
      ["walk"],
      ["trace", "stat"],
      ["trace", "replay"],
      ["workloads"],
      ["flags"],
      ["presets"],
      ["profiles"],
      ["sweep"],
      ["sweep", "merge"],
      ["test"],
    ]) {
      const help = runCli([...args, "--help"]);
      expect(help.code, args.join(" ")).toBe(0);
      expect(help.stdout).toMatch(/^Usage: nestvisor /);
      expect(help.stdout).toContain("Examples:\n  # ");
      for (const line of help.stdout.split("\n")) expect(line.length, line).toBeLessThanOrEqual(100);
    }
    expect(runCli(["help", "compare"]).stdout).toContain("Usage: nestvisor compare");
  });

  it("rejects an unknown command or option with one line and exit code 2", () => {
    const r = runCli(["comapre"]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(
      /^nestvisor: unknown command "comapre" \(did you mean "compare"\?\); commands: compare, /,
    );
    expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
    const o = runCli(["flags", "--jsn"]);
    expect(o).toMatchObject({
      code: 2,
      stderr: 'nestvisor flags: unknown option --jsn (did you mean "--json"?)\n',
    });
    const g = runCli(["vmcs12"]);
    expect(g.code).toBe(2);
    expect(g.stderr).toContain("Usage: nestvisor vmcs12 <layout|dump>");
    expect(runCli(["trace", "sta", "x"]).stderr).toMatch(
      /unknown subcommand "sta" \(did you mean "stat"\?\)/,
    );
  });

  it("colours only when asked for on a pipe, and never with NO_COLOR or --no-color", () => {
    expect(runCli(["presets"]).stdout).not.toMatch(ANSI);
    expect(runCli(["presets"], { env: { FORCE_COLOR: "1" } }).stdout).toMatch(ANSI);
    expect(runCli(["presets"], { env: { FORCE_COLOR: "1", NO_COLOR: "1" } }).stdout).not.toMatch(ANSI);
    expect(runCli(["presets", "--no-color"], { env: { FORCE_COLOR: "1" } }).stdout).not.toMatch(ANSI);
  });
});
