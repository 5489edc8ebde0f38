/**
 * The VMCS-related state of one logical processor in VMX root operation, and the VMX instructions
 * that act on it as hardware executes them (SDM Vol. 3C 31.3, "VMX Instructions": VMXON, VMXOFF,
 * VMPTRLD, VMPTRST, VMCLEAR, VMREAD, VMWRITE; 27.1 for the basic checks of VMLAUNCH/VMRESUME).
 *
 * Outcomes are `VmxResult` numbers (0 VMsucceed, -1 VMfailInvalid, n > 0 VMfailValid(n)); VMfailValid
 * also writes n into the current VMCS's VM-instruction-error field, as the SDM's VMfail(n) does.
 * Every executed instruction is counted on the injected `Meter`, whether it succeeds or fails.
 *
 * Modelled: the current-VMCS and VMXON pointers, address checks against MAXPHYADDR, revision and
 * shadow-indicator checks, launch states, width semantics of VMREAD/VMWRITE, the read-only exit-
 * information fields (IA32_VMX_MISC bit 29), and seed 003's dirty-controls rule.
 * Not modelled: the faults (#UD outside VMX operation or in the wrong mode, #GP at CPL > 0, memory-
 * operand faults) — calling an instruction outside VMX operation throws, a bug in the caller;
 * VMX non-root behaviour (VM exits, shadow-VMCS access through the link pointer), which belongs to the
 * CPU that runs guests; SMM/dual-monitor errors; copying a VMCS region's bytes in memory.
 */

import { MODERN_CPU } from "@nestvisor/x86-arch";
import { fieldByName } from "./field-catalog";
import { FIELD_WIDTH, type FieldWidth } from "./field-encoding";
import {
  ACCESS,
  HardwareVmcs,
  type HardwareVmcsOptions,
  hardwareVmcsSlot,
  storeField,
  VMCS_REGION_HEADER,
  VMCS_REGION_SIZE,
  vmcsAccessCode,
} from "./hardware-vmcs";
import { type Meter, meterTable, NOOP_METER } from "./meter";
import { VM_INSTRUCTION_ERROR } from "./vm-instruction-error";
import type { VmcsFieldList } from "./vmcs-field-list";
import type { Vmcs12 } from "./vmcs12";
import { LAUNCH_STATE } from "./vmcs12-layout";
import { VMX_EVENTS } from "./vmx-events";
import { VMX_RESULT, type VmxResult } from "./vmx-result";

/** What VMPTRST stores when there is no current VMCS (SDM 31.3 VMPTRST: FFFFFFFF_FFFFFFFFH). */
export const INVALID_VMCS_POINTER = -1;

/**
 * Default VMCS revision identifier (IA32_VMX_BASIC[30:0]). Assumption: 4 is what recent Intel server
 * and client cores report; any value works as long as software writes the same one into its regions.
 */
export const DEFAULT_VMCS_REVISION_ID = 4;

/** VM-instruction error numbers (SDM 31.4). */
const ERR = VM_INSTRUCTION_ERROR;

/** Slot of VM_INSTRUCTION_ERROR (encoding 0x4400), where VMfailValid records its number. */
const VM_INSTRUCTION_ERROR_SLOT = hardwareVmcsSlot(fieldByName("VM_INSTRUCTION_ERROR")!.encoding);

// The access-code layout of `hardware-vmcs.ts` (ACCESS) and two FIELD_WIDTH values as literal
// constants: V8 folds a literal module constant into the hot loops below, but reloads one that is
// computed from an object. The check under them keeps the copies honest.
const A_SLOT_SHIFT = 6;
const A_KIND_MASK = 7;
const A_KIND_HIGH = 4;
const A_MAJOR_CONTROL = 8;
const A_AR_BYTES = 16;
const A_READ_ONLY = 32;
const K_U16 = 0;
const K_U32 = 2;
if (
  A_SLOT_SHIFT !== ACCESS.SLOT_SHIFT ||
  A_KIND_MASK !== ACCESS.KIND_MASK ||
  A_KIND_HIGH !== ACCESS.KIND_HIGH ||
  A_MAJOR_CONTROL !== ACCESS.MAJOR_CONTROL ||
  A_AR_BYTES !== ACCESS.AR_BYTES ||
  A_READ_ONLY !== ACCESS.READ_ONLY ||
  K_U16 !== FIELD_WIDTH.U16 ||
  K_U32 !== FIELD_WIDTH.U32
) {
  throw new Error("vmcs-processor's access-code constants disagree with hardware-vmcs.ts");
}

