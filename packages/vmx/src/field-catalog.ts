/**
 * The VMCS field catalog: every field of KVM 6.12's `enum vmcs_field` (arch/x86/include/asm/vmx.h;
 * 153 fields, 194 encodings with the 41 `_HIGH` halves) plus the seven architectural fields KVM
 * never names (EPTP index, executive-VMCS pointer, guest SMBASE, I/O RCX/RSI/RDI/RIP), which are
 * marked `inKvmEnum: false` and carry SDM-style names.
 *
 * Encodings are computed from (type, width, index) as the SDM defines them (SDM Vol. 3C 25.11.2,
 * Vol. 3D Appendix B), not typed in as hex; `field-catalog.test.ts` checks each one against the
 * constant in KVM's enum. Every 64-bit field also gets its `_HIGH` row (access type 1, encoding + 1),
 * whose width is 32 as KVM's `vmcs_field_width` says.
 *
 * The catalog is built once at module load: a frozen array of rows, a Map by upper-case name and an
 * Int16Array from encoding to row, so every lookup is O(1).
 */

import {
  ACCESS_TYPE,
  type AccessType,
  encodeFieldEncoding,
  FIELD_TYPE,
  FIELD_WIDTH,
  type FieldType,
  type FieldWidth,
  formatFieldEncoding,
} from "./field-encoding";

/** Functional groups of fields, following the areas of SDM Vol. 3C 25.3–25.9. */
export const FIELD_GROUP = {
  /** SDM 25.6, VM-execution control fields. */
  EXECUTION_CONTROLS: "execution controls",
  /** SDM 25.7, VM-exit control fields. */
  EXIT_CONTROLS: "exit controls",
  /** SDM 25.8, VM-entry control fields. */
  ENTRY_CONTROLS: "entry controls",
  /** SDM 25.9, VM-exit information fields (read-only). */
  EXIT_INFORMATION: "exit information",
  /** SDM 25.4.1: control and debug registers, RSP, RIP, RFLAGS, SMBASE. */
  GUEST_REGISTERS: "guest register state",
  /** SDM 25.4.1: segment selectors, bases, limits, access rights; GDTR and IDTR. */
  GUEST_SEGMENTS: "guest segment state",
  /** SDM 25.4.1: the MSRs held in the guest-state area. */
  GUEST_MSRS: "guest MSRs",
  /** SDM 25.4.2: activity and interruptibility state, pending debug exceptions, link pointer, timer, PDPTEs. */
  GUEST_NON_REGISTER: "guest non-register state",
  /** SDM 25.5: host CR0, CR3, CR4, RSP, RIP. */
  HOST_REGISTERS: "host register state",
  /** SDM 25.5: host selectors and FS/GS/TR/GDTR/IDTR bases. */
  HOST_SEGMENTS: "host segment state",
  /** SDM 25.5: the MSRs loaded on VM exit. */
  HOST_MSRS: "host MSRs",
} as const;
export type FieldGroup = (typeof FIELD_GROUP)[keyof typeof FIELD_GROUP];

/** One VMCS encoding. A 64-bit field has two rows: the full field and its `_HIGH` half. */
export interface VmcsField {
  /** KVM's enumerator name (e.g. "GUEST_RIP"), or an SDM-style name when KVM has none. */
  readonly name: string;
  /** The SDM's name of the field (e.g. "Guest RIP"); a `_HIGH` row adds "(high)". */
  readonly title: string;
  readonly encoding: number;
  /** Access width as KVM's `vmcs_field_width` computes it: `_HIGH` rows are U32. */
  readonly width: FieldWidth;
  readonly type: FieldType;
  readonly access: AccessType;
  /** Bits 9:1 of the encoding. */
  readonly index: number;
  readonly group: FieldGroup;
  /** Encoding of the full field: `encoding` itself, or `encoding - 1` for a `_HIGH` row. */
  readonly base: number;
  /** True for the 194 encodings of KVM's `enum vmcs_field` (6.12). */
  readonly inKvmEnum: boolean;
}

