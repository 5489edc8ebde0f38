import {
  BUILTIN_LAYOUT,
  builtinWorkload,
  type CostProfile,
  defaultControlRegisters,
  type HypervisorFlags,
  runWorkload,
  type StepsBuilder,
  type WorkloadLevel,
  type WorkloadProgram,
  workload,
} from "@nestvisor/hypervisor";
import { decodeCrAccessQualification, decodeIoQualification } from "@nestvisor/vmx";
import { CR0, MSR, PAGING_MODE } from "@nestvisor/x86-arch";
import type { TraceStats } from "./trace-stat";
import { U64Counts } from "./u64-counts";

/**
 * `nestvisor trace replay`: the trace's exit mix run through the model. Every (exiting level,
 * reason) of the trace becomes a one-operation workload that causes that exit at that level
 * (the I/O port and CR number taken from the trace's most frequent qualification); the model's
 * cycles per operation under each preset, times the trace's count, estimate what each kernel would
 * spend on the mix. In a nested trace, L1's exits for VMX instructions (VMREAD, VMRESUME, …) are the
 * work L1 does for reflected L2 exits: the model produces them itself inside the L2 round trips,
 * so they are reported as covered rather than replayed twice. Reasons with no workload operation
 * (external interrupts, preemption timer, …) are listed as not modelled.
 */

const VMX_INSTRUCTION_REASONS = new Set([
  "VMCLEAR",
  "VMLAUNCH",
  "VMPTRLD",
  "VMPTRST",
  "VMREAD",
  "VMRESUME",
  "VMWRITE",
  "VMOFF",
  "VMON",
  "INVEPT",
  "INVVPID",
  "VMFUNC",
]);

/** Guest code and data mapped as the built-ins map them. */
function base(name: string, level: number) {
  const L = BUILTIN_LAYOUT;
  return workload(name)
    .describe(`replay of ${name} exits`)
    .setup({
      level: level as WorkloadLevel,
      paging: "4-level",
      cpl: 0,
      addressSpaces: [
        {
          name: "kernel",
          mappings: [
            { gva: L.KERNEL_TEXT, pages: L.KERNEL_TEXT_PAGES, writable: false },
            { gva: L.KERNEL_DATA, pages: L.KERNEL_DATA_PAGES, executable: false },
          ],
        },
      ],
    });
}

/** How to cause one exit of a reason: the operations of one iteration and how many exits they are. */
interface Recipe {
  readonly what: string;
  /** Operations per iteration that each stand for one traced exit. */
  readonly ops: number;
  build(level: number, iterations: number): WorkloadProgram;
}

function simple(what: string, body: (b: StepsBuilder) => unknown, ops = 1): Recipe {
  return {
    what,
    ops,
    build: (level, iterations) =>
      base(what.split(" ")[0]!, level)
        .loop(iterations, (b) => {
          b.iteration("op");
          body(b);
        })
        .build(),
  };
}

const CR0_PAGED = defaultControlRegisters(PAGING_MODE.LEVEL4).cr0;

/** `q`: the low 32 bits of the most frequent qualification, if any. */
function recipeFor(reason: string, q: number | undefined): Recipe | undefined {
  switch (reason) {
    case "CPUID":
      return simple("cpuid (leaf 0)", (b) => b.cpuid(0, 0));
    case "VMCALL":
      return simple("vmcall (nr 0)", (b) => b.vmcall(0));
    case "HLT":
      return simple("hlt", (b) => b.hlt());
    case "INVLPG":
      return simple("invlpg", (b) => b.invlpg(BUILTIN_LAYOUT.KERNEL_DATA));
    case "MSR_READ":
      return simple("rdmsr IA32_TSC_ADJUST", (b) => b.rdmsr(MSR.IA32_TSC_ADJUST));
    case "MSR_WRITE":
      return simple("wrmsr IA32_TSC_ADJUST", (b) => b.wrmsr(MSR.IA32_TSC_ADJUST, 0));
    case "IO_INSTRUCTION": {
      const io = q === undefined ? undefined : decodeIoQualification(q);
      const port = io?.port ?? 0x1234;
      const size = io !== undefined && (io.bytes === 1 || io.bytes === 2 || io.bytes === 4) ? io.bytes : 4;
      const input = io?.in ?? true;
      const hex = `0x${port.toString(16)}`;
      return input
        ? simple(`in ${size}B ${hex}`, (b) => b.in(port, size))
        : simple(`out ${size}B ${hex}`, (b) => b.out(port, size, 0));
    }
    case "CR_ACCESS": {
      const cr = q === undefined ? undefined : decodeCrAccessQualification(q);
      if (cr === undefined || (cr.cr === 0 && cr.accessType === 0)) {
        return simple(
          "mov-to-cr0 (toggle WP)",
          (b) => b.movToCr0((CR0_PAGED & ~CR0.WP) >>> 0).movToCr0(CR0_PAGED),
          2,
        );
      }
      if (cr.cr === 3 && cr.accessType === 0)
        return simple("mov-to-cr3 (reload)", (b) => b.movToCr3({ reload: true }));
      if (cr.cr === 3 && cr.accessType === 1) return simple("mov-from-cr3", (b) => b.movFromCr3());
      return undefined;
    }
    case "EPT_VIOLATION":
      return {
        what: "first touch of a page",
        ops: 1,
        build: (level, iterations) =>
          builtinWorkload("touch_memory", { level, pages: Math.min(iterations, 4096) }),
      };
    default:
      return undefined;
  }
}

