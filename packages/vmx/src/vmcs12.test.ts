import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { fieldByName } from "./field-catalog";
import { FIELD_WIDTH, vmcsFieldWidth } from "./field-encoding";
import { Vmcs12 } from "./vmcs12";
import {
  LAUNCH_STATE,
  VMCS12_ERAS,
  VMCS12_REVISION,
  VMCS12_SIZE,
  VMCS12_UNSUPPORTED,
  type Vmcs12Era,
  vmcs12FieldOffset,
  vmcs12Layout,
} from "./vmcs12-layout";

function enc(name: string): number {
  const field = fieldByName(name);
  if (!field) throw new Error(`unknown field ${name}`);
  return field.encoding;
}

const u32 = fc.integer({ min: 0, max: 0xffffffff });

/** Index of the first byte where two images differ, or -1 (cheaper than a deep equal of 4 KiB). */
function firstDifference(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

/** Encodings that exist in an era's vmcs12, plus some that do not, for random programs. */
function encodingPool(era: Vmcs12Era): number[] {
  const stored = vmcs12Layout(era).fields.map((f) => f.encoding);
  return [...stored, enc("PLE_GAP"), enc("GUEST_IA32_RTIT_CTL"), enc("IO_RCX"), 0x681f, 0x8000, 0x1_0000];
}

/**
 * Oracle: KVM's vmcs12_write_any on a DataView with BigInt — store the 64-bit value truncated to
 * the field's width at its offset, little-endian.
 */
function oracleWrite(view: DataView, era: Vmcs12Era, encoding: number, lo: number, hi: number): void {
  const offset = vmcs12FieldOffset(encoding, era);
  if (offset < 0) return;
  const value = (BigInt(hi) << 32n) | BigInt(lo);
  switch (vmcsFieldWidth(encoding)) {
    case FIELD_WIDTH.U16:
      view.setUint16(offset, Number(value & 0xffffn), true);
      break;
    case FIELD_WIDTH.U32:
      view.setUint32(offset, Number(value & 0xffffffffn), true);
      break;
    default:
      view.setBigUint64(offset, value, true);
  }
}

/** Oracle: KVM's vmcs12_read_any — zero-extended value of the field's width. */
function oracleRead(view: DataView, era: Vmcs12Era, encoding: number): bigint | undefined {
  const offset = vmcs12FieldOffset(encoding, era);
  if (offset < 0) return undefined;
  switch (vmcsFieldWidth(encoding)) {
    case FIELD_WIDTH.U16:
      return BigInt(view.getUint16(offset, true));
    case FIELD_WIDTH.U32:
      return BigInt(view.getUint32(offset, true));
    default:
      return view.getBigUint64(offset, true);
  }
}

describe("Vmcs12 VMREAD/VMWRITE width semantics", () => {
  it("16-bit fields keep the low 16 bits and read zero-extended", () => {
    const v = new Vmcs12();
    expect(v.write(enc("GUEST_CS_SELECTOR"), 0xdead_0010, 0xffff_ffff)).toBe(true);
    expect(v.read(enc("GUEST_CS_SELECTOR"))).toBe(0x0010);
    expect(v.hi).toBe(0);
    // The neighbours are untouched.
    expect(v.read(enc("GUEST_ES_SELECTOR"))).toBe(0);
    expect(v.read(enc("GUEST_SS_SELECTOR"))).toBe(0);
  });

  it("32-bit fields keep the low 32 bits, ignore hi, and read zero-extended", () => {
    const v = new Vmcs12();
    v.write(enc("VM_EXIT_REASON"), 0x8000_0021, 0x1234);
    expect(v.read(enc("VM_EXIT_REASON"))).toBe(0x8000_0021);
    expect(v.hi).toBe(0);
  });

  it("64-bit and natural-width fields are two halves", () => {
    const v = new Vmcs12();
    v.write(enc("GUEST_RIP"), 0x8000_1000, 0xffff_ffff);
    expect(v.read(enc("GUEST_RIP"))).toBe(0x8000_1000);
    expect(v.hi).toBe(0xffff_ffff);
    v.write(enc("EPT_POINTER"), 0x1234_505e, 0x0000_0001);
    expect(v.readBig(enc("EPT_POINTER"))).toBe(0x1_1234_505en);
  });

  it("_HIGH encodings read and write the upper half as a 32-bit field", () => {
    const v = new Vmcs12();
    v.write(enc("IO_BITMAP_A"), 0x1111_1000, 0x2222_2222);
    expect(v.read(enc("IO_BITMAP_A_HIGH"))).toBe(0x2222_2222);
    expect(v.hi).toBe(0);
    expect(v.write(enc("IO_BITMAP_A_HIGH"), 0x0000_0007, 0x9999_9999)).toBe(true);
    expect(v.read(enc("IO_BITMAP_A"))).toBe(0x1111_1000);
    expect(v.hi).toBe(7);
  });

  it("unsupported encodings read as VMCS12_UNSUPPORTED and write nothing", () => {
    const v = new Vmcs12();
    const before = v.serialize();
    for (const e of [
      enc("PLE_WINDOW"),
      enc("CR3_TARGET_VALUE0"),
      enc("EXECUTIVE_VMCS_POINTER"),
      0x681f,
      0x8000,
    ]) {
      expect(v.write(e, 0xffff_ffff, 0xffff_ffff)).toBe(false);
      v.hi = 5;
      expect(v.read(e)).toBe(VMCS12_UNSUPPORTED);
      expect(v.hi).toBe(0);
      expect(() => v.readBig(e)).toThrow(RangeError);
      expect(() => v.writeBig(e, 1n)).toThrow(RangeError);
    }
    expect(firstDifference(v.serialize(), before)).toBe(-1);
  });

  it("the fast path by offset matches the encoding path", () => {
    const v = new Vmcs12();
    const rip = enc("GUEST_RIP");
    const offset = v.offsetOf(rip);
    expect(offset).toBe(544);
    v.writeAt(offset, FIELD_WIDTH.NATURAL, 0xabcd, 0x12);
    expect(v.read(rip)).toBe(0xabcd);
    expect(v.hi).toBe(0x12);
    expect(v.readAt(offset + 4, FIELD_WIDTH.U32)).toBe(0x12);
  });

  it("writeBig takes the value modulo 2^64 and truncates to the field", () => {
    const v = new Vmcs12();
    v.writeBig(enc("GUEST_CR3"), (1n << 64n) + 0x1234_5000n);
    expect(v.readBig(enc("GUEST_CR3"))).toBe(0x1234_5000n);
    v.writeBig(enc("GUEST_TR_AR_BYTES"), -1n);
    expect(v.readBig(enc("GUEST_TR_AR_BYTES"))).toBe(0xffff_ffffn);
    v.writeBig(enc("HOST_TR_SELECTOR"), 0x1_0040n);
    expect(v.readBig(enc("HOST_TR_SELECTOR"))).toBe(0x40n);
  });

  for (const era of VMCS12_ERAS) {
    it(`random VMWRITE/VMREAD programs match the DataView oracle byte for byte (${era})`, () => {
      const pool = encodingPool(era);
      const op = fc.record({ encoding: fc.constantFrom(...pool), lo: u32, hi: u32, read: fc.boolean() });
      fc.assert(
        fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
          const v = new Vmcs12(era);
          const model = new DataView(new ArrayBuffer(VMCS12_SIZE));
          for (const { encoding, lo, hi, read } of ops) {
            if (read) {
              const want = oracleRead(model, era, encoding);
              const got = v.read(encoding);
              if (want === undefined) expect(got).toBe(VMCS12_UNSUPPORTED);
              else expect((BigInt(v.hi) << 32n) | BigInt(got)).toBe(want);
            } else {
              expect(v.write(encoding, lo, hi)).toBe(vmcs12FieldOffset(encoding, era) >= 0);
              oracleWrite(model, era, encoding, lo, hi);
            }
          }
          expect(firstDifference(v.serialize(), new Uint8Array(model.buffer))).toBe(-1);
        }),
      );
    });
  }

  it("write then read returns the value truncated to the field's width, at every width", () => {
    const stored = vmcs12Layout().fields;
    fc.assert(
      fc.property(fc.constantFrom(...stored), u32, u32, (field, lo, hi) => {
        const v = new Vmcs12();
        v.write(field.encoding, lo, hi);
        const got = v.read(field.encoding);
        switch (field.width) {
          case FIELD_WIDTH.U16:
            expect([got, v.hi]).toEqual([lo & 0xffff, 0]);
            break;
          case FIELD_WIDTH.U32:
            expect([got, v.hi]).toEqual([lo, 0]);
            break;
          default:
            expect([got, v.hi]).toEqual([lo, hi]);
        }
      }),
    );
  });
});

