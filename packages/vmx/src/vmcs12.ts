import {
  formatHex64,
  HOST_IS_LITTLE_ENDIAN,
  type PhysicalMemory,
  readWords,
  toBigInt64,
  writeWords,
} from "@nestvisor/x86-arch";
import { FIELD_WIDTH, type FieldWidth, formatFieldEncoding } from "./field-encoding";
import {
  DEFAULT_VMCS12_ERA,
  lookupVmcs12Offset,
  VMCS12_HEADER,
  VMCS12_REVISION,
  VMCS12_SIZE,
  VMCS12_UNSUPPORTED,
  type Vmcs12Era,
  type Vmcs12Layout,
  vmcs12Layout,
} from "./vmcs12-layout";

// vmcs12 is little-endian (x86); the typed-array views below use the host's byte order.
if (!HOST_IS_LITTLE_ENDIAN) throw new Error("Vmcs12 requires a little-endian host");
// The hot accessors below switch on FIELD_WIDTH values written as literals (a bundled module's
// constants become `var`s that V8 reloads on every use); this keeps them equal.
if (FIELD_WIDTH.U16 !== 0 || FIELD_WIDTH.U32 !== 2) throw new Error("FIELD_WIDTH values changed");

/** One stored field with its value, for display (`Vmcs12.toFields`). */
export interface Vmcs12FieldValue {
  readonly name: string;
  readonly encoding: number;
  readonly member: string;
  readonly offset: number;
  readonly width: FieldWidth;
  readonly value: bigint;
  /** The value in hex, padded to the field's width. */
  readonly text: string;
}

/**
 * vmcs12: the 4-KiB VMCS KVM keeps for L1 (kvm: `struct vmcs12`, `vmcs12_read_any`,
 * `vmcs12_write_any`), over a Uint8Array with Uint16Array and Uint32Array views of the same bytes.
 *
 * Access follows VMREAD/VMWRITE width rules as KVM applies them to vmcs12: a 16- or 32-bit field
 * (every `_HIGH` encoding included) keeps the low bits of a write and reads zero-extended; a 64-bit
 * or natural-width field is two 32-bit halves. Reads return the low half and leave the high half in
 * `hi`; nothing allocates on these paths. Which encodings exist, and where, depends on the era's
 * layout; an encoding vmcs12 does not store reads as `VMCS12_UNSUPPORTED` and is not written.
 *
 * Not modelled here: what VMREAD/VMWRITE check before touching vmcs12 (current VMCS, read-only
 * fields, the AR-byte masking of handle_vmwrite) — that belongs to the VMX instructions.
 */
export class Vmcs12 {
  readonly era: Vmcs12Era;
  readonly layout: Vmcs12Layout;
  /** High 32 bits of the last value read (0 after reading a 16- or 32-bit field). */
  hi = 0;
  readonly #bytes: Uint8Array;
  readonly #u16: Uint16Array;
  readonly #u32: Uint32Array;
  readonly #offsets: Uint16Array;

  constructor(era: Vmcs12Era = DEFAULT_VMCS12_ERA) {
    this.era = era;
    this.layout = vmcs12Layout(era);
    const buffer = new ArrayBuffer(VMCS12_SIZE);
    this.#bytes = new Uint8Array(buffer);
    this.#u16 = new Uint16Array(buffer);
    this.#u32 = new Uint32Array(buffer);
    this.#offsets = this.layout.offsets;
  }

