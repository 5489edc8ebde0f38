// Shared vitest preset for every nestvisor package.
//
// Workspace packages publish `dist/` through their `exports` map, but inside the monorepo the
// `@nestvisor/source` condition points each entry at its TypeScript source, so tests never need a
// prior build (the same trick as tRPC's source aliases, without a hand-kept alias table).
import { defineProject } from "vitest/config";

/** Export condition that resolves workspace packages to their `src/` entry points. */
export const SOURCE_CONDITION = "@nestvisor/source";

const serverConditions = [SOURCE_CONDITION, "module", "node", "development|production"];

/**
 * Build a package's vitest project.
 * Every run writes `reports/vitest.json`, which `scripts/run-tests.mjs` sums into the
 * `N passed, N failed` line CI reads.
 * @param {import("vitest/config").UserWorkspaceConfig} [overrides]
 */
export function nestvisorProject(overrides = {}) {
  const { test = {}, ...rest } = overrides;
  return defineProject({
    resolve: { conditions: serverConditions },
    ssr: { resolve: { conditions: serverConditions, externalConditions: [SOURCE_CONDITION] } },
    ...rest,
    test: {
      include: ["src/**/*.test.ts", "test/**/*.test.ts"],
      environment: "node",
      // Tests are never timed (speed targets live in `pnpm bench`); the limit only catches hangs,
      // so property tests near vitest's 5 s default do not fail on a loaded CI machine.
      testTimeout: 60_000,
      hookTimeout: 120_000,
      reporters: ["default", ["json", { outputFile: "reports/vitest.json" }]],
      ...test,
    },
  });
}
