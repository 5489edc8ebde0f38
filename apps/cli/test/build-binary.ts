import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";

/**
 * Vitest global setup: the command tests spawn the real binary, so build `dist/cli.js` when it is
 * missing or older than anything it bundles (this package's sources and the workspace packages'
 * sources, the conformance suite's included). Under `pnpm test` turbo has usually built it already
 * and this is a cheap check.
 */
const root = resolve(import.meta.dirname, "..");
const repo = resolve(root, "../..");

function newest(dir: string): number {
  if (!existsSync(dir)) return 0;
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) latest = Math.max(latest, newest(path));
    else if (!entry.name.endsWith(".test.ts")) latest = Math.max(latest, statSync(path).mtimeMs);
  }
  return latest;
}

export default function setup(): void {
  const binary = join(root, "dist", "cli.js");
  const sources = [
    join(root, "src"),
    ...["x86-arch", "vmx", "mmu", "hypervisor"].map((p) => join(repo, "packages", p, "src")),
    // `nestvisor test` bundles the conformance suite.
    join(repo, "apps", "test-suite", "src"),
  ];
  const inputs = Math.max(
    ...sources.map(newest),
    statSync(join(root, "tsup.config.ts")).mtimeMs,
    statSync(join(root, "package.json")).mtimeMs,
  );
  if (existsSync(binary) && statSync(binary).mtimeMs >= inputs) return;
  const result = spawnSync("pnpm", ["exec", "tsup", "--silent"], { cwd: root, stdio: "inherit" });
  if (result.status !== 0)
    throw new Error(`building the nestvisor binary failed (tsup exit ${result.status})`);
}
