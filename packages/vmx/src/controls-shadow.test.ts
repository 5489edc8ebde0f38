import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  ControlsShadow,
  VMCS_CONTROL,
  VMCS_CONTROL_FIELDS,
  VMCS_CONTROL_NAMES,
  type VmcsControl,
} from "./controls-shadow";
import type { HardwareVmcs } from "./hardware-vmcs";
import { CountingMeter } from "./meter";
import { VmcsProcessor } from "./vmcs-processor";
import { LAUNCH_STATE } from "./vmcs12-layout";
import { VMX_EVENTS } from "./vmx-events";
import { VMX_RESULT } from "./vmx-result";

/** Control values as KVM might program them (the numbers only need to be stable). */
const VMCS01 = { pin: 0x7f, exec: 0xb5986dfa, secondary: 0x10ecfa, entry: 0xd3ff, exit: 0x3befff };
const VMCS02 = { pin: 0x6f, exec: 0xb6a06dfa, secondary: 0x1004ea, entry: 0xd1ff, exit: 0x3fefff };
type Controls = typeof VMCS01;

function setup(perVmcsShadow: boolean) {
  const meter = new CountingMeter([VMX_EVENTS]);
  const cpu = new VmcsProcessor({ meter });
  cpu.vmxon(0x1000);
  const vmcs01 = cpu.createVmcs(0x2000);
  const vmcs02 = cpu.createVmcs(0x3000);
  const shadow = new ControlsShadow(cpu, { perVmcsShadow });
  // vCPU creation: vmcs01 is loaded and its controls are initialised (kvm: vmx_vcpu_setup / init_vmcs).
  cpu.vmptrld(vmcs01.address);
  shadow.switchTo(vmcs01);
  program(shadow, VMCS01);
  enter(cpu, vmcs01);
  return { meter, cpu, vmcs01, vmcs02, shadow };
}

/** Writes the five controls the way prepare_vmcs02_early did in each era. */
function program(shadow: ControlsShadow, values: Controls): void {
  shadow.pin.set(values.pin);
  shadow.exec.set(values.exec);
  shadow.secondaryExec.set(values.secondary);
  shadow.vmEntry.init(values.entry);
  shadow.vmExit.init(values.exit);
}

/** A successful VM entry on the current VMCS: basic checks, dirty-controls rule, launch state. */
function enter(cpu: VmcsProcessor, vmcs: HardwareVmcs): void {
  expect(cpu.current).toBe(vmcs);
  expect(cpu.vmentryChecks(vmcs.launchState === LAUNCH_STATE.CLEAR)).toBe(VMX_RESULT.SUCCEED);
  cpu.noteVmEntry(vmcs);
  cpu.completeVmEntry();
}

/** L1 VMRESUME → prepare vmcs02 → enter L2 → L2 exits → back on vmcs01 → enter L1. */
function nestedRoundTrip(s: ReturnType<typeof setup>, values: Controls = VMCS02): void {
  s.cpu.vmptrld(s.vmcs02.address);
  s.shadow.switchTo(s.vmcs02);
  program(s.shadow, values);
  enter(s.cpu, s.vmcs02);
  s.cpu.vmptrld(s.vmcs01.address);
  s.shadow.switchTo(s.vmcs01);
  enter(s.cpu, s.vmcs01);
}

describe("controls shadow constants", () => {
  it("names KVM's six shadowed controls and their encodings", () => {
    expect(VMCS_CONTROL_NAMES[VMCS_CONTROL.SECONDARY_EXEC]).toBe("secondary_exec");
    expect(VMCS_CONTROL_FIELDS).toEqual([0x4000, 0x4002, 0x401e, 0x2034, 0x4012, 0x400c]);
  });
});

