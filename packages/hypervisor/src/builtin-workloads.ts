/**
 * Built-in workloads. The first six mirror tests of kvm-unit-tests' `x86/vmexit.c` (same names,
 * same exiting instruction, same port and width; the behaviour is ported, not the code):
 *
 * | name              | kvm-unit-tests does                 | exit            | completed by                      |
 * |-------------------|-------------------------------------|-----------------|-----------------------------------|
 * | cpuid             | CPUID (EAX left as is; here leaf 0) | CPUID           | KVM                               |
 * | vmcall            | VMCALL with RAX = 0                 | VMCALL          | KVM (nr 0 is not a hypercall: -KVM_ENOSYS) |
 * | inl_from_kernel   | `inb` from port 0x4d0 (1 byte!)     | IO_INSTRUCTION  | KVM's in-kernel PIC (ELCR)         |
 * | outl_to_kernel    | `outb` 0 to port 0x4d0 (1 byte!)    | IO_INSTRUCTION  | KVM's in-kernel PIC (ELCR)         |
 * | inl_from_qemu     | `inl` from port 0x1234              | IO_INSTRUCTION  | userspace (KVM_EXIT_IO, no device) |
 * | inl_from_pmtimer  | `inl` from the ACPI PM timer port   | IO_INSTRUCTION  | userspace (QEMU's ACPI PM timer)   |
 *
 * Port facts: KVM's in-kernel PIC claims ports 0x20/0x21, 0xa0/0xa1 and the ELCR pair 0x4d0/0x4d1,
 * and serves byte accesses only (kvm: picdev_in_range, picdev_read). Port 0x1234 belongs to no
 * device, so KVM exits to the VMM. The ACPI PM timer is a QEMU device, not a KVM one: older
 * kvm-unit-tests read the fixed port 0xb008 (PIIX4 PM base 0xb000 + 8), current ones read the port
 * from the FADT's PM_TMR_BLK; either way the read completes in userspace.
 *
 * Three MMIO counterparts of the port-I/O tests are ours (kvm-unit-tests' vmexit has none on x86):
 *
 * | name              | the guest does                      | exit (EPT)      | completed by                      |
 * |-------------------|-------------------------------------|-----------------|-----------------------------------|
 * | mmio_from_kernel  | 4-byte load of the IOAPIC's IOREGSEL| EPT_MISCONFIG   | KVM's in-kernel IOAPIC, after instruction emulation |
 * | mmio_to_eventfd   | 2-byte store to a virtio doorbell   | EPT_MISCONFIG   | KVM's fast MMIO bus (an ioeventfd of length 0), no decode |
 * | mmio_from_qemu    | 4-byte load of a VMM register       | EPT_MISCONFIG   | userspace (KVM_EXIT_MMIO)         |
 *
 * The first access to each device page is an EPT violation that caches an MMIO SPTE; later ones are
 * EPT misconfigurations (without EPT: #PF exits with the reserved bit). The device pages are
 * identity-mapped like the kernel (`mmio-devices.ts` has the devices).
 *
 * The other four are ours: `toggle_cr0_wp` (kvm-unit-tests has a test of that name that only
 * toggles; ours adds the write to a read-only page between the toggles, the grsecurity kernel W^X
 * pattern of seed 001), `cr3_switch` (processes switching address spaces: the root-cache traffic
 * of seeds 002/004), `touch_memory` (first-touch faults over N pages) and `mixed`.
 *
 * Every built-in takes `level` (1, 2 or 3: where the guest runs) and most take `iterations`.
 */

import type { ExitReasonName } from "@nestvisor/vmx";
import { CR0, MSR, PAGE_SIZE, PAGING_MODE } from "@nestvisor/x86-arch";
import { DOORBELL_ADDRESS, IOAPIC_BASE, VMM_REGISTERS_BASE } from "./mmio-devices";
import { didYouMeanSuffix } from "./name-suggestion";
import { type StepsBuilder, type WorkloadBuilder, workload } from "./workload-builder";
import {
  DEFAULT_LEVEL,
  DEFAULT_MEMORY_BYTES,
  defaultControlRegisters,
  WorkloadBuildError,
} from "./workload-compiler";
import type { WorkloadLevel, WorkloadProgram } from "./workload-ops";
import { type AddressSpaceSpec, type MappingSpec, parseInteger } from "./workload-spec";

