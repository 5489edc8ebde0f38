import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { fieldByName, VMCS_FIELDS } from "./field-catalog";
import { ACCESS_TYPE, FIELD_WIDTH } from "./field-encoding";
import {
  HARDWARE_VMCS_SLOT_COUNT,
  HardwareVmcs,
  hardwareVmcsSlot,
  isMajorControlField,
  MAJOR_CONTROL_FIELDS,
  VMCS_REGION_HEADER,
} from "./hardware-vmcs";
import { LAUNCH_STATE } from "./vmcs12-layout";

function enc(name: string): number {
  const field = fieldByName(name);
  if (!field) throw new Error(`unknown field ${name}`);
  return field.encoding;
}

/** Encodings no processor defines: high access of non-64-bit fields, reserved bits, out of range. */
const UNSUPPORTED = [0x0001, 0x4001, 0x6801, 0x1000, 0x7fff, 0x8000, 0x1_0000, -1, 0.5];

/**
 * Oracle: a map from a field's full encoding to its 64-bit value, with the SDM's width rules
 * (SDM 25.11.2, 31.3 VMREAD/VMWRITE): narrower fields keep the low bits; a high access touches
 * bits 63:32 of its 64-bit field only.
 */
class MapVmcs {
  readonly values = new Map<number, bigint>();

  write(encoding: number, value: bigint): boolean {
    const field = VMCS_FIELDS.find((f) => f.encoding === encoding);
    if (!field) return false;
    const old = this.values.get(field.base) ?? 0n;
    if (field.access === ACCESS_TYPE.HIGH) {
      this.values.set(field.base, (old & 0xffffffffn) | (BigInt.asUintN(32, value) << 32n));
    } else {
      const bits = field.width === FIELD_WIDTH.U16 ? 16 : field.width === FIELD_WIDTH.U32 ? 32 : 64;
      this.values.set(field.base, BigInt.asUintN(bits, value));
    }
    return true;
  }

  read(encoding: number): bigint | undefined {
    const field = VMCS_FIELDS.find((f) => f.encoding === encoding);
    if (!field) return undefined;
    const value = this.values.get(field.base) ?? 0n;
    return field.access === ACCESS_TYPE.HIGH ? value >> 32n : value;
  }
}

describe("hardware VMCS slots", () => {
  it("has one slot per full encoding of the catalog", () => {
    const full = VMCS_FIELDS.filter((f) => f.access === ACCESS_TYPE.FULL);
    expect(HARDWARE_VMCS_SLOT_COUNT).toBe(full.length);
    const slots = new Set(full.map((f) => hardwareVmcsSlot(f.encoding)));
    expect(slots.size).toBe(full.length);
    for (const slot of slots) {
      expect(slot).toBeGreaterThanOrEqual(0);
      expect(slot).toBeLessThan(HARDWARE_VMCS_SLOT_COUNT);
    }
  });

  it("maps a _HIGH encoding to its 64-bit field's slot", () => {
    for (const f of VMCS_FIELDS.filter((f) => f.access === ACCESS_TYPE.HIGH)) {
      expect(hardwareVmcsSlot(f.encoding)).toBe(hardwareVmcsSlot(f.base));
    }
    expect(hardwareVmcsSlot(enc("TSC_OFFSET_HIGH"))).toBe(hardwareVmcsSlot(enc("TSC_OFFSET")));
  });

  it("has no slot for encodings the catalog does not know", () => {
    for (const e of UNSUPPORTED) expect(hardwareVmcsSlot(e), String(e)).toBe(-1);
  });

  it("names the five major controls of seed 003", () => {
    expect([...MAJOR_CONTROL_FIELDS].sort((a, b) => a - b)).toEqual([0x4000, 0x4002, 0x400c, 0x4012, 0x401e]);
    for (const e of MAJOR_CONTROL_FIELDS) expect(isMajorControlField(e)).toBe(true);
    expect(isMajorControlField(enc("TERTIARY_VM_EXEC_CONTROL"))).toBe(false);
    expect(isMajorControlField(enc("EXCEPTION_BITMAP"))).toBe(false);
    expect(isMajorControlField(0x8000)).toBe(false);
  });
});