describe("Vmcs12 header", () => {
  it("revision keeps the shadow bit, and both land in the first little-endian word", () => {
    const v = new Vmcs12();
    v.shadowVmcs = true;
    v.revision = VMCS12_REVISION;
    expect(v.shadowVmcs).toBe(true);
    expect(v.revision).toBe(VMCS12_REVISION);
    expect([...v.serialize().subarray(0, 4)]).toEqual([0xd0, 0x7e, 0xe5, 0x91]);
    v.shadowVmcs = false;
    expect(v.revision).toBe(VMCS12_REVISION);
    expect([...v.serialize().subarray(0, 4)]).toEqual([0xd0, 0x7e, 0xe5, 0x11]);
    v.revision = 0xffff_ffff;
    expect(v.revision).toBe(0x7fff_ffff);
    expect(v.shadowVmcs).toBe(false);
  });

  it("abort and launch_state are the words at 4 and 8", () => {
    const v = new Vmcs12();
    v.abort = 3;
    v.launchState = LAUNCH_STATE.LAUNCHED;
    const bytes = v.serialize();
    expect([...bytes.subarray(4, 12)]).toEqual([3, 0, 0, 0, 1, 0, 0, 0]);
    expect(v.abort).toBe(3);
    expect(v.launchState).toBe(1);
  });
});

