import type { TlbStats } from "@nestvisor/x86-arch";
import { CostAccumulator } from "./cost-accumulator";
import { type CostAttribution, costAttribution } from "./cost-attribution";
import type { CostProfile } from "./cost-profile";
import { costProfile } from "./cost-profiles";
import { compileCostTable } from "./cost-table";
import { GPR } from "./guest-context";
import type { KvmConfig } from "./hypervisor-config";
import type { Kvm } from "./kvm";
import { Machine } from "./machine";
import { inMmioWindow } from "./mmio-devices";
import type { ModelPolicies } from "./model-policies";
import { NOOP_TRACER, type Tracer } from "./tracer";
import { hex64, type WorkloadProgram } from "./workload-ops";

/**
 * What a guest can observe at the end of a run (DESIGN.md §2.3): equal snapshots under two flag
 * settings are the proof that an optimization is legal. Counts and cycles are not in it.
 */
export interface GuestStateSnapshot {
  /** FNV-1a over every value the workload read (memory, CPUID, RDMSR, IN, CR reads), in order. */
  readonly readDigest: number;
  readonly guestFaults: number;
  readonly operations: number;
  readonly iterations: number;
  /** The workload vCPU's general-purpose registers RAX..RDI as hex strings. */
  readonly gprs: readonly string[];
  /** Each level's vmcs12 as its guest hypervisor would read it back (only the fields KVM syncs), hex. */
  readonly vmcs12: readonly Readonly<Record<string, string>>[];
  /** FNV-1a over the workload's RAM (the pages it mapped). */
  readonly memoryDigest: number;
  /**
   * FNV-1a over the state of the MMIO devices of the workload's own KVM (`mmio-devices.ts`): the
   * IOAPIC's registers, the VMM's register page and the doorbell's signal count.
   */
  readonly deviceDigest: number;
}

export interface RunOptions {
  readonly program: WorkloadProgram;
  readonly config: KvmConfig;
  /** Configuration of the guest hypervisors (default: `config`); see `MachineOptions.innerConfig`. */
  readonly innerConfig?: KvmConfig;
  /** Cost profile (default: the built-in `intel-server`). */
  readonly profile?: CostProfile;
  readonly tracer?: Tracer;
  /** Policies replacing KVM's at every level (see `ModelPolicies`). */
  readonly policies?: ModelPolicies;
}

export interface RunResult {
  readonly workload: string;
  readonly level: number;
  /** ITERATION markers passed (at least 1 is assumed for per-iteration figures). */
  readonly iterations: number;
  readonly totalCycles: number;
  readonly cyclesPerIteration: number;
  readonly attribution: CostAttribution;
  /** Event counts by name, for the whole run. */
  readonly counts: Readonly<Record<string, number>>;
  readonly snapshot: GuestStateSnapshot;
  /**
   * The processor's TLB over the run (boot excluded): hits, misses, inserts and invalidations by
   * kind. Its entries live within one run of guest code: every VM exit evicts them.
   */
  readonly tlb: TlbStats;
  /** Wall-clock milliseconds spent simulating (boot excluded). */
  readonly wallMs: number;
}

/**
 * Boots a machine for the workload, runs it to the end and reports: cycles per iteration, cycles by
 * level and exit reason with exit latencies, every event count, and the guest-visible snapshot.
 * The boot (VMXON, VMCS set-up, first entries) is not counted.
 */
export function runWorkload(options: RunOptions): RunResult {
  const profile = options.profile ?? costProfile();
  const accumulator = new CostAccumulator(compileCostTable(profile));
  const machine = new Machine({
    program: options.program,
    config: options.config,
    ...(options.innerConfig === undefined ? {} : { innerConfig: options.innerConfig }),
    ...(options.policies === undefined ? {} : { policies: options.policies }),
    meter: accumulator,
    tracer: options.tracer ?? NOOP_TRACER,
  });
  machine.resetAccounting();
  const start = performance.now();
  machine.run();
  const wallMs = performance.now() - start;
  const attribution = costAttribution(accumulator);
  const observations = machine.executor.observations;
  const iterations = Math.max(1, observations.iterations);
  const counts: Record<string, number> = {};
  for (const e of attribution.events) counts[e.name] = e.count;
  return {
    workload: options.program.name,
    level: machine.level,
    iterations: observations.iterations,
    totalCycles: attribution.totalCycles,
    cyclesPerIteration: attribution.totalCycles / iterations,
    attribution,
    counts,
    snapshot: guestStateSnapshot(machine),
    tlb: machine.hardware.tlb.stats(),
    wallMs,
  };
}

