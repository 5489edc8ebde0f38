/**
 * Robustness of the workload-file input surface: whatever text arrives, `loadWorkload` returns a
 * program or throws its own `WorkloadFileError` whose every problem names file, line and column;
 * `compileWorkload` likewise throws only `WorkloadBuildError`. Then one focused test per defect
 * found by the audit.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { workloadSpecArb } from "./testing/workload-arbitrary";
import { compileWorkload, MAX_OPERATIONS, WorkloadBuildError } from "./workload-compiler";
import { loadWorkload, parseWorkloadText, WorkloadFileError } from "./workload-file";
import type { WorkloadProgram } from "./workload-ops";
import {
  ADDRESS_SPACE_FIELDS,
  MAPPING_FIELDS,
  MAX_LOOP_DEPTH,
  SETUP_FIELDS,
  STEP_NAMES,
  STEP_TABLE,
  type StepSpec,
  WORKLOAD_FIELDS,
  type WorkloadSpec,
  workloadDocument,
  workloadToJson,
} from "./workload-spec";

const FILE = "w.yaml";

/** Loads `text`; a `WorkloadFileError` is returned, any other exception escapes (and fails the test). */
function load(text: string): WorkloadProgram | WorkloadFileError {
  try {
    return loadWorkload(text, FILE);
  } catch (error) {
    if (error instanceof WorkloadFileError) return error;
    throw error;
  }
}

/** Every problem has a position inside the text, and every message line names file, line and column. */
function expectLocated(error: WorkloadFileError, text: string): void {
  expect(error.file).toBe(FILE);
  expect(error.problems.length).toBeGreaterThan(0);
  const lineCount = text.split("\n").length;
  const outside = error.problems.filter((p) => !(p.line >= 1 && p.line <= lineCount && p.column >= 1));
  expect(outside).toEqual([]);
  const unlocated = error.message.split("\n").filter((line) => !/^w\.yaml:\d+:\d+: \S/.test(line));
  expect(unlocated).toEqual([]);
}

/** Loads `text`, which must fail; the problems as `line:column: path: message` lines. */
function problemsOf(text: string): string[] {
  const result = load(text);
  if (!(result instanceof WorkloadFileError)) throw new Error("expected the file to be rejected");
  expectLocated(result, text);
  return result.message.split("\n").map((line) => line.slice(FILE.length + 1));
}

/** Compiles a document, which must fail; its problems as `path: message`. */
function compileProblems(spec: unknown): string[] {
  try {
    compileWorkload(spec as WorkloadSpec);
  } catch (error) {
    if (error instanceof WorkloadBuildError) return error.problems.map((p) => `${p.path}: ${p.message}`);
    throw error;
  }
  throw new Error("expected the document to be rejected");
}

// ---------------------------------------------------------------------------------------------
// Arbitrary input
// ---------------------------------------------------------------------------------------------

const KEYS = [
  ...new Set([
    ...Object.keys(WORKLOAD_FIELDS),
    ...Object.keys(SETUP_FIELDS),
    ...Object.keys(ADDRESS_SPACE_FIELDS),
    ...Object.keys(MAPPING_FIELDS),
    ...STEP_NAMES,
    ...STEP_NAMES.flatMap((name) => Object.keys(STEP_TABLE[name].fields)),
    "__proto__",
    "toString",
    "constructor",
    "hasOwnProperty",
  ]),
];

/** Values that sit on an edge somewhere: ranges, 2^53, 2^64, number syntaxes, names, odd text. */
const edgeScalarArb = fc.oneof(
  fc.constantFrom(0, 1, -1, 0.5, -0, 4096, 0xffff, 0xffffffff, 2 ** 32, 2 ** 46, 2 ** 53, 2 ** 64, 1e308),
  fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY),
  fc.integer(),
  fc.double(),
  fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }),
  fc.constantFrom("0x1f", "0x", "0b102", "0o8", "1_000", "_", "-0x10", "0x8000_0000_0000_0000", "1e3"),
  fc.constantFrom("16MiB", "4K", "64TiB", "1TiB", "IA32_EFER", "identity", "4-level", "pae", "none"),
  fc.constantFrom("2M", "1G", "4M", "hlt", "__proto__", "toString", "", " ", "\u0000", "a".repeat(100)),
  fc.string({ maxLength: 12 }),
  fc.boolean(),
  fc.constant(null),
);

