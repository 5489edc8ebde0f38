/**
 * KVM's vmcs12 ABI: the layout of `struct vmcs12` (arch/x86/kvm/vmx/vmcs12.h), the per-encoding
 * offsets of `vmcs12_field_offsets[]` (vmcs12.c) and the lookup `get_vmcs12_field_offset`.
 *
 * The struct is described member by member, in declaration order, with its size; offsets are
 * computed by packing (the struct is `__packed`), the way the compiler lays it out. The layout test
 * pins every offset against KVM's CHECK_OFFSET list, as `vmx_check_vmcs12_offsets()` does.
 *
 * Two eras are modelled:
 * - "v6.12" (default): Linux 6.12. ENCLS_EXITING_BITMAP (320) and TSC_MULTIPLIER (328) are stored;
 *   the former CR3-target values are `dead_space` (376–407) and VMREAD/VMWRITE of them fail.
 * - "v5.3": the 2019 code the seed series describe. CR3_TARGET_VALUE0..3 are stored at
 *   376/384/392/400; there is no ENCLS-exiting bitmap or TSC multiplier (`padding64[3]` at 320).
 * Both store 178 encodings, and the struct is 998 bytes in both.
 */

import { fieldByName } from "./field-catalog";
import {
  FIELD_WIDTH,
  FIELD_WIDTH_BYTES,
  type FieldWidth,
  fieldIndex,
  vmcs12Slot,
  vmcsFieldWidth,
} from "./field-encoding";

/** Revision identifier of vmcs12; reported in IA32_VMX_BASIC and checked by VMPTRLD (kvm: VMCS12_REVISION). */
export const VMCS12_REVISION = 0x11e57ed0;

/** Bytes L1 allocates for a VMCS or VMXON region; KVM copies this much (kvm: VMCS12_SIZE). */
export const VMCS12_SIZE = 0x1000;

/** The header words at the start of vmcs12 (kvm: `struct vmcs_hdr`, `abort`, `launch_state`). */
export const VMCS12_HEADER = {
  /** u32 at 0: revision identifier in bits 30:0, shadow-VMCS indicator in bit 31 (SDM 25.2). */
  REVISION_OFFSET: 0,
  REVISION_MASK: 0x7fffffff,
  SHADOW_VMCS: 0x80000000,
  /** u32 at 4: VMX-abort indicator (SDM 25.2). */
  ABORT_OFFSET: 4,
  /** u32 at 8: 0 = clear, 1 = launched (kvm: set by VMCLEAR / a successful VMLAUNCH). */
  LAUNCH_STATE_OFFSET: 8,
} as const;

/** Values of `launch_state` (SDM 25.1 "clear"/"launched"; kvm: `vmcs12->launch_state`). */
export const LAUNCH_STATE = { CLEAR: 0, LAUNCHED: 1 } as const;

/** Result of `vmcs12FieldOffset` for an encoding vmcs12 does not store (→ VM-instruction error 12). */
export const VMCS12_UNSUPPORTED = -1;

/** Kernel eras whose vmcs12 table is modelled. */
export const VMCS12_ERAS = ["v5.3", "v6.12"] as const;
export type Vmcs12Era = (typeof VMCS12_ERAS)[number];
export const DEFAULT_VMCS12_ERA: Vmcs12Era = "v6.12";

/** One member of `struct vmcs12` in declaration order. */
export interface Vmcs12Member {
  /** The C member name, e.g. "guest_rip", "padding64", "dead_space". */
  readonly member: string;
  readonly offset: number;
  readonly size: number;
  /** KVM name of the field stored here, or null for the header, padding and dead space. */
  readonly field: string | null;
}

/** One encoding stored in vmcs12 (a 64-bit field contributes two: full and `_HIGH`). */
export interface Vmcs12Field {
  /** KVM name, e.g. "GUEST_RIP" or "IO_BITMAP_A_HIGH". */
  readonly name: string;
  readonly encoding: number;
  /** The vmcs12 member holding the value (`_HIGH` rows name the member of the full field). */
  readonly member: string;
  /** Byte offset in vmcs12; `_HIGH` rows are the full field's offset + 4 (kvm: FIELD64). */
  readonly offset: number;
  /** Access width as `vmcs_field_width` gives it. */
  readonly width: FieldWidth;
}

