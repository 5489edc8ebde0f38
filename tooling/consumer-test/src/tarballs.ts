import { existsSync, readFileSync, realpathSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { runOk } from "./run";
import { type Manifest, REPO_ROOT } from "./workspace";

/** Packs a workspace package as `changeset publish` would (pnpm: workspace ranges and publishConfig applied). */
export function packWithPnpm(dir: string, destination: string): string {
  const { stdout } = runOk("pnpm", ["pack", "--json", "--pack-destination", destination], { cwd: dir });
  return (JSON.parse(stdout.slice(stdout.indexOf("{"))) as { filename: string }).filename;
}

/** The package.json inside a tarball, as the registry would serve it. */
export function tarballManifest(tarball: string): Manifest {
  const { stdout } = runOk("tar", ["-xzOf", tarball, "package/package.json"], { cwd: REPO_ROOT });
  return JSON.parse(stdout) as Manifest;
}

/** The files of a tarball, relative to its `package/` root, sorted. */
export function tarballFiles(tarball: string): string[] {
  const { stdout } = runOk("tar", ["-tzf", tarball], { cwd: REPO_ROOT });
  return stdout
    .split("\n")
    .filter((line) => line !== "" && !line.endsWith("/"))
    .map((line) => line.replace(/^package\//, ""))
    .sort();
}

/** Where Node would find package `name` from `fromDir` (the node_modules lookup, without exports). */
function findInstalled(name: string, fromDir: string): string | undefined {
  for (let dir = fromDir; ; dir = dirname(dir)) {
    if (basename(dir) !== "node_modules") {
      const candidate = join(dir, "node_modules", name);
      if (existsSync(join(candidate, "package.json"))) return realpathSync(candidate);
    }
    if (dirname(dir) === dir) return undefined;
  }
}

export interface ThirdPartyTarball {
  readonly name: string;
  readonly version: string;
  readonly tarball: string;
}

/**
 * Packs the third-party packages the given manifests depend on (and theirs, transitively) from
 * the copies pnpm installed for the workspace, so a scratch project installs them with
 * `npm install --offline` through `overrides`: no registry, and exactly the versions tested here.
 * `fromDir` is where the manifests' package lives in the workspace (its node_modules is searched).
 */
export function packThirdParty(
  manifests: readonly { readonly manifest: Manifest; readonly fromDir: string }[],
  isInternal: (name: string) => boolean,
  destination: string,
): ThirdPartyTarball[] {
  const packed = new Map<string, ThirdPartyTarball>();
  const queue: { name: string; range: string; fromDir: string }[] = [];
  const enqueue = (manifest: Manifest, fromDir: string) => {
    for (const [name, range] of Object.entries(manifest.dependencies ?? {})) {
      if (!isInternal(name)) queue.push({ name, range, fromDir });
    }
  };
  for (const { manifest, fromDir } of manifests) enqueue(manifest, fromDir);
  for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
    if (packed.has(next.name)) continue;
    const dir = findInstalled(next.name, next.fromDir);
    if (dir === undefined)
      throw new Error(`${next.name} (${next.range}) is not installed under ${next.fromDir}`);
    const manifest = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as Manifest;
    if (/^\d+\.\d+\.\d+$/.test(next.range) && manifest.version !== next.range) {
      throw new Error(`${next.name}: ${next.range} is declared but ${manifest.version} is installed`);
    }
    const { stdout } = runOk(
      "npm",
      ["pack", dir, "--json", "--ignore-scripts", "--pack-destination", destination],
      { cwd: destination, env: npmEnvironment(destination) },
    );
    const [info] = JSON.parse(stdout) as { filename: string }[];
    if (info === undefined) throw new Error(`npm pack ${dir} printed no tarball`);
    packed.set(next.name, {
      name: next.name,
      version: manifest.version,
      tarball: join(destination, info.filename),
    });
    enqueue(manifest, dir);
  }
  return [...packed.values()];
}

/**
 * The environment for npm in a scratch project: nothing inherited from the `pnpm run` that
 * started the tests (`npm_config_*`, `npm_package_*`), no user or global npmrc, a private cache,
 * and no update notifier, audit or funding requests.
 */
export function npmEnvironment(scratch: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!/^npm_/i.test(key)) env[key] = value;
  }
  return {
    ...env,
    npm_config_userconfig: join(scratch, ".npmrc"),
    npm_config_globalconfig: join(scratch, ".npmrc-global"),
    npm_config_cache: join(scratch, ".npm-cache"),
    npm_config_update_notifier: "false",
    npm_config_fund: "false",
    npm_config_audit: "false",
    npm_config_loglevel: "warn",
  };
}
