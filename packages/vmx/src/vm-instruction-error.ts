/**
 * VM-instruction error numbers (SDM Vol. 3C 31.4, "VM Instruction Error Numbers"): the value a
 * VMfailValid leaves in the VM-instruction error field. Short names are ours, derived from the
 * SDM's wording; `kvmName` is the identifier in KVM 6.12's `enum vm_instruction_error_number`
 * (asm/vmx.h), absent for the three numbers the SDM reserves (14, 21, 27); `raisedByKvmNested`
 * marks the errors KVM's nVMX emulation (arch/x86/kvm/vmx/nested.c) writes into vmcs12.
 */

/** Error numbers by our short name. */
export const VM_INSTRUCTION_ERROR = {
  VMCALL_IN_VMX_ROOT: 1,
  VMCLEAR_INVALID_ADDRESS: 2,
  VMCLEAR_VMXON_POINTER: 3,
  VMLAUNCH_NONCLEAR_VMCS: 4,
  VMRESUME_NONLAUNCHED_VMCS: 5,
  VMRESUME_AFTER_VMXOFF: 6,
  ENTRY_INVALID_CONTROL_FIELD: 7,
  ENTRY_INVALID_HOST_STATE_FIELD: 8,
  VMPTRLD_INVALID_ADDRESS: 9,
  VMPTRLD_VMXON_POINTER: 10,
  VMPTRLD_BAD_REVISION_ID: 11,
  UNSUPPORTED_VMCS_COMPONENT: 12,
  VMWRITE_READ_ONLY_COMPONENT: 13,
  RESERVED_14: 14,
  VMXON_IN_VMX_ROOT: 15,
  ENTRY_INVALID_EXECUTIVE_VMCS_POINTER: 16,
  ENTRY_NONLAUNCHED_EXECUTIVE_VMCS: 17,
  ENTRY_EXECUTIVE_VMCS_NOT_VMXON_POINTER: 18,
  VMCALL_NONCLEAR_VMCS: 19,
  VMCALL_INVALID_EXIT_CONTROLS: 20,
  RESERVED_21: 21,
  VMCALL_BAD_MSEG_REVISION_ID: 22,
  VMXOFF_UNDER_DUAL_MONITOR: 23,
  VMCALL_INVALID_SMM_MONITOR_FEATURES: 24,
  ENTRY_INVALID_EXECUTIVE_CONTROLS: 25,
  ENTRY_EVENTS_BLOCKED_BY_MOV_SS: 26,
  RESERVED_27: 27,
  INVALID_INVEPT_INVVPID_OPERAND: 28,
} as const;
export type VmInstructionErrorName = keyof typeof VM_INSTRUCTION_ERROR;

/** One VM-instruction error number. */
export interface VmInstructionErrorInfo {
  readonly number: number;
  readonly name: VmInstructionErrorName;
  /** KVM 6.12's enum identifier (VMXERR_...), or undefined for the reserved numbers. */
  readonly kvmName: string | undefined;
  /** True if the SDM reserves the number. */
  readonly reserved: boolean;
  /** Where KVM's nested VMX raises it, or undefined if it never does. */
  readonly raisedByKvmNested: string | undefined;
  /** One line, in our words. */
  readonly description: string;
}

type Row = readonly [VmInstructionErrorName, string | undefined, string | undefined, string];

