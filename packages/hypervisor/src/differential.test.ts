import { describe, expect, it } from "vitest";
import { BUILTIN_WORKLOAD_NAMES, builtinWorkload } from "./builtin-workloads";
import { OPTIMIZATION_FLAG_NAMES } from "./hypervisor-flags";
import { resolveFlags } from "./kernel-presets";
import { runWorkload } from "./run-workload";

/**
 * DESIGN.md §2.3: an optimization never changes what a guest sees. Every built-in workload at
 * levels 1 and 2, under several presets and with each flag flipped alone, ends in the same
 * guest-visible state (values read, faults, registers, memory, vmcs12 as L1 reads it back).
 */
function params(name: string, level: number): Record<string, number> {
  if (name === "touch_memory") return { level, pages: 24 };
  if (name === "cr3_switch") return { level, iterations: 2 };
  return { level, iterations: 4 };
}

function snapshot(name: string, level: number, preset: string, overrides: Record<string, boolean> = {}) {
  return runWorkload({
    program: builtinWorkload(name, params(name, level)),
    config: resolveFlags(preset, overrides),
  }).snapshot;
}

/**
 * Known bug (session note, issue 5): at L2 these crash under the pre-v5.18 MMU flags with "-1 is not
 * a live shadow page" in TdpMmu.#freeChild. `it.fails` keeps them visible: the test starts failing
 * (and must be turned back into `it`) once the bug is fixed.
 */
const KNOWN_CRASHES = new Set(["toggle_cr0_wp@2", "mixed@2"]);

describe("differential: guest-visible state is independent of flags and presets", () => {
  for (const name of BUILTIN_WORKLOAD_NAMES) {
    for (const level of [1, 2]) {
      const test = KNOWN_CRASHES.has(`${name}@${level}`) ? it.fails : it;
      test(`${name} at L${level}`, () => {
        const reference = snapshot(name, level, "v6.12");
        for (const preset of ["none", "v5.3", "all"]) {
          expect(snapshot(name, level, preset), `${preset}`).toEqual(reference);
        }
        for (const flag of OPTIMIZATION_FLAG_NAMES) {
          expect(snapshot(name, level, "v6.12", { [flag]: false }), `${flag}=off`).toEqual(reference);
        }
      });
    }
  }
});