/** [index, name, SDM title, group]; encodings come from the section's type and width. */
type Row = readonly [index: number, name: string, title: string, group: FieldGroup];

interface Section {
  readonly type: FieldType;
  readonly width: FieldWidth;
  readonly rows: readonly Row[];
  /** Names that are not in KVM's enum (SDM-only fields). */
  readonly sdmOnly?: readonly string[];
}

const G = FIELD_GROUP;

const SECTIONS: readonly Section[] = [
  // SDM Vol. 3D B.1.1: 16-bit control fields.
  {
    type: FIELD_TYPE.CONTROL,
    width: FIELD_WIDTH.U16,
    sdmOnly: ["EPTP_INDEX"],
    rows: [
      [0, "VIRTUAL_PROCESSOR_ID", "Virtual-processor identifier (VPID)", G.EXECUTION_CONTROLS],
      [1, "POSTED_INTR_NV", "Posted-interrupt notification vector", G.EXECUTION_CONTROLS],
      [2, "EPTP_INDEX", "EPTP index", G.EXECUTION_CONTROLS],
      [4, "LAST_PID_POINTER_INDEX", "Last PID-pointer index", G.EXECUTION_CONTROLS],
    ],
  },
  // SDM Vol. 3D B.1.2: 16-bit guest-state fields.
  {
    type: FIELD_TYPE.GUEST,
    width: FIELD_WIDTH.U16,
    rows: [
      [0, "GUEST_ES_SELECTOR", "Guest ES selector", G.GUEST_SEGMENTS],
      [1, "GUEST_CS_SELECTOR", "Guest CS selector", G.GUEST_SEGMENTS],
      [2, "GUEST_SS_SELECTOR", "Guest SS selector", G.GUEST_SEGMENTS],
      [3, "GUEST_DS_SELECTOR", "Guest DS selector", G.GUEST_SEGMENTS],
      [4, "GUEST_FS_SELECTOR", "Guest FS selector", G.GUEST_SEGMENTS],
      [5, "GUEST_GS_SELECTOR", "Guest GS selector", G.GUEST_SEGMENTS],
      [6, "GUEST_LDTR_SELECTOR", "Guest LDTR selector", G.GUEST_SEGMENTS],
      [7, "GUEST_TR_SELECTOR", "Guest TR selector", G.GUEST_SEGMENTS],
      [8, "GUEST_INTR_STATUS", "Guest interrupt status", G.GUEST_NON_REGISTER],
      [9, "GUEST_PML_INDEX", "PML index", G.GUEST_NON_REGISTER],
    ],
  },
  // SDM Vol. 3D B.1.3: 16-bit host-state fields.
  {
    type: FIELD_TYPE.HOST,
    width: FIELD_WIDTH.U16,
    rows: [
      [0, "HOST_ES_SELECTOR", "Host ES selector", G.HOST_SEGMENTS],
      [1, "HOST_CS_SELECTOR", "Host CS selector", G.HOST_SEGMENTS],
      [2, "HOST_SS_SELECTOR", "Host SS selector", G.HOST_SEGMENTS],
      [3, "HOST_DS_SELECTOR", "Host DS selector", G.HOST_SEGMENTS],
      [4, "HOST_FS_SELECTOR", "Host FS selector", G.HOST_SEGMENTS],
      [5, "HOST_GS_SELECTOR", "Host GS selector", G.HOST_SEGMENTS],
      [6, "HOST_TR_SELECTOR", "Host TR selector", G.HOST_SEGMENTS],
    ],
  },
  // SDM Vol. 3D B.2.1: 64-bit control fields.
  {
    type: FIELD_TYPE.CONTROL,
    width: FIELD_WIDTH.U64,
    sdmOnly: ["EXECUTIVE_VMCS_POINTER"],
    rows: [
      [0, "IO_BITMAP_A", "Address of I/O bitmap A", G.EXECUTION_CONTROLS],
      [1, "IO_BITMAP_B", "Address of I/O bitmap B", G.EXECUTION_CONTROLS],
      [2, "MSR_BITMAP", "Address of MSR bitmaps", G.EXECUTION_CONTROLS],
      [3, "VM_EXIT_MSR_STORE_ADDR", "VM-exit MSR-store address", G.EXIT_CONTROLS],
      [4, "VM_EXIT_MSR_LOAD_ADDR", "VM-exit MSR-load address", G.EXIT_CONTROLS],
      [5, "VM_ENTRY_MSR_LOAD_ADDR", "VM-entry MSR-load address", G.ENTRY_CONTROLS],
      [6, "EXECUTIVE_VMCS_POINTER", "Executive-VMCS pointer", G.EXECUTION_CONTROLS],
      [7, "PML_ADDRESS", "PML address", G.EXECUTION_CONTROLS],
      [8, "TSC_OFFSET", "TSC offset", G.EXECUTION_CONTROLS],
      [9, "VIRTUAL_APIC_PAGE_ADDR", "Virtual-APIC address", G.EXECUTION_CONTROLS],
      [10, "APIC_ACCESS_ADDR", "APIC-access address", G.EXECUTION_CONTROLS],
      [11, "POSTED_INTR_DESC_ADDR", "Posted-interrupt descriptor address", G.EXECUTION_CONTROLS],
      [12, "VM_FUNCTION_CONTROL", "VM-function controls", G.EXECUTION_CONTROLS],
      [13, "EPT_POINTER", "EPT pointer (EPTP)", G.EXECUTION_CONTROLS],
      [14, "EOI_EXIT_BITMAP0", "EOI-exit bitmap 0", G.EXECUTION_CONTROLS],
      [15, "EOI_EXIT_BITMAP1", "EOI-exit bitmap 1", G.EXECUTION_CONTROLS],
      [16, "EOI_EXIT_BITMAP2", "EOI-exit bitmap 2", G.EXECUTION_CONTROLS],
      [17, "EOI_EXIT_BITMAP3", "EOI-exit bitmap 3", G.EXECUTION_CONTROLS],
      [18, "EPTP_LIST_ADDRESS", "EPTP-list address", G.EXECUTION_CONTROLS],
      [19, "VMREAD_BITMAP", "VMREAD-bitmap address", G.EXECUTION_CONTROLS],
      [20, "VMWRITE_BITMAP", "VMWRITE-bitmap address", G.EXECUTION_CONTROLS],
      [21, "VE_INFORMATION_ADDRESS", "Virtualization-exception information address", G.EXECUTION_CONTROLS],
      [22, "XSS_EXIT_BITMAP", "XSS-exiting bitmap", G.EXECUTION_CONTROLS],
      [23, "ENCLS_EXITING_BITMAP", "ENCLS-exiting bitmap", G.EXECUTION_CONTROLS],
      [25, "TSC_MULTIPLIER", "TSC multiplier", G.EXECUTION_CONTROLS],
      [
        26,
        "TERTIARY_VM_EXEC_CONTROL",
        "Tertiary processor-based VM-execution controls",
        G.EXECUTION_CONTROLS,
      ],
      [33, "PID_POINTER_TABLE", "PID-pointer table address", G.EXECUTION_CONTROLS],
    ],
  },
  // SDM Vol. 3D B.2.2: 64-bit read-only data field.
  {
    type: FIELD_TYPE.EXIT_INFO,
    width: FIELD_WIDTH.U64,
    rows: [[0, "GUEST_PHYSICAL_ADDRESS", "Guest-physical address", G.EXIT_INFORMATION]],
  },
  // SDM Vol. 3D B.2.3: 64-bit guest-state fields.
  {
    type: FIELD_TYPE.GUEST,
    width: FIELD_WIDTH.U64,
    rows: [
      [0, "VMCS_LINK_POINTER", "VMCS link pointer", G.GUEST_NON_REGISTER],
      [1, "GUEST_IA32_DEBUGCTL", "Guest IA32_DEBUGCTL", G.GUEST_MSRS],
      [2, "GUEST_IA32_PAT", "Guest IA32_PAT", G.GUEST_MSRS],
      [3, "GUEST_IA32_EFER", "Guest IA32_EFER", G.GUEST_MSRS],
      [4, "GUEST_IA32_PERF_GLOBAL_CTRL", "Guest IA32_PERF_GLOBAL_CTRL", G.GUEST_MSRS],
      [5, "GUEST_PDPTR0", "Guest PDPTE0", G.GUEST_NON_REGISTER],
      [6, "GUEST_PDPTR1", "Guest PDPTE1", G.GUEST_NON_REGISTER],
      [7, "GUEST_PDPTR2", "Guest PDPTE2", G.GUEST_NON_REGISTER],
      [8, "GUEST_PDPTR3", "Guest PDPTE3", G.GUEST_NON_REGISTER],
      [9, "GUEST_BNDCFGS", "Guest IA32_BNDCFGS", G.GUEST_MSRS],
      [10, "GUEST_IA32_RTIT_CTL", "Guest IA32_RTIT_CTL", G.GUEST_MSRS],
    ],
  },
  // SDM Vol. 3D B.2.4: 64-bit host-state fields.
  {
    type: FIELD_TYPE.HOST,
    width: FIELD_WIDTH.U64,
    rows: [
      [0, "HOST_IA32_PAT", "Host IA32_PAT", G.HOST_MSRS],
      [1, "HOST_IA32_EFER", "Host IA32_EFER", G.HOST_MSRS],
      [2, "HOST_IA32_PERF_GLOBAL_CTRL", "Host IA32_PERF_GLOBAL_CTRL", G.HOST_MSRS],
    ],
  },
  // SDM Vol. 3D B.3.1: 32-bit control fields.
  {
    type: FIELD_TYPE.CONTROL,
    width: FIELD_WIDTH.U32,
    rows: [
      [0, "PIN_BASED_VM_EXEC_CONTROL", "Pin-based VM-execution controls", G.EXECUTION_CONTROLS],
      [1, "CPU_BASED_VM_EXEC_CONTROL", "Primary processor-based VM-execution controls", G.EXECUTION_CONTROLS],
      [2, "EXCEPTION_BITMAP", "Exception bitmap", G.EXECUTION_CONTROLS],
      [3, "PAGE_FAULT_ERROR_CODE_MASK", "Page-fault error-code mask", G.EXECUTION_CONTROLS],
      [4, "PAGE_FAULT_ERROR_CODE_MATCH", "Page-fault error-code match", G.EXECUTION_CONTROLS],
      [5, "CR3_TARGET_COUNT", "CR3-target count", G.EXECUTION_CONTROLS],
      [6, "VM_EXIT_CONTROLS", "Primary VM-exit controls", G.EXIT_CONTROLS],
      [7, "VM_EXIT_MSR_STORE_COUNT", "VM-exit MSR-store count", G.EXIT_CONTROLS],
      [8, "VM_EXIT_MSR_LOAD_COUNT", "VM-exit MSR-load count", G.EXIT_CONTROLS],
      [9, "VM_ENTRY_CONTROLS", "VM-entry controls", G.ENTRY_CONTROLS],
      [10, "VM_ENTRY_MSR_LOAD_COUNT", "VM-entry MSR-load count", G.ENTRY_CONTROLS],
      [11, "VM_ENTRY_INTR_INFO_FIELD", "VM-entry interruption-information field", G.ENTRY_CONTROLS],
      [12, "VM_ENTRY_EXCEPTION_ERROR_CODE", "VM-entry exception error code", G.ENTRY_CONTROLS],
      [13, "VM_ENTRY_INSTRUCTION_LEN", "VM-entry instruction length", G.ENTRY_CONTROLS],
      [14, "TPR_THRESHOLD", "TPR threshold", G.EXECUTION_CONTROLS],
      [
        15,
        "SECONDARY_VM_EXEC_CONTROL",
        "Secondary processor-based VM-execution controls",
        G.EXECUTION_CONTROLS,
      ],
      [16, "PLE_GAP", "PLE_Gap", G.EXECUTION_CONTROLS],
      [17, "PLE_WINDOW", "PLE_Window", G.EXECUTION_CONTROLS],
      [18, "NOTIFY_WINDOW", "Instruction-timeout control (notify window)", G.EXECUTION_CONTROLS],
    ],
  },
  // SDM Vol. 3D B.3.2: 32-bit read-only data fields.
  {
    type: FIELD_TYPE.EXIT_INFO,
    width: FIELD_WIDTH.U32,
    rows: [
      [0, "VM_INSTRUCTION_ERROR", "VM-instruction error", G.EXIT_INFORMATION],
      [1, "VM_EXIT_REASON", "Exit reason", G.EXIT_INFORMATION],
      [2, "VM_EXIT_INTR_INFO", "VM-exit interruption information", G.EXIT_INFORMATION],
      [3, "VM_EXIT_INTR_ERROR_CODE", "VM-exit interruption error code", G.EXIT_INFORMATION],
      [4, "IDT_VECTORING_INFO_FIELD", "IDT-vectoring information field", G.EXIT_INFORMATION],
      [5, "IDT_VECTORING_ERROR_CODE", "IDT-vectoring error code", G.EXIT_INFORMATION],
      [6, "VM_EXIT_INSTRUCTION_LEN", "VM-exit instruction length", G.EXIT_INFORMATION],
      [7, "VMX_INSTRUCTION_INFO", "VM-exit instruction information", G.EXIT_INFORMATION],
    ],
  },
  // SDM Vol. 3D B.3.3: 32-bit guest-state fields.
  {
    type: FIELD_TYPE.GUEST,
    width: FIELD_WIDTH.U32,
    sdmOnly: ["GUEST_SMBASE"],
    rows: [
      [0, "GUEST_ES_LIMIT", "Guest ES limit", G.GUEST_SEGMENTS],
      [1, "GUEST_CS_LIMIT", "Guest CS limit", G.GUEST_SEGMENTS],
      [2, "GUEST_SS_LIMIT", "Guest SS limit", G.GUEST_SEGMENTS],
      [3, "GUEST_DS_LIMIT", "Guest DS limit", G.GUEST_SEGMENTS],
      [4, "GUEST_FS_LIMIT", "Guest FS limit", G.GUEST_SEGMENTS],
      [5, "GUEST_GS_LIMIT", "Guest GS limit", G.GUEST_SEGMENTS],
      [6, "GUEST_LDTR_LIMIT", "Guest LDTR limit", G.GUEST_SEGMENTS],
      [7, "GUEST_TR_LIMIT", "Guest TR limit", G.GUEST_SEGMENTS],
      [8, "GUEST_GDTR_LIMIT", "Guest GDTR limit", G.GUEST_SEGMENTS],
      [9, "GUEST_IDTR_LIMIT", "Guest IDTR limit", G.GUEST_SEGMENTS],
      [10, "GUEST_ES_AR_BYTES", "Guest ES access rights", G.GUEST_SEGMENTS],
      [11, "GUEST_CS_AR_BYTES", "Guest CS access rights", G.GUEST_SEGMENTS],
      [12, "GUEST_SS_AR_BYTES", "Guest SS access rights", G.GUEST_SEGMENTS],
      [13, "GUEST_DS_AR_BYTES", "Guest DS access rights", G.GUEST_SEGMENTS],
      [14, "GUEST_FS_AR_BYTES", "Guest FS access rights", G.GUEST_SEGMENTS],
      [15, "GUEST_GS_AR_BYTES", "Guest GS access rights", G.GUEST_SEGMENTS],
      [16, "GUEST_LDTR_AR_BYTES", "Guest LDTR access rights", G.GUEST_SEGMENTS],
      [17, "GUEST_TR_AR_BYTES", "Guest TR access rights", G.GUEST_SEGMENTS],
      [18, "GUEST_INTERRUPTIBILITY_INFO", "Guest interruptibility state", G.GUEST_NON_REGISTER],
      [19, "GUEST_ACTIVITY_STATE", "Guest activity state", G.GUEST_NON_REGISTER],
      [20, "GUEST_SMBASE", "Guest SMBASE", G.GUEST_REGISTERS],
      [21, "GUEST_SYSENTER_CS", "Guest IA32_SYSENTER_CS", G.GUEST_MSRS],
      [23, "VMX_PREEMPTION_TIMER_VALUE", "VMX-preemption timer value", G.GUEST_NON_REGISTER],
    ],
  },
  // SDM Vol. 3D B.3.4: 32-bit host-state field.
  {
    type: FIELD_TYPE.HOST,
    width: FIELD_WIDTH.U32,
    rows: [[0, "HOST_IA32_SYSENTER_CS", "Host IA32_SYSENTER_CS", G.HOST_MSRS]],
  },
  // SDM Vol. 3D B.4.1: natural-width control fields.
  {
    type: FIELD_TYPE.CONTROL,
    width: FIELD_WIDTH.NATURAL,
    rows: [
      [0, "CR0_GUEST_HOST_MASK", "CR0 guest/host mask", G.EXECUTION_CONTROLS],
      [1, "CR4_GUEST_HOST_MASK", "CR4 guest/host mask", G.EXECUTION_CONTROLS],
      [2, "CR0_READ_SHADOW", "CR0 read shadow", G.EXECUTION_CONTROLS],
      [3, "CR4_READ_SHADOW", "CR4 read shadow", G.EXECUTION_CONTROLS],
      [4, "CR3_TARGET_VALUE0", "CR3-target value 0", G.EXECUTION_CONTROLS],
      [5, "CR3_TARGET_VALUE1", "CR3-target value 1", G.EXECUTION_CONTROLS],
      [6, "CR3_TARGET_VALUE2", "CR3-target value 2", G.EXECUTION_CONTROLS],
      [7, "CR3_TARGET_VALUE3", "CR3-target value 3", G.EXECUTION_CONTROLS],
    ],
  },
  // SDM Vol. 3D B.4.2: natural-width read-only data fields.
  {
    type: FIELD_TYPE.EXIT_INFO,
    width: FIELD_WIDTH.NATURAL,
    sdmOnly: ["IO_RCX", "IO_RSI", "IO_RDI", "IO_RIP"],
    rows: [
      [0, "EXIT_QUALIFICATION", "Exit qualification", G.EXIT_INFORMATION],
      [1, "IO_RCX", "I/O RCX", G.EXIT_INFORMATION],
      [2, "IO_RSI", "I/O RSI", G.EXIT_INFORMATION],
      [3, "IO_RDI", "I/O RDI", G.EXIT_INFORMATION],
      [4, "IO_RIP", "I/O RIP", G.EXIT_INFORMATION],
      [5, "GUEST_LINEAR_ADDRESS", "Guest-linear address", G.EXIT_INFORMATION],
    ],
  },
  // SDM Vol. 3D B.4.3: natural-width guest-state fields.
  {
    type: FIELD_TYPE.GUEST,
    width: FIELD_WIDTH.NATURAL,
    rows: [
      [0, "GUEST_CR0", "Guest CR0", G.GUEST_REGISTERS],
      [1, "GUEST_CR3", "Guest CR3", G.GUEST_REGISTERS],
      [2, "GUEST_CR4", "Guest CR4", G.GUEST_REGISTERS],
      [3, "GUEST_ES_BASE", "Guest ES base", G.GUEST_SEGMENTS],
      [4, "GUEST_CS_BASE", "Guest CS base", G.GUEST_SEGMENTS],
      [5, "GUEST_SS_BASE", "Guest SS base", G.GUEST_SEGMENTS],
      [6, "GUEST_DS_BASE", "Guest DS base", G.GUEST_SEGMENTS],
      [7, "GUEST_FS_BASE", "Guest FS base", G.GUEST_SEGMENTS],
      [8, "GUEST_GS_BASE", "Guest GS base", G.GUEST_SEGMENTS],
      [9, "GUEST_LDTR_BASE", "Guest LDTR base", G.GUEST_SEGMENTS],
      [10, "GUEST_TR_BASE", "Guest TR base", G.GUEST_SEGMENTS],
      [11, "GUEST_GDTR_BASE", "Guest GDTR base", G.GUEST_SEGMENTS],
      [12, "GUEST_IDTR_BASE", "Guest IDTR base", G.GUEST_SEGMENTS],
      [13, "GUEST_DR7", "Guest DR7", G.GUEST_REGISTERS],
      [14, "GUEST_RSP", "Guest RSP", G.GUEST_REGISTERS],
      [15, "GUEST_RIP", "Guest RIP", G.GUEST_REGISTERS],
      [16, "GUEST_RFLAGS", "Guest RFLAGS", G.GUEST_REGISTERS],
      [17, "GUEST_PENDING_DBG_EXCEPTIONS", "Guest pending debug exceptions", G.GUEST_NON_REGISTER],
      [18, "GUEST_SYSENTER_ESP", "Guest IA32_SYSENTER_ESP", G.GUEST_MSRS],
      [19, "GUEST_SYSENTER_EIP", "Guest IA32_SYSENTER_EIP", G.GUEST_MSRS],
    ],
  },
  // SDM Vol. 3D B.4.4: natural-width host-state fields.
  {
    type: FIELD_TYPE.HOST,
    width: FIELD_WIDTH.NATURAL,
    rows: [
      [0, "HOST_CR0", "Host CR0", G.HOST_REGISTERS],
      [1, "HOST_CR3", "Host CR3", G.HOST_REGISTERS],
      [2, "HOST_CR4", "Host CR4", G.HOST_REGISTERS],
      [3, "HOST_FS_BASE", "Host FS base", G.HOST_SEGMENTS],
      [4, "HOST_GS_BASE", "Host GS base", G.HOST_SEGMENTS],
      [5, "HOST_TR_BASE", "Host TR base", G.HOST_SEGMENTS],
      [6, "HOST_GDTR_BASE", "Host GDTR base", G.HOST_SEGMENTS],
      [7, "HOST_IDTR_BASE", "Host IDTR base", G.HOST_SEGMENTS],
      [8, "HOST_IA32_SYSENTER_ESP", "Host IA32_SYSENTER_ESP", G.HOST_MSRS],
      [9, "HOST_IA32_SYSENTER_EIP", "Host IA32_SYSENTER_EIP", G.HOST_MSRS],
      [10, "HOST_RSP", "Host RSP", G.HOST_REGISTERS],
      [11, "HOST_RIP", "Host RIP", G.HOST_REGISTERS],
    ],
  },
];

