import type { VmcsProcessor } from "@nestvisor/vmx";
import { VMCS_FIELD as F } from "./vmcs-field-encodings";

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
  #ssArAvailable = false;
  #csArAvailable = false;
  #csBaseAvailable = false;
  #exitQualAvailable = false;
  #intrInfoAvailable = false;
  ssAr = 0;
  csAr = 0;
  csBase = 0;
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
    this.#ssArAvailable = false;
    this.#csArAvailable = false;
    this.#csBaseAvailable = false;
    this.#exitQualAvailable = false;
    this.#intrInfoAvailable = false;
  }

  /** A VMCS switch (kvm: vmx_switch_vmcs): everything unavailable and pending RIP/RSP writes dropped. */
  resetForVmcsSwitch(): void {
    this.reset();
    this.#ripDirty = false;
    this.#rspDirty = false;
  }

  /** kvm: vmx_get_cpl → GUEST_SS_AR_BYTES through the segment cache; returns the CPL (DPL of SS). */
  readCpl(): number {
    if (!this.#ssArAvailable) {
      this.ssAr = this.#processor.vmread(F.GUEST_SS_AR_BYTES);
      this.#ssArAvailable = true;
    }
    return (this.ssAr >>> 5) & 3;
  }

  /** kvm: is_64_bit_mode → GUEST_CS_AR_BYTES.L through the segment cache. */
  read64BitMode(): boolean {
    if (!this.#csArAvailable) {
      this.csAr = this.#processor.vmread(F.GUEST_CS_AR_BYTES);
      this.#csArAvailable = true;
    }
    return (this.csAr & 0x2000) !== 0;
  }

  /** kvm: vmx_get_segment_base(CS) → GUEST_CS_BASE through the segment cache (low 32 bits). */
  readCsBase(): number {
    if (!this.#csBaseAvailable) {
      this.csBase = this.#processor.vmread(F.GUEST_CS_BASE);
      this.#csBaseAvailable = true;
    }
    return this.csBase;
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
