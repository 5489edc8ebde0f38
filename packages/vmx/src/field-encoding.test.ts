import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  ACCESS_TYPE,
  decodeFieldEncoding,
  encodeFieldEncoding,
  encodingOfVmcs12Slot,
  FIELD_TYPE,
  FIELD_WIDTH,
  type FieldType,
  type FieldWidth,
  fieldIndex,
  fieldType,
  fieldWidthBits,
  formatFieldEncoding,
  isReadOnlyField,
  isWellFormedEncoding,
  reservedEncodingBits,
  rol16,
  vmcs12Slot,
  vmcsFieldWidth,
} from "./field-encoding";

const parts = fc.record({
  access: fc.constantFrom(ACCESS_TYPE.FULL, ACCESS_TYPE.HIGH),
  index: fc.integer({ min: 0, max: 0x1ff }),
  type: fc.constantFrom<FieldType>(0, 1, 2, 3),
  width: fc.constantFrom<FieldWidth>(0, 1, 2, 3),
});

describe("encode/decode", () => {
  it("packs the SDM examples", () => {
    // GUEST_RIP: guest state, natural width, index 15.
    expect(
      encodeFieldEncoding({ access: 0, index: 15, type: FIELD_TYPE.GUEST, width: FIELD_WIDTH.NATURAL }),
    ).toBe(0x681e);
    // IO_BITMAP_A_HIGH: control, 64-bit, index 0, high access.
    expect(
      encodeFieldEncoding({ access: 1, index: 0, type: FIELD_TYPE.CONTROL, width: FIELD_WIDTH.U64 }),
    ).toBe(0x2001);
    // VM_EXIT_REASON: exit information, 32-bit, index 1.
    expect(decodeFieldEncoding(0x4402)).toEqual({ access: 0, index: 1, type: 1, width: 2, reserved: 0 });
  });

  it("decode(encode(parts)) = parts", () => {
    fc.assert(
      fc.property(parts, (p) => {
        expect(decodeFieldEncoding(encodeFieldEncoding(p))).toEqual({ ...p, reserved: 0 });
      }),
    );
  });

  it("encode(decode(e)) = e for every encoding with no reserved bit", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0x7fff }), (raw) => {
        const e = raw & ~0x1000;
        const { reserved, ...rest } = decodeFieldEncoding(e);
        expect(reserved).toBe(0);
        expect(encodeFieldEncoding(rest)).toBe(e);
      }),
    );
  });

  it("reports reserved bits 12, 15 and 31:16", () => {
    expect(reservedEncodingBits(0x1000)).toBe(0x1000);
    expect(reservedEncodingBits(0x8000)).toBe(0x8000);
    expect(reservedEncodingBits(0x8000_681e)).toBe(0x8000_0000);
    expect(reservedEncodingBits(0x8001_681e)).toBe(0x8001_0000);
    expect(reservedEncodingBits(0x681e)).toBe(0);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), (e) => {
        const { access, index, type, width, reserved } = decodeFieldEncoding(e);
        // The parts and the reserved bits together give back the encoding.
        expect(((access | (index << 1) | (type << 10) | (width << 13)) + reserved) >>> 0).toBe(e);
      }),
    );
  });

  it("rejects parts out of range", () => {
    expect(() => encodeFieldEncoding({ access: 0, index: 512, type: 0, width: 0 })).toThrow(RangeError);
    expect(() => encodeFieldEncoding({ access: 0, index: -1, type: 0, width: 0 })).toThrow(RangeError);
    expect(() => encodeFieldEncoding({ access: 0, index: 0, type: 4 as FieldType, width: 0 })).toThrow(
      RangeError,
    );
    expect(() => encodeFieldEncoding({ access: 0, index: 0, type: 0, width: 7 as FieldWidth })).toThrow(
      RangeError,
    );
  });
});

