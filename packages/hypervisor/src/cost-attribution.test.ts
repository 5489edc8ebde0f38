import { EXIT_REASON, VMX_EVENTS } from "@nestvisor/vmx";
import { describe, expect, it } from "vitest";
import { CostAccumulator, NO_EXIT_SLOT, OTHER_REASON_SLOT } from "./cost-accumulator";
import { costAttribution, reasonSlotName } from "./cost-attribution";
import { costProfile } from "./cost-profiles";
import { compileCostTable } from "./cost-table";
import { HYPERVISOR_EVENTS } from "./hypervisor-events";

const table = compileCostTable(costProfile("uniform"));
const H = HYPERVISOR_EVENTS;

/** L2 computes, then takes `n` CPUID exits that L0 handles alone, each costing 4 + i counted units. */
function run(): CostAccumulator {
  const acc = new CostAccumulator(table);
  acc.setLevel(2);
  acc.count(H.GUEST_COMPUTE_CYCLES, 500);
  for (let i = 0; i < 10; i++) {
    acc.beginExit(2, EXIT_REASON.CPUID);
    acc.count(H.HARDWARE_VM_EXIT);
    acc.count(H.EXIT_HANDLER_CPUID);
    acc.count(VMX_EVENTS.VMREAD, 1 + i);
    acc.count(H.HARDWARE_VM_ENTRY);
    acc.endExit();
  }
  acc.beginExit(2, 200);
  acc.count(H.HARDWARE_VM_EXIT);
  acc.endExit();
  return acc;
}

describe("costAttribution", () => {
  const report = costAttribution(run());

  it("reports totals that add up by level, by reason, by cause and by event", () => {
    const sum = (values: readonly number[]) => values.reduce((s, x) => s + x, 0);
    expect(report.profile).toBe("uniform");
    expect(report.totalCycles).toBe(500 + 10 * 3 + 55 + 1);
    expect(report.byLevel).toEqual([86, 0, 500, 0]);
    expect(sum(report.byLevel)).toBe(report.totalCycles);
    expect(sum(report.byReason.map((r) => r.cycles))).toBe(report.totalCycles);
    expect(sum(report.byCause.map((r) => r.cycles))).toBe(report.totalCycles);
    expect(sum(report.events.map((e) => e.cycles))).toBe(report.totalCycles);
  });

  it("names reasons, lists only non-zero rows, and splits them by level", () => {
    expect(report.byReason).toEqual([
      { reason: EXIT_REASON.CPUID, name: "CPUID", cycles: 85, byLevel: [85, 0, 0, 0] },
      { reason: null, name: "none", cycles: 500, byLevel: [0, 0, 500, 0] },
      { reason: null, name: "other (≥ 128)", cycles: 1, byLevel: [1, 0, 0, 0] },
    ]);
    expect(report.events.map((e) => [e.name, e.count, e.countByLevel])).toEqual([
      ["VMREAD", 55, [55, 0, 0, 0]],
      ["HARDWARE_VM_EXIT", 11, [11, 0, 0, 0]],
      ["HARDWARE_VM_ENTRY", 10, [10, 0, 0, 0]],
      ["GUEST_COMPUTE_CYCLES", 500, [0, 0, 500, 0]],
      ["EXIT_HANDLER_CPUID", 10, [10, 0, 0, 0]],
    ]);
  });

  it("summarises each exit series with percentiles and a log2 histogram", () => {
    const cpuid = report.exits.find((e) => e.reason === EXIT_REASON.CPUID)!;
    // Latencies 4, 5, …, 13 cycles.
    expect(cpuid).toMatchObject({
      level: 2,
      name: "CPUID",
      count: 10,
      totalCycles: 85,
      meanCycles: 8.5,
      minCycles: 4,
      maxCycles: 13,
      p50: 8,
      p90: 12,
      p99: 13,
      exactPercentiles: true,
    });
    expect(cpuid.stddevCycles).toBeCloseTo(Math.sqrt(8.25), 12);
    expect(cpuid.histogram).toEqual([
      { low: 4, high: 8, count: 4 },
      { low: 8, high: 16, count: 6 },
    ]);
    expect(report.exits.map((e) => e.name)).toEqual(["CPUID", "other (≥ 128)"]);
  });

  it("names slots", () => {
    expect(reasonSlotName(EXIT_REASON.EPT_VIOLATION)).toBe("EPT_VIOLATION");
    expect(reasonSlotName(5)).toBe("IO_SMI");
    expect(reasonSlotName(78)).toBe("0x4e");
    expect(reasonSlotName(NO_EXIT_SLOT)).toBe("none");
    expect(reasonSlotName(OTHER_REASON_SLOT)).toBe("other (≥ 128)");
  });
});
