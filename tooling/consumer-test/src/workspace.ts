import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";

/** The monorepo root (this file is tooling/consumer-test/src/workspace.ts). */
export const REPO_ROOT = resolve(import.meta.dirname, "../../..");

/** The subset of package.json the tests read. */
export interface Manifest {
  readonly name: string;
  readonly version: string;
  readonly private?: boolean;
  readonly files?: readonly string[];
  readonly exports?: Record<string, unknown>;
  readonly publishConfig?: { readonly exports?: Record<string, unknown> };
  readonly dependencies?: Readonly<Record<string, string>>;
  readonly peerDependencies?: Readonly<Record<string, string>>;
}

export interface Library {
  /** Directory name under packages/, e.g. `x86-arch`. */
  readonly id: string;
  readonly dir: string;
  readonly manifest: Manifest;
}

export function readManifest(dir: string): Manifest {
  return JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as Manifest;
}

/** Every publishable (non-private) package under packages/, sorted by directory name. */
export function readLibraries(root = REPO_ROOT): Library[] {
  const folder = join(root, "packages");
  return readdirSync(folder)
    .sort()
    .map((id) => ({ id, dir: join(folder, id) }))
    .filter(({ dir }) => existsSync(join(dir, "package.json")))
    .map(({ id, dir }) => ({ id, dir, manifest: readManifest(dir) }))
    .filter(({ manifest }) => manifest.private !== true);
}

/**
 * The library and every workspace library it depends on at run time (dependencies and peer
 * dependencies), dependencies first: what a consumer's install of `name` pulls from this repo.
 */
export function internalClosure(name: string, libraries: readonly Library[]): Library[] {
  const byName = new Map(libraries.map((library) => [library.manifest.name, library]));
  const ordered: Library[] = [];
  const visit = (current: string) => {
    const library = byName.get(current);
    if (library === undefined || ordered.includes(library)) return;
    const { dependencies = {}, peerDependencies = {} } = library.manifest;
    for (const dependency of Object.keys({ ...dependencies, ...peerDependencies }).sort()) visit(dependency);
    ordered.push(library);
  };
  visit(name);
  return ordered;
}
