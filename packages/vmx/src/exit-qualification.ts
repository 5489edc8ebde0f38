import { EPT_VIOLATION_LAYOUT, exceptionName, field, flag, type RegisterLayout } from "@nestvisor/x86-arch";
import { EXIT_REASON } from "./exit-reason";

/**
 * Formats of the VM-exit information fields (SDM Vol. 3C 28.2): the exit qualification of the
 * exits that define one, the VM-exit instruction-information field, and the interruption
 * information of VM exits, IDT vectoring and VM entry; plus the VM-entry-failure qualification
 * codes and the VMX-abort indicators. Numeric masks for hot paths, `RegisterLayout`s for display,
 * and explicit encode/decode functions for the multi-field formats.
 */

/** General-purpose registers by their 4-bit encoding (SDM Table 28-3 and friends). */
export const GPR_NAMES = [
  "RAX",
  "RCX",
  "RDX",
  "RBX",
  "RSP",
  "RBP",
  "RSI",
  "RDI",
  "R8",
  "R9",
  "R10",
  "R11",
  "R12",
  "R13",
  "R14",
  "R15",
] as const;

/** Segment registers by their 3-bit encoding (6 and 7 are undefined). */
export const SEGMENT_NAMES = ["ES", "CS", "SS", "DS", "FS", "GS"] as const;

function gprName(n: number): string {
  return GPR_NAMES[n & 0xf] ?? `r${n}`;
}

// ---------------------------------------------------------------------------------------------
// Control-register accesses (SDM 28.2.1, Table 28-3 "Exit Qualification for Control-Register
// Accesses"; kvm: asm/vmx.h CONTROL_REG_ACCESS_*, which masks the CR number with 0x7).

/** CR-access qualification masks. */
export const CR_ACCESS_QUAL = {
  /** Bits 3:0: the control register (0 for CLTS and LMSW). */
  CR_NUM_MASK: 0xf,
  /** Bits 5:4: access type. */
  ACCESS_TYPE_SHIFT: 4,
  ACCESS_TYPE_MASK: 0x30,
  /** Bit 6: LMSW operand is in memory (0: register; 0 for other access types). */
  LMSW_MEMORY_OPERAND: 1 << 6,
  /** Bits 11:8: the general-purpose register of MOV CR (0 for CLTS and LMSW). */
  GPR_SHIFT: 8,
  GPR_MASK: 0xf00,
  /** Bits 31:16: the LMSW source data (0 otherwise). */
  LMSW_SOURCE_SHIFT: 16,
  LMSW_SOURCE_MASK: 0xffff0000,
} as const;

/** CR-access types (bits 5:4). */
export const CR_ACCESS_TYPE = { MOV_TO_CR: 0, MOV_FROM_CR: 1, CLTS: 2, LMSW: 3 } as const;
export type CrAccessType = (typeof CR_ACCESS_TYPE)[keyof typeof CR_ACCESS_TYPE];

/** CR-access qualification layout. */
export const CR_ACCESS_QUAL_LAYOUT: RegisterLayout = {
  name: "Exit qualification: control-register access",
  width: 64,
  source: "SDM Vol. 3C 28.2.1, Table 28-3",
  fields: [
    field("CR_NUM", 0, 4, "control register number (0 for CLTS and LMSW)"),
    field("ACCESS_TYPE", 4, 2, "0 MOV to CR, 1 MOV from CR, 2 CLTS, 3 LMSW"),
    flag("LMSW_MEMORY", 6, "LMSW operand was in memory"),
    field("GPR", 8, 4, "general-purpose register of MOV CR (0 RAX … 15 R15)"),
    field("LMSW_SOURCE", 16, 16, "LMSW source data"),
  ],
};

/** The facts of a CR access. */
export interface CrAccessQualification {
  readonly cr: number;
  readonly accessType: CrAccessType;
  readonly lmswMemory: boolean;
  readonly gpr: number;
  readonly lmswSource: number;
}

/** Builds a CR-access qualification (bits 31:0; bits 63:32 are 0). */
export function encodeCrAccessQualification(q: CrAccessQualification): number {
  return (
    ((q.cr & 0xf) |
      ((q.accessType & 3) << CR_ACCESS_QUAL.ACCESS_TYPE_SHIFT) |
      (q.lmswMemory ? CR_ACCESS_QUAL.LMSW_MEMORY_OPERAND : 0) |
      ((q.gpr & 0xf) << CR_ACCESS_QUAL.GPR_SHIFT) |
      ((q.lmswSource & 0xffff) << CR_ACCESS_QUAL.LMSW_SOURCE_SHIFT)) >>>
    0
  );
}