/** Mask of the access-rights bits some Intel CPUs keep on VMWRITE (kvm: handle_vmwrite comment, 0x1f0ff). */
const AR_BYTES_STORED = 0x1f0ff;

const EV_VMXON = VMX_EVENTS.VMXON;
const EV_VMXOFF = VMX_EVENTS.VMXOFF;
const EV_VMCLEAR = VMX_EVENTS.VMCLEAR;
const EV_VMPTRLD = VMX_EVENTS.VMPTRLD;
const EV_VMPTRST = VMX_EVENTS.VMPTRST;
const EV_VMREAD = VMX_EVENTS.VMREAD;
const EV_VMWRITE = VMX_EVENTS.VMWRITE;
const EV_VMLAUNCH = VMX_EVENTS.VMLAUNCH;
const EV_VMRESUME = VMX_EVENTS.VMRESUME;
const EV_FULL_CHECK = VMX_EVENTS.VMCS_FULL_CONSISTENCY_CHECK;

export interface VmcsProcessorOptions {
  /** Where instruction counts go; default `NOOP_METER`. */
  readonly meter?: Meter;
  /** VMCS revision identifier, IA32_VMX_BASIC[30:0]; default `DEFAULT_VMCS_REVISION_ID`. */
  readonly revisionId?: number;
  /** MAXPHYADDR (CPUID.80000008H:EAX[7:0]); default `MODERN_CPU.maxPhysAddr`. */
  readonly maxPhysAddr?: number;
  /** IA32_VMX_MISC bit 29: VMWRITE may write VM-exit information fields; default true. */
  readonly vmwriteAnyField?: boolean;
  /** The 1-setting of the "VMCS shadowing" control is allowed (IA32_VMX_PROCBASED_CTLS2 bit 46); default true. */
  readonly vmcsShadowing?: boolean;
  /**
   * VMWRITE of a guest access-rights field keeps only bits 16, 15:12 and 7:0 (mask 0x1f0ff); KVM
   * notes that some Intel CPUs drop the reserved bits this way (kvm: handle_vmwrite). Default true.
   */
  readonly dropArReservedBits?: boolean;
}

/** One logical processor's VMCS state and VMX instructions, in VMX root operation. */
export class VmcsProcessor {
  readonly meter: Meter;
  readonly revisionId: number;
  readonly maxPhysAddr: number;
  readonly vmwriteAnyField: boolean;
  readonly vmcsShadowing: boolean;
  readonly dropArReservedBits: boolean;
  /** High 32 bits of the last successful `vmread` (0 for 16/32-bit fields and `_HIGH` accesses). */
  hi = 0;
  /** Outcome of the last `vmread` (its return value only says success or failure). */
  status: VmxResult = VMX_RESULT.SUCCEED;

  #current: HardwareVmcs | null = null;
  /** VMXON pointer; -1 outside VMX operation. */
  #vmxon = -1;
  readonly #regions = new Map<number, HardwareVmcs>();
  #regionGeneration = 0;
  readonly #addressLimit: number;
  /**
   * `vmread` and `vmwrite` are this class's own (not overridden), so a field list may run as a block;
   * a subclass that redefines them (e.g. instructions that exit) gets one call per field instead.
   */
  readonly #ownInstructions: boolean;
  /** The meter's count table when it has one (see `meterTable`). */
  readonly #counts: Float64Array | null;

