import { costProfile, resolveFlags } from "@nestvisor/hypervisor";
import { describe, expect, it } from "vitest";
import { replayTrace } from "./trace-replay";
import { traceStats } from "./trace-stat";

const line = (ts: string, payload: string) => ` qemu-system-x86-7  [000]   ${ts}: ${payload}`;

describe("replayTrace", () => {
  const profile = costProfile();
  const presets = [
    { name: "v5.2", flags: resolveFlags("v5.2") },
    { name: "v6.12", flags: resolveFlags("v6.12") },
  ];

  it("prices a plain trace's exits with one-operation workloads at L1", () => {
    const text = [
      line("1.0", "kvm_exit: reason CPUID rip 0x1 info 0 0"),
      line("1.1", "kvm_entry: vcpu 0"),
      line("1.2", "kvm_exit: reason CPUID rip 0x1 info 0 0"),
      line("1.3", "kvm_entry: vcpu 0"),
      line("1.4", "kvm_exit: reason EXTERNAL_INTERRUPT rip 0x1 info 0 800000ec"),
      line("1.5", "kvm_entry: vcpu 0"),
    ].join("\n");
    const rows = replayTrace(traceStats(text), { presets, profile, iterations: 20 });
    const cpuid = rows.find((r) => r.reason === "CPUID")!;
    expect(cpuid).toMatchObject({ level: 1, count: 2, status: "simulated", handledBy: null });
    expect(cpuid.exitsPerOperation["v6.12"]).toBe(1);
    expect(cpuid.totalCycles["v6.12"]).toBeCloseTo(cpuid.cyclesPerExit["v6.12"]! * 2, 6);
    expect(rows.find((r) => r.reason === "EXTERNAL_INTERRUPT")!.status).toBe("not modelled");
  });

  it("replays a nested trace's L2 exits at L2 and counts L1's VMX-instruction exits as covered", () => {
    const text = [
      line("2.0", "kvm_exit: reason IO_INSTRUCTION rip 0x1 info 12340008 0"),
      line(
        "2.1",
        "kvm_nested_vmexit: rip 1 reason IO_INSTRUCTION info1 12340008 info2 0 int_info 0 int_info_err 0",
      ),
      line(
        "2.2",
        "kvm_nested_vmexit_inject: reason IO_INSTRUCTION info1 12340008 info2 0 int_info 0 int_info_err 0",
      ),
      line("2.3", "kvm_entry: vcpu 0"),
      line("2.4", "kvm_exit: reason VMRESUME rip 0x2 info 0 0"),
      line("2.5", "kvm_entry: vcpu 0"),
    ].join("\n");
    const rows = replayTrace(traceStats(text), { presets, profile, iterations: 20 });
    const io = rows.find((r) => r.reason === "IO_INSTRUCTION")!;
    expect(io).toMatchObject({ level: 2, handledBy: "L1", status: "simulated", operation: "in 1B 0x1234" });
    expect(io.cyclesPerExit["v5.2"]!).toBeGreaterThan(io.cyclesPerExit["v6.12"]!);
    expect(io.reflected["v6.12"]).toBe(1);
    expect(rows.find((r) => r.reason === "VMRESUME")!.status).toBe("covered");
  });
});
