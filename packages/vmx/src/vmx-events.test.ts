import { describe, expect, it } from "vitest";
import { CountingMeter, EVENT_LAYERS } from "./meter";
import { VMX_EVENT_DESCRIPTIONS, VMX_EVENTS } from "./vmx-events";

describe("VMX_EVENTS", () => {
  it("lives in the vmx id range", () => {
    expect(VMX_EVENTS.layer).toBe("vmx");
    expect(VMX_EVENTS.base).toBe(EVENT_LAYERS.vmx.first);
    for (const name of VMX_EVENTS.names) {
      const id = VMX_EVENTS.idOf(name)!;
      expect(id).toBeGreaterThanOrEqual(EVENT_LAYERS.vmx.first);
      expect(id).toBeLessThanOrEqual(EVENT_LAYERS.vmx.last);
      expect(VMX_EVENTS.nameOf(id)).toBe(name);
    }
  });

  it("defines the primitives the seeds' flags are measured by", () => {
    for (const name of [
      "VMREAD",
      "VMWRITE",
      "VMPTRLD",
      "VMCLEAR",
      "VMLAUNCH",
      "VMRESUME",
      "VMXON",
      "VMXOFF",
      "INVEPT",
      "INVVPID",
      "VMCS_FULL_CONSISTENCY_CHECK",
      "CONTROL_SHADOW_WRITE_SKIPPED",
      "SHADOW_FIELD_OFFSET_LOOKUP",
      "VMCS12_READ",
      "VMCS12_WRITE",
    ]) {
      expect(VMX_EVENTS.idOf(name), name).toBeDefined();
    }
  });

  it("keeps its ids stable (the catalog is append-only)", () => {
    expect(VMX_EVENTS.VMXON).toBe(0x100);
    expect(VMX_EVENTS.VMPTRLD).toBe(0x103);
    expect(VMX_EVENTS.VMREAD).toBe(0x105);
    expect(VMX_EVENTS.VMWRITE).toBe(0x106);
    expect(VMX_EVENTS.VMCS_FULL_CONSISTENCY_CHECK).toBe(0x10b);
    expect(VMX_EVENTS.VMCS12_WRITE).toBe(0x10f);
  });

  it("describes every event", () => {
    expect(Object.keys(VMX_EVENT_DESCRIPTIONS).sort()).toEqual([...VMX_EVENTS.names].sort());
    for (const text of Object.values(VMX_EVENT_DESCRIPTIONS)) expect(text.length).toBeGreaterThan(10);
  });

  it("names its counts on a CountingMeter", () => {
    const meter = new CountingMeter([VMX_EVENTS]);
    meter.count(VMX_EVENTS.VMWRITE, 5);
    expect(meter.diff({})).toEqual({ VMWRITE: 5 });
    expect(Object.keys(meter.snapshot())).toEqual([...VMX_EVENTS.names]);
  });
});