/** Encodings below this bound index the encoding → row table; VMCS encodings use bits 14:0 only. */
const ENCODING_SPACE = 0x8000;

function buildCatalog(): VmcsField[] {
  const fields: VmcsField[] = [];
  for (const section of SECTIONS) {
    for (const [index, name, title, group] of section.rows) {
      const inKvmEnum = !(section.sdmOnly ?? []).includes(name);
      const encoding = encodeFieldEncoding({
        access: ACCESS_TYPE.FULL,
        index,
        type: section.type,
        width: section.width,
      });
      fields.push(
        Object.freeze({
          name,
          title,
          encoding,
          width: section.width,
          type: section.type,
          access: ACCESS_TYPE.FULL,
          index,
          group,
          base: encoding,
          inKvmEnum,
        }),
      );
      // Every 64-bit field has a high access (SDM 25.11.2); KVM names it <NAME>_HIGH and
      // accesses it as a 32-bit quantity (kvm: vmcs_field_width).
      if (section.width === FIELD_WIDTH.U64) {
        fields.push(
          Object.freeze({
            name: `${name}_HIGH`,
            title: `${title} (high)`,
            encoding: encoding + 1,
            width: FIELD_WIDTH.U32,
            type: section.type,
            access: ACCESS_TYPE.HIGH,
            index,
            group,
            base: encoding,
            inKvmEnum,
          }),
        );
      }
    }
  }
  fields.sort((a, b) => a.encoding - b.encoding);
  return fields;
}

