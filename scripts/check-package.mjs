#!/usr/bin/env node
// Package hygiene for one publishable package: the `check:package` script of packages/* (turbo task
// `check:package`, after `build`; `pnpm check:package` runs it for all four).
//
// It packs the package the way `changeset publish` does (`pnpm pack`: workspace ranges become
// versions, `publishConfig` overrides apply) and checks the tarball a consumer would install:
//   - publint --strict (warnings are errors);
//   - arethetypeswrong with the esm-only profile (node16 from ESM and bundler must resolve types);
//   - the repository's own rules: only dist/, the README and the data folders named in `files`
//     are shipped (no src/, no test files), the exports carry no `@nestvisor/source` condition
//     (it points at src/, which is not shipped), and no dependency keeps a `workspace:` range.
//
// Usage: node scripts/check-package.mjs [packageDir] [--tarball file.tgz] [--json]
//   packageDir  defaults to the current directory
//   --tarball   check an existing tarball of that package instead of packing it
//   --json      print one JSON object (used by tooling/consumer-test) instead of the report
// Exit status: 0 when the package is clean, 1 when a check fails (or packing it fails), 2 for bad
// usage (an unknown option, a missing value, a package directory or tarball that is not there).
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { CheckFailure, runCheckScript, TEST_FILE, UsageError } from "./check-script.mjs";

const root = resolve(import.meta.dirname, "..");
const USAGE = "usage: node scripts/check-package.mjs [packageDir] [--tarball file.tgz] [--json]";
const SOURCE_CONDITION = "@nestvisor/source";
const ALWAYS_SHIPPED = /^(?:package\.json|README\.md|CHANGELOG\.md|LICEN[CS]E(?:\.md|\.txt)?)$/i;

function parseArgs(argv) {
  const options = { dir: undefined, tarball: undefined, json: false, help: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--json") options.json = true;
    else if (arg === "-h" || arg === "--help") options.help = true;
    else if (arg === "--tarball") {
      const next = argv[++i];
      if (next === undefined || next === "" || next.startsWith("-"))
        throw new UsageError("--tarball needs a file");
      options.tarball = resolve(next);
    } else if (arg.startsWith("-")) throw new UsageError(`unknown option ${arg}`);
    else if (options.dir !== undefined)
      throw new UsageError(`one package directory at a time (got ${options.dir} and ${arg})`);
    else options.dir = arg;
  }
  if (options.tarball !== undefined) {
    if (options.dir !== undefined)
      throw new UsageError(`give a package directory or --tarball, not both (${options.dir})`);
    if (!existsSync(options.tarball) || !statSync(options.tarball).isFile())
      throw new UsageError(`--tarball ${options.tarball}: no such file`);
  } else {
    const dir = resolve(options.dir ?? ".");
    const named = options.dir ?? dir;
    if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`${named}: no such directory`);
    if (!existsSync(join(dir, "package.json"))) throw new UsageError(`${named}: no package.json there`);
    options.dir = dir;
  }
  return options;
}

function run(command, args, cwd) {
  const result = spawnSync(command, args, {
    cwd,
    encoding: "utf8",
    env: { ...process.env, FORCE_COLOR: "0", NO_COLOR: "1" },
    maxBuffer: 64 << 20,
  });
  if (result.error) throw new CheckFailure(`cannot run ${command}: ${result.error.message}`);
  return { status: result.status ?? 1, output: `${result.stdout}${result.stderr}`.trim() };
}

/** Packs `dir` with pnpm into `destination` and returns the tarball's path. */
function packWithPnpm(dir, destination) {
  const { status, output } = run("pnpm", ["pack", "--json", "--pack-destination", destination], dir);
  if (status !== 0) throw new CheckFailure(`pnpm pack failed in ${dir}:\n${output}`);
  try {
    return JSON.parse(output.slice(output.indexOf("{"))).filename;
  } catch {
    throw new CheckFailure(`pnpm pack in ${dir} printed no JSON result:\n${output}`);
  }
}