/** Reads a CR-access qualification (low word). */
export function decodeCrAccessQualification(value: number): CrAccessQualification {
  return {
    cr: value & CR_ACCESS_QUAL.CR_NUM_MASK,
    accessType: ((value & CR_ACCESS_QUAL.ACCESS_TYPE_MASK) >>>
      CR_ACCESS_QUAL.ACCESS_TYPE_SHIFT) as CrAccessType,
    lmswMemory: (value & CR_ACCESS_QUAL.LMSW_MEMORY_OPERAND) !== 0,
    gpr: (value & CR_ACCESS_QUAL.GPR_MASK) >>> CR_ACCESS_QUAL.GPR_SHIFT,
    lmswSource: value >>> CR_ACCESS_QUAL.LMSW_SOURCE_SHIFT,
  };
}

/** E.g. "MOV to CR4 from RAX", "MOV from CR3 to RBX", "CLTS", "LMSW 0x0001 from memory". */
export function describeCrAccess(value: number): string {
  const q = decodeCrAccessQualification(value);
  // Only CR0, CR3, CR4 and CR8 MOVs exit (SDM Table 28-3); another number cannot come from hardware.
  const cr = q.cr === 0 || q.cr === 3 || q.cr === 4 || q.cr === 8 ? `CR${q.cr}` : `CR${q.cr} (no such exit)`;
  switch (q.accessType) {
    case CR_ACCESS_TYPE.MOV_TO_CR:
      return `MOV to ${cr} from ${gprName(q.gpr)}`;
    case CR_ACCESS_TYPE.MOV_FROM_CR:
      return `MOV from ${cr} to ${gprName(q.gpr)}`;
    case CR_ACCESS_TYPE.CLTS:
      return "CLTS";
    default:
      return `LMSW 0x${q.lmswSource.toString(16).padStart(4, "0")} from ${q.lmswMemory ? "memory" : "a register"}`;
  }
}

// ---------------------------------------------------------------------------------------------
// MOV DR (SDM Table 28-4 "Exit Qualification for MOV DR"; kvm: DEBUG_REG_ACCESS_*).

/** MOV-DR qualification masks. */
export const DR_ACCESS_QUAL = {
  /** Bits 2:0: the debug register. */
  DR_NUM_MASK: 0x7,
  /** Bit 4: direction, 1 = MOV from DR (kvm: TYPE_MOV_FROM_DR). */
  MOV_FROM_DR: 1 << 4,
  /** Bits 11:8: the general-purpose register. */
  GPR_SHIFT: 8,
  GPR_MASK: 0xf00,
} as const;

/** MOV-DR qualification layout. */
export const DR_ACCESS_QUAL_LAYOUT: RegisterLayout = {
  name: "Exit qualification: MOV DR",
  width: 64,
  source: "SDM Vol. 3C 28.2.1, Table 28-4",
  fields: [
    field("DR_NUM", 0, 3, "debug register number"),
    flag("MOV_FROM_DR", 4, "direction: MOV from DR (clear: MOV to DR)"),
    field("GPR", 8, 4, "general-purpose register (0 RAX … 15 R15)"),
  ],
};

// ---------------------------------------------------------------------------------------------
// I/O instructions (SDM Table 28-5 "Exit Qualification for I/O Instructions").

/** I/O qualification masks. */
export const IO_QUAL = {
  /** Bits 2:0: size of access, 0 = 1 byte, 1 = 2 bytes, 3 = 4 bytes. */
  SIZE_MASK: 0x7,
  /** Bit 3: direction, 1 = IN (0 = OUT). */
  DIRECTION_IN: 1 << 3,
  /** Bit 4: string instruction (INS/OUTS). */
  STRING: 1 << 4,
  /** Bit 5: REP prefixed. */
  REP: 1 << 5,
  /** Bit 6: operand encoding, 1 = immediate port (0 = DX). */
  OPERAND_IMMEDIATE: 1 << 6,
  /** Bits 31:16: port number. */
  PORT_SHIFT: 16,
  PORT_MASK: 0xffff0000,
} as const;

/** I/O qualification layout. */
export const IO_QUAL_LAYOUT: RegisterLayout = {
  name: "Exit qualification: I/O instruction",
  width: 64,
  source: "SDM Vol. 3C 28.2.1, Table 28-5",
  fields: [
    field("SIZE", 0, 3, "access size minus one: 0 byte, 1 word, 3 doubleword"),
    flag("IN", 3, "direction IN (clear: OUT)"),
    flag("STRING", 4, "string instruction (INS/OUTS)"),
    flag("REP", 5, "REP prefixed"),
    flag("IMMEDIATE", 6, "port given as an immediate (clear: in DX)"),
    field("PORT", 16, 16, "port number"),
  ],
};

