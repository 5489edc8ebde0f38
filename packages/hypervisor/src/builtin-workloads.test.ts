import { EXIT_REASON } from "@nestvisor/vmx";
import { CR0, MSR } from "@nestvisor/x86-arch";
import { describe, expect, it } from "vitest";
import {
  BUILTIN_LAYOUT,
  BUILTIN_PORTS,
  BUILTIN_WORKLOAD_NAMES,
  BUILTIN_WORKLOADS,
  builtinWorkload,
  builtinWorkloadBuilder,
  findBuiltinWorkload,
  resolveBuiltinParameters,
} from "./builtin-workloads";
import { CURSOR_END, ProgramCursor } from "./program-cursor";
import { WorkloadBuildError } from "./workload-compiler";
import { loadWorkload } from "./workload-file";
import {
  CR_SLOT,
  dynamicOpCounts,
  IO_SLOT,
  MSR_SLOT,
  OP,
  opCountsByName,
  operand,
  type WorkloadProgram,
} from "./workload-ops";
import { workloadToJson } from "./workload-spec";

/** Executed operations by name, without the loop bookkeeping. */
function mix(program: WorkloadProgram): Record<string, number> {
  const { loop: _loop, endLoop: _endLoop, ...rest } = opCountsByName(dynamicOpCounts(program));
  return rest;
}

/** Every (opcode, operand slot 0) pair the cursor visits, deduplicated. */
function distinct(program: WorkloadProgram, opcode: number, slot: number): number[] {
  const cursor = new ProgramCursor(program);
  const seen = new Set<number>();
  for (let op = cursor.next(); op !== CURSOR_END; op = cursor.next())
    if (op === opcode) seen.add(cursor.operand(slot));
  return [...seen];
}

