/**
 * The compiled form of a workload (DESIGN.md §3): what a guest that is not a hypervisor runs. A
 * program is a flat list of architectural operations held in typed arrays, so that the runtime
 * steps through it with no allocation: one byte of opcode per operation and `OPERAND_STRIDE`
 * 32-bit operand words beside it. 64-bit operands (GVAs, CR and MSR values, cycle counts) take two
 * words, low half first (DESIGN.md §2.5).
 *
 * Loops are a LOOP_BEGIN/LOOP_END pair holding each other's index, so they nest and jump in O(1);
 * `ProgramCursor` (program-cursor.ts) runs them with a typed loop stack. ITERATION markers name what
 * "one iteration" of the workload is, for cycles-per-iteration figures.
 *
 * The program also carries the guest's initial state (`WorkloadSetup`): the level it runs at, its
 * paging mode, control registers, memory size, CPL and the address spaces (page-table layouts) the
 * runtime must build before the first operation.
 */
import type { PagingMode } from "@nestvisor/x86-arch";
import { join64 } from "@nestvisor/x86-arch";

/** Opcodes. Values are stable: saved programs and per-opcode counters index by them. */
export const OP = {
  /** Data read at a GVA: slots `MEM_SLOT`. */
  READ: 1,
  /** Data write at a GVA: slots `MEM_SLOT`, the value written in VALUE_LO/VALUE_HI. */
  WRITE: 2,
  /** Instruction fetch at a GVA (an execute access for the page walk): slots `MEM_SLOT`. */
  FETCH: 3,
  /** CPUID with EAX = leaf, ECX = subleaf: slots `CPUID_SLOT`. Always exits (SDM 26.1.2). */
  CPUID: 4,
  /** VMCALL with RAX = hypercall number: slot `VMCALL_SLOT`. Always exits (SDM 26.1.2). */
  VMCALL: 5,
  /** MOV to CR0: slots `CR_SLOT`. */
  MOV_TO_CR0: 6,
  /** MOV to CR3: slots `CR_SLOT`, with `CR3_FLAG` in FLAGS. */
  MOV_TO_CR3: 7,
  /** MOV to CR4: slots `CR_SLOT`. */
  MOV_TO_CR4: 8,
  /** MOV from CR0 (no operands). */
  MOV_FROM_CR0: 9,
  /** MOV from CR3 (no operands). */
  MOV_FROM_CR3: 10,
  /** MOV from CR4 (no operands). */
  MOV_FROM_CR4: 11,
  /** WRMSR: slots `MSR_SLOT`. */
  WRMSR: 12,
  /** RDMSR: slot `MSR_SLOT.INDEX`. */
  RDMSR: 13,
  /** INVLPG of a GVA: slots GVA_LO, GVA_HI and STRIDE of `MEM_SLOT`. */
  INVLPG: 14,
  /** IN from an I/O port: slots `IO_SLOT` (VALUE unused). */
  IN: 15,
  /** OUT to an I/O port: slots `IO_SLOT`. */
  OUT: 16,
  /** HLT (no operands). */
  HLT: 17,
  /** Guest work that causes no exit, for a number of cycles: slots `COMPUTE_SLOT`. */
  COMPUTE: 18,
  /** Start of a loop body run COUNT times (0 skips it): slots `LOOP_SLOT`. */
  LOOP_BEGIN: 19,
  /** End of the loop body opened at slot BEGIN: slots `LOOP_SLOT`. */
  LOOP_END: 20,
  /** Marks the start of one iteration of the workload, with a label: slot `ITERATION_SLOT`. */
  ITERATION: 21,
} as const;
export type Opcode = (typeof OP)[keyof typeof OP];

/** One past the largest opcode: the size of a per-opcode table. */
export const OPCODE_LIMIT = 22;

/** Operand words per operation. */
export const OPERAND_STRIDE = 6;

/** Operand slots of READ, WRITE, FETCH (all) and INVLPG (GVA and STRIDE). */
export const MEM_SLOT = {
  GVA_LO: 0,
  GVA_HI: 1,
  /** Access size in bytes: 1, 2, 4 or 8. */
  SIZE: 2,
  /** Bytes added to the GVA per iteration of the innermost enclosing loop (0: same address). */
  STRIDE: 3,
  VALUE_LO: 4,
  VALUE_HI: 5,
} as const;

