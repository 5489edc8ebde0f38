import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { fieldByName, VMCS_FIELDS } from "./field-catalog";
import { ACCESS_TYPE, FIELD_TYPE, FIELD_WIDTH } from "./field-encoding";
import { MAJOR_CONTROL_FIELDS } from "./hardware-vmcs";
import { CountingMeter, NOOP_METER } from "./meter";
import {
  DEFAULT_VMCS_REVISION_ID,
  INVALID_VMCS_POINTER,
  VmcsProcessor,
  type VmcsProcessorOptions,
} from "./vmcs-processor";
import { LAUNCH_STATE } from "./vmcs12-layout";
import { VMX_EVENTS } from "./vmx-events";
import { VMX_RESULT } from "./vmx-result";

function enc(name: string): number {
  const field = fieldByName(name);
  if (!field) throw new Error(`unknown field ${name}`);
  return field.encoding;
}

const VM_INSTRUCTION_ERROR = enc("VM_INSTRUCTION_ERROR");
const VMXON_REGION = 0x1000;
const VMCS_A = 0x2000;
const VMCS_B = 0x3000;

/** A processor in VMX root operation with two ordinary VMCS regions, A and B, and no current VMCS. */
function setup(options: VmcsProcessorOptions = {}) {
  const meter = new CountingMeter([VMX_EVENTS]);
  const cpu = new VmcsProcessor({ meter, ...options });
  expect(cpu.vmxon(VMXON_REGION)).toBe(VMX_RESULT.SUCCEED);
  const a = cpu.createVmcs(VMCS_A);
  const b = cpu.createVmcs(VMCS_B);
  return { cpu, meter, a, b };
}

/** The current VMCS's VM-instruction error, read without touching the meter. */
function instructionError(cpu: VmcsProcessor): number {
  return cpu.current!.read(VM_INSTRUCTION_ERROR);
}

