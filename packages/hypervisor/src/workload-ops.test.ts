import { describe, expect, it } from "vitest";
import { STEP_OPCODE, workload } from "./workload-builder";
import {
  CR_SLOT,
  CR3_FLAG,
  checkProgram,
  dynamicOpCounts,
  formatOperation,
  formatProgram,
  ITERATION_SLOT,
  isMemoryOp,
  isOpcode,
  LOOP_SLOT,
  MEM_SLOT,
  OP,
  OP_NAMES,
  OPCODE_LIMIT,
  OPERAND_STRIDE,
  opCountsByName,
  operand,
  staticOpCounts,
} from "./workload-ops";
import { STEP_NAMES } from "./workload-spec";

describe("opcodes", () => {
  it("are dense from 1 to OPCODE_LIMIT - 1, each with a name", () => {
    const values = Object.values(OP).sort((a, b) => a - b);
    expect(values).toEqual(Array.from({ length: OPCODE_LIMIT - 1 }, (_, i) => i + 1));
    for (const op of values) expect(OP_NAMES[op]).toMatch(/^[a-z][A-Za-z0-9]*$/);
    expect(isOpcode(0)).toBe(false);
    expect(isOpcode(OPCODE_LIMIT)).toBe(false);
    expect(isOpcode(OP.HLT)).toBe(true);
  });

  it("use the step names of workload files", () => {
    for (const name of STEP_NAMES) expect(OP_NAMES[STEP_OPCODE[name]]).toBe(name);
  });

  it("classify memory operations", () => {
    expect([OP.READ, OP.WRITE, OP.FETCH].every(isMemoryOp)).toBe(true);
    expect(isMemoryOp(OP.INVLPG)).toBe(false);
    expect(isMemoryOp(OP.CPUID)).toBe(false);
  });
});