/** The facts of an I/O exit. */
export interface IoQualification {
  /** Access size in bytes: 1, 2 or 4 (0 for the undefined size encodings). */
  readonly bytes: number;
  readonly in: boolean;
  readonly string: boolean;
  readonly rep: boolean;
  readonly immediate: boolean;
  readonly port: number;
}

/** Builds an I/O qualification; `bytes` must be 1, 2 or 4. */
export function encodeIoQualification(q: IoQualification): number {
  if (q.bytes !== 1 && q.bytes !== 2 && q.bytes !== 4) {
    throw new RangeError(`I/O access size ${q.bytes} is not 1, 2 or 4 (SDM Table 28-5)`);
  }
  return (
    ((q.bytes - 1) |
      (q.in ? IO_QUAL.DIRECTION_IN : 0) |
      (q.string ? IO_QUAL.STRING : 0) |
      (q.rep ? IO_QUAL.REP : 0) |
      (q.immediate ? IO_QUAL.OPERAND_IMMEDIATE : 0) |
      ((q.port & 0xffff) << IO_QUAL.PORT_SHIFT)) >>>
    0
  );
}

/** Reads an I/O qualification (low word). */
export function decodeIoQualification(value: number): IoQualification {
  const size = value & IO_QUAL.SIZE_MASK;
  return {
    bytes: size === 0 || size === 1 || size === 3 ? size + 1 : 0,
    in: (value & IO_QUAL.DIRECTION_IN) !== 0,
    string: (value & IO_QUAL.STRING) !== 0,
    rep: (value & IO_QUAL.REP) !== 0,
    immediate: (value & IO_QUAL.OPERAND_IMMEDIATE) !== 0,
    port: value >>> IO_QUAL.PORT_SHIFT,
  };
}

/** E.g. "OUT byte to port 0x80 (immediate)" or "REP INS dword from port 0x1f0 (DX)". */
export function describeIo(value: number): string {
  const q = decodeIoQualification(value);
  const width = q.bytes === 1 ? "byte" : q.bytes === 2 ? "word" : q.bytes === 4 ? "dword" : "?";
  const op = `${q.rep ? "REP " : ""}${q.in ? "IN" : "OUT"}${q.string ? "S" : ""}`;
  const port = `0x${q.port.toString(16)}`;
  return `${op} ${width} ${q.in ? "from" : "to"} port ${port} (${q.immediate ? "immediate" : "DX"})`;
}

// ---------------------------------------------------------------------------------------------
// Debug exceptions (SDM Table 28-1 "Exit Qualification for Debug Exceptions"): the DR6-like
// bits a #DB exit reports instead of updating DR6.

/** Debug-exception qualification bits. */
export const DEBUG_QUAL = {
  B0: 1 << 0,
  B1: 1 << 1,
  B2: 1 << 2,
  B3: 1 << 3,
  /** Bit 11: the #DB was caused by bus-lock detection. */
  BLD: 1 << 11,
  /** Bit 13: debug-register access detected. */
  BD: 1 << 13,
  /** Bit 14: single step (TF) or branch. */
  BS: 1 << 14,
  /** Bit 16: the #DB or breakpoint happened in an RTM region. */
  RTM: 1 << 16,
} as const;

/** Debug-exception qualification layout. */
export const DEBUG_QUAL_LAYOUT: RegisterLayout = {
  name: "Exit qualification: debug exception",
  width: 64,
  source: "SDM Vol. 3C 28.2.1, Table 28-1",
  fields: [
    flag("B0", 0, "breakpoint condition 0 met"),
    flag("B1", 1, "breakpoint condition 1 met"),
    flag("B2", 2, "breakpoint condition 2 met"),
    flag("B3", 3, "breakpoint condition 3 met"),
    flag("BLD", 11, "bus lock detected"),
    flag("BD", 13, "debug-register access detected"),
    flag("BS", 14, "single instruction (TF) or branch"),
    flag("RTM", 16, "inside an RTM transactional region"),
  ],
};

// ---------------------------------------------------------------------------------------------
// Task switch (SDM Table 28-2 "Exit Qualification for Task Switches").

/** Task-switch qualification masks. */
export const TASK_SWITCH_QUAL = {
  /** Bits 15:0: selector of the new task's TSS. */
  SELECTOR_MASK: 0xffff,
  /** Bits 31:30: source of the task switch. */
  SOURCE_SHIFT: 30,
  SOURCE_MASK: 0xc0000000,
} as const;

/** Task-switch sources (bits 31:30). */
export const TASK_SWITCH_SOURCE = { CALL: 0, IRET: 1, JMP: 2, IDT_TASK_GATE: 3 } as const;

