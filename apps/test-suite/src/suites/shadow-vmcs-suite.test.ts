import { ShadowVmcsSync, type ShadowVmcsSyncOptions } from "@nestvisor/vmx";
import { describe, expect, it } from "vitest";
import { modelWith, runSuite, verdicts } from "../testing/run-suite";
import { SHADOW_VMCS_SUITE } from "./shadow-vmcs-suite";

/** A sync that does not write L1's intercepted VMWRITEs of read-only fields through to the shadow. */
class NoWriteThrough extends ShadowVmcsSync {
  override writeThroughReadOnly(): void {}
}

describe("shadow-vmcs suite (vmx-tests.md §4 and L0's shadowing of L1)", () => {
  for (const preset of ["none", "v6.12"]) {
    it(`passes on the project's model under ${preset}`, () => {
      const groups = runSuite(SHADOW_VMCS_SUITE, /^shadow-vmcs\//, { preset });
      expect(verdicts(groups)).toEqual([
        "shadow-vmcs/l2-access-valid-link PASS",
        "shadow-vmcs/l2-access-invalid-link PASS",
        "shadow-vmcs/l1-coherence PASS",
      ]);
      expect(groups[0]!.cases).toBe(groups[0]!.planned);
    });
  }

  it("skips L0's shadow coherence when L0 does not shadow L1 (shadowVmcs=off)", () => {
    const [g] = runSuite(SHADOW_VMCS_SUITE, /l1-coherence/, { flags: { shadowVmcs: false } });
    expect(g!.verdict).toBe("SKIP");
  });

  it("a sync without the read-only write-through fails on the read-only fields, citing handle_vmwrite", () => {
    const model = modelWith("no-write-through", {
      shadowVmcsSync: (o: ShadowVmcsSyncOptions) => new NoWriteThrough(o),
    });
    const [g] = runSuite(SHADOW_VMCS_SUITE, /l1-coherence/, { model });
    expect(g!.verdict).toBe("FAIL");
    expect(g!.messages[0]).toMatch(
      /\(RO\): L1 reads back .* \(kvm: handle_vmwrite writes a read-only shadow field through to the shadow VMCS\)/,
    );
  });
});
