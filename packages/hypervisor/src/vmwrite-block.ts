import { type Vmcs12, VmcsFieldList, type VmcsProcessor } from "@nestvisor/vmx";

/**
 * A run of VMWRITEs KVM issues back to back with values it knows in advance (kvm: the constant parts
 * of load_vmcs12_host_state, the vmcs01 refresh after a nested VM exit, prepare_vmcs02's TSC and PAT
 * writes). Executed as one field list (`VmcsProcessor.vmwriteValues`): the same VMWRITEs, in order,
 * with the same outcomes and counts as one call per field.
 */
export class FixedVmwrites {
  readonly list: VmcsFieldList;
  readonly #lo: Uint32Array;
  readonly #hi: Uint32Array;

  /** `writes`: [encoding, low 32 bits, high 32 bits (default 0)] in the order KVM writes them. */
  constructor(writes: readonly (readonly [number, number, number?])[]) {
    this.list = new VmcsFieldList(writes.map((w) => w[0]));
    this.#lo = Uint32Array.from(writes, (w) => w[1] >>> 0);
    this.#hi = Uint32Array.from(writes, (w) => (w[2] ?? 0) >>> 0);
  }

  /** Issues the writes on `processor`'s current VMCS; returns how many failed. */
  run(processor: VmcsProcessor): number {
    return processor.vmwriteValues(this.list, this.#lo, this.#hi);
  }
}

/**
 * Fields KVM copies from vmcs12 into the current VMCS one after the other (prepare_vmcs02's
 * `vmcs_write(field, vmcs12->field)` runs), limited to the fields `vmcs12`'s era stores — a field it
 * lacks is not written, as KVM's struct has no member to copy.
 */
export class Vmcs12Copies {
  readonly list: VmcsFieldList;

  constructor(encodings: readonly number[], vmcs12: Vmcs12) {
    this.list = new VmcsFieldList(
      encodings.filter((e) => vmcs12.offsetOf(e) >= 0),
      vmcs12.era,
    );
  }

  get length(): number {
    return this.list.length;
  }

  /** Issues the VMWRITEs with `vmcs12`'s values; returns how many failed. */
  run(processor: VmcsProcessor, vmcs12: Vmcs12): number {
    return processor.vmwriteFromVmcs12(this.list, vmcs12);
  }
}
