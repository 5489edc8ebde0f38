/**
 * The TypeScript way to write a workload:
 *
 * ```ts
 * const program = workload("cpuid_loop")
 *   .describe("CPUID then VMCALL, 1000 times")
 *   .setup({ level: 2, paging: "4-level", memory: "16MiB" })
 *   .loop(1000, (b) => b.iteration("round").cpuid(0).vmcall())
 *   .build();
 * ```
 *
 * Each step method checks its own operands at once (ports 0..0xffff, sizes 1/2/4(/8), 32-bit MSR
 * indices and CPUID leaves, 64-bit values…) and throws a `WorkloadBuildError` naming the step's
 * path, so a mistake points at the line that made it. Checks that need the setup (mapped and
 * canonical addresses, CR values against the paging mode, address-space names) run in `build()`,
 * which compiles the document with `compileWorkload` and reports every problem at once.
 *
 * The builder produces the same document a workload file holds (`toSpec()`), so a built workload
 * can be saved with `workloadToJson` and loaded back with `loadWorkload`.
 */

import { checkFields, compileWorkload, WorkloadBuildError, type WorkloadProblem } from "./workload-compiler";
import type { Opcode } from "./workload-ops";
import { OP, type WorkloadProgram } from "./workload-ops";
import {
  type AccessSize,
  checkLeaf,
  type IoSize,
  SETUP_FIELDS,
  type SetupSpec,
  STEP_TABLE,
  type StepName,
  type StepSpec,
  type U64,
  WORKLOAD_FIELDS,
  type WorkloadSpec,
} from "./workload-spec";

/** Options of READ/FETCH. */
export interface AccessOptions {
  /** Bytes (default 8). */
  readonly size?: AccessSize;
  /** Bytes added per iteration of the innermost enclosing loop. */
  readonly stride?: number;
}
/** Options of WRITE. */
export interface WriteOptions extends AccessOptions {
  /** Value written (default 0). */
  readonly value?: U64;
}
/** What a MOV to CR3 loads: a literal value, an address space (by name or index), or the current CR3 again. */
export type Cr3Target = U64 | { readonly space: string | number } | { readonly reload: true };

/** Drops undefined fields (so optional keys stay absent under exactOptionalPropertyTypes). */
function defined<T extends object>(fields: { [K in keyof T]: T[K] | undefined }): T {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fields)) if (value !== undefined) out[key] = value;
  return out as T;
}

/** Builds a list of steps: the top level of a workload, or a loop body. */
export class StepsBuilder {
  protected readonly list: StepSpec[] = [];
  protected readonly workloadName: string;
  /** Path of this list in the document (`steps`, `steps[2].loop.steps`). */
  protected readonly path: string;

  constructor(workloadName: string, path: string) {
    this.workloadName = workloadName;
    this.path = path;
  }

  /** Appends a step after checking its operands; throws `WorkloadBuildError` naming its path. */
  private add(name: StepName, operands: object): this {
    const stepPath = `${this.path}[${this.list.length}].${name}`;
    const problems: WorkloadProblem[] = [];
    checkFields(operands, STEP_TABLE[name].fields, stepPath, problems);
    if (problems.length > 0) throw new WorkloadBuildError(this.workloadName, problems);
    this.list.push({ [name]: operands } as StepSpec);
    return this;
  }

  /** Data read of `size` bytes at `gva`. */
  read(gva: U64, options: AccessOptions = {}): this {
    return this.add("read", defined({ gva, size: options.size, stride: options.stride }));
  }

  /** Data write of `size` bytes at `gva`. */
  write(gva: U64, options: WriteOptions = {}): this {
    return this.add(
      "write",
      defined({ gva, size: options.size, value: options.value, stride: options.stride }),
    );
  }

  /** Instruction fetch at `gva` (an execute access). */
  fetch(gva: U64, options: AccessOptions = {}): this {
    return this.add("fetch", defined({ gva, size: options.size, stride: options.stride }));
  }

  /** CPUID with EAX = leaf, ECX = subleaf. */
  cpuid(leaf: number, subleaf = 0): this {
    return this.add("cpuid", { leaf, subleaf });
  }

  /** VMCALL with RAX = nr (0 by default, as kvm-unit-tests' vmexit test). */
  vmcall(nr = 0): this {
    return this.add("vmcall", { nr });
  }

  movToCr0(value: U64): this {
    return this.add("movToCr0", { value });
  }

  /** MOV to CR3 of a literal value, an address space's root, or the current CR3 (`{ reload: true }`). */
  movToCr3(target: Cr3Target, options: { readonly noFlush?: boolean } = {}): this {
    const operands: Record<string, unknown> = typeof target === "object" ? { ...target } : { value: target };
    if (options.noFlush !== undefined) operands.noFlush = options.noFlush;
    return this.add("movToCr3", operands);
  }

  movToCr4(value: U64): this {
    return this.add("movToCr4", { value });
  }

