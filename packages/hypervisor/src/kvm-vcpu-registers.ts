import type { VmcsProcessor } from "@nestvisor/vmx";
import { VMCS_FIELD as F, vmcsFieldEncoding } from "./vmcs-field-encodings";

/** Segment registers in KVM's order (kvm: VCPU_SREG_ES … VCPU_SREG_LDTR). */
export const SEGMENT = Object.freeze({ ES: 0, CS: 1, SS: 2, DS: 3, FS: 4, GS: 5, TR: 6, LDTR: 7 } as const);
export type SegmentRegister = (typeof SEGMENT)[keyof typeof SEGMENT];

/** The four VMCS fields of a segment (kvm: SEG_FIELD_SEL, SEG_FIELD_BASE, SEG_FIELD_LIMIT, SEG_FIELD_AR). */
export const SEGMENT_FIELD = Object.freeze({ SELECTOR: 0, BASE: 1, LIMIT: 2, AR: 3 } as const);
export type SegmentField = (typeof SEGMENT_FIELD)[keyof typeof SEGMENT_FIELD];

const SEGMENT_NAMES = ["ES", "CS", "SS", "DS", "FS", "GS", "TR", "LDTR"] as const;
const FIELD_SUFFIXES = ["SELECTOR", "BASE", "LIMIT", "AR_BYTES"] as const;
/** Encoding of field f of segment s at index s * 4 + f (kvm: kvm_vmx_segment_fields). */
const SEGMENT_ENCODINGS: Int32Array = Int32Array.from(
  SEGMENT_NAMES.flatMap((seg) => FIELD_SUFFIXES.map((field) => vmcsFieldEncoding(`GUEST_${seg}_${field}`))),
);

/**
 * KVM's lazily filled register cache for the registers that live in the VMCS (kvm:
 * kvm_cache_regs.h, vmx_cache_reg, vmx_register_cache_reset): RIP, RSP and RFLAGS are read with a
 * VMREAD the first time a handler needs them after an exit, and a changed RIP or RSP is written back
 * with one VMWRITE just before the next VM entry (kvm: vmx_vcpu_run). A VMCS switch resets it.
 */
export class VcpuRegisterCache {
  readonly #processor: VmcsProcessor;
  rip = 0;
  rsp = 0;
  rflags = 0;
  #ripAvailable = false;
  #ripDirty = false;
  #rspAvailable = false;
  #rspDirty = false;
  #rflagsAvailable = false;
  /** kvm: VCPU_EXREG_CR0 available — the guest-owned CR0 bits were read from GUEST_CR0 or written. */
  #cr0Available = false;
  /** kvm: vmx->segment_cache.bitmask — bit s * 4 + f set once field f of segment s was read. */
  #segmentsAvailable = 0;
  /** kvm: vmx->segment_cache.seg — the low 32 bits of each cached field, indexed like the bitmask. */
  readonly #segmentValues = new Float64Array(32);
  #exitQualAvailable = false;
  #intrInfoAvailable = false;
  exitQualLo = 0;
  exitQualHi = 0;
  intrInfo = 0;

  constructor(processor: VmcsProcessor) {
    this.#processor = processor;
  }

  /**
   * After every VM exit (kvm: vmx_vcpu_enter_exit clears the lazily loaded registers, the segment
   * cache and the cached exit information).
   */
  reset(): void {
    this.#ripAvailable = false;
    this.#rspAvailable = false;
    this.#rflagsAvailable = false;
    this.#segmentsAvailable = 0;
    this.#cr0Available = false;
    this.#exitQualAvailable = false;
    this.#intrInfoAvailable = false;
  }

  /** A VMCS switch (kvm: vmx_switch_vmcs): everything unavailable and pending RIP/RSP writes dropped. */
  resetForVmcsSwitch(): void {
    this.reset();
    this.#ripDirty = false;
    this.#rspDirty = false;
  }

