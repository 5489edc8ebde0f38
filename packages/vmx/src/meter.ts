/**
 * The instrumentation sink of DESIGN.md §2.2 and §2.4: the model counts every piece of work as a
 * named primitive event (a VMREAD, a VMWRITE, a full consistency check, …) on a `Meter` it was
 * given; a cost profile later turns the counts into cycles.
 *
 * Events are small integers so that counting is one typed-array add: no strings, no allocation on
 * the hot path. Names live in *event catalogs*, one or more per layer, each owning a range of ids:
 *
 *   0x000–0x0ff  unused: x86-arch reports its work through result fields (walk traces), not a Meter
 *   0x100–0x1ff  vmx         (`VMX_EVENTS`)
 *   0x200–0x2ff  mmu
 *   0x300–0x3ff  hypervisor
 *
 * Ids are `base + position in the catalog`, so a catalog is append-only: reordering or removing a
 * name would change the ids that saved counts refer to.
 */

/** The hot-path interface every layer takes by injection (DESIGN.md §2.4). */
export interface Meter {
  /** Adds `n` (default 1) to the event `event` (an id from an event catalog). */
  count(event: number, n?: number): void;
}

/** A meter that discards everything: the default when no one is measuring. */
export const NOOP_METER: Meter = Object.freeze({
  count(_event: number, _n?: number): void {},
});

/** The id range each layer owns, inclusive (DESIGN.md §1: x86-arch ← vmx ← mmu ← hypervisor). */
export const EVENT_LAYERS = Object.freeze({
  vmx: Object.freeze({ first: 0x100, last: 0x1ff }),
  mmu: Object.freeze({ first: 0x200, last: 0x2ff }),
  hypervisor: Object.freeze({ first: 0x300, last: 0x3ff }),
});
export type EventLayer = keyof typeof EVENT_LAYERS;

/** One past the largest event id of any layer: the size of a `CountingMeter`'s table. */
export const EVENT_ID_LIMIT = 0x400;

/** Event names are upper snake case ("VMREAD", "VMCS_FULL_CONSISTENCY_CHECK"). */
const EVENT_NAME = /^[A-Z][A-Z0-9_]*$/;

/** What a catalog knows besides its `NAME: id` entries. Its keys are lower case, event names upper. */
export interface EventCatalogInfo<N extends string = string> {
  readonly layer: EventLayer;
  /** Id of the first name. */
  readonly base: number;
  /** The names in id order. */
  readonly names: readonly N[];
  /** The name of `id`, or undefined when this catalog does not define it. */
  nameOf(id: number): N | undefined;
  /** The id of `name`, or undefined when this catalog does not define it. */
  idOf(name: string): number | undefined;
}

/** A frozen `{ NAME: id, … }` object plus its `EventCatalogInfo`. */
export type EventCatalog<N extends Uppercase<string>> = { readonly [K in N]: number } & EventCatalogInfo<N>;

/**
 * Defines a layer's events: `names[i]` gets id `base + i`. Throws (a bug in the model, caught when
 * the module loads) if the layer is unknown, the ids leave the layer's range, a name is not upper
 * snake case, or a name repeats.
 */
export function defineEventCatalog<const N extends Uppercase<string>>(
  layer: EventLayer,
  base: number,
  names: readonly N[],
): EventCatalog<N> {
  const range = EVENT_LAYERS[layer];
  if (range === undefined) throw new Error(`unknown event layer "${layer}"`);
  if (!Number.isInteger(base) || base < range.first || base + names.length - 1 > range.last) {
    throw new RangeError(
      `event catalog of layer ${layer} at 0x${base.toString(16)} with ${names.length} names leaves ` +
        `its range 0x${range.first.toString(16)}–0x${range.last.toString(16)}`,
    );
  }
  const idByName = new Map<string, number>();
  names.forEach((name, i) => {
    if (!EVENT_NAME.test(name))
      throw new Error(`event name "${name}" (layer ${layer}) is not UPPER_SNAKE_CASE`);
    if (idByName.has(name)) throw new Error(`event name "${name}" appears twice in layer ${layer}`);
    idByName.set(name, base + i);
  });
  const frozenNames = Object.freeze([...names]);
  const catalog: Record<string, unknown> = {
    layer,
    base,
    names: frozenNames,
    nameOf(id: number): N | undefined {
      return Number.isInteger(id) && id >= base && id < base + frozenNames.length
        ? frozenNames[id - base]
        : undefined;
    },
    idOf(name: string): number | undefined {
      return idByName.get(name);
    },
  };
  for (const [name, id] of idByName) catalog[name] = id;
  return Object.freeze(withFastProperties(catalog)) as EventCatalog<N>;
}