describe("per-VMCS controls shadow (flag on, kvm ≥ v5.3)", () => {
  it("writes an unchanged value with 0 VMWRITEs and leaves the controls clean", () => {
    const s = setup(true);
    nestedRoundTrip(s);
    const before = s.meter.snapshot();
    s.shadow.pin.set(VMCS01.pin);
    s.shadow.vmEntry.set(VMCS01.entry);
    s.shadow.vmExit.init(VMCS01.exit);
    expect(s.meter.diff(before)).toEqual({ CONTROL_SHADOW_WRITE_SKIPPED: 3 });
    expect(s.vmcs01.controlsDirty).toBe(false);
    expect(s.cpu.noteVmEntry(s.vmcs01)).toBe(false);
  });

  it("costs nothing per nested round trip once vmcs02's controls are programmed", () => {
    const s = setup(true);
    let before = s.meter.snapshot();
    nestedRoundTrip(s);
    // First time: vmcs02's zeroed shadow differs from every value.
    expect(s.meter.diff(before)).toEqual({
      VMPTRLD: 2,
      VMWRITE: 5,
      VMLAUNCH: 1,
      VMRESUME: 1,
      VMCS_FULL_CONSISTENCY_CHECK: 1,
    });
    before = s.meter.snapshot();
    for (let i = 0; i < 10; i++) nestedRoundTrip(s);
    expect(s.meter.diff(before)).toEqual({ VMPTRLD: 20, VMRESUME: 20, CONTROL_SHADOW_WRITE_SKIPPED: 50 });
  });

  it("writes only what changed, and marks the VMCS for a full check only then", () => {
    const s = setup(true);
    nestedRoundTrip(s);
    const before = s.meter.snapshot();
    nestedRoundTrip(s, { ...VMCS02, exec: VMCS02.exec | 0x4 });
    expect(s.meter.diff(before)).toEqual({
      VMPTRLD: 2,
      VMWRITE: 1,
      VMRESUME: 2,
      CONTROL_SHADOW_WRITE_SKIPPED: 4,
      VMCS_FULL_CONSISTENCY_CHECK: 1,
    });
  });

  it("keeps one copy per VMCS and reads none of them with VMREAD", () => {
    const s = setup(true);
    nestedRoundTrip(s);
    const before = s.meter.snapshot();
    expect(s.shadow.pin.get()).toBe(VMCS01.pin);
    expect(s.shadow.exec.get()).toBe(VMCS01.exec);
    expect(s.shadow.shadowOf(s.vmcs02, VMCS_CONTROL.EXEC)).toBe(VMCS02.exec);
    expect(s.shadow.shadowOf(s.vmcs01, VMCS_CONTROL.VM_EXIT)).toBe(VMCS01.exit);
    expect(s.meter.diff(before)).toEqual({});
    const unseen = s.cpu.createVmcs(0x9000);
    expect(s.shadow.shadowOf(unseen, VMCS_CONTROL.PIN)).toBe(0);
  });

  it("sets and clears bits through the copy", () => {
    const s = setup(true);
    const before = s.meter.snapshot();
    s.shadow.exec.setbit(0x1);
    s.shadow.exec.setbit(0x1);
    s.shadow.exec.clearbit(0x8);
    expect(s.meter.diff(before)).toEqual({ VMWRITE: 2, CONTROL_SHADOW_WRITE_SKIPPED: 1 });
    expect(s.vmcs01.read(VMCS_CONTROL_FIELDS[VMCS_CONTROL.EXEC]!)).toBe(((VMCS01.exec | 0x1) & ~0x8) >>> 0);
  });

  it("holds the 64-bit tertiary controls", () => {
    const s = setup(true);
    s.shadow.tertiaryExec.set(0x10, 0x2);
    expect(s.shadow.tertiaryExec.get()).toBe(0x10);
    expect(s.shadow.hi).toBe(0x2);
    expect(s.vmcs01.readBig(0x2034)).toBe(0x2_0000_0010n);
    const before = s.meter.snapshot();
    s.shadow.tertiaryExec.set(0x10, 0x3);
    s.shadow.tertiaryExec.setbit(0, 0x3);
    s.shadow.tertiaryExec.clearbit(0x10, 0x1);
    expect(s.meter.diff(before)).toEqual({ VMWRITE: 2, CONTROL_SHADOW_WRITE_SKIPPED: 1 });
    expect(s.vmcs01.readBig(0x2034)).toBe(0x2_0000_0000n);
    expect(s.shadow.shadowOf(s.vmcs01, VMCS_CONTROL.TERTIARY_EXEC)).toBe(0);
    expect(s.shadow.hi).toBe(0x2);
    // Tertiary controls are not a major control in seed 003.
    expect(s.cpu.noteVmEntry(s.vmcs01)).toBe(false);
  });
});