const SNAPSHOT_FIELDS = [
  "GUEST_RIP",
  "GUEST_RFLAGS",
  "GUEST_CR0",
  "GUEST_CR3",
  "GUEST_CR4",
  "CR0_READ_SHADOW",
  "CR4_READ_SHADOW",
  "VM_EXIT_REASON",
  "EXIT_QUALIFICATION",
  "VM_EXIT_INSTRUCTION_LEN",
  "GUEST_INTERRUPTIBILITY_INFO",
  "GUEST_CS_AR_BYTES",
];

/** The guest-visible state of a machine after a run. */
export function guestStateSnapshot(machine: Machine): GuestStateSnapshot {
  const o = machine.executor.observations;
  const leaf = machine.executor.context;
  const gprs: string[] = [];
  // From the two halves: a 64-bit register above 2^53 has no exact number form.
  for (let r = GPR.RAX; r <= GPR.RDI; r++) gprs.push(hex64(leaf.gprLo[r]!, leaf.gprHi[r]!));
  const vmcs12: Record<string, string>[] = [];
  for (let k = 0; k + 1 < machine.kvms.length; k++) {
    const kvm = machine.kvms[k]!;
    const nested = kvm.nested;
    // Fields KVM keeps current on every exit (the rare ones are synced only when L1 reads them).
    const image = nested.state.cachedVmcs12;
    const row: Record<string, string> = {};
    for (const name of SNAPSHOT_FIELDS) {
      const lo = image.read(kvm.fieldEncoding(name));
      row[name] = `0x${(image.hi * 4294967296 + Math.max(lo, 0)).toString(16)}`;
    }
    vmcs12.push(row);
  }
  const memory = machine.kvms[machine.level - 1]!.guestMemory();
  // Every page the workload's address spaces map (what it can have written), each hashed once.
  const pages = new Set<number>();
  for (const space of machine.program.setup.addressSpaces) {
    for (const m of space.mappings) {
      const bytes = m.pages * m.pageSize;
      // MMIO mappings are devices, not memory: their state is in `deviceDigest`.
      if (inMmioWindow(m.gpa, bytes)) continue;
      for (let off = 0; off < bytes; off += 4096) pages.add(m.gpa + off);
    }
  }
  let h = 0x811c9dc5;
  for (const pa of [...pages].sort((a, b) => a - b)) {
    for (let off = 0; off < 4096; off += 8) {
      const v = memory.read32(pa + off);
      if (v !== 0) h = Math.imul(h ^ v ^ (pa + off), 0x01000193) >>> 0;
    }
  }
  return {
    readDigest: o.digest,
    guestFaults: o.guestFaults,
    operations: o.operations,
    iterations: o.iterations,
    gprs,
    vmcs12,
    memoryDigest: h,
    deviceDigest: deviceDigest(machine.kvms[machine.level - 1]!),
  };
}

function deviceDigest(kvm: Kvm): number {
  let h = 0x811c9dc5;
  const mix = (v: number): void => {
    h = Math.imul(h ^ (v >>> 0), 0x01000193) >>> 0;
  };
  const ioapic = kvm.mmio.ioapic;
  mix(ioapic.ioregsel);
  mix(ioapic.id);
  for (let i = 0; i < ioapic.redirectionLo.length; i++) {
    mix(ioapic.redirectionLo[i]!);
    mix(ioapic.redirectionHi[i]!);
  }
  mix(kvm.mmio.doorbellSignals);
  const registers = kvm.mmio.vmm.registers;
  for (let i = 0; i < registers.length; i += 4) {
    mix(registers[i]! | (registers[i + 1]! << 8) | (registers[i + 2]! << 16) | (registers[i + 3]! << 24));
  }
  return h;
}
