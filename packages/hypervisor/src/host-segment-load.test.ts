import { CountingMeter, fieldByName, VM_EXIT_CTLS, VMX_EVENTS, Vmcs12, VmcsProcessor } from "@nestvisor/vmx";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { HostSegmentLoad } from "./host-segment-load";

const enc = (name: string): number => fieldByName(name)!.encoding;

function setup() {
  const meter = new CountingMeter([VMX_EVENTS]);
  const processor = new VmcsProcessor({ meter });
  processor.vmxon(0x1000);
  const vmcs01 = processor.createVmcs(0x2000);
  processor.vmptrld(0x2000);
  meter.reset();
  return { processor, vmcs01, meter };
}

describe("HostSegmentLoad (SDM 28.5.2; kvm: load_vmcs12_host_state → __vmx_set_segment)", () => {
  it("loads a 64-bit host's segments as KVM does: flat CS (L) and data segments, busy TSS, unusable LDTR", () => {
    const { processor, vmcs01, meter } = setup();
    const vmcs12 = new Vmcs12();
    vmcs12.write(enc("VM_EXIT_CONTROLS"), VM_EXIT_CTLS.VM_EXIT_HOST_ADDR_SPACE_SIZE);
    vmcs12.write(enc("HOST_CS_SELECTOR"), 0x10);
    vmcs12.write(enc("HOST_SS_SELECTOR"), 0x18);
    vmcs12.write(enc("HOST_DS_SELECTOR"), 0x18);
    vmcs12.write(enc("HOST_TR_SELECTOR"), 0x40);
    vmcs12.write(enc("HOST_FS_BASE"), 0x1000, 0x7fff);
    vmcs12.write(enc("HOST_TR_BASE"), 0xfe00_0000, 0xffff_ffff);
    expect(new HostSegmentLoad().run(processor, vmcs12)).toBe(0);
    const read = (name: string) => [vmcs01.read(enc(name)), vmcs01.hi];
    expect(read("GUEST_CS_SELECTOR")).toEqual([0x10, 0]);
    expect(read("GUEST_CS_AR_BYTES")).toEqual([0xa09b, 0]);
    expect(read("GUEST_CS_LIMIT")).toEqual([0xffffffff, 0]);
    expect(read("GUEST_SS_AR_BYTES")).toEqual([0xc093, 0]);
    expect(read("GUEST_DS_SELECTOR")).toEqual([0x18, 0]);
    expect(read("GUEST_ES_SELECTOR")).toEqual([0, 0]);
    expect(read("GUEST_FS_BASE")).toEqual([0x1000, 0x7fff]);
    expect(read("GUEST_GS_BASE")).toEqual([0, 0]);
    expect(read("GUEST_TR_SELECTOR")).toEqual([0x40, 0]);
    expect(read("GUEST_TR_BASE")).toEqual([0xfe00_0000, 0xffff_ffff]);
    expect(read("GUEST_TR_LIMIT")).toEqual([0x67, 0]);
    expect(read("GUEST_TR_AR_BYTES")).toEqual([0x8b, 0]);
    expect(read("GUEST_LDTR_AR_BYTES")).toEqual([0x10000, 0]);
    expect(read("GUEST_LDTR_SELECTOR")).toEqual([0, 0]);
    // Four VMWRITEs per segment (base, limit, selector, access rights), eight segments.
    expect(meter.counts[VMX_EVENTS.VMWRITE]).toBe(32);
  });

  it("gives CS D/B instead of L for a 32-bit host, and takes every selector from vmcs12", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 7, maxLength: 7 }),
        (selectors) => {
          const { processor, vmcs01 } = setup();
          const vmcs12 = new Vmcs12();
          const names = ["CS", "DS", "ES", "SS", "FS", "GS", "TR"];
          names.forEach((s, i) => {
            vmcs12.write(enc(`HOST_${s}_SELECTOR`), selectors[i]!);
          });
          new HostSegmentLoad().run(processor, vmcs12);
          names.forEach((s, i) => {
            expect(vmcs01.read(enc(`GUEST_${s}_SELECTOR`))).toBe(selectors[i]);
          });
          expect(vmcs01.read(enc("GUEST_CS_AR_BYTES"))).toBe(0xc09b);
        },
      ),
      { numRuns: 50 },
    );
  });
});
