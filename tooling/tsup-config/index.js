// Shared tsup preset. Packages are ESM only (Node 20.19 can require() ESM), ship declarations and
// source maps, and keep their workspace dependencies external so each layer is consumed on its own.
import { defineConfig } from "tsup";

/**
 * @param {{ entry?: Record<string, string> | string[] }} [options]
 */
export function nestvisorLibrary(options = {}) {
  return defineConfig({
    entry: options.entry ?? { index: "src/index.ts" },
    format: ["esm"],
    target: "node20",
    platform: "node",
    dts: true,
    sourcemap: true,
    clean: true,
    treeshake: true,
    splitting: false,
  });
}
