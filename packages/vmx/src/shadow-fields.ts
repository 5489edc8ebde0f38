/**
 * KVM's shadow-VMCS field lists (kvm: arch/x86/kvm/vmx/vmcs_shadow_fields.h) and the list of guest
 * fields KVM syncs from vmcs02 only on demand (kvm: nested.c is_vmcs12_ext_field).
 *
 * A shadow-RW field is one L1 may VMREAD and VMWRITE without a VM exit when L0 gives it hardware
 * VMCS shadowing; a shadow-RO field may be VMREAD without an exit but its VMWRITE is intercepted.
 * Every entry carries the encoding's byte offset in vmcs12, which the 2019 series precomputed
 * (seed 003 flag B; kvm ≥ v5.3: `struct shadow_vmcs_field { u16 encoding; u16 offset; }`).
 *
 * Two historical states of the header are modelled, plus every mix of the two flags that changed it:
 * - Linux 6.12 (identical since v5.3): 12 RO and 24 RW entries.
 * - Linux v5.2 (before seed 003): 10 RO and 25 RW entries. GUEST_CS/SS_AR_BYTES were RW (the series
 *   "Intercept VMWRITEs to GUEST_{CS,SS}_AR_BYTES" made them RO: flag A), and PIN_BASED_VM_EXEC_CONTROL
 *   was not shadowed ("KVM: nVMX: shadow pin based execution controls", part of flag F).
 * Lists are in file order (KVM keeps them grouped by width "to help branch prediction").
 *
 * `_HIGH` entries are in the lists, so `init_vmcs_shadow_fields` clears their bitmap bits, but a
 * 64-bit host drops them from the copy arrays (a natural-width or 64-bit VMREAD moves the whole
 * field). Fields the host CPU lacks (PML index, preemption-timer value, guest interrupt status
 * without PML / preemption timer / APICv) are dropped from the RW copy array and left intercepted.
 */

import { fieldByName } from "./field-catalog";
import { type FieldWidth, vmcsFieldWidth } from "./field-encoding";
import { vmcs12FieldOffset } from "./vmcs12-layout";

/** A field with its vmcs12 offset: a shadowed field, or a guest field KVM syncs from vmcs02. */
export interface ShadowField {
  /** KVM's name, e.g. "GUEST_RIP" or "GUEST_PHYSICAL_ADDRESS_HIGH". */
  readonly name: string;
  readonly encoding: number;
  /**
   * Byte offset of this encoding in vmcs12. KVM's table records the member's offset for a `_HIGH`
   * entry and adds 4 at init on 32-bit hosts (kvm: init_vmcs_shadow_fields); this is that value
   * (= `vmcs12FieldOffset(encoding)`). The shadowed fields sit at the same offsets in every
   * modelled vmcs12 era.
   */
  readonly offset: number;
  /** Access width (kvm: vmcs_field_width; `_HIGH` is 32-bit). */
  readonly width: FieldWidth;
  /** True for a `_HIGH` encoding (bit 0 set): in the bitmaps, not in a 64-bit host's copy array. */
  readonly high: boolean;
}

/**
 * The entry for a field vmcs12 stores, by KVM name. Throws (a bug in a list, caught at load) if the
 * catalog or vmcs12 lacks it.
 */
export function shadowFieldByName(name: string): ShadowField {
  const field = fieldByName(name);
  if (field === undefined) throw new Error(`shadow field ${name} is not in the field catalog`);
  const offset = vmcs12FieldOffset(field.encoding);
  if (offset < 0) throw new Error(`shadow field ${name} is not stored in vmcs12`);
  return Object.freeze({
    name: field.name,
    encoding: field.encoding,
    offset,
    width: vmcsFieldWidth(field.encoding),
    high: (field.encoding & 1) === 1,
  });
}

function list(names: readonly string[]): readonly ShadowField[] {
  return Object.freeze(names.map(shadowFieldByName));
}

