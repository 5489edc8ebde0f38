import {
  checkProgram,
  ITERATION_SLOT,
  isMemoryOp,
  LOOP_SLOT,
  MEM_SLOT,
  OP,
  OPERAND_STRIDE,
  type WorkloadProgram,
} from "./workload-ops";

/** What `ProgramCursor.next()` returns once the program has run to its end. */
export const CURSOR_END = -1;

const TWO_32 = 4294967296;

/**
 * Steps through a `WorkloadProgram` the way a guest CPU would, with no allocation per step: loop
 * counters live in typed arrays sized by `program.maxLoopDepth`. LOOP_BEGIN/LOOP_END are consumed
 * here; `next()` returns only operations the runtime executes (ITERATION markers included), and for
 * READ/WRITE/FETCH/INVLPG it computes the effective GVA (base + stride × index of the innermost
 * enclosing loop) into `gvaLo`/`gvaHi`.
 *
 * Typical use:
 * ```ts
 * const c = new ProgramCursor(program);
 * for (let op = c.next(); op !== CURSOR_END; op = c.next()) {
 *   switch (op) { case OP.CPUID: cpuid(c.operand(CPUID_SLOT.LEAF), c.operand(CPUID_SLOT.SUBLEAF)); … }
 * }
 * ```
 */
export class ProgramCursor {
  readonly program: WorkloadProgram;
  /** Index of the current operation; -1 before the first `next()`, `program.length` at the end. */
  pc = -1;
  /** Opcode of the current operation, or `CURSOR_END`. */
  opcode: number = CURSOR_END;
  /** Effective GVA of the current memory operation or INVLPG (64-bit, two halves). */
  gvaLo = 0;
  gvaHi = 0;
  /** Operations returned by `next()` since the last reset. */
  executed = 0;

  private readonly operands: Uint32Array;
  private readonly loopBegin: Int32Array;
  private readonly loopIndex: Uint32Array;
  private readonly loopCount: Uint32Array;
  private depth = 0;
  private nextPc = 0;

  /** Checks the program's structure (`checkProgram`) once, then allocates the loop stack. */
  constructor(program: WorkloadProgram) {
    checkProgram(program);
    this.program = program;
    this.operands = program.operands;
    const size = Math.max(program.maxLoopDepth, 1);
    this.loopBegin = new Int32Array(size);
    this.loopIndex = new Uint32Array(size);
    this.loopCount = new Uint32Array(size);
  }

  /** Back to before the first operation. */
  reset(): void {
    this.pc = -1;
    this.opcode = CURSOR_END;
    this.gvaLo = 0;
    this.gvaHi = 0;
    this.executed = 0;
    this.depth = 0;
    this.nextPc = 0;
  }

  /** Whether the program has run to its end. */
  get done(): boolean {
    return this.opcode === CURSOR_END && this.pc >= 0;
  }

  /** Number of loops currently entered. */
  get loopDepth(): number {
    return this.depth;
  }

  /** The 0-based iteration of the loop entered at nesting `level` (0 = outermost). */
  loopIteration(level: number): number {
    if (level < 0 || level >= this.depth)
      throw new RangeError(`no loop at level ${level} (depth ${this.depth})`);
    return this.loopIndex[level] ?? 0;
  }

  /** Operand `slot` of the current operation. */
  operand(slot: number): number {
    return this.operands[this.pc * OPERAND_STRIDE + slot] ?? 0;
  }

  /** The current ITERATION's label. */
  label(): string {
    return this.program.labels[this.operand(ITERATION_SLOT.LABEL)] ?? "";
  }

  /** Advances to the next executed operation and returns its opcode, or `CURSOR_END`. */
  next(): number {
    const { opcodes, length } = this.program;
    const operands = this.operands;
    let pc = this.nextPc;
    for (;;) {
      if (pc >= length) {
        this.pc = length;
        this.nextPc = length;
        this.opcode = CURSOR_END;
        return CURSOR_END;
      }
      const op = opcodes[pc] ?? 0;
      const base = pc * OPERAND_STRIDE;
      if (op === OP.LOOP_BEGIN) {
        const count = operands[base + LOOP_SLOT.COUNT] ?? 0;
        if (count === 0) {
          pc = (operands[base + LOOP_SLOT.END] ?? pc) + 1;
          continue;
        }
        const level = this.depth++;
        this.loopBegin[level] = pc;
        this.loopIndex[level] = 0;
        this.loopCount[level] = count;
        pc++;
        continue;
      }
      if (op === OP.LOOP_END) {
        const level = this.depth - 1;
        const index = (this.loopIndex[level] ?? 0) + 1;
        if (index < (this.loopCount[level] ?? 0)) {
          this.loopIndex[level] = index;
          pc = (this.loopBegin[level] ?? 0) + 1;
        } else {
          this.depth = level;
          pc++;
        }
        continue;
      }
      this.pc = pc;
      this.nextPc = pc + 1;
      this.opcode = op;
      this.executed++;
      if (isMemoryOp(op) || op === OP.INVLPG) this.effectiveAddress(base);
      return op;
    }
  }

  private effectiveAddress(base: number): void {
    const operands = this.operands;
    const lo = operands[base + MEM_SLOT.GVA_LO] ?? 0;
    const hi = operands[base + MEM_SLOT.GVA_HI] ?? 0;
    const stride = operands[base + MEM_SLOT.STRIDE] ?? 0;
    if (stride === 0 || this.depth === 0) {
      this.gvaLo = lo;
      this.gvaHi = hi;
      return;
    }
    // The compiler keeps stride × (count − 1) inside a mapping, so the offset is exact (< 2^53).
    const sum = lo + stride * (this.loopIndex[this.depth - 1] ?? 0);
    this.gvaLo = sum >>> 0;
    this.gvaHi = (hi + Math.floor(sum / TWO_32)) >>> 0;
  }
}
