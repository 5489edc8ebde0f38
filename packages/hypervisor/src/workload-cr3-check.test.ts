import { MODERN_CPU, PAGING_MODE } from "@nestvisor/x86-arch";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { resolveFlags } from "./kernel-presets";
import { runWorkload } from "./run-workload";
import { workloadSpecArb } from "./testing/workload-arbitrary";
import { compileWorkload, WorkloadBuildError } from "./workload-compiler";
import { guestPhysicalEnd, literalCr3Problem } from "./workload-cr3-check";
import { formatFileProblem, loadWorkload, parseWorkloadText, WorkloadFileError } from "./workload-file";
import type { WorkloadSetup } from "./workload-ops";
import { type StepSpec, workloadToJson } from "./workload-spec";

/** The compiled setup of a one-step workload with `setup` (YAML flow mapping body). */
function setupOf(setup: string): WorkloadSetup {
  return compileWorkload(parseWorkloadText(`name: s\nsetup: { ${setup} }\nsteps: [hlt]\n`)).setup;
}

/** The problems of loading `text` as `w.yaml`, formatted; [] when it loads. */
function problemsOf(text: string): string[] {
  try {
    loadWorkload(text, "w.yaml");
    return [];
  } catch (error) {
    if (!(error instanceof WorkloadFileError)) throw error;
    return error.problems.map((p) => formatFileProblem("w.yaml", p));
  }
}

const MAXPHYADDR = MODERN_CPU.maxPhysAddr;
const LIMIT = 2 ** MAXPHYADDR;
const BEYOND =
  "is beyond MAXPHYADDR: the modelled CPU has 46-bit physical addresses, so CR3 bits 62:46 must be clear " +
  "(a CR3 below 0x400000000000; SDM 4.5: they are reserved, and MOV to CR3 would #GP)";

describe("literalCr3Problem", () => {
  const level4 = setupOf("paging: 4-level");
  const end = guestPhysicalEnd(level4);

  it("ends guest memory where the machine ends it: RAM, then the page tables and 16 spare pages", () => {
    expect(end % 4096).toBe(0);
    expect(end).toBeGreaterThan(level4.memoryBytes + 16 * 4096);
    expect(guestPhysicalEnd(setupOf("paging: none"))).toBe(16 * 2 ** 20);
  });

  it("accepts exactly the 4-level CR3s below MAXPHYADDR whose PML4 table is in guest memory", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.bigInt({ min: 0n, max: 2n ** 63n - 1n }),
          fc.bigInt({ min: 0n, max: BigInt(end) + 0x2000n }),
          fc.bigInt({ min: BigInt(LIMIT) - 0x1000n, max: BigInt(LIMIT) + 0x1000n }),
        ),
        (value) => {
          const legal = value < BigInt(LIMIT) && (value & ~0xfffn) < BigInt(end);
          expect(literalCr3Problem(value, level4, end) === undefined).toBe(legal);
        },
      ),
      { numRuns: 500 },
    );
  });

  it("names the value and the limit, for any MAXPHYADDR", () => {
    expect(literalCr3Problem(0x4000_0000_0000n, level4, end)).toBe(`0x400000000000 ${BEYOND}`);
    expect(literalCr3Problem(0x10_0000_0000n, level4, end, 36)).toMatch(
      /^0x1000000000 is beyond MAXPHYADDR: the modelled CPU has 36-bit physical addresses, so CR3 bits 62:36 must be clear \(a CR3 below 0x1000000000;/,
    );
    expect(literalCr3Problem(0x4000_0000_0000n, level4, end, 52)).toMatch(
      /puts the PML4 table at 0x400000000000/,
    );
  });

  it("reads the root table's address as each paging mode does, and checks nothing without paging", () => {
    const pae = setupOf("paging: pae");
    const paeEnd = guestPhysicalEnd(pae);
    // PAE: bits 31:5 (the PDPT is 32-byte aligned); 32-bit paging: bits 31:12.
    expect(literalCr3Problem(BigInt(paeEnd - 32) | 0x1fn, pae, paeEnd)).toBeUndefined();
    expect(literalCr3Problem(BigInt(paeEnd), pae, paeEnd)).toMatch(
      /puts the page-directory-pointer table at/,
    );
    const bit32 = setupOf("paging: 32-bit");
    const bit32End = guestPhysicalEnd(bit32);
    expect(literalCr3Problem(BigInt(bit32End - 4096) | 0xfffn, bit32, bit32End)).toBeUndefined();
    expect(literalCr3Problem(BigInt(bit32End), bit32, bit32End)).toMatch(/puts the page directory at/);
    const level5 = setupOf("paging: 5-level");
    expect(literalCr3Problem(BigInt(LIMIT), level5, guestPhysicalEnd(level5))).toBe(
      `0x400000000000 ${BEYOND}`,
    );
    const none = setupOf("paging: none");
    expect(none.pagingMode).toBe(PAGING_MODE.NONE);
    expect(literalCr3Problem(0xffff_f000n, none, guestPhysicalEnd(none))).toBeUndefined();
  });
});

