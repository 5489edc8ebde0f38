/**
 * The package check (scripts/check-package.mjs, each library's `check:package`): its exit statuses.
 * Bad usage is one line and exit 2; a package that fails a check is exit 1 with the report; a clean
 * one is exit 0. The checks themselves run on the real libraries in tooling/consumer-test.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

const REPO_ROOT = resolve(import.meta.dirname, "../../..");
const SCRIPT = join(REPO_ROOT, "scripts", "check-package.mjs");
const USAGE = "usage: node scripts/check-package.mjs [packageDir] [--tarball file.tgz] [--json]";

function checkPackage(args: readonly string[], cwd = REPO_ROOT) {
  const result = spawnSync(process.execPath, [SCRIPT, ...args], { cwd, encoding: "utf8", timeout: 60_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe("usage", () => {
  it.each([
    ["an unknown option", ["--bogus"], "unknown option --bogus"],
    ["--tarball without a file", ["--tarball"], "--tarball needs a file"],
    ["--tarball followed by an option", ["--tarball", "--json"], "--tarball needs a file"],
    ["a tarball that does not exist", ["--tarball", "/no/such.tgz"], "--tarball /no/such.tgz: no such file"],
    [
      "a package directory and a tarball",
      ["packages/x86-arch", "--tarball", "package.json"],
      "give a package directory or --tarball, not both (packages/x86-arch)",
    ],
    [
      "two package directories",
      ["packages/vmx", "packages/mmu"],
      "one package directory at a time (got packages/vmx and packages/mmu)",
    ],
    ["a package directory that does not exist", ["packages/nope"], "packages/nope: no such directory"],
    ["a directory without package.json", ["scripts"], "scripts: no package.json there"],
  ])("rejects %s with one line and exit 2", (_what, args, message) => {
    const result = checkPackage(args);
    expect(result.status).toBe(2);
    expect(result.stdout).toBe("");
    expect(result.stderr).toBe(`check-package: ${message} (${USAGE})\n`);
  });

  it("--help prints the usage line and exits 0", () => {
    const result = checkPackage(["--help"]);
    expect(result.status).toBe(0);
    expect(result.stdout).toBe(`${USAGE}\n`);
  });
});

describe("a fixture package", () => {
  let dir: string;

  const manifest = (fields: Record<string, unknown>) =>
    writeFileSync(
      join(dir, "package.json"),
      JSON.stringify({
        name: "fixture-package",
        version: "1.0.0",
        type: "module",
        exports: {
          ".": {
            "@nestvisor/source": "./src/index.ts",
            types: "./dist/index.d.ts",
            default: "./dist/index.js",
          },
        },
        files: ["dist"],
        publishConfig: {
          exports: { ".": { types: "./dist/index.d.ts", default: "./dist/index.js" } },
        },
        ...fields,
      }),
    );

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "check-package-"));
    mkdirSync(join(dir, "dist"));
    mkdirSync(join(dir, "src"));
    writeFileSync(join(dir, "dist", "index.js"), "export const one = 1;\n");
    writeFileSync(join(dir, "dist", "index.d.ts"), "export declare const one = 1;\n");
    writeFileSync(join(dir, "src", "index.ts"), "export const one = 1;\n");
  });

  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it("is clean (exit 0) when it ships dist/ only and publishes exports without the source condition", () => {
    manifest({});
    const result = checkPackage([dir]);
    expect(result.stderr).toBe("");
    expect(result.stdout).toMatch(/^== fixture-package@1\.0\.0: 3 files packed$/m);
    expect(result.stdout).toMatch(/fixture-package@1\.0\.0 is clean\n$/);
    expect(result.status).toBe(0);
  });

  it("fails (exit 1) with the problems named when it would ship src/ and the source condition", () => {
    manifest({ files: ["dist", "src"], publishConfig: {} });
    const result = checkPackage([], dir);
    expect(result.status).toBe(1);
    expect(result.stdout).toContain('"files" lists src');
    expect(result.stdout).toContain("ships a source file: src/index.ts");
    expect(result.stdout).toContain("the published exports > . > @nestvisor/source points at src/");
    expect(result.stdout).toMatch(/fixture-package@1\.0\.0 is NOT clean\n$/);
  });

  it("fails (exit 1, no stack trace) when the --tarball file is not a tarball", () => {
    manifest({});
    const result = checkPackage(["--tarball", join(dir, "package.json")]);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/^check-package: cannot list .*package\.json:\n/);
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });
});
