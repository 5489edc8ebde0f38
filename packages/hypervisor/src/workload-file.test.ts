import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { workloadSpecArb } from "./testing/workload-arbitrary";
import { compileWorkload } from "./workload-compiler";
import {
  formatFileProblem,
  loadWorkload,
  parseWorkloadText,
  WORKLOAD_JSON_SCHEMA,
  WorkloadFileError,
} from "./workload-file";
import {
  CR_SLOT,
  CR3_FLAG,
  dynamicOpCounts,
  OP,
  opCountsByName,
  operand,
  type WorkloadProgram,
} from "./workload-ops";
import { SETUP_FIELDS, STEP_NAMES, WORKLOAD_FIELDS, workloadDocument, workloadToJson } from "./workload-spec";

const EXAMPLES = fileURLToPath(new URL("../examples/workloads/", import.meta.url));
const SCHEMA_FILE = fileURLToPath(new URL("../schema/workload.schema.json", import.meta.url));

function loadExample(name: string): WorkloadProgram {
  return loadWorkload(readFileSync(`${EXAMPLES}${name}`, "utf8"), name);
}

/** The formatted problems of loading `text` as `my.yaml`. */
function errorsOf(text: string, file = "my.yaml"): string[] {
  try {
    loadWorkload(text, file);
  } catch (error) {
    if (error instanceof WorkloadFileError) {
      expect(error.file).toBe(file);
      return error.problems.map((p) => formatFileProblem(file, p));
    }
    throw error;
  }
  throw new Error("expected a WorkloadFileError");
}

function sameProgram(a: WorkloadProgram, b: WorkloadProgram): void {
  expect(b.name).toBe(a.name);
  expect(b.description).toBe(a.description);
  expect(b.setup).toEqual(a.setup);
  expect(Array.from(b.opcodes)).toEqual(Array.from(a.opcodes));
  expect(Array.from(b.operands)).toEqual(Array.from(a.operands));
  expect(b.labels).toEqual(a.labels);
  expect(b.stepPaths).toEqual(a.stepPaths);
  expect(b.maxLoopDepth).toBe(a.maxLoopDepth);
}

describe("example workload files", () => {
  it("all load", () => {
    const files = readdirSync(EXAMPLES).filter((f) => f.endsWith(".yaml"));
    expect(files.length).toBeGreaterThanOrEqual(3);
    for (const file of files) expect(loadExample(file).length).toBeGreaterThan(0);
  });

  it("cpuid-vmcall.yaml: 500 rounds of CPUID and VMCALL", () => {
    const program = loadExample("cpuid-vmcall.yaml");
    expect(program.name).toBe("cpuid_vmcall");
    expect(program.setup.level).toBe(2);
    expect(opCountsByName(dynamicOpCounts(program))).toEqual({
      cpuid: 500,
      vmcall: 500,
      compute: 500,
      iteration: 500,
      loop: 1,
      endLoop: 1,
    });
  });

  it("grsec-wp-toggle.yaml: WP off, write read-only data, WP on", () => {
    const program = loadExample("grsec-wp-toggle.yaml");
    const mappings = program.setup.addressSpaces[0]?.mappings ?? [];
    expect(mappings.map((m) => [m.gvaLo, m.writable, m.executable])).toEqual([
      [0x100000, false, true],
      [0x200000, false, false],
      [0x300000, true, false],
    ]);
    expect(Array.from(program.opcodes)).toEqual([
      OP.READ,
      OP.LOOP_BEGIN,
      OP.ITERATION,
      OP.MOV_TO_CR0,
      OP.WRITE,
      OP.MOV_TO_CR0,
      OP.COMPUTE,
      OP.LOOP_END,
    ]);
    expect(operand(program, 3, CR_SLOT.VALUE_LO)).toBe(0x8004_0033);
    expect(operand(program, 4, 4)).toBe(0xdeadbeef);
  });

  it("context-switch.yaml: two PCID processes switching with no-flush", () => {
    const program = loadExample("context-switch.yaml");
    expect(program.setup.addressSpaces.map((s) => [s.name, s.pcid])).toEqual([
      ["shell", 1],
      ["daemon", 2],
    ]);
    expect(program.setup.initialAddressSpace).toBe(0);
    const switches = [...program.opcodes.keys()].filter((i) => program.opcodes[i] === OP.MOV_TO_CR3);
    expect(switches.map((i) => operand(program, i, CR_SLOT.SPACE))).toEqual([1, 0]);
    for (const i of switches)
      expect(operand(program, i, CR_SLOT.FLAGS)).toBe(CR3_FLAG.SPACE | CR3_FLAG.NO_FLUSH);
    expect(opCountsByName(dynamicOpCounts(program))).toMatchObject({
      write: 1600,
      movToCr3: 400,
      in: 200,
      out: 200,
    });
  });
});