  movFromCr0(): this {
    return this.add("movFromCr0", {});
  }

  movFromCr3(): this {
    return this.add("movFromCr3", {});
  }

  movFromCr4(): this {
    return this.add("movFromCr4", {});
  }

  /** WRMSR of an MSR given by index or SDM name. */
  wrmsr(msr: number | string, value: U64): this {
    return this.add("wrmsr", { msr, value });
  }

  /** RDMSR of an MSR given by index or SDM name. */
  rdmsr(msr: number | string): this {
    return this.add("rdmsr", { msr });
  }

  invlpg(gva: U64, options: { readonly stride?: number } = {}): this {
    return this.add("invlpg", defined({ gva, stride: options.stride }));
  }

  /** IN of `size` bytes from `port`. */
  in(port: number, size: IoSize): this {
    return this.add("in", { port, size });
  }

  /** OUT of `size` bytes to `port`. */
  out(port: number, size: IoSize, value = 0): this {
    return this.add("out", { port, size, value });
  }

  hlt(): this {
    return this.add("hlt", {});
  }

  /** Guest work for `cycles` cycles that causes no exit. */
  compute(cycles: number): this {
    return this.add("compute", { cycles });
  }

  /** Marks the start of one iteration, labelled (cycles per iteration are reported per label). */
  iteration(label: string): this {
    return this.add("iteration", { label });
  }

  /** Runs the steps `body` adds `count` times. Loops nest. */
  loop(count: number, body: (steps: StepsBuilder) => unknown): this {
    const loopPath = `${this.path}[${this.list.length}].loop`;
    const problem = checkLeaf({ kind: "int", min: 0, max: 0xffffffff }, count);
    if (problem !== undefined) {
      throw new WorkloadBuildError(this.workloadName, [{ path: `${loopPath}.count`, message: problem }]);
    }
    const inner = new StepsBuilder(this.workloadName, `${loopPath}.steps`);
    body(inner);
    this.list.push({ loop: { count, steps: inner.toSteps() } });
    return this;
  }

  /** Appends steps written in document form (checked by `build()`). */
  steps(...steps: StepSpec[]): this {
    this.list.push(...steps);
    return this;
  }

  /** A copy of the steps so far. */
  toSteps(): StepSpec[] {
    return [...this.list];
  }
}

/** Builds a whole workload. Start one with `workload(name)`. */
export class WorkloadBuilder extends StepsBuilder {
  private descriptionText: string | undefined;
  private setupSpec: SetupSpec | undefined;

  constructor(name: string) {
    super(name, "steps");
    const problem = checkLeaf(WORKLOAD_FIELDS.name!.type, name);
    if (problem !== undefined) throw new WorkloadBuildError(name, [{ path: "name", message: problem }]);
  }

  /** A one-line description. */
  describe(text: string): this {
    this.descriptionText = text;
    return this;
  }

  /** The guest's initial state (replaces any earlier setup). Fields are checked at once. */
  setup(spec: SetupSpec): this {
    const problems: WorkloadProblem[] = [];
    checkFields(spec, SETUP_FIELDS, "setup", problems);
    if (problems.length > 0) throw new WorkloadBuildError(this.workloadName, problems);
    this.setupSpec = spec;
    return this;
  }

  /** The workload as a document (what a workload file holds). */
  toSpec(): WorkloadSpec {
    return defined<WorkloadSpec>({
      name: this.workloadName,
      description: this.descriptionText,
      setup: this.setupSpec,
      steps: this.toSteps(),
    });
  }

  /** Compiles the workload; throws `WorkloadBuildError` with every problem found. */
  build(): WorkloadProgram {
    return compileWorkload(this.toSpec());
  }
}

/** Starts a workload named `name` (letters, digits and `_ . + -`). */
export function workload(name: string): WorkloadBuilder {
  return new WorkloadBuilder(name);
}

/** The opcode each builder method emits, by step name (LOOP emits a LOOP_BEGIN/LOOP_END pair). */
export const STEP_OPCODE: Readonly<Record<StepName, Opcode>> = Object.freeze({
  read: OP.READ,
  write: OP.WRITE,
  fetch: OP.FETCH,
  cpuid: OP.CPUID,
  vmcall: OP.VMCALL,
  movToCr0: OP.MOV_TO_CR0,
  movToCr3: OP.MOV_TO_CR3,
  movToCr4: OP.MOV_TO_CR4,
  movFromCr0: OP.MOV_FROM_CR0,
  movFromCr3: OP.MOV_FROM_CR3,
  movFromCr4: OP.MOV_FROM_CR4,
  wrmsr: OP.WRMSR,
  rdmsr: OP.RDMSR,
  invlpg: OP.INVLPG,
  in: OP.IN,
  out: OP.OUT,
  hlt: OP.HLT,
  compute: OP.COMPUTE,
  loop: OP.LOOP_BEGIN,
  iteration: OP.ITERATION,
});
