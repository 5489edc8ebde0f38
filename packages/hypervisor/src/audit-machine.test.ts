import { describe, expect, it } from "vitest";
import { auditMachine } from "./audit-machine";
import { BUILTIN_WORKLOAD_NAMES, builtinWorkload } from "./builtin-workloads";
import { CostAccumulator } from "./cost-accumulator";
import { costProfile } from "./cost-profiles";
import { compileCostTable } from "./cost-table";
import { resolveFlags } from "./kernel-presets";
import { Machine } from "./machine";
import { shortBuiltinParams } from "./testing/short-runs";

function runAndAudit(name: string, level: number, preset: string, overrides: Record<string, boolean> = {}) {
  const m = new Machine({
    program: builtinWorkload(name, shortBuiltinParams(name, level)),
    config: resolveFlags(preset, overrides),
    meter: new CostAccumulator(compileCostTable(costProfile("intel-server"))),
  });
  m.run();
  return auditMachine(m);
}

describe("every level's tables agree with the composed walk at the end of every workload", () => {
  for (const name of BUILTIN_WORKLOAD_NAMES) {
    it(`${name} at L1 and L2 under v5.2, v6.12, and with the switches off`, () => {
      for (const preset of ["v5.2", "v6.12"]) {
        for (const level of [1, 2]) {
          const summary = runAndAudit(name, level, preset);
          expect(summary.roots[0]!).toBeGreaterThan(0);
        }
      }
      expect(runAndAudit(name, 1, "v6.12", { ept: false }).roots[0]!).toBeGreaterThan(0);
      expect(runAndAudit(name, 2, "v6.12", { l1Ept: false }).roots[1]!).toBeGreaterThan(0);
      expect(runAndAudit(name, 2, "v6.12", { tdpMmu: false }).roots[0]!).toBeGreaterThan(0);
    });
  }

  it("L3 cpuid and touch_memory: all three KVMs' tables audit clean", () => {
    for (const name of ["cpuid", "touch_memory"]) {
      const summary = runAndAudit(name, 3, "v6.12");
      expect(summary.roots.length).toBe(3);
      // touch_memory maps pages at every level: EPT01, EPT12 and EPT23 (L0's EPT02/03 shadows them).
      if (name === "touch_memory") expect(summary.leaves).toBeGreaterThan(0);
    }
  });
});
