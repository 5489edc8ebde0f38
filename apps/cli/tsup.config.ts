import { readFileSync } from "node:fs";
import { defineConfig } from "tsup";

/**
 * The `nestvisor` binary: one ESM entry (`dist/cli.js`, with its shebang) plus one chunk per
 * command, loaded on demand so that `nestvisor --version` starts without loading the model. A
 * second entry, `dist/sweep-worker.js`, is the worker thread of `nestvisor sweep` (found next to
 * the chunk that starts it, through import.meta.url); it shares the model's chunks. Model modules
 * given with --model import the packages the binary bundles: `dist/bundled/<package>.js` re-export
 * them (the same module instances the commands use) and `dist/model-hooks.js` resolves
 * `@nestvisor/<package>` to them (src/model/bundled-packages.ts). The
 * workspace packages are bundled from their TypeScript sources (the `@nestvisor/source` export
 * condition), together with their only third-party dependency (yaml), so the published package has
 * no runtime dependencies and the build needs no prior build of the packages.
 */
const { version } = JSON.parse(readFileSync(new URL("./package.json", import.meta.url), "utf8")) as {
  version: string;
};

export default defineConfig({
  entry: {
    cli: "src/cli.ts",
    "sweep-worker": "src/sweep/sweep-worker.ts",
    "model-hooks": "src/model/model-hooks.ts",
    "bundled/x86-arch": "src/bundled/x86-arch.ts",
    "bundled/vmx": "src/bundled/vmx.ts",
    "bundled/mmu": "src/bundled/mmu.ts",
    "bundled/hypervisor": "src/bundled/hypervisor.ts",
  },
  format: ["esm"],
  target: "node20",
  platform: "node",
  outDir: "dist",
  clean: true,
  dts: false,
  sourcemap: false,
  splitting: true,
  bundle: true,
  noExternal: [/^@nestvisor\//, "yaml"],
  // yaml's "node" build is CommonJS and requires Node built-ins; give the ESM chunks a `require`.
  banner: {
    js: 'import { createRequire as __nestvisorCreateRequire } from "node:module";\nconst require = __nestvisorCreateRequire(import.meta.url);',
  },
  define: { __NESTVISOR_VERSION__: JSON.stringify(version) },
  esbuildOptions(options) {
    options.conditions = ["@nestvisor/source", "import", "module", "node"];
  },
});