/** Every catalogued encoding (KVM's 194 plus 8 SDM-only), sorted by encoding. */
export const VMCS_FIELDS: readonly VmcsField[] = Object.freeze(buildCatalog());

const BY_NAME = new Map<string, VmcsField>();
/** Row index into `VMCS_FIELDS` for each encoding below 0x8000; -1 where there is none. */
const ROW_BY_ENCODING = new Int16Array(ENCODING_SPACE).fill(-1);
VMCS_FIELDS.forEach((field, row) => {
  if (BY_NAME.has(field.name)) throw new Error(`duplicate VMCS field name ${field.name}`);
  if (ROW_BY_ENCODING[field.encoding] !== -1) throw new Error(`duplicate VMCS encoding ${field.encoding}`);
  BY_NAME.set(field.name, field);
  ROW_BY_ENCODING[field.encoding] = row;
});

/**
 * Row of `encoding` in `VMCS_FIELDS`, or -1. Any number is accepted: values with bits above 14
 * set (or not integers) are never catalogued.
 */
export function fieldRow(encoding: number): number {
  if ((encoding & (ENCODING_SPACE - 1)) !== encoding) return -1;
  return ROW_BY_ENCODING[encoding]!;
}

/**
 * The catalogued field with this encoding. A `_HIGH` encoding (access type 1) names the upper half
 * of a 64-bit field and returns that field's `_HIGH` row; access type 1 on a field that is not
 * 64-bit is not an encoding the SDM defines, so it returns undefined.
 */