const { value: valueArb } = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    edgeScalarArb,
    fc.array(tie("value"), { maxLength: 4 }),
    fc.dictionary(fc.constantFrom(...KEYS), tie("value"), { maxKeys: 4 }),
  ),
}));

const stepArb = fc.oneof(
  fc.constantFrom(...STEP_NAMES),
  fc.dictionary(fc.constantFrom(...STEP_NAMES), valueArb, { minKeys: 1, maxKeys: 1 }),
  valueArb,
);

/** Documents shaped like workloads, with keys that exist and values that may not fit them. */
const documentArb = fc.record(
  {
    name: fc.oneof(fc.constant("w"), edgeScalarArb),
    steps: fc.oneof(fc.array(stepArb, { maxLength: 5 }), valueArb),
    setup: fc.oneof(
      fc.dictionary(fc.constantFrom(...Object.keys(SETUP_FIELDS)), valueArb, { maxKeys: 5 }),
      valueArb,
    ),
    extra: valueArb,
  },
  { requiredKeys: [] },
);

/** A document as YAML, or as JSON when the YAML printer refuses a value. */
function documentText(document: unknown, json: boolean): string {
  const asJson = () =>
    JSON.stringify(document, (_key, item) => (typeof item === "bigint" ? item.toString() : item)) ?? "null";
  if (json) return asJson();
  try {
    return stringify(document);
  } catch {
    return asJson();
  }
}

/** Characters that matter to YAML and JSON, for editing valid files into invalid ones. */
const editArb = fc.constantFrom(
  ..."{}[]:,-#&*!|>'\"%@`?\n\t .0x1fe".split(""),
  "\r\n",
  "  ",
  "- ",
  ": ",
  "loop",
  "count",
  "steps",
  "\uFEFF",
);