function tarballFiles(tarball) {
  const { status, output } = run("tar", ["-tzf", tarball], root);
  if (status !== 0) throw new CheckFailure(`cannot list ${tarball}:\n${output}`);
  return output
    .split("\n")
    .filter((line) => line !== "" && !line.endsWith("/"))
    .map((line) => line.replace(/^package\//, ""))
    .sort();
}

function tarballManifest(tarball) {
  const { status, output } = run("tar", ["-xzOf", tarball, "package/package.json"], root);
  if (status !== 0) throw new CheckFailure(`cannot read package.json from ${tarball}:\n${output}`);
  return JSON.parse(output);
}

function conditionPaths(value, path, found) {
  if (value === null || typeof value !== "object") return found;
  for (const [key, inner] of Object.entries(value)) {
    if (key === SOURCE_CONDITION) found.push([...path, key].join(" > "));
    conditionPaths(inner, [...path, key], found);
  }
  return found;
}

/** The repository's own rules for a packed tarball (publint and attw cover the rest). */
function repositoryRules(files, manifest) {
  const problems = [];
  const dataFolders = new Set(
    (manifest.files ?? [])
      .filter((entry) => !entry.startsWith("!") && !/[*?]/.test(entry))
      .map((entry) => entry.replace(/^\.\//, "").replace(/\/$/, ""))
      .filter((entry) => entry !== "src"),
  );
  if (manifest.files?.some((entry) => entry.replace(/^\.\//, "").startsWith("src"))) {
    problems.push(`"files" lists src: the package would ship its TypeScript sources`);
  }
  for (const file of files) {
    if (TEST_FILE.test(file)) problems.push(`ships a test file: ${file}`);
    else if (file.startsWith("src/")) problems.push(`ships a source file: ${file}`);
    else if (!ALWAYS_SHIPPED.test(file) && !dataFolders.has(file.split("/")[0] ?? "")) {
      problems.push(`ships a file outside dist/ and the folders named in "files": ${file}`);
    }
  }
  for (const path of conditionPaths(manifest.exports, ["exports"], [])) {
    problems.push(`the published ${path} points at src/, which is not shipped (set publishConfig.exports)`);
  }
  for (const field of ["dependencies", "peerDependencies", "optionalDependencies"]) {
    for (const [name, range] of Object.entries(manifest[field] ?? {})) {
      if (String(range).startsWith("workspace:")) problems.push(`${field}.${name} is still "${range}"`);
    }
  }
  if (!files.some((file) => file.startsWith("dist/"))) problems.push("ships no dist/ (was it built?)");
  return problems;
}

/** Runs every check on a tarball. */
function checkTarball(tarball) {
  const files = tarballFiles(tarball);
  const manifest = tarballManifest(tarball);
  const bin = (name) => join(root, "node_modules", ".bin", name);
  const publint = run(bin("publint"), ["run", tarball, "--strict"], root);
  const attw = run(bin("attw"), [tarball, "--profile", "esm-only", "--no-color", "--no-emoji"], root);
  const problems = repositoryRules(files, manifest);
  return {
    name: manifest.name,
    version: manifest.version,
    tarball,
    files,
    manifest,
    publint: { ok: publint.status === 0, output: publint.output },
    attw: { ok: attw.status === 0, output: attw.output },
    problems,
    ok: publint.status === 0 && attw.status === 0 && problems.length === 0,
  };
}

function check(options) {
  let scratch;
  try {
    let tarball = options.tarball;
    if (tarball === undefined) {
      scratch = mkdtempSync(join(tmpdir(), "nestvisor-check-package-"));
      tarball = packWithPnpm(options.dir, scratch);
    }
    const result = checkTarball(tarball);
    if (options.json) {
      process.stdout.write(`${JSON.stringify(result)}\n`);
    } else {
      const name = `${result.name}@${result.version}`;
      console.log(`== ${name}: ${result.files.length} files packed`);
      console.log(`-- publint --strict: ${result.publint.ok ? "ok" : "FAILED"}\n${result.publint.output}`);
      console.log(`-- attw --profile esm-only: ${result.attw.ok ? "ok" : "FAILED"}\n${result.attw.output}`);
      console.log(`-- repository rules: ${result.problems.length === 0 ? "ok" : "FAILED"}`);
      for (const problem of result.problems) console.log(`   ${problem}`);
      console.log(result.ok ? `${name} is clean` : `${name} is NOT clean`);
    }
    return result.ok ? 0 : 1;
  } finally {
    if (scratch !== undefined) rmSync(scratch, { recursive: true, force: true });
  }
}

process.exitCode = runCheckScript({
  name: "check-package",
  usage: USAGE,
  parseArgs,
  check,
  failureLines: (message) => [`check-package: ${message}`],
});