  constructor(options: VmcsProcessorOptions = {}) {
    this.meter = options.meter ?? NOOP_METER;
    this.#counts = meterTable(this.meter);
    this.revisionId = (options.revisionId ?? DEFAULT_VMCS_REVISION_ID) & VMCS_REGION_HEADER.REVISION_MASK;
    this.maxPhysAddr = options.maxPhysAddr ?? MODERN_CPU.maxPhysAddr;
    if (!Number.isInteger(this.maxPhysAddr) || this.maxPhysAddr < 32 || this.maxPhysAddr > 52) {
      throw new RangeError(`maxPhysAddr ${this.maxPhysAddr} must be an integer in [32, 52] (SDM 4.1.4)`);
    }
    this.vmwriteAnyField = options.vmwriteAnyField ?? true;
    this.vmcsShadowing = options.vmcsShadowing ?? true;
    this.dropArReservedBits = options.dropArReservedBits ?? true;
    this.#addressLimit = 2 ** this.maxPhysAddr;
    const proto = Object.getPrototypeOf(this) as VmcsProcessor;
    this.#ownInstructions =
      proto.vmread === VmcsProcessor.prototype.vmread && proto.vmwrite === VmcsProcessor.prototype.vmwrite;
  }

  /** The current VMCS, or null. */
  get current(): HardwareVmcs | null {
    return this.#current;
  }

  /** The current-VMCS pointer, or `INVALID_VMCS_POINTER`. */
  get currentPointer(): number {
    return this.#current === null ? INVALID_VMCS_POINTER : this.#current.address;
  }

  /** The VMXON pointer, or -1 outside VMX operation. */
  get vmxonPointer(): number {
    return this.#vmxon;
  }

  get inVmxOperation(): boolean {
    return this.#vmxon >= 0;
  }