/** A vmcs12 layout of one era, built once. */
export interface Vmcs12Layout {
  readonly era: Vmcs12Era;
  /** Struct members, header and padding included, in declaration order. */
  readonly members: readonly Vmcs12Member[];
  /** Stored encodings in struct order (full field, then its `_HIGH`). */
  readonly fields: readonly Vmcs12Field[];
  /** `sizeof(struct vmcs12)` (packed). */
  readonly structSize: number;
  /**
   * KVM's sparse table: offset of each stored encoding at index `ROL16(encoding, 6)`, 0 elsewhere
   * (offset 0 is the header, so 0 doubles as "absent"); its length is the largest used slot + 1
   * (kvm: `vmcs12_field_offsets`, `nr_vmcs12_fields`).
   */
  readonly offsets: Uint16Array;
}

type MemberSpec = readonly [member: string, size: number, field: string | null];

const u64 = (field: string): MemberSpec => [field.toLowerCase(), 8, field];
const natural = u64;
const u32 = (field: string): MemberSpec => [field.toLowerCase(), 4, field];
const u16 = (field: string): MemberSpec => [field.toLowerCase(), 2, field];
const pad = (member: string, size: number): MemberSpec => [member, size, null];

/**
 * `struct vmcs12` member list for an era. KVM's member names are the lower-case field names (e.g.
 * `GUEST_RIP` ↔ `guest_rip`); the layout test checks every one against the CHECK_OFFSET list.
 */
