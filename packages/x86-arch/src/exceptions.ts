/**
 * Exception and NMI vectors 0-31 (SDM Vol. 3A 6.3.1, Table 6-1, "Protected-Mode Exceptions and
 * Interrupts"; vectors 28-30 are AMD's, AMD APM Vol. 2 8.2, Table 8-1). Vectors 15, 22-27 and 31
 * are reserved; 32-255 are user-defined interrupts.
 */
export const VECTOR = {
  DE: 0,
  DB: 1,
  NMI: 2,
  BP: 3,
  OF: 4,
  BR: 5,
  UD: 6,
  NM: 7,
  DF: 8,
  CSO: 9,
  TS: 10,
  NP: 11,
  SS: 12,
  GP: 13,
  PF: 14,
  MF: 16,
  AC: 17,
  MC: 18,
  XM: 19,
  VE: 20,
  CP: 21,
  HV: 28,
  VC: 29,
  SX: 30,
} as const;
export type ExceptionVector = (typeof VECTOR)[keyof typeof VECTOR];

/** How an event is reported (SDM 6.5): where the saved instruction pointer points and whether it restarts. */
export const EXCEPTION_CLASS = {
  FAULT: "fault",
  TRAP: "trap",
  /** #DB: a fault for instruction breakpoints and general detect, a trap otherwise. */
  FAULT_OR_TRAP: "fault/trap",
  ABORT: "abort",
  INTERRUPT: "interrupt",
} as const;
export type ExceptionClass = (typeof EXCEPTION_CLASS)[keyof typeof EXCEPTION_CLASS];

/** Classes for double-fault detection (SDM Vol. 3A 6.15, "Interrupt 8", Table 6-4). */
export const DOUBLE_FAULT_CLASS = {
  BENIGN: "benign",
  CONTRIBUTORY: "contributory",
  PAGE_FAULT: "page fault",
} as const;
export type DoubleFaultClass = (typeof DOUBLE_FAULT_CLASS)[keyof typeof DOUBLE_FAULT_CLASS];

export interface ExceptionInfo {
  readonly vector: ExceptionVector;
  /** "#PF", or "NMI"; "CSO" for vector 9, which the SDM gives no mnemonic. */
  readonly mnemonic: string;
  readonly name: string;
  /** Delivery pushes an error code (in protected mode; real-mode delivery never does). */
  readonly errorCode: boolean;
  readonly class: ExceptionClass;
  readonly doubleFaultClass: DoubleFaultClass;
  /** Defined by the SDM ("intel") or only by AMD's APM ("amd"). */
  readonly vendor: "intel" | "amd";
}

const { FAULT, TRAP, FAULT_OR_TRAP, ABORT, INTERRUPT } = EXCEPTION_CLASS;
const { BENIGN, CONTRIBUTORY, PAGE_FAULT } = DOUBLE_FAULT_CLASS;

function info(
  vector: ExceptionVector,
  mnemonic: string,
  name: string,
  errorCode: boolean,
  cls: ExceptionClass,
  doubleFaultClass: DoubleFaultClass,
  vendor: "intel" | "amd" = "intel",
): ExceptionInfo {
  return Object.freeze({ vector, mnemonic, name, errorCode, class: cls, doubleFaultClass, vendor });
}

/**
 * The exception table, ascending by vector. Error codes and classes: SDM Table 6-1; #DF and #AC
 * always push 0. Double-fault classes: SDM Table 6-4 (#CP contributory, #VE with page faults).
 * AMD vectors: error codes per APM Table 8-1; their classes are not in the SDM and are taken as
 * faults, and as benign for double-fault detection.
 */