// kvm: vmcs_shadow_fields.h, file order, one list per kind. The exit-information RO fields and the
// 32-bit and natural-width RW fields interleave in the file; each list keeps its own relative order.
const RO_EXIT_INFO_32 = [
  "VM_EXIT_REASON",
  "VM_EXIT_INTR_INFO",
  "VM_EXIT_INSTRUCTION_LEN",
  "IDT_VECTORING_INFO_FIELD",
  "IDT_VECTORING_ERROR_CODE",
  "VM_EXIT_INTR_ERROR_CODE",
];
/** Moved from RW to RO by "KVM: nVMX: Intercept VMWRITEs to GUEST_{CS,SS}_AR_BYTES" (seed 003, flag A). */
const CS_SS_AR_BYTES = ["GUEST_CS_AR_BYTES", "GUEST_SS_AR_BYTES"];
const RO_NATURAL_AND_64 = [
  "EXIT_QUALIFICATION",
  "GUEST_LINEAR_ADDRESS",
  "GUEST_PHYSICAL_ADDRESS",
  "GUEST_PHYSICAL_ADDRESS_HIGH",
];
const RW_16 = ["GUEST_INTR_STATUS", "GUEST_PML_INDEX", "HOST_FS_SELECTOR", "HOST_GS_SELECTOR"];
/** Made RW by "KVM: nVMX: shadow pin based execution controls" (Paolo Bonzini, 2019; seed 003, flag F). */
const PIN_CONTROLS = "PIN_BASED_VM_EXEC_CONTROL";
const RW_32_AFTER_PIN = [
  "EXCEPTION_BITMAP",
  "VM_ENTRY_EXCEPTION_ERROR_CODE",
  "VM_ENTRY_INTR_INFO_FIELD",
  "VM_ENTRY_INSTRUCTION_LEN",
  "TPR_THRESHOLD",
];
const RW_32_TAIL = ["GUEST_INTERRUPTIBILITY_INFO", "VMX_PREEMPTION_TIMER_VALUE"];
const RW_NATURAL = [
  "GUEST_RIP",
  "GUEST_RSP",
  "GUEST_CR0",
  "GUEST_CR3",
  "GUEST_CR4",
  "GUEST_RFLAGS",
  "CR0_GUEST_HOST_MASK",
  "CR0_READ_SHADOW",
  "CR4_READ_SHADOW",
  "HOST_FS_BASE",
  "HOST_GS_BASE",
];

/** The two seed-003 switches that changed the header. */
export interface ShadowFieldListOptions {
  /** Flag A: CS/SS AR bytes are RO (true, ≥ v5.3) or RW (false, v5.2). */
  readonly readOnlyShadowFields: boolean;
  /** Flag F: PIN_BASED_VM_EXEC_CONTROL is shadow-RW (true, ≥ v5.3) or intercepted (false, v5.2). */
  readonly controlsShadow: boolean;
}

/** The RO and RW lists of one state of the header, in file order, `_HIGH` entries included. */
export interface ShadowFieldLists {
  readonly ro: readonly ShadowField[];
  readonly rw: readonly ShadowField[];
}

function composeNames(options: ShadowFieldListOptions): { ro: string[]; rw: string[] } {
  const ro = [
    ...RO_EXIT_INFO_32,
    ...(options.readOnlyShadowFields ? CS_SS_AR_BYTES : []),
    ...RO_NATURAL_AND_64,
  ];
  const rw = [
    ...RW_16,
    "CPU_BASED_VM_EXEC_CONTROL",
    ...(options.controlsShadow ? [PIN_CONTROLS] : []),
    ...RW_32_AFTER_PIN,
    ...(options.readOnlyShadowFields ? [] : CS_SS_AR_BYTES),
    ...RW_32_TAIL,
    ...RW_NATURAL,
  ];
  return { ro, rw };
}

const LISTS = new Map<string, ShadowFieldLists>();

/** The header as it stood with these flags (built once per combination, frozen). */
export function shadowFieldLists(options: ShadowFieldListOptions): ShadowFieldLists {
  const key = `${options.readOnlyShadowFields ? 1 : 0}${options.controlsShadow ? 1 : 0}`;
  let lists = LISTS.get(key);
  if (lists === undefined) {
    const names = composeNames(options);
    lists = Object.freeze({ ro: list(names.ro), rw: list(names.rw) });
    LISTS.set(key, lists);
  }
  return lists;
}