describe("compiled programs", () => {
  const program = workload("layout")
    .describe("operand layout")
    .setup({
      addressSpaces: [
        { name: "a", mappings: [{ gva: 0, pages: 4096 }] },
        { name: "b", mappings: [{ gva: 0, pages: 16 }] },
      ],
    })
    .write(0x1000, { size: 8, value: 0x1_2345_6789n })
    .loop(3, (b) =>
      b
        .iteration("it")
        .movToCr3({ space: "b" })
        .loop(2, (c) => c.read(0x2000, { size: 4, stride: 4 })),
    )
    .build();

  it("hold one opcode and OPERAND_STRIDE operand words per operation", () => {
    expect(program.length).toBe(8);
    expect(program.opcodes.length).toBe(8);
    expect(program.operands.length).toBe(8 * OPERAND_STRIDE);
    expect(program.stepPaths).toEqual([
      "steps[0].write",
      "steps[1].loop",
      "steps[1].loop.steps[0].iteration",
      "steps[1].loop.steps[1].movToCr3",
      "steps[1].loop.steps[2].loop",
      "steps[1].loop.steps[2].loop.steps[0].read",
      "steps[1].loop.steps[2].loop",
      "steps[1].loop",
    ]);
    expect(program.maxLoopDepth).toBe(2);
    expect(program.labels).toEqual(["it"]);
  });

  it("put 64-bit operands in lo/hi slots and pair loops both ways", () => {
    expect(operand(program, 0, MEM_SLOT.GVA_LO)).toBe(0x1000);
    expect(operand(program, 0, MEM_SLOT.VALUE_LO)).toBe(0x2345_6789);
    expect(operand(program, 0, MEM_SLOT.VALUE_HI)).toBe(1);
    expect(operand(program, 1, LOOP_SLOT.COUNT)).toBe(3);
    expect(operand(program, 1, LOOP_SLOT.END)).toBe(7);
    expect(operand(program, 7, LOOP_SLOT.BEGIN)).toBe(1);
    expect(operand(program, 4, LOOP_SLOT.END)).toBe(6);
    expect(operand(program, 6, LOOP_SLOT.BEGIN)).toBe(4);
    expect(operand(program, 2, ITERATION_SLOT.LABEL)).toBe(0);
    expect(operand(program, 3, CR_SLOT.FLAGS)).toBe(CR3_FLAG.SPACE);
    expect(operand(program, 3, CR_SLOT.SPACE)).toBe(1);
    expect(operand(program, 5, MEM_SLOT.STRIDE)).toBe(4);
    expect(() => checkProgram(program)).not.toThrow();
  });

  it("count operations statically and as executed", () => {
    expect(opCountsByName(staticOpCounts(program))).toEqual({
      write: 1,
      loop: 2,
      endLoop: 2,
      iteration: 1,
      movToCr3: 1,
      read: 1,
    });
    expect(opCountsByName(dynamicOpCounts(program))).toEqual({
      write: 1,
      loop: 4,
      endLoop: 4,
      iteration: 3,
      movToCr3: 3,
      read: 6,
    });
  });

  it("format as a listing", () => {
    expect(formatOperation(program, 0)).toBe("write gva=0x1000 size=8 value=0x123456789");
    expect(formatOperation(program, 3)).toBe("movToCr3 space=b");
    expect(formatOperation(program, 5)).toBe("read gva=0x2000 size=4 stride=0x4");
    const listing = formatProgram(program).split("\n");
    expect(listing).toHaveLength(8);
    expect(listing[5]).toBe("   5      read gva=0x2000 size=4 stride=0x4");
  });

  it("format every operation kind", () => {
    const all = workload("all")
      .setup({ cr4: 0x206a0, addressSpaces: [{ name: "k", pcid: 1, mappings: [{ gva: 0, pages: 16 }] }] })
      .fetch(0x40, { size: 4 })
      .cpuid(7, 1)
      .vmcall(12)
      .movToCr0(0x80050033)
      .movToCr3(0x5000, { noFlush: true })
      .movToCr3({ reload: true })
      .movToCr4(0x206a0)
      .movFromCr0()
      .movFromCr3()
      .movFromCr4()
      .wrmsr("IA32_TSC_ADJUST", 2n ** 40n)
      .rdmsr(0x10)
      .invlpg(0x3000)
      .in(0x60, 1)
      .out(0x80, 2, 0xbeef)
      .hlt()
      .compute(123)
      .build();
    const lines = formatProgram(all)
      .split("\n")
      .map((line) => line.slice(6));
    expect(lines).toEqual([
      "fetch gva=0x40 size=4",
      "cpuid leaf=0x7 subleaf=0x1",
      "vmcall nr=12",
      "movToCr0 0x80050033",
      "movToCr3 0x5000 noFlush",
      "movToCr3 reload",
      "movToCr4 0x206a0",
      "movFromCr0",
      "movFromCr3",
      "movFromCr4",
      "wrmsr msr=0x3b value=0x10000000000",
      "rdmsr msr=0x10",
      "invlpg gva=0x3000",
      "in port=0x60 size=1",
      "out port=0x80 size=2 value=0xbeef",
      "hlt",
      "compute cycles=123",
    ]);
  });
});

describe("checkProgram", () => {
  const good = workload("good")
    .loop(2, (b) => b.iteration("x").cpuid(0))
    .build();

  it("rejects mismatched arrays, unknown opcodes, dangling loops and bad labels", () => {
    expect(() => checkProgram({ ...good, length: 5 })).toThrow(/do not match/);
    expect(() => checkProgram({ ...good, stepPaths: [] })).toThrow(/stepPaths/);
    const opcodes = good.opcodes.slice();
    opcodes[2] = 99;
    expect(() => checkProgram({ ...good, opcodes })).toThrow(/unknown opcode 99/);
    const noEnd = good.opcodes.slice();
    noEnd[3] = OP.HLT;
    expect(() => checkProgram({ ...good, opcodes: noEnd })).toThrow(/LOOP_END/);
    expect(() => checkProgram({ ...good, labels: [] })).toThrow(/label index/);
  });
});
