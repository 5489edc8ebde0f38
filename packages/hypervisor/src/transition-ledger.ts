import type { Meter } from "@nestvisor/vmx";
import { CostAccumulator } from "./cost-accumulator";
import type { GuestContext } from "./guest-context";
import type { Tracer } from "./tracer";
import { TRACE_KIND } from "./tracer";

const MAX_OPEN = 16;

/**
 * Which level is running and which exits are open, for cost attribution and the timeline. A
 * hardware VM exit opens an exit on behalf of the context that exited; a VM entry into a context
 * closes the newest exit that context opened and every exit opened after it (all of that was work
 * done so the context could go on), and otherwise only moves the charged level (a hypervisor that
 * receives a reflected exit works on behalf of the exit still open below it).
 */
export class TransitionLedger {
  readonly meter: Meter;
  readonly tracer: Tracer;
  readonly #accumulator: CostAccumulator | null;
  readonly #openContext: (GuestContext | null)[] = new Array<GuestContext | null>(MAX_OPEN).fill(null);
  #depth = 0;
  /** Simulated time when the meter is a cost accumulator, else a transition count (for the timeline). */
  #clock = 0;
  /** Time already on the timeline when the meter was last reset (the timeline never runs backwards). */
  #base = 0;
  /** A `TRACE_KIND.PHASE` span is open (the innermost span). */
  #phaseOpen = false;

  constructor(meter: Meter, tracer: Tracer) {
    this.meter = meter;
    this.tracer = tracer;
    this.#accumulator = meter instanceof CostAccumulator ? meter : null;
  }

  /** Current simulated cycle (the accumulator's total), for timeline stamps. */
  get now(): number {
    return this.#base + (this.#accumulator !== null ? this.#accumulator.totalCycles : this.#clock);
  }

  /** Exits opened and not yet closed. */
  get depth(): number {
    return this.#depth;
  }

  /**
   * The KVM at `level` enters the function `phase` (a `KVM_PHASE` id): a timeline span that lasts
   * until the next phase, VM exit or VM entry. Nothing is counted; without a tracer, nothing happens.
   */
  phase(level: number, phase: number): void {
    const tracer = this.tracer;
    if (!tracer.enabled) return;
    const now = this.now;
    if (this.#phaseOpen) tracer.end(now);
    tracer.begin(TRACE_KIND.PHASE, level, phase, now);
    this.#phaseOpen = true;
  }

  #endPhase(now: number): void {
    if (!this.#phaseOpen) return;
    this.#phaseOpen = false;
    this.tracer.end(now);
  }

  /** A hardware VM exit of `context` with basic reason `reason`: L0 now works on its behalf. */
  exit(context: GuestContext, reason: number): void {
    const depth = this.#depth;
    if (depth === MAX_OPEN) throw new Error(`more than ${MAX_OPEN} VM exits open at once`);
    this.#openContext[depth] = context;
    this.#depth = depth + 1;
    this.#clock++;
    if (this.tracer.enabled) this.#endPhase(this.now);
    this.#accumulator?.beginExit(context.level, reason, 0);
    if (this.tracer.enabled) {
      this.tracer.instant(TRACE_KIND.VM_EXIT, context.level, reason, this.now);
      this.tracer.begin(TRACE_KIND.HANDLER, 0, reason, this.now);
    }
  }

  /** A hardware VM entry into `context`. */
  enter(context: GuestContext): void {
    this.#clock++;
    let i = this.#depth - 1;
    while (i >= 0 && this.#openContext[i] !== context) i--;
    const tracing = this.tracer.enabled;
    if (tracing) this.#endPhase(this.now);
    if (i < 0) {
      // A reflected exit delivered to a hypervisor: same open exit, new level (or, with no exit
      // open, a first entry).
      this.#accumulator?.setLevel(context.level);
      if (tracing && this.#depth > 0) {
        this.tracer.end(this.now);
        this.tracer.begin(TRACE_KIND.HANDLER, context.level, 0, this.now);
      }
    } else {
      while (this.#depth > i) {
        this.#depth--;
        this.#openContext[this.#depth] = null;
        const resume = this.#depth === i ? context.level : undefined;
        this.#accumulator?.endExit(resume);
        if (tracing) this.tracer.end(this.now);
      }
      this.#accumulator?.setLevel(context.level);
    }
    if (tracing) this.tracer.instant(TRACE_KIND.VM_ENTRY, context.level, 0, this.now);
  }

  /**
   * Forget every open exit (their timeline spans are closed now); call it just before the meter is
   * reset, so that the timeline continues from the current time.
   */
  reset(): void {
    const now = this.now;
    if (this.tracer.enabled) {
      this.#endPhase(now);
      for (let i = 0; i < this.#depth; i++) this.tracer.end(now);
    }
    this.#openContext.fill(null);
    this.#depth = 0;
    this.#base = now;
    this.#clock = 0;
  }
}
