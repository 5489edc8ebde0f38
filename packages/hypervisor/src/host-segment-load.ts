import { VM_EXIT_CTLS, type Vmcs12, VmcsFieldList, type VmcsProcessor } from "@nestvisor/vmx";
import { SEGMENT_AR } from "@nestvisor/x86-arch";
import { VMCS_FIELD as F, vmcsFieldEncoding } from "./vmcs-field-encodings";

/**
 * The host segment registers a nested VM exit loads for L1 (SDM Vol. 3C 28.5.2, "Loading Host
 * Segment and Descriptor-Table Registers"; kvm: load_vmcs12_host_state), written into vmcs01's
 * guest-state area the way KVM's __vmx_set_segment writes one segment: base, limit, selector, access
 * rights (vmx_segment_access_rights) — 32 VMWRITEs in KVM's order CS, DS, ES, SS, FS, GS, TR, LDTR.
 *
 * - CS: vmcs12's host CS selector, base 0, limit 0xffffffff, type 11 (execute/read, accessed), S,
 *   P, G, and L with a 64-bit host (VM_EXIT_HOST_ADDR_SPACE_SIZE) or D/B without.
 * - DS, ES, SS, FS, GS: vmcs12's host selectors, base 0 (FS/GS: vmcs12's host bases), limit
 *   0xffffffff, type 3 (read/write, accessed), S, P, D/B, G.
 * - TR: vmcs12's host TR selector and base, limit 0x67, type 11 (busy TSS), P.
 * - LDTR: unusable, everything else 0.
 */

const SEGMENTS = ["CS", "DS", "ES", "SS", "FS", "GS", "TR", "LDTR"] as const;
type Segment = (typeof SEGMENTS)[number];

const AR = SEGMENT_AR;
const CODE_AR = 11 | AR.S | AR.P | AR.G;
const DATA_AR = 3 | AR.S | AR.P | AR.DB | AR.G;
const TR_AR = 11 | AR.P;
const LDTR_AR = AR.UNUSABLE;

/** Where each host segment's selector (and base, when the host state has one) comes from in vmcs12. */
const HOST_SELECTOR: Readonly<Record<Exclude<Segment, "LDTR">, number>> = {
  CS: F.HOST_CS_SELECTOR,
  DS: F.HOST_DS_SELECTOR,
  ES: F.HOST_ES_SELECTOR,
  SS: F.HOST_SS_SELECTOR,
  FS: F.HOST_FS_SELECTOR,
  GS: F.HOST_GS_SELECTOR,
  TR: F.HOST_TR_SELECTOR,
};
const HOST_BASE: Readonly<Partial<Record<Segment, number>>> = {
  FS: F.HOST_FS_BASE,
  GS: F.HOST_GS_BASE,
  TR: F.HOST_TR_BASE,
};

// The tables above by segment index, for the loop (a string-keyed lookup per segment and exit cost
// more than the loads themselves): vmcs12 encodings, -1 where the host state has no such field.
const SELECTOR_FIELD = Int32Array.from(SEGMENTS, (s) => (s === "LDTR" ? -1 : HOST_SELECTOR[s]));
const BASE_FIELD = Int32Array.from(SEGMENTS, (s) => HOST_BASE[s] ?? -1);
const CS_INDEX = SEGMENTS.indexOf("CS");
const TR_INDEX = SEGMENTS.indexOf("TR");

export class HostSegmentLoad {
  /** The 32 guest-state fields, four per segment: base, limit, selector, access rights. */
  readonly list = new VmcsFieldList(
    SEGMENTS.flatMap((s) => [
      `GUEST_${s}_BASE`,
      `GUEST_${s}_LIMIT`,
      `GUEST_${s}_SELECTOR`,
      `GUEST_${s}_AR_BYTES`,
    ]).map(vmcsFieldEncoding),
  );
  readonly #lo = new Uint32Array(SEGMENTS.length * 4);
  readonly #hi = new Uint32Array(SEGMENTS.length * 4);

  /** Loads L1's host segments from `vmcs12` into the current VMCS (vmcs01); returns failed VMWRITEs. */
  run(processor: VmcsProcessor, vmcs12: Vmcs12): number {
    const lo = this.#lo;
    const hi = this.#hi;
    const host64 = (vmcs12.read(F.VM_EXIT_CONTROLS) & VM_EXIT_CTLS.VM_EXIT_HOST_ADDR_SPACE_SIZE) !== 0;
    for (let i = 0; i < SEGMENTS.length; i++) {
      const at = i * 4;
      let baseLo = 0;
      let baseHi = 0;
      const baseField = BASE_FIELD[i]!;
      if (baseField >= 0) {
        baseLo = vmcs12.read(baseField);
        baseHi = vmcs12.hi;
      }
      lo[at] = baseLo;
      hi[at] = baseHi;
      hi[at + 1] = 0;
      hi[at + 2] = 0;
      hi[at + 3] = 0;
      const selectorField = SELECTOR_FIELD[i]!;
      if (selectorField < 0) {
        // LDTR: unusable.
        lo[at + 1] = 0;
        lo[at + 2] = 0;
        lo[at + 3] = LDTR_AR;
        continue;
      }
      lo[at + 2] = vmcs12.read(selectorField);
      if (i === TR_INDEX) {
        lo[at + 1] = 0x67;
        lo[at + 3] = TR_AR;
      } else {
        lo[at + 1] = 0xffffffff;
        lo[at + 3] = i === CS_INDEX ? CODE_AR | (host64 ? AR.L : AR.DB) : DATA_AR;
      }
    }
    return processor.vmwriteValues(this.list, lo, hi);
  }
}