describe("arbitrary input loads or fails with located problems, never another exception", () => {
  it("any text (mostly ASCII, any code point, lone surrogates included)", () => {
    const codePointArb = fc.oneof(
      { weight: 4, arbitrary: fc.integer({ min: 0, max: 0x7f }) },
      { weight: 1, arbitrary: fc.integer({ min: 0, max: 0x10ffff }) },
    );
    const textArb = fc
      .array(codePointArb, { maxLength: 200 })
      .map((codes) => codes.map((code) => String.fromCodePoint(code)).join(""));
    fc.assert(
      fc.property(textArb, (text) => {
        const result = load(text);
        if (result instanceof WorkloadFileError) expectLocated(result, text);
      }),
      { numRuns: 200 },
    );
  });

  it("any bytes, decoded as a CLI decodes a file", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const text = new TextDecoder("utf-8").decode(bytes);
        const result = load(text);
        if (result instanceof WorkloadFileError) expectLocated(result, text);
      }),
      { numRuns: 300 },
    );
  });

  it("documents with real keys and edge values, as YAML and JSON, and through compileWorkload", () => {
    fc.assert(
      fc.property(documentArb, fc.boolean(), (document, json) => {
        const text = documentText(document, json);
        const result = load(text);
        if (result instanceof WorkloadFileError) expectLocated(result, text);
        else expect(result.length).toBeGreaterThan(0);
        try {
          compileWorkload(document as unknown as WorkloadSpec);
        } catch (error) {
          expect(error).toBeInstanceOf(WorkloadBuildError);
          expect((error as WorkloadBuildError).problems.length).toBeGreaterThan(0);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("valid files with a few characters inserted, deleted or replaced", () => {
    fc.assert(
      fc.property(
        workloadSpecArb,
        fc.boolean(),
        fc.array(fc.tuple(fc.nat(), fc.nat({ max: 3 }), editArb), { minLength: 1, maxLength: 6 }),
        (spec, json, edits) => {
          let text = json ? workloadToJson(spec) : stringify(workloadDocument(spec));
          for (const [at, length, insert] of edits) {
            const p = at % (text.length + 1);
            text = text.slice(0, p) + insert + text.slice(p + length);
          }
          const result = load(text);
          if (result instanceof WorkloadFileError) expectLocated(result, text);
          try {
            parseWorkloadText(text, FILE);
          } catch (error) {
            expect(error).toBeInstanceOf(WorkloadFileError);
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Regressions
// ---------------------------------------------------------------------------------------------

describe("regressions", () => {
  it("names of Object.prototype members are unknown keys and operations, not a TypeError", () => {
    expect(problemsOf("name: x\n__proto__: 1\nsteps: [hlt]\n")).toEqual([
      '2:1: __proto__: unknown key "__proto__"',
    ]);
    expect(problemsOf("name: x\nsetup: { toString: 1 }\nsteps: [hlt]\n")).toEqual([
      '2:10: setup.toString: unknown key "toString"',
    ]);
    expect(
      problemsOf("name: x\nsteps:\n  - constructor\n  - toString: 1\n  - hlt: { __proto__: 1 }\n"),
    ).toEqual([
      '3:5: steps[0]: unknown operation "constructor"',
      '4:5: steps[1].toString: unknown operation "toString"',
      '5:12: steps[2].hlt.__proto__: unknown key "__proto__"',
    ]);
  });

  it("compileWorkload rejects them too, instead of throwing a TypeError or ignoring the key", () => {
    expect(compileProblems({ name: "x", steps: [{ toString: {} }] })).toEqual([
      'steps[0]: unknown operation "toString"',
    ]);
    expect(compileProblems({ name: "x", steps: [{ constructor: {} }] })).toEqual([
      'steps[0]: unknown operation "constructor"',
    ]);
    expect(compileProblems(JSON.parse('{"name":"x","__proto__":1,"steps":[{"hlt":{}}]}'))).toEqual([
      '__proto__: unknown key "__proto__"',
    ]);
    expect(compileProblems({ name: "x", toString: 1, steps: [{ hlt: {} }] })).toEqual([
      'toString: unknown key "toString"',
    ]);
    expect(compileProblems("x")).toEqual([': expected a mapping, got "x"']);
  });

  it("long values and keys are cut in messages, not echoed whole", () => {
    const name = "a".repeat(10_000);
    const [nameProblem] = problemsOf(`name: ${name}\nsteps: [hlt]\n`);
    expect(nameProblem).toBe(
      `1:7: name: expected a name of letters, digits and _ . + - (at most 64 characters), got "${"a".repeat(64)}…" (10000 characters)`,
    );
    const [keyProblem] = problemsOf(`name: x\nsetup: { ${"k".repeat(900)}: 1 }\nsteps: [hlt]\n`);
    expect(keyProblem).toBe(
      `2:10: setup.${"k".repeat(64)}…: unknown key "${"k".repeat(64)}…" (900 characters)`,
    );
    const [numberProblem] = problemsOf(`name: x\nsteps: [{ cpuid: ${"9".repeat(5000)} }]\n`);
    expect(numberProblem).toBe(
      `2:18: steps[0].cpuid.leaf: expected an integer in [0, 0xffffffff], got ${"9".repeat(64)}…`,
    );
    const [operationProblem] = problemsOf(`name: x\nsteps: [${"z".repeat(5000)}]\n`);
    expect(operationProblem).toBe(`2:9: steps[0]: unknown operation "${"z".repeat(64)}…" (5000 characters)`);
    const keys = Array.from({ length: 40 }, (_, i) => `k${i}: 1`).join(", ");
    expect(problemsOf(`name: x\nsteps: [{ ${keys} }]\n`)).toEqual([
      "2:9: steps[0]: a step has exactly one operation key, got k0, k1, k2, k3, k4, … (40 keys)",
    ]);
  });

  it("a key with blanks, quotes or invisible characters is quoted in the path", () => {
    // Found by the edit property: a BOM inserted before a key left an invisible character at the
    // start of the path.
    const bom = problemsOf('{"name": "x", \uFEFF"steps": []}').find((p) => p.includes("unknown key"));
    expect(bom).toMatch(/^1:\d+: "\uFEFF\\?"?steps\\?"?": unknown key/);
    const spaced = problemsOf("name: x\nsetup: { 'a b': 1 }\nsteps: [hlt]\n").find((p) =>
      p.includes("unknown key"),
    );
    expect(spaced).toBe('2:10: setup."a b": unknown key "a b"');
  });

  it("an empty step says it got nothing", () => {
    expect(problemsOf("name: x\nsteps:\n  -\n  - hlt\n")).toEqual([
      "3:4: steps[0]: expected a step (an operation name or a mapping with one), got nothing",
    ]);
  });

  it("text that was not UTF-8 is rejected where its first bad byte was", () => {
    const latin1 = Uint8Array.from([...new TextEncoder().encode("name: x\ndescription: caf"), 0xe9, 0x0a]);
    const text = `${new TextDecoder("utf-8").decode(latin1)}steps: [hlt]\n`;
    expect(problemsOf(text)).toEqual([
      "2:17: not UTF-8 text: a byte sequence here is not UTF-8 (read as U+FFFD); save the file as UTF-8",
    ]);
    const utf16 = new TextDecoder("utf-8").decode(Uint8Array.from([0xff, 0xfe, 0x6e, 0x00]));
    expect(problemsOf(utf16)[0]).toMatch(/^1:1: not UTF-8 text/);
  });

  it("a tag the loader does not know is reported, not dropped", () => {
    expect(problemsOf("name: x\nsteps: [{ cpuid: !hex 10 }]\n")).toEqual([
      "2:18: YAML: Unresolved tag: !hex",
    ]);
  });

  it("nesting too deep for the parser is one clear problem", () => {
    const depth = 3000;
    const text = `name: x\nsteps: ${"[".repeat(depth)}${"]".repeat(depth)}\n`;
    const problems = problemsOf(text);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^2:\d+: the document nests too deeply to read$/);
  });

  it("loops nested one too deep give one problem, not one per enclosing loop", () => {
    const depth = MAX_LOOP_DEPTH + 1;
    const text = `name: x\nsteps: ${"[{ loop: { count: 1, steps: ".repeat(depth)}[hlt]${" }}]".repeat(depth)}\n`;
    const problems = problemsOf(text);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(
      new RegExp(
        `^2:\\d+: steps\\[0\\](\\.loop\\.steps\\[0\\]){${MAX_LOOP_DEPTH}}\\.loop: loops nest more than 32 deep$`,
      ),
    );
    // Deeper still: the reader stops at the limit instead of recursing on.
    const deeper = 300;
    const deep = `name: x\nsteps: ${"[{ loop: { count: 1, steps: ".repeat(deeper)}[hlt]${" }}]".repeat(deeper)}\n`;
    expect(problemsOf(deep)).toHaveLength(1);
    let steps: StepSpec[] = [{ hlt: {} }];
    for (let i = 0; i < depth; i++) steps = [{ loop: { count: 1, steps } }];
    const compiled = compileProblems({ name: "x", steps });
    expect(compiled).toHaveLength(1);
    expect(compiled[0]).toMatch(/\.loop: loops nest more than 32 deep$/);
  });

  it("duplicate keys are found by the loader, with where the first one was", () => {
    expect(problemsOf("name: x\nsteps: [hlt]\nname: y\n")).toEqual([
      '3:1: name: duplicate key "name" (first given on line 1)',
    ]);
    expect(problemsOf('{ "name": "x", "steps": [{ "cpuid": { "leaf": 1, "leaf": 2 } }] }')).toEqual([
      '1:50: steps[0].cpuid.leaf: duplicate key "leaf" (first given on line 1)',
    ]);
    // 10,000 keys: the parser's own uniqueness check took a second here (quadratic); this one is linear.
    const keys = Array.from({ length: 10_000 }, (_, i) => `  k${i}: 1\n`).join("");
    const result = load(`name: x\nsteps: [hlt]\nsetup:\n${keys}`);
    expect(result).toBeInstanceOf(WorkloadFileError);
    expect((result as WorkloadFileError).problems).toHaveLength(10_000);
  });

  it("nested loops whose counts multiply past MAX_OPERATIONS are rejected, not run for ages", () => {
    expect(
      problemsOf(
        "name: x\nsteps:\n  - loop:\n      count: 0xffffffff\n      steps:\n        - loop: { count: 0xffffffff, steps: [{ cpuid: 0 }] }\n",
      ),
    ).toEqual([
      "4:14: steps[0].loop.count: 0xffffffff iterations of 0xffffffff operations run about 2^63 operations, more than the 2^40 a run can finish",
    ]);
    const many: StepSpec[] = Array.from({ length: 300 }, () => ({
      loop: { count: 0xffffffff, steps: [{ hlt: {} }] },
    }));
    expect(compileProblems({ name: "x", steps: many })).toEqual([
      "steps: the workload runs about 2^40 operations, more than the 2^40 a run can finish",
    ]);
    expect(MAX_OPERATIONS).toBe(2 ** 40);
    const single = loadWorkload("name: x\nsteps: [{ loop: { count: 0xffffffff, steps: [hlt] } }]\n", FILE);
    expect(single.length).toBe(3);
  });

  it("more memory than a run can read back, or mappings that large, are rejected", () => {
    expect(problemsOf("name: x\nsetup: { memory: 1TiB }\nsteps: [hlt]\n")).toEqual([
      "2:18: setup.memory: the default address space identity-maps all 0x10000000000 bytes of memory, more than the 0x100000000 bytes (4 GiB) a run can read back when it ends: give less memory, or setup.addressSpaces mapping only what the steps use",
    ]);
    expect(
      compileProblems({
        name: "x",
        setup: {
          memory: "64GiB",
          addressSpaces: [{ name: "a", mappings: [{ gva: 0, pages: 8, pageSize: "1G" }] }],
        },
        steps: [{ hlt: {} }],
      }),
    ).toEqual([
      "setup.addressSpaces: the mappings cover 0x200000000 bytes in all, more than the 0x100000000 bytes (4 GiB) a run can read back when it ends",
    ]);
    // Large memory with small mappings is fine: memory is sparse.
    const sparse = loadWorkload(
      "name: x\nsetup: { memory: 1TiB, addressSpaces: [{ name: a, mappings: [{ gva: 0, pages: 1 }] }] }\nsteps: [{ read: 0 }]\n",
      FILE,
    );
    expect(sparse.setup.memoryBytes).toBe(2 ** 40);
  });

  it("memory that leaves no room for the page tables below MAXPHYADDR or 4 GiB is rejected", () => {
    const space = "addressSpaces: [{ name: a, mappings: [{ gva: 0, pages: 1 }] }]";
    expect(problemsOf(`name: x\nsetup: { memory: 64TiB, ${space} }\nsteps: [hlt]\n`)).toEqual([
      "2:18: setup.memory: the page tables are built right above memory, at 0x400000000000..0x400000013fff, beyond the 46-bit physical addresses of the modelled CPU (MAXPHYADDR): give less memory",
    ]);
    expect(problemsOf(`name: x\nsetup: { paging: 32-bit, memory: 4GiB, ${space} }\nsteps: [hlt]\n`)).toEqual([
      "2:34: setup.memory: the page tables are built right above memory, at 0x100000000..0x100011fff, beyond the 4 GiB that 32-bit paging's CR3 can point into (SDM 4.3): give less memory",
    ]);
    expect(problemsOf(`name: x\nsetup: { paging: pae, memory: 4GiB, ${space} }\nsteps: [hlt]\n`)[0]).toMatch(
      /setup\.memory: .* beyond the 4 GiB that pae paging's CR3 can point into \(SDM 4\.4\.1\)/,
    );
    const fits = loadWorkload(
      `name: x\nsetup: { paging: 32-bit, memory: 4000MiB, ${space} }\nsteps: [hlt]\n`,
      FILE,
    );
    expect(fits.setup.memoryBytes).toBe(4000 * 2 ** 20);
  });

  it("a CR3 or INVLPG operand wider than 32 bits outside IA-32e mode is rejected", () => {
    expect(problemsOf("name: x\nsetup: { paging: 32-bit }\nsteps: [{ movToCr3: 0x100000000 }]\n")).toEqual([
      "3:21: steps[0].movToCr3.value: 0x100000000 does not fit in 32 bits: CR3 is 32 bits outside IA-32e mode",
    ]);
    expect(problemsOf("name: x\nsetup: { paging: pae }\nsteps: [{ invlpg: 0x100000000 }]\n")).toEqual([
      "3:19: steps[0].invlpg.gva: 0x100000000..0x100000000 does not fit: linear addresses are 32 bits outside IA-32e mode",
    ]);
    const longMode = loadWorkload("name: x\nsteps: [{ invlpg: 0x100000000 }]\n", FILE);
    expect(longMode.length).toBe(1);
  });
});

describe("strings where a number is required (regression: a quoted decimal was read as the number)", () => {
  const HINT = "(a number in quotes: write it without quotes)";

  it("refuses a plain decimal in quotes, in YAML and JSON, naming position, path and field", () => {
    expect(problemsOf('name: x\nsteps:\n  - loop: { count: "2", steps: [hlt] }\n')).toEqual([
      `3:20: steps[0].loop.count: expected an integer in [0, 0xffffffff], got "2" ${HINT}`,
    ]);
    expect(
      problemsOf("name: x\nsetup: { level: '2', memory: \"16777216\" }\nsteps: [{ rdmsr: ' 16 ' }]\n"),
    ).toEqual([
      `2:17: setup.level: expected one of 1, 2, 3, got "2" ${HINT}`,
      `2:30: setup.memory: expected a size in bytes in [0x1000, 0x400000000000], a multiple of 4096 (e.g. 4096, "16MiB"), got "16777216" ${HINT}`,
      `3:18: steps[0].rdmsr.msr: expected an MSR index in [0, 0xffffffff] or an MSR name, got " 16 " ${HINT}`,
    ]);
    expect(problemsOf('{"name": "x", "steps": [{"cpuid": {"leaf": "1"}}, {"movToCr3": "4096"}]}')).toEqual([
      `1:44: steps[0].cpuid.leaf: expected an integer in [0, 0xffffffff], got "1" ${HINT}`,
      `1:64: steps[1].movToCr3.value: expected an integer in [0, 0xffffffffffffffff], got "4096" ${HINT}`,
    ]);
  });

  it("accepts 1e3 as the number 1000 and refuses 1.5, in YAML and JSON", () => {
    const yaml = loadWorkload(
      "name: x\nsteps:\n  - compute: 1e3\n  - loop: { count: 2e0, steps: [hlt] }\n",
      FILE,
    );
    const json = loadWorkload(
      '{"name": "x", "steps": [{"compute": 1e3}, {"loop": {"count": 2E0, "steps": ["hlt"]}}]}',
      FILE,
    );
    for (const program of [yaml, json]) {
      expect(program.operands[0]).toBe(1000);
      expect(program.length).toBe(4);
    }
    expect(problemsOf("name: x\nsteps:\n  - compute: 1.5\n")).toEqual([
      "3:14: steps[0].compute.cycles: expected an integer in [0, 0x1fffffffffffff], got 1.5",
    ]);
    expect(problemsOf('{"name": "x", "steps": [{"loop": {"count": 1.5, "steps": ["hlt"]}}]}')).toEqual([
      "1:44: steps[0].loop.count: expected an integer in [0, 0xffffffff], got 1.5",
    ]);
  });

  it("keeps the documented string forms: 0x, 0o and 0b prefixes, _ separators, sizes with a unit", () => {
    const program = loadWorkload(
      '{"name": "x", "setup": {"memory": "0x100_0000"}, "steps": [{"cpuid": "0x10"}, {"cpuid": "0o17"}, {"cpuid": "0b101"}, {"compute": "1_000"}, {"wrmsr": {"msr": "0x10", "value": "0xffff_ffff_ffff_ffff"}}]}',
      FILE,
    );
    expect([0, 1, 2, 3].map((i) => program.operands[i * 6])).toEqual([0x10, 0o17, 0b101, 1000]);
    expect(program.setup.memoryBytes).toBe(16 * 2 ** 20);
    const yaml = loadWorkload(
      "name: x\nsetup: { memory: 8 MiB }\nsteps:\n  - cpuid: 0x10\n  - cpuid: 0b11\n",
      FILE,
    );
    expect(yaml.setup.memoryBytes).toBe(8 * 2 ** 20);
    expect(yaml.operands[6]).toBe(3);
  });

  it("accepts a string for an integer exactly when the committed JSON Schema's pattern does", () => {
    const schema = JSON.parse(
      readFileSync(fileURLToPath(new URL("../schema/workload.schema.json", import.meta.url)), "utf8"),
    ) as {
      $defs: { step: { oneOf: { properties?: Record<string, { anyOf?: Record<string, unknown>[] }> }[] } };
    };
    const compute = schema.$defs.step.oneOf.find((v) => v.properties?.compute !== undefined)!;
    const cycles = compute.properties!.compute!.anyOf!.find((form) => form.type === "object") as {
      properties: { cycles: { anyOf: { type: string; pattern?: string }[] } };
    };
    const pattern = new RegExp(
      cycles.properties.cycles.anyOf.find((form) => form.type === "string")!.pattern!,
    );
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: fc.constantFrom(..."0123456789abfxXoOB_ -.e".split("")), maxLength: 12 }),
          fc
            .tuple(
              fc.constantFrom("", " ", "0x", "0X", "0o", "0b", "0B"),
              fc.string({ unit: fc.constantFrom(..."0123456789aF_".split("")), maxLength: 8 }),
              fc.constantFrom("", " ", "\t"),
            )
            .map(([prefix, digits, end]) => `${prefix}${digits}${end}`),
        ),
        (text) => {
          const loaded = load(JSON.stringify({ name: "x", steps: [{ compute: { cycles: text } }] }));
          expect(!(loaded instanceof WorkloadFileError)).toBe(pattern.test(text));
        },
      ),
      { numRuns: 400 },
    );
  });
});