export function fieldByEncoding(encoding: number): VmcsField | undefined {
  const row = fieldRow(encoding);
  return row < 0 ? undefined : VMCS_FIELDS[row];
}

/** The field with this name, ignoring case ("guest_rip", "IO_BITMAP_A_HIGH", "io_rcx"). */
export function fieldByName(name: string): VmcsField | undefined {
  return BY_NAME.get(name.toUpperCase());
}

/** The field's name for display, or the encoding in hex when it is not catalogued. */
export function fieldName(encoding: number): string {
  const row = fieldRow(encoding);
  return row < 0 ? formatFieldEncoding(encoding) : VMCS_FIELDS[row]!.name;
}

/**
 * Resolves a user-supplied field reference (a name in any case, or a number) to its encoding.
 * Throws a RangeError naming the input when it matches nothing (bad user input).
 */
export function fieldEncodingOf(reference: string | number): number {
  if (typeof reference === "number") {
    if (fieldRow(reference) < 0)
      throw new RangeError(`no VMCS field has encoding ${formatFieldEncoding(reference)}`);
    return reference;
  }
  const byName = fieldByName(reference.trim());
  if (byName) return byName.encoding;
  if (/^0x[0-9a-f]+$/i.test(reference.trim())) return fieldEncodingOf(Number.parseInt(reference.trim(), 16));
  throw new RangeError(`"${reference}" is not a VMCS field name or encoding`);
}