export const CPUID_SLOT = { LEAF: 0, SUBLEAF: 1 } as const;
export const VMCALL_SLOT = { NR: 0 } as const;

/** Operand slots of MOV to CR0/CR3/CR4. */
export const CR_SLOT = {
  VALUE_LO: 0,
  VALUE_HI: 1,
  /** `CR3_FLAG` bits (MOV to CR3 only; 0 for CR0 and CR4). */
  FLAGS: 2,
  /** With `CR3_FLAG.SPACE`: the index of the address space whose root CR3 is loaded. */
  SPACE: 3,
} as const;

/** How a MOV to CR3 picks its value. With neither SPACE nor RELOAD it loads VALUE_LO/VALUE_HI as is. */
export const CR3_FLAG = {
  /** Operand bit 63: keep the new PCID's TLB entries (CR4.PCIDE = 1 only; SDM 4.10.4.1). */
  NO_FLUSH: 1,
  /** Load the root of `setup.addressSpaces[SPACE]`, with that space's PCID (the runtime knows the root GPA). */
  SPACE: 2,
  /** Load the current CR3 again (the classic full TLB flush of non-global entries, SDM 4.10.4.1). */
  RELOAD: 4,
} as const;

export const MSR_SLOT = { INDEX: 0, VALUE_LO: 1, VALUE_HI: 2 } as const;

export const IO_SLOT = {
  PORT: 0,
  /** 1, 2 or 4 bytes. */
  SIZE: 1,
  /** The value OUT writes (zero-extended to SIZE bytes). */
  VALUE: 2,
} as const;

export const COMPUTE_SLOT = { CYCLES_LO: 0, CYCLES_HI: 1 } as const;

export const LOOP_SLOT = {
  /** LOOP_BEGIN: the iteration count (0 to 2^32 − 1). */
  COUNT: 0,
  /** LOOP_BEGIN: index of its LOOP_END. */
  END: 1,
  /** LOOP_END: index of its LOOP_BEGIN. */
  BEGIN: 2,
} as const;

export const ITERATION_SLOT = {
  /** Index into `program.labels`. */
  LABEL: 0,
} as const;

/** The names used in workload files and the builder, by opcode (stable). */
export const OP_NAMES: Readonly<Record<Opcode, string>> = Object.freeze({
  [OP.READ]: "read",
  [OP.WRITE]: "write",
  [OP.FETCH]: "fetch",
  [OP.CPUID]: "cpuid",
  [OP.VMCALL]: "vmcall",
  [OP.MOV_TO_CR0]: "movToCr0",
  [OP.MOV_TO_CR3]: "movToCr3",
  [OP.MOV_TO_CR4]: "movToCr4",
  [OP.MOV_FROM_CR0]: "movFromCr0",
  [OP.MOV_FROM_CR3]: "movFromCr3",
  [OP.MOV_FROM_CR4]: "movFromCr4",
  [OP.WRMSR]: "wrmsr",
  [OP.RDMSR]: "rdmsr",
  [OP.INVLPG]: "invlpg",
  [OP.IN]: "in",
  [OP.OUT]: "out",
  [OP.HLT]: "hlt",
  [OP.COMPUTE]: "compute",
  [OP.LOOP_BEGIN]: "loop",
  [OP.LOOP_END]: "endLoop",
  [OP.ITERATION]: "iteration",
});

/** Whether `value` is an opcode. */
export function isOpcode(value: number): value is Opcode {
  return Number.isInteger(value) && value >= OP.READ && value < OPCODE_LIMIT;
}

/** Whether an opcode is a data or instruction access at a GVA (the ones with `MEM_SLOT` operands). */
export function isMemoryOp(opcode: number): boolean {
  return opcode === OP.READ || opcode === OP.WRITE || opcode === OP.FETCH;
}