describe("file syntax", () => {
  it("accepts shorthands, bare names, hex strings, size strings and names in any case", () => {
    const program = loadWorkload(
      `name: short
setup: { paging: PAE, memory: 8MiB, cpl: 0 }
steps:
  - cpuid: 0x8000_0001
  - vmcall
  - read: 0x1000
  - rdmsr: tsc_adjust
  - wrmsr: { msr: "0xc0000080", value: "0x0000_0000_0000_0d01" }
  - movToCr3: identity
  - movToCr3: 0x3000
  - movToCr3: { reload: true }
  - iteration: tick
  - compute: 1e3
  - hlt:
  - movFromCr4: {}
`,
      "short.yaml",
    );
    expect(Array.from(program.opcodes)).toEqual([
      OP.CPUID,
      OP.VMCALL,
      OP.READ,
      OP.RDMSR,
      OP.WRMSR,
      OP.MOV_TO_CR3,
      OP.MOV_TO_CR3,
      OP.MOV_TO_CR3,
      OP.ITERATION,
      OP.COMPUTE,
      OP.HLT,
      OP.MOV_FROM_CR4,
    ]);
    expect(operand(program, 0, 0)).toBe(0x8000_0001);
    expect(operand(program, 3, 0)).toBe(0x3b);
    expect(operand(program, 4, 0)).toBe(0xc000_0080);
    expect(operand(program, 4, 1)).toBe(0xd01);
    expect(operand(program, 5, CR_SLOT.FLAGS)).toBe(CR3_FLAG.SPACE);
    expect(operand(program, 6, CR_SLOT.VALUE_LO)).toBe(0x3000);
    expect(operand(program, 7, CR_SLOT.FLAGS)).toBe(CR3_FLAG.RELOAD);
    expect(operand(program, 9, 0)).toBe(1000);
    expect(program.setup.memoryBytes).toBe(8 * 2 ** 20);
  });

  it("reads JSON, including 64-bit values written as strings", () => {
    const program = loadWorkload(
      '{\n\t"$schema": "../../schema/workload.schema.json",\n\t"name": "j",\n\t"steps": [\n\t\t{ "wrmsr": { "msr": 16, "value": "0xffffffffffffffff" } },\n\t\t{ "write": { "gva": 4096, "value": 18446744073709551615 } }\n\t]\n}\n',
      "j.json",
    );
    expect(operand(program, 0, 1)).toBe(0xffffffff);
    expect(operand(program, 0, 2)).toBe(0xffffffff);
    expect(operand(program, 1, 4)).toBe(0xffffffff);
    expect(operand(program, 1, 5)).toBe(0xffffffff);
  });

  it("parses without compiling", () => {
    const spec = parseWorkloadText("name: p\nsteps: [hlt, {cpuid: 1}]\n");
    expect(spec).toEqual({ name: "p", steps: [{ hlt: {} }, { cpuid: { leaf: 1 } }] });
  });
});