describe("per-vCPU entry/exit copy (flag off, kvm v5.2)", () => {
  it("costs 5 control VMWRITEs, 2 VMREADs per VMCS switch and a full check per nested entry", () => {
    const s = setup(false);
    nestedRoundTrip(s);
    const before = s.meter.snapshot();
    for (let i = 0; i < 10; i++) nestedRoundTrip(s);
    expect(s.meter.diff(before)).toEqual({
      VMPTRLD: 20,
      VMREAD: 40,
      VMWRITE: 50,
      VMRESUME: 20,
      VMCS_FULL_CONSISTENCY_CHECK: 10,
    });
  });

  it("re-reads the entry/exit controls of the VMCS it switches to", () => {
    const s = setup(false);
    nestedRoundTrip(s);
    s.cpu.vmptrld(s.vmcs02.address);
    const before = s.meter.snapshot();
    s.shadow.switchTo(s.vmcs02);
    expect(s.meter.diff(before)).toEqual({ VMREAD: 2 });
    expect(s.shadow.vmEntry.get()).toBe(VMCS02.entry);
    expect(s.shadow.vmExit.get()).toBe(VMCS02.exit);
    expect(s.meter.diff(before)).toEqual({ VMREAD: 2 });
  });

  it("skips an unchanged entry/exit set but always writes pin/exec/secondary", () => {
    const s = setup(false);
    const before = s.meter.snapshot();
    s.shadow.vmEntry.set(VMCS01.entry);
    s.shadow.vmExit.set(VMCS01.exit);
    s.shadow.pin.set(VMCS01.pin);
    s.shadow.exec.set(VMCS01.exec);
    s.shadow.secondaryExec.set(VMCS01.secondary);
    expect(s.meter.diff(before)).toEqual({ VMWRITE: 3, CONTROL_SHADOW_WRITE_SKIPPED: 2 });
    expect(s.cpu.noteVmEntry(s.vmcs01)).toBe(true);
  });

  it("reads pin/exec/secondary with VMREAD and changes their bits with VMREAD + VMWRITE", () => {
    const s = setup(false);
    const before = s.meter.snapshot();
    expect(s.shadow.exec.get()).toBe(VMCS01.exec);
    s.shadow.pin.setbit(0x80);
    s.shadow.pin.clearbit(0x1);
    s.shadow.vmEntry.setbit(0x400);
    s.shadow.vmEntry.setbit(0x400);
    expect(s.meter.diff(before)).toEqual({ VMREAD: 3, VMWRITE: 3, CONTROL_SHADOW_WRITE_SKIPPED: 1 });
    expect(s.shadow.pin.get()).toBe(((VMCS01.pin | 0x80) & ~0x1) >>> 0);
    expect(s.shadow.vmEntry.get()).toBe(VMCS01.entry | 0x400);
  });

  it("keeps no copy per VMCS", () => {
    const s = setup(false);
    expect(() => s.shadow.shadowOf(s.vmcs01, VMCS_CONTROL.PIN)).toThrow(/no copy per VMCS/);
  });

  it("treats the tertiary controls like the other uncopied controls", () => {
    const s = setup(false);
    const before = s.meter.snapshot();
    s.shadow.tertiaryExec.set(0x10, 0x2);
    s.shadow.tertiaryExec.set(0x10, 0x2);
    expect(s.shadow.tertiaryExec.get()).toBe(0x10);
    expect(s.shadow.hi).toBe(0x2);
    s.shadow.tertiaryExec.setbit(0x1, 0x1);
    expect(s.vmcs01.readBig(0x2034)).toBe(0x3_0000_0011n);
    expect(s.meter.diff(before)).toEqual({ VMWRITE: 3, VMREAD: 2 });
  });
});