describe("HardwareVmcs", () => {
  it("starts clear, dirty and zeroed, with the revision software wrote", () => {
    const vmcs = new HardwareVmcs(0x5000, { revision: 4 });
    expect(vmcs.address).toBe(0x5000);
    expect(vmcs.launchState).toBe(LAUNCH_STATE.CLEAR);
    expect(vmcs.controlsDirty).toBe(true);
    expect(vmcs.shadow).toBe(false);
    expect(vmcs.revisionWord).toBe(4);
    expect(vmcs.read(enc("GUEST_RIP"))).toBe(0);
    expect(vmcs.hi).toBe(0);
  });

  it("puts the shadow indicator in bit 31 of the first word (SDM 25.10)", () => {
    const shadow = new HardwareVmcs(0x6000, { revision: 4, shadow: true });
    expect(shadow.revisionWord).toBe((VMCS_REGION_HEADER.SHADOW_VMCS | 4) >>> 0);
    const masked = new HardwareVmcs(0x7000, { revision: 0xffffffff });
    expect(masked.revision).toBe(0x7fffffff);
    expect(masked.describe()).toMatch(/^VMCS @ 0x0000000000007000 rev 0x7fffffff$/);
    expect(shadow.describe()).toMatch(/^shadow VMCS/);
  });

  it("rejects region addresses that are not 4-KiB aligned physical addresses", () => {
    expect(() => new HardwareVmcs(0x5001, { revision: 4 })).toThrow(RangeError);
    expect(() => new HardwareVmcs(-4096, { revision: 4 })).toThrow(RangeError);
    expect(() => new HardwareVmcs(2 ** 60, { revision: 4 })).toThrow(RangeError);
    expect(new HardwareVmcs(2 ** 51, { revision: 4 }).address).toBe(2 ** 51);
  });

  it("stores 64-bit fields in two halves and serves _HIGH from the upper one (kvm-unit-tests test_vmcs_high)", () => {
    const vmcs = new HardwareVmcs(0x1000, { revision: 4 });
    vmcs.writeBig(enc("TSC_OFFSET"), 0x0123456789abcdefn);
    expect(vmcs.readBig(enc("TSC_OFFSET"))).toBe(0x0123456789abcdefn);
    expect(vmcs.readBig(enc("TSC_OFFSET_HIGH"))).toBe(0x01234567n);
    vmcs.write(enc("TSC_OFFSET_HIGH"), 0x76543210, 0xffffffff);
    expect(vmcs.readBig(enc("TSC_OFFSET"))).toBe(0x7654321089abcdefn);
    expect(vmcs.read(enc("TSC_OFFSET_HIGH"))).toBe(0x76543210);
    expect(vmcs.hi).toBe(0);
  });

  it("truncates 16- and 32-bit writes and zero-extends their reads", () => {
    const vmcs = new HardwareVmcs(0x1000, { revision: 4 });
    vmcs.write(enc("GUEST_CS_SELECTOR"), 0x12345678, 0xffffffff);
    expect(vmcs.read(enc("GUEST_CS_SELECTOR"))).toBe(0x5678);
    expect(vmcs.hi).toBe(0);
    vmcs.write(enc("GUEST_CS_LIMIT"), -1, 0xffffffff);
    expect(vmcs.read(enc("GUEST_CS_LIMIT"))).toBe(0xffffffff);
    expect(vmcs.hi).toBe(0);
    vmcs.writeBig(enc("GUEST_RIP"), -1n);
    expect(vmcs.readBig(enc("GUEST_RIP"))).toBe(0xffffffffffffffffn);
  });

  it("refuses encodings it has no field for", () => {
    const vmcs = new HardwareVmcs(0x1000, { revision: 4 });
    for (const e of UNSUPPORTED) {
      expect(vmcs.write(e, 1, 1)).toBe(false);
      expect(vmcs.read(e)).toBe(-1);
      expect(vmcs.hi).toBe(0);
    }
    expect(() => vmcs.readBig(0x8000)).toThrow(RangeError);
    expect(() => vmcs.writeBig(0x4001, 1n)).toThrow(RangeError);
  });

  it("clears its fields", () => {
    const vmcs = new HardwareVmcs(0x1000, { revision: 4 });
    vmcs.writeBig(enc("EPT_POINTER"), 0x1234_5678_9000n);
    vmcs.clearFields();
    expect(vmcs.readBig(enc("EPT_POINTER"))).toBe(0n);
  });

  it("matches a map-of-BigInt model on random write/read programs (property)", () => {
    const pool = [...VMCS_FIELDS.map((f) => f.encoding), ...UNSUPPORTED];
    const op = fc.record({
      write: fc.boolean(),
      encoding: fc.constantFrom(...pool),
      value: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
    });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 120 }), (ops) => {
        const vmcs = new HardwareVmcs(0x1000, { revision: 4 });
        const model = new MapVmcs();
        for (const { write, encoding, value } of ops) {
          if (write) {
            const ok = vmcs.write(encoding, Number(value & 0xffffffffn), Number(value >> 32n));
            expect(ok).toBe(model.write(encoding, value));
          } else {
            const lo = vmcs.read(encoding);
            const expected = model.read(encoding);
            if (expected === undefined) expect(lo).toBe(-1);
            else expect((BigInt(vmcs.hi) << 32n) | BigInt(lo)).toBe(expected);
          }
        }
        for (const f of VMCS_FIELDS) expect(vmcs.readBig(f.encoding)).toBe(model.read(f.encoding));
      }),
    );
  });
});