describe("Vmcs12 serialize / parse", () => {
  it("decodes a dump assembled at KVM's offsets", () => {
    // A VMCS page as L1 would see it after VMCLEAR, written with plain little-endian stores.
    const page = new DataView(new ArrayBuffer(4096));
    page.setUint32(0, VMCS12_REVISION, true);
    page.setUint32(8, 1, true); // launch_state
    page.setBigUint64(120, 0x0000_0001_2345_605en, true); // ept_pointer
    page.setBigUint64(544, 0xffff_ffff_8100_0000n, true); // guest_rip
    page.setBigUint64(552, 0x2n, true); // guest_rflags
    page.setUint32(748, 0xb5a0_6dfa, true); // cpu_based_vm_exec_control
    page.setUint32(812, 30, true); // vm_exit_reason: I/O instruction
    page.setUint32(884, 0xa09b, true); // guest_cs_ar_bytes
    page.setUint16(966, 0x10, true); // guest_cs_selector
    page.setUint16(996, 511, true); // guest_pml_index
    const v = Vmcs12.parse(new Uint8Array(page.buffer));
    expect(v.launchState).toBe(LAUNCH_STATE.LAUNCHED);
    expect(v.shadowVmcs).toBe(false);
    expect(v.readBig(enc("EPT_POINTER"))).toBe(0x1_2345_605en);
    expect(v.readBig(enc("EPT_POINTER_HIGH"))).toBe(1n);
    expect(v.readBig(enc("GUEST_RIP"))).toBe(0xffff_ffff_8100_0000n);
    expect(v.readBig(enc("GUEST_RFLAGS"))).toBe(2n);
    expect(v.read(enc("CPU_BASED_VM_EXEC_CONTROL"))).toBe(0xb5a0_6dfa);
    expect(v.read(enc("VM_EXIT_REASON"))).toBe(30);
    expect(v.read(enc("GUEST_CS_AR_BYTES"))).toBe(0xa09b);
    expect(v.read(enc("GUEST_CS_SELECTOR"))).toBe(0x10);
    expect(v.read(enc("GUEST_PML_INDEX"))).toBe(511);
    const listed = new Map(v.toFields().map((f) => [f.name, f.text]));
    expect(listed.get("GUEST_RIP")).toBe("0xffffffff81000000");
    expect(listed.get("CPU_BASED_VM_EXEC_CONTROL")).toBe("0xb5a06dfa");
    expect(listed.get("GUEST_CS_SELECTOR")).toBe("0x0010");
  });

  it("reads a v5.3 dump's CR3-target values, which 6.12 treats as dead space", () => {
    const v = new Vmcs12("v5.3");
    v.revision = VMCS12_REVISION;
    v.writeBig(enc("CR3_TARGET_VALUE2"), 0x7000n);
    const bytes = v.serialize();
    expect(Vmcs12.parse(bytes, "v5.3").readBig(enc("CR3_TARGET_VALUE2"))).toBe(0x7000n);
    const modern = Vmcs12.parse(bytes, "v6.12");
    expect(modern.read(enc("CR3_TARGET_VALUE2"))).toBe(VMCS12_UNSUPPORTED);
    expect(firstDifference(modern.serialize(), bytes)).toBe(-1); // the dead space is preserved, just unreachable
  });

  it("parse(serialize(x)) = x", () => {
    const stored = vmcs12Layout().fields.map((f) => f.encoding);
    const writes = fc.array(fc.tuple(fc.constantFrom(...stored), u32, u32), { maxLength: 40 });
    fc.assert(
      fc.property(writes, fc.boolean(), u32, fc.integer({ min: 0, max: 1 }), (ops, shadow, abort, launch) => {
        const x = new Vmcs12();
        x.revision = VMCS12_REVISION;
        x.shadowVmcs = shadow;
        x.abort = abort;
        x.launchState = launch;
        for (const [encoding, lo, hi] of ops) x.write(encoding, lo, hi);
        const y = Vmcs12.parse(x.serialize());
        expect(firstDifference(y.serialize(), x.serialize())).toBe(-1);
        expect(y.toFields()).toEqual(x.toFields());
        expect([y.revision, y.shadowVmcs, y.abort, y.launchState]).toEqual([
          VMCS12_REVISION,
          shadow,
          abort,
          launch,
        ]);
      }),
    );
  });

  it("serialize returns a 4096-byte copy", () => {
    const v = new Vmcs12();
    const bytes = v.serialize();
    expect(bytes.length).toBe(4096);
    bytes[544] = 0xff;
    expect(v.read(enc("GUEST_RIP"))).toBe(0);
  });

  it("rejects images of the wrong size or revision", () => {
    expect(() => Vmcs12.parse(new Uint8Array(998))).toThrow(/4096 bytes/);
    expect(() => Vmcs12.parse(new Uint8Array(8192))).toThrow(RangeError);
    expect(() => Vmcs12.parse(new Uint8Array(4096))).toThrow(/revision 0x0 is not KVM's 0x11e57ed0/);
  });

  it("toFields lists every stored full field in struct order", () => {
    const v = new Vmcs12();
    const fields = v.toFields();
    expect(fields).toHaveLength(141);
    expect(fields[0]).toMatchObject({ name: "IO_BITMAP_A", member: "io_bitmap_a", offset: 40, value: 0n });
    expect(fields.at(-1)).toMatchObject({ name: "GUEST_PML_INDEX", offset: 996, text: "0x0000" });
    expect(new Vmcs12("v5.3").toFields()).toHaveLength(143);
  });
});
