/**
 * The consumer test: each library is packed as it would be published and installed on its own
 * (its tarball, the tarballs of the workspace libraries it depends on, and its third-party
 * dependencies, nothing else) into a scratch npm project, offline. Then a consumer imports it with
 * plain Node, type-checks against it under `module: node16` and `moduleResolution: bundler`, and
 * the tarball passes publint, arethetypeswrong and the repository's packaging rules.
 *
 * turbo runs this after the four libraries' `build` (see turbo.json), so it tests fresh `dist/`.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CONSUMER_CASES, forPackage } from "./consumer-cases";
import { run } from "./run";
import { installedPackages, installScratchProject, runModule, typecheck } from "./scratch-project";
import {
  packThirdParty,
  packWithPnpm,
  type ThirdPartyTarball,
  tarballFiles,
  tarballManifest,
} from "./tarballs";
import { internalClosure, type Library, type Manifest, REPO_ROOT, readLibraries } from "./workspace";

const SOURCE_CONDITION = "@nestvisor/source";
const CHECK_PACKAGE = join(REPO_ROOT, "scripts", "check-package.mjs");

const libraries = readLibraries();
const isInternal = (name: string) => libraries.some((library) => library.manifest.name === name);

let scratch: string;
const tarballs = new Map<string, string>();
let thirdParty: ThirdPartyTarball[] = [];

interface CheckPackageResult {
  readonly ok: boolean;
  readonly publint: { readonly ok: boolean; readonly output: string };
  readonly attw: { readonly ok: boolean; readonly output: string };
  readonly problems: readonly string[];
}

function checkPackage(args: readonly string[]): CheckPackageResult {
  const result = run(process.execPath, [CHECK_PACKAGE, ...args, "--json"], { cwd: REPO_ROOT });
  const line = result.stdout.trim().split("\n").at(-1) ?? "";
  if (!line.startsWith("{")) throw new Error(`check-package printed no result:\n${result.output}`);
  return JSON.parse(line) as CheckPackageResult;
}

/** `exports` with every `@nestvisor/source` condition removed. */
function withoutSourceCondition(value: unknown): unknown {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return value;
  return Object.fromEntries(
    Object.entries(value)
      .filter(([key]) => key !== SOURCE_CONDITION)
      .map(([key, inner]) => [key, withoutSourceCondition(inner)]),
  );
}

beforeAll(() => {
  for (const library of libraries) {
    if (!existsSync(join(library.dir, "dist", "index.js"))) {
      throw new Error(
        `${library.manifest.name} is not built: run \`pnpm build\` (\`pnpm test\` builds it first)`,
      );
    }
  }
  scratch = mkdtempSync(join(tmpdir(), "nestvisor-consumer-"));
  const packed = join(scratch, "tarballs");
  mkdirSync(packed);
  for (const library of libraries) tarballs.set(library.manifest.name, packWithPnpm(library.dir, packed));
  thirdParty = packThirdParty(
    libraries.map((library) => ({
      manifest: tarballManifest(tarballs.get(library.manifest.name) ?? ""),
      fromDir: library.dir,
    })),
    isInternal,
    packed,
  );
});

afterAll(() => {
  if (scratch !== undefined) rmSync(scratch, { recursive: true, force: true });
});

it("has a consumer case for every publishable package under packages/", () => {
  expect(libraries.map((library) => library.id).sort()).toEqual(Object.keys(CONSUMER_CASES).sort());
});

it("flags a tarball that ships sources, tests and the source condition", () => {
  const bad = join(scratch, "bad-package");
  mkdirSync(join(bad, "dist"), { recursive: true });
  mkdirSync(join(bad, "src"), { recursive: true });
  writeFileSync(
    join(bad, "package.json"),
    JSON.stringify({
      name: "bad-package",
      version: "1.0.0",
      type: "module",
      exports: {
        ".": { types: "./dist/index.d.ts", [SOURCE_CONDITION]: "./src/index.ts", default: "./dist/index.js" },
      },
      files: ["dist", "src"],
    }),
  );
  writeFileSync(join(bad, "dist", "index.js"), "export const one = 1;\n");
  writeFileSync(join(bad, "dist", "index.d.ts"), "export declare const one = 1;\n");
  writeFileSync(join(bad, "src", "index.ts"), "export const one = 1;\n");
  writeFileSync(join(bad, "src", "index.test.ts"), "export {};\n");
  const result = checkPackage([bad]);
  expect(result.ok).toBe(false);
  expect(result.problems).toEqual(
    expect.arrayContaining([
      expect.stringContaining('"files" lists src'),
      "ships a test file: src/index.test.ts",
      "ships a source file: src/index.ts",
      expect.stringContaining(`exports > . > ${SOURCE_CONDITION}`),
    ]),
  );
});

