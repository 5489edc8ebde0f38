#!/usr/bin/env node
// The repository's test command (`pnpm test`): runs every package's vitest suite through turbo
// (the layer check is one of those suites, in tooling/layer-check), then sums the JSON reports the
// shared vitest preset writes into one closing line, `N passed, N failed`, which CI reads.
// Extra arguments are passed to turbo (e.g. `pnpm test --filter @nestvisor/x86-arch`).
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join, relative } from "node:path";

const root = join(import.meta.dirname, "..");
const workspaceFolders = ["packages", "apps", "tooling"];

function reportPaths() {
  const paths = [];
  for (const folder of workspaceFolders) {
    const dir = join(root, folder);
    if (!existsSync(dir)) continue;
    for (const entry of readdirSync(dir)) {
      const report = join(dir, entry, "reports", "vitest.json");
      if (existsSync(join(dir, entry, "package.json"))) paths.push(report);
    }
  }
  // The examples folder is itself one workspace package.
  if (existsSync(join(root, "examples", "package.json")))
    paths.push(join(root, "examples", "reports", "vitest.json"));
  return paths;
}

// Stale reports would be summed as if they were fresh: remove them first. (A turbo cache hit
// restores the report with the task, so cached packages still count.)
for (const path of reportPaths()) rmSync(path, { force: true });

const turbo = spawnSync("pnpm", ["exec", "turbo", "run", "test", "--continue", ...process.argv.slice(2)], {
  cwd: root,
  stdio: "inherit",
  env: { ...process.env, TURBO_TELEMETRY_DISABLED: "1" },
});

let passed = 0;
let failed = 0;
const problems = [];
for (const path of reportPaths()) {
  if (!existsSync(path)) continue;
  try {
    const report = JSON.parse(readFileSync(path, "utf8"));
    passed += report.numPassedTests ?? 0;
    failed += report.numFailedTests ?? 0;
    // A suite that failed to load (syntax error, missing import) has no failed tests but is a failure.
    failed += report.numFailedTestSuites && !report.numFailedTests ? report.numFailedTestSuites : 0;
  } catch (error) {
    problems.push(`${relative(root, path)}: unreadable vitest report (${error.message})`);
  }
}
for (const problem of problems) console.error(problem);
const turboFailed = turbo.status !== 0;
if (turboFailed && failed === 0) {
  console.error("turbo reported a failing task that produced no failing test (see its output above)");
  failed += 1;
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 || problems.length > 0 || turboFailed ? 1 : 0);