/** Task-switch qualification layout. */
export const TASK_SWITCH_QUAL_LAYOUT: RegisterLayout = {
  name: "Exit qualification: task switch",
  width: 64,
  source: "SDM Vol. 3C 28.2.1, Table 28-2",
  fields: [
    field("TSS_SELECTOR", 0, 16, "selector of the new task's TSS"),
    field("SOURCE", 30, 2, "0 CALL, 1 IRET, 2 JMP, 3 task gate in the IDT"),
  ],
};

// ---------------------------------------------------------------------------------------------
// Linear addresses and displacements (SDM 28.2.1).

/**
 * INVLPG (and #PF with exception exiting): the qualification is the linear-address operand
 * (the faulting address for #PF), all 64 bits. For display only.
 */
export function linearAddressQualification(lo: number, hi: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}

/**
 * INVPCID, INVEPT, INVVPID, VMX instructions, descriptor-table instructions, RDRAND/RDSEED
 * aside: the qualification holds the memory operand's displacement, sign-extended to 64 bits
 * (SDM 28.2.1). Returns it as a signed 32-bit number (the upper word only repeats the sign).
 */
export function displacementQualification(lo: number): number {
  return lo | 0;
}

// ---------------------------------------------------------------------------------------------
// VM-exit instruction information for VMX instructions and INVEPT/INVPCID/INVVPID (SDM 28.2.4,
// "Information for VM Exits Due to Instruction Execution"; kvm: get_vmx_mem_address in nested.c).

/** VMX instruction-information masks. */
export const VMX_INSTRUCTION_INFO = {
  /** Bits 1:0: scaling of the index (0 none, 1 ×2, 2 ×4, 3 ×8); undefined for register operands. */
  SCALING_MASK: 0x3,
  /** Bits 6:3: Reg1, the register operand of VMREAD/VMWRITE when bit 10 is set. */
  REG1_SHIFT: 3,
  REG1_MASK: 0x78,
  /** Bits 9:7: address size (0 16-bit, 1 32-bit, 2 64-bit). */
  ADDRESS_SIZE_SHIFT: 7,
  ADDRESS_SIZE_MASK: 0x380,
  /** Bit 10: the operand is a register (VMREAD/VMWRITE only; else always memory). */
  REGISTER_OPERAND: 1 << 10,
  /** Bits 17:15: segment register. */
  SEGMENT_SHIFT: 15,
  SEGMENT_MASK: 0x38000,
  /** Bits 21:18: index register; bit 22 set = no index. */
  INDEX_SHIFT: 18,
  INDEX_MASK: 0x3c0000,
  INDEX_INVALID: 1 << 22,
  /** Bits 26:23: base register; bit 27 set = no base. */
  BASE_SHIFT: 23,
  BASE_MASK: 0x7800000,
  BASE_INVALID: 1 << 27,
  /** Bits 31:28: Reg2 (VMREAD/VMWRITE field-encoding register; INVEPT/INVPCID/INVVPID type register). */
  REG2_SHIFT: 28,
  REG2_MASK: 0xf0000000,
} as const;

/** VMX instruction-information layout. */
export const VMX_INSTRUCTION_INFO_LAYOUT: RegisterLayout = {
  name: "VM-exit instruction information (VMX instructions, INVEPT/INVPCID/INVVPID)",
  width: 32,
  source: "SDM Vol. 3C 28.2.4 (VMX, INVEPT/INVPCID/INVVPID formats)",
  fields: [
    field("SCALING", 0, 2, "index scaling: 0 none, 1 ×2, 2 ×4, 3 ×8"),
    field("REG1", 3, 4, "register operand of VMREAD/VMWRITE (when REG is set)"),
    field("ADDRESS_SIZE", 7, 3, "address size: 0 16-bit, 1 32-bit, 2 64-bit"),
    flag("REG", 10, "the operand is a register (VMREAD/VMWRITE)"),
    field("SEGMENT", 15, 3, "segment register: 0 ES, 1 CS, 2 SS, 3 DS, 4 FS, 5 GS"),
    field("INDEX", 18, 4, "index register"),
    flag("INDEX_INVALID", 22, "no index register"),
    field("BASE", 23, 4, "base register"),
    flag("BASE_INVALID", 27, "no base register"),
    field("REG2", 28, 4, "VMREAD/VMWRITE: field-encoding register; INV*: type register"),
  ],
};

/** A decoded VMX instruction-information field. */
export interface VmxInstructionInfo {
  readonly scaling: number;
  readonly reg1: number;
  readonly addressSize: number;
  readonly registerOperand: boolean;
  readonly segment: number;
  readonly indexReg: number;
  readonly indexValid: boolean;
  readonly baseReg: number;
  readonly baseValid: boolean;
  readonly reg2: number;
}

