import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { fieldByName, VMCS_FIELDS } from "./field-catalog";
import { CountingMeter, type Meter } from "./meter";
import { VmcsFieldList } from "./vmcs-field-list";
import { VmcsProcessor, type VmcsProcessorOptions } from "./vmcs-processor";
import { Vmcs12 } from "./vmcs12";
import { vmcs12FieldOffset } from "./vmcs12-layout";
import { VMX_EVENTS } from "./vmx-events";
import { VMX_RESULT } from "./vmx-result";

const VMXON_REGION = 0x1000;
const VMCS_A = 0x2000;

/** Encodings to draw from: every catalog field (incl. `_HIGH`, read-only, AR bytes, major controls) and some that do not exist. */
const ENCODINGS = [...VMCS_FIELDS.map((f) => f.encoding), 0x0001, 0x4ffe, 0x7fff, 0x8000, 0x6c7e];

function processor(options: VmcsProcessorOptions, current: boolean) {
  const meter = new CountingMeter([VMX_EVENTS]);
  const cpu = new VmcsProcessor({ meter, ...options });
  cpu.vmxon(VMXON_REGION);
  const vmcs = cpu.createVmcs(VMCS_A);
  if (current) cpu.vmptrld(VMCS_A);
  meter.reset();
  return { cpu, meter, vmcs };
}

const scenario = fc.record({
  encodings: fc.array(fc.constantFrom(...ENCODINGS), { maxLength: 40 }),
  words: fc.array(fc.integer({ min: 0, max: 0xffffffff }), { minLength: 1024, maxLength: 1024 }),
  vmcsWords: fc.array(fc.integer({ min: 0, max: 0xffffffff }), { minLength: 8, maxLength: 8 }),
  vmwriteAnyField: fc.boolean(),
  dropArReservedBits: fc.boolean(),
  current: fc.boolean(),
});

function vmcs12With(words: readonly number[]): Vmcs12 {
  const bytes = new Uint8Array(Uint32Array.from(words).buffer);
  const vmcs12 = new Vmcs12();
  vmcs12.load(bytes);
  return vmcs12;
}

/** Fills every field slot of a hardware VMCS from a short pattern. */
function fillVmcs(data: Uint32Array, pattern: readonly number[]): void {
  for (let i = 0; i < data.length; i++) data[i] = pattern[i % pattern.length]! ^ i;
}

describe("VmcsFieldList", () => {
  it("resolves each encoding's vmcs12 offset and width, -1 where vmcs12 lacks it", () => {
    const rip = fieldByName("GUEST_RIP")!.encoding;
    const list = new VmcsFieldList([rip, { encoding: 0x7fff }]);
    expect(list.length).toBe(2);
    expect(list.vmcs12Offsets[0]).toBe(vmcs12FieldOffset(rip));
    expect(list.vmcs12Offsets[1]).toBe(-1);
    expect(list.codes[1]).toBe(-1);
  });

  it("rejects something that is not an encoding", () => {
    expect(() => new VmcsFieldList([-1])).toThrow(/field encodings/);
    expect(() => new VmcsFieldList([1.5])).toThrow(/field encodings/);
  });
});

