import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type RunResult, run, runOk } from "./run";
import { npmEnvironment } from "./tarballs";
import { REPO_ROOT } from "./workspace";

/**
 * The compilers a consumer is checked with, by absolute path (the scratch project has none): the
 * repository's own TypeScript, and the oldest release the published declarations support (5.0,
 * the first with `moduleResolution: "bundler"`; declarations name typed arrays without the type
 * argument TypeScript 5.7 added, so that older compilers read them).
 */
export const COMPILERS = {
  current: join(REPO_ROOT, "node_modules", "typescript", "bin", "tsc"),
  oldest: join(import.meta.dirname, "..", "node_modules", "typescript-oldest", "bin", "tsc"),
} as const;

export type CompilerName = keyof typeof COMPILERS;

/** The two ways a consumer resolves packages: Node's ESM rules, or a bundler's. */
export const RESOLUTION_MODES = {
  node16: { module: "node16", moduleResolution: "node16" },
  bundler: { module: "esnext", moduleResolution: "bundler" },
} as const;

export type ResolutionMode = keyof typeof RESOLUTION_MODES;

export interface ScratchInstall {
  /** Tarballs of our packages: they become the project's dependencies. */
  readonly tarballs: readonly string[];
  /** Third-party packages by name → tarball, installed only where a dependency asks for them. */
  readonly overrides: Readonly<Record<string, string>>;
}

/**
 * Creates an ESM npm project in `dir` and installs the tarballs with `npm install --offline`: the
 * install fails if anything would have to come from the registry.
 */
export function installScratchProject(dir: string, install: ScratchInstall): RunResult {
  mkdirSync(dir, { recursive: true });
  const overrides = Object.fromEntries(
    Object.entries(install.overrides).map(([name, file]) => [name, `file:${file}`]),
  );
  const manifest = { name: "nestvisor-consumer", version: "0.0.0", private: true, type: "module", overrides };
  writeFileSync(join(dir, "package.json"), `${JSON.stringify(manifest, null, 2)}\n`);
  writeFileSync(join(dir, ".npmrc"), "");
  return runOk(
    "npm",
    ["install", "--offline", "--no-audit", "--no-fund", "--ignore-scripts", ...install.tarballs],
    {
      cwd: dir,
      env: npmEnvironment(dir),
    },
  );
}

/** The packages installed in a scratch project's node_modules (scoped names included), sorted. */
export function installedPackages(dir: string): string[] {
  const modules = join(dir, "node_modules");
  const names: string[] = [];
  for (const entry of readdirSync(modules)) {
    if (entry.startsWith(".")) continue;
    if (entry.startsWith("@"))
      for (const inner of readdirSync(join(modules, entry))) names.push(`${entry}/${inner}`);
    else names.push(entry);
  }
  return names.sort();
}

/** Runs an ES module given as text with plain `node` (no loader, no custom condition) in `dir`. */
export function runModule(dir: string, source: string): RunResult {
  return run(process.execPath, ["--input-type=module", "--eval", source], { cwd: dir });
}

/**
 * Type-checks `consumer.ts` in `dir` with one of `COMPILERS` under one resolution mode.
 * Strict, and with `skipLibCheck` off, so the shipped declarations are checked too.
 */
export function typecheck(
  dir: string,
  source: string,
  mode: ResolutionMode,
  compiler: CompilerName = "current",
): RunResult {
  writeFileSync(join(dir, "consumer.ts"), source);
  const config = {
    compilerOptions: {
      ...RESOLUTION_MODES[mode],
      target: "es2022",
      lib: ["es2023"],
      types: [],
      strict: true,
      noEmit: true,
      skipLibCheck: false,
    },
    files: ["consumer.ts"],
  };
  writeFileSync(join(dir, `tsconfig.${mode}.json`), `${JSON.stringify(config, null, 2)}\n`);
  return run(process.execPath, [COMPILERS[compiler], "-p", `tsconfig.${mode}.json`], { cwd: dir });
}
