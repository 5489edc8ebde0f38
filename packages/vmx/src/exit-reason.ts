import { field, flag, type RegisterLayout } from "@nestvisor/x86-arch";

/**
 * VM-exit reasons (SDM Vol. 3C 28.2.1 "Basic VM-Exit Information" and Appendix C "VMX Basic
 * Exit Reasons"). KVM 6.12 names 62 of them in arch/x86/include/uapi/asm/vmx.h; the others the
 * SDM (or Intel's own headers) define are listed too, marked `kvm: false`.
 */

/** The 62 basic exit reasons KVM 6.12 defines, by KVM name without the EXIT_REASON_ prefix. */
export const EXIT_REASON = {
  EXCEPTION_NMI: 0,
  EXTERNAL_INTERRUPT: 1,
  TRIPLE_FAULT: 2,
  INIT_SIGNAL: 3,
  SIPI_SIGNAL: 4,
  /** Named PENDING_INTERRUPT in the 2019 (v5.3) kernel (see `EXIT_REASON_NAMES_2019`). */
  INTERRUPT_WINDOW: 7,
  NMI_WINDOW: 8,
  TASK_SWITCH: 9,
  CPUID: 10,
  HLT: 12,
  INVD: 13,
  INVLPG: 14,
  RDPMC: 15,
  RDTSC: 16,
  VMCALL: 18,
  VMCLEAR: 19,
  VMLAUNCH: 20,
  VMPTRLD: 21,
  VMPTRST: 22,
  VMREAD: 23,
  VMRESUME: 24,
  VMWRITE: 25,
  VMOFF: 26,
  VMON: 27,
  CR_ACCESS: 28,
  DR_ACCESS: 29,
  IO_INSTRUCTION: 30,
  MSR_READ: 31,
  MSR_WRITE: 32,
  INVALID_STATE: 33,
  MSR_LOAD_FAIL: 34,
  MWAIT_INSTRUCTION: 36,
  MONITOR_TRAP_FLAG: 37,
  MONITOR_INSTRUCTION: 39,
  PAUSE_INSTRUCTION: 40,
  MCE_DURING_VMENTRY: 41,
  TPR_BELOW_THRESHOLD: 43,
  APIC_ACCESS: 44,
  EOI_INDUCED: 45,
  GDTR_IDTR: 46,
  LDTR_TR: 47,
  EPT_VIOLATION: 48,
  EPT_MISCONFIG: 49,
  INVEPT: 50,
  RDTSCP: 51,
  PREEMPTION_TIMER: 52,
  INVVPID: 53,
  WBINVD: 54,
  XSETBV: 55,
  APIC_WRITE: 56,
  RDRAND: 57,
  INVPCID: 58,
  VMFUNC: 59,
  ENCLS: 60,
  RDSEED: 61,
  PML_FULL: 62,
  XSAVES: 63,
  XRSTORS: 64,
  UMWAIT: 67,
  TPAUSE: 68,
  BUS_LOCK: 74,
  NOTIFY: 75,
} as const;
export type ExitReasonName = keyof typeof EXIT_REASON;

/**
 * Architectural basic exit reasons KVM 6.12 has no EXIT_REASON_ macro for (SDM Appendix C;
 * 71 and 76–77 also from Intel's MIT-licensed TDX-module headers). Names are ours, KVM-style.
 */
export const EXIT_REASON_NOT_NAMED_BY_KVM = {
  IO_SMI: 5,
  OTHER_SMI: 6,
  GETSEC: 11,
  RSM: 17,
  PCONFIG: 65,
  SPP_EVENT: 66,
  LOADIWKEY: 69,
  ENCLV: 70,
  SGX_CONFLICT: 71,
  ENQCMD_PASID_FAIL: 72,
  ENQCMDS_PASID_FAIL: 73,
  SEAMCALL: 76,
  TDCALL: 77,
} as const;

/** The 2019 (v5.3) name of a renamed reason (kvm-vmx.md §11). */
export const EXIT_REASON_NAMES_2019 = {
  PENDING_INTERRUPT: EXIT_REASON.INTERRUPT_WINDOW,
} as const;

/** One basic exit reason. */
export interface ExitReasonInfo {
  readonly number: number;
  /** KVM's name (without EXIT_REASON_), or ours for reasons KVM does not name. */
  readonly name: string;
  /** True if KVM 6.12's uapi/asm/vmx.h defines EXIT_REASON_<name>. */
  readonly kvm: boolean;
  /** One line: what causes it. */
  readonly description: string;
}

