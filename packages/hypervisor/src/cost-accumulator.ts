import { EVENT_ID_LIMIT, type Meter } from "@nestvisor/vmx";
import type { CostTable } from "./cost-table";
import { ExitLatencyRecorder } from "./exit-latency";

/**
 * The meter a costed run counts into (DESIGN.md §2.2, §5): every counted event is priced with a
 * `CostTable` at once and its cycles charged to the *current level* (the L0/L1/L2/L3 whose code or
 * hardware transition did the work) and the *current exit reason* (the exit being handled, or none
 * while a guest simply runs). The sums by level and by reason therefore add up to the total, to the
 * cycle.
 *
 * The runtime drives the context:
 *
 *   beginExit(guestLevel, reason)   a guest at guestLevel exits; L0 handles it (level = 0)
 *   setLevel(level)                 control moves (e.g. L0 reflects the exit to L1: setLevel(1))
 *   endExit()                       the exit is done and its guest resumes (level = guestLevel)
 *   setContext(level, reason)       set both directly (reason NO_EXIT: no exit in progress)
 *
 * Exits nest: while L1 handles an L2 exit, each VMREAD/VMWRITE/VMRESUME of L1 that traps is an exit
 * of its own, begun and ended inside the outer one. Work is charged to the innermost open exit's
 * reason and, separately, to the outermost one's (its *cause*), so both "what did L0 spend on
 * VMWRITE exits" and "what did L2's CPUID exits cost in all" are answered. Each ended exit is a
 * latency sample (cycles charged between its begin and end) keyed by the exiting guest's level
 * and its reason.
 *
 * `count` allocates nothing. Not being a `CountingMeter`, an accumulator makes `meterTable()` return
 * null, so hot paths that bypass `count` for a CountingMeter still call it here.
 */

/** Levels attributed: L0 (the host KVM) to L3. */
export const ATTRIBUTION_LEVELS = 4;

/** The "exit reason" while no exit is being handled (a guest computing, set-up work). */
export const NO_EXIT = -1;

/** Basic exit reasons below this get their own slot; the SDM defines reasons up to 77 today. */
export const REASON_SLOT_LIMIT = 128;
/** Slot of work done outside any exit. */
export const NO_EXIT_SLOT = REASON_SLOT_LIMIT;
/** Slot shared by basic reasons ≥ REASON_SLOT_LIMIT. */
export const OTHER_REASON_SLOT = REASON_SLOT_LIMIT + 1;
/** Reason slots per level. */
export const REASON_SLOTS = REASON_SLOT_LIMIT + 2;

/** The most exits open at once (an L3 exit inside an L2 exit inside an L1 exit is 3). */
export const MAX_OPEN_EXITS = 16;

/** The attribution slot of a basic exit reason (bits 15:0) or NO_EXIT. */
export function reasonSlot(reason: number): number {
  if (reason === NO_EXIT) return NO_EXIT_SLOT;
  if (reason >>> 0 !== reason || reason > 0xffff) {
    throw new RangeError(`exit reason ${reason} is not a basic exit reason (0–65535) or NO_EXIT`);
  }
  return reason < REASON_SLOT_LIMIT ? reason : OTHER_REASON_SLOT;
}

function checkLevel(level: number): void {
  if (level >>> 0 !== level || level >= ATTRIBUTION_LEVELS) {
    throw new RangeError(`level ${level} is not 0–${ATTRIBUTION_LEVELS - 1} (L0–L${ATTRIBUTION_LEVELS - 1})`);
  }
}

export interface CostAccumulatorOptions {
  /** Exit latencies kept for exact percentiles (default 65,536; see `ExitLatencyRecorder`). */
  readonly sampleCapacity?: number;
  /** Seed of the latency reservoir (default 1). */
  readonly seed?: number;
}

