import { createModel } from "@nestvisor/hypervisor";
import { EXIT_REASON, fieldByName, ShadowVmcsSync, type Vmcs12 } from "@nestvisor/vmx";
import { describe, expect, it } from "vitest";
import { KVM_MODEL } from "../kvm-model";
import type { ModelFactory } from "../model";
import { specModelFactory } from "../spec-model";
import { runSuite, verdicts } from "../testing/run-suite";
import { NESTED_SUITE } from "./nested-suite";

describe("nested suite", () => {
  for (const preset of ["none", "v5.3", "v6.12", "all"]) {
    it(`passes on the project's model under ${preset}`, () => {
      expect(verdicts(runSuite(NESTED_SUITE, /^nested\//, { preset }))).toEqual([
        "nested/vmcs12-after-exit PASS",
        "nested/machine-exits PASS",
      ]);
    });
  }

  it("catches a reflection policy that keeps exits L1 intercepts (DVH-style I/O passthrough)", () => {
    const model = specModelFactory(
      createModel({
        name: "keeps-io",
        policies: {
          reflection: (q) =>
            q.level === 0 && q.reason === EXIT_REASON.IO_INSTRUCTION ? false : q.kvmDecision,
        },
      }),
      "test",
    );
    const [g] = runSuite(NESTED_SUITE, /machine-exits/, { model });
    expect(g!.verdict).toBe("FAIL");
    expect(g!.failures).toBe(3);
    expect(g!.messages).toEqual(
      ["IN EAX from port 0x1234", "OUT AL to port 0x4d0", "IN AL from port 0x4d0"].map(
        (name) =>
          `${name}: L1 never saw the exit (vmcs12 untouched: VM_EXIT_REASON 0, GUEST_RIP 0x100000), expected exit 30: L1 intercepts it, so L0 must reflect it (kvm: nested_vmx_reflect_vmexit, nested_vmx_l1_wants_exit)`,
      ),
    );
  });

  it("runs a ModelSpec's nested-sync policy in L0's VMX world: a sync that drops a field is caught", () => {
    const es = fieldByName("GUEST_ES_SELECTOR")!.encoding;
    class DropsEs extends ShadowVmcsSync {
      override syncRareFieldsIfPending(vmcs12: Vmcs12): void {
        if (!this.needSyncVmcs02ToVmcs12Rare) return;
        const kept = vmcs12.read(es);
        super.syncRareFieldsIfPending(vmcs12);
        vmcs12.write(es, kept);
      }
    }
    const model = specModelFactory(
      createModel({ name: "drops-es", policies: { nestedSync: (options) => new DropsEs(options) } }),
      "test",
    );
    const [g] = runSuite(NESTED_SUITE, /vmcs12-after-exit/, { model });
    expect(g!.verdict).toBe("FAIL");
    expect(g!.failures).toBe(6);
    expect(g!.messages[0]).toMatch(/^after the CPUID exit, L1 read GUEST_ES_SELECTOR = 0x10/);
  });

  it("skips the machine group for a model whose machines expose no levels", () => {
    const model: ModelFactory = {
      name: "opaque",
      createMachine: (o) => {
        const m = KVM_MODEL.createMachine(o);
        return { level: m.level, run: () => m.run(), snapshot: () => m.snapshot() };
      },
    };
    const [g] = runSuite(NESTED_SUITE, /machine-exits/, { model });
    expect(g!.verdict).toBe("SKIP");
    expect(g!.reason).toMatch(/ModelMachine.levels/);
  });
});
