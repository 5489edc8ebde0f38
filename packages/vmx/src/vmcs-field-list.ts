/**
 * A fixed list of VMCS fields that KVM moves as a block — the arrays behind copy_vmcs12_to_shadow,
 * copy_shadow_to_vmcs12, sync_vmcs02_to_vmcs12 and load_vmcs12_host_state (kvm: nested.c walks
 * such arrays in a loop, one VMREAD or VMWRITE per entry) — resolved once into parallel typed
 * arrays: the encoding, the processor's access code (slot and flags, see `vmcsAccessCode`), and the
 * field's place in vmcs12 (offset and width; -1 where vmcs12 does not store the field).
 *
 * `VmcsProcessor.vmwriteFromVmcs12`, `vmreadIntoVmcs12` and `vmwriteValues` execute a list: the same
 * instructions, with the same outcomes and counts, as one VMREAD/VMWRITE per entry in order; only
 * the model's own dispatch per entry is done once per list.
 */

import { FIELD_WIDTH, FIELD_WIDTH_BYTES, type FieldWidth, vmcsFieldWidth } from "./field-encoding";
import { ACCESS, vmcsAccessCode } from "./hardware-vmcs";
import { DEFAULT_VMCS12_ERA, lookupVmcs12Offset, type Vmcs12Era, vmcs12Layout } from "./vmcs12-layout";

/** A field given by encoding, optionally with its vmcs12 offset already known (e.g. a `ShadowField`). */
export interface VmcsFieldRef {
  readonly encoding: number;
}

export class VmcsFieldList {
  /** Field encodings, in the order the instructions run. */
  readonly encodings: Int32Array;
  /** `vmcsAccessCode` of each encoding (-1: the processor has no such field; its VMREAD/VMWRITE fails). */
  readonly codes: Int32Array;
  /** Byte offset in vmcs12 of each encoding for `era`, or -1 (kvm: get_vmcs12_field_offset). */
  readonly vmcs12Offsets: Int32Array;
  /**
   * Where each field sits in vmcs12's typed views: an index into `Vmcs12.halves` for a 16-bit field,
   * into `Vmcs12.words` otherwise (every vmcs12 field is aligned to its width), or -1.
   */
  readonly vmcs12Index: Int32Array;
  /** Access width of each encoding (kvm: vmcs_field_width; a `_HIGH` encoding is 32-bit). */
  readonly widths: Uint8Array;
  readonly length: number;
  /** The vmcs12 layout the offsets are for. */
  readonly era: Vmcs12Era;
  /** Every field exists for the processor (no VMREAD/VMWRITE of the list fails for want of a field). */
  readonly allExist: boolean;
  /** Some field is VM-exit information (its VMWRITE fails without VMWRITE-to-any support). */
  readonly hasReadOnly: boolean;

  constructor(fields: readonly (number | VmcsFieldRef)[], era: Vmcs12Era = DEFAULT_VMCS12_ERA) {
    const encodings = fields.map((f) => (typeof f === "number" ? f : f.encoding));
    for (const e of encodings) {
      if (!Number.isInteger(e) || e < 0 || e > 0xffffffff) {
        throw new RangeError(`a VMCS field list holds field encodings, got ${e}`);
      }
    }
    const offsets = vmcs12Layout(era).offsets;
    this.era = era;
    this.length = encodings.length;
    this.encodings = Int32Array.from(encodings);
    this.codes = Int32Array.from(encodings, vmcsAccessCode);
    this.vmcs12Offsets = Int32Array.from(encodings, (e) => lookupVmcs12Offset(offsets, e));
    this.widths = Uint8Array.from(encodings, (e) => vmcsFieldWidth(e) as FieldWidth);
    this.vmcs12Index = Int32Array.from(this.vmcs12Offsets, (offset, i) => {
      if (offset < 0) return -1;
      const width = this.widths[i]!;
      const size = FIELD_WIDTH_BYTES[width]!;
      // struct vmcs12 keeps each member aligned to its size (a `_HIGH` half to 4).
      if (offset % Math.min(size, 4) !== 0) throw new Error(`vmcs12 field at ${offset} is not aligned`);
      return width === FIELD_WIDTH.U16 ? offset >>> 1 : offset >>> 2;
    });
    this.allExist = this.codes.every((code) => code >= 0);
    this.hasReadOnly = this.codes.some((code) => code >= 0 && (code & ACCESS.READ_ONLY) !== 0);
  }
}