describe("VmcsProcessor field-list instructions equal one instruction per field", () => {
  it("vmwriteFromVmcs12", () => {
    fc.assert(
      fc.property(scenario, (s) => {
        const options = { vmwriteAnyField: s.vmwriteAnyField, dropArReservedBits: s.dropArReservedBits };
        const list = new VmcsFieldList(s.encodings);
        const vmcs12 = vmcs12With(s.words);
        const a = processor(options, s.current);
        const b = processor(options, s.current);
        fillVmcs(a.vmcs.data, s.vmcsWords);
        fillVmcs(b.vmcs.data, s.vmcsWords);
        a.vmcs.controlsDirty = false;
        b.vmcs.controlsDirty = false;
        const failed = a.cpu.vmwriteFromVmcs12(list, vmcs12);
        let expectedFailed = 0;
        for (let i = 0; i < list.length; i++) {
          const offset = list.vmcs12Offsets[i]!;
          const lo = offset < 0 ? 0 : vmcs12.readAt(offset, list.widths[i] as 0 | 1 | 2 | 3);
          const hi = offset < 0 ? 0 : vmcs12.hi;
          if (b.cpu.vmwrite(list.encodings[i]!, lo, hi) !== VMX_RESULT.SUCCEED) expectedFailed++;
        }
        expect(failed).toBe(expectedFailed);
        expect(a.vmcs.data).toEqual(b.vmcs.data);
        expect(a.vmcs.controlsDirty).toBe(b.vmcs.controlsDirty);
        expect(a.meter.counts).toEqual(b.meter.counts);
      }),
      { numRuns: 300 },
    );
  });

  it("vmwriteValues", () => {
    fc.assert(
      fc.property(scenario, (s) => {
        const options = { vmwriteAnyField: s.vmwriteAnyField, dropArReservedBits: s.dropArReservedBits };
        const list = new VmcsFieldList(s.encodings);
        const lo = Uint32Array.from(s.encodings, (_, i) => s.words[i]!);
        const hi = Uint32Array.from(s.encodings, (_, i) => s.words[512 + i]!);
        const a = processor(options, s.current);
        const b = processor(options, s.current);
        const failed = a.cpu.vmwriteValues(list, lo, hi);
        let expectedFailed = 0;
        for (let i = 0; i < list.length; i++) {
          if (b.cpu.vmwrite(list.encodings[i]!, lo[i]!, hi[i]!) !== VMX_RESULT.SUCCEED) expectedFailed++;
        }
        expect(failed).toBe(expectedFailed);
        expect(a.vmcs.data).toEqual(b.vmcs.data);
        expect(a.meter.counts).toEqual(b.meter.counts);
      }),
      { numRuns: 300 },
    );
  });

  it("vmreadIntoVmcs12", () => {
    fc.assert(
      fc.property(scenario, (s) => {
        const list = new VmcsFieldList(s.encodings);
        const a = processor({}, s.current);
        const b = processor({}, s.current);
        fillVmcs(a.vmcs.data, s.vmcsWords);
        fillVmcs(b.vmcs.data, s.vmcsWords);
        const va = vmcs12With(s.words);
        const vb = vmcs12With(s.words);
        const failed = a.cpu.vmreadIntoVmcs12(list, va);
        let expectedFailed = 0;
        for (let i = 0; i < list.length; i++) {
          const lo = b.cpu.vmread(list.encodings[i]!);
          if (b.cpu.status !== VMX_RESULT.SUCCEED) expectedFailed++;
          const offset = list.vmcs12Offsets[i]!;
          if (offset >= 0) vb.writeAt(offset, list.widths[i] as 0 | 1 | 2 | 3, lo, b.cpu.hi);
        }
        expect(failed).toBe(expectedFailed);
        expect(va.serialize()).toEqual(vb.serialize());
        expect(a.vmcs.data).toEqual(b.vmcs.data);
        if (list.length > 0) {
          expect(a.cpu.hi).toBe(b.cpu.hi);
          expect(a.cpu.status).toBe(b.cpu.status);
        }
        expect(a.meter.counts).toEqual(b.meter.counts);
      }),
      { numRuns: 300 },
    );
  });

  it("a processor whose VMREAD/VMWRITE are redefined runs a list one instruction at a time", () => {
    const seen: number[] = [];
    class Exiting extends VmcsProcessor {
      override vmwrite(encoding: number, lo: number, hi = 0) {
        seen.push(encoding);
        return super.vmwrite(encoding, lo, hi);
      }
    }
    const meter: Meter = new CountingMeter([VMX_EVENTS]);
    const cpu = new Exiting({ meter });
    cpu.vmxon(VMXON_REGION);
    cpu.createVmcs(VMCS_A);
    cpu.vmptrld(VMCS_A);
    const fields = ["GUEST_RIP", "GUEST_RSP", "GUEST_CS_SELECTOR"].map((n) => fieldByName(n)!.encoding);
    cpu.vmwriteFromVmcs12(new VmcsFieldList(fields), new Vmcs12());
    expect(seen).toEqual(fields);
  });

  it("outside VMX operation a list throws like the instruction", () => {
    const cpu = new VmcsProcessor();
    const list = new VmcsFieldList([fieldByName("GUEST_RIP")!.encoding]);
    expect(() => cpu.vmwriteFromVmcs12(list, new Vmcs12())).toThrow(/outside VMX operation/);
    expect(() => cpu.vmreadIntoVmcs12(list, new Vmcs12())).toThrow(/outside VMX operation/);
  });
});
