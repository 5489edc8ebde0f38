import { describe, expect, it } from "vitest";
import { fieldByName } from "./field-catalog";
import { INVALID_GPA, NestedVmxState } from "./nested-vmx-state";

describe("NestedVmxState", () => {
  it("starts outside VMX operation with no VMXON or current-VMCS pointer", () => {
    const state = new NestedVmxState();
    expect(state.vmxon).toBe(false);
    expect(state.vmxonPtr).toBe(INVALID_GPA);
    expect(state.currentVmptr).toBe(INVALID_GPA);
    expect(state.hasCurrentVmcs).toBe(false);
    expect(state.guestMode).toBe(false);
    expect(state.nestedRunPending).toBe(false);
    state.currentVmptr = 0x2000;
    expect(state.hasCurrentVmcs).toBe(true);
  });

  it("keeps two distinct vmcs12 copies of the chosen era", () => {
    const cr3Target0 = fieldByName("CR3_TARGET_VALUE0")!.encoding;
    const modern = new NestedVmxState();
    expect(modern.cachedVmcs12).not.toBe(modern.cachedShadowVmcs12);
    expect(modern.cachedVmcs12.era).toBe("v6.12");
    expect(modern.cachedVmcs12.offsetOf(cr3Target0)).toBe(-1);
    const old = new NestedVmxState("v5.3");
    expect(old.cachedShadowVmcs12.era).toBe("v5.3");
    expect(old.cachedVmcs12.offsetOf(cr3Target0)).toBe(376);
  });
});