  /**
   * One field of a guest segment through KVM's segment cache (kvm: vmx_read_guest_seg_selector/
   * _base/_limit/_ar): a VMREAD the first time after an exit, the cached low 32 bits after that.
   */
  readSegment(segment: SegmentRegister, field: SegmentField): number {
    const bit = segment * 4 + field;
    const mask = 1 << bit;
    if ((this.#segmentsAvailable & mask) === 0) {
      this.#segmentValues[bit] = this.#processor.vmread(SEGMENT_ENCODINGS[bit]!);
      this.#segmentsAvailable |= mask;
    }
    return this.#segmentValues[bit]!;
  }

  /** Whether KVM's CR0 is current (kvm: kvm_register_is_available(vcpu, VCPU_EXREG_CR0)). */
  get cr0Available(): boolean {
    return this.#cr0Available;
  }

  /** KVM's CR0 is current: read from GUEST_CR0, or just written (vmx_set_cr0). */
  markCr0Available(): void {
    this.#cr0Available = true;
  }

  /** kvm: vmx_segment_cache_clear, after KVM writes a segment (__vmx_set_segment). */
  clearSegments(): void {
    this.#segmentsAvailable = 0;
  }

  /** kvm: vmx_get_segment — selector, base, limit and access rights of one segment, all cached. */
  readWholeSegment(segment: SegmentRegister): void {
    this.readSegment(segment, SEGMENT_FIELD.BASE);
    this.readSegment(segment, SEGMENT_FIELD.LIMIT);
    this.readSegment(segment, SEGMENT_FIELD.SELECTOR);
    this.readSegment(segment, SEGMENT_FIELD.AR);
  }

  /** kvm: vmx_get_cpl → GUEST_SS_AR_BYTES through the segment cache; returns the CPL (DPL of SS). */
  readCpl(): number {
    return (this.readSegment(SEGMENT.SS, SEGMENT_FIELD.AR) >>> 5) & 3;
  }

  /** kvm: is_64_bit_mode → GUEST_CS_AR_BYTES.L through the segment cache. */
  read64BitMode(): boolean {
    return (this.readSegment(SEGMENT.CS, SEGMENT_FIELD.AR) & 0x2000) !== 0;
  }

  /** kvm: vmx_get_segment_base(CS) → GUEST_CS_BASE through the segment cache (low 32 bits). */
  readCsBase(): number {
    return this.readSegment(SEGMENT.CS, SEGMENT_FIELD.BASE);
  }

  /** kvm: vmx_get_exit_qual (cached per exit). */
  readExitQualification(): number {
    if (!this.#exitQualAvailable) {
      this.exitQualLo = this.#processor.vmread(F.EXIT_QUALIFICATION);
      this.exitQualHi = this.#processor.hi;
      this.#exitQualAvailable = true;
    }
    return this.exitQualLo;
  }

  /** kvm: vmx_get_intr_info (cached per exit). */
  readIntrInfo(): number {
    if (!this.#intrInfoAvailable) {
      this.intrInfo = this.#processor.vmread(F.VM_EXIT_INTR_INFO);
      this.#intrInfoAvailable = true;
    }
    return this.intrInfo;
  }

  /** kvm: kvm_rip_read. */
  readRip(): number {
    if (!this.#ripAvailable) {
      const lo = this.#processor.vmread(F.GUEST_RIP);
      this.rip = this.#processor.hi * 4294967296 + lo;
      this.#ripAvailable = true;
    }
    return this.rip;
  }

  /** kvm: kvm_rip_write. */
  writeRip(value: number): void {
    this.rip = value;
    this.#ripAvailable = true;
    this.#ripDirty = true;
  }

  /** kvm: kvm_rsp_read. */
  readRsp(): number {
    if (!this.#rspAvailable) {
      const lo = this.#processor.vmread(F.GUEST_RSP);
      this.rsp = this.#processor.hi * 4294967296 + lo;
      this.#rspAvailable = true;
    }
    return this.rsp;
  }

  /** kvm: kvm_rsp_write. */
  writeRsp(value: number): void {
    this.rsp = value;
    this.#rspAvailable = true;
    this.#rspDirty = true;
  }

  /** kvm: vmx_get_rflags (VMREAD GUEST_RFLAGS unless cached). */
  readRflags(): number {
    if (!this.#rflagsAvailable) {
      this.rflags = this.#processor.vmread(F.GUEST_RFLAGS);
      this.#rflagsAvailable = true;
    }
    return this.rflags;
  }

  /** kvm: vmx_set_rflags (one VMWRITE; the cache stays valid). */
  writeRflags(value: number): void {
    this.rflags = value >>> 0;
    this.#rflagsAvailable = true;
    this.#processor.vmwrite(F.GUEST_RFLAGS, this.rflags, 0);
  }

  /** Before VM entry (kvm: vmx_vcpu_run): write back a changed RSP and RIP. */
  flush(): void {
    const p = this.#processor;
    if (this.#rspDirty) {
      p.vmwrite(F.GUEST_RSP, this.rsp >>> 0, Math.floor(this.rsp / 4294967296));
      this.#rspDirty = false;
    }
    if (this.#ripDirty) {
      p.vmwrite(F.GUEST_RIP, this.rip >>> 0, Math.floor(this.rip / 4294967296));
      this.#ripDirty = false;
    }
  }
}
