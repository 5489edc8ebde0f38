import { OPTIMIZATION_FLAG_NAMES } from "@nestvisor/hypervisor";
import { describe, expect, it } from "vitest";
import { runCli, runJson, tempFiles } from "../testing/run-cli";

function fits(text: string): void {
  for (const line of text.split("\n")) expect(line.length, line).toBeLessThanOrEqual(100);
}

describe("nestvisor workloads | flags | presets | profiles", () => {
  it("workloads lists every built-in with what it mirrors", () => {
    const r = runCli(["workloads"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^workload\s+exits\s+parameters/);
    expect(r.stdout).toContain("mirrors kvm-unit-tests x86/vmexit.c: cpuid");
    fits(r.stdout);
    const json = runJson(["workloads", "--json"]) as { name: string; parameters: Record<string, unknown> }[];
    expect(json.map((w) => w.name)).toContain("touch_memory");
    expect(Object.keys(json.find((w) => w.name === "cr3_switch")!.parameters)).toContain("processes");
  });

  it("flags lists every flag with its seed, kernel and today's value", () => {
    const r = runCli(["flags"]);
    expect(r.stdout).toMatch(/controlsShadow\s+vmx\s+003\s+v5\.3\s+on/);
    fits(r.stdout);
    const json = runJson(["flags", "--json"]) as { name: string; baseline: string; commitOrSeries: string }[];
    expect(json.find((f) => f.name === "keepRootsOnWpOnlyChange")!.commitOrSeries).toContain("01b31714bd90");
  });

  it("presets lists the kernels oldest first with what each changed", () => {
    const r = runCli(["presets"]);
    expect(r.stdout).toMatch(/^preset\s+kernel/);
    expect(r.stdout).toMatch(new RegExp(`v5\\.3\\s+v5\\.3\\s+8/${OPTIMIZATION_FLAG_NAMES.length}`));
    expect(r.stdout).toContain("  controlsShadow=on: flag F,");
    fits(r.stdout);
    const json = runJson(["presets", "--json"]) as { name: string }[];
    expect(json.map((p) => p.name)).toEqual([
      "none",
      "v4.19",
      "v4.20",
      "v5.2",
      "v5.3",
      "v5.6",
      "v5.7",
      "v5.17",
      "v6.12",
      "all",
    ]);
  });

  it("profiles lists the shipped profiles and shows one with every price and its provenance", () => {
    const r = runCli(["profiles"]);
    expect(r.stdout).toMatch(/intel-server \*/);
    fits(r.stdout);
    const one = runCli(["profiles", "intel-server"]);
    expect(one.stdout).toMatch(/VMCS_FULL_CONSISTENCY_CHECK\s+400\s+source\s+calibration\.md/);
    fits(one.stdout);
    const json = runJson(["profiles", "--json"]) as { name: string; default: boolean }[];
    expect(json.find((p) => p.default)!.name).toBe("intel-server");
  });

  it("profiles <file> checks a profile file and names the first problem", () => {
    const dir = tempFiles({ "p.json": '{ "name": "Bad Name" }', "q.json": "{ not json" });
    const bad = runCli(["profiles", "p.json"], { cwd: dir });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^nestvisor profiles: p\.json/);
    expect(bad.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(runCli(["profiles", "q.json"], { cwd: dir }).code).toBe(2);
    expect(runCli(["profiles", "nosuch"]).stderr).toMatch(/unknown cost profile "nosuch"/);
  });
});
