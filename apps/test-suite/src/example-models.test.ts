import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { loadModel } from "./load-model";
import { runSuites, VERDICT } from "./runner";
import { SUITES } from "./suites";

/**
 * The worked examples (examples/*: ModelSpec modules, the `nestvisor --model` format) against the
 * groups that run their policies: the mmu suite's VcpuMmu (root cache), the nested suite's VMX world
 * (nested sync and, for its L1, the enlightened VMCS access) and machines (every policy), the audit's
 * machines, and the differential suite on the workloads that exercise them (port I/O, CR3 switches,
 * the mixed workload; the rest only adds time). The other suites build nothing a ModelSpec replaces
 * (the access and ept suites use the packages' walkers and MMUs; the vmx suites' L1 is
 * kvm-unit-tests, which does not use an enlightened VMCS); cli.test.ts runs every suite on a
 * ModelSpec module through the bin.
 */
const EXAMPLES = resolve(import.meta.dirname, "../../../examples");
const POLICY_SUITES = /^(mmu|nested|audit)\/|^differential\/(inl_from_qemu|cr3_switch|mixed)$/;

async function run(path: string) {
  const model = await loadModel(resolve(EXAMPLES, path));
  return runSuites({ model, suites: SUITES, filter: POLICY_SUITES });
}

function notPassing(report: Awaited<ReturnType<typeof run>>) {
  return report.groups.filter((g) => g.verdict !== VERDICT.PASS).map((g) => `${g.id} ${g.verdict}`);
}

describe("the worked example models conform", () => {
  it("enlightened-vmcs: every group passes, L1 of the nested suite using the enlightened VMCS", async () => {
    const report = await run("enlightened-vmcs/model.mjs");
    expect(report.model).toBe("kvm-evmcs");
    expect(notPassing(report)).toEqual([]);
    expect(new Set(report.groups.map((g) => g.suite))).toEqual(
      new Set(["mmu", "nested", "differential", "audit"]),
    );
  });

  it("root-cache-8: every group passes, the mmu cases sized to 8 previous roots", async () => {
    const report = await run("root-cache-8/model.mjs");
    expect(notPassing(report)).toEqual([]);
    const mmu = report.groups.find((g) => g.id === "mmu/round-trips")!;
    expect(mmu.description).toContain('(root cache "kvm-8-prev", 8 previous roots)');
  });

  it("dvh-virtual-passthrough: L1 never sees the I/O exits it intercepts, and nothing else differs", async () => {
    const report = await run("dvh-virtual-passthrough/model.mjs");
    // A paravirtual design, not a transparent optimization: L0 completes L2's port I/O that L1's
    // I/O bitmap intercepts (kvm: nested_vmx_l1_wants_exit says L1 wants it), so L1's vmcs12 never
    // records the exit. The three port-I/O cases of nested/machine-exits are the whole difference.
    expect(notPassing(report)).toEqual(["nested/machine-exits FAIL"]);
    const exits = report.groups.find((g) => g.id === "nested/machine-exits")!;
    expect(exits.failures).toBe(3);
    expect(exits.messages.map((m) => m.slice(0, m.indexOf(":")))).toEqual([
      "IN EAX from port 0x1234",
      "OUT AL to port 0x4d0",
      "IN AL from port 0x4d0",
    ]);
    for (const m of exits.messages) expect(m).toContain("L1 never saw the exit");
  });
});
