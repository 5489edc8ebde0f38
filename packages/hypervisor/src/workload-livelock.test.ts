import { TDP_MAP_RESULT } from "@nestvisor/mmu";
import { CountingMeter } from "@nestvisor/vmx";
import { describe, expect, it } from "vitest";
import { builtinWorkload } from "./builtin-workloads";
import { COST_CATALOGS } from "./cost-catalogs";
import { resolveFlags } from "./kernel-presets";
import { Machine } from "./machine";

describe("a guest the hypervisors never let make progress", () => {
  it("ends with an error naming the operation, not a hang", () => {
    const m = new Machine({
      program: builtinWorkload("touch_memory", { level: 1, pages: 2 }),
      config: resolveFlags("v6.12", {}),
      meter: new CountingMeter(COST_CATALOGS),
    });
    // An L0 whose EPT fault handler reports success without mapping anything (a broken model).
    const tdp = m.kvms[0]!.tdp!;
    tdp.map = () => TDP_MAP_RESULT.SPURIOUS;
    expect(() => m.run()).toThrow(
      /^operation \d+ of "touch_memory" exited 1000 times in a row without completing \(last exit reason 48\): the hypervisors make no progress$/,
    );
  });
});