describe("file errors", () => {
  it("name the file, line:column, path and field, with what was expected and what was got", () => {
    expect(errorsOf("name: x\nsteps:\n  - hlt\n  - cpuid: { leaf: abc }\n")).toEqual([
      'my.yaml:4:20: steps[1].cpuid.leaf: expected an integer in [0, 0xffffffff], got "abc"',
    ]);
    expect(errorsOf("name: x\nsteps:\n  - in: { port: 0x10000, size: 3 }\n")).toEqual([
      "my.yaml:3:17: steps[0].in.port: expected an integer in [0, 0xffff], got 0x10000",
      "my.yaml:3:32: steps[0].in.size: expected one of 1, 2, 4, got 3",
    ]);
  });

  it("list every shape problem at once, in file order, with suggestions", () => {
    const text = `name: x
stpes: []
setup:
  pagin: pae
  memory: 12345
steps:
  - cpuidd: 1
  - write:
    gva: 0x1000
  - wrmsr: { msr: 0x10 }
  - [1, 2]
  - loop: { count: 2, steps: [ { hlt: 5 } ] }
`;
    expect(errorsOf(text)).toEqual([
      'my.yaml:2:1: stpes: unknown key "stpes" (did you mean "steps"?)',
      'my.yaml:4:3: setup.pagin: unknown key "pagin" (did you mean "paging"?)',
      'my.yaml:5:11: setup.memory: expected a size in bytes in [0x1000, 0x400000000000], a multiple of 4096 (e.g. 4096, "16MiB"), got 12345',
      'my.yaml:7:5: steps[0].cpuidd: unknown operation "cpuidd" (did you mean "cpuid"?)',
      'my.yaml:8:5: steps[1]: a step has exactly one operation key, got write, gva (indent the operands of "write" under it)',
      'my.yaml:10:12: steps[2].wrmsr: missing required key "value"',
      "my.yaml:11:5: steps[3]: expected a step (an operation name or a mapping with one), got a list",
      "my.yaml:12:39: steps[4].loop.steps[0].hlt: expected a mapping of operands (), got 5",
    ]);
  });

  it("locate the compiler's problems, shorthands included", () => {
    const text = `name: x
setup:
  addressSpaces:
    - name: kernel
      mappings:
        - { gva: 0x100000, pages: 4 }
steps:
  - read: 0x12345678
  - movToCr3: kernal
  - loop:
      count: 4
      steps:
        - write: { gva: 0x100000, stride: 0x2001, size: 1 }
  - movToCr3: { value: 0x1000, noFlush: true }
`;
    expect(errorsOf(text)).toEqual([
      "my.yaml:8:11: steps[0].read.gva: read of 0x12345678..0x1234567f is not mapped by any address space",
      'my.yaml:9:15: steps[1].movToCr3.space: unknown address space "kernal" (did you mean "kernel"?)',
      "my.yaml:13:25: steps[2].loop.steps[0].write.gva: write of 0x100000..0x106003 is not mapped by any address space",
      "my.yaml:14:41: steps[3].movToCr3.noFlush: noFlush needs CR4.PCIDE, which neither setup.cr4 nor any movToCr4 sets (bit 63 is reserved otherwise; SDM 4.10.4.1)",
    ]);
  });

  it("report YAML syntax errors and empty files with positions", () => {
    expect(errorsOf("name: x\nname: y\nsteps: [hlt]\n")).toEqual([
      'my.yaml:2:1: name: duplicate key "name" (first given on line 1)',
    ]);
    expect(errorsOf("")).toEqual(["my.yaml:1:1: the file is empty"]);
    expect(errorsOf("- hlt\n")).toEqual(["my.yaml:1:1: expected a mapping, got a list"]);
    expect(errorsOf('{ "name": "x", "steps": [ { "cpuid": { "leaf": true } } ] }', "w.json")).toEqual([
      "w.json:1:48: steps[0].cpuid.leaf: expected an integer in [0, 0xffffffff], got true",
    ]);
  });

  it("put all problems in the error message, one per line", () => {
    try {
      loadWorkload(
        "name: x\nsteps:\n  - in: { port: -1, size: 1 }\n  - out: { port: 1, size: 1, value: 256 }\n",
        "m.yaml",
      );
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(WorkloadFileError);
      expect((error as Error).message).toBe(
        "m.yaml:3:17: steps[0].in.port: expected an integer in [0, 0xffff], got -1",
      );
    }
    try {
      loadWorkload(
        "name: x\nsteps:\n  - out: { port: 1, size: 1, value: 256 }\n  - out: { port: 0xffff, size: 2 }\n",
        "m.yaml",
      );
      expect.unreachable();
    } catch (error) {
      expect((error as Error).message.split("\n")).toEqual([
        "m.yaml:3:37: steps[0].out.value: 256 does not fit in a 1-byte access",
        "m.yaml:4:18: steps[1].out.port: a 2-byte access at port 0xffff runs past 0xffff (the I/O address space is 64 KiB)",
      ]);
    }
  });
});

describe("JSON Schema", () => {
  it("is committed beside the examples, in sync with the field tables", () => {
    expect(JSON.parse(readFileSync(SCHEMA_FILE, "utf8"))).toEqual(
      JSON.parse(JSON.stringify(WORKLOAD_JSON_SCHEMA)),
    );
  });

  it("describes every top-level and setup key and every operation", () => {
    const schema = WORKLOAD_JSON_SCHEMA as {
      properties: Record<string, { properties?: Record<string, unknown> }>;
      required: string[];
      $defs: { step: { oneOf: { required?: string[]; enum?: string[] }[] } };
    };
    expect(Object.keys(schema.properties)).toEqual(Object.keys(WORKLOAD_FIELDS));
    expect(schema.required).toEqual(["name", "steps"]);
    expect(Object.keys(schema.properties.setup?.properties ?? {})).toEqual(Object.keys(SETUP_FIELDS));
    const variants = schema.$defs.step.oneOf.flatMap((v) => v.required ?? []);
    expect(variants).toEqual([...STEP_NAMES]);
    expect(schema.$defs.step.oneOf[0]?.enum).toEqual([
      "vmcall",
      "movToCr3",
      "movFromCr0",
      "movFromCr3",
      "movFromCr4",
      "hlt",
    ]);
  });
});

describe("serialisation round trip", () => {
  it("a random valid workload saved as JSON loads back into the same program", () => {
    fc.assert(
      fc.property(workloadSpecArb, (spec) => {
        const direct = compileWorkload(spec);
        sameProgram(direct, loadWorkload(workloadToJson(spec), "random.json"));
      }),
      { numRuns: 150 },
    );
  });

  it("and so does one saved as YAML", () => {
    fc.assert(
      fc.property(workloadSpecArb, (spec) => {
        const direct = compileWorkload(spec);
        sameProgram(direct, loadWorkload(stringify(workloadDocument(spec)), "random.yaml"));
      }),
      { numRuns: 100 },
    );
  });
});
