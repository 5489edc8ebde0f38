import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import ts from "typescript";
import { mayDependOn } from "./layers";
import { readWorkspace, type WorkspacePackage } from "./workspace";

export interface Violation {
  /** File (relative to the workspace root) and 1-based line, or the package.json at fault. */
  readonly file: string;
  readonly line: number;
  readonly message: string;
}

const SOURCE_EXTENSIONS = /\.(?:ts|mts|cts|tsx|js|mjs|cjs)$/;
const SKIPPED_DIRECTORIES = new Set(["node_modules", "dist", "reports", ".turbo", "coverage"]);
// Config files bundled for the moment a tool loads them, then deleted: tsup (bundle-require) writes
// `tsup.config.bundled_<id>.mjs` and vite/vitest `<config>.timestamp-<n>-<hex>.mjs` beside the
// config. Turbo builds some packages while it tests others, so this check can meet another
// package's bundle mid-build (a CI run failed so): they are artefacts, not sources.
const TRANSIENT_CONFIG_BUNDLE = /\.(?:bundled_[0-9a-z]+|timestamp-\d+-[0-9a-f]+)\.[cm]?js$/;

function* sourceFiles(dir: string): Generator<string> {
  // Dirent types instead of a stat per entry: an entry removed between listing and stat (a
  // concurrent build's temporary file) must not fail the check.
  const entries = readdirSync(dir, { withFileTypes: true }).sort((a, b) =>
    a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
  );
  for (const entry of entries) {
    if (SKIPPED_DIRECTORIES.has(entry.name)) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* sourceFiles(path);
    else if (
      SOURCE_EXTENSIONS.test(entry.name) &&
      !entry.name.endsWith(".d.ts") &&
      !TRANSIENT_CONFIG_BUNDLE.test(entry.name)
    )
      yield path;
  }
}

/** A file's text, or undefined when it vanished after it was listed (a concurrent tool's temp file). */
function readIfPresent(file: string): string | undefined {
  try {
    return readFileSync(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

/** Splits `@scope/name/sub/path` into the package name and the export subpath (`./sub/path` or `.`). */
function splitSpecifier(specifier: string): { name: string; subpath: string } {
  const parts = specifier.split("/");
  const nameParts = specifier.startsWith("@") ? 2 : 1;
  const name = parts.slice(0, nameParts).join("/");
  const rest = parts.slice(nameParts).join("/");
  return { name, subpath: rest === "" ? "." : `./${rest}` };
}

function subpathIsExported(target: WorkspacePackage, subpath: string): boolean {
  if (target.exportedSubpaths.has(subpath)) return true;
  // Pattern exports such as "./fields/*".
  for (const key of target.exportedSubpaths) {
    const star = key.indexOf("*");
    if (star < 0) continue;
    if (subpath.startsWith(key.slice(0, star)) && subpath.endsWith(key.slice(star + 1))) return true;
  }
  return false;
}

function lineOf(source: string, position: number): number {
  let line = 1;
  for (let i = 0; i < position && i < source.length; i++) if (source.charCodeAt(i) === 10) line++;
  return line;
}

/**
 * Checks every workspace package: declared dependencies must respect the layer order, and every
 * import in its sources must (a) name a workspace package through an exported subpath, declared as
 * a dependency and allowed by the layer order, or (b) be a relative path that stays in the package.
 */
export function checkLayers(root: string): Violation[] {
  const packages = readWorkspace(root);
  const byName = new Map(packages.map((p) => [p.name, p]));
  const violations: Violation[] = [];

  for (const pkg of packages) {
    const manifest = join(pkg.path, "package.json");
    if (pkg.layer === undefined) {
      violations.push({
        file: manifest,
        line: 1,
        message: `${pkg.name} is in no layer: packages/ holds only x86-arch, vmx, mmu and hypervisor`,
      });
      continue;
    }
    for (const dependency of pkg.declaredDependencies) {
      const target = byName.get(dependency);
      if (target?.layer && !mayDependOn(pkg.layer, target.layer)) {
        violations.push({
          file: manifest,
          line: 1,
          message: `${pkg.name} declares a dependency on ${dependency}, which is above it in the layer order`,
        });
      }
    }

    for (const file of sourceFiles(pkg.dir)) {
      const source = readIfPresent(file);
      if (source === undefined) continue;
      const info = ts.preProcessFile(source, true, true);
      const fileRel = relative(root, file);
      for (const ref of info.importedFiles) {
        const specifier = ref.fileName;
        const line = lineOf(source, ref.pos);
        if (specifier.startsWith(".")) {
          const resolved = resolve(dirname(file), specifier);
          if (resolved !== pkg.dir && !resolved.startsWith(pkg.dir + sep)) {
            violations.push({
              file: fileRel,
              line,
              message: `relative import "${specifier}" leaves ${pkg.path}; import the other package by name`,
            });
          }
          continue;
        }
        const { name, subpath } = splitSpecifier(specifier);
        const target = byName.get(name);
        if (target === undefined) continue; // a third-party or node: module
        if (target === pkg) {
          violations.push({
            file: fileRel,
            line,
            message: `${pkg.name} imports itself by name; use a relative path`,
          });
          continue;
        }
        if (target.layer && !mayDependOn(pkg.layer, target.layer)) {
          violations.push({
            file: fileRel,
            line,
            message: `${pkg.name} may not import ${name}: the layer order is x86-arch <- vmx <- mmu <- hypervisor <- apps`,
          });
        }
        if (!subpathIsExported(target, subpath)) {
          violations.push({
            file: fileRel,
            line,
            message: `"${specifier}" is not in the exports of ${name}; use one of: ${[...target.exportedSubpaths].join(", ")}`,
          });
        }
        if (!pkg.declaredDependencies.has(name)) {
          violations.push({
            file: fileRel,
            line,
            message: `${pkg.name} imports ${name} without declaring it in package.json`,
          });
        }
      }
    }
  }
  return violations;
}