describe("built-in workloads", () => {
  it("are the ten of the issue, named as in kvm-unit-tests where they mirror it, and three MMIO ones", () => {
    expect(BUILTIN_WORKLOAD_NAMES).toEqual([
      "cpuid",
      "vmcall",
      "inl_from_kernel",
      "outl_to_kernel",
      "inl_from_qemu",
      "inl_from_pmtimer",
      "toggle_cr0_wp",
      "cr3_switch",
      "touch_memory",
      "mixed",
      "mmio_from_kernel",
      "mmio_to_eventfd",
      "mmio_from_qemu",
    ]);
    for (const builtin of BUILTIN_WORKLOADS) {
      expect(builtin.description).not.toContain("\n");
      expect(builtin.description.length).toBeGreaterThan(10);
      expect(builtin.exercises.length).toBeGreaterThan(0);
      for (const reason of builtin.exercises) expect(EXIT_REASON).toHaveProperty(reason);
      expect(builtin.parameters).toHaveProperty("level");
    }
  });

  it("all build at levels 1, 2 and 3 with their defaults", () => {
    for (const name of BUILTIN_WORKLOAD_NAMES) {
      for (const level of [1, 2, 3]) {
        const program = builtinWorkload(name, { level });
        expect(program.name).toBe(name);
        expect(program.setup.level).toBe(level);
        expect(program.labels.length).toBeGreaterThan(0);
      }
    }
  });

  it("mirror kvm-unit-tests' vmexit tests: one exiting instruction per iteration", () => {
    const expected: Record<string, Record<string, number>> = {
      cpuid: { cpuid: 1000, iteration: 1000 },
      vmcall: { vmcall: 1000, iteration: 1000 },
      inl_from_kernel: { in: 1000, iteration: 1000 },
      outl_to_kernel: { out: 1000, iteration: 1000 },
      inl_from_qemu: { in: 1000, iteration: 1000 },
      inl_from_pmtimer: { in: 1000, iteration: 1000 },
    };
    for (const [name, counts] of Object.entries(expected)) expect(mix(builtinWorkload(name))).toEqual(counts);
  });

  it("use the ports and widths of kvm-unit-tests", () => {
    const io = (name: string) => {
      const program = builtinWorkload(name, { iterations: 1 });
      const index = [...program.opcodes].findIndex((op) => op === OP.IN || op === OP.OUT);
      return [
        program.opcodes[index],
        operand(program, index, IO_SLOT.PORT),
        operand(program, index, IO_SLOT.SIZE),
      ];
    };
    expect(io("inl_from_kernel")).toEqual([OP.IN, BUILTIN_PORTS.ELCR_MASTER, 1]);
    expect(io("outl_to_kernel")).toEqual([OP.OUT, 0x4d0, 1]);
    expect(io("inl_from_qemu")).toEqual([OP.IN, 0x1234, 4]);
    expect(io("inl_from_pmtimer")).toEqual([OP.IN, 0xb008, 4]);
    expect(distinct(builtinWorkload("vmcall", { iterations: 3 }), OP.VMCALL, 0)).toEqual([0]);
    expect(distinct(builtinWorkload("cpuid", { iterations: 3 }), OP.CPUID, 0)).toEqual([0]);
  });

  it("toggle_cr0_wp clears and sets CR0.WP around a write to read-only data", () => {
    const program = builtinWorkload("toggle_cr0_wp", { iterations: 10 });
    expect(mix(program)).toEqual({ movToCr0: 20, write: 10, iteration: 10 });
    const values = distinct(program, OP.MOV_TO_CR0, CR_SLOT.VALUE_LO);
    expect(values).toEqual([program.setup.cr0 & ~CR0.WP & 0xffffffff, program.setup.cr0].map((v) => v >>> 0));
    const rodata = program.setup.addressSpaces[0]?.mappings.find(
      (m) => m.gvaLo === BUILTIN_LAYOUT.KERNEL_RODATA,
    );
    expect(rodata?.writable).toBe(false);
    expect(distinct(program, OP.WRITE, 0)).toEqual([BUILTIN_LAYOUT.KERNEL_RODATA]);
    expect(mix(builtinWorkload("toggle_cr0_wp", { iterations: 10, write: false }))).toEqual({
      movToCr0: 20,
      iteration: 10,
    });
  });

  it("cr3_switch visits every process each round, optionally with PCIDs and no-flush", () => {
    const program = builtinWorkload("cr3_switch", { iterations: 5, processes: 6, pages: 3 });
    expect(program.setup.addressSpaces).toHaveLength(6);
    expect(mix(program)).toEqual({ movToCr3: 30, read: 90, write: 30, compute: 30, iteration: 30 });
    expect(distinct(program, OP.MOV_TO_CR3, CR_SLOT.SPACE)).toEqual([0, 1, 2, 3, 4, 5]);
    const gpas = program.setup.addressSpaces.map((s) => s.mappings.at(-1)?.gpa);
    expect(new Set(gpas).size).toBe(6);
    const pcid = builtinWorkload("cr3_switch", { pcid: true, processes: 2 });
    expect(pcid.setup.addressSpaces.map((s) => s.pcid)).toEqual([1, 2]);
    expect(distinct(pcid, OP.MOV_TO_CR3, CR_SLOT.FLAGS)).toEqual([3]);
  });

  it("touch_memory touches N distinct pages once, then re-touches them per extra pass", () => {
    const program = builtinWorkload("touch_memory", { pages: 64, passes: 3 });
    expect(mix(program)).toEqual({ write: 192, iteration: 192 });
    expect(program.labels).toEqual(["first-touch", "re-touch"]);
    const cursor = new ProgramCursor(program);
    const firstPass = new Set<number>();
    for (let op = cursor.next(); op !== CURSOR_END && firstPass.size < 64; op = cursor.next()) {
      if (op === OP.WRITE) firstPass.add(cursor.gvaLo);
    }
    expect(firstPass.size).toBe(64);
    expect(Math.min(...firstPass)).toBe(BUILTIN_LAYOUT.HIGH_BASE);
    expect(Math.max(...firstPass)).toBe(BUILTIN_LAYOUT.HIGH_BASE + 63 * 4096);
    expect(mix(builtinWorkload("touch_memory", { pages: 8, write: false }))).toEqual({
      read: 8,
      iteration: 8,
    });
  });

  it("mixed has one of each exiting kind per tick", () => {
    const program = builtinWorkload("mixed", { iterations: 2 });
    expect(mix(program)).toEqual({
      iteration: 2,
      compute: 2,
      read: 18,
      write: 4,
      cpuid: 2,
      rdmsr: 2,
      wrmsr: 2,
      out: 2,
      in: 2,
      movToCr3: 4,
      invlpg: 2,
      movToCr0: 4,
      vmcall: 2,
    });
    expect(distinct(program, OP.RDMSR, MSR_SLOT.INDEX)).toEqual([MSR.IA32_TSC_ADJUST]);
  });

  it("can be saved as workload files and loaded back", () => {
    for (const name of BUILTIN_WORKLOAD_NAMES) {
      const builder = builtinWorkloadBuilder(name);
      const loaded = loadWorkload(workloadToJson(builder.toSpec()), `${name}.json`);
      expect(Array.from(loaded.operands)).toEqual(Array.from(builder.build().operands));
    }
  });
});

describe("built-in parameters", () => {
  it("fill defaults and parse command-line strings", () => {
    const builtin = findBuiltinWorkload("cr3_switch");
    expect(resolveBuiltinParameters(builtin)).toEqual({
      level: 2,
      iterations: 1000,
      processes: 4,
      pages: 4,
      pcid: false,
      compute: 1000,
    });
    expect(resolveBuiltinParameters(builtin, { processes: "0x8", pcid: "true", level: "3" })).toMatchObject({
      processes: 8,
      pcid: true,
      level: 3,
    });
  });

  it("reject unknown names and bad values, with suggestions", () => {
    expect(() => findBuiltinWorkload("cpuidd")).toThrow(
      'unknown built-in workload "cpuidd" (did you mean "cpuid"?)',
    );
    expect(() => builtinWorkload("touch_memory", { page: 3 })).toThrow(
      'parameters.page: unknown parameter "page" (did you mean "pages"?); touch_memory takes level, pages, passes, write',
    );
    expect(() => builtinWorkload("cpuid", { level: 4 })).toThrow(WorkloadBuildError);
    expect(() => builtinWorkload("cpuid", { level: 4 })).toThrow(
      "parameters.level: expected an integer in [1, 3], got 4",
    );
    expect(() => builtinWorkload("toggle_cr0_wp", { write: "maybe" })).toThrow(
      'parameters.write: expected true or false, got "maybe"',
    );
    expect(() => builtinWorkload("cpuid", { iterations: "lots" })).toThrow(/parameters.iterations/);
  });
});