/** Reads a VMX instruction-information field. */
export function decodeVmxInstructionInfo(value: number): VmxInstructionInfo {
  const v = value >>> 0;
  return {
    scaling: v & VMX_INSTRUCTION_INFO.SCALING_MASK,
    reg1: (v & VMX_INSTRUCTION_INFO.REG1_MASK) >>> VMX_INSTRUCTION_INFO.REG1_SHIFT,
    addressSize: (v & VMX_INSTRUCTION_INFO.ADDRESS_SIZE_MASK) >>> VMX_INSTRUCTION_INFO.ADDRESS_SIZE_SHIFT,
    registerOperand: (v & VMX_INSTRUCTION_INFO.REGISTER_OPERAND) !== 0,
    segment: (v & VMX_INSTRUCTION_INFO.SEGMENT_MASK) >>> VMX_INSTRUCTION_INFO.SEGMENT_SHIFT,
    indexReg: (v & VMX_INSTRUCTION_INFO.INDEX_MASK) >>> VMX_INSTRUCTION_INFO.INDEX_SHIFT,
    indexValid: (v & VMX_INSTRUCTION_INFO.INDEX_INVALID) === 0,
    baseReg: (v & VMX_INSTRUCTION_INFO.BASE_MASK) >>> VMX_INSTRUCTION_INFO.BASE_SHIFT,
    baseValid: (v & VMX_INSTRUCTION_INFO.BASE_INVALID) === 0,
    reg2: v >>> VMX_INSTRUCTION_INFO.REG2_SHIFT,
  };
}

/** Builds a VMX instruction-information field. */
export function encodeVmxInstructionInfo(i: VmxInstructionInfo): number {
  return (
    ((i.scaling & 3) |
      ((i.reg1 & 0xf) << VMX_INSTRUCTION_INFO.REG1_SHIFT) |
      ((i.addressSize & 7) << VMX_INSTRUCTION_INFO.ADDRESS_SIZE_SHIFT) |
      (i.registerOperand ? VMX_INSTRUCTION_INFO.REGISTER_OPERAND : 0) |
      ((i.segment & 7) << VMX_INSTRUCTION_INFO.SEGMENT_SHIFT) |
      ((i.indexReg & 0xf) << VMX_INSTRUCTION_INFO.INDEX_SHIFT) |
      (i.indexValid ? 0 : VMX_INSTRUCTION_INFO.INDEX_INVALID) |
      ((i.baseReg & 0xf) << VMX_INSTRUCTION_INFO.BASE_SHIFT) |
      (i.baseValid ? 0 : VMX_INSTRUCTION_INFO.BASE_INVALID) |
      ((i.reg2 & 0xf) << VMX_INSTRUCTION_INFO.REG2_SHIFT)) >>>
    0
  );
}

const ADDRESS_SIZE_PREFIX = ["", "E", "R"] as const;

function sizedRegName(reg: number, addressSize: number): string {
  const full = gprName(reg);
  if (addressSize === 2) return full;
  if (reg >= 8) return `${full}${addressSize === 1 ? "D" : "W"}`;
  return `${ADDRESS_SIZE_PREFIX[addressSize] ?? ""}${full.slice(1)}`;
}

/**
 * The memory or register operand, e.g. "DS:[RAX+RCX*4+disp]" or "register RBX". The
 * displacement is in the exit qualification (see `displacementQualification`).
 */
export function describeVmxInstructionOperand(value: number): string {
  const i = decodeVmxInstructionInfo(value);
  if (i.registerOperand) return `register ${gprName(i.reg1)}`;
  const parts: string[] = [];
  if (i.baseValid) parts.push(sizedRegName(i.baseReg, i.addressSize));
  if (i.indexValid) parts.push(`${sizedRegName(i.indexReg, i.addressSize)}*${1 << i.scaling}`);
  parts.push("disp");
  const seg = SEGMENT_NAMES[i.segment] ?? `seg${i.segment}`;
  return `${seg}:[${parts.join("+")}]`;
}

/**
 * Instruction information for INS/OUTS (SDM 28.2.4), reported when IA32_VMX_BASIC bit 54
 * is set: address size and, for OUTS, the segment register.
 */
export const IO_INSTRUCTION_INFO_LAYOUT: RegisterLayout = {
  name: "VM-exit instruction information (INS/OUTS)",
  width: 32,
  source: "SDM Vol. 3C 28.2.4 (INS/OUTS format)",
  fields: [
    field("ADDRESS_SIZE", 7, 3, "address size: 0 16-bit, 1 32-bit, 2 64-bit"),
    field("SEGMENT", 15, 3, "OUTS source segment register (undefined for INS)"),
  ],
};