export const EXCEPTIONS: readonly ExceptionInfo[] = Object.freeze([
  info(VECTOR.DE, "#DE", "Divide Error", false, FAULT, CONTRIBUTORY),
  info(VECTOR.DB, "#DB", "Debug Exception", false, FAULT_OR_TRAP, BENIGN),
  info(VECTOR.NMI, "NMI", "Nonmaskable Interrupt", false, INTERRUPT, BENIGN),
  info(VECTOR.BP, "#BP", "Breakpoint", false, TRAP, BENIGN),
  info(VECTOR.OF, "#OF", "Overflow", false, TRAP, BENIGN),
  info(VECTOR.BR, "#BR", "BOUND Range Exceeded", false, FAULT, BENIGN),
  info(VECTOR.UD, "#UD", "Invalid Opcode", false, FAULT, BENIGN),
  info(VECTOR.NM, "#NM", "Device Not Available", false, FAULT, BENIGN),
  info(VECTOR.DF, "#DF", "Double Fault", true, ABORT, BENIGN),
  info(VECTOR.CSO, "CSO", "Coprocessor Segment Overrun (reserved since the Intel386)", false, FAULT, BENIGN),
  info(VECTOR.TS, "#TS", "Invalid TSS", true, FAULT, CONTRIBUTORY),
  info(VECTOR.NP, "#NP", "Segment Not Present", true, FAULT, CONTRIBUTORY),
  info(VECTOR.SS, "#SS", "Stack-Segment Fault", true, FAULT, CONTRIBUTORY),
  info(VECTOR.GP, "#GP", "General Protection", true, FAULT, CONTRIBUTORY),
  info(VECTOR.PF, "#PF", "Page Fault", true, FAULT, PAGE_FAULT),
  info(VECTOR.MF, "#MF", "x87 FPU Floating-Point Error", false, FAULT, BENIGN),
  info(VECTOR.AC, "#AC", "Alignment Check", true, FAULT, BENIGN),
  info(VECTOR.MC, "#MC", "Machine Check", false, ABORT, BENIGN),
  info(VECTOR.XM, "#XM", "SIMD Floating-Point Exception", false, FAULT, BENIGN),
  info(VECTOR.VE, "#VE", "Virtualization Exception", false, FAULT, PAGE_FAULT),
  info(VECTOR.CP, "#CP", "Control Protection Exception", true, FAULT, CONTRIBUTORY),
  info(VECTOR.HV, "#HV", "Hypervisor Injection Exception", false, FAULT, BENIGN, "amd"),
  info(VECTOR.VC, "#VC", "VMM Communication Exception", true, FAULT, BENIGN, "amd"),
  info(VECTOR.SX, "#SX", "Security Exception", true, FAULT, BENIGN, "amd"),
]);

const BY_VECTOR: readonly (ExceptionInfo | undefined)[] = (() => {
  const table: (ExceptionInfo | undefined)[] = new Array(32).fill(undefined);
  for (const e of EXCEPTIONS) table[e.vector] = e;
  return table;
})();

/** Bit n set when vector n pushes an error code (hot-path form of `ExceptionInfo.errorCode`). */
export const ERROR_CODE_VECTORS: number = EXCEPTIONS.reduce(
  (mask, e) => (e.errorCode ? (mask | (1 << e.vector)) >>> 0 : mask),
  0,
);

/** Bit n set when vector n is contributory for double-fault detection. */
export const CONTRIBUTORY_VECTORS: number = EXCEPTIONS.reduce(
  (mask, e) => (e.doubleFaultClass === CONTRIBUTORY ? (mask | (1 << e.vector)) >>> 0 : mask),
  0,
);

function checkVector(vector: number): void {
  if (!Number.isInteger(vector) || vector < 0 || vector > 255) {
    throw new RangeError(`vector ${vector} is not an integer in [0, 255]`);
  }
}

/** The table entry for a vector, or undefined for reserved vectors and user-defined interrupts (32-255). */
export function exceptionInfo(vector: number): ExceptionInfo | undefined {
  checkVector(vector);
  return BY_VECTOR[vector];
}

/** The mnemonic of a vector ("#PF", "NMI"), or undefined when no exception is defined there. */
export function exceptionName(vector: number): string | undefined {
  return exceptionInfo(vector)?.mnemonic;
}

/** Whether delivering `vector` as a hardware exception pushes an error code (protected mode). */
export function exceptionHasErrorCode(vector: number): boolean {
  return vector >>> 0 === vector && vector < 32 && ((ERROR_CODE_VECTORS >>> vector) & 1) === 1;
}

/** The vector for a mnemonic, case-insensitive, with or without "#": "#PF", "pf", "NMI". */
export function exceptionVector(mnemonic: string): ExceptionVector {
  const wanted = mnemonic.trim().replace(/^#/, "").toUpperCase();
  for (const e of EXCEPTIONS) {
    if (e.mnemonic.replace(/^#/, "") === wanted) return e.vector;
  }
  throw new RangeError(`unknown exception mnemonic "${mnemonic}"`);
}

/**
 * Whether a second exception raised while delivering the first becomes a double fault (SDM 6.15,
 * Table 6-5): contributory after contributory, and contributory or page fault after a page fault.
 * Otherwise the two are handled serially (the second is delivered). A fault while delivering #DF
 * is a triple fault (shutdown), which the caller checks first.
 */
export function raisesDoubleFault(first: number, second: number): boolean {
  const a = exceptionInfo(first)?.doubleFaultClass ?? BENIGN;
  const b = exceptionInfo(second)?.doubleFaultClass ?? BENIGN;
  if (a === CONTRIBUTORY) return b === CONTRIBUTORY;
  if (a === PAGE_FAULT) return b !== BENIGN;
  return false;
}
