import { EVENT_ID_LIMIT } from "@nestvisor/vmx";
import { COST_CATALOGS, COST_EVENT_NAMES, type CostEventName, costEventId } from "./cost-catalogs";
import type { CostProfile } from "./cost-profile";
import { didYouMeanSuffix } from "./name-suggestion";

/**
 * A cost profile compiled for the hot path: cycles per count in a Float64Array indexed by event
 * id, so that pricing a count is one multiply (DESIGN.md §2.5).
 */
export interface CostTable {
  readonly profile: CostProfile;
  /** Cycles per count, by event id (length EVENT_ID_LIMIT; 0 at ids no catalog defines). */
  readonly cycles: Float64Array;
  /** 1 at every id some priced catalog defines, else 0. */
  readonly known: Uint8Array;
  /** Cycles per count of a named event. */
  costOf(name: CostEventName): number;
  /** The event name of an id, or its hex form ("0x3ff") when no catalog defines it. */
  nameOf(id: number): string;
}

const NAME_BY_ID: readonly (string | undefined)[] = (() => {
  const names = new Array<string | undefined>(EVENT_ID_LIMIT).fill(undefined);
  for (const catalog of COST_CATALOGS) {
    catalog.names.forEach((name, i) => {
      names[catalog.base + i] = name;
    });
  }
  return names;
})();

/** Compiles a (validated) profile into a `CostTable`. */
export function compileCostTable(profile: CostProfile): CostTable {
  const cycles = new Float64Array(EVENT_ID_LIMIT);
  const known = new Uint8Array(EVENT_ID_LIMIT);
  for (const name of COST_EVENT_NAMES) {
    const id = costEventId(name)!;
    cycles[id] = profile.events[name].cycles;
    known[id] = 1;
  }
  return Object.freeze({
    profile,
    cycles,
    known,
    costOf(name: CostEventName): number {
      return profile.events[name].cycles;
    },
    nameOf(id: number): string {
      return NAME_BY_ID[id] ?? `0x${id.toString(16)}`;
    },
  });
}

/**
 * Cycles of a count vector: Σ counts[id] × cost[id]. `counts` is indexed by event id (a
 * `CountingMeter`'s `counts`, a `CostAccumulator`'s, …); `table` is a `CostTable` or its `cycles`.
 */
export function cyclesOf(counts: ArrayLike<number>, table: CostTable | Float64Array): number {
  const cost = table instanceof Float64Array ? table : table.cycles;
  const n = Math.min(counts.length, cost.length);
  let sum = 0;
  for (let id = 0; id < n; id++) {
    const count = counts[id]!;
    if (count !== 0) sum += count * cost[id]!;
  }
  return sum;
}

/**
 * Cycles of counts keyed by event name (a `MeterSnapshot`, a `diff`, a calibration recipe). Throws a
 * RangeError for a name no priced catalog defines.
 */
export function cyclesOfNamed(counts: Readonly<Record<string, number>>, table: CostTable): number {
  let sum = 0;
  for (const [name, count] of Object.entries(counts)) {
    const id = costEventId(name);
    if (id === undefined) {
      throw new RangeError(`no cost for unknown event "${name}"${didYouMeanSuffix(name, COST_EVENT_NAMES)}`);
    }
    sum += count * table.cycles[id]!;
  }
  return sum;
}