export interface ReplayRow {
  readonly reason: string;
  readonly level: 1 | 2;
  /** Who the trace says handled it, in a nested trace. */
  readonly handledBy: "L0" | "L1" | null;
  readonly count: number;
  readonly status: "simulated" | "covered" | "not modelled";
  readonly operation: string | null;
  /** Model cycles per traced exit, by preset. */
  readonly cyclesPerExit: Readonly<Record<string, number>>;
  /** Model exits of this reason per operation, by preset (0: the preset would not exit at all). */
  readonly exitsPerOperation: Readonly<Record<string, number>>;
  /** Share of L2 exits that reach L1 in the model (reflected, or EPT violations L0 passes on), by preset (L2 rows only). */
  readonly reflected: Readonly<Record<string, number>>;
  readonly totalCycles: Readonly<Record<string, number>>;
  /** Measured time of these exits in the trace, µs (kvm_exit to kvm_entry), if timed. */
  readonly traceUs: number | null;
}

export interface ReplayPreset {
  readonly name: string;
  readonly flags: HypervisorFlags;
}

export interface ReplayOptions {
  readonly presets: readonly ReplayPreset[];
  readonly profile: CostProfile;
  readonly iterations: number;
  readonly onRun?: (done: number, total: number, what: string) => void;
}

/** The low 32 bits of the most frequent value (of equals, the first seen), or undefined. */
function mostFrequentLow(counts: U64Counts): number | undefined {
  const slot = counts.mostFrequent();
  return slot < 0 ? undefined : counts.los[slot];
}

export function replayTrace(stats: TraceStats, options: ReplayOptions): ReplayRow[] {
  interface Bucket {
    reason: string;
    level: 1 | 2;
    handledBy: "L0" | "L1" | null;
    count: number;
    quals: U64Counts;
    us: number;
    timed: boolean;
  }
  const buckets = new Map<string, Bucket>();
  for (const g of stats.groups) {
    const level = g.exitingLevel === "L2" ? 2 : 1;
    const handledBy = stats.nested ? g.handledBy : null;
    const id = `${level}/${handledBy}/${g.reason}`;
    const b = buckets.get(id) ?? {
      reason: g.reason,
      level,
      handledBy,
      count: 0,
      quals: new U64Counts(),
      us: 0,
      timed: false,
    };
    b.count += g.count;
    const q = g.qualifications;
    for (let i = 0; i < q.size; i++) b.quals.add(q.los[i]!, q.his[i]!, q.counts[i]!);
    for (const d of g.durations) b.us += d;
    if (g.durations.length > 0) b.timed = true;
    buckets.set(id, b);
  }
  const list = [...buckets.values()].sort((a, b) => b.count - a.count);
  const simulations = new Map<string, { perOp: number; exitsPerOp: number; reflected: number }>();
  const plan = list.map((b) => ({
    b,
    recipe:
      stats.nested && b.level === 1 && VMX_INSTRUCTION_REASONS.has(b.reason)
        ? null
        : recipeFor(b.reason, mostFrequentLow(b.quals)),
  }));
  const total = plan.filter((p) => p.recipe).length * options.presets.length;
  let done = 0;
  return plan.map(({ b, recipe }): ReplayRow => {
    const covered = recipe === null;
    const row = {
      reason: b.reason,
      level: b.level,
      handledBy: b.handledBy,
      count: b.count,
      status: covered ? "covered" : recipe === undefined ? "not modelled" : "simulated",
      operation: recipe?.what ?? null,
      cyclesPerExit: {} as Record<string, number>,
      exitsPerOperation: {} as Record<string, number>,
      reflected: {} as Record<string, number>,
      totalCycles: {} as Record<string, number>,
      traceUs: b.timed ? b.us : null,
    } satisfies ReplayRow;
    if (!recipe) return row;
    for (const preset of options.presets) {
      const key = `${preset.name}/${b.level}/${recipe.what}`;
      let sim = simulations.get(key);
      if (sim === undefined) {
        options.onRun?.(done, total, `${b.reason} at L${b.level} under ${preset.name}`);
        const program = recipe.build(b.level, options.iterations);
        const result = runWorkload({ program, config: preset.flags, profile: options.profile });
        const iterations = Math.max(1, result.iterations);
        const ops = iterations * recipe.ops;
        const exits = result.attribution.exits
          .filter((e) => e.level === b.level && e.name === b.reason)
          .reduce((a, e) => a + e.count, 0);
        // Every L2 exit is counted once as reflected or handled by L0; an EPT violation L0 handled and
        // then gave to L1 (EPT12 lacks the mapping) reached L1 too.
        const reflectedCount = result.counts.NESTED_EXIT_REFLECTED ?? 0;
        const handledByL0 = result.counts.NESTED_EXIT_HANDLED_BY_L0 ?? 0;
        const reachedL1 = reflectedCount + (result.counts.NESTED_EPT_FAULT_INJECTED ?? 0);
        sim = {
          perOp: result.totalCycles / ops,
          exitsPerOp: exits / ops,
          reflected: reflectedCount + handledByL0 === 0 ? 0 : reachedL1 / (reflectedCount + handledByL0),
        };
        simulations.set(key, sim);
      }
      done++;
      row.cyclesPerExit[preset.name] = sim.perOp;
      row.exitsPerOperation[preset.name] = sim.exitsPerOp;
      if (b.level === 2) row.reflected[preset.name] = sim.reflected;
      row.totalCycles[preset.name] = sim.perOp * b.count;
    }
    return row;
  });
}