function memberSpecs(era: Vmcs12Era): MemberSpec[] {
  const modern = era === "v6.12";
  return [
    pad("hdr", 4),
    pad("abort", 4),
    pad("launch_state", 4),
    pad("padding", 7 * 4),
    ...[
      "IO_BITMAP_A",
      "IO_BITMAP_B",
      "MSR_BITMAP",
      "VM_EXIT_MSR_STORE_ADDR",
      "VM_EXIT_MSR_LOAD_ADDR",
      "VM_ENTRY_MSR_LOAD_ADDR",
      "TSC_OFFSET",
      "VIRTUAL_APIC_PAGE_ADDR",
      "APIC_ACCESS_ADDR",
      "POSTED_INTR_DESC_ADDR",
      "EPT_POINTER",
      "EOI_EXIT_BITMAP0",
      "EOI_EXIT_BITMAP1",
      "EOI_EXIT_BITMAP2",
      "EOI_EXIT_BITMAP3",
      "XSS_EXIT_BITMAP",
      "GUEST_PHYSICAL_ADDRESS",
      "VMCS_LINK_POINTER",
      "GUEST_IA32_DEBUGCTL",
      "GUEST_IA32_PAT",
      "GUEST_IA32_EFER",
      "GUEST_IA32_PERF_GLOBAL_CTRL",
      "GUEST_PDPTR0",
      "GUEST_PDPTR1",
      "GUEST_PDPTR2",
      "GUEST_PDPTR3",
      "GUEST_BNDCFGS",
      "HOST_IA32_PAT",
      "HOST_IA32_EFER",
      "HOST_IA32_PERF_GLOBAL_CTRL",
      "VMREAD_BITMAP",
      "VMWRITE_BITMAP",
      "VM_FUNCTION_CONTROL",
      "EPTP_LIST_ADDRESS",
      "PML_ADDRESS",
    ].map(u64),
    // Nested SGX (~v5.13) and TSC scaling (~v5.14) took two of the three spare u64s.
    ...(modern
      ? [u64("ENCLS_EXITING_BITMAP"), u64("TSC_MULTIPLIER"), pad("padding64", 8)]
      : [pad("padding64", 24)]),
    ...["CR0_GUEST_HOST_MASK", "CR4_GUEST_HOST_MASK", "CR0_READ_SHADOW", "CR4_READ_SHADOW"].map(natural),
    // "KVM: nVMX: Remove non-functional 'support' for CR3 target values" (2020) left the space dead.
    ...(modern
      ? [pad("dead_space", 4 * 8)]
      : ["CR3_TARGET_VALUE0", "CR3_TARGET_VALUE1", "CR3_TARGET_VALUE2", "CR3_TARGET_VALUE3"].map(natural)),
    ...[
      "EXIT_QUALIFICATION",
      "GUEST_LINEAR_ADDRESS",
      "GUEST_CR0",
      "GUEST_CR3",
      "GUEST_CR4",
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
      "GUEST_DR7",
      "GUEST_RSP",
      "GUEST_RIP",
      "GUEST_RFLAGS",
      "GUEST_PENDING_DBG_EXCEPTIONS",
      "GUEST_SYSENTER_ESP",
      "GUEST_SYSENTER_EIP",
      "HOST_CR0",
      "HOST_CR3",
      "HOST_CR4",
      "HOST_FS_BASE",
      "HOST_GS_BASE",
      "HOST_TR_BASE",
      "HOST_GDTR_BASE",
      "HOST_IDTR_BASE",
      "HOST_IA32_SYSENTER_ESP",
      "HOST_IA32_SYSENTER_EIP",
      "HOST_RSP",
      "HOST_RIP",
    ].map(natural),
    pad("paddingl", 8 * 8),
    ...[
      "PIN_BASED_VM_EXEC_CONTROL",
      "CPU_BASED_VM_EXEC_CONTROL",
      "EXCEPTION_BITMAP",
      "PAGE_FAULT_ERROR_CODE_MASK",
      "PAGE_FAULT_ERROR_CODE_MATCH",
      "CR3_TARGET_COUNT",
      "VM_EXIT_CONTROLS",
      "VM_EXIT_MSR_STORE_COUNT",
      "VM_EXIT_MSR_LOAD_COUNT",
      "VM_ENTRY_CONTROLS",
      "VM_ENTRY_MSR_LOAD_COUNT",
      "VM_ENTRY_INTR_INFO_FIELD",
      "VM_ENTRY_EXCEPTION_ERROR_CODE",
      "VM_ENTRY_INSTRUCTION_LEN",
      "TPR_THRESHOLD",
      "SECONDARY_VM_EXEC_CONTROL",
      "VM_INSTRUCTION_ERROR",
      "VM_EXIT_REASON",
      "VM_EXIT_INTR_INFO",
      "VM_EXIT_INTR_ERROR_CODE",
      "IDT_VECTORING_INFO_FIELD",
      "IDT_VECTORING_ERROR_CODE",
      "VM_EXIT_INSTRUCTION_LEN",
      "VMX_INSTRUCTION_INFO",
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
      "GUEST_CS_AR_BYTES",
      "GUEST_SS_AR_BYTES",
      "GUEST_DS_AR_BYTES",
      "GUEST_FS_AR_BYTES",
      "GUEST_GS_AR_BYTES",
      "GUEST_LDTR_AR_BYTES",
      "GUEST_TR_AR_BYTES",
      "GUEST_INTERRUPTIBILITY_INFO",
      "GUEST_ACTIVITY_STATE",
      "GUEST_SYSENTER_CS",
      "HOST_IA32_SYSENTER_CS",
      "VMX_PREEMPTION_TIMER_VALUE",
    ].map(u32),
    pad("padding32", 7 * 4),
    ...[
      "VIRTUAL_PROCESSOR_ID",
      "POSTED_INTR_NV",
      "GUEST_ES_SELECTOR",
      "GUEST_CS_SELECTOR",
      "GUEST_SS_SELECTOR",
      "GUEST_DS_SELECTOR",
      "GUEST_FS_SELECTOR",
      "GUEST_GS_SELECTOR",
      "GUEST_LDTR_SELECTOR",
      "GUEST_TR_SELECTOR",
      "GUEST_INTR_STATUS",
      "HOST_ES_SELECTOR",
      "HOST_CS_SELECTOR",
      "HOST_SS_SELECTOR",
      "HOST_DS_SELECTOR",
      "HOST_FS_SELECTOR",
      "HOST_GS_SELECTOR",
      "HOST_TR_SELECTOR",
      "GUEST_PML_INDEX",
    ].map(u16),
  ];
}

