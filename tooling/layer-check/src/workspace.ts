import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { type Layer, layerOf } from "./layers";

export interface WorkspacePackage {
  readonly name: string;
  /** Absolute directory of the package. */
  readonly dir: string;
  /** Directory relative to the workspace root, e.g. `packages/vmx`. */
  readonly path: string;
  readonly layer: Layer | undefined;
  /** Subpaths of the `exports` map that resolve to something (null entries block a path). */
  readonly exportedSubpaths: ReadonlySet<string>;
  /** Every dependency named in dependencies, devDependencies, peerDependencies and optionalDependencies. */
  readonly declaredDependencies: ReadonlySet<string>;
}

const WORKSPACE_FOLDERS = ["packages", "apps", "tooling"] as const;

interface PackageJson {
  name?: string;
  exports?: unknown;
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}

function exportedSubpaths(exportsField: unknown): Set<string> {
  const subpaths = new Set<string>();
  if (exportsField === undefined) return subpaths;
  if (typeof exportsField === "string" || Array.isArray(exportsField)) {
    subpaths.add(".");
    return subpaths;
  }
  if (typeof exportsField !== "object" || exportsField === null) return subpaths;
  const keys = Object.keys(exportsField);
  // A map of conditions (no key starts with ".") exports only the root.
  if (!keys.some((k) => k.startsWith("."))) {
    subpaths.add(".");
    return subpaths;
  }
  for (const key of keys) {
    if ((exportsField as Record<string, unknown>)[key] !== null) subpaths.add(key);
  }
  return subpaths;
}

/** Reads every package under packages/, apps/ and tooling/ of the workspace at `root`. */
export function readWorkspace(root: string): WorkspacePackage[] {
  const found: WorkspacePackage[] = [];
  for (const folder of WORKSPACE_FOLDERS) {
    const folderPath = join(root, folder);
    if (!existsSync(folderPath)) continue;
    for (const entry of readdirSync(folderPath).sort()) {
      const dir = join(folderPath, entry);
      const manifest = join(dir, "package.json");
      if (!statSync(dir).isDirectory() || !existsSync(manifest)) continue;
      const pkg = JSON.parse(readFileSync(manifest, "utf8")) as PackageJson;
      if (!pkg.name) throw new Error(`${relative(root, manifest)}: package has no "name"`);
      found.push({
        name: pkg.name,
        dir,
        path: relative(root, dir),
        layer: layerOf(folder, entry),
        exportedSubpaths: exportedSubpaths(pkg.exports),
        declaredDependencies: new Set([
          ...Object.keys(pkg.dependencies ?? {}),
          ...Object.keys(pkg.devDependencies ?? {}),
          ...Object.keys(pkg.peerDependencies ?? {}),
          ...Object.keys(pkg.optionalDependencies ?? {}),
        ]),
      });
    }
  }
  return found;
}