/** The I/O ports the built-ins use, with who completes an access to them under KVM + QEMU. */
export const BUILTIN_PORTS = Object.freeze({
  /** ELCR of the master PIC: KVM's in-kernel PIC (kvm: picdev_read/picdev_write, byte accesses only). */
  ELCR_MASTER: 0x4d0,
  /** No device: KVM exits to userspace (KVM_EXIT_IO), QEMU answers all-ones. */
  UNASSIGNED: 0x1234,
  /** ACPI PM timer of QEMU's PIIX4 PM device at its old base 0xb000 (a userspace device). */
  ACPI_PM_TIMER: 0xb008,
});

/** Guest-virtual layout of the built-ins' kernel (identity-mapped: GPA = GVA). */
export const BUILTIN_LAYOUT = Object.freeze({
  KERNEL_TEXT: 0x0010_0000,
  KERNEL_TEXT_PAGES: 16,
  /** Read-only kernel data: what the grsecurity pattern writes with CR0.WP clear. */
  KERNEL_RODATA: 0x0020_0000,
  KERNEL_RODATA_PAGES: 16,
  KERNEL_DATA: 0x0030_0000,
  KERNEL_DATA_PAGES: 256,
  /** Per-process user pages (`cr3_switch`, `mixed`), at the same GVA in every process. */
  USER_BASE: 0x0040_0000,
  /** Guest-physical home of the first process's user pages; `touch_memory`'s region. */
  HIGH_BASE: 0x0100_0000,
});

export type BuiltinParameter =
  | {
      readonly kind: "integer";
      readonly min: number;
      readonly max: number;
      readonly default: number;
      readonly description: string;
    }
  | { readonly kind: "boolean"; readonly default: boolean; readonly description: string };

export type BuiltinParameterValues = Readonly<Record<string, number | boolean>>;

export interface BuiltinWorkload {
  readonly name: string;
  /** One line. */
  readonly description: string;
  /** The exit reasons it is written to cause (which of them occur depends on level and flags). */
  readonly exercises: readonly ExitReasonName[];
  /** What it mirrors, when it mirrors something. */
  readonly mirrors?: string;
  readonly parameters: Readonly<Record<string, BuiltinParameter>>;
  /** The workload for fully resolved parameter values (see `builtinWorkloadBuilder`). */
  build(values: BuiltinParameterValues): WorkloadBuilder;
}

const LEVEL: BuiltinParameter = {
  kind: "integer",
  min: 1,
  max: 3,
  default: DEFAULT_LEVEL,
  description: "level the guest runs at: 1, 2 (nested) or 3",
};
const ITERATIONS: BuiltinParameter = {
  kind: "integer",
  min: 1,
  max: 0xffffffff,
  default: 1000,
  description: "iterations",
};

const CR0_PAGED = defaultControlRegisters(PAGING_MODE.LEVEL4).cr0;

function kernelMappings(): MappingSpec[] {
  const L = BUILTIN_LAYOUT;
  return [
    { gva: L.KERNEL_TEXT, pages: L.KERNEL_TEXT_PAGES, writable: false },
    { gva: L.KERNEL_RODATA, pages: L.KERNEL_RODATA_PAGES, writable: false, executable: false },
    { gva: L.KERNEL_DATA, pages: L.KERNEL_DATA_PAGES, executable: false },
  ];
}

function kernelWorkload(
  name: string,
  description: string,
  level: number,
  extra: MappingSpec[] = [],
  memory = DEFAULT_MEMORY_BYTES,
): WorkloadBuilder {
  return workload(name)
    .describe(description)
    .setup({
      level: level as WorkloadLevel,
      paging: "4-level",
      memory,
      cpl: 0,
      addressSpaces: [{ name: "kernel", mappings: [...kernelMappings(), ...extra] }],
    });
}

/** The device pages of the MMIO built-ins, identity-mapped (GVA = GPA), never executable. */
function devicePageMappings(): MappingSpec[] {
  return [VMM_REGISTERS_BASE, DOORBELL_ADDRESS, IOAPIC_BASE].map((gpa) => ({
    gva: gpa,
    gpa,
    pages: 1,
    executable: false,
  }));
}