describe.each(libraries.map((library): [string, Library] => [library.manifest.name, library]))(
  "%s",
  (name, library) => {
    const consumerCase = CONSUMER_CASES[library.id];
    const project = () => join(scratch, `consumer-${library.id}`);
    const tarball = () => tarballs.get(name) ?? "";
    const closure = internalClosure(name, libraries);
    let packedManifest: Manifest;

    beforeAll(() => {
      packedManifest = tarballManifest(tarball());
      // Overrides only pin third-party versions: a package lands only if a dependency asks for it.
      installScratchProject(project(), {
        tarballs: closure.map((dependency) => tarballs.get(dependency.manifest.name) ?? ""),
        overrides: Object.fromEntries(thirdParty.map((dep) => [dep.name, dep.tarball])),
      });
    });

    it("passes publint --strict, attw --profile esm-only and the packaging rules", () => {
      const result = checkPackage(["--tarball", tarball()]);
      expect(result.publint.output).toMatch(/All good!/);
      expect(result.publint.ok).toBe(true);
      expect(result.attw.ok).toBe(true);
      expect(result.problems).toEqual([]);
    });

    it("ships dist/ and declared data only, with the published exports and no workspace ranges", () => {
      const files = tarballFiles(tarball());
      expect(files).toContain("dist/index.js");
      expect(files).toContain("dist/index.d.ts");
      expect(files.filter((file) => file.startsWith("src/") || /\.test\.[cm]?[jt]s$/.test(file))).toEqual([]);
      // The source condition is for the workspace only: the published map is the same without it.
      expect(library.manifest.exports).toBeDefined();
      expect(JSON.stringify(packedManifest.exports)).not.toContain(SOURCE_CONDITION);
      expect(packedManifest.exports).toEqual(withoutSourceCondition(library.manifest.exports));
      for (const [dependency, range] of Object.entries(packedManifest.dependencies ?? {})) {
        expect(range).not.toMatch(/^workspace:/);
        const workspaceVersion = libraries.find((other) => other.manifest.name === dependency)?.manifest
          .version;
        // pnpm turns workspace:^ / workspace:~ / workspace:* into ranges that admit this version.
        if (workspaceVersion !== undefined) {
          expect([`^${workspaceVersion}`, `~${workspaceVersion}`, workspaceVersion]).toContain(range);
        }
      }
    });

    it("installs alone: its tarball, its workspace dependencies' tarballs and their third-party dependencies", () => {
      const installed = installedPackages(project());
      expect(installed.filter(isInternal)).toEqual(
        closure.map((dependency) => dependency.manifest.name).sort(),
      );
      const declared = closure
        .flatMap((dependency) =>
          Object.keys(tarballManifest(tarballs.get(dependency.manifest.name) ?? "").dependencies ?? {}),
        )
        .filter((dependency) => !isInternal(dependency));
      const thirdPartyNames = thirdParty.map((dependency) => dependency.name);
      for (const dependency of declared) expect(installed).toContain(dependency);
      for (const dependency of installed.filter((other) => !isInternal(other)))
        expect(thirdPartyNames).toContain(dependency);
      if (declared.length === 0) expect(installed.filter((other) => !isInternal(other))).toEqual([]);
    });

    it("imports with plain Node as ESM: the named exports exist and real functions work", () => {
      if (consumerCase === undefined) throw new Error(`no consumer case for ${library.id}`);
      const script = [
        'import { readFileSync } from "node:fs";',
        'import * as m from "PACKAGE";',
        `const names = ${JSON.stringify(consumerCase.exports)};`,
        `const result = await (async () => {${consumerCase.runtime}\n})();`,
        "console.log(JSON.stringify({",
        '  resolved: import.meta.resolve("PACKAGE"),',
        "  missing: names.filter((n) => m[n] === undefined),",
        "  result,",
        "}));",
      ].join("\n");
      const output = runModule(project(), forPackage(script, name));
      expect(output.stderr).toBe("");
      expect(output.status).toBe(0);
      const report = JSON.parse(output.stdout) as { resolved: string; missing: string[]; result: unknown };
      expect(report.resolved).toBe(
        new URL(`node_modules/${name}/dist/index.js`, `file://${project()}/`).href,
      );
      expect(report.missing).toEqual([]);
      expect(report.result).toEqual(consumerCase.expected);
    });

    it.each([
      ["node16", "current"],
      ["bundler", "current"],
      ["node16", "oldest"],
      ["bundler", "oldest"],
    ] as const)(
      "type-checks a consumer under %s resolution with the %s supported TypeScript",
      (mode, compiler) => {
        if (consumerCase === undefined) throw new Error(`no consumer case for ${library.id}`);
        const result = typecheck(project(), forPackage(consumerCase.types, name), mode, compiler);
        expect(result.output).toBe("");
        expect(result.status).toBe(0);
      },
    );
  },
);
