/**
 * A hardware VMCS: the 4-KiB region a logical processor manages for VMX (vmcs01, vmcs02, or a
 * shadow VMCS), as far as software can observe it (SDM Vol. 3C 25.1–25.2, 25.10, 25.11).
 *
 * The SDM leaves the in-memory format of a VMCS to the implementation (SDM 25.2: only the revision
 * identifier, the shadow-VMCS indicator and the VMX-abort indicator have fixed places), so fields
 * are held in a Uint32Array indexed by a dense slot, one slot (two words: low, high) per full
 * encoding of the field catalog. A `_HIGH` encoding addresses the high word of its 64-bit field's
 * slot. Which encodings exist is the field catalog's answer (every field the SDM defines); an
 * encoding it lacks has no slot, and VMREAD/VMWRITE of it fail with error 12 (`VmcsProcessor`).
 *
 * This class is storage plus the software-visible state of a region: its address, revision
 * identifier, shadow-VMCS indicator, launch state, and whether a major control was written since its
 * last VM entry (seed 003). The VMX instructions that act on it are `VmcsProcessor`'s.
 */

import { formatHex64, toBigInt64 } from "@nestvisor/x86-arch";
import { fieldByName, VMCS_FIELDS } from "./field-catalog";
import { ACCESS_TYPE, FIELD_TYPE, FIELD_WIDTH, formatFieldEncoding } from "./field-encoding";
import { LAUNCH_STATE } from "./vmcs12-layout";

/** Launch state of a VMCS (SDM 25.1): clear after VMCLEAR, launched after a successful VMLAUNCH. */
export type LaunchState = (typeof LAUNCH_STATE)[keyof typeof LAUNCH_STATE];

/** First word of a VMCS region (SDM 25.2). */
export const VMCS_REGION_HEADER = {
  REVISION_MASK: 0x7fffffff,
  /** Bit 31: shadow-VMCS indicator (SDM 25.10). */
  SHADOW_VMCS: 0x80000000,
} as const;

/** Bytes of a VMCS region and its alignment (SDM 25.2: IA32_VMX_BASIC[44:32] ≤ 4096, 4-KiB aligned). */
export const VMCS_REGION_SIZE = 0x1000;

// An access code per encoding: slot << 6 | flags. The low 3 bits say how to access the slot.
const KIND_MASK = 7;
/** Access kinds 0..3 are FIELD_WIDTH (U16, U64, U32, NATURAL); 4 is the high half of a 64-bit field. */
const KIND_HIGH = 4;
// `storeField` switches on these kinds written as literals (a bundled module's constants become
// `var`s that V8 reloads on every use); this keeps them equal.
if (FIELD_WIDTH.U16 !== 0 || FIELD_WIDTH.U32 !== 2 || KIND_HIGH !== 4)
  throw new Error("access kinds changed");
/** A "major" control (seed 003): writing it makes the next VM entry run every check. */
const FLAG_MAJOR_CONTROL = 8;
/** A guest segment access-rights field (0x4814–0x4822). */
const FLAG_AR_BYTES = 16;
/** The VM-exit information type (bits 11:10 = 1), read-only unless VMWRITE-to-any is supported. */
const FLAG_READ_ONLY = 32;
const SLOT_SHIFT = 6;
if (SLOT_SHIFT !== 6 || KIND_MASK !== 7) throw new Error("access-code layout changed");
/** Encodings use bits 14:0; bit 15 and above are reserved (SDM 25.11.2). */
const ENCODING_SPACE = 0x8000;

function encodingOf(name: string): number {
  const field = fieldByName(name);
  if (field === undefined) throw new Error(`field catalog lacks ${name}`);
  return field.encoding;
}

/**
 * The five control fields whose VMWRITE marks the whole cached VMCS dirty, so that the next VM entry
 * performs all consistency checks (seed 003 cover letter, "Reduce VMWRITEs to VMCS controls":
 * vm_entry, vm_exit, pin, exec and sec_exec). The tertiary controls postdate that series and the
 * seed does not name them, so they are not included.
 */
export const MAJOR_CONTROL_FIELDS: readonly number[] = Object.freeze([
  encodingOf("PIN_BASED_VM_EXEC_CONTROL"),
  encodingOf("CPU_BASED_VM_EXEC_CONTROL"),
  encodingOf("SECONDARY_VM_EXEC_CONTROL"),
  encodingOf("VM_ENTRY_CONTROLS"),
  encodingOf("VM_EXIT_CONTROLS"),
]);