const DESCRIPTIONS: Readonly<Record<number, string>> = {
  0: "exception (exception-bitmap hit) or NMI with NMI exiting",
  1: "external interrupt with external-interrupt exiting",
  2: "triple fault",
  3: "INIT signal",
  4: "start-up IPI while in wait-for-SIPI",
  5: "I/O system-management interrupt (dual-monitor treatment)",
  6: "other SMI (dual-monitor treatment)",
  7: "interrupt window opened with interrupt-window exiting",
  8: "NMI window opened with NMI-window exiting",
  9: "task switch",
  10: "CPUID",
  11: "GETSEC",
  12: "HLT with HLT exiting",
  13: "INVD",
  14: "INVLPG with INVLPG exiting",
  15: "RDPMC with RDPMC exiting",
  16: "RDTSC with RDTSC exiting",
  17: "RSM in SMM (dual-monitor treatment)",
  18: "VMCALL",
  19: "VMCLEAR",
  20: "VMLAUNCH",
  21: "VMPTRLD",
  22: "VMPTRST",
  23: "VMREAD",
  24: "VMRESUME",
  25: "VMWRITE",
  26: "VMXOFF",
  27: "VMXON",
  28: "control-register access (MOV CR, CLTS, LMSW)",
  29: "MOV to/from a debug register with MOV-DR exiting",
  30: "I/O instruction",
  31: "RDMSR",
  32: "WRMSR",
  33: "VM-entry failure: invalid guest state",
  34: "VM-entry failure: MSR loading",
  36: "MWAIT with MWAIT exiting",
  37: "monitor trap flag",
  39: "MONITOR with MONITOR exiting",
  40: "PAUSE (PAUSE exiting or pause-loop exiting)",
  41: "VM-entry failure: machine-check event",
  43: "TPR below threshold after a TPR-changing instruction",
  44: "access to the APIC-access page",
  45: "virtualized EOI of a vector set in the EOI-exit bitmap",
  46: "LGDT/LIDT/SGDT/SIDT with descriptor-table exiting",
  47: "LLDT/LTR/SLDT/STR with descriptor-table exiting",
  48: "EPT violation",
  49: "EPT misconfiguration",
  50: "INVEPT",
  51: "RDTSCP with RDTSC exiting",
  52: "VMX-preemption timer expired",
  53: "INVVPID",
  54: "WBINVD or WBNOINVD with WBINVD exiting",
  55: "XSETBV",
  56: "APIC write that needs VMM emulation (APIC-register virtualization)",
  57: "RDRAND with RDRAND exiting",
  58: "INVPCID with INVLPG exiting",
  59: "VMFUNC failure (invalid function or EPTP index)",
  60: "ENCLS with ENCLS exiting",
  61: "RDSEED with RDSEED exiting",
  62: "page-modification log full",
  63: "XSAVES with a bit set in the XSS-exiting bitmap",
  64: "XRSTORS with a bit set in the XSS-exiting bitmap",
  65: "PCONFIG",
  66: "SPP-related event",
  67: "UMWAIT",
  68: "TPAUSE",
  69: "LOADIWKEY",
  70: "ENCLV",
  71: "SGX conflict",
  72: "ENQCMD PASID translation failure",
  73: "ENQCMDS PASID translation failure",
  74: "bus lock with bus-lock detection",
  75: "notify window elapsed without an event window (instruction timeout)",
  76: "SEAMCALL",
  77: "TDCALL",
};

function info(number: number, name: string, kvm: boolean): ExitReasonInfo {
  return Object.freeze({ number, name, kvm, description: DESCRIPTIONS[number] ?? "" });
}

/** Every known basic exit reason, in number order. Numbers 35, 38 and 42 are not defined. */
export const EXIT_REASONS: readonly ExitReasonInfo[] = Object.freeze(
  [
    ...Object.entries(EXIT_REASON).map(([name, n]) => info(n, name, true)),
    ...Object.entries(EXIT_REASON_NOT_NAMED_BY_KVM).map(([name, n]) => info(n, name, false)),
  ].sort((a, b) => a.number - b.number),
);

const BY_NUMBER = new Map<number, ExitReasonInfo>(EXIT_REASONS.map((r) => [r.number, r]));
const BY_NAME = new Map<string, number>([
  ...EXIT_REASONS.map((r): [string, number] => [r.name, r.number]),
  ...Object.entries(EXIT_REASON_NAMES_2019),
]);

/** Exit-reason field bits (SDM 28.2.1, "Format of Exit Reason"; kvm: vmx.h union vmx_exit_reason). */
export const EXIT_REASON_FIELD = {
  /** Bits 15:0. */
  BASIC_MASK: 0xffff,
  /** Bit 26: the exit was incident to a bus lock (kvm: bus_lock_detected). */
  BUS_LOCK_DETECTED: 1 << 26,
  /** Bit 27: the exit came from an SGX enclave (kvm: VMX_EXIT_REASONS_SGX_ENCLAVE_MODE). */
  ENCLAVE_MODE: 1 << 27,
  /** Bit 28: an MTF VM exit was pending (SMM-transfer-monitor exits; kvm: smi_pending_mtf). */
  PENDING_MTF: 1 << 28,
  /** Bit 29: the exit came from VMX root operation (SMM-transfer-monitor exits; kvm: smi_from_vmx_root). */
  FROM_VMX_ROOT: 1 << 29,
  /** Bit 31: VM-entry failure (kvm: VMX_EXIT_REASONS_FAILED_VMENTRY). */
  FAILED_VMENTRY: 0x80000000,
} as const;