// [name, KVM enum identifier, nested.c site that raises it, description]
const ROWS: readonly Row[] = [
  [
    "VMCALL_IN_VMX_ROOT",
    "VMXERR_VMCALL_IN_VMX_ROOT_OPERATION",
    undefined,
    "VMCALL executed in VMX root operation",
  ],
  [
    "VMCLEAR_INVALID_ADDRESS",
    "VMXERR_VMCLEAR_INVALID_ADDRESS",
    "handle_vmclear",
    "VMCLEAR operand not 4-KiB aligned or beyond the physical-address width",
  ],
  ["VMCLEAR_VMXON_POINTER", "VMXERR_VMCLEAR_VMXON_POINTER", "handle_vmclear", "VMCLEAR of the VMXON region"],
  [
    "VMLAUNCH_NONCLEAR_VMCS",
    "VMXERR_VMLAUNCH_NONCLEAR_VMCS",
    "nested_vmx_run",
    "VMLAUNCH of a VMCS whose launch state is not clear",
  ],
  [
    "VMRESUME_NONLAUNCHED_VMCS",
    "VMXERR_VMRESUME_NONLAUNCHED_VMCS",
    "nested_vmx_run",
    "VMRESUME of a VMCS whose launch state is not launched",
  ],
  [
    "VMRESUME_AFTER_VMXOFF",
    "VMXERR_VMRESUME_AFTER_VMXOFF",
    undefined,
    "VMRESUME after VMXOFF (VMXOFF and VMXON between VMLAUNCH and VMRESUME)",
  ],
  [
    "ENTRY_INVALID_CONTROL_FIELD",
    "VMXERR_ENTRY_INVALID_CONTROL_FIELD",
    "nested_vmx_run (nested_vmx_check_controls; hardware VM-Fail of vmcs02)",
    "VM entry with invalid VM-execution, VM-exit or VM-entry control fields",
  ],
  [
    "ENTRY_INVALID_HOST_STATE_FIELD",
    "VMXERR_ENTRY_INVALID_HOST_STATE_FIELD",
    "nested_vmx_run (nested_vmx_check_address_space_size, nested_vmx_check_host_state)",
    "VM entry with invalid host-state fields",
  ],
  [
    "VMPTRLD_INVALID_ADDRESS",
    "VMXERR_VMPTRLD_INVALID_ADDRESS",
    "handle_vmptrld",
    "VMPTRLD operand not 4-KiB aligned or beyond the physical-address width",
  ],
  ["VMPTRLD_VMXON_POINTER", "VMXERR_VMPTRLD_VMXON_POINTER", "handle_vmptrld", "VMPTRLD of the VMXON region"],
  [
    "VMPTRLD_BAD_REVISION_ID",
    "VMXERR_VMPTRLD_INCORRECT_VMCS_REVISION_ID",
    "handle_vmptrld",
    "VMPTRLD of a region whose revision identifier is wrong (or shadow bit not supported)",
  ],
  [
    "UNSUPPORTED_VMCS_COMPONENT",
    "VMXERR_UNSUPPORTED_VMCS_COMPONENT",
    "handle_vmread, handle_vmwrite",
    "VMREAD/VMWRITE of a field encoding the VMCS does not support",
  ],
  [
    "VMWRITE_READ_ONLY_COMPONENT",
    "VMXERR_VMWRITE_READ_ONLY_VMCS_COMPONENT",
    "handle_vmwrite",
    "VMWRITE to a read-only (VM-exit information) field without VMX_MISC bit 29",
  ],
  ["RESERVED_14", undefined, undefined, "reserved"],
  [
    "VMXON_IN_VMX_ROOT",
    "VMXERR_VMXON_IN_VMX_ROOT_OPERATION",
    "handle_vmxon",
    "VMXON executed in VMX root operation",
  ],
  [
    "ENTRY_INVALID_EXECUTIVE_VMCS_POINTER",
    "VMXERR_ENTRY_INVALID_EXECUTIVE_VMCS_POINTER",
    undefined,
    "VM entry with an invalid executive-VMCS pointer (dual-monitor treatment)",
  ],
  [
    "ENTRY_NONLAUNCHED_EXECUTIVE_VMCS",
    "VMXERR_ENTRY_NONLAUNCHED_EXECUTIVE_VMCS",
    undefined,
    "VM entry with a non-launched executive VMCS",
  ],
  [
    "ENTRY_EXECUTIVE_VMCS_NOT_VMXON_POINTER",
    "VMXERR_ENTRY_EXECUTIVE_VMCS_POINTER_NOT_VMXON_POINTER",
    undefined,
    "VM entry deactivating the dual-monitor treatment with an executive-VMCS pointer other than VMXON's",
  ],
  [
    "VMCALL_NONCLEAR_VMCS",
    "VMXERR_VMCALL_NONCLEAR_VMCS",
    undefined,
    "VMCALL activating the dual-monitor treatment with a VMCS that is not clear",
  ],
  [
    "VMCALL_INVALID_EXIT_CONTROLS",
    "VMXERR_VMCALL_INVALID_VM_EXIT_CONTROL_FIELDS",
    undefined,
    "VMCALL activating the dual-monitor treatment with invalid VM-exit control fields",
  ],
  ["RESERVED_21", undefined, undefined, "reserved"],
  [
    "VMCALL_BAD_MSEG_REVISION_ID",
    "VMXERR_VMCALL_INCORRECT_MSEG_REVISION_ID",
    undefined,
    "VMCALL activating the dual-monitor treatment with a wrong MSEG revision identifier",
  ],
  [
    "VMXOFF_UNDER_DUAL_MONITOR",
    "VMXERR_VMXOFF_UNDER_DUAL_MONITOR_TREATMENT_OF_SMIS_AND_SMM",
    undefined,
    "VMXOFF while the dual-monitor treatment of SMIs and SMM is active",
  ],
  [
    "VMCALL_INVALID_SMM_MONITOR_FEATURES",
    "VMXERR_VMCALL_INVALID_SMM_MONITOR_FEATURES",
    undefined,
    "VMCALL activating the dual-monitor treatment with invalid SMM-monitor features",
  ],
  [
    "ENTRY_INVALID_EXECUTIVE_CONTROLS",
    "VMXERR_ENTRY_INVALID_VM_EXECUTION_CONTROL_FIELDS_IN_EXECUTIVE_VMCS",
    undefined,
    "VM entry returning from SMM with invalid execution controls in the executive VMCS",
  ],
  [
    "ENTRY_EVENTS_BLOCKED_BY_MOV_SS",
    "VMXERR_ENTRY_EVENTS_BLOCKED_BY_MOV_SS",
    "nested_vmx_run",
    "VM entry while events are blocked by MOV SS",
  ],
  ["RESERVED_27", undefined, undefined, "reserved"],
  [
    "INVALID_INVEPT_INVVPID_OPERAND",
    "VMXERR_INVALID_OPERAND_TO_INVEPT_INVVPID",
    "handle_invept, handle_invvpid",
    "INVEPT/INVVPID with an unsupported type or invalid descriptor",
  ],
];