function int(values: BuiltinParameterValues, key: string): number {
  return values[key] as number;
}

function single(
  name: string,
  description: string,
  exercises: readonly ExitReasonName[],
  mirrors: string,
  body: (b: StepsBuilder) => unknown,
  extra: MappingSpec[] = [],
): BuiltinWorkload {
  return {
    name,
    description,
    exercises,
    mirrors,
    parameters: { level: LEVEL, iterations: ITERATIONS },
    build: (values) =>
      kernelWorkload(name, description, int(values, "level"), extra).loop(int(values, "iterations"), (b) => {
        b.iteration(name);
        body(b);
      }),
  };
}

const UNIT_TESTS = "kvm-unit-tests x86/vmexit.c";

/** Per-process user mappings for `cr3_switch` and `mixed`: the same GVA, a different GPA each. */
function processSpaces(count: number, pages: number, pcid: boolean): AddressSpaceSpec[] {
  const spaces: AddressSpaceSpec[] = [];
  for (let p = 0; p < count; p++) {
    spaces.push({
      name: `proc${p}`,
      ...(pcid ? { pcid: p + 1 } : {}),
      mappings: [
        ...kernelMappings(),
        {
          gva: BUILTIN_LAYOUT.USER_BASE,
          gpa: BUILTIN_LAYOUT.HIGH_BASE + p * pages * PAGE_SIZE,
          pages,
          user: true,
          executable: false,
        },
      ],
    });
  }
  return spaces;
}

function roundUpMemory(bytes: number): number {
  const step = 2 ** 21;
  return Math.max(DEFAULT_MEMORY_BYTES, Math.ceil(bytes / step) * step);
}

const TOGGLE_CR0_WP: BuiltinWorkload = {
  name: "toggle_cr0_wp",
  description:
    "grsecurity kernel W^X (seed 001): clear CR0.WP, write read-only kernel data, set CR0.WP again",
  exercises: ["CR_ACCESS"],
  mirrors: `${UNIT_TESTS}: toggle_cr0_wp (which only toggles; set write=false for that)`,
  parameters: {
    level: LEVEL,
    iterations: ITERATIONS,
    write: { kind: "boolean", default: true, description: "write the read-only page between the toggles" },
  },
  build: (values) =>
    kernelWorkload(TOGGLE_CR0_WP.name, TOGGLE_CR0_WP.description, int(values, "level")).loop(
      int(values, "iterations"),
      (b) => {
        b.iteration("toggle");
        // With CR0.WP = 0 a supervisor write ignores R/W (SDM 4.6.1): the W^X "open" window.
        b.movToCr0((CR0_PAGED & ~CR0.WP) >>> 0);
        if (values.write === true) b.write(BUILTIN_LAYOUT.KERNEL_RODATA, { size: 8, value: 1 });
        b.movToCr0(CR0_PAGED);
      },
    ),
};

const CR3_SWITCH: BuiltinWorkload = {
  name: "cr3_switch",
  description: "processes take turns: MOV to CR3 of the next address space, touch its user pages, compute",
  exercises: ["CR_ACCESS", "EPT_VIOLATION"],
  mirrors: "seeds 002/004: fast CR3 switch and the 3-entry previous-root cache (kvm: KVM_MMU_NUM_PREV_ROOTS)",
  parameters: {
    level: LEVEL,
    iterations: { ...ITERATIONS, description: "rounds (each switches to every process once)" },
    processes: {
      kind: "integer",
      min: 1,
      max: 64,
      default: 4,
      description: "address spaces; 4 = current root + 3 cached previous roots, 5 or more thrash the cache",
    },
    pages: {
      kind: "integer",
      min: 1,
      max: 4096,
      default: 4,
      description: "user pages each process reads per turn",
    },
    pcid: {
      kind: "boolean",
      default: false,
      description: "give each process a PCID and switch with no-flush",
    },
    compute: { kind: "integer", min: 0, max: 1e9, default: 1000, description: "cycles of work per turn" },
  },
  build: (values) => {
    const processes = int(values, "processes");
    const pages = int(values, "pages");
    const pcid = values.pcid === true;
    return workload(CR3_SWITCH.name)
      .describe(CR3_SWITCH.description)
      .setup({
        level: int(values, "level") as WorkloadLevel,
        paging: "4-level",
        memory: roundUpMemory(BUILTIN_LAYOUT.HIGH_BASE + processes * pages * PAGE_SIZE),
        cpl: 0,
        addressSpaces: processSpaces(processes, pages, pcid),
        initialAddressSpace: "proc0",
      })
      .loop(int(values, "iterations"), (b) => {
        for (let p = 0; p < processes; p++) {
          b.iteration("switch");
          b.movToCr3({ space: `proc${p}` }, pcid ? { noFlush: true } : {});
          b.loop(pages, (inner) => inner.read(BUILTIN_LAYOUT.USER_BASE, { size: 8, stride: PAGE_SIZE }));
          b.write(BUILTIN_LAYOUT.USER_BASE, { size: 8, value: p });
          if (int(values, "compute") > 0) b.compute(int(values, "compute"));
        }
      });
  },
};