// ---------------------------------------------------------------------------------------------
// Interruption information (SDM 28.2.2 "Information for VM Exits Due to Vectored Events",
// 28.2.3 IDT vectoring, 25.8.3 VM-entry event injection; kvm: asm/vmx.h INTR_INFO_*).

/** Interruption-information masks (KVM's names). */
export const INTR_INFO = {
  INTR_INFO_VECTOR_MASK: 0xff,
  INTR_INFO_INTR_TYPE_MASK: 0x700,
  INTR_INFO_DELIVER_CODE_MASK: 0x800,
  /** Bit 12 of VM-exit interruption information: NMI unblocking due to IRET. */
  INTR_INFO_UNBLOCK_NMI: 0x1000,
  INTR_INFO_VALID_MASK: 0x80000000,
  /** Bits 30:12, reserved in the VM-entry interruption-information field. */
  INTR_INFO_RESVD_BITS_MASK: 0x7ffff000,
  TYPE_SHIFT: 8,
} as const;

/**
 * Interruption types, bits 10:8 (SDM 25.8.3; kvm: EVENT_TYPE_* in asm/trapnr.h, and
 * INTR_TYPE_* = EVENT_TYPE_* << 8 in asm/vmx.h).
 */
export const EVENT_TYPE = {
  EXTINT: 0,
  RESERVED: 1,
  NMI: 2,
  HWEXC: 3,
  SWINT: 4,
  PRIV_SWEXC: 5,
  SWEXC: 6,
  OTHER: 7,
} as const;
export type EventType = (typeof EVENT_TYPE)[keyof typeof EVENT_TYPE];

/** Readable names of the interruption types. */
export const EVENT_TYPE_NAMES: readonly string[] = Object.freeze([
  "external interrupt",
  "reserved",
  "NMI",
  "hardware exception",
  "software interrupt",
  "privileged software exception",
  "software exception",
  "other event",
]);

/** VM-exit interruption-information layout (SDM 28.2.2). */
export const VM_EXIT_INTR_INFO_LAYOUT: RegisterLayout = {
  name: "VM-exit interruption information",
  width: 32,
  source: "SDM Vol. 3C 28.2.2",
  fields: [
    field("VECTOR", 0, 8, "vector of the interrupt or exception"),
    field("TYPE", 8, 3, "interruption type (0 ext int, 2 NMI, 3 hw exc, 4 sw int, 5 priv sw exc, 6 sw exc)"),
    flag("ERROR_CODE_VALID", 11, "the VM-exit interruption error code is valid"),
    flag("NMI_UNBLOCKING", 12, "NMI unblocking due to IRET"),
    flag("VALID", 31, "the field is valid"),
  ],
};

/** IDT-vectoring information layout (SDM 28.2.3): bit 12 is undefined here. */
export const IDT_VECTORING_INFO_LAYOUT: RegisterLayout = {
  name: "IDT-vectoring information",
  width: 32,
  source: "SDM Vol. 3C 28.2.3",
  fields: [
    field("VECTOR", 0, 8, "vector of the event being delivered when the exit occurred"),
    field("TYPE", 8, 3, "interruption type (0 ext int, 2 NMI, 3 hw exc, 4 sw int, 5 priv sw exc, 6 sw exc)"),
    flag("ERROR_CODE_VALID", 11, "the IDT-vectoring error code is valid"),
    flag("VALID", 31, "the field is valid"),
  ],
};

/** VM-entry interruption-information layout (SDM 25.8.3): bits 30:12 must be 0. */
export const VM_ENTRY_INTR_INFO_LAYOUT: RegisterLayout = {
  name: "VM-entry interruption information",
  width: 32,
  source: "SDM Vol. 3C 25.8.3",
  fields: [
    field("VECTOR", 0, 8, "vector to inject"),
    field("TYPE", 8, 3, "interruption type (1 is reserved; 7 other event: vector 0 = pending MTF)"),
    flag("DELIVER_ERROR_CODE", 11, "push the VM-entry exception error code"),
    flag("VALID", 31, "inject an event on this VM entry"),
  ],
};

/** A decoded interruption-information value (any of the three fields). */
export interface InterruptionInfo {
  readonly vector: number;
  readonly type: EventType;
  readonly errorCodeValid: boolean;
  /** Bit 12; meaningful only in VM-exit interruption information. */
  readonly nmiUnblocking: boolean;
  readonly valid: boolean;
}