const AR_BYTES_FIRST = encodingOf("GUEST_ES_AR_BYTES");
const AR_BYTES_LAST = encodingOf("GUEST_TR_AR_BYTES");

/** Access code per encoding (-1 = no such field), and the number of slots. */
const ACCESS_CODE = new Int32Array(ENCODING_SPACE).fill(-1);
let slotCount = 0;
{
  const slotOfBase = new Map<number, number>();
  for (const field of VMCS_FIELDS) {
    if (field.access === ACCESS_TYPE.FULL) slotOfBase.set(field.encoding, slotCount++);
  }
  for (const field of VMCS_FIELDS) {
    const slot = slotOfBase.get(field.base);
    if (slot === undefined) throw new Error(`no full field for ${field.name}`);
    let flags = field.access === ACCESS_TYPE.HIGH ? KIND_HIGH : field.width;
    if (MAJOR_CONTROL_FIELDS.includes(field.encoding)) flags |= FLAG_MAJOR_CONTROL;
    if (field.encoding >= AR_BYTES_FIRST && field.encoding <= AR_BYTES_LAST) flags |= FLAG_AR_BYTES;
    if (field.type === FIELD_TYPE.EXIT_INFO) flags |= FLAG_READ_ONLY;
    ACCESS_CODE[field.encoding] = (slot << SLOT_SHIFT) | flags;
  }
}

/** Number of field slots in a hardware VMCS (one per full encoding of the field catalog). */
export const HARDWARE_VMCS_SLOT_COUNT = slotCount;

/** Dense slot of a field (a `_HIGH` encoding shares its full field's slot), or -1 if there is no such field. */
export function hardwareVmcsSlot(encoding: number): number {
  if ((encoding & (ENCODING_SPACE - 1)) !== encoding) return -1;
  const code = ACCESS_CODE[encoding]!;
  return code < 0 ? -1 : code >>> SLOT_SHIFT;
}

/**
 * The access code of an encoding for `VmcsProcessor`'s hot paths: `-1` when the field does not
 * exist, else slot and flags (see the `ACCESS_*` constants). Not part of the package API.
 */
export function vmcsAccessCode(encoding: number): number {
  return (encoding & (ENCODING_SPACE - 1)) === encoding ? ACCESS_CODE[encoding]! : -1;
}

/** Decoding of `vmcsAccessCode` values (internal to the package's VMX instruction code). */
export const ACCESS = {
  KIND_MASK,
  KIND_HIGH,
  MAJOR_CONTROL: FLAG_MAJOR_CONTROL,
  AR_BYTES: FLAG_AR_BYTES,
  READ_ONLY: FLAG_READ_ONLY,
  SLOT_SHIFT,
} as const;

/** True for the five major control fields of seed 003. */
export function isMajorControlField(encoding: number): boolean {
  const code = vmcsAccessCode(encoding);
  return code >= 0 && (code & FLAG_MAJOR_CONTROL) !== 0;
}

/** Options for a new region: what software wrote into its first word before VMPTRLD (SDM 25.2). */
export interface HardwareVmcsOptions {
  /** Revision identifier (bits 30:0). */
  readonly revision: number;
  /** Shadow-VMCS indicator (bit 31); default false. */
  readonly shadow?: boolean;
}

/** A hardware VMCS region: field storage plus its software-visible state. */
export class HardwareVmcs {
  /** Physical address of the region (4-KiB aligned). */
  readonly address: number;
  /** Revision identifier written by software (SDM 25.2); VMPTRLD compares it with the processor's. */
  revision: number;
  /** Shadow-VMCS indicator, bit 31 of the first word (SDM 25.10). */
  shadow: boolean;
  /** `LAUNCH_STATE.CLEAR` or `LAUNCH_STATE.LAUNCHED` (SDM 25.1). A new region is clear (assumed VMCLEARed). */
  launchState: LaunchState = LAUNCH_STATE.CLEAR;
  /**
   * A major control field was written (or the VMCS has not been entered since it was cleared), so the
   * next VM entry runs every consistency check (seed 003; `VmcsProcessor.noteVmEntry`).
   */
  controlsDirty = true;
  /** High 32 bits of the last `read` (0 after a 16- or 32-bit field or a `_HIGH` access). */
  hi = 0;
  /**
   * Field storage: slot s holds its low word at 2s and its high word at 2s+1. The high word of a 16-
   * or 32-bit field is always 0. For the VMX instruction and VM-entry/exit code of this package.
   */
  readonly data: Uint32Array;