/** kvm: VMX_EXIT_REASONS_FAILED_VMENTRY. */
export const VMX_EXIT_REASONS_FAILED_VMENTRY = EXIT_REASON_FIELD.FAILED_VMENTRY;
/** kvm: VMX_EXIT_REASONS_SGX_ENCLAVE_MODE. */
export const VMX_EXIT_REASONS_SGX_ENCLAVE_MODE = EXIT_REASON_FIELD.ENCLAVE_MODE;

/** Exit-reason field layout. */
export const EXIT_REASON_LAYOUT: RegisterLayout = {
  name: "Exit reason",
  width: 32,
  source: "SDM Vol. 3C 28.2.1; kvm: vmx.h union vmx_exit_reason",
  fields: [
    field("BASIC", 0, 16, "basic exit reason (Appendix C)"),
    flag("BUS_LOCK_DETECTED", 26, "a bus lock was asserted by the exiting instruction"),
    flag("ENCLAVE_MODE", 27, "the exit happened inside an SGX enclave"),
    flag("PENDING_MTF", 28, "an MTF VM exit was pending (SMI exits to the SMM monitor)"),
    flag("FROM_VMX_ROOT", 29, "exit from VMX root operation (SMI exits to the SMM monitor)"),
    flag("FAILED_VMENTRY", 31, "the VM entry failed; the basic reason says why"),
  ],
};

/** A decoded exit-reason field; an unknown basic reason keeps its number and has no name. */
export interface DecodedExitReason {
  readonly value: number;
  readonly basic: number;
  readonly name: string | undefined;
  readonly kvmNamed: boolean;
  readonly busLockDetected: boolean;
  readonly enclaveMode: boolean;
  readonly pendingMtf: boolean;
  readonly fromVmxRoot: boolean;
  readonly failedVmentry: boolean;
}

/** Decodes a 32-bit exit-reason field. */
export function decodeExitReason(value: number): DecodedExitReason {
  const v = value >>> 0;
  const basic = v & EXIT_REASON_FIELD.BASIC_MASK;
  const known = BY_NUMBER.get(basic);
  return {
    value: v,
    basic,
    name: known?.name,
    kvmNamed: known?.kvm ?? false,
    busLockDetected: (v & EXIT_REASON_FIELD.BUS_LOCK_DETECTED) !== 0,
    enclaveMode: (v & EXIT_REASON_FIELD.ENCLAVE_MODE) !== 0,
    pendingMtf: (v & EXIT_REASON_FIELD.PENDING_MTF) !== 0,
    fromVmxRoot: (v & EXIT_REASON_FIELD.FROM_VMX_ROOT) !== 0,
    failedVmentry: (v & EXIT_REASON_FIELD.FAILED_VMENTRY) !== 0,
  };
}

/** Name of a basic exit reason (KVM's, or ours if KVM has none), or undefined. */
export function exitReasonName(basic: number): string | undefined {
  return BY_NUMBER.get(basic)?.name;
}

/** Full record of a basic exit reason, or undefined. */
export function exitReasonInfo(basic: number): ExitReasonInfo | undefined {
  return BY_NUMBER.get(basic);
}

/**
 * Number of a basic exit reason by name: case-insensitive, with or without `EXIT_REASON_`,
 * accepting the 2019 name PENDING_INTERRUPT. Undefined if unknown.
 */
export function exitReasonNumber(name: string): number | undefined {
  let key = name.trim().toUpperCase();
  if (key.startsWith("EXIT_REASON_")) key = key.slice("EXIT_REASON_".length);
  return BY_NAME.get(key);
}

/** E.g. "0x80000021 INVALID_STATE [VM-entry failure]" or "0x0000ffff 65535". */
export function formatExitReason(value: number): string {
  const d = decodeExitReason(value);
  const flags: string[] = [];
  if (d.failedVmentry) flags.push("VM-entry failure");
  if (d.enclaveMode) flags.push("enclave");
  if (d.busLockDetected) flags.push("bus lock");
  if (d.pendingMtf) flags.push("pending MTF");
  if (d.fromVmxRoot) flags.push("from VMX root");
  const hex = `0x${d.value.toString(16).padStart(8, "0")}`;
  const tail = flags.length > 0 ? ` [${flags.join(", ")}]` : "";
  return `${hex} ${d.name ?? String(d.basic)}${tail}`;
}