export class CostAccumulator implements Meter {
  readonly table: CostTable;
  /** Count per event id, all levels. */
  readonly counts: Float64Array = new Float64Array(EVENT_ID_LIMIT);
  /** Count per level and event: `countsByLevel[level * EVENT_ID_LIMIT + id]`. */
  readonly countsByLevel: Float64Array = new Float64Array(ATTRIBUTION_LEVELS * EVENT_ID_LIMIT);
  /** Cycles per level and innermost exit reason: `[level * REASON_SLOTS + slot]`. */
  readonly cyclesByLevelReason: Float64Array = new Float64Array(ATTRIBUTION_LEVELS * REASON_SLOTS);
  /** Cycles per level and outermost exit reason (the cause): `[level * REASON_SLOTS + slot]`. */
  readonly cyclesByLevelCause: Float64Array = new Float64Array(ATTRIBUTION_LEVELS * REASON_SLOTS);
  /** Exit latencies keyed by `guestLevel * REASON_SLOTS + slot`. */
  readonly latency: ExitLatencyRecorder;

  readonly #cost: Float64Array;
  readonly #known: Uint8Array;
  #total = 0;
  #level = 0;
  #reason = NO_EXIT;
  #levelBase = 0;
  #reasonIndex = NO_EXIT_SLOT;
  #causeIndex = NO_EXIT_SLOT;
  // The open exits, innermost last.
  readonly #openStart = new Float64Array(MAX_OPEN_EXITS);
  readonly #openKey = new Uint32Array(MAX_OPEN_EXITS);
  readonly #openGuestLevel = new Uint8Array(MAX_OPEN_EXITS);
  readonly #openOuterReason = new Int32Array(MAX_OPEN_EXITS);
  readonly #openReason = new Int32Array(MAX_OPEN_EXITS);
  #depth = 0;

  constructor(table: CostTable, options: CostAccumulatorOptions = {}) {
    this.table = table;
    this.#cost = table.cycles;
    this.#known = table.known;
    this.latency = new ExitLatencyRecorder({
      keys: ATTRIBUTION_LEVELS * REASON_SLOTS,
      ...(options.sampleCapacity === undefined ? {} : { sampleCapacity: options.sampleCapacity }),
      ...(options.seed === undefined ? {} : { seed: options.seed }),
    });
  }