  constructor(address: number, options: HardwareVmcsOptions) {
    if (!Number.isSafeInteger(address) || address < 0 || address % VMCS_REGION_SIZE !== 0) {
      throw new RangeError(`a VMCS region address must be a 4-KiB-aligned physical address, got ${address}`);
    }
    this.address = address;
    this.revision = options.revision & VMCS_REGION_HEADER.REVISION_MASK;
    this.shadow = options.shadow ?? false;
    this.data = new Uint32Array(HARDWARE_VMCS_SLOT_COUNT * 2);
  }

  /** The first word of the region: revision identifier plus shadow indicator (SDM 25.2). */
  get revisionWord(): number {
    return (this.revision | (this.shadow ? VMCS_REGION_HEADER.SHADOW_VMCS : 0)) >>> 0;
  }

  /**
   * Reads a field as the processor stores it: returns the low 32 bits (unsigned) and sets `hi`, or
   * returns -1 (with `hi` = 0) when no such field exists. A `_HIGH` encoding returns the high word
   * (SDM 25.11.2). No instruction semantics: this is the processor's own access (e.g. VM entry).
   */
  read(encoding: number): number {
    const code = vmcsAccessCode(encoding);
    if (code < 0) {
      this.hi = 0;
      return -1;
    }
    const i = (code >>> SLOT_SHIFT) << 1;
    if ((code & KIND_MASK) === KIND_HIGH) {
      this.hi = 0;
      return this.data[i + 1]!;
    }
    this.hi = this.data[i + 1]!;
    return this.data[i]!;
  }

  /**
   * Stores a field as the processor does (e.g. VM exit saving exit information): truncates to the
   * field's width; a `_HIGH` encoding stores `lo` into the high word only. Returns false, storing
   * nothing, when no such field exists. No read-only check and no dirty tracking.
   */
  write(encoding: number, lo: number, hi = 0): boolean {
    const code = vmcsAccessCode(encoding);
    if (code < 0) return false;
    storeField(this.data, code, lo, hi);
    return true;
  }

  /** A field's value as a BigInt (edges only). Throws a RangeError if there is no such field. */
  readBig(encoding: number): bigint {
    const lo = this.read(encoding);
    if (lo < 0) throw new RangeError(`no VMCS field ${formatFieldEncoding(encoding)}`);
    return toBigInt64(lo, this.hi);
  }

  /** Stores a BigInt (mod 2^64, then truncated to the width) (edges only). Throws if there is no such field. */
  writeBig(encoding: number, value: bigint): void {
    const v = BigInt.asUintN(64, value);
    if (!this.write(encoding, Number(v & 0xffffffffn), Number(v >> 32n))) {
      throw new RangeError(`no VMCS field ${formatFieldEncoding(encoding)}`);
    }
  }

  /** Sets every field to 0 (the state KVM assumes of a freshly allocated, VMCLEARed region). */
  clearFields(): void {
    this.data.fill(0);
  }

  /** `0x…` address, revision and shadow flag, for messages. */
  describe(): string {
    const kind = this.shadow ? "shadow VMCS" : "VMCS";
    return `${kind} @ ${formatHex64(this.address >>> 0, Math.floor(this.address / 2 ** 32))} rev 0x${this.revision.toString(16)}`;
  }
}

/** Width-correct store by access code (shared with `VmcsProcessor.vmwrite`). */
export function storeField(data: Uint32Array, code: number, lo: number, hi: number): void {
  const i = (code >>> 6) << 1; // SLOT_SHIFT
  switch (code & 7 /* KIND_MASK */) {
    case 0 /* FIELD_WIDTH.U16 */:
      data[i] = lo & 0xffff;
      return;
    case 2 /* FIELD_WIDTH.U32 */:
      data[i] = lo;
      return;
    case 4 /* KIND_HIGH */:
      data[i + 1] = lo;
      return;
    default:
      data[i] = lo;
      data[i + 1] = hi;
  }
}