const TOUCH_MEMORY: BuiltinWorkload = {
  name: "touch_memory",
  description:
    "first touch of N fresh pages (each one an EPT violation or shadow fault), then optional re-touches",
  exercises: ["EPT_VIOLATION", "EXCEPTION_NMI"],
  mirrors: "cloud-hypervisor#6060: every new-page touch in a nested VM exits through L0 and L1",
  parameters: {
    level: LEVEL,
    // At most 512 MiB: the page tables for more (EPT or shadow, at every level) outgrow the 8-MiB
    // pool each KVM keeps for them (KVM_PRIVATE_BYTES).
    pages: {
      kind: "integer",
      min: 1,
      max: 2 ** 17,
      default: 512,
      description: "4 KiB pages touched (at most 512 MiB)",
    },
    passes: {
      kind: "integer",
      min: 1,
      max: 1000,
      default: 1,
      description: "passes over the pages (the first faults)",
    },
    write: { kind: "boolean", default: true, description: "touch by writing (false: by reading)" },
  },
  build: (values) => {
    const pages = int(values, "pages");
    const passes = int(values, "passes");
    const base = BUILTIN_LAYOUT.HIGH_BASE;
    const touch = (b: StepsBuilder, label: string) =>
      b.loop(pages, (inner) => {
        inner.iteration(label);
        if (values.write === true) inner.write(base, { size: 8, value: 1, stride: PAGE_SIZE });
        else inner.read(base, { size: 8, stride: PAGE_SIZE });
      });
    const builder = kernelWorkload(
      TOUCH_MEMORY.name,
      TOUCH_MEMORY.description,
      int(values, "level"),
      [{ gva: base, pages, executable: false }],
      roundUpMemory(base + pages * PAGE_SIZE),
    );
    touch(builder, "first-touch");
    if (passes > 1) builder.loop(passes - 1, (b) => touch(b, "re-touch"));
    return builder;
  },
};

const MIXED: BuiltinWorkload = {
  name: "mixed",
  description:
    "a kernel tick: compute, user and kernel memory, CPUID, MSRs, in-kernel and userspace I/O, a process switch, INVLPG, a W^X toggle, a hypercall",
  exercises: [
    "CPUID",
    "MSR_READ",
    "MSR_WRITE",
    "IO_INSTRUCTION",
    "CR_ACCESS",
    "INVLPG",
    "VMCALL",
    "EPT_VIOLATION",
  ],
  parameters: { level: LEVEL, iterations: ITERATIONS },
  build: (values) => {
    const L = BUILTIN_LAYOUT;
    const userPages = 8;
    return workload(MIXED.name)
      .describe(MIXED.description)
      .setup({
        level: int(values, "level") as WorkloadLevel,
        paging: "4-level",
        memory: roundUpMemory(L.HIGH_BASE + 2 * userPages * PAGE_SIZE),
        cpl: 0,
        addressSpaces: processSpaces(2, userPages, false),
        initialAddressSpace: "proc0",
      })
      .loop(int(values, "iterations"), (b) =>
        b
          .iteration("tick")
          .compute(5000)
          .loop(userPages, (inner) => inner.read(L.USER_BASE, { size: 8, stride: PAGE_SIZE }))
          .write(L.KERNEL_DATA, { size: 8, value: 1 })
          .cpuid(1)
          .rdmsr(MSR.IA32_TSC_ADJUST)
          .wrmsr(MSR.IA32_KERNEL_GS_BASE, 0)
          .out(BUILTIN_PORTS.ELCR_MASTER, 1, 0)
          .in(BUILTIN_PORTS.UNASSIGNED, 4)
          .movToCr3({ space: "proc1" })
          .read(L.USER_BASE, { size: 8 })
          .movToCr3({ space: "proc0" })
          .invlpg(L.USER_BASE)
          .movToCr0((CR0_PAGED & ~CR0.WP) >>> 0)
          .write(L.KERNEL_RODATA, { size: 8, value: 2 })
          .movToCr0(CR0_PAGED)
          .vmcall(0),
      );
  },
};

