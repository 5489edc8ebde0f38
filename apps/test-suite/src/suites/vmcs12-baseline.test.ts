import { resolveFlags } from "@nestvisor/hypervisor";
import { KVM_DEFAULT_VMX_CAPABILITIES, VMX_OUTCOME } from "@nestvisor/vmx";
import { describe, expect, it } from "vitest";
import { DEFAULT_PARTS } from "../model-parts";
import { baselineControls, baselineFields, loadBaseline } from "./vmcs12-baseline";
import { VmxWorld } from "./vmx-world";

describe("the vmcs12 baseline (kvm-unit-tests init_vmcs)", () => {
  for (const preset of ["none", "v5.3", "v6.12", "all"]) {
    it(`passes every VM-entry check under ${preset}`, () => {
      const w = loadBaseline(new VmxWorld(DEFAULT_PARTS, resolveFlags(preset, {})));
      expect(w.vmlaunch()).toBe(VMX_OUTCOME.ENTER_NON_ROOT);
      expect(w.lastEntry).toEqual({ kind: "entered" });
    });
  }

  it("has the controls vmx-tests.md §0 names, adjusted to the capability MSRs", () => {
    const c = baselineControls(KVM_DEFAULT_VMX_CAPABILITIES);
    expect(c.pin & 0x29).toBe(0x29); // external-interrupt exiting, NMI exiting, virtual NMIs
    expect(c.exit & ((1 << 9) | (1 << 19) | (1 << 21))).toBe((1 << 9) | (1 << 19) | (1 << 21));
    expect(c.entry & ((1 << 9) | (1 << 15))).toBe((1 << 9) | (1 << 15));
    const names = baselineFields(KVM_DEFAULT_VMX_CAPABILITIES).map(([n]) => n);
    expect(new Set(names).size).toBe(names.length);
    expect(names).toContain("VMCS_LINK_POINTER");
  });
});
