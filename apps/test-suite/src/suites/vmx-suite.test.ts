import {
  type VmxInstructionContext,
  VmxInstructionEmulator,
  type VmxInstructionEmulatorOptions,
} from "@nestvisor/vmx";
import { describe, expect, it } from "vitest";
import { modelWith, runSuite, verdicts } from "../testing/run-suite";
import { VMX_SUITE } from "./vmx-suite";

const GROUPS = ["vmxon", "vmxon-cr-bits", "pointers", "fields", "conventions", "invvpid", "invept", "launch"];

/** An emulator that forgets VMCLEAR's VMXON-pointer check (SDM error 3). */
class LaxVmclear extends VmxInstructionEmulator {
  override vmclear(ctx: VmxInstructionContext, ptrLo: number, ptrHi: number): number {
    if (ptrLo === this.state.vmxonPtr && ptrHi === 0) return 0;
    return super.vmclear(ctx, ptrLo, ptrHi);
  }
}

describe("vmx suite (vmx-tests.md §1–3)", () => {
  for (const preset of ["none", "v5.3", "v6.12", "all"]) {
    it(`passes on the project's model under ${preset}`, () => {
      expect(verdicts(runSuite(VMX_SUITE, /^vmx\//, { preset }))).toEqual(GROUPS.map((g) => `vmx/${g} PASS`));
    });
  }

  it("passes without VMCS shadowing (every VMREAD/VMWRITE emulated)", () => {
    expect(verdicts(runSuite(VMX_SUITE, /^vmx\/(fields|launch)$/, { flags: { shadowVmcs: false } }))).toEqual(
      ["vmx/fields PASS", "vmx/launch PASS"],
    );
  });

  it("an emulator that lets VMCLEAR of the VMXON region succeed fails 1.17 with the expected error", () => {
    const model = modelWith("lax-vmclear", {
      vmxInstructionEmulator: (o: VmxInstructionEmulatorOptions) => new LaxVmclear(o),
    });
    const groups = runSuite(VMX_SUITE, /^vmx\/(pointers|conventions)$/, { model });
    expect(verdicts(groups)).toEqual(["vmx/pointers FAIL", "vmx/conventions FAIL"]);
    expect(groups[0]!.messages).toContain(
      "1.17 VMCLEAR of the VMXON region → VMfailValid(3): VMsucceed, expected VMfailValid(3)",
    );
  });
});