  /**
   * Software allocates a VMCS region at `address` and writes its revision identifier (this
   * processor's unless `options.revision` says otherwise) and shadow indicator (SDM 25.2, 25.10).
   * Throws if a region already exists there or the address is not 4-KiB aligned (model misuse).
   */
  createVmcs(address: number, options: Partial<HardwareVmcsOptions> = {}): HardwareVmcs {
    if (this.#regions.has(address))
      throw new Error(`a VMCS region already exists at 0x${address.toString(16)}`);
    const vmcs = new HardwareVmcs(address, {
      revision: options.revision ?? this.revisionId,
      shadow: options.shadow ?? false,
    });
    this.#regions.set(address, vmcs);
    this.#regionGeneration++;
    return vmcs;
  }

  /** Changes whenever a region is created or freed (lets callers cache `vmcsAt` answers). */
  get regionGeneration(): number {
    return this.#regionGeneration;
  }

  /** The region at `address`, if software created one. */
  vmcsAt(address: number): HardwareVmcs | undefined {
    return this.#regions.get(address);
  }

  /** Software frees a region. Throws if it is the current VMCS (software must VMCLEAR it first). */
  freeVmcs(vmcs: HardwareVmcs): void {
    if (this.#current === vmcs)
      throw new Error(`cannot free the current VMCS (${vmcs.describe()}); VMCLEAR it first`);
    this.#regions.delete(vmcs.address);
    this.#regionGeneration++;
  }

  /**
   * VMXON (SDM 31.3): in VMX root operation → VMfail(15); a pointer that is unaligned or beyond
   * MAXPHYADDR, or a region whose first word is not this processor's revision with bit 31 clear
   * → VMfailInvalid; else enter VMX root operation with no current VMCS. `regionWord` is the first
   * word software wrote into the VMXON region (default: the right revision).
   */
  vmxon(address: number, regionWord: number = this.revisionId): VmxResult {
    this.#tally(EV_VMXON);
    if (this.#vmxon >= 0) return this.vmfail(ERR.VMXON_IN_VMX_ROOT);
    if (!this.#isRegionAddress(address)) return VMX_RESULT.FAIL_INVALID;
    if (regionWord >>> 0 !== this.revisionId) return VMX_RESULT.FAIL_INVALID;
    this.#vmxon = address;
    this.#current = null;
    return VMX_RESULT.SUCCEED;
  }

  /** VMXOFF (SDM 31.3): leaves VMX operation. The dual-monitor error (23) is not modelled. */
  vmxoff(): VmxResult {
    this.#requireVmxOperation("VMXOFF");
    this.#tally(EV_VMXOFF);
    this.#vmxon = -1;
    this.#current = null;
    return VMX_RESULT.SUCCEED;
  }

  /**
   * VMPTRLD (SDM 31.3): unaligned or beyond MAXPHYADDR → VMfail(9); the VMXON pointer → VMfail(10);
   * revision identifier (bits 30:0) not the processor's, or shadow indicator set without VMCS-
   * shadowing support → VMfail(11); else the region becomes current. An address where no region
   * was created reads as a revision identifier that matches nothing (VMfail(11)).
   */
  vmptrld(address: number): VmxResult {
    this.#requireVmxOperation("VMPTRLD");
    this.#tally(EV_VMPTRLD);
    if (!this.#isRegionAddress(address)) return this.vmfail(ERR.VMPTRLD_INVALID_ADDRESS);
    if (address === this.#vmxon) return this.vmfail(ERR.VMPTRLD_VMXON_POINTER);
    const vmcs = this.#regions.get(address);
    if (vmcs === undefined || vmcs.revision !== this.revisionId || (vmcs.shadow && !this.vmcsShadowing)) {
      return this.vmfail(ERR.VMPTRLD_BAD_REVISION_ID);
    }
    this.#current = vmcs;
    return VMX_RESULT.SUCCEED;
  }

  /** VMPTRST (SDM 31.3): the current-VMCS pointer, or `INVALID_VMCS_POINTER`. Always VMsucceed. */
  vmptrst(): number {
    this.#requireVmxOperation("VMPTRST");
    this.#tally(EV_VMPTRST);
    return this.#current === null ? INVALID_VMCS_POINTER : this.#current.address;
  }

  /**
   * VMCLEAR (SDM 31.3): unaligned or beyond MAXPHYADDR → VMfail(2); the VMXON pointer → VMfail(3);
   * else the region's launch state becomes clear and, if it was current, there is no current VMCS.
   * No revision check. Assumption (the SDM is silent on VMCS caching): the flushed VMCS leaves the
   * processor's cache, so its next VM entry runs every consistency check.
   */
  vmclear(address: number): VmxResult {
    this.#requireVmxOperation("VMCLEAR");
    this.#tally(EV_VMCLEAR);
    if (!this.#isRegionAddress(address)) return this.vmfail(ERR.VMCLEAR_INVALID_ADDRESS);
    if (address === this.#vmxon) return this.vmfail(ERR.VMCLEAR_VMXON_POINTER);
    const vmcs = this.#regions.get(address);
    if (vmcs !== undefined) {
      vmcs.launchState = LAUNCH_STATE.CLEAR;
      vmcs.controlsDirty = true;
    }
    if (this.#current !== null && this.#current.address === address) this.#current = null;
    return VMX_RESULT.SUCCEED;
  }

  /**
   * VMREAD in VMX root operation (SDM 31.3): returns the low 32 bits of the field (unsigned) and
   * leaves the high 32 bits in `hi` (zero-extension for narrower fields; a `_HIGH` encoding returns
   * the upper half). On failure returns -1 and `status` says which: VMfailInvalid without a current
   * VMCS, VMfailValid(12) for a field that does not exist. Allocation-free.
   */
  vmread(encoding: number): number {
    if (this.#vmxon < 0) this.#requireVmxOperation("VMREAD");
    this.#tally(EV_VMREAD);
    const vmcs = this.#current;
    this.hi = 0;
    if (vmcs === null) {
      this.status = VMX_RESULT.FAIL_INVALID;
      return -1;
    }
    const code = vmcsAccessCode(encoding);
    if (code < 0) {
      this.status = this.vmfail(ERR.UNSUPPORTED_VMCS_COMPONENT);
      return -1;
    }
    this.status = VMX_RESULT.SUCCEED;
    const data = vmcs.data;
    const i = (code >>> A_SLOT_SHIFT) << 1;
    if ((code & A_KIND_MASK) === A_KIND_HIGH) return data[i + 1]!;
    this.hi = data[i + 1]!;
    return data[i]!;
  }

  /**
   * VMWRITE in VMX root operation (SDM 31.3): no current VMCS → VMfailInvalid; no such field →
   * VMfailValid(12); a VM-exit information field without VMWRITE-to-any support → VMfailValid(13);
   * else stores the value truncated to the field's width (`hi` is used by 64-bit and natural-width
   * fields; a `_HIGH` encoding stores `lo` into the upper half). Writing a major control marks the
   * VMCS's controls dirty (seed 003). Allocation-free.
   */
  vmwrite(encoding: number, lo: number, hi = 0): VmxResult {
    if (this.#vmxon < 0) this.#requireVmxOperation("VMWRITE");
    this.#tally(EV_VMWRITE);
    const vmcs = this.#current;
    if (vmcs === null) return VMX_RESULT.FAIL_INVALID;
    const code = vmcsAccessCode(encoding);
    if (code < 0) return this.vmfail(ERR.UNSUPPORTED_VMCS_COMPONENT);
    if ((code & A_READ_ONLY) !== 0 && !this.vmwriteAnyField) {
      return this.vmfail(ERR.VMWRITE_READ_ONLY_COMPONENT);
    }
    if ((code & A_AR_BYTES) !== 0 && this.dropArReservedBits) lo &= AR_BYTES_STORED;
    storeField(vmcs.data, code, lo, hi);
    if ((code & A_MAJOR_CONTROL) !== 0) vmcs.controlsDirty = true;
    return VMX_RESULT.SUCCEED;
  }

  /** A field-list VMWRITE that fails: no such field (error 12) or a read-only one (error 13). */
  #failStore(code: number): void {
    this.vmfail(code < 0 ? ERR.UNSUPPORTED_VMCS_COMPONENT : ERR.VMWRITE_READ_ONLY_COMPONENT);
  }

  /**
   * One VMWRITE per field of `list`, in order, each with the field's value from `vmcs12` (kvm:
   * copy_vmcs12_to_shadow and the other loops over a field array). Same outcomes, VM-instruction
   * errors and counts as calling `vmwrite` for each; returns how many of them failed. A field vmcs12
   * does not store is written with 0 (a list is built from fields vmcs12 has). `vmcs12.hi` is left
   * unspecified (it describes a `read`, and the list reads vmcs12 through its views).
   */
  vmwriteFromVmcs12(list: VmcsFieldList, vmcs12: Vmcs12): number {
    const n = list.length;
    const { encodings, vmcs12Offsets, widths } = list;
    if (!this.#ownInstructions) {
      let failed = 0;
      for (let i = 0; i < n; i++) {
        const offset = vmcs12Offsets[i]!;
        const lo = offset < 0 ? 0 : vmcs12.readAt(offset, widths[i]! as FieldWidth);
        const hi = offset < 0 ? 0 : vmcs12.hi;
        if (this.vmwrite(encodings[i]!, lo, hi) !== VMX_RESULT.SUCCEED) failed++;
      }
      return failed;
    }
    if (n === 0) return 0;
    if (this.#vmxon < 0) this.#requireVmxOperation("VMWRITE");
    this.#tallyN(EV_VMWRITE, n);
    const vmcs = this.#current;
    if (vmcs === null) return n;
    const codes = list.codes;
    const data = vmcs.data;
    const readOnlyFails = !this.vmwriteAnyField;
    const dropAr = this.dropArReservedBits;
    if (list.allExist && !(list.hasReadOnly && readOnlyFails)) {
      // No VMWRITE of the list can fail: the loop is stores only. Its access-code constants are
      // written as literals (see A_SLOT_SHIFT … above, checked at load): the bundler turns module
      // constants into `var`s, which V8 reloads on every use in a loop.
      const index = list.vmcs12Index;
      const words = vmcs12.words;
      const halves = vmcs12.halves;
      let hi = 0;
      for (let i = 0; i < n; i++) {
        const code = codes[i]!;
        const at = index[i]!;
        let lo = 0;
        hi = 0;
        if (at >= 0) {
          // As Vmcs12.readAt: 16-bit and 32-bit fields zero-extended, 64-bit ones in two words.
          const width = widths[i]!;
          if (width === 0) lo = halves[at]!;
          else if (width === 2) lo = words[at]!;
          else {
            lo = words[at]!;
            hi = words[at + 1]!;
          }
        }
        if ((code & 16) !== 0 && dropAr) lo &= AR_BYTES_STORED;
        const w = (code >>> 6) << 1;
        switch (code & 7) {
          case 0:
            data[w] = lo & 0xffff;
            break;
          case 2:
            data[w] = lo;
            break;
          case 4:
            data[w + 1] = lo;
            break;
          default:
            data[w] = lo;
            data[w + 1] = hi;
        }
        if ((code & 8) !== 0) vmcs.controlsDirty = true;
      }
      return 0;
    }
    let failed = 0;
    for (let i = 0; i < n; i++) {
      const code = codes[i]!;
      if (code < 0 || ((code & A_READ_ONLY) !== 0 && readOnlyFails)) {
        this.#failStore(code);
        failed++;
        continue;
      }
      const offset = vmcs12Offsets[i]!;
      let lo = 0;
      let hi = 0;
      if (offset >= 0) {
        lo = vmcs12.readAt(offset, widths[i]! as FieldWidth);
        hi = vmcs12.hi;
      }
      if ((code & A_AR_BYTES) !== 0 && dropAr) lo &= AR_BYTES_STORED;
      storeField(data, code, lo, hi);
      if ((code & A_MAJOR_CONTROL) !== 0) vmcs.controlsDirty = true;
    }
    return failed;
  }

  /**
   * One VMWRITE per field of `list`, in order, with the values `lo[i]`, `hi[i]` (kvm: the constant
   * parts of load_vmcs12_host_state). Same outcomes and counts as `vmwrite` per field; returns how
   * many failed.
   */
  vmwriteValues(list: VmcsFieldList, lo: Uint32Array, hi: Uint32Array): number {
    const n = list.length;
    if (lo.length < n || hi.length < n) {
      throw new RangeError(`vmwriteValues: ${n} fields but ${lo.length}/${hi.length} values`);
    }
    if (!this.#ownInstructions) {
      let failed = 0;
      for (let i = 0; i < n; i++) if (this.vmwrite(list.encodings[i]!, lo[i]!, hi[i]!) !== 0) failed++;
      return failed;
    }
    if (n === 0) return 0;
    if (this.#vmxon < 0) this.#requireVmxOperation("VMWRITE");
    this.#tallyN(EV_VMWRITE, n);
    const vmcs = this.#current;
    if (vmcs === null) return n;
    const codes = list.codes;
    const data = vmcs.data;
    const readOnlyFails = !this.vmwriteAnyField;
    const dropAr = this.dropArReservedBits;
    if (list.allExist && !(list.hasReadOnly && readOnlyFails)) {
      // No VMWRITE of the list can fail: the loop is stores only (literal constants, as above).
      for (let i = 0; i < n; i++) {
        const code = codes[i]!;
        let value = lo[i]!;
        if ((code & 16) !== 0 && dropAr) value &= AR_BYTES_STORED;
        const w = (code >>> 6) << 1;
        switch (code & 7) {
          case 0:
            data[w] = value & 0xffff;
            break;
          case 2:
            data[w] = value;
            break;
          case 4:
            data[w + 1] = value;
            break;
          default:
            data[w] = value;
            data[w + 1] = hi[i]!;
        }
        if ((code & 8) !== 0) vmcs.controlsDirty = true;
      }
      return 0;
    }
    let failed = 0;
    for (let i = 0; i < n; i++) {
      const code = codes[i]!;
      if (code < 0 || ((code & A_READ_ONLY) !== 0 && readOnlyFails)) {
        this.#failStore(code);
        failed++;
        continue;
      }
      let value = lo[i]!;
      if ((code & A_AR_BYTES) !== 0 && dropAr) value &= AR_BYTES_STORED;
      storeField(data, code, value, hi[i]!);
      if ((code & A_MAJOR_CONTROL) !== 0) vmcs.controlsDirty = true;
    }
    return failed;
  }

  /**
   * One VMREAD per field of `list`, in order, each stored into `vmcs12` (kvm: copy_shadow_to_vmcs12,
   * the fixed part of sync_vmcs02_to_vmcs12). Same outcomes and counts as `vmread` per field — a
   * failed VMREAD stores its -1 result truncated to the width, as the per-field loop does; `hi` and
   * `status` are left as the last VMREAD left them. Fields vmcs12 does not store are read but not
   * stored. Returns how many failed.
   */
  vmreadIntoVmcs12(list: VmcsFieldList, vmcs12: Vmcs12): number {
    const n = list.length;
    const { encodings, vmcs12Offsets, widths } = list;
    if (!this.#ownInstructions) {
      let failed = 0;
      for (let i = 0; i < n; i++) {
        const lo = this.vmread(encodings[i]!);
        if (this.status !== VMX_RESULT.SUCCEED) failed++;
        const offset = vmcs12Offsets[i]!;
        if (offset >= 0) vmcs12.writeAt(offset, widths[i]! as FieldWidth, lo, this.hi);
      }
      return failed;
    }
    if (n === 0) return 0;
    if (this.#vmxon < 0) this.#requireVmxOperation("VMREAD");
    this.#tallyN(EV_VMREAD, n);
    const vmcs = this.#current;
    let failed = 0;
    if (vmcs === null) {
      this.hi = 0;
      this.status = VMX_RESULT.FAIL_INVALID;
      for (let i = 0; i < n; i++) {
        const offset = vmcs12Offsets[i]!;
        if (offset >= 0) vmcs12.writeAt(offset, widths[i]! as FieldWidth, -1, 0);
      }
      return n;
    }
    const codes = list.codes;
    const data = vmcs.data;
    let hi = 0;
    if (list.allExist) {
      // Every VMREAD of the list succeeds (literal constants, as in vmwriteValues).
      const index = list.vmcs12Index;
      const words = vmcs12.words;
      const halves = vmcs12.halves;
      for (let i = 0; i < n; i++) {
        const code = codes[i]!;
        const w = (code >>> 6) << 1;
        let lo: number;
        if ((code & 7) === 4) {
          lo = data[w + 1]!;
          hi = 0;
        } else {
          lo = data[w]!;
          hi = data[w + 1]!;
        }
        // As Vmcs12.writeAt: truncated to 16 or 32 bits, 64-bit fields in two words.
        const at = index[i]!;
        if (at >= 0) {
          const width = widths[i]!;
          if (width === 0) halves[at] = lo;
          else if (width === 2) words[at] = lo;
          else {
            words[at] = lo;
            words[at + 1] = hi;
          }
        }
      }
      this.hi = hi;
      this.status = VMX_RESULT.SUCCEED;
      return 0;
    }
    let status: VmxResult = VMX_RESULT.SUCCEED;
    for (let i = 0; i < n; i++) {
      const code = codes[i]!;
      let lo: number;
      if (code < 0) {
        status = this.vmfail(ERR.UNSUPPORTED_VMCS_COMPONENT);
        failed++;
        lo = -1;
        hi = 0;
      } else {
        status = VMX_RESULT.SUCCEED;
        const w = (code >>> A_SLOT_SHIFT) << 1;
        if ((code & A_KIND_MASK) === A_KIND_HIGH) {
          lo = data[w + 1]!;
          hi = 0;
        } else {
          lo = data[w]!;
          hi = data[w + 1]!;
        }
      }
      const offset = vmcs12Offsets[i]!;
      if (offset >= 0) vmcs12.writeAt(offset, widths[i]! as FieldWidth, lo, hi);
    }
    this.hi = hi;
    this.status = status;
    return failed;
  }

  /**
   * VMfail(error) as the SDM defines it (31.2): VMfailInvalid when there is no current VMCS, else
   * VMfailValid(error) with `error` written to the current VMCS's VM-instruction-error field. For
   * the VM-entry code (errors 7, 8, …) as well as the instructions here.
   */
  vmfail(error: number): VmxResult {
    const vmcs = this.#current;
    if (vmcs === null) return VMX_RESULT.FAIL_INVALID;
    vmcs.data[VM_INSTRUCTION_ERROR_SLOT << 1] = error;
    return error;
  }

  /**
   * The start of VMLAUNCH (`launch` true) or VMRESUME: counts the instruction, then the basic checks
   * of SDM 27.1 in order — no current VMCS, or a shadow VMCS current → VMfailInvalid; events blocked
   * by MOV SS → VMfailValid(26); VMLAUNCH of a VMCS that is not clear → VMfailValid(4); VMRESUME of
   * one that is not launched → VMfailValid(5). On VMsucceed the VM-entry code goes on with
   * `noteVmEntry(current)`, its own control/host/guest checks, and `completeVmEntry()` if it succeeds.
   */
  vmentryChecks(launch: boolean, blockedByMovSs = false): VmxResult {
    if (this.#vmxon < 0) this.#requireVmxOperation(launch ? "VMLAUNCH" : "VMRESUME");
    this.#tally(launch ? EV_VMLAUNCH : EV_VMRESUME);
    const vmcs = this.#current;
    if (vmcs === null || vmcs.shadow) return VMX_RESULT.FAIL_INVALID;
    if (blockedByMovSs) return this.vmfail(ERR.ENTRY_EVENTS_BLOCKED_BY_MOV_SS);
    if (launch && vmcs.launchState !== LAUNCH_STATE.CLEAR) return this.vmfail(ERR.VMLAUNCH_NONCLEAR_VMCS);
    if (!launch && vmcs.launchState !== LAUNCH_STATE.LAUNCHED)
      return this.vmfail(ERR.VMRESUME_NONLAUNCHED_VMCS);
    return VMX_RESULT.SUCCEED;
  }

  /**
   * A VM entry on `vmcs` is checking its VMCS. If a major control was written since the VMCS's last
   * entry (or it was never entered since being cleared), the processor cannot use its cached check
   * results and runs every consistency check: counts VMCS_FULL_CONSISTENCY_CHECK, clears the mark
   * and returns true. Otherwise returns false (seed 003 cover letter; reference kvm-vmx.md §10 F).
   */
  noteVmEntry(vmcs: HardwareVmcs): boolean {
    if (!vmcs.controlsDirty) return false;
    vmcs.controlsDirty = false;
    this.#tally(EV_FULL_CHECK);
    return true;
  }

  /**
   * A VM entry succeeded: the current VMCS's launch state becomes launched (SDM 31.3 VMLAUNCH; a
   * failed entry leaves it unchanged). Idempotent after VMRESUME.
   */
  completeVmEntry(): void {
    const vmcs = this.#current;
    if (vmcs === null) throw new Error("completeVmEntry without a current VMCS");
    vmcs.launchState = LAUNCH_STATE.LAUNCHED;
  }

  /** Counts one event: straight into a counting meter's table, else through `Meter.count`. */
  #tally(event: number): void {
    const counts = this.#counts;
    if (counts !== null) counts[event] = counts[event]! + 1;
    else this.meter.count(event);
  }

  /** Counts `n` of one event at once (a field list's instructions). */
  #tallyN(event: number, n: number): void {
    const counts = this.#counts;
    if (counts !== null) counts[event] = counts[event]! + n;
    else this.meter.count(event, n);
  }

  /** 4-KiB aligned and below 2^MAXPHYADDR (SDM 31.3, VMXON/VMPTRLD/VMCLEAR operand checks). */
  #isRegionAddress(address: number): boolean {
    return (
      Number.isInteger(address) &&
      address >= 0 &&
      address < this.#addressLimit &&
      address % VMCS_REGION_SIZE === 0
    );
  }

  #requireVmxOperation(instruction: string): void {
    if (this.#vmxon < 0) {
      throw new Error(
        `${instruction} outside VMX operation raises #UD, which this model does not deliver: VMXON first`,
      );
    }
  }
}
