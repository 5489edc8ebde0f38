import { describe, expect, it } from "vitest";
import { runCli, runJson } from "../testing/run-cli";

interface Explained {
  reason: string;
  cycles: number;
  steps: {
    level: number;
    step: string;
    kvm: string;
    cycles: number;
    events: { name: string; count: number; cycles: number }[];
    flags: { flag: string }[];
  }[];
  flagSummary: { flag: string; delta: number | null }[];
}

describe("nestvisor explain", () => {
  it("walks a nested CPUID round trip step by step, with the flags that change each step", () => {
    const r = runCli(["explain", "cpuid"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /^cpuid at L2: CPUID round trip 3 of 3, preset v6\.12, profile intel-server\n6,899 cycles in \d+ steps/,
    );
    expect(r.stdout).toMatch(/ {2}1 {2}L2→L0 {2}VM exit: CPUID +260 cycles/);
    expect(r.stdout).toContain("mirrors  nested_vmx_reflect_vmexit");
    expect(r.stdout).toContain("controlsShadow=off: +1 VMCS_FULL_CONSISTENCY_CHECK (+400 cycles)");
    expect(r.stdout).toContain("Each flag flipped alone, on this round trip:");
    for (const line of r.stdout.split("\n")) expect(line.length).toBeLessThanOrEqual(100);
  });

  it("--json: the steps' cycles add up to the round trip, every step names a KVM function", () => {
    const out = runJson(["explain", "cpuid", "--preset", "v5.2", "--json"]) as Explained;
    expect(out.reason).toBe("CPUID");
    expect(out.steps.reduce((a, s) => a + s.cycles, 0)).toBe(out.cycles);
    for (const step of out.steps) {
      expect(step.kvm).not.toBe("");
      expect(step.events.reduce((a, e) => a + e.cycles, 0)).toBe(step.cycles);
    }
    expect(out.steps.some((s) => s.step === "vCPU put on VMCS switch")).toBe(true);
    const summary = new Map(out.flagSummary.map((f) => [f.flag, f.delta]));
    expect(summary.get("noVcpuPutOnVmcsSwitch")).toBeLessThan(0);
  });

  it("explains a level-3 round trip with every flag flipped, l1Ept=off included", () => {
    const r = runJson(["explain", "cpuid", "-l", "3", "--json"]) as Explained;
    expect(r.steps.length).toBeGreaterThan(0);
    // Before L1's host segments were loaded from vmcs12, this rerun failed ("no handler for exit 33").
    const l1Ept = r.flagSummary.find((f) => f.flag === "l1Ept");
    expect(typeof l1Ept?.delta).toBe("number");
  });

  it("--reason picks the round trip; --no-flags skips the reruns", () => {
    const r = runCli([
      "explain",
      "toggle_cr0_wp",
      "--preset",
      "v5.17",
      "--reason",
      "CR_ACCESS",
      "--no-flags",
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/CR_ACCESS round trip/);
    expect(r.stdout).not.toContain("flags    ");
  });

  it("rejects a round trip that does not exist, and workloads without exits at that level", () => {
    const r = runCli(["explain", "cpuid", "--reason", "HLT", "--no-flags"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no such round trip: the run has 3 \(exit reasons: CPUID\)/);
    const n = runCli(["explain", "toggle_cr0_wp", "--param", "write=false", "--no-flags"]);
    expect(n.code).toBe(2);
    expect(n.stderr).toMatch(/makes no VM exit: nothing to explain/);
  });
});