/** The built-ins, in the order of the table above. */
export const BUILTIN_WORKLOADS: readonly BuiltinWorkload[] = Object.freeze([
  single(
    "cpuid",
    "CPUID leaf 0 in a loop: the canonical exit round trip",
    ["CPUID"],
    `${UNIT_TESTS}: cpuid`,
    (b) => b.cpuid(0, 0),
  ),
  single(
    "vmcall",
    "VMCALL with RAX = 0 (not a KVM hypercall, so KVM returns -KVM_ENOSYS) in a loop",
    ["VMCALL"],
    `${UNIT_TESTS}: vmcall`,
    (b) => b.vmcall(0),
  ),
  single(
    "inl_from_kernel",
    "1-byte IN from port 0x4d0 (ELCR), completed by KVM's in-kernel PIC",
    ["IO_INSTRUCTION"],
    `${UNIT_TESTS}: inl_from_kernel (an inb despite the name)`,
    (b) => b.in(BUILTIN_PORTS.ELCR_MASTER, 1),
  ),
  single(
    "outl_to_kernel",
    "1-byte OUT of 0 to port 0x4d0 (ELCR), completed by KVM's in-kernel PIC",
    ["IO_INSTRUCTION"],
    `${UNIT_TESTS}: outl_to_kernel (an outb despite the name)`,
    (b) => b.out(BUILTIN_PORTS.ELCR_MASTER, 1, 0),
  ),
  single(
    "inl_from_qemu",
    "4-byte IN from port 0x1234, which no device claims: an exit to userspace (KVM_EXIT_IO)",
    ["IO_INSTRUCTION"],
    `${UNIT_TESTS}: inl_from_qemu`,
    (b) => b.in(BUILTIN_PORTS.UNASSIGNED, 4),
  ),
  single(
    "inl_from_pmtimer",
    "4-byte IN from the ACPI PM timer (port 0xb008), a QEMU device: an exit to userspace",
    ["IO_INSTRUCTION"],
    `${UNIT_TESTS}: inl_from_pmtimer (port from the FADT in current versions, 0xb008 in old ones)`,
    (b) => b.in(BUILTIN_PORTS.ACPI_PM_TIMER, 4),
  ),
  TOGGLE_CR0_WP,
  CR3_SWITCH,
  TOUCH_MEMORY,
  MIXED,
  single(
    "mmio_from_kernel",
    "4-byte load of the IOAPIC's IOREGSEL (0xfec00000), completed by KVM's in-kernel IOAPIC after emulating the instruction",
    ["EPT_MISCONFIG"],
    `${UNIT_TESTS}: inl_from_kernel, as an MMIO load (vmexit.c has no MMIO test on x86)`,
    (b) => b.read(IOAPIC_BASE, { size: 4 }),
    devicePageMappings(),
  ),
  single(
    "mmio_to_eventfd",
    "2-byte store to a virtio-pci doorbell (0xfe003000) with an ioeventfd of length 0: KVM's fast MMIO path, no instruction decode on bare metal",
    ["EPT_MISCONFIG"],
    "commit 68c3b4d1676d (KVM_FAST_MMIO_BUS): a virtio 1.0 notification, 'essentially as fast as PIO' with EPT",
    (b) => b.write(DOORBELL_ADDRESS, { size: 2, value: 0 }),
    devicePageMappings(),
  ),
  single(
    "mmio_from_qemu",
    "4-byte load of a register of the VMM's device (0xfe000000): emulated by KVM, completed in userspace (KVM_EXIT_MMIO)",
    ["EPT_MISCONFIG"],
    `${UNIT_TESTS}: inl_from_qemu, as an MMIO load`,
    (b) => b.read(VMM_REGISTERS_BASE, { size: 4 }),
    devicePageMappings(),
  ),
]);