/** Linux 6.12 (= v5.3): 12 RO entries, 11 copied on a 64-bit host. */
export const SHADOW_FIELDS_RO: readonly ShadowField[] = shadowFieldLists({
  readOnlyShadowFields: true,
  controlsShadow: true,
}).ro;
/** Linux 6.12 (= v5.3): 24 RW entries. */
export const SHADOW_FIELDS_RW: readonly ShadowField[] = shadowFieldLists({
  readOnlyShadowFields: true,
  controlsShadow: true,
}).rw;
/** Linux v5.2: 10 RO entries (exit information only), 9 copied on a 64-bit host. */
export const SHADOW_FIELDS_RO_V5_2: readonly ShadowField[] = shadowFieldLists({
  readOnlyShadowFields: false,
  controlsShadow: false,
}).ro;
/** Linux v5.2: 25 RW entries (CS/SS AR bytes included, pin controls not). */
export const SHADOW_FIELDS_RW_V5_2: readonly ShadowField[] = shadowFieldLists({
  readOnlyShadowFields: false,
  controlsShadow: false,
}).rw;

/**
 * Host VMX features without which KVM drops a RW field (kvm: init_vmcs_shadow_fields — "the
 * processor cannot vmwrite to fields that don't exist on bare metal").
 */
export interface ShadowHostFeatures {
  /** Page-modification logging (kvm: cpu_has_vmx_pml) → GUEST_PML_INDEX. */
  readonly pml: boolean;
  /** VMX-preemption timer (kvm: cpu_has_vmx_preemption_timer) → VMX_PREEMPTION_TIMER_VALUE. */
  readonly preemptionTimer: boolean;
  /** APIC virtualization (kvm: cpu_has_vmx_apicv) → GUEST_INTR_STATUS. */
  readonly apicv: boolean;
}

/** A modern host: every feature present (the reference workload, kvm-vmx.md §10). */
export const FULL_SHADOW_HOST: ShadowHostFeatures = Object.freeze({
  pml: true,
  preemptionTimer: true,
  apicv: true,
});

const GUEST_PML_INDEX = shadowFieldByName("GUEST_PML_INDEX").encoding;
const VMX_PREEMPTION_TIMER_VALUE = shadowFieldByName("VMX_PREEMPTION_TIMER_VALUE").encoding;
const GUEST_INTR_STATUS = shadowFieldByName("GUEST_INTR_STATUS").encoding;

/** True when KVM keeps a RW field on this host (kvm: init_vmcs_shadow_fields' switch). */
export function hostHasShadowField(encoding: number, host: ShadowHostFeatures): boolean {
  switch (encoding) {
    case GUEST_PML_INDEX:
      return host.pml;
    case VMX_PREEMPTION_TIMER_VALUE:
      return host.preemptionTimer;
    case GUEST_INTR_STATUS:
      return host.apicv;
    default:
      return true;
  }
}

/**
 * What `init_vmcs_shadow_fields` leaves behind for one configuration: the header's lists (for the
 * membership tests, which KVM generates from the header and does not filter by host), the compacted
 * copy arrays of a 64-bit host, and which encodings the bitmaps expose.
 */
export interface ShadowFieldSet {
  readonly lists: ShadowFieldLists;
  readonly host: ShadowHostFeatures;
  /** RO entries copied by `copy_vmcs12_to_shadow` (no `_HIGH`). */
  readonly roCopy: readonly ShadowField[];
  /** RW entries copied both ways (no `_HIGH`, no field the host lacks). */
  readonly rwCopy: readonly ShadowField[];
  /** Encodings whose VMREAD-bitmap bit is cleared (RO entries, and RW entries the host keeps). */
  readonly vmreadExposed: readonly number[];
  /** Encodings whose VMWRITE-bitmap bit is cleared (RW entries the host keeps). */
  readonly vmwriteExposed: readonly number[];
  /** kvm: is_shadow_field_rw (header membership). */
  isRw(encoding: number): boolean;
  /** kvm: is_shadow_field_ro (header membership). */
  isRo(encoding: number): boolean;
}

const ENCODING_SPACE = 0x8000;
const KIND_RO = 1;
const KIND_RW = 2;

/**
 * Runs KVM's `init_vmcs_shadow_fields` for a header state and host (64-bit host): RO entries clear
 * their VMREAD bit; RW entries the host lacks are skipped entirely; the rest clear both bits;
 * `_HIGH` entries are dropped from the copy arrays after clearing their bits.
 */