/**
 * Hot paths read catalog entries as properties (`meter.count(HV.NESTED_VM_ENTRY)`). An object given
 * dozens of properties one by one is kept by V8 as a hash table, where each such read is a lookup;
 * installing it once as a constructor's prototype makes V8 switch it to fast, fixed-offset
 * properties (the long-standing "to fast properties" idiom). Behaviour is otherwise unchanged.
 */
function withFastProperties<T extends object>(object: T): T {
  function Holder(): void {}
  Holder.prototype = object;
  // Instantiating once and reading through the prototype completes the switch.
  const probe = new (Holder as unknown as new () => T)();
  void Reflect.get(probe, "layer");
  return object;
}

/**
 * The count table behind a meter, when it has one (a `CountingMeter`), else null. A hot path may add
 * to it directly instead of calling `count` through the interface, which keeps its call site
 * monomorphic when several kinds of meter are in use; other meters still get `count` calls.
 */
export function meterTable(meter: Meter): Float64Array | null {
  return meter instanceof CountingMeter ? meter.counts : null;
}

/** Counts keyed by event name, as `CountingMeter.snapshot` returns them. */
export type MeterSnapshot = Readonly<Record<string, number>>;

/**
 * A meter that keeps a count per event id in a Float64Array (exact up to 2^53) and can name them
 * through the catalogs it was given.
 */
export class CountingMeter implements Meter {
  /** Count per event id. */
  readonly counts: Float64Array = new Float64Array(EVENT_ID_LIMIT);
  readonly catalogs: readonly EventCatalogInfo[];
  readonly #nameById: (string | undefined)[] = new Array(EVENT_ID_LIMIT).fill(undefined);
  readonly #idByName = new Map<string, number>();

  /**
   * Throws if two catalogs claim the same id or the same name (a snapshot is keyed by name, so
   * names must be unique across the catalogs of one meter).
   */
  constructor(catalogs: readonly EventCatalogInfo[] = []) {
    this.catalogs = Object.freeze([...catalogs]);
    for (const catalog of catalogs) {
      catalog.names.forEach((name, i) => {
        const id = catalog.base + i;
        const previous = this.#nameById[id];
        if (previous !== undefined) {
          throw new Error(
            `event id 0x${id.toString(16)} is both ${previous} and ${name} (layer ${catalog.layer})`,
          );
        }
        if (this.#idByName.has(name)) throw new Error(`event name ${name} is defined by two catalogs`);
        this.#nameById[id] = name;
        this.#idByName.set(name, id);
      });
    }
  }

  count(event: number, n = 1): void {
    if (event >>> 0 !== event || event >= EVENT_ID_LIMIT)
      throw new RangeError(`event id ${event} is not an event`);
    this.counts[event] = this.counts[event]! + n;
  }

  /** Count of an event id (0 for an id never counted or out of range). */
  get(id: number): number {
    return this.counts[id] ?? 0;
  }

  /** Count of a named event. Throws a RangeError for a name none of the catalogs defines. */
  byName(name: string): number {
    const id = this.#idByName.get(name);
    if (id === undefined) throw new RangeError(`this meter knows no event named "${name}"`);
    return this.counts[id]!;
  }

  /** The name of an id, or its hex form ("0x1ab") when no catalog names it. */
  nameOf(id: number): string {
    return this.#nameById[id] ?? `0x${id.toString(16)}`;
  }

  /**
   * Every named event (zero counts included, in id order) plus any unnamed id with a non-zero count,
   * under its hex form. Allocates: for reports and tests, not hot paths.
   */
  snapshot(): MeterSnapshot {
    const out: Record<string, number> = {};
    for (let id = 0; id < EVENT_ID_LIMIT; id++) {
      const name = this.#nameById[id];
      const value = this.counts[id]!;
      if (name !== undefined) out[name] = value;
      else if (value !== 0) out[this.nameOf(id)] = value;
    }
    return out;
  }

  /** Sets every count to 0. */
  reset(): void {
    this.counts.fill(0);
  }

  /**
   * What was counted since `before` (an earlier `snapshot()`): current minus before, listing only
   * the events whose count changed.
   */
  diff(before: MeterSnapshot): MeterSnapshot {
    const now = this.snapshot();
    const out: Record<string, number> = {};
    for (const [name, value] of Object.entries(now)) {
      const delta = value - (before[name] ?? 0);
      if (delta !== 0) out[name] = delta;
    }
    for (const [name, value] of Object.entries(before)) {
      if (!(name in now) && value !== 0) out[name] = -value;
    }
    return out;
  }
}