/** Reads an interruption-information value. */
export function decodeInterruptionInfo(value: number): InterruptionInfo {
  return {
    vector: value & INTR_INFO.INTR_INFO_VECTOR_MASK,
    type: ((value & INTR_INFO.INTR_INFO_INTR_TYPE_MASK) >>> INTR_INFO.TYPE_SHIFT) as EventType,
    errorCodeValid: (value & INTR_INFO.INTR_INFO_DELIVER_CODE_MASK) !== 0,
    nmiUnblocking: (value & INTR_INFO.INTR_INFO_UNBLOCK_NMI) !== 0,
    valid: (value & INTR_INFO.INTR_INFO_VALID_MASK) !== 0,
  };
}

/** Builds an interruption-information value. */
export function encodeInterruptionInfo(i: InterruptionInfo): number {
  return (
    ((i.vector & 0xff) |
      ((i.type & 7) << INTR_INFO.TYPE_SHIFT) |
      (i.errorCodeValid ? INTR_INFO.INTR_INFO_DELIVER_CODE_MASK : 0) |
      (i.nmiUnblocking ? INTR_INFO.INTR_INFO_UNBLOCK_NMI : 0) |
      (i.valid ? INTR_INFO.INTR_INFO_VALID_MASK : 0)) >>>
    0
  );
}

/** E.g. "hardware exception #PF (14) with error code" or "invalid". */
export function describeInterruptionInfo(value: number): string {
  const i = decodeInterruptionInfo(value);
  if (!i.valid) return "invalid";
  const type = EVENT_TYPE_NAMES[i.type] ?? `type ${i.type}`;
  const isException =
    i.type === EVENT_TYPE.HWEXC || i.type === EVENT_TYPE.SWEXC || i.type === EVENT_TYPE.PRIV_SWEXC;
  const mnemonic = isException ? exceptionName(i.vector) : undefined;
  const vector = mnemonic !== undefined ? `${mnemonic} (${i.vector})` : `vector ${i.vector}`;
  const extras: string[] = [];
  if (i.errorCodeValid) extras.push("with error code");
  if (i.nmiUnblocking) extras.push("NMI unblocking");
  return [type, vector, ...extras].join(" ");
}

// ---------------------------------------------------------------------------------------------
// EPT violations (SDM 28.2.1, Table 28-7): KVM's names for the bits; the layout and the builder
// are x86-arch's (EPT_VIOLATION_LAYOUT, eptViolationQualification).

/** EPT-violation qualification bits (kvm: asm/vmx.h EPT_VIOLATION_* where 6.12 names them). */
export const EPT_VIOLATION_QUAL = {
  EPT_VIOLATION_ACC_READ: 1 << 0,
  EPT_VIOLATION_ACC_WRITE: 1 << 1,
  EPT_VIOLATION_ACC_INSTR: 1 << 2,
  EPT_VIOLATION_PROT_READ: 1 << 3,
  EPT_VIOLATION_PROT_WRITE: 1 << 4,
  EPT_VIOLATION_PROT_EXEC: 1 << 5,
  /** No KVM 6.12 macro: user-mode execute permission (mode-based execute control). */
  EPT_VIOLATION_PROT_USER_EXEC: 1 << 6,
  EPT_VIOLATION_GVA_IS_VALID: 1 << 7,
  EPT_VIOLATION_GVA_TRANSLATED: 1 << 8,
  /** No KVM 6.12 macro (bits 9–11 need advanced VM-exit information). */
  EPT_VIOLATION_GVA_USER: 1 << 9,
  EPT_VIOLATION_GVA_WRITABLE: 1 << 10,
  EPT_VIOLATION_GVA_NX: 1 << 11,
  /** Same position as INTR_INFO_UNBLOCK_NMI. */
  EPT_VIOLATION_NMI_UNBLOCKING: 1 << 12,
  EPT_VIOLATION_SHADOW_STACK: 1 << 13,
  EPT_VIOLATION_SUPERVISOR_SHADOW_STACK: 1 << 14,
  EPT_VIOLATION_GUEST_PAGING_VERIFY: 1 << 15,
  EPT_VIOLATION_ASYNCHRONOUS: 1 << 16,
} as const;

/** EPT-violation qualification layout: the SDM's, from x86-arch (field names RD, WR, IF, R, W, X, ...). */
export const EPT_VIOLATION_QUAL_LAYOUT: RegisterLayout = EPT_VIOLATION_LAYOUT;

// ---------------------------------------------------------------------------------------------
// APIC accesses (SDM Table 28-6; kvm: asm/vmx.h APIC_ACCESS_*, TYPE_*_APIC_*).

