import { MMU_EVENTS } from "@nestvisor/mmu";
import { describe, expect, it } from "vitest";
import { builtinWorkload } from "./builtin-workloads";
import { CostAccumulator } from "./cost-accumulator";
import { costProfile } from "./cost-profiles";
import { compileCostTable } from "./cost-table";
import { resolveFlags } from "./kernel-presets";
import { Machine } from "./machine";

const M = MMU_EVENTS;
type MmuCounts = Record<
  "init" | "perm" | "drop" | "load" | "hitCurrent" | "hitPrev" | "miss" | "unload",
  number
>;

/** L0's MMU work per steady-state L2 CPUID round trip: (run of 30 − run of 10) / 20, level 0 only. */
function l0MmuPerRoundTrip(overrides: Record<string, boolean>, preset = "v6.12"): MmuCounts {
  const run = (iterations: number) => {
    const acc = new CostAccumulator(compileCostTable(costProfile("intel-server")));
    const m = new Machine({
      program: builtinWorkload("cpuid", { level: 2, iterations }),
      config: resolveFlags(preset, overrides),
      meter: acc,
    });
    m.resetAccounting();
    m.run();
    const c = (id: number) => acc.levelCount(0, id);
    return {
      init: c(M.CONTEXT_INIT),
      perm: c(M.PERMISSION_BITMASK_UPDATE),
      drop: c(M.ROOT_DROP),
      load: c(M.ROOT_LOAD),
      hitCurrent: c(M.PGD_HIT_CURRENT),
      hitPrev: c(M.PGD_HIT_PREV),
      miss: c(M.PGD_MISS),
      unload: c(M.MMU_UNLOAD),
    };
  };
  const a = run(10);
  const b = run(30);
  const out = {} as MmuCounts;
  for (const k of Object.keys(a) as (keyof MmuCounts)[]) out[k] = (b[k] - a[k]) / 20;
  return out;
}

describe("MMU switch on a nested round trip (kvm-mmu.md §6.3, §7)", () => {
  it("case A today (EPT on EPT): no reconfiguration, no root work, two hits on the current roots", () => {
    expect(l0MmuPerRoundTrip({})).toEqual({
      init: 0,
      perm: 0,
      drop: 0,
      load: 0,
      hitCurrent: 2,
      hitPrev: 0,
      miss: 0,
      unload: 0,
    });
  });

  it("case A with flag (a) off: one context re-targeted three times, every init rebuilding", () => {
    const c = l0MmuPerRoundTrip({ splitGuestMmu: false, skipUnchangedMmuInit: false });
    expect(c.init).toBe(3);
    expect(c.perm).toBe(3);
    expect(c.hitCurrent + c.hitPrev + c.miss).toBe(2);
  });

  it("case A with the role gates only off: every init rebuilds, roots untouched", () => {
    const c = l0MmuPerRoundTrip({ skipUnchangedMmuInit: false });
    expect(c.init).toBe(3);
    expect(c.drop).toBe(0);
    expect(c.load).toBe(0);
  });

  it("case A without reuseCurrentRoot (c2): the victim cache hits from prev, never the current root", () => {
    const c = l0MmuPerRoundTrip({ reuseCurrentRoot: false });
    expect(c.hitCurrent).toBe(0);
    expect(c.hitPrev + c.miss).toBe(2);
  });

  it("case B (L1 shadow-pages L2 on L0's EPT): two reconfigurations and two prev[0] hits per round trip", () => {
    const c = l0MmuPerRoundTrip({ l1Ept: false });
    expect(c.init).toBe(2);
    expect(c.perm).toBe(2);
    expect(c.drop).toBe(0);
    expect(c.load).toBe(0);
    expect(c.hitPrev).toBe(2);
  });
});
