import { CR0, CR4, EFER, PAGING_MODE, pagingModeOf } from "@nestvisor/x86-arch";
import { describe, expect, it } from "vitest";
import {
  checkFields,
  compileWorkload,
  DEFAULT_LEVEL,
  DEFAULT_MEMORY_BYTES,
  defaultControlRegisters,
  isCanonical,
  MAX_PROBLEMS,
  WorkloadBuildError,
  type WorkloadProblem,
} from "./workload-compiler";
import type { MappingSpec, SetupSpec, StepSpec, WorkloadSpec } from "./workload-spec";
import { SETUP_FIELDS } from "./workload-spec";

const HLT: StepSpec[] = [{ hlt: {} }];

function problems(spec: WorkloadSpec): string[] {
  try {
    compileWorkload(spec);
  } catch (error) {
    if (error instanceof WorkloadBuildError) return error.problems.map((p) => `${p.path}: ${p.message}`);
    throw error;
  }
  return [];
}

function setupProblems(setup: SetupSpec): string[] {
  return problems({ name: "s", setup, steps: HLT });
}

describe("setup", () => {
  it("defaults to a nested guest with 4-level paging and an identity-mapped 16 MiB", () => {
    const { setup } = compileWorkload({ name: "d", steps: HLT });
    expect(setup.level).toBe(DEFAULT_LEVEL);
    expect(setup.pagingMode).toBe(PAGING_MODE.LEVEL4);
    expect(setup.memoryBytes).toBe(DEFAULT_MEMORY_BYTES);
    expect(setup.cpl).toBe(0);
    expect(setup.cr0).toBe(0x8005_0033);
    expect(setup.efer).toBe(0xd01);
    expect(setup.addressSpaces).toEqual([
      {
        name: "identity",
        pcid: 0,
        mappings: [
          {
            gvaLo: 0,
            gvaHi: 0,
            gpa: 0,
            pages: 4096,
            pageSize: 4096,
            writable: true,
            user: false,
            executable: true,
          },
        ],
      },
    ]);
  });

  it("gives default control registers that select each paging mode", () => {
    for (const mode of Object.values(PAGING_MODE)) {
      const { cr0, cr4, efer } = defaultControlRegisters(mode);
      expect(pagingModeOf(cr0, cr4, efer)).toBe(mode);
      expect(cr0).toBeGreaterThanOrEqual(0);
    }
    const none = compileWorkload({ name: "n", setup: { paging: "none" }, steps: HLT }).setup;
    expect(none.addressSpaces).toEqual([]);
    expect(none.cr0 & CR0.PG).toBe(0);
  });

  it("sets CR4.PCIDE by default when a space has a PCID", () => {
    const { setup } = compileWorkload({
      name: "p",
      setup: { addressSpaces: [{ name: "a", pcid: 5, mappings: [{ gva: 0, pages: 1 }] }] },
      steps: HLT,
    });
    expect(setup.cr4 & CR4.PCIDE).toBe(CR4.PCIDE);
    expect(
      setupProblems({
        cr4: 0x6a0,
        addressSpaces: [{ name: "a", pcid: 5, mappings: [{ gva: 0, pages: 1 }] }],
      }),
    ).toEqual(["setup.addressSpaces[0].pcid: a non-zero PCID needs CR4.PCIDE in setup.cr4 (SDM 4.10.1)"]);
  });

  it("resolves the initial address space by name or index", () => {
    const spaces = [
      { name: "a", mappings: [{ gva: 0, pages: 1 }] },
      { name: "b", mappings: [{ gva: 0, pages: 1 }] },
    ];
    const byName = compileWorkload({
      name: "i",
      setup: { addressSpaces: spaces, initialAddressSpace: "b" },
      steps: HLT,
    });
    expect(byName.setup.initialAddressSpace).toBe(1);
    expect(setupProblems({ addressSpaces: spaces, initialAddressSpace: 2 })).toEqual([
      "setup.initialAddressSpace: address space index 2 is out of range (there are 2)",
    ]);
  });

  it("checks control registers against the paging mode", () => {
    expect(setupProblems({ paging: "pae", cr4: 0x690 })).toEqual([
      "setup.cr4: CR0, CR4 and EFER select 32-bit paging, but setup.paging is pae (SDM 4.1.1)",
    ]);
    expect(setupProblems({ efer: EFER.LME | EFER.NXE })).toEqual([
      "setup.efer: EFER.LMA must be set exactly when EFER.LME and CR0.PG are (SDM 2.2.1)",
    ]);
    expect(setupProblems({ efer: 1 << 12 })).toEqual([
      "setup.efer: 0x1000 sets IA32_EFER bits other than SCE, LME, LMA and NXE",
    ]);
    expect(setupProblems({ paging: "pae", cr4: 0x206a0 })).toEqual([
      "setup.cr4: 0x206a0 sets CR4.PCIDE outside IA-32e mode (#GP; SDM Vol. 2B MOV to CR4)",
    ]);
  });

  it("checks mappings: page sizes, alignment, canonical ranges, memory and overlaps", () => {
    const space = (mappings: MappingSpec[]): SetupSpec => ({ addressSpaces: [{ name: "a", mappings }] });
    expect(setupProblems({ paging: "32-bit", ...space([{ gva: 0, pages: 1, pageSize: "2M" }]) })).toEqual([
      "setup.addressSpaces[0].mappings[0].pageSize: 2M pages are not available with this paging mode (SDM 4.3-4.5)",
    ]);
    expect(
      setupProblems({ paging: "pae", memory: "2GiB", ...space([{ gva: 0, pages: 1, pageSize: "1G" }]) }),
    ).toEqual([
      "setup.addressSpaces[0].mappings[0].pageSize: 1G pages are not available with this paging mode (SDM 4.3-4.5)",
    ]);
    expect(setupProblems(space([{ gva: 0x1000, gpa: 0, pages: 1, pageSize: "2M" }]))).toEqual([
      "setup.addressSpaces[0].mappings[0].gva: 0x1000 is not aligned to the 2M page size",
    ]);
    expect(setupProblems(space([{ gva: 0x7fff_ffff_f000, gpa: 0, pages: 2 }]))).toEqual([
      "setup.addressSpaces[0].mappings[0].gva: the range 0x7ffffffff000..0x800000000fff is not canonical: bits 63:47 must all be equal with 4-level paging (SDM 3.3.7.1)",
    ]);
    expect(setupProblems(space([{ gva: 0x100_0000, pages: 1 }]))).toEqual([
      "setup.addressSpaces[0].mappings[0]: gpa defaults to gva, and 0x1000000..0x1000fff is beyond memory (0x1000000 bytes): give gpa",
    ]);
    expect(setupProblems(space([{ gva: 0, gpa: 0xfff000, pages: 2 }]))).toEqual([
      "setup.addressSpaces[0].mappings[0].gpa: maps guest-physical 0xfff000..0x1000fff, beyond memory (0x1000000 bytes) and outside the MMIO device window 0xfe000000..0xfecfffff",
    ]);
    // The MMIO device window is mappable; a range running past its end is not.
    expect(setupProblems(space([{ gva: 0xfec0_0000, gpa: 0xfec0_0000, pages: 1 }]))).toEqual([]);
    expect(setupProblems(space([{ gva: 0xfecf_f000, gpa: 0xfecf_f000, pages: 2 }]))).toEqual([
      "setup.addressSpaces[0].mappings[0].gpa: maps guest-physical 0xfecff000..0xfed00fff, beyond memory (0x1000000 bytes) and outside the MMIO device window 0xfe000000..0xfecfffff",
    ]);
    expect(
      setupProblems(
        space([
          { gva: 0, pages: 4 },
          { gva: 0x3000, pages: 1 },
        ]),
      ),
    ).toEqual(["setup.addressSpaces[0].mappings[1]: overlaps mappings[0] in GVA"]);
    expect(
      setupProblems({
        addressSpaces: [
          { name: "a", mappings: [{ gva: 0, pages: 1 }] },
          { name: "a", mappings: [{ gva: 0, pages: 1 }] },
        ],
      }),
    ).toEqual(['setup.addressSpaces[1].name: duplicate address-space name "a"']);
    expect(setupProblems({ paging: "none", ...space([{ gva: 0, pages: 1 }]) })).toEqual([
      "setup.addressSpaces: paging is none: there are no page tables, so no address spaces",
    ]);
    expect(setupProblems({ addressSpaces: [] })).toEqual([
      "setup.addressSpaces: paging is on: give at least one address space",
    ]);
  });

  it("maps upper-half kernel addresses as 64-bit halves", () => {
    const { setup } = compileWorkload({
      name: "k",
      setup: {
        addressSpaces: [{ name: "k", mappings: [{ gva: 0xffff_8880_0000_0000n, gpa: 0, pages: 16 }] }],
      },
      steps: [{ read: { gva: 0xffff_8880_0000_0ff8n } }],
    });
    expect(setup.addressSpaces[0]?.mappings[0]?.gvaHi).toBe(0xffff_8880);
    expect(setup.addressSpaces[0]?.mappings[0]?.gvaLo).toBe(0);
  });
});

