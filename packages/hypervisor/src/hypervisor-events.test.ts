import { MMU_EVENTS } from "@nestvisor/mmu";
import { CountingMeter, EVENT_LAYERS, VMX_EVENTS } from "@nestvisor/vmx";
import { describe, expect, it } from "vitest";
import { HYPERVISOR_EVENT_DESCRIPTIONS, HYPERVISOR_EVENTS } from "./hypervisor-events";

describe("HYPERVISOR_EVENTS", () => {
  it("numbers its names from 0x300 inside the hypervisor layer's range", () => {
    expect(HYPERVISOR_EVENTS.layer).toBe("hypervisor");
    expect(HYPERVISOR_EVENTS.HARDWARE_VM_EXIT).toBe(0x300);
    expect(HYPERVISOR_EVENTS.HARDWARE_VM_ENTRY).toBe(0x301);
    const last = HYPERVISOR_EVENTS.base + HYPERVISOR_EVENTS.names.length - 1;
    expect(last).toBeLessThanOrEqual(EVENT_LAYERS.hypervisor.last);
  });

  it("keeps the append-only order of its first entries (saved counts refer to these ids)", () => {
    expect(HYPERVISOR_EVENTS.names.slice(0, 14)).toEqual([
      "HARDWARE_VM_EXIT",
      "HARDWARE_VM_ENTRY",
      "EXIT_DISPATCH",
      "VCPU_PUT",
      "VCPU_LOAD",
      "HOST_STATE_RELOAD",
      "RDMSR_DEBUGCTL",
      "RDPKRU",
      "PI_DESCRIPTOR_UPDATE",
      "VMCS_SWITCH",
      "TLB_FLUSH_CURRENT",
      "TLB_FLUSH_GUEST",
      "TLB_FLUSH_ALL",
      "GUEST_COMPUTE_CYCLES",
    ]);
  });

  it("describes every event, and only events", () => {
    expect(Object.keys(HYPERVISOR_EVENT_DESCRIPTIONS).sort()).toEqual([...HYPERVISOR_EVENTS.names].sort());
    for (const text of Object.values(HYPERVISOR_EVENT_DESCRIPTIONS)) expect(text.length).toBeGreaterThan(20);
  });

  it("shares no id and no name with the vmx and mmu catalogs", () => {
    const meter = new CountingMeter([VMX_EVENTS, MMU_EVENTS, HYPERVISOR_EVENTS]);
    meter.count(HYPERVISOR_EVENTS.GUEST_COMPUTE_CYCLES, 5000);
    meter.count(VMX_EVENTS.VMREAD);
    expect(meter.diff({})).toEqual({ GUEST_COMPUTE_CYCLES: 5000, VMREAD: 1 });
  });
});