  /** Byte offset of `encoding` in this vmcs12, or `VMCS12_UNSUPPORTED` (kvm: get_vmcs12_field_offset). */
  offsetOf(encoding: number): number {
    return lookupVmcs12Offset(this.#offsets, encoding);
  }

  /**
   * VMREAD semantics on vmcs12: returns the low 32 bits (unsigned) and sets `hi`, or returns
   * `VMCS12_UNSUPPORTED` (-1, never a valid low half) with `hi` = 0 when the encoding is not stored.
   */
  read(encoding: number): number {
    const offset = lookupVmcs12Offset(this.#offsets, encoding);
    if (offset < 0) {
      this.hi = 0;
      return VMCS12_UNSUPPORTED;
    }
    // kvm: vmcs_field_width — bit 0 set means a 32-bit access to the upper half.
    return this.readAt(
      offset,
      encoding & 1 ? 2 /* FIELD_WIDTH.U32 */ : (((encoding >>> 13) & 3) as FieldWidth),
    );
  }

  /**
   * VMWRITE semantics on vmcs12: stores `lo` (and `hi` for 64-bit and natural-width fields),
   * truncating to the field's width. Returns false, writing nothing, when the encoding is not stored.
   */
  write(encoding: number, lo: number, hi = 0): boolean {
    const offset = lookupVmcs12Offset(this.#offsets, encoding);
    if (offset < 0) return false;
    this.writeAt(
      offset,
      encoding & 1 ? 2 /* FIELD_WIDTH.U32 */ : (((encoding >>> 13) & 3) as FieldWidth),
      lo,
      hi,
    );
    return true;
  }

  /** Fast path by a precomputed offset and `vmcsFieldWidth`: returns the low half, sets `hi`. */
  readAt(offset: number, width: FieldWidth): number {
    switch (width) {
      case 0 /* FIELD_WIDTH.U16 */:
        this.hi = 0;
        return this.#u16[offset >>> 1]!;
      case 2 /* FIELD_WIDTH.U32 */:
        this.hi = 0;
        return this.#u32[offset >>> 2]!;
      default:
        this.hi = this.#u32[(offset >>> 2) + 1]!;
        return this.#u32[offset >>> 2]!;
    }
  }

  /** Fast path by a precomputed offset and `vmcsFieldWidth`; truncates like a C store of that width. */
  writeAt(offset: number, width: FieldWidth, lo: number, hi = 0): void {
    switch (width) {
      case 0 /* FIELD_WIDTH.U16 */:
        this.#u16[offset >>> 1] = lo;
        return;
      case 2 /* FIELD_WIDTH.U32 */:
        this.#u32[offset >>> 2] = lo;
        return;
      default:
        this.#u32[offset >>> 2] = lo;
        this.#u32[(offset >>> 2) + 1] = hi;
    }
  }

  /** The field's value as a BigInt (edges only). Throws a RangeError if vmcs12 does not store it. */
  readBig(encoding: number): bigint {
    const lo = this.read(encoding);
    if (lo < 0) throw new RangeError(`vmcs12 (${this.era}) has no field ${formatFieldEncoding(encoding)}`);
    return toBigInt64(lo, this.hi);
  }

  /**
   * Writes a BigInt (taken modulo 2^64, then truncated to the field's width) (edges only). Throws a
   * RangeError if vmcs12 does not store the field.
   */
  writeBig(encoding: number, value: bigint): void {
    const v = BigInt.asUintN(64, value);
    if (!this.write(encoding, Number(v & 0xffffffffn), Number(v >> 32n))) {
      throw new RangeError(`vmcs12 (${this.era}) has no field ${formatFieldEncoding(encoding)}`);
    }
  }

  /**
   * The 1024 32-bit words of vmcs12, a live view of the same bytes (for read-only fast paths such
   * as change detection, and for the field-list instructions of `VmcsProcessor`, which store as
   * `writeAt` would; other code writes through `write`/`writeAt`).
   */
  get words(): Uint32Array {
    return this.#u32;
  }

  /** The 2048 16-bit halves of vmcs12, a live view of the same bytes (16-bit fields; see `words`). */
  get halves(): Uint16Array {
    return this.#u16;
  }

  /** Revision identifier, bits 30:0 of the first word (SDM 25.2). */
  get revision(): number {
    return this.#u32[0]! & VMCS12_HEADER.REVISION_MASK;
  }

  set revision(value: number) {
    this.#u32[0] = (this.#u32[0]! & VMCS12_HEADER.SHADOW_VMCS) | (value & VMCS12_HEADER.REVISION_MASK);
  }

  /** Shadow-VMCS indicator, bit 31 of the first word (SDM 25.2). */
  get shadowVmcs(): boolean {
    return this.#u32[0]! >= VMCS12_HEADER.SHADOW_VMCS;
  }

  set shadowVmcs(value: boolean) {
    this.#u32[0] = (this.#u32[0]! & VMCS12_HEADER.REVISION_MASK) | (value ? VMCS12_HEADER.SHADOW_VMCS : 0);
  }

  /** VMX-abort indicator (SDM 25.2). */
  get abort(): number {
    return this.#u32[VMCS12_HEADER.ABORT_OFFSET >>> 2]!;
  }

  set abort(value: number) {
    this.#u32[VMCS12_HEADER.ABORT_OFFSET >>> 2] = value;
  }

  /** `LAUNCH_STATE.CLEAR` (0) or `LAUNCH_STATE.LAUNCHED` (1) (kvm: `launch_state`). */
  get launchState(): number {
    return this.#u32[VMCS12_HEADER.LAUNCH_STATE_OFFSET >>> 2]!;
  }

  set launchState(value: number) {
    this.#u32[VMCS12_HEADER.LAUNCH_STATE_OFFSET >>> 2] = value;
  }

  /** A copy of the 4096 bytes, as L1's memory holds them after KVM flushes vmcs12. */
  serialize(): Uint8Array {
    return this.#bytes.slice();
  }

  /** Overwrites all 4096 bytes from `bytes` (exactly `VMCS12_SIZE` long). */
  load(bytes: Uint8Array): void {
    if (bytes.length !== VMCS12_SIZE) {
      throw new RangeError(`a vmcs12 image is ${VMCS12_SIZE} bytes, got ${bytes.length}`);
    }
    this.#bytes.set(bytes);
  }

  /**
   * Reads the 4096-byte image at `gpa` of `memory` (kvm: kvm_read_guest of L1's VMCS page on VMPTRLD,
   * or of a shadow VMCS), as one word copy where the backend supports it (`readWords`).
   */
  readFrom(memory: PhysicalMemory, gpa: number): void {
    readWords(memory, gpa, this.#u32, 0, VMCS12_SIZE / 4);
  }

  /** Writes the 4096-byte image to `gpa` of `memory` (kvm: kvm_write_guest when vmcs12 is flushed). */
  writeTo(memory: PhysicalMemory, gpa: number): void {
    writeWords(memory, gpa, this.#u32, 0, VMCS12_SIZE / 4);
  }

  /**
   * Decodes a vmcs12 image (a dump of L1's VMCS page or the vmcs12 part of KVM_GET_NESTED_STATE).
   * Throws a RangeError if it is not 4096 bytes and an Error if bits 30:0 of its first word are not
   * `VMCS12_REVISION` (the check VMPTRLD makes; SDM Vol. 3C VMPTRLD, kvm: handle_vmptrld).
   */
  static parse(bytes: Uint8Array, era: Vmcs12Era = DEFAULT_VMCS12_ERA): Vmcs12 {
    const vmcs12 = new Vmcs12(era);
    vmcs12.load(bytes);
    if (vmcs12.revision !== VMCS12_REVISION) {
      throw new Error(
        `vmcs12 revision 0x${vmcs12.revision.toString(16)} is not KVM's 0x${VMCS12_REVISION.toString(16)}`,
      );
    }
    return vmcs12;
  }

  /** Every stored field (full encodings only, in struct order) with its value, for display. */
  toFields(): Vmcs12FieldValue[] {
    const out: Vmcs12FieldValue[] = [];
    for (const f of this.layout.fields) {
      if (f.encoding & 1) continue;
      const lo = this.readAt(f.offset, f.width);
      const hi = this.hi;
      const value = toBigInt64(lo, hi);
      const digits = f.width === FIELD_WIDTH.U16 ? 4 : f.width === FIELD_WIDTH.U32 ? 8 : 16;
      const text = digits === 16 ? formatHex64(lo, hi) : `0x${lo.toString(16).padStart(digits, "0")}`;
      out.push({
        name: f.name,
        encoding: f.encoding,
        member: f.member,
        offset: f.offset,
        width: f.width,
        value,
        text,
      });
    }
    return out;
  }
}
