import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { checkLayers } from "./check-layers";

let root: string;

function write(path: string, content: string): void {
  const full = join(root, path);
  mkdirSync(dirname(full), { recursive: true });
  writeFileSync(full, content);
}

function pkg(
  path: string,
  name: string,
  deps: string[] = [],
  exportsField: unknown = { ".": "./src/index.ts" },
): void {
  write(
    `${path}/package.json`,
    JSON.stringify({
      name,
      exports: exportsField,
      dependencies: Object.fromEntries(deps.map((d) => [d, "workspace:*"])),
    }),
  );
}

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "layer-check-"));
  pkg("packages/x86-arch", "@n/x86-arch", [], {
    "./package.json": "./package.json",
    ".": "./src/index.ts",
    "./internal/*": null,
  });
  pkg("packages/vmx", "@n/vmx", ["@n/x86-arch"]);
  pkg("packages/mmu", "@n/mmu", ["@n/vmx", "@n/x86-arch"]);
  pkg("apps/cli", "@n/cli", ["@n/mmu"]);
  write("packages/x86-arch/src/index.ts", `export const x = 1;\n`);
});

afterEach(() => rmSync(root, { recursive: true, force: true }));

describe("checkLayers", () => {
  it("accepts imports that go down the layer order through exported entry points", () => {
    write("packages/vmx/src/index.ts", `import { x } from "@n/x86-arch";\nexport const y = x;\n`);
    write("apps/cli/src/main.ts", `import "@n/mmu";\nimport { readFileSync } from "node:fs";\n`);
    expect(checkLayers(root)).toEqual([]);
  });

  it("rejects an import that goes up the layer order, naming file and line", () => {
    write("packages/x86-arch/src/walk.ts", `// a comment\nimport { y } from "@n/vmx";\n`);
    const violations = checkLayers(root);
    expect(violations).toContainEqual(
      expect.objectContaining({
        file: "packages/x86-arch/src/walk.ts",
        line: 2,
        message: expect.stringMatching(/may not import @n\/vmx/),
      }),
    );
  });

  it("rejects a deep import into non-exported files, including blocked patterns", () => {
    write(
      "packages/vmx/src/a.ts",
      `import { x } from "@n/x86-arch/src/walk";\nexport * from "@n/x86-arch/internal/bits";\n`,
    );
    const messages = checkLayers(root).map((v) => v.message);
    expect(messages.filter((m) => m.includes("is not in the exports of @n/x86-arch"))).toHaveLength(2);
  });

  it("rejects relative imports that leave the package", () => {
    write("packages/vmx/src/a.ts", `import { x } from "../../x86-arch/src/index";\n`);
    expect(checkLayers(root).map((v) => v.message)).toEqual([expect.stringMatching(/leaves packages\/vmx/)]);
  });

  it("rejects undeclared workspace dependencies and dynamic imports", () => {
    write("apps/cli/src/main.ts", `const m = await import("@n/vmx");\n`);
    expect(checkLayers(root).map((v) => v.message)).toEqual([expect.stringMatching(/without declaring it/)]);
  });

  it("rejects a declared dependency that points up the order even when unused", () => {
    pkg("packages/x86-arch", "@n/x86-arch", ["@n/mmu"]);
    expect(checkLayers(root).map((v) => v.message)).toEqual([
      expect.stringMatching(/declares a dependency on @n\/mmu/),
    ]);
  });

  it("ignores config bundles that tsup and vite write beside a config while they load it", () => {
    // Each would be a violation if read: vmx may not import mmu, which sits above it.
    write("packages/vmx/tsup.config.bundled_k3j9x0a2b.mjs", `import "@n/mmu";\n`);
    write("packages/vmx/vitest.config.ts.timestamp-1763769600000-4f2a9c.mjs", `import "@n/mmu";\n`);
    expect(checkLayers(root)).toEqual([]);
    write("packages/vmx/src/up.mjs", `import "@n/mmu";\n`);
    expect(new Set(checkLayers(root).map((v) => v.file))).toEqual(new Set(["packages/vmx/src/up.mjs"]));
  });

  it("rejects unknown library packages", () => {
    pkg("packages/extra", "@n/extra");
    expect(checkLayers(root).map((v) => v.message)).toEqual([expect.stringMatching(/in no layer/)]);
  });
});

describe("this repository", () => {
  it("follows the layer order", () => {
    const repoRoot = resolve(import.meta.dirname, "../../..");
    expect(checkLayers(repoRoot)).toEqual([]);
  });
});
