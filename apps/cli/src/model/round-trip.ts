import {
  CostAccumulator,
  compileCostTable,
  type HypervisorModel,
  kvmPhaseInfo,
  TRACE_KIND,
  type TraceKind,
  type Tracer,
  type WorkloadProgram,
} from "@nestvisor/hypervisor";
import { exitReasonName } from "@nestvisor/vmx";
import { stepMarker } from "./kvm-steps";

/**
 * One nested round trip of a workload, cut into steps for `nestvisor explain`. The run is
 * recorded with a cost accumulator that also logs every counted event (and the level it is
 * charged to) and a tracer that logs every hardware VM exit and entry, in program order. A round
 * trip runs from a VM exit of the workload's level to the VM entry that resumes it; within it, a
 * new step starts at each hardware transition, at each change of level, and at each event that
 * marks a KVM function (`kvm-steps.ts`).
 */

type LogEntry =
  | {
      readonly type: "event";
      readonly name: string;
      readonly count: number;
      readonly cycles: number;
      readonly level: number;
    }
  | { readonly type: "exit"; readonly level: number; readonly reason: number }
  | { readonly type: "entry"; readonly level: number }
  | { readonly type: "phase"; readonly level: number; readonly phase: number };

class RecordingAccumulator extends CostAccumulator {
  recording = false;
  readonly log: LogEntry[] = [];

  override count(event: number, n = 1): void {
    if (this.recording) {
      this.log.push({
        type: "event",
        name: this.table.nameOf(event),
        count: n,
        cycles: this.table.cycles[event]! * n,
        level: this.level,
      });
    }
    super.count(event, n);
  }
}

function recordingTracer(accumulator: RecordingAccumulator): Tracer {
  return {
    enabled: true,
    begin(kind: TraceKind, level: number, code: number, _cycle: number): void {
      if (accumulator.recording && kind === TRACE_KIND.PHASE)
        accumulator.log.push({ type: "phase", level, phase: code });
    },
    end(_cycle: number): void {},
    instant(kind: TraceKind, level: number, code: number, _cycle: number): void {
      if (!accumulator.recording) return;
      if (kind === TRACE_KIND.VM_EXIT) accumulator.log.push({ type: "exit", level, reason: code & 0xffff });
      else if (kind === TRACE_KIND.VM_ENTRY) accumulator.log.push({ type: "entry", level });
    },
  };
}

export interface StepEvent {
  readonly name: string;
  readonly count: number;
  readonly cycles: number;
}

export interface Step {
  /** The level whose code or transition the step is (the exiting guest's for a VM exit). */
  readonly level: number;
  /** "L2→L0" for a VM exit, "L0→L1" for a VM entry, else undefined. */
  readonly transition?: string;
  readonly step: string;
  readonly kvm: string;
  readonly events: readonly StepEvent[];
  readonly cycles: number;
}

export interface RoundTrip {
  readonly reason: string;
  /** Index of the round trip among those of the run (0-based), and how many there were. */
  readonly index: number;
  readonly count: number;
  readonly steps: readonly Step[];
  readonly cycles: number;
  /** Cycles per level within the round trip. */
  readonly byLevel: readonly number[];
}

interface MutableStep {
  level: number;
  transition?: string;
  step: string;
  kvm: string;
  events: Map<string, { count: number; cycles: number }>;
  cycles: number;
}

function reasonName(reason: number): string {
  return exitReasonName(reason) ?? `0x${reason.toString(16)}`;
}

function cut(log: readonly LogEntry[]): Step[] {
  const steps: MutableStep[] = [];
  let current: MutableStep | undefined;
  /** `current` was opened by a KVM phase, not by a counted event. */
  let openedByPhase = false;
  const open = (level: number, step: string, kvm: string, transition?: string): MutableStep => {
    const s: MutableStep = {
      level,
      step,
      kvm,
      events: new Map(),
      cycles: 0,
      ...(transition === undefined ? {} : { transition }),
    };
    steps.push(s);
    current = s;
    openedByPhase = false;
    return s;
  };
  for (const entry of log) {
    if (entry.type === "exit") {
      const target =
        current !== undefined && current.step === "VM exit"
          ? current
          : open(entry.level, "VM exit", stepMarker("HARDWARE_VM_EXIT")!.kvm, `L${entry.level}→L0`);
      target.step = `VM exit: ${reasonName(entry.reason)}`;
      current = undefined;
      continue;
    }
    if (entry.type === "entry") {
      if (current !== undefined && current.step === "VM entry") {
        current.step = `VM entry into L${entry.level}`;
        current.transition = `L${current.level}→L${entry.level}`;
      }
      current = undefined;
      continue;
    }
    if (entry.type === "phase") {
      // A KVM function begins: a new step, unless the model re-marks the function it is in.
      const info = kvmPhaseInfo(entry.phase);
      const step = info?.step ?? `KVM phase ${entry.phase}`;
      if (current === undefined || current.step !== step || current.level !== entry.level) {
        open(entry.level, step, info?.kvm ?? "—");
        openedByPhase = true;
      }
      continue;
    }
    const marker = stepMarker(entry.name);
    if (entry.name === "HARDWARE_VM_EXIT") open(entry.level, "VM exit", marker!.kvm, `L${entry.level}→L0`);
    else if (
      marker !== undefined &&
      (current === undefined || current.step !== marker.step || current.level !== entry.level)
    ) {
      open(entry.level, marker.step, marker.kvm);
    } else if (marker !== undefined && openedByPhase) {
      // The event that a phase led up to (VMRESUME after vmx_vcpu_run's register write-back) names
      // the step's function more exactly.
      current!.kvm = marker.kvm;
      openedByPhase = false;
    } else if (current === undefined || current.level !== entry.level) {
      open(entry.level, `L${entry.level} work`, "—");
    }
    const step = current!;
    const event = step.events.get(entry.name) ?? { count: 0, cycles: 0 };
    event.count += entry.count;
    event.cycles += entry.cycles;
    step.events.set(entry.name, event);
    step.cycles += entry.cycles;
  }
  // A phase in which nothing was counted is no step (a function that had nothing to do this time).
  return steps
    .filter((s) => s.events.size > 0)
    .map((s) => ({
      level: s.level,
      ...(s.transition === undefined ? {} : { transition: s.transition }),
      step: s.step,
      kvm: s.kvm,
      events: [...s.events.entries()].map(([name, e]) => ({ name, count: e.count, cycles: e.cycles })),
      cycles: s.cycles,
    }));
}