describe("loadWorkload refuses a literal CR3 the machine cannot load (regression: it failed at run time)", () => {
  it("beyond MAXPHYADDR, naming file, position, field, value and limit", () => {
    expect(problemsOf("name: x\nsteps:\n  - movToCr3: 0x400000000000\n")).toEqual([
      `w.yaml:3:15: steps[0].movToCr3.value: 0x400000000000 ${BEYOND}`,
    ]);
    expect(
      problemsOf(
        "name: x\nsetup: { paging: 5-level }\nsteps:\n  - loop:\n      count: 2\n      steps:\n        - movToCr3: { value: 0x7ffffffff000 }\n",
      ),
    ).toEqual([`w.yaml:7:30: steps[0].loop.steps[0].movToCr3.value: 0x7ffffffff000 ${BEYOND}`]);
  });

  it("pointing outside the guest's memory, naming where the memory ends", () => {
    const end = guestPhysicalEnd(setupOf("paging: pae, memory: 8MiB"));
    const text = (cr3: number) =>
      `name: x\nsetup: { paging: pae, memory: 8MiB }\nsteps:\n  - movToCr3: 0x${cr3.toString(16)}\n`;
    expect(problemsOf(text(end))).toEqual([
      `w.yaml:4:15: steps[0].movToCr3.value: 0x${end.toString(16)} puts the page-directory-pointer table at 0x${end.toString(16)}, outside the guest's physical memory (0x800000 bytes of RAM, then its page tables, up to 0x${(end - 1).toString(16)}): the walk would read no RAM, and MMIO is not modelled`,
    ]);
    expect(problemsOf(text(end - 32))).toEqual([]);
  });

  it("accepts a CR3 at the last page of guest memory, which runs", () => {
    const end = guestPhysicalEnd(setupOf("level: 1"));
    const program = loadWorkload(
      `name: x\nsetup: { level: 1 }\nsteps:\n  - iteration: a\n  - movToCr3: 0x${(end - 4096).toString(16)}\n  - read: 0x1000\n`,
      "w.yaml",
    );
    const result = runWorkload({ program, config: resolveFlags("v6.12", {}) });
    expect(result.iterations).toBe(1);
  });

  it("leaves spaces and reloads alone, and lists every bad CR3", () => {
    expect(problemsOf("name: x\nsteps: [{ movToCr3: identity }, { movToCr3: { reload: true } }]\n")).toEqual(
      [],
    );
    const many = `name: x\nsteps:\n${"  - movToCr3: 0x7fffffffffff0000\n".repeat(3)}`;
    expect(problemsOf(many).map((p) => p.slice(0, 38))).toEqual([
      "w.yaml:3:15: steps[0].movToCr3.value: ",
      "w.yaml:4:15: steps[1].movToCr3.value: ",
      "w.yaml:5:15: steps[2].movToCr3.value: ",
    ]);
  });

  it("a random valid workload with an illegal CR3 appended is refused at that step", () => {
    fc.assert(
      fc.property(
        workloadSpecArb,
        fc.oneof(
          fc.bigInt({ min: BigInt(LIMIT), max: 2n ** 63n - 1n }),
          fc.bigInt({ min: 0x2000000n, max: BigInt(LIMIT) - 1n }),
        ),
        (spec, value) => {
          const steps: StepSpec[] = [...spec.steps, { movToCr3: { value } }];
          // Refused by the compiler itself, so a program built in TypeScript is checked too.
          let paths: string[] = [];
          try {
            compileWorkload({ ...spec, steps });
          } catch (error) {
            if (!(error instanceof WorkloadBuildError)) throw error;
            paths = error.problems.map((p) => p.path);
          }
          expect(paths).toEqual([`steps[${steps.length - 1}].movToCr3.value`]);
          expect(() => loadWorkload(workloadToJson({ ...spec, steps }), "w.json")).toThrow(
            new RegExp(
              `^w\\.json:\\d+:\\d+: steps\\[${steps.length - 1}\\]\\.movToCr3\\.value: 0x${value.toString(16)} `,
            ),
          );
        },
      ),
      { numRuns: 60 },
    );
  });
});
