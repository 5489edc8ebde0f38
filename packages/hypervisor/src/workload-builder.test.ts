import { PAGING_MODE } from "@nestvisor/x86-arch";
import { describe, expect, it } from "vitest";
import { CURSOR_END, ProgramCursor } from "./program-cursor";
import { workload } from "./workload-builder";
import { compileWorkload, WorkloadBuildError } from "./workload-compiler";
import { IO_SLOT, MSR_SLOT, OP, operand } from "./workload-ops";

/** The problems a thunk throws, as `path: message` lines. */
function problemsOf(thunk: () => unknown): string[] {
  try {
    thunk();
  } catch (error) {
    if (error instanceof WorkloadBuildError) return error.problems.map((p) => `${p.path}: ${p.message}`);
    throw error;
  }
  throw new Error("expected a WorkloadBuildError");
}

describe("workload builder", () => {
  it("builds the example from its doc comment", () => {
    const program = workload("cpuid_loop")
      .describe("CPUID then VMCALL, 1000 times")
      .setup({ level: 2, paging: "4-level", memory: "16MiB" })
      .loop(1000, (b) => b.iteration("round").cpuid(0).vmcall())
      .build();
    expect(program.name).toBe("cpuid_loop");
    expect(program.description).toBe("CPUID then VMCALL, 1000 times");
    expect(program.setup.level).toBe(2);
    expect(program.setup.pagingMode).toBe(PAGING_MODE.LEVEL4);
    expect(program.setup.memoryBytes).toBe(16 * 2 ** 20);
    const cursor = new ProgramCursor(program);
    let cpuids = 0;
    let rounds = 0;
    for (let op = cursor.next(); op !== CURSOR_END; op = cursor.next()) {
      if (op === OP.CPUID) cpuids++;
      if (op === OP.ITERATION) rounds++;
    }
    expect(cpuids).toBe(1000);
    expect(rounds).toBe(1000);
  });

  it("round-trips through its document form", () => {
    const builder = workload("round_trip")
      .setup({ paging: "pae", memory: 8 * 2 ** 20 })
      .write(0x1000, { size: 4, value: 0xdeadbeef })
      .loop(2, (b) => b.rdmsr("IA32_TSC_ADJUST").out(0x80, 1, 0x12))
      .wrmsr(0xc0000102, 2n ** 63n);
    const spec = builder.toSpec();
    expect(spec.steps).toHaveLength(3);
    const a = builder.build();
    const b = compileWorkload(spec);
    expect(Array.from(b.opcodes)).toEqual(Array.from(a.opcodes));
    expect(Array.from(b.operands)).toEqual(Array.from(a.operands));
    expect(a.setup.pagingMode).toBe(PAGING_MODE.PAE);
    expect(operand(a, 2, MSR_SLOT.INDEX)).toBe(0x3b);
    expect(operand(a, 3, IO_SLOT.VALUE)).toBe(0x12);
    expect(operand(a, 5, MSR_SLOT.VALUE_HI)).toBe(0x8000_0000);
  });

  it("checks operands at the call, naming the step's path", () => {
    const b = workload("bad");
    expect(problemsOf(() => b.in(0x10000, 1))).toEqual([
      "steps[0].in.port: expected an integer in [0, 0xffff], got 0x10000",
    ]);
    expect(problemsOf(() => b.out(0x80, 3 as 1, 0))).toEqual([
      "steps[0].out.size: expected one of 1, 2, 4, got 3",
    ]);
    expect(problemsOf(() => b.read(0x1000, { size: 16 as 8 }))).toEqual([
      "steps[0].read.size: expected one of 1, 2, 4, 8, got 16",
    ]);
    expect(problemsOf(() => b.cpuid(-1))).toEqual([
      "steps[0].cpuid.leaf: expected an integer in [0, 0xffffffff], got -1",
    ]);
    expect(problemsOf(() => b.rdmsr(2 ** 32))).toEqual([
      "steps[0].rdmsr.msr: expected an MSR index in [0, 0xffffffff] or an MSR name, got 0x100000000",
    ]);
    expect(problemsOf(() => b.movToCr0(-5))).toEqual([
      "steps[0].movToCr0.value: expected an integer in [0, 0xffffffffffffffff], got -5",
    ]);
    expect(problemsOf(() => b.wrmsr(0x10, 2n ** 64n))).toEqual([
      "steps[0].wrmsr.value: expected an integer in [0, 0xffffffffffffffff], got 0x10000000000000000",
    ]);
    expect(problemsOf(() => b.compute(1.5))).toEqual([
      "steps[0].compute.cycles: expected an integer in [0, 0x1fffffffffffff], got 1.5",
    ]);
    expect(problemsOf(() => b.iteration(""))).toEqual([
      'steps[0].iteration.label: expected a non-empty string of at most 64 characters, got ""',
    ]);
    expect(problemsOf(() => b.loop(-1, (x) => x.hlt()))).toEqual([
      "steps[0].loop.count: expected an integer in [0, 0xffffffff], got -1",
    ]);
    expect(problemsOf(() => b.loop(2, (x) => x.hlt().vmcall(-2)))).toEqual([
      "steps[0].loop.steps[1].vmcall.nr: expected an integer in [0, 0xffffffff], got -2",
    ]);
    expect(problemsOf(() => workload("bad name"))).toEqual([
      'name: expected a name of letters, digits and _ . + - (at most 64 characters), got "bad name"',
    ]);
    expect(problemsOf(() => b.setup({ cpl: 4 as 0, pagng: "pae" } as never))).toEqual([
      'setup.pagng: unknown key "pagng" (did you mean "paging"?)',
      "setup.cpl: expected one of 0, 1, 2, 3, got 4",
    ]);
  });

  it("checks what needs the setup when building, reporting every problem", () => {
    const problems = problemsOf(() =>
      workload("semantic")
        .setup({ memory: "1MiB" })
        .read(0x20_0000)
        .write(0x1001, { size: 4 })
        .read(0x1000, { stride: 8 })
        .write(0x2000, { size: 1, value: 0x100 })
        .movToCr0(0x1_8005_0033)
        .movToCr0(0x8005_0133)
        .movToCr0(0x0005_0033)
        .movToCr0(0x8000_0000)
        .movToCr4(0x6a0 | 0x8000)
        .movToCr4(0x680)
        .movToCr4(0x6a0 | 0x1000)
        .movToCr3({ space: "kernal" })
        .movToCr3(2n ** 63n)
        .movToCr3(0x1000, { noFlush: true })
        .in(0xfffe, 4)
        .read(0xffff_8000_0000_0000n)
        .build(),
    );
    expect(problems).toEqual([
      "steps[0].read.gva: read of 0x200000..0x200007 is not mapped by any address space",
      "steps[1].write.gva: 0x1001 is not aligned to size 4 (accesses are naturally aligned, so none splits across pages)",
      "steps[2].read.stride: a stride needs an enclosing loop (it steps once per iteration of the innermost loop)",
      "steps[3].write.value: 0x100 does not fit in a 1-byte access",
      "steps[4].movToCr0.value: 0x180050033 sets CR0 bits 63:32, which are reserved (#GP; SDM 2.5)",
      "steps[5].movToCr0.value: 0x80050133 sets reserved CR0 bits 0x100 (SDM 2.5)",
      "steps[6].movToCr0.value: 0x50033 clears CR0.PG in 64-bit mode (#GP; SDM Vol. 2B MOV to CR0)",
      "steps[7].movToCr0.value: 0x80000000 sets CR0.PG without CR0.PE (#GP; SDM Vol. 2B MOV to CR0)",
      "steps[8].movToCr4.value: 0x86a0 sets reserved CR4 bits 0x8000 (#GP; SDM 2.5)",
      "steps[9].movToCr4.value: would switch paging from 4-level to 32-bit, which a workload cannot do (in IA-32e mode it is a #GP; SDM Vol. 2B MOV to CR4)",
      "steps[10].movToCr4.value: would switch paging from 4-level to 5-level, which a workload cannot do (in IA-32e mode it is a #GP; SDM Vol. 2B MOV to CR4)",
      'steps[11].movToCr3.space: unknown address space "kernal"',
      "steps[12].movToCr3.value: 0x8000000000000000 sets bit 63: that is the no-flush bit, write noFlush: true",
      "steps[14].in.port: a 4-byte access at port 0xfffe runs past 0xffff (the I/O address space is 64 KiB)",
      "steps[15].read.gva: read of 0xffff800000000000..0xffff800000000007 is not mapped by any address space",
      "steps[13].movToCr3.noFlush: noFlush needs CR4.PCIDE, which neither setup.cr4 nor any movToCr4 sets (bit 63 is reserved otherwise; SDM 4.10.4.1)",
    ]);
  });

  it("suggests address-space names", () => {
    expect(
      problemsOf(() =>
        workload("spaces")
          .setup({ addressSpaces: [{ name: "kernel", mappings: [{ gva: 0, pages: 1 }] }] })
          .movToCr3({ space: "kernal" })
          .build(),
      ),
    ).toEqual(['steps[0].movToCr3.space: unknown address space "kernal" (did you mean "kernel"?)']);
  });

  it("rejects empty programs and loops that run nothing", () => {
    expect(problemsOf(() => workload("empty").build())).toEqual(["steps: the workload runs no operation"]);
    expect(
      problemsOf(() =>
        workload("hollow")
          .loop(3, (b) => b.loop(0, (c) => c.hlt()))
          .build(),
      ),
    ).toEqual(["steps[0].loop.steps: the loop body runs no operation"]);
  });
});