/** Which round trip to explain: by default the first of the last iteration. */
export interface TripSelection {
  readonly reason?: string;
  /** 1-based round trip of the run (overrides the default). */
  readonly index?: number;
  /** Choose the trip with this reason and this ordinal counted from the end (used to match runs). */
  readonly fromEnd?: { readonly reason: string; readonly ordinal: number };
}

export interface RecordOptions {
  readonly program: WorkloadProgram;
  /** The model that runs the workload (its flags, profile and policies). */
  readonly model: HypervisorModel;
  readonly iterations: number;
  readonly select: TripSelection;
}

export interface Recorded {
  readonly trip: RoundTrip | undefined;
  /** The selected trip's reason and ordinal from the end among trips with that reason. */
  readonly anchor?: { readonly reason: string; readonly ordinal: number };
  readonly trips: number;
  readonly reasons: readonly string[];
}

export function recordRoundTrip(options: RecordOptions): Recorded {
  const accumulator = new RecordingAccumulator(compileCostTable(options.model.profile));
  const machine = options.model.createMachine(options.program, {
    meter: accumulator,
    tracer: recordingTracer(accumulator),
  });
  accumulator.reset();
  machine.hardware.ledger.reset();
  accumulator.setLevel(machine.level);
  accumulator.recording = true;
  machine.run();
  const log = accumulator.log;
  const level = machine.level;
  // Round trips: from the workload level's hardware exit to the entry that resumes it.
  const trips: { start: number; end: number; reason: string }[] = [];
  let start = -1;
  let reason = "";
  for (let i = 0; i < log.length; i++) {
    const e = log[i]!;
    if (e.type === "exit" && e.level === level && start < 0) {
      const previous = log[i - 1];
      start =
        previous !== undefined &&
        previous.type === "event" &&
        previous.name === "HARDWARE_VM_EXIT" &&
        previous.level === level
          ? i - 1
          : i;
      reason = reasonName(e.reason);
    } else if (e.type === "entry" && e.level === level && start >= 0) {
      trips.push({ start, end: i, reason });
      start = -1;
    }
  }
  const reasons = [...new Set(trips.map((t) => t.reason))];
  let chosen: number;
  const select = options.select;
  if (select.fromEnd !== undefined) {
    const { reason: wanted, ordinal } = select.fromEnd;
    const matching = trips.map((t, i) => ({ t, i })).filter((x) => x.t.reason === wanted);
    chosen = matching[matching.length - 1 - ordinal]?.i ?? -1;
  } else if (select.index !== undefined) chosen = select.index - 1;
  else {
    const perIteration = Math.max(1, Math.round(trips.length / Math.max(1, options.iterations)));
    let window = trips.map((_, i) => i).slice(Math.max(0, trips.length - perIteration));
    if (select.reason !== undefined) {
      const wanted = select.reason.toUpperCase();
      window = trips.map((_, i) => i).filter((i) => trips[i]!.reason === wanted);
      chosen = window[window.length - 1] ?? -1;
    } else chosen = window[0] ?? -1;
  }
  const trip = trips[chosen];
  if (trip === undefined) return { trip: undefined, trips: trips.length, reasons };
  const steps = cut(log.slice(trip.start, trip.end + 1));
  const byLevel = [0, 0, 0, 0];
  for (const s of steps) byLevel[s.level] = (byLevel[s.level] ?? 0) + s.cycles;
  const sameReason = trips.filter((t) => t.reason === trip.reason);
  const ordinal = sameReason.length - 1 - sameReason.indexOf(trip);
  return {
    trip: {
      reason: trip.reason,
      index: chosen,
      count: trips.length,
      steps,
      cycles: steps.reduce((a, s) => a + s.cycles, 0),
      byLevel,
    },
    anchor: { reason: trip.reason, ordinal },
    trips: trips.length,
    reasons,
  };
}

/** Key of a step for matching steps between two runs. */
export function stepKey(step: Step): string {
  return `${step.level}|${step.step}`;
}

/** Pairs of indices of equal keys in a longest common subsequence of two step lists. */
export function alignSteps(a: readonly Step[], b: readonly Step[]): [number, number][] {
  const n = a.length;
  const m = b.length;
  const table = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      table[i]![j] =
        stepKey(a[i]!) === stepKey(b[j]!)
          ? table[i + 1]![j + 1]! + 1
          : Math.max(table[i + 1]![j]!, table[i]![j + 1]!);
    }
  }
  const pairs: [number, number][] = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (stepKey(a[i]!) === stepKey(b[j]!)) {
      pairs.push([i, j]);
      i++;
      j++;
    } else if (table[i + 1]![j]! >= table[i]![j + 1]!) i++;
    else j++;
  }
  return pairs;
}