describe("VMXON / VMXOFF", () => {
  it("enters VMX root operation with no current VMCS", () => {
    const cpu = new VmcsProcessor();
    expect(cpu.inVmxOperation).toBe(false);
    expect(cpu.vmxon(VMXON_REGION)).toBe(VMX_RESULT.SUCCEED);
    expect(cpu.inVmxOperation).toBe(true);
    expect(cpu.vmxonPointer).toBe(VMXON_REGION);
    expect(cpu.current).toBeNull();
    expect(cpu.vmptrst()).toBe(INVALID_VMCS_POINTER);
  });

  it("fails VMfailInvalid on a bad region (kvm-unit-tests test_vmxon)", () => {
    const cpu = new VmcsProcessor({ maxPhysAddr: 46 });
    expect(cpu.vmxon(VMXON_REGION + 1)).toBe(VMX_RESULT.FAIL_INVALID);
    expect(cpu.vmxon(2 ** 46)).toBe(VMX_RESULT.FAIL_INVALID);
    expect(cpu.vmxon(VMXON_REGION, 0xba9da9)).toBe(VMX_RESULT.FAIL_INVALID);
    expect(cpu.vmxon(VMXON_REGION, (DEFAULT_VMCS_REVISION_ID | 0x80000000) >>> 0)).toBe(
      VMX_RESULT.FAIL_INVALID,
    );
    expect(cpu.inVmxOperation).toBe(false);
    expect(cpu.vmxon(2 ** 46 - 4096)).toBe(VMX_RESULT.SUCCEED);
  });

  it("fails VMXON in VMX root operation with error 15", () => {
    const { cpu, a } = setup();
    expect(cpu.vmxon(VMXON_REGION)).toBe(VMX_RESULT.FAIL_INVALID);
    cpu.vmptrld(a.address);
    expect(cpu.vmxon(VMXON_REGION)).toBe(15);
    expect(instructionError(cpu)).toBe(15);
  });

  it("leaves VMX operation; VMX instructions then are a caller bug (#UD is not modelled)", () => {
    const { cpu, a } = setup();
    cpu.vmptrld(a.address);
    expect(cpu.vmxoff()).toBe(VMX_RESULT.SUCCEED);
    expect(cpu.inVmxOperation).toBe(false);
    expect(cpu.current).toBeNull();
    expect(() => cpu.vmptrld(a.address)).toThrow(/#UD/);
    expect(() => cpu.vmread(enc("GUEST_RIP"))).toThrow(/VMREAD outside VMX operation/);
    expect(() => cpu.vmwrite(enc("GUEST_RIP"), 1)).toThrow(/VMWRITE/);
    expect(() => cpu.vmclear(a.address)).toThrow(/VMCLEAR/);
    expect(() => cpu.vmptrst()).toThrow(/VMPTRST/);
    expect(() => cpu.vmentryChecks(true)).toThrow(/VMLAUNCH/);
    expect(() => cpu.vmxoff()).toThrow(/VMXOFF/);
  });

  it("validates MAXPHYADDR", () => {
    expect(() => new VmcsProcessor({ maxPhysAddr: 31 })).toThrow(RangeError);
    expect(() => new VmcsProcessor({ maxPhysAddr: 53 })).toThrow(RangeError);
  });
});

describe("VMPTRLD / VMPTRST / VMCLEAR", () => {
  it("makes a VMCS current and reports it (kvm-unit-tests test_vmptrld/test_vmptrst)", () => {
    const { cpu, a } = setup();
    expect(cpu.vmptrld(a.address)).toBe(VMX_RESULT.SUCCEED);
    expect(cpu.current).toBe(a);
    expect(cpu.currentPointer).toBe(VMCS_A);
    expect(cpu.vmptrst()).toBe(VMCS_A);
  });

  it("fails error 9 on an unaligned or too-wide address, VMfailInvalid when nothing is current", () => {
    const { cpu, a } = setup({ maxPhysAddr: 40 });
    expect(cpu.vmptrld(VMCS_A + 8)).toBe(VMX_RESULT.FAIL_INVALID);
    cpu.vmptrld(a.address);
    expect(cpu.vmptrld(VMCS_A + 8)).toBe(9);
    expect(instructionError(cpu)).toBe(9);
    cpu.vmwrite(VM_INSTRUCTION_ERROR, 0);
    expect(cpu.vmptrld(2 ** 40)).toBe(9);
    expect(instructionError(cpu)).toBe(9);
    expect(cpu.current).toBe(a);
  });

  it("fails error 10 on the VMXON pointer", () => {
    const { cpu, a } = setup();
    cpu.vmptrld(a.address);
    expect(cpu.vmptrld(VMXON_REGION)).toBe(10);
    expect(instructionError(cpu)).toBe(10);
    expect(cpu.current).toBe(a);
  });

  it("fails error 11 on a wrong revision, a missing region, or an unsupported shadow VMCS", () => {
    const { cpu, a } = setup();
    const wrong = cpu.createVmcs(0x9000, { revision: 0x1234 });
    expect(cpu.vmptrld(wrong.address)).toBe(VMX_RESULT.FAIL_INVALID);
    cpu.vmptrld(a.address);
    expect(cpu.vmptrld(wrong.address)).toBe(11);
    expect(cpu.vmptrld(0xa000)).toBe(11);
    expect(cpu.current).toBe(a);

    const noShadowing = setup({ vmcsShadowing: false });
    const shadow = noShadowing.cpu.createVmcs(0xb000, { shadow: true });
    noShadowing.cpu.vmptrld(noShadowing.a.address);
    expect(noShadowing.cpu.vmptrld(shadow.address)).toBe(11);

    const shadowOk = cpu.createVmcs(0xb000, { shadow: true });
    expect(cpu.vmptrld(shadowOk.address)).toBe(VMX_RESULT.SUCCEED);
    expect(cpu.current).toBe(shadowOk);
  });

  it("fails VMCLEAR with error 2 on a bad address and 3 on the VMXON pointer", () => {
    const { cpu, a } = setup();
    expect(cpu.vmclear(VMCS_A + 1)).toBe(VMX_RESULT.FAIL_INVALID);
    expect(cpu.vmclear(VMXON_REGION)).toBe(VMX_RESULT.FAIL_INVALID);
    cpu.vmptrld(a.address);
    expect(cpu.vmclear(VMCS_A + 1)).toBe(2);
    expect(cpu.vmclear(-4096)).toBe(2);
    expect(cpu.vmclear(VMXON_REGION)).toBe(3);
    expect(instructionError(cpu)).toBe(3);
  });

  it("clears the launch state; the current VMCS pointer becomes invalid only if it was the one cleared", () => {
    const { cpu, a, b } = setup();
    a.launchState = LAUNCH_STATE.LAUNCHED;
    b.launchState = LAUNCH_STATE.LAUNCHED;
    cpu.vmptrld(a.address);
    expect(cpu.vmclear(b.address)).toBe(VMX_RESULT.SUCCEED);
    expect(b.launchState).toBe(LAUNCH_STATE.CLEAR);
    expect(cpu.current).toBe(a);
    expect(cpu.vmclear(a.address)).toBe(VMX_RESULT.SUCCEED);
    expect(a.launchState).toBe(LAUNCH_STATE.CLEAR);
    expect(cpu.current).toBeNull();
    expect(cpu.vmptrst()).toBe(INVALID_VMCS_POINTER);
    expect(cpu.vmclear(0x20000)).toBe(VMX_RESULT.SUCCEED);
  });

  it("keeps each VMCS's fields across VMPTRLD switches (kvm-unit-tests test_vmcs_lifecycle)", () => {
    const { cpu, a, b } = setup();
    const rip = enc("GUEST_RIP");
    cpu.vmptrld(a.address);
    cpu.vmwrite(rip, 1);
    cpu.vmptrld(b.address);
    cpu.vmwrite(rip, 2);
    cpu.vmptrld(b.address);
    expect(cpu.vmread(rip)).toBe(2);
    cpu.vmptrld(a.address);
    expect(cpu.vmread(rip)).toBe(1);
    cpu.vmclear(b.address);
    cpu.vmptrld(b.address);
    expect(cpu.vmread(rip)).toBe(2);
  });

  it("manages regions: one per address, and the current one cannot be freed", () => {
    const { cpu, a, b } = setup();
    expect(() => cpu.createVmcs(VMCS_A)).toThrow(/already exists/);
    expect(() => cpu.createVmcs(0xc001)).toThrow(RangeError);
    expect(cpu.vmcsAt(VMCS_B)).toBe(b);
    cpu.vmptrld(a.address);
    expect(() => cpu.freeVmcs(a)).toThrow(/VMCLEAR it first/);
    cpu.freeVmcs(b);
    expect(cpu.vmcsAt(VMCS_B)).toBeUndefined();
    expect(cpu.vmptrld(VMCS_B)).toBe(11);
  });
});

describe("VMREAD / VMWRITE", () => {
  it("fail VMfailInvalid without a current VMCS", () => {
    const { cpu } = setup();
    expect(cpu.vmwrite(enc("GUEST_RIP"), 5)).toBe(VMX_RESULT.FAIL_INVALID);
    expect(cpu.vmread(enc("GUEST_RIP"))).toBe(-1);
    expect(cpu.status).toBe(VMX_RESULT.FAIL_INVALID);
    expect(cpu.hi).toBe(0);
  });

  it("fail error 12 on encodings the processor does not support", () => {
    const { cpu, a } = setup();
    cpu.vmptrld(a.address);
    for (const e of [0xffffffff, 0x8000, 0x4001, 0x1000, -1]) {
      cpu.vmwrite(VM_INSTRUCTION_ERROR, 0);
      expect(cpu.vmwrite(e, 1)).toBe(12);
      expect(instructionError(cpu)).toBe(12);
      cpu.vmwrite(VM_INSTRUCTION_ERROR, 0);
      expect(cpu.vmread(e)).toBe(-1);
      expect(cpu.status).toBe(12);
      expect(instructionError(cpu)).toBe(12);
    }
  });

  it("leave the VM-instruction error alone when they succeed", () => {
    const { cpu, a } = setup();
    cpu.vmptrld(a.address);
    cpu.vmread(0xffffffff);
    expect(cpu.vmwrite(enc("GUEST_RSP"), 0x1000)).toBe(VMX_RESULT.SUCCEED);
    expect(cpu.vmread(enc("GUEST_RSP"))).toBe(0x1000);
    expect(cpu.status).toBe(VMX_RESULT.SUCCEED);
    expect(cpu.vmptrld(a.address)).toBe(VMX_RESULT.SUCCEED);
    expect(cpu.vmread(VM_INSTRUCTION_ERROR)).toBe(12);
  });

  it("reject VMWRITE to exit-information fields with error 13 unless VMWRITE-to-any is supported", () => {
    const without = setup({ vmwriteAnyField: false });
    without.cpu.vmptrld(without.a.address);
    const readOnly = VMCS_FIELDS.filter((f) => f.type === FIELD_TYPE.EXIT_INFO);
    expect(readOnly.length).toBeGreaterThan(10);
    for (const f of readOnly) {
      expect(without.cpu.vmwrite(f.encoding, 0x55), f.name).toBe(13);
      expect(without.a.read(f.encoding), f.name).toBe(f.encoding === VM_INSTRUCTION_ERROR ? 13 : 0);
    }
    const withAny = setup({ vmwriteAnyField: true });
    withAny.cpu.vmptrld(withAny.a.address);
    for (const f of readOnly) {
      expect(withAny.cpu.vmwrite(f.encoding, 0x55), f.name).toBe(VMX_RESULT.SUCCEED);
      expect(withAny.cpu.vmread(f.encoding), f.name).toBe(0x55);
    }
  });

  it("drop the reserved access-rights bits when configured (kvm: handle_vmwrite note)", () => {
    for (const drop of [true, false]) {
      const { cpu, a } = setup({ dropArReservedBits: drop });
      cpu.vmptrld(a.address);
      cpu.vmwrite(enc("GUEST_TR_AR_BYTES"), 0xffffffff);
      cpu.vmwrite(enc("GUEST_TR_LIMIT"), 0xffffffff);
      expect(cpu.vmread(enc("GUEST_TR_AR_BYTES"))).toBe(drop ? 0x1f0ff : 0xffffffff);
      expect(cpu.vmread(enc("GUEST_TR_LIMIT"))).toBe(0xffffffff);
    }
  });

  it("read a 64-bit field in halves and its _HIGH alias as 32 bits (kvm-unit-tests test_vmcs_high)", () => {
    const { cpu, a } = setup();
    cpu.vmptrld(a.address);
    const tsc = enc("TSC_OFFSET");
    cpu.vmwrite(tsc, 0x89abcdef, 0x01234567);
    expect(cpu.vmread(tsc)).toBe(0x89abcdef);
    expect(cpu.hi).toBe(0x01234567);
    expect(cpu.vmread(tsc + 1)).toBe(0x01234567);
    expect(cpu.hi).toBe(0);
    cpu.vmwrite(tsc + 1, 0x76543210, 0xdeadbeef);
    expect(cpu.vmread(tsc)).toBe(0x89abcdef);
    expect(cpu.hi).toBe(0x76543210);
  });

  it("match a map-of-BigInt model on random instruction programs (property)", () => {
    const pool = [...VMCS_FIELDS.map((f) => f.encoding), 0x0001, 0x4001, 0x6801, 0x8000, 0x1000];
    const fieldOf = new Map(VMCS_FIELDS.map((f) => [f.encoding, f]));
    const arFirst = enc("GUEST_ES_AR_BYTES");
    const arLast = enc("GUEST_TR_AR_BYTES");
    const op = fc.oneof(
      fc.record({
        kind: fc.constant("write" as const),
        encoding: fc.constantFrom(...pool),
        lo: fc.nat(),
        hi: fc.nat(),
      }),
      fc.record({ kind: fc.constant("read" as const), encoding: fc.constantFrom(...pool) }),
      fc.record({ kind: fc.constant("load" as const), which: fc.constantFrom(0, 1) }),
      fc.record({ kind: fc.constant("clear" as const), which: fc.constantFrom(0, 1) }),
    );
    fc.assert(
      fc.property(
        fc.array(op, { maxLength: 80 }),
        fc.boolean(),
        fc.boolean(),
        (ops, vmwriteAnyField, dropAr) => {
          const { cpu, meter, a, b } = setup({ vmwriteAnyField, dropArReservedBits: dropAr });
          const regions = [a, b];
          const models = [new Map<number, bigint>(), new Map<number, bigint>()];
          let current = -1;
          const counts = { VMREAD: 0, VMWRITE: 0, VMPTRLD: 0, VMCLEAR: 0 };
          const fail = (n: number): number => {
            if (current < 0) return VMX_RESULT.FAIL_INVALID;
            models[current]!.set(VM_INSTRUCTION_ERROR, BigInt(n));
            return n;
          };
          for (const o of ops) {
            if (o.kind === "load") {
              counts.VMPTRLD++;
              expect(cpu.vmptrld(regions[o.which]!.address)).toBe(VMX_RESULT.SUCCEED);
              current = o.which;
            } else if (o.kind === "clear") {
              counts.VMCLEAR++;
              expect(cpu.vmclear(regions[o.which]!.address)).toBe(VMX_RESULT.SUCCEED);
              if (current === o.which) current = -1;
            } else if (o.kind === "write") {
              counts.VMWRITE++;
              const f = fieldOf.get(o.encoding);
              let expected: number;
              if (current < 0) expected = VMX_RESULT.FAIL_INVALID;
              else if (f === undefined) expected = fail(12);
              else if (f.type === FIELD_TYPE.EXIT_INFO && !vmwriteAnyField) expected = fail(13);
              else {
                expected = VMX_RESULT.SUCCEED;
                const model = models[current]!;
                let lo = BigInt(o.lo >>> 0);
                if (dropAr && f.encoding >= arFirst && f.encoding <= arLast) lo &= 0x1f0ffn;
                const value = (BigInt(o.hi >>> 0) << 32n) | lo;
                const old = model.get(f.base) ?? 0n;
                if (f.access === ACCESS_TYPE.HIGH) model.set(f.base, (old & 0xffffffffn) | (lo << 32n));
                else if (f.width === FIELD_WIDTH.U16) model.set(f.base, value & 0xffffn);
                else if (f.width === FIELD_WIDTH.U32) model.set(f.base, value & 0xffffffffn);
                else model.set(f.base, value);
              }
              expect(cpu.vmwrite(o.encoding, o.lo, o.hi)).toBe(expected);
            } else {
              counts.VMREAD++;
              const f = fieldOf.get(o.encoding);
              const lo = cpu.vmread(o.encoding);
              if (current < 0) {
                expect(lo).toBe(-1);
                expect(cpu.status).toBe(VMX_RESULT.FAIL_INVALID);
              } else if (f === undefined) {
                expect(lo).toBe(-1);
                expect(cpu.status).toBe(fail(12));
              } else {
                const stored = models[current]!.get(f.base) ?? 0n;
                const expected = f.access === ACCESS_TYPE.HIGH ? stored >> 32n : stored;
                expect(cpu.status).toBe(VMX_RESULT.SUCCEED);
                expect((BigInt(cpu.hi) << 32n) | BigInt(lo)).toBe(expected);
              }
            }
          }
          regions.forEach((vmcs, i) => {
            for (const f of VMCS_FIELDS) {
              if (f.access === ACCESS_TYPE.HIGH) continue;
              expect(vmcs.readBig(f.encoding)).toBe(models[i]!.get(f.base) ?? 0n);
            }
          });
          expect(meter.diff({})).toEqual(
            Object.fromEntries(Object.entries({ VMXON: 1, ...counts }).filter(([, n]) => n !== 0)),
          );
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe("VM-entry basic checks and launch state (SDM 27.1)", () => {
  it("fails VMfailInvalid without a current VMCS or with a shadow VMCS current", () => {
    const { cpu } = setup();
    expect(cpu.vmentryChecks(true)).toBe(VMX_RESULT.FAIL_INVALID);
    expect(cpu.vmentryChecks(true, true)).toBe(VMX_RESULT.FAIL_INVALID);
    const shadow = cpu.createVmcs(0x8000, { shadow: true });
    cpu.vmptrld(shadow.address);
    expect(cpu.vmentryChecks(true)).toBe(VMX_RESULT.FAIL_INVALID);
    expect(cpu.vmentryChecks(false)).toBe(VMX_RESULT.FAIL_INVALID);
  });

  it("checks MOV-SS blocking before the launch state (kvm-unit-tests vmentry_movss_shadow_test)", () => {
    const { cpu, a } = setup();
    cpu.vmptrld(a.address);
    a.launchState = LAUNCH_STATE.LAUNCHED;
    expect(cpu.vmentryChecks(true, true)).toBe(26);
    expect(instructionError(cpu)).toBe(26);
  });

  it("requires a clear VMCS for VMLAUNCH and a launched one for VMRESUME", () => {
    const { cpu, a } = setup();
    cpu.vmptrld(a.address);
    expect(cpu.vmentryChecks(false)).toBe(5);
    expect(instructionError(cpu)).toBe(5);
    expect(cpu.vmentryChecks(true)).toBe(VMX_RESULT.SUCCEED);
    cpu.completeVmEntry();
    expect(a.launchState).toBe(LAUNCH_STATE.LAUNCHED);
    expect(cpu.vmentryChecks(true)).toBe(4);
    expect(cpu.vmentryChecks(false)).toBe(VMX_RESULT.SUCCEED);
    cpu.vmclear(a.address);
    cpu.vmptrld(a.address);
    expect(cpu.vmentryChecks(false)).toBe(5);
    expect(cpu.vmentryChecks(true)).toBe(VMX_RESULT.SUCCEED);
  });

  it("counts VMLAUNCH and VMRESUME whatever the outcome", () => {
    const { cpu, meter } = setup();
    const before = meter.snapshot();
    cpu.vmentryChecks(true);
    cpu.vmentryChecks(false);
    cpu.vmentryChecks(false);
    expect(meter.diff(before)).toEqual({ VMLAUNCH: 1, VMRESUME: 2 });
    expect(() => cpu.completeVmEntry()).toThrow(/without a current VMCS/);
  });
});

describe("full consistency checks after a major-control VMWRITE (seed 003)", () => {
  it("runs them on the first entry, then only after a major control was written", () => {
    const { cpu, meter, a } = setup();
    cpu.vmptrld(a.address);
    expect(cpu.noteVmEntry(a)).toBe(true);
    expect(cpu.noteVmEntry(a)).toBe(false);
    for (const field of MAJOR_CONTROL_FIELDS) {
      cpu.vmwrite(field, 0);
      expect(a.controlsDirty).toBe(true);
      expect(cpu.noteVmEntry(a)).toBe(true);
      expect(cpu.noteVmEntry(a)).toBe(false);
    }
    for (const name of [
      "TERTIARY_VM_EXEC_CONTROL",
      "EXCEPTION_BITMAP",
      "GUEST_RIP",
      "TSC_OFFSET",
      "EPT_POINTER",
    ]) {
      cpu.vmwrite(enc(name), 1);
      expect(cpu.noteVmEntry(a), name).toBe(false);
    }
    expect(meter.byName("VMCS_FULL_CONSISTENCY_CHECK")).toBe(1 + MAJOR_CONTROL_FIELDS.length);
  });

  it("tracks the mark per VMCS, ignores failed VMWRITEs, and sets it again on VMCLEAR", () => {
    const { cpu, a, b } = setup();
    cpu.noteVmEntry(a);
    cpu.noteVmEntry(b);
    cpu.vmptrld(a.address);
    cpu.vmwrite(enc("VM_ENTRY_CONTROLS"), 0x11ff);
    expect(b.controlsDirty).toBe(false);
    expect(cpu.noteVmEntry(b)).toBe(false);
    expect(cpu.noteVmEntry(a)).toBe(true);
    cpu.vmclear(a.address);
    expect(cpu.vmwrite(enc("VM_ENTRY_CONTROLS"), 0)).toBe(VMX_RESULT.FAIL_INVALID);
    expect(cpu.noteVmEntry(a)).toBe(true);
    expect(cpu.noteVmEntry(b)).toBe(false);
  });

  it("fires exactly when a major control was written since the VMCS's last entry (property)", () => {
    const major = [...MAJOR_CONTROL_FIELDS];
    const other = [
      "EXCEPTION_BITMAP",
      "GUEST_RIP",
      "TERTIARY_VM_EXEC_CONTROL",
      "VM_ENTRY_INTR_INFO_FIELD",
    ].map(enc);
    const op = fc.oneof(
      fc.record({ kind: fc.constant("write" as const), encoding: fc.constantFrom(...major, ...other) }),
      fc.record({ kind: fc.constant("entry" as const) }),
      fc.record({ kind: fc.constant("switch" as const), which: fc.constantFrom(0, 1) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const { cpu, meter, a, b } = setup();
        const regions = [a, b];
        const dirty = [true, true];
        let current = 0;
        let expectedChecks = 0;
        cpu.vmptrld(a.address);
        for (const o of ops) {
          if (o.kind === "switch") {
            cpu.vmptrld(regions[o.which]!.address);
            current = o.which;
          } else if (o.kind === "write") {
            cpu.vmwrite(o.encoding, 1);
            if (major.includes(o.encoding)) dirty[current] = true;
          } else {
            expect(cpu.noteVmEntry(regions[current]!)).toBe(dirty[current]);
            if (dirty[current]) expectedChecks++;
            dirty[current] = false;
          }
        }
        expect(meter.byName("VMCS_FULL_CONSISTENCY_CHECK")).toBe(expectedChecks);
      }),
    );
  });
});

describe("meter counts", () => {
  it("counts each executed instruction once, success or failure", () => {
    const { cpu, meter, a } = setup();
    const before = meter.snapshot();
    cpu.vmread(enc("GUEST_RIP"));
    cpu.vmptrld(a.address);
    cpu.vmptrld(0x3);
    cpu.vmwrite(enc("GUEST_RIP"), 1);
    cpu.vmwrite(0x8000, 1);
    cpu.vmread(enc("GUEST_RIP"));
    cpu.vmptrst();
    cpu.vmclear(a.address);
    cpu.vmxoff();
    expect(meter.diff(before)).toEqual({
      VMREAD: 2,
      VMPTRLD: 2,
      VMWRITE: 2,
      VMPTRST: 1,
      VMCLEAR: 1,
      VMXOFF: 1,
    });
  });

  it("uses a no-op meter by default", () => {
    const cpu = new VmcsProcessor();
    expect(cpu.vmxon(VMXON_REGION)).toBe(VMX_RESULT.SUCCEED);
    expect(cpu.meter).toBe(NOOP_METER);
  });
});
