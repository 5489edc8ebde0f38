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

/**
 * VMWRITEs of the current VMCS from other vmcs12 fields (kvm: load_vmcs12_host_state's
 * `vmcs_write(GUEST_x, vmcs12->host_y)` runs). One field list, values gathered from vmcs12 at run
 * time; the same VMWRITEs, in order, as one call per field.
 */
export class Vmcs12Transfers {
  readonly list: VmcsFieldList;
  readonly #sources: Uint32Array;
  readonly #lo: Uint32Array;
  readonly #hi: Uint32Array;

  /** `transfers`: [target encoding in the current VMCS, source encoding in vmcs12], in KVM's order. */
  constructor(transfers: readonly (readonly [number, number])[]) {
    this.list = new VmcsFieldList(transfers.map((t) => t[0]));
    this.#sources = Uint32Array.from(transfers, (t) => t[1]);
    this.#lo = new Uint32Array(transfers.length);
    this.#hi = new Uint32Array(transfers.length);
  }

  /** Issues the VMWRITEs with `vmcs12`'s source values; returns how many failed. */
  run(processor: VmcsProcessor, vmcs12: Vmcs12): number {
    const sources = this.#sources;
    const lo = this.#lo;
    const hi = this.#hi;
    for (let i = 0; i < sources.length; i++) {
      lo[i] = vmcs12.read(sources[i]!);
      hi[i] = vmcs12.hi;
    }
    return processor.vmwriteValues(this.list, lo, hi);
  }
}