/** One range of guest-virtual pages mapped in an address space. */
export interface GvaMapping {
  /** First GVA, low and high 32 bits of the 64-bit (canonical) linear address; aligned to `pageSize`. */
  readonly gvaLo: number;
  readonly gvaHi: number;
  /** Guest-physical address the first page maps to; aligned to `pageSize`. */
  readonly gpa: number;
  /** Number of pages. */
  readonly pages: number;
  /** Page size in bytes: 4 KiB, 2 MiB, 4 MiB (32-bit paging with CR4.PSE) or 1 GiB. */
  readonly pageSize: number;
  /** R/W of the leaf entries (SDM 4.6). */
  readonly writable: boolean;
  /** U/S of the leaf entries (SDM 4.6). */
  readonly user: boolean;
  /** Execute allowed: XD clear (meaningful with EFER.NXE; SDM 4.6). */
  readonly executable: boolean;
}

/** A set of mappings reached from one CR3: one guest "process" for `cr3_switch`. */
export interface AddressSpaceLayout {
  readonly name: string;
  /** PCID loaded with this space's CR3 (0 unless CR4.PCIDE; SDM 4.10.1). */
  readonly pcid: number;
  readonly mappings: readonly GvaMapping[];
}

/** The nesting level a workload's guest runs at: 1 = guest of L0, 2 = nested guest, 3 = a guest of L2. */
export type WorkloadLevel = 1 | 2 | 3;
export type Cpl = 0 | 1 | 2 | 3;

/** The guest state a program needs before its first operation. */
export interface WorkloadSetup {
  readonly level: WorkloadLevel;
  readonly pagingMode: PagingMode;
  /** Guest-physical memory size in bytes (a multiple of 4 KiB). Page tables are the runtime's to place. */
  readonly memoryBytes: number;
  readonly cpl: Cpl;
  /** Initial CR0, CR4 and IA32_EFER (integers below 2^53; CR4 bit 32 is FRED). */
  readonly cr0: number;
  readonly cr4: number;
  readonly efer: number;
  /** Empty when paging is off. */
  readonly addressSpaces: readonly AddressSpaceLayout[];
  /** Index of the space whose root is in CR3 at start (0 when there are none). */
  readonly initialAddressSpace: number;
}

/** A compiled workload. Treat the typed arrays as read-only. */
export interface WorkloadProgram {
  readonly name: string;
  readonly description: string;
  readonly setup: WorkloadSetup;
  /** Number of operations. */
  readonly length: number;
  /** `length` opcodes. */
  readonly opcodes: Uint8Array;
  /** `length * OPERAND_STRIDE` operand words. */
  readonly operands: Uint32Array;
  /** ITERATION labels, indexed by the ITERATION operand. */
  readonly labels: readonly string[];
  /** Deepest loop nesting (the size of a cursor's loop stack). */
  readonly maxLoopDepth: number;
  /** For each operation, the path of the step it came from (`steps[2].loop.steps[0].cpuid`): for attribution and errors. */
  readonly stepPaths: readonly string[];
}

/** Operand `slot` of operation `index`. */
export function operand(program: WorkloadProgram, index: number, slot: number): number {
  return program.operands[index * OPERAND_STRIDE + slot] ?? 0;
}

/**
 * Checks the structure of a program that did not come from the compiler (a hand-made or deserialised
 * one): opcodes, array sizes, matching loop pairs, labels and space indices. Throws a RangeError
 * naming the first bad operation.
 */