export function shadowFieldSet(
  options: ShadowFieldListOptions,
  host: ShadowHostFeatures = FULL_SHADOW_HOST,
): ShadowFieldSet {
  const lists = shadowFieldLists(options);
  const kind = new Uint8Array(ENCODING_SPACE);
  const roCopy: ShadowField[] = [];
  const rwCopy: ShadowField[] = [];
  const vmreadExposed: number[] = [];
  const vmwriteExposed: number[] = [];
  for (const f of lists.ro) {
    kind[f.encoding] = KIND_RO;
    vmreadExposed.push(f.encoding);
    if (!f.high) roCopy.push(f);
  }
  for (const f of lists.rw) {
    kind[f.encoding] = KIND_RW;
    if (!hostHasShadowField(f.encoding, host)) continue;
    vmreadExposed.push(f.encoding);
    vmwriteExposed.push(f.encoding);
    if (!f.high) rwCopy.push(f);
  }
  const inSpace = (e: number): boolean => (e & (ENCODING_SPACE - 1)) === e;
  return Object.freeze({
    lists,
    host,
    roCopy: Object.freeze(roCopy),
    rwCopy: Object.freeze(rwCopy),
    vmreadExposed: Object.freeze(vmreadExposed),
    vmwriteExposed: Object.freeze(vmwriteExposed),
    isRw: (e: number) => inSpace(e) && kind[e] === KIND_RW,
    isRo: (e: number) => inSpace(e) && kind[e] === KIND_RO,
  });
}

/**
 * The 36 guest fields whose L1 VMREAD first pulls the rarely synced guest state from vmcs02
 * (kvm ≥ v5.3: is_vmcs12_ext_field): 8 selectors, 10 limits, 6 AR bytes (not CS/SS, which are
 * synced on every exit), 10 bases, pending debug exceptions, and GUEST_BNDCFGS. Before seed 003
 * (v5.2) there is no such list: every exit read all of these from vmcs02.
 */
export const VMCS12_EXT_FIELDS: readonly ShadowField[] = list([
  "GUEST_ES_SELECTOR",
  "GUEST_CS_SELECTOR",
  "GUEST_SS_SELECTOR",
  "GUEST_DS_SELECTOR",
  "GUEST_FS_SELECTOR",
  "GUEST_GS_SELECTOR",
  "GUEST_LDTR_SELECTOR",
  "GUEST_TR_SELECTOR",
  "GUEST_ES_LIMIT",
  "GUEST_CS_LIMIT",
  "GUEST_SS_LIMIT",
  "GUEST_DS_LIMIT",
  "GUEST_FS_LIMIT",
  "GUEST_GS_LIMIT",
  "GUEST_LDTR_LIMIT",
  "GUEST_TR_LIMIT",
  "GUEST_GDTR_LIMIT",
  "GUEST_IDTR_LIMIT",
  "GUEST_ES_AR_BYTES",
  "GUEST_DS_AR_BYTES",
  "GUEST_FS_AR_BYTES",
  "GUEST_GS_AR_BYTES",
  "GUEST_LDTR_AR_BYTES",
  "GUEST_TR_AR_BYTES",
  "GUEST_ES_BASE",
  "GUEST_CS_BASE",
  "GUEST_SS_BASE",
  "GUEST_DS_BASE",
  "GUEST_FS_BASE",
  "GUEST_GS_BASE",
  "GUEST_LDTR_BASE",
  "GUEST_TR_BASE",
  "GUEST_GDTR_BASE",
  "GUEST_IDTR_BASE",
  "GUEST_PENDING_DBG_EXCEPTIONS",
  "GUEST_BNDCFGS",
]);

/**
 * The fields `sync_vmcs02_to_vmcs12_rare` reads from vmcs02 in Linux 6.12, in its order: the ext
 * fields without GUEST_BNDCFGS (35). 6.12 keeps vmcs12's BNDCFGS current when L2 writes the MSR
 * instead; the 2019 code also read GUEST_BNDCFGS here on MPX hosts (kvm v5.3: kvm_mpx_supported()).
 */
export const RARE_GUEST_SYNC_FIELDS: readonly ShadowField[] = Object.freeze(
  VMCS12_EXT_FIELDS.filter((f) => f.name !== "GUEST_BNDCFGS"),
);

const EXT_FIELD = new Uint8Array(ENCODING_SPACE);
for (const f of VMCS12_EXT_FIELDS) EXT_FIELD[f.encoding] = 1;

/** kvm: is_vmcs12_ext_field (≥ v5.3). Exact encodings only: a `_HIGH` half is not an ext field. */
export function isVmcs12ExtField(encoding: number): boolean {
  return (encoding & (ENCODING_SPACE - 1)) === encoding && EXT_FIELD[encoding] === 1;
}
