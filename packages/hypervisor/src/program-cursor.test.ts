import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CURSOR_END, ProgramCursor } from "./program-cursor";
import { workloadSpecArb } from "./testing/workload-arbitrary";
import { STEP_OPCODE, workload } from "./workload-builder";
import { compileWorkload } from "./workload-compiler";
import {
  CPUID_SLOT,
  dynamicOpCounts,
  LOOP_SLOT,
  OP,
  OPCODE_LIMIT,
  type WorkloadProgram,
} from "./workload-ops";
import type { StepName, StepSpec } from "./workload-spec";

/** Runs a cursor to the end, recording each opcode with its first operand. */
function trace(program: WorkloadProgram): string[] {
  const cursor = new ProgramCursor(program);
  const out: string[] = [];
  for (let op = cursor.next(); op !== CURSOR_END; op = cursor.next()) {
    out.push(op === OP.ITERATION ? `iteration:${cursor.label()}` : `${op}:${cursor.operand(0)}`);
  }
  return out;
}

describe("ProgramCursor", () => {
  it("runs nested loops the right number of times, in order", () => {
    const program = workload("nest")
      .cpuid(1)
      .loop(3, (outer) => outer.cpuid(2).loop(2, (inner) => inner.cpuid(3)))
      .cpuid(4)
      .build();
    const leaves = trace(program).map((entry) => Number(entry.split(":")[1]));
    expect(leaves).toEqual([1, 2, 3, 3, 2, 3, 3, 2, 3, 3, 4]);
  });

  it("skips loops with a count of 0 and their bodies", () => {
    const program = workload("skip")
      .loop(0, (b) => b.cpuid(9).loop(5, (c) => c.cpuid(8)))
      .cpuid(1)
      .build();
    expect(trace(program)).toEqual([`${OP.CPUID}:1`]);
  });

  it("returns ITERATION markers with their labels, and never LOOP_BEGIN/LOOP_END", () => {
    const program = workload("marks")
      .loop(2, (b) =>
        b
          .iteration("a")
          .vmcall()
          .loop(2, (c) => c.iteration("b").hlt()),
      )
      .build();
    const cursor = new ProgramCursor(program);
    const seen: number[] = [];
    const labels: string[] = [];
    for (let op = cursor.next(); op !== CURSOR_END; op = cursor.next()) {
      seen.push(op);
      if (op === OP.ITERATION) labels.push(cursor.label());
    }
    expect(seen).not.toContain(OP.LOOP_BEGIN);
    expect(seen).not.toContain(OP.LOOP_END);
    expect(labels).toEqual(["a", "b", "b", "a", "b", "b"]);
    expect(cursor.executed).toBe(seen.length);
    expect(cursor.done).toBe(true);
  });

  it("exposes the loop depth and each loop's iteration", () => {
    const program = workload("depth")
      .loop(2, (b) => b.loop(3, (c) => c.cpuid(0)))
      .build();
    const cursor = new ProgramCursor(program);
    const positions: string[] = [];
    for (let op = cursor.next(); op !== CURSOR_END; op = cursor.next()) {
      positions.push(`${cursor.loopDepth}:${cursor.loopIteration(0)}.${cursor.loopIteration(1)}`);
    }
    expect(positions).toEqual(["2:0.0", "2:0.1", "2:0.2", "2:1.0", "2:1.1", "2:1.2"]);
    expect(() => cursor.loopIteration(2)).toThrow(RangeError);
  });

  it("computes strided addresses from the innermost loop's iteration, carrying into the high word", () => {
    const base = 2n ** 32n - 0x1000n;
    const program = workload("stride")
      .setup({
        addressSpaces: [{ name: "top", mappings: [{ gva: base, gpa: 0, pages: 2 }] }],
      })
      .loop(2, (b) => b.read(base, { size: 8, stride: 0x1000 }).invlpg(base, { stride: 0x800 }))
      .build();
    const cursor = new ProgramCursor(program);
    const addresses: bigint[] = [];
    for (let op = cursor.next(); op !== CURSOR_END; op = cursor.next()) {
      addresses.push((BigInt(cursor.gvaHi) << 32n) | BigInt(cursor.gvaLo));
    }
    expect(addresses).toEqual([base, base, base + 0x1000n, base + 0x800n]);
  });

  it("reset starts over", () => {
    const program = workload("again")
      .loop(2, (b) => b.cpuid(0))
      .build();
    const cursor = new ProgramCursor(program);
    while (cursor.next() !== CURSOR_END);
    cursor.reset();
    expect(cursor.done).toBe(false);
    expect(cursor.next()).toBe(OP.CPUID);
    expect(cursor.operand(CPUID_SLOT.LEAF)).toBe(0);
    expect(cursor.executed).toBe(1);
  });

  it("rejects a structurally broken program", () => {
    const program = workload("broken")
      .loop(2, (b) => b.cpuid(0))
      .build();
    const operands = program.operands.slice();
    operands[LOOP_SLOT.END] = 1; // LOOP_BEGIN now points at the CPUID
    expect(() => new ProgramCursor({ ...program, operands })).toThrow(/not a LOOP_END/);
    expect(() => new ProgramCursor({ ...program, maxLoopDepth: 0 })).toThrow(/nest 1 deep/);
  });

  it("matches a direct interpretation of the document, for random workloads", () => {
    /** Oracle: interpret the steps recursively, with the innermost loop index for strides. */
    const interpret = (steps: readonly StepSpec[], index: number, inLoop: boolean, out: string[]) => {
      for (const step of steps) {
        const name = Object.keys(step)[0] as StepName;
        const operands = (step as Record<string, Record<string, unknown>>)[name] ?? {};
        if (name === "loop") {
          const count = operands.count as number;
          for (let i = 0; i < count; i++) interpret(operands.steps as StepSpec[], i, true, out);
          continue;
        }
        const opcode = STEP_OPCODE[name];
        if (name === "read" || name === "write" || name === "fetch" || name === "invlpg") {
          const stride = BigInt((operands.stride as number | undefined) ?? 0);
          const gva =
            (BigInt(operands.gva as number | bigint) + (inLoop ? stride * BigInt(index) : 0n)) % 2n ** 64n;
          out.push(`${opcode}@${gva}`);
        } else out.push(`${opcode}`);
      }
    };
    fc.assert(
      fc.property(workloadSpecArb, (spec) => {
        const program = compileWorkload(spec);
        const expected: string[] = [];
        interpret(spec.steps, 0, false, expected);
        const cursor = new ProgramCursor(program);
        const actual: string[] = [];
        const counts = new Float64Array(OPCODE_LIMIT);
        for (let op = cursor.next(); op !== CURSOR_END; op = cursor.next()) {
          counts[op]! += 1;
          const memory = op === OP.READ || op === OP.WRITE || op === OP.FETCH || op === OP.INVLPG;
          actual.push(memory ? `${op}@${(BigInt(cursor.gvaHi) << 32n) | BigInt(cursor.gvaLo)}` : `${op}`);
        }
        expect(actual).toEqual(expected);
        const predicted = dynamicOpCounts(program);
        for (let op: number = OP.READ; op < OPCODE_LIMIT; op++) {
          if (op !== OP.LOOP_BEGIN && op !== OP.LOOP_END) expect(counts[op]).toBe(predicted[op]);
        }
      }),
      { numRuns: 200 },
    );
  });
});
