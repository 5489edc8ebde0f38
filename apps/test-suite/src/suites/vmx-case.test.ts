import { resolveFlags } from "@nestvisor/hypervisor";
import { VMX_RESULT } from "@nestvisor/vmx";
import { RFLAGS } from "@nestvisor/x86-arch";
import { describe, expect, it } from "vitest";
import { DEFAULT_PARTS } from "../model-parts";
import { expectFlags, expectOutcome, first } from "./vmx-case";
import { L1, VmxWorld } from "./vmx-world";

describe("vmx case helpers", () => {
  it("expectOutcome names both outcomes", () => {
    expect(expectOutcome(0, 0)).toBeNull();
    expect(expectOutcome(-1, 9, "VMPTRLD")).toBe("VMPTRLD: VMfailInvalid, expected VMfailValid(9)");
  });

  it("first returns the first failure and stops", () => {
    let ran = 0;
    expect(
      first(
        () => null,
        () => "b",
        () => `${++ran}`,
      ),
    ).toBe("b");
    expect(ran).toBe(0);
  });

  it("expectFlags presets RFLAGS and checks the six status flags", () => {
    const w = new VmxWorld(DEFAULT_PARTS, resolveFlags("v6.12", {}));
    w.vmxon(L1.VMXON);
    expect(expectFlags(w, () => w.vmptrld(L1.VMCS[0] + 1), RFLAGS.CF, "VMPTRLD")).toBeNull();
    expect(expectFlags(w, () => w.vmclear(L1.VMCS[0]), RFLAGS.ZF, "VMCLEAR")).toBe(
      "VMCLEAR: status flags 0x0, expected 0x40 (SDM 31.2)",
    );
    expect(VMX_RESULT.SUCCEED).toBe(0);
  });
});