export function checkProgram(program: WorkloadProgram): void {
  const { length, opcodes, operands } = program;
  const fail = (index: number, message: string): never => {
    throw new RangeError(`workload "${program.name}": operation ${index}: ${message}`);
  };
  if (!Number.isInteger(length) || length < 0) throw new RangeError(`workload "${program.name}": bad length`);
  if (opcodes.length !== length || operands.length !== length * OPERAND_STRIDE) {
    throw new RangeError(
      `workload "${program.name}": opcode and operand arrays do not match length ${length}`,
    );
  }
  if (program.stepPaths.length !== length) {
    throw new RangeError(
      `workload "${program.name}": stepPaths has ${program.stepPaths.length} entries, not ${length}`,
    );
  }
  const open: number[] = [];
  let deepest = 0;
  for (let i = 0; i < length; i++) {
    const op = opcodes[i] ?? 0;
    const base = i * OPERAND_STRIDE;
    if (!isOpcode(op)) fail(i, `unknown opcode ${op}`);
    if (op === OP.LOOP_BEGIN) {
      open.push(i);
      deepest = Math.max(deepest, open.length);
      const end = operands[base + LOOP_SLOT.END] ?? 0;
      if (end <= i || end >= length || opcodes[end] !== OP.LOOP_END)
        fail(i, `LOOP_BEGIN points at ${end}, not a LOOP_END`);
    } else if (op === OP.LOOP_END) {
      const begin = open.pop();
      if (begin === undefined) fail(i, "LOOP_END without LOOP_BEGIN");
      if (
        operands[base + LOOP_SLOT.BEGIN] !== begin ||
        operands[(begin ?? 0) * OPERAND_STRIDE + LOOP_SLOT.END] !== i
      ) {
        fail(i, "LOOP_END and LOOP_BEGIN do not point at each other");
      }
    } else if (op === OP.ITERATION) {
      if ((operands[base + ITERATION_SLOT.LABEL] ?? 0) >= program.labels.length)
        fail(i, "label index out of range");
    } else if (op === OP.MOV_TO_CR3) {
      const flags = operands[base + CR_SLOT.FLAGS] ?? 0;
      if (
        (flags & CR3_FLAG.SPACE) !== 0 &&
        (operands[base + CR_SLOT.SPACE] ?? 0) >= program.setup.addressSpaces.length
      ) {
        fail(i, "address-space index out of range");
      }
    }
  }
  if (open.length > 0) fail(open[open.length - 1] ?? 0, "LOOP_BEGIN without LOOP_END");
  if (deepest > program.maxLoopDepth) {
    throw new RangeError(
      `workload "${program.name}": loops nest ${deepest} deep, maxLoopDepth says ${program.maxLoopDepth}`,
    );
  }
}

/**
 * How many times each opcode appears in the program text (loops not unrolled), indexed by opcode
 * (`OPCODE_LIMIT` entries).
 */
export function staticOpCounts(program: WorkloadProgram): Float64Array {
  const counts = new Float64Array(OPCODE_LIMIT);
  for (let i = 0; i < program.length; i++) counts[program.opcodes[i] ?? 0]! += 1;
  return counts;
}

/**
 * How many times each opcode executes when the program runs to the end, indexed by opcode: loop
 * bodies count COUNT times (nested loops multiply). LOOP_BEGIN and LOOP_END count once per loop
 * entry. Exact while the totals stay below 2^53.
 */
export function dynamicOpCounts(program: WorkloadProgram): Float64Array {
  const counts = new Float64Array(OPCODE_LIMIT);
  const multipliers: number[] = [1];
  for (let i = 0; i < program.length; i++) {
    const op = program.opcodes[i] ?? 0;
    const current = multipliers[multipliers.length - 1] ?? 1;
    if (op === OP.LOOP_BEGIN) {
      counts[op]! += current;
      multipliers.push(current * operand(program, i, LOOP_SLOT.COUNT));
    } else if (op === OP.LOOP_END) {
      multipliers.pop();
      counts[op]! += multipliers[multipliers.length - 1] ?? 1;
    } else {
      counts[op]! += current;
    }
  }
  return counts;
}

/** Per-opcode counts as a `{ name: count }` object without zero entries (for tests and reports). */
export function opCountsByName(counts: Float64Array): Record<string, number> {
  const out: Record<string, number> = {};
  for (let op = OP.READ; op < OPCODE_LIMIT; op++) {
    const n = counts[op] ?? 0;
    if (n !== 0) out[OP_NAMES[op as Opcode]] = n;
  }
  return out;
}

function hex(value: number): string {
  return `0x${value.toString(16)}`;
}

/** A 64-bit value from its halves, without leading zeros (exact where one number would not be). */
export function hex64(lo: number, hi: number): string {
  return hi === 0 ? hex(lo) : `0x${hi.toString(16)}${lo.toString(16).padStart(8, "0")}`;
}

