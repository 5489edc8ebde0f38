import { describe, expect, it } from "vitest";
import { builtinWorkload } from "./builtin-workloads";
import { resolveFlags } from "./kernel-presets";
import { runWorkload } from "./run-workload";
import { toChromeTraceEvents } from "./trace-events-export";
import { TimelineTracer, TRACE_KIND } from "./tracer";

const run = (
  name: string,
  level: number,
  preset: string,
  params: Record<string, number> = { iterations: 20 },
) => runWorkload({ program: builtinWorkload(name, { level, ...params }), config: resolveFlags(preset, {}) });

describe("runWorkload", () => {
  it("prices a single-level CPUID round trip near the published 1,018–1,110 cycles", () => {
    const r = run("cpuid", 1, "v6.12");
    expect(r.iterations).toBe(20);
    expect(r.cyclesPerIteration).toBeGreaterThan(800);
    expect(r.cyclesPerIteration).toBeLessThan(1600);
    expect(r.attribution.byLevel[0]! + r.attribution.byLevel[1]!).toBeCloseTo(r.totalCycles, 3);
  });

  it("a nested CPUID costs far more at L2 than at L1, and v5.2 more than v5.3", () => {
    const l1 = run("cpuid", 1, "v6.12").cyclesPerIteration;
    const v52 = run("cpuid", 2, "v5.2").cyclesPerIteration;
    const v53 = run("cpuid", 2, "v5.3").cyclesPerIteration;
    expect(v53).toBeGreaterThan(5 * l1);
    expect(v52).toBeGreaterThan(v53);
  });

  it("attributes the reflected exit's L1 work to level 1 and the VMRESUME exits to L0", () => {
    const r = run("cpuid", 2, "v6.12");
    expect(r.attribution.byLevel[1]!).toBeGreaterThan(0);
    expect(r.attribution.byLevel[0]!).toBeGreaterThan(r.attribution.byLevel[1]!);
    expect(r.counts.NESTED_EXIT_REFLECTED).toBe(20);
  });
});

describe("runWorkload at level 3 and with a tracer", () => {
  it("an L3 workload sees what it sees at L2 (cpuid, touch_memory), with more exits", () => {
    for (const [name, params] of [
      ["cpuid", { iterations: 3 }],
      ["touch_memory", { pages: 16 }],
    ] as const) {
      const l2 = runWorkload({
        program: builtinWorkload(name, { level: 2, ...params }),
        config: resolveFlags("v6.12", {}),
      });
      const l3 = runWorkload({
        program: builtinWorkload(name, { level: 3, ...params }),
        config: resolveFlags("v6.12", {}),
      });
      const { vmcs12: _a, ...view2 } = l2.snapshot;
      const { vmcs12: _b, ...view3 } = l3.snapshot;
      expect(view3).toEqual(view2);
      expect(l3.counts.HARDWARE_VM_EXIT!).toBeGreaterThan(5 * l2.counts.HARDWARE_VM_EXIT!);
      expect(l3.attribution.byLevel[2]!).toBeGreaterThan(0);
    }
  });

  it("records a timeline of exits, entries and handler spans that exports to Chrome trace events", () => {
    const tracer = new TimelineTracer({ capacity: 10_000 });
    runWorkload({
      program: builtinWorkload("cpuid", { level: 2, iterations: 3 }),
      config: resolveFlags("v6.12", {}),
      tracer,
    });
    expect(tracer.length).toBeGreaterThan(0);
    expect(tracer.openDepth).toBeLessThanOrEqual(2);
    const spans = tracer.spans();
    expect(spans.some((s) => s.kind === TRACE_KIND.HANDLER && s.level === 1)).toBe(true);
    const trace = toChromeTraceEvents(tracer, { cyclesPerMicrosecond: 3000 });
    expect(JSON.parse(JSON.stringify(trace)).traceEvents.length).toBeGreaterThan(tracer.length);
  });
});