describe("isCanonical", () => {
  it("follows the width of each paging mode (SDM 3.3.7.1)", () => {
    expect(isCanonical(0x7fff_ffff_ffffn, PAGING_MODE.LEVEL4)).toBe(true);
    expect(isCanonical(0x8000_0000_0000n, PAGING_MODE.LEVEL4)).toBe(false);
    expect(isCanonical(0xffff_8000_0000_0000n, PAGING_MODE.LEVEL4)).toBe(true);
    expect(isCanonical(0x8000_0000_0000n, PAGING_MODE.LEVEL5)).toBe(true);
    expect(isCanonical(0x0100_0000_0000_0000n, PAGING_MODE.LEVEL5)).toBe(false);
    expect(isCanonical(0xff00_0000_0000_0000n, PAGING_MODE.LEVEL5)).toBe(true);
    expect(isCanonical(0xffff_ffffn, PAGING_MODE.PAE)).toBe(true);
    expect(isCanonical(0x1_0000_0000n, PAGING_MODE.BIT32)).toBe(false);
    expect(isCanonical(2n ** 64n, PAGING_MODE.LEVEL4)).toBe(false);
  });
});

describe("problem reporting", () => {
  it("checks fields generically: unknown keys with a suggestion, missing keys, nested lists", () => {
    const found: WorkloadProblem[] = [];
    expect(
      checkFields(
        { memroy: 4096, addressSpaces: [{ mappings: [{ gva: "x", pages: 1 }] }] },
        SETUP_FIELDS,
        "setup",
        found,
      ),
    ).toBe(false);
    expect(found.map((p) => `${p.path}: ${p.message}`)).toEqual([
      'setup.memroy: unknown key "memroy" (did you mean "memory"?)',
      'setup.addressSpaces[0]: missing required key "name"',
      'setup.addressSpaces[0].mappings[0].gva: expected an integer in [0, 0xffffffffffffffff], got "x"',
    ]);
  });

  it("rejects steps with no or several operation keys, and unknown operations", () => {
    expect(
      problems({
        name: "s",
        steps: [{} as StepSpec, { hlt: {}, cpuid: { leaf: 0 } } as never, { cpuidd: {} } as never],
      }),
    ).toEqual([
      "steps[0]: a step has exactly one operation key, got none",
      "steps[1]: a step has exactly one operation key, got hlt, cpuid",
      'steps[2]: unknown operation "cpuidd" (did you mean "cpuid"?)',
    ]);
  });

  it("caps the number of problems and formats them in the error message", () => {
    const steps = Array.from(
      { length: 2 * MAX_PROBLEMS },
      () => ({ in: { port: 0xffff, size: 2 } }) as StepSpec,
    );
    let error: unknown;
    try {
      compileWorkload({ name: "many", steps });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(WorkloadBuildError);
    const buildError = error as WorkloadBuildError;
    expect(buildError.problems).toHaveLength(MAX_PROBLEMS);
    expect(buildError.workload).toBe("many");
    expect(buildError.message.split("\n")[1]).toBe(
      "  steps[0].in.port: a 2-byte access at port 0xffff runs past 0xffff (the I/O address space is 64 KiB)",
    );
    expect(() => compileWorkload({ name: "one", steps: [{ cpuid: { leaf: -1 } }] })).toThrow(
      'workload "one": steps[0].cpuid.leaf: expected an integer in [0, 0xffffffff], got -1',
    );
  });

  it("returns a frozen program", () => {
    const program = compileWorkload({ name: "f", steps: HLT });
    expect(Object.isFrozen(program)).toBe(true);
    expect(Object.isFrozen(program.setup)).toBe(true);
  });
});