  /** Counts `n` (default 1) of `event` and charges its cycles to the current level and reasons. */
  count(event: number, n = 1): void {
    // A typed array yields undefined for a fractional, negative or out-of-range index and 0 for an
    // id the table does not price; the type test stops a numeric string (a JS model's mistake).
    if (typeof event !== "number" || this.#known[event] !== 1) {
      throw new RangeError(`event id ${event} is not an event the cost table prices`);
    }
    const cycles = this.#cost[event]! * n;
    this.counts[event] = this.counts[event]! + n;
    const byLevel = this.#levelBase + event;
    this.countsByLevel[byLevel] = this.countsByLevel[byLevel]! + n;
    this.cyclesByLevelReason[this.#reasonIndex] = this.cyclesByLevelReason[this.#reasonIndex]! + cycles;
    this.cyclesByLevelCause[this.#causeIndex] = this.cyclesByLevelCause[this.#causeIndex]! + cycles;
    this.#total += cycles;
  }

  /** Cycles charged so far. */
  get totalCycles(): number {
    return this.#total;
  }

  /** The level work is charged to. */
  get level(): number {
    return this.#level;
  }

  /** The exit reason work is charged to (NO_EXIT outside exits). */
  get exitReason(): number {
    return this.#reason;
  }

  /** The reason of the outermost open exit, or the current reason when none is open. */
  get causeReason(): number {
    return this.#depth > 0 ? this.#openReason[0]! : this.#reason;
  }

  /** Exits begun and not yet ended. */
  get openExits(): number {
    return this.#depth;
  }

  /** Charges following work to `level`. */
  setLevel(level: number): void {
    checkLevel(level);
    this.#level = level;
    this.#reindex();
  }

  /**
   * Charges following work to `level` and the basic exit reason `exitReason` (NO_EXIT for none).
   * Open exits are left as they are; the next `beginExit`/`endExit` changes the reason again.
   */
  setContext(level: number, exitReason: number): void {
    checkLevel(level);
    reasonSlot(exitReason);
    this.#level = level;
    this.#reason = exitReason;
    this.#reindex();
  }

  /**
   * A guest at `guestLevel` exits with basic reason `reason`; the exit is handled from
   * `handlerLevel` (default 0: every hardware exit goes to L0). Work is charged to that level and
   * reason until the next context change.
   */
  beginExit(guestLevel: number, reason: number, handlerLevel = 0): void {
    checkLevel(guestLevel);
    checkLevel(handlerLevel);
    const slot = reasonSlot(reason);
    const depth = this.#depth;
    if (depth === MAX_OPEN_EXITS) throw new Error(`more than ${MAX_OPEN_EXITS} exits open at once`);
    this.#openStart[depth] = this.#total;
    this.#openKey[depth] = guestLevel * REASON_SLOTS + slot;
    this.#openGuestLevel[depth] = guestLevel;
    this.#openOuterReason[depth] = this.#reason;
    this.#openReason[depth] = reason;
    this.#depth = depth + 1;
    this.#level = handlerLevel;
    this.#reason = reason;
    this.#reindex();
  }

  /**
   * Ends the innermost open exit: records its latency (the cycles charged since it began, at every
   * level), restores the reason that was current when it began, and charges following work to
   * `resumeLevel` (default: the level of the guest that exited, which resumes). Returns the latency.
   */
  endExit(resumeLevel?: number): number {
    if (this.#depth === 0) throw new Error("endExit without an open exit");
    const depth = this.#depth - 1;
    const level = resumeLevel ?? this.#openGuestLevel[depth]!;
    checkLevel(level);
    const latency = this.#total - this.#openStart[depth]!;
    this.latency.record(this.#openKey[depth]!, latency);
    this.#depth = depth;
    this.#reason = this.#openOuterReason[depth]!;
    this.#level = level;
    this.#reindex();
    return latency;
  }

  #reindex(): void {
    const reasonRow = this.#level * REASON_SLOTS;
    this.#levelBase = this.#level * EVENT_ID_LIMIT;
    this.#reasonIndex = reasonRow + reasonSlot(this.#reason);
    this.#causeIndex = reasonRow + reasonSlot(this.causeReason);
  }

  /** Cycles charged to `level`. */
  levelCycles(level: number): number {
    checkLevel(level);
    let sum = 0;
    const row = level * REASON_SLOTS;
    for (let slot = 0; slot < REASON_SLOTS; slot++) sum += this.cyclesByLevelReason[row + slot]!;
    return sum;
  }

  /** Cycles charged to `level` while handling exits of basic reason `reason` (innermost). */
  reasonCycles(level: number, reason: number): number {
    checkLevel(level);
    return this.cyclesByLevelReason[level * REASON_SLOTS + reasonSlot(reason)]!;
  }

  /** Cycles charged to `level` on behalf of outermost exits of reason `reason`. */
  causeCycles(level: number, reason: number): number {
    checkLevel(level);
    return this.cyclesByLevelCause[level * REASON_SLOTS + reasonSlot(reason)]!;
  }

  /** Count of `event` charged to `level`. */
  levelCount(level: number, event: number): number {
    checkLevel(level);
    return this.countsByLevel[level * EVENT_ID_LIMIT + event] ?? 0;
  }

  /** Zeroes counts, cycles and latencies and returns to level 0 with no exit open. */
  reset(): void {
    this.counts.fill(0);
    this.countsByLevel.fill(0);
    this.cyclesByLevelReason.fill(0);
    this.cyclesByLevelCause.fill(0);
    this.latency.reset();
    this.#total = 0;
    this.#depth = 0;
    this.#level = 0;
    this.#reason = NO_EXIT;
    this.#reindex();
  }
}
