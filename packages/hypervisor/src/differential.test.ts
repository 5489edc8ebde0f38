import { describe, expect, it } from "vitest";
import { BUILTIN_WORKLOAD_NAMES, builtinWorkload } from "./builtin-workloads";
import { OPTIMIZATION_FLAG_NAMES } from "./hypervisor-flags";
import { resolveFlags } from "./kernel-presets";
import { runWorkload } from "./run-workload";
import { shortBuiltinParams, workloadView } from "./testing/short-runs";

/**
 * DESIGN.md §2.3: an optimization never changes what a guest sees. Two checks per built-in workload
 * at levels 1 and 2:
 * - a preset or flag applied to L0 only (the guest hypervisor stays a v6.12 KVM) leaves everything
 *   a guest sees unchanged, including vmcs12 as L1 reads it back;
 * - applied to every level, it leaves the workload's own view unchanged (values read, faults,
 *   registers, memory). vmcs12 may differ then, because L1 is a different kernel: e.g. with CR0.WP
 *   guest-owned (v6.4) L1 no longer intercepts L2's WP writes, so it sees other exits.
 */

function snapshot(
  workloadName: string,
  level: number,
  preset: string,
  overrides: Record<string, boolean>,
  l0Only: boolean,
) {
  const config = resolveFlags(preset, overrides);
  return runWorkload({
    program: builtinWorkload(workloadName, shortBuiltinParams(workloadName, level, { iterations: 4 })),
    config,
    ...(l0Only ? { innerConfig: resolveFlags("v6.12", {}) } : {}),
  }).snapshot;
}

describe("differential: guest-visible state is independent of flags and presets", () => {
  for (const name of BUILTIN_WORKLOAD_NAMES) {
    for (const level of [1, 2]) {
      it(`${name} at L${level}`, { timeout: 120_000 }, () => {
        const reference = snapshot(name, level, "v6.12", {}, false);
        for (const preset of ["none", "v5.3", "all"]) {
          expect(snapshot(name, level, preset, {}, true), `${preset} at L0`).toEqual(reference);
          expect(workloadView(snapshot(name, level, preset, {}, false)), `${preset} everywhere`).toEqual(
            workloadView(reference),
          );
        }
        // Configuration switches: shadow paging at L0 (level 1 only) or in L1, the legacy MMU, no VMCS
        // shadowing. The hypervisors work differently; the workload sees the same.
        const switches = level === 1 ? ["ept", "tdpMmu"] : ["l1Ept", "tdpMmu", "shadowVmcs"];
        for (const sw of switches) {
          expect(workloadView(snapshot(name, level, "v6.12", { [sw]: false }, false)), `${sw}=off`).toEqual(
            workloadView(reference),
          );
        }
        for (const flag of OPTIMIZATION_FLAG_NAMES) {
          expect(snapshot(name, level, "v6.12", { [flag]: false }, true), `${flag}=off at L0`).toEqual(
            reference,
          );
          if (level === 1) continue; // at L1 "everywhere" is the same machine as "L0 only"
          expect(
            workloadView(snapshot(name, level, "v6.12", { [flag]: false }, false)),
            `${flag}=off everywhere`,
          ).toEqual(workloadView(reference));
        }
      });
    }
  }
});