/** One operation as text, e.g. `cpuid leaf=0x0 subleaf=0x0` (for listings and error messages). */
export function formatOperation(program: WorkloadProgram, index: number): string {
  const op = (program.opcodes[index] ?? 0) as Opcode;
  const a = (slot: number) => operand(program, index, slot);
  const name = OP_NAMES[op] ?? `op${op}`;
  switch (op) {
    case OP.READ:
    case OP.WRITE:
    case OP.FETCH: {
      const stride = a(MEM_SLOT.STRIDE);
      let text = `${name} gva=${hex64(a(MEM_SLOT.GVA_LO), a(MEM_SLOT.GVA_HI))} size=${a(MEM_SLOT.SIZE)}`;
      if (op === OP.WRITE) text += ` value=${hex64(a(MEM_SLOT.VALUE_LO), a(MEM_SLOT.VALUE_HI))}`;
      return stride === 0 ? text : `${text} stride=${hex(stride)}`;
    }
    case OP.INVLPG: {
      const stride = a(MEM_SLOT.STRIDE);
      const text = `${name} gva=${hex64(a(MEM_SLOT.GVA_LO), a(MEM_SLOT.GVA_HI))}`;
      return stride === 0 ? text : `${text} stride=${hex(stride)}`;
    }
    case OP.CPUID:
      return `${name} leaf=${hex(a(CPUID_SLOT.LEAF))} subleaf=${hex(a(CPUID_SLOT.SUBLEAF))}`;
    case OP.VMCALL:
      return `${name} nr=${a(VMCALL_SLOT.NR)}`;
    case OP.MOV_TO_CR0:
    case OP.MOV_TO_CR4:
      return `${name} ${hex64(a(CR_SLOT.VALUE_LO), a(CR_SLOT.VALUE_HI))}`;
    case OP.MOV_TO_CR3: {
      const flags = a(CR_SLOT.FLAGS);
      const noFlush = (flags & CR3_FLAG.NO_FLUSH) !== 0 ? " noFlush" : "";
      if ((flags & CR3_FLAG.RELOAD) !== 0) return `${name} reload${noFlush}`;
      if ((flags & CR3_FLAG.SPACE) !== 0) {
        const space = program.setup.addressSpaces[a(CR_SLOT.SPACE)];
        return `${name} space=${space?.name ?? a(CR_SLOT.SPACE)}${noFlush}`;
      }
      return `${name} ${hex64(a(CR_SLOT.VALUE_LO), a(CR_SLOT.VALUE_HI))}${noFlush}`;
    }
    case OP.WRMSR:
      return `${name} msr=${hex(a(MSR_SLOT.INDEX))} value=${hex64(a(MSR_SLOT.VALUE_LO), a(MSR_SLOT.VALUE_HI))}`;
    case OP.RDMSR:
      return `${name} msr=${hex(a(MSR_SLOT.INDEX))}`;
    case OP.IN:
      return `${name} port=${hex(a(IO_SLOT.PORT))} size=${a(IO_SLOT.SIZE)}`;
    case OP.OUT:
      return `${name} port=${hex(a(IO_SLOT.PORT))} size=${a(IO_SLOT.SIZE)} value=${hex(a(IO_SLOT.VALUE))}`;
    case OP.COMPUTE:
      return `${name} cycles=${join64(a(COMPUTE_SLOT.CYCLES_LO), a(COMPUTE_SLOT.CYCLES_HI))}`;
    case OP.LOOP_BEGIN:
      return `${name} count=${a(LOOP_SLOT.COUNT)} end=${a(LOOP_SLOT.END)}`;
    case OP.LOOP_END:
      return `${name} begin=${a(LOOP_SLOT.BEGIN)}`;
    case OP.ITERATION:
      return `${name} ${JSON.stringify(program.labels[a(ITERATION_SLOT.LABEL)] ?? "")}`;
    default:
      return name;
  }
}

/** A listing of the whole program, one operation per line, indented by loop depth. */
export function formatProgram(program: WorkloadProgram): string {
  const lines: string[] = [];
  let depth = 0;
  for (let i = 0; i < program.length; i++) {
    if (program.opcodes[i] === OP.LOOP_END) depth--;
    lines.push(`${String(i).padStart(4)}  ${"  ".repeat(Math.max(depth, 0))}${formatOperation(program, i)}`);
    if (program.opcodes[i] === OP.LOOP_BEGIN) depth++;
  }
  return lines.join("\n");
}