describe("KVM helpers", () => {
  it("vmcs_field_width: _HIGH encodings are 32-bit, others use bits 14:13", () => {
    expect(vmcsFieldWidth(0x2001)).toBe(FIELD_WIDTH.U32);
    expect(fieldWidthBits(0x2001)).toBe(FIELD_WIDTH.U64);
    expect(vmcsFieldWidth(0x2000)).toBe(FIELD_WIDTH.U64);
    expect(vmcsFieldWidth(0x0800)).toBe(FIELD_WIDTH.U16);
    expect(vmcsFieldWidth(0x4402)).toBe(FIELD_WIDTH.U32);
    expect(vmcsFieldWidth(0x681e)).toBe(FIELD_WIDTH.NATURAL);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0x7fff }), (e) => {
        expect(vmcsFieldWidth(e)).toBe(e & 1 ? FIELD_WIDTH.U32 : fieldWidthBits(e));
      }),
    );
  });

  it("vmcs_field_readonly: only the exit-information type", () => {
    expect(isReadOnlyField(0x4402)).toBe(true); // VM_EXIT_REASON
    expect(isReadOnlyField(0x2400)).toBe(true); // GUEST_PHYSICAL_ADDRESS
    expect(isReadOnlyField(0x2401)).toBe(true); // GUEST_PHYSICAL_ADDRESS_HIGH
    expect(isReadOnlyField(0x6400)).toBe(true); // EXIT_QUALIFICATION
    expect(isReadOnlyField(0x4000)).toBe(false); // PIN_BASED_VM_EXEC_CONTROL
    expect(isReadOnlyField(0x681e)).toBe(false); // GUEST_RIP
    expect(isReadOnlyField(0x6c16)).toBe(false); // HOST_RIP
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0x7fff }), (e) => {
        expect(isReadOnlyField(e)).toBe(fieldType(e) === FIELD_TYPE.EXIT_INFO);
      }),
    );
  });

  it("vmcs_field_index is bits 9:1", () => {
    expect(fieldIndex(0x482e)).toBe(0x17); // VMX_PREEMPTION_TIMER_VALUE
    expect(fieldIndex(0x2033)).toBe(0x19); // TSC_MULTIPLIER_HIGH
    expect(fieldIndex(0x2042)).toBe(0x21); // PID_POINTER_TABLE
  });

  it("ROL16(encoding, 6) gives KVM's vmcs12 slot", () => {
    const examples: [number, number][] = [
      [0x0000, 0],
      [0x0800, 2],
      [0x2000, 8],
      [0x2001, 72],
      [0x4000, 16],
      [0x4400, 17],
      [0x6c16, 1435],
      [0x2033, 3272],
    ];
    for (const [encoding, slot] of examples)
      expect(vmcs12Slot(encoding), formatFieldEncoding(encoding)).toBe(slot);
  });

  it("ROL16(slot, 10) undoes ROL16(encoding, 6) over all 16-bit values", () => {
    for (let v = 0; v < 0x10000; v++) {
      if (encodingOfVmcs12Slot(vmcs12Slot(v)) !== v) expect.fail(`round trip failed at ${v}`);
    }
    expect(rol16(0x8001, 1)).toBe(0x0003);
    expect(rol16(0x1234, 0)).toBe(0x1234);
    expect(rol16(0x1234, 16)).toBe(0x1234);
  });
});

describe("well-formedness", () => {
  it("accepts the high access type only on 64-bit fields", () => {
    expect(isWellFormedEncoding(0x2001)).toBe(true);
    expect(isWellFormedEncoding(0x681f)).toBe(false); // GUEST_RIP with access type high
    expect(isWellFormedEncoding(0x4403)).toBe(false);
    expect(isWellFormedEncoding(0x0801)).toBe(false);
  });

  it("rejects reserved bits and values that are not 32-bit unsigned integers", () => {
    expect(isWellFormedEncoding(0x1000)).toBe(false);
    expect(isWellFormedEncoding(0x8000)).toBe(false);
    expect(isWellFormedEncoding(0x1_0000)).toBe(false);
    expect(isWellFormedEncoding(-2)).toBe(false);
    expect(isWellFormedEncoding(2 ** 32)).toBe(false);
    expect(isWellFormedEncoding(1.5)).toBe(false);
  });

  it("formats encodings with at least four hex digits", () => {
    expect(formatFieldEncoding(0x2)).toBe("0x0002");
    expect(formatFieldEncoding(0x6c16)).toBe("0x6c16");
    expect(formatFieldEncoding(0x1_0000)).toBe("0x10000");
  });
});