describe("controls shadow misuse", () => {
  it("refuses a VMCS that is not the processor's current one", () => {
    for (const flag of [true, false]) {
      const s = setup(flag);
      expect(() => s.shadow.switchTo(s.vmcs02)).toThrow(/VMPTRLD it first/);
      s.cpu.vmptrld(s.vmcs02.address);
      expect(() => s.shadow.pin.set(1)).toThrow(/not the processor's current VMCS/);
      expect(() => s.shadow.get(VMCS_CONTROL.PIN)).toThrow(/not the processor's current VMCS/);
      expect(() => s.shadow.forget(s.vmcs01)).toThrow(/loaded VMCS/);
      s.shadow.switchTo(s.vmcs02);
      s.shadow.forget(s.vmcs01);
      expect(s.shadow.loaded).toBe(s.vmcs02);
    }
  });

  it("needs a first switchTo before any access", () => {
    const cpu = new VmcsProcessor();
    cpu.vmxon(0x1000);
    const shadow = new ControlsShadow(cpu, { perVmcsShadow: true });
    expect(shadow.loaded).toBeNull();
    expect(() => shadow.exec.get()).toThrow(/not the processor's current VMCS/);
  });
});

describe("both modes program the same hardware state (property)", () => {
  const controls = [0, 1, 2, 3, 4, 5] as VmcsControl[];
  const op = fc.oneof(
    fc.record({ kind: fc.constant("switch" as const), which: fc.constantFrom(0, 1) }),
    fc.record({
      kind: fc.constantFrom("set" as const, "init" as const, "setbit" as const, "clearbit" as const),
      control: fc.constantFrom(...controls),
      lo: fc.constantFrom(0, 1, 2, 3, 0x80000000),
      hi: fc.constantFrom(0, 1),
    }),
    fc.record({ kind: fc.constant("get" as const), control: fc.constantFrom(...controls) }),
  );

  it("gives identical control fields and reads with the flag on and off", () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 80 }), (ops) => {
        const runs = [true, false].map((flag) => {
          const meter = new CountingMeter([VMX_EVENTS]);
          const cpu = new VmcsProcessor({ meter });
          cpu.vmxon(0x1000);
          const regions = [cpu.createVmcs(0x2000), cpu.createVmcs(0x3000)];
          const shadow = new ControlsShadow(cpu, { perVmcsShadow: flag });
          cpu.vmptrld(0x2000);
          shadow.switchTo(regions[0]!);
          const reads: bigint[] = [];
          for (const o of ops) {
            if (o.kind === "switch") {
              cpu.vmptrld(regions[o.which]!.address);
              shadow.switchTo(regions[o.which]!);
            } else if (o.kind === "get") {
              const lo = shadow.get(o.control);
              reads.push((BigInt(shadow.hi) << 32n) | BigInt(lo));
            } else {
              shadow[o.kind](o.control, o.lo, o.hi);
            }
            // Invariant: every copy in use equals the hardware field it shadows.
            for (const c of controls) {
              if (!flag && c !== VMCS_CONTROL.VM_ENTRY && c !== VMCS_CONTROL.VM_EXIT) continue;
              const field = VMCS_CONTROL_FIELDS[c]!;
              if (flag) {
                for (const vmcs of regions) {
                  expect(BigInt(shadow.shadowOf(vmcs, c)) | (BigInt(shadow.hi) << 32n)).toBe(
                    vmcs.readBig(field),
                  );
                }
              } else {
                const loaded = shadow.loaded!;
                const before = meter.snapshot();
                expect(shadow.get(c)).toBe(loaded.read(field));
                expect(meter.diff(before)).toEqual({});
              }
            }
          }
          const fields = regions.map((vmcs) => VMCS_CONTROL_FIELDS.map((f) => vmcs.readBig(f)));
          return { reads, fields, writes: meter.byName("VMWRITE") };
        });
        const [on, off] = runs as [(typeof runs)[0], (typeof runs)[0]];
        expect(on.reads).toEqual(off.reads);
        expect(on.fields).toEqual(off.fields);
        expect(on.writes).toBeLessThanOrEqual(off.writes);
      }),
      { numRuns: 200 },
    );
  });
});