/** APIC-access qualification masks. */
export const APIC_ACCESS_QUAL = {
  /** Bits 11:0: offset within the APIC page (linear accesses). */
  OFFSET_MASK: 0xfff,
  /** Bits 15:12: access type. */
  TYPE_SHIFT: 12,
  TYPE_MASK: 0xf000,
} as const;

/** APIC-access types (bits 15:12). */
export const APIC_ACCESS_TYPE = {
  LINEAR_READ: 0,
  LINEAR_WRITE: 1,
  LINEAR_FETCH: 2,
  LINEAR_EVENT_DELIVERY: 3,
  PHYSICAL_EVENT_DELIVERY: 10,
  PHYSICAL_INSTRUCTION: 15,
} as const;

/** APIC-access qualification layout. */
export const APIC_ACCESS_QUAL_LAYOUT: RegisterLayout = {
  name: "Exit qualification: APIC access",
  width: 64,
  source: "SDM Vol. 3C 28.2.1, Table 28-6",
  fields: [
    field("OFFSET", 0, 12, "offset in the APIC-access page (linear accesses)"),
    field(
      "TYPE",
      12,
      4,
      "0 linear read, 1 linear write, 2 linear fetch, 3 linear during event delivery, 10 physical during event delivery, 15 physical instruction fetch/execution",
    ),
  ],
};

// ---------------------------------------------------------------------------------------------
// VM-entry failures and VMX aborts.

/**
 * Exit qualification of a VM-entry failure with basic reason 33 (invalid guest state) (SDM
 * 27.8; kvm: enum vm_entry_failure_code). For reason 34 (MSR loading) the qualification is the
 * 1-based index of the failing MSR-load entry instead.
 */
export const ENTRY_FAIL = {
  ENTRY_FAIL_DEFAULT: 0,
  ENTRY_FAIL_PDPTE: 2,
  ENTRY_FAIL_NMI: 3,
  ENTRY_FAIL_VMCS_LINK_PTR: 4,
} as const;

/** One-line meanings of `ENTRY_FAIL` codes. */
export const ENTRY_FAIL_DESCRIPTIONS: Readonly<Record<number, string>> = Object.freeze({
  0: "no further information (default)",
  2: "loading the PDPTEs failed",
  3: "injecting an NMI into a guest that is blocking events with STI",
  4: "the VMCS link pointer is invalid",
});

/**
 * VMX-abort indicators written to the VMCS header when a VM exit itself fails (SDM 28.7).
 * KVM names 1, 2 and 4 (uapi/asm/vmx.h VMX_ABORT_*) and turns any nested abort into a triple
 * fault of L1 (nested_vmx_abort).
 */
export const VMX_ABORT = {
  VMX_ABORT_SAVE_GUEST_MSR_FAIL: 1,
  VMX_ABORT_LOAD_HOST_PDPTE_FAIL: 2,
  /** No KVM macro. */
  VMX_ABORT_VMCS_CORRUPTED: 3,
  VMX_ABORT_LOAD_HOST_MSR_FAIL: 4,
  /** No KVM macro. */
  VMX_ABORT_MACHINE_CHECK: 5,
  /** No KVM macro. */
  VMX_ABORT_HOST_NOT_64BIT: 6,
} as const;

/** One-line meanings of `VMX_ABORT` indicators. */
export const VMX_ABORT_DESCRIPTIONS: Readonly<Record<number, string>> = Object.freeze({
  1: "saving guest MSRs failed",
  2: "host PDPTE checking failed",
  3: "the current VMCS is corrupted",
  4: "loading host MSRs failed",
  5: "machine-check event during the VM exit",
  6: "the processor was in IA-32e mode but host address-space size was 0",
});

/**
 * The qualification layout of a basic exit reason whose qualification has one fixed format,
 * or undefined. (Exceptions depend on the vector: #DB uses `DEBUG_QUAL_LAYOUT`, #PF holds the
 * faulting linear address.)
 */
export function exitQualificationLayout(basicReason: number): RegisterLayout | undefined {
  switch (basicReason) {
    case EXIT_REASON.TASK_SWITCH:
      return TASK_SWITCH_QUAL_LAYOUT;
    case EXIT_REASON.CR_ACCESS:
      return CR_ACCESS_QUAL_LAYOUT;
    case EXIT_REASON.DR_ACCESS:
      return DR_ACCESS_QUAL_LAYOUT;
    case EXIT_REASON.IO_INSTRUCTION:
      return IO_QUAL_LAYOUT;
    case EXIT_REASON.APIC_ACCESS:
      return APIC_ACCESS_QUAL_LAYOUT;
    case EXIT_REASON.EPT_VIOLATION:
      return EPT_VIOLATION_QUAL_LAYOUT;
    default:
      return undefined;
  }
}
