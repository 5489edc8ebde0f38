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
      /^cpuid at L2: CPUID round trip 3 of 3, preset v6\.12, profile intel-server\n8,142 cycles in \d+ steps/,
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

  it("cuts L0's side of the round trip at KVM's functions, in KVM's order (kvm-vmx.md §7, §8)", () => {
    const out = runJson(["explain", "cpuid", "--no-flags", "--json"]) as Explained;
    const l0 = out.steps.filter((s) => s.level === 0).map((s) => s.kvm);
    const order = [
      "nested_vmx_vmexit",
      "sync_vmcs02_to_vmcs12",
      "prepare_vmcs12, nested_flush_cached_shadow_vmcs12",
      "vmx_switch_vmcs",
      "load_vmcs12_host_state",
      "vmx_prepare_switch_to_guest → nested_sync_vmcs12_to_shadow → copy_vmcs12_to_shadow",
      "handle_vmresume -> nested_vmx_run",
      "nested_vmx_check_controls / _address_space_size / _host_state / _guest_state",
      "nested_vmx_enter_non_root_mode",
      "prepare_vmcs02_early",
      "nested_get_vmcs12_pages → nested_vmx_prepare_msr_bitmap",
      "prepare_vmcs02",
    ];
    let at = -1;
    for (const kvm of order) {
      const next = l0.indexOf(kvm, at + 1);
      expect(next, kvm).toBeGreaterThan(at);
      at = next;
    }
    // Where the work is: load_vmcs12_host_state's segment writes, copy_vmcs12_to_shadow's 35 fields.
    const step = (kvm: string) => out.steps.find((s) => s.kvm === kvm)!;
    const count = (kvm: string, event: string) => step(kvm).events.find((e) => e.name === event)?.count;
    expect(count("load_vmcs12_host_state", "VMWRITE")).toBeGreaterThan(40);
    expect(
      count("vmx_prepare_switch_to_guest → nested_sync_vmcs12_to_shadow → copy_vmcs12_to_shadow", "VMWRITE"),
    ).toBe(35);
    expect(count("vmx_switch_vmcs", "VMWRITE")).toBeUndefined();
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