function buildLayout(era: Vmcs12Era): Vmcs12Layout {
  const members: Vmcs12Member[] = [];
  const fields: Vmcs12Field[] = [];
  let offset = 0;
  for (const [member, size, name] of memberSpecs(era)) {
    members.push(Object.freeze({ member, offset, size, field: name }));
    if (name !== null) {
      const field = fieldByName(name);
      if (!field?.inKvmEnum) throw new Error(`vmcs12 member ${member} names no KVM field`);
      if (FIELD_WIDTH_BYTES[field.width] !== size)
        throw new Error(`vmcs12 member ${member} has the wrong size`);
      fields.push(Object.freeze({ name, encoding: field.encoding, member, offset, width: field.width }));
      // kvm: FIELD64 also registers <NAME>_HIGH at offset + sizeof(u32).
      if (field.width === FIELD_WIDTH.U64) {
        const high = field.encoding + 1;
        fields.push(
          Object.freeze({
            name: `${name}_HIGH`,
            encoding: high,
            member,
            offset: offset + 4,
            width: vmcsFieldWidth(high),
          }),
        );
      }
    }
    offset += size;
  }
  let maxSlot = 0;
  for (const f of fields) maxSlot = Math.max(maxSlot, vmcs12Slot(f.encoding));
  const offsets = new Uint16Array(maxSlot + 1);
  for (const f of fields) offsets[vmcs12Slot(f.encoding)] = f.offset;
  return Object.freeze({
    era,
    members: Object.freeze(members),
    fields: Object.freeze(fields),
    structSize: offset,
    offsets,
  });
}

const LAYOUTS: Readonly<Record<Vmcs12Era, Vmcs12Layout>> = {
  "v5.3": buildLayout("v5.3"),
  "v6.12": buildLayout("v6.12"),
};

/** The vmcs12 layout of an era (default "v6.12"). Throws a RangeError for an unknown era. */
export function vmcs12Layout(era: Vmcs12Era = DEFAULT_VMCS12_ERA): Vmcs12Layout {
  const layout = LAYOUTS[era];
  if (layout === undefined)
    throw new RangeError(`unknown vmcs12 era "${era}" (expected ${VMCS12_ERAS.join(", ")})`);
  return layout;
}

/**
 * Offset of `encoding` in a sparse offset table, or `VMCS12_UNSUPPORTED` (kvm:
 * `get_vmcs12_field_offset`): unsupported when any bit from 15 up is set (or the value is not a
 * non-negative integer), when `ROL16(encoding, 6)` is past the table, or when the slot holds 0.
 */
export function lookupVmcs12Offset(offsets: Uint16Array, encoding: number): number {
  if ((encoding & 0x7fff) !== encoding) return VMCS12_UNSUPPORTED;
  const slot = ((encoding << 6) | (encoding >>> 10)) & 0xffff;
  if (slot >= offsets.length) return VMCS12_UNSUPPORTED;
  const offset = offsets[slot]!;
  return offset === 0 ? VMCS12_UNSUPPORTED : offset;
}

/**
 * Byte offset of a field in vmcs12, or -1 when vmcs12 does not store it (VMREAD/VMWRITE then fail
 * with VM-instruction error 12, "unsupported VMCS component") (kvm: `get_vmcs12_field_offset`).
 */
export function vmcs12FieldOffset(encoding: number, era: Vmcs12Era = DEFAULT_VMCS12_ERA): number {
  return lookupVmcs12Offset(vmcs12Layout(era).offsets, encoding);
}

/** 2019 constant: the largest field index in vmcs12, VMX_PREEMPTION_TIMER_VALUE's (kvm v5.3: VMCS12_MAX_FIELD_INDEX). */
const V5_3_MAX_FIELD_INDEX = 0x17;

/**
 * The largest `vmcs_field_index` over the encodings a layout stores, found by scanning the sparse
 * table and undoing the rotation (kvm 6.12: `nested_vmx_calc_vmcs_enum_msr`).
 */
export function maxVmcs12FieldIndex(layout: Vmcs12Layout): number {
  let max = 0;
  for (let slot = 0; slot < layout.offsets.length; slot++) {
    if (layout.offsets[slot] === 0) continue;
    const index = fieldIndex(((slot >>> 6) | (slot << 10)) & 0xffff);
    if (index > max) max = index;
  }
  return max;
}

/**
 * IA32_VMX_VMCS_ENUM as KVM reports it to L1: the highest field index, in bits 9:1 (SDM Vol. 3D
 * A.9). 6.12 computes it from the table at init (0x19 → 0x32, from TSC_MULTIPLIER); v5.3 used the
 * hard-coded index 0x17 (→ 0x2e).
 */
export function vmcsEnumMsr(era: Vmcs12Era = DEFAULT_VMCS12_ERA): number {
  const maxIndex = era === "v5.3" ? V5_3_MAX_FIELD_INDEX : maxVmcs12FieldIndex(vmcs12Layout(era));
  return maxIndex << 1;
}