/** Names of the built-ins. */
export const BUILTIN_WORKLOAD_NAMES: readonly string[] = Object.freeze(BUILTIN_WORKLOADS.map((w) => w.name));

/** The built-in named `name`; throws a RangeError with a suggestion when there is none. */
export function findBuiltinWorkload(name: string): BuiltinWorkload {
  const found = BUILTIN_WORKLOADS.find((w) => w.name === name);
  if (found === undefined) {
    throw new RangeError(
      `unknown built-in workload "${name}"${didYouMeanSuffix(name, BUILTIN_WORKLOAD_NAMES)}; built-ins: ${BUILTIN_WORKLOAD_NAMES.join(", ")}`,
    );
  }
  return found;
}

function parameterValue(
  workloadName: string,
  key: string,
  info: BuiltinParameter,
  raw: number | boolean | string,
): number | boolean {
  const fail = (): never => {
    const expected = info.kind === "boolean" ? "true or false" : `an integer in [${info.min}, ${info.max}]`;
    throw new WorkloadBuildError(workloadName, [
      {
        path: `parameters.${key}`,
        message: `expected ${expected}, got ${typeof raw === "string" ? JSON.stringify(raw) : String(raw)}`,
      },
    ]);
  };
  if (info.kind === "boolean") {
    if (typeof raw === "boolean") return raw;
    if (raw === "true" || raw === "1" || raw === 1) return true;
    if (raw === "false" || raw === "0" || raw === 0) return false;
    return fail();
  }
  let value: number | undefined;
  if (typeof raw === "number") value = raw;
  else if (typeof raw === "string") {
    const big = parseInteger(raw);
    value = big === undefined || big > BigInt(Number.MAX_SAFE_INTEGER) ? undefined : Number(big);
  }
  if (value === undefined || !Number.isInteger(value) || value < info.min || value > info.max) return fail();
  return value;
}

/**
 * Resolves parameters for a built-in: defaults filled in, strings (from a command line) parsed,
 * unknown names and bad values rejected with a `WorkloadBuildError` naming `parameters.<name>`.
 */
export function resolveBuiltinParameters(
  builtin: BuiltinWorkload,
  parameters: Readonly<Record<string, number | boolean | string>> = {},
): BuiltinParameterValues {
  const values: Record<string, number | boolean> = {};
  for (const key of Object.keys(parameters)) {
    if (!(key in builtin.parameters)) {
      throw new WorkloadBuildError(builtin.name, [
        {
          path: `parameters.${key}`,
          message: `unknown parameter "${key}"${didYouMeanSuffix(key, Object.keys(builtin.parameters))}; ${builtin.name} takes ${Object.keys(builtin.parameters).join(", ")}`,
        },
      ]);
    }
  }
  for (const [key, info] of Object.entries(builtin.parameters)) {
    const raw = parameters[key];
    values[key] = raw === undefined ? info.default : parameterValue(builtin.name, key, info, raw);
  }
  return Object.freeze(values);
}

/** The builder of a built-in (for its document: `.toSpec()`), with parameters resolved. */
export function builtinWorkloadBuilder(
  name: string,
  parameters?: Readonly<Record<string, number | boolean | string>>,
): WorkloadBuilder {
  const builtin = findBuiltinWorkload(name);
  return builtin.build(resolveBuiltinParameters(builtin, parameters));
}

/** A built-in workload compiled, e.g. `builtinWorkload("touch_memory", { pages: 1024, level: 2 })`. */
export function builtinWorkload(
  name: string,
  parameters?: Readonly<Record<string, number | boolean | string>>,
): WorkloadProgram {
  return builtinWorkloadBuilder(name, parameters).build();
}
