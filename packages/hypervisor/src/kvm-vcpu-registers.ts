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

  constructor(processor: VmcsProcessor) {
    this.#processor = processor;
  }

  /** kvm: vmx_register_cache_reset — after every VM exit and VMCS switch. */
  reset(): void {
    this.#ripAvailable = false;
    this.#rspAvailable = false;
    this.#rflagsAvailable = false;
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