/** Every VM-instruction error number 1–28, in order. */
export const VM_INSTRUCTION_ERRORS: readonly VmInstructionErrorInfo[] = Object.freeze(
  ROWS.map(([name, kvmName, raised, description]) =>
    Object.freeze({
      number: VM_INSTRUCTION_ERROR[name],
      name,
      kvmName,
      reserved: kvmName === undefined,
      raisedByKvmNested: raised,
      description,
    }),
  ),
);

/** The numbers KVM 6.12's nested VMX writes into vm_instruction_error (kvm-vmx.md §12). */
export const KVM_NESTED_VM_INSTRUCTION_ERRORS: readonly number[] = Object.freeze(
  VM_INSTRUCTION_ERRORS.filter((e) => e.raisedByKvmNested !== undefined).map((e) => e.number),
);

/** The record for an error number, or undefined outside 1–28. */
export function vmInstructionErrorInfo(n: number): VmInstructionErrorInfo | undefined {
  return Number.isInteger(n) && n >= 1 && n <= VM_INSTRUCTION_ERRORS.length
    ? VM_INSTRUCTION_ERRORS[n - 1]
    : undefined;
}

/** Our short name of an error number, or undefined. */
export function vmInstructionErrorName(n: number): VmInstructionErrorName | undefined {
  return vmInstructionErrorInfo(n)?.name;
}

/**
 * Error number by name: our short name or KVM's (with or without VMXERR_), case-insensitive.
 * Undefined if unknown.
 */
export function vmInstructionErrorNumber(name: string): number | undefined {
  const key = name.trim().toUpperCase();
  for (const e of VM_INSTRUCTION_ERRORS) {
    if (e.name === key) return e.number;
    if (e.kvmName !== undefined && (e.kvmName === key || e.kvmName === `VMXERR_${key}`)) return e.number;
  }
  return undefined;
}
