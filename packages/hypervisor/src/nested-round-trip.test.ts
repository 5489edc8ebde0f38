import { describe, expect, it } from "vitest";
import { builtinSteadyStateCounts } from "./testing/steady-state-counts";

/** Steady-state counts of one L2 CPUID round trip: (run of 30) − (run of 10), divided by 20. */
function perRoundTrip(
  preset: string,
  overrides: Record<string, boolean> = {},
  level = 2,
): Record<string, number> {
  return builtinSteadyStateCounts("cpuid", level, preset, overrides);
}

describe("nested CPUID round trip, seed-003 counters (kvm-vmx.md §10)", () => {
  const v52 = perRoundTrip("v5.2");
  const v53 = perRoundTrip("v5.3");
  const v612 = perRoundTrip("v6.12");

  it("has two hardware exits (L2's CPUID, L1's VMRESUME) and one nested entry and exit", () => {
    for (const c of [v52, v53, v612]) {
      expect(c.HARDWARE_VM_ENTRY).toBe(c.HARDWARE_VM_EXIT);
      expect(c.NESTED_VM_ENTRY).toBe(1);
      expect(c.NESTED_VM_EXIT).toBe(1);
      expect(c.NESTED_EXIT_REFLECTED).toBe(1);
    }
    expect(v52.HARDWARE_VM_EXIT).toBe(2);
    expect(v53.HARDWARE_VM_EXIT).toBe(2);
  });

  it("v6.12 adds L1's RDMSR of DEBUGCTL before its entry: a third exit, handled by L0 (hostDebugctlPerEntry)", () => {
    expect(v612.HARDWARE_VM_EXIT).toBe(3);
    expect(v612.EXIT_HANDLER_MSR).toBe(1);
    expect(v612.NESTED_EXIT_HANDLED_BY_L0 ?? 0).toBe(0);
    // L0 reads its own DEBUGCTL natively before each of its three entries (L1 twice, L2 once).
    expect(v612.RDMSR_DEBUGCTL).toBe(3);
    const without = perRoundTrip("v6.12", { hostDebugctlPerEntry: false });
    expect(without.HARDWARE_VM_EXIT).toBe(2);
    expect(without.RDMSR_DEBUGCTL ?? 0).toBe(0);
    expect(without.EXIT_HANDLER_MSR ?? 0).toBe(0);
    // The read is the only difference: one exit and entry, its dispatch and handler, one VMREAD of
    // GUEST_IA32_DEBUGCTL with the instruction skip's reads, and L0's three native reads.
    expect(v612.HARDWARE_VM_ENTRY! - without.HARDWARE_VM_ENTRY!).toBe(1);
    expect(v612.EXIT_DISPATCH! - without.EXIT_DISPATCH!).toBe(1);
    expect(v612.NESTED_VM_ENTRY).toBe(without.NESTED_VM_ENTRY);
    expect(v612.VMWRITE! - without.VMWRITE!).toBe(1);
  });

  it("no guest TLB flush per round trip while vmcs12 uses an unchanging VPID (nested_vmx_transition_tlb_flush)", () => {
    for (const c of [v52, v53, v612]) expect(c.TLB_FLUSH_GUEST ?? 0).toBe(0);
  });

  it("shadow-field offset lookups: 68 before flag B, 0 after", () => {
    expect(v52.SHADOW_FIELD_OFFSET_LOOKUP).toBe(68);
    expect(v53.SHADOW_FIELD_OFFSET_LOOKUP ?? 0).toBe(0);
  });

  it("vcpu put/load on VMCS switches: 2 before flag D, 0 after", () => {
    expect(v52.VCPU_PUT).toBe(2);
    expect(v52.VCPU_LOAD).toBe(2);
    expect(v53.VCPU_PUT ?? 0).toBe(0);
    expect(v53.VMCS_SWITCH).toBe(2);
  });

  it("full consistency check on the nested entry: 1 before flag F, 0 after", () => {
    expect(v52.VMCS_FULL_CONSISTENCY_CHECK).toBe(1);
    expect(v53.VMCS_FULL_CONSISTENCY_CHECK ?? 0).toBe(0);
    // The five controls prepare_vmcs02_early sets, the "use MSR bitmaps" bit nested_get_vmcs12_pages
    // sets again (exec_controls_setbit), and vmx_set_efer's three control updates at the entry and at
    // the exit (IA-32e mode, "load IA32_EFER" on entry and exit); §10's table counts the five only.
    expect(v53.CONTROL_SHADOW_WRITE_SKIPPED).toBe(5 + 1 + 3 + 3);
  });

  it("rare guest fields deferred on every exit with flag C (35 VMREADs)", () => {
    expect(v52.RARE_FIELD_VMREAD_DEFERRED ?? 0).toBe(0);
    expect(v53.RARE_FIELD_VMREAD_DEFERRED).toBe(35);
  });

  it("fewer VMREADs and VMWRITEs per round trip after the series, and the same with all flags as v6.12", () => {
    expect(v53.VMREAD!).toBeLessThan(v52.VMREAD!);
    expect(v53.VMWRITE!).toBeLessThan(v52.VMWRITE!);
    // copy_shadow_to_vmcs12: 34 → 24 (−10 with flag A and the pin-control move of flag F); exit sync 52 → 12;
    // the conditional GUEST_IA32_DEBUGCTL read-back flag E also removed (L1, a KVM, saves debug
    // controls: §10 E, "−1 each for PAT/DEBUGCTL when their save controls are set"); and flag F's
    // exec_controls_setbit of "use MSR bitmaps" in nested_get_vmcs12_pages, a VMREAD + VMWRITE
    // (vmcs_set_bits) before it.
    expect(v52.VMREAD! - v53.VMREAD!).toBe(10 + (52 + 2 - 12) + 4 + 0 + 1 + 1);
  });

  it("each VMX flag flipped alone on v6.12 changes only its own counters' direction", () => {
    const off = (flag: string) => perRoundTrip("v6.12", { [flag]: false });
    expect(off("precomputedShadowOffsets").SHADOW_FIELD_OFFSET_LOOKUP).toBe(59);
    expect(off("noVcpuPutOnVmcsSwitch").VCPU_PUT).toBe(2);
    expect(off("controlsShadow").VMCS_FULL_CONSISTENCY_CHECK).toBe(1);
    expect(off("lazyRareGuestSync").RARE_FIELD_VMREAD_DEFERRED ?? 0).toBe(0);
  });

  it("an L3 CPUID runs, with L1 emulating L2's VMX instructions (extra L0 exits)", () => {
    const l3 = perRoundTrip("v6.12", {}, 3);
    expect(l3.HARDWARE_VM_EXIT!).toBeGreaterThan(10 * v612.HARDWARE_VM_EXIT!);
    expect(l3.EMULATED_VMREAD! + l3.EMULATED_VMWRITE!).toBeGreaterThan(0);
  });
});
