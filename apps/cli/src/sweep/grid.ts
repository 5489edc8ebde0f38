import { createHash } from "node:crypto";
import { type HypervisorFlagName, OPTIMIZATION_FLAG_NAMES } from "@nestvisor/hypervisor";
import { UsageError } from "../framework/errors";
import { flagSettings, presetFlags } from "../model/flag-args";
import { stableJson } from "./stable-json";

/**
 * The grid of `nestvisor sweep`: every combination of workload × level × profile × preset × model ×
 * flag set, in that nesting order (the last varies fastest), numbered from 0. A cell is described
 * completely by its parameters; its key is their stable JSON, and the grid's id is a hash of every
 * key in order — two runs agree on the id exactly when they number the same cells the same way,
 * which is what resuming a file and merging shards rely on.
 */

/** Overrides on top of a preset. */
export type FlagSet = Readonly<Partial<Record<HypervisorFlagName, boolean>>>;

/** Everything that decides a cell's result. */
export interface CellParams {
  /** Built-in name or workload file, as given. */
  readonly workload: string;
  readonly level: number;
  readonly preset: string;
  /** Cost profile name or file, as given. */
  readonly profile: string;
  /** Model module as given, or null for the project's KVM model. */
  readonly model: string | null;
  /** Overrides on top of the preset (the common --flag ones and the cell's flag set), keys sorted. */
  readonly flags: FlagSet;
  /** --iterations, or null for the workload's own. */
  readonly iterations: number | null;
  /** --param values (built-in workload parameters). */
  readonly params: Readonly<Record<string, string>>;
}

export interface GridCell {
  readonly index: number;
  readonly key: string;
  readonly params: CellParams;
}

export interface GridSpec {
  readonly workloads: readonly string[];
  readonly levels: readonly number[];
  readonly presets: readonly string[];
  readonly profiles: readonly string[];
  readonly models: readonly (string | null)[];
  /** --flag: applied to every cell. */
  readonly common: FlagSet;
  /** The flag-set dimension before ablation (--flags sets crossed with --vary), at least one. */
  readonly flagSets: readonly FlagSet[];
  /** Add, for each preset and flag set, every optimization flag flipped alone. */
  readonly ablate: boolean;
  readonly iterations: number | null;
  readonly params: Readonly<Record<string, string>>;
}

export interface Grid {
  /** Hash of every cell key in order (16 hex digits). */
  readonly id: string;
  readonly cells: readonly GridCell[];
}

/** Largest grid a sweep expands (the cell list is held in memory). */
export const MAX_CELLS = 1_000_000;
/** Most flags --vary may list (2^12 flag sets). */
export const MAX_VARIED = 12;

function sorted(flags: FlagSet): FlagSet {
  const out: Partial<Record<HypervisorFlagName, boolean>> = {};
  for (const name of Object.keys(flags).sort() as HypervisorFlagName[]) out[name] = flags[name]!;
  return out;
}

/** Every on/off assignment of `names` (2^k sets; the first has all on). */
export function varyFlagSets(names: readonly HypervisorFlagName[]): FlagSet[] {
  const twice = names.find((name, i) => names.indexOf(name) !== i);
  if (twice !== undefined) throw new UsageError(`--vary lists a flag twice: "${twice}"`);
  if (names.length > MAX_VARIED)
    throw new UsageError(
      `--vary takes at most ${MAX_VARIED} flags (2^${MAX_VARIED} flag sets), not ${names.length}`,
    );
  const sets: FlagSet[] = [];
  for (let bits = 0; bits < 1 << names.length; bits++) {
    const set: Partial<Record<HypervisorFlagName, boolean>> = {};
    names.forEach((name, i) => {
      set[name] = (bits & (1 << (names.length - 1 - i))) === 0;
    });
    sets.push(set);
  }
  return sets;
}

/** `sets` × `varied`: each varied assignment on top of each set. */
export function crossFlagSets(sets: readonly FlagSet[], varied: readonly FlagSet[]): FlagSet[] {
  return sets.flatMap((set) => varied.map((v) => ({ ...set, ...v })));
}

/** The flag sets of one preset: each given set, then (with ablation) each optimization flag flipped alone. */
function presetFlagSets(spec: GridSpec, preset: string): FlagSet[] {
  const out = new Map<string, FlagSet>();
  const add = (set: FlagSet): void => {
    const full = sorted({ ...spec.common, ...set });
    const key = stableJson(full);
    if (!out.has(key)) out.set(key, full);
  };
  for (const set of spec.flagSets) {
    add(set);
    if (!spec.ablate) continue;
    const effective = { ...spec.common, ...set };
    const flags = presetFlags(preset, effective);
    for (const flag of OPTIMIZATION_FLAG_NAMES) {
      if (flag in effective) continue;
      add({ ...set, [flag]: !flags[flag] });
    }
  }
  return [...out.values()];
}

/** The number of cells `spec` describes, without building them. */
export function gridSize(spec: GridSpec): number {
  const flagSets = spec.presets.reduce((n, preset) => n + presetFlagSets(spec, preset).length, 0);
  return spec.workloads.length * spec.levels.length * spec.profiles.length * spec.models.length * flagSets;
}

export function gridId(keys: readonly string[]): string {
  const hash = createHash("sha256");
  for (const key of keys) hash.update(`${key}\n`);
  return hash.digest("hex").slice(0, 16);
}

export function expandGrid(spec: GridSpec): Grid {
  const size = gridSize(spec);
  if (size === 0) throw new UsageError("the grid is empty");
  if (size > MAX_CELLS)
    throw new UsageError(
      `the grid has ${size.toLocaleString("en-US")} cells; a sweep takes at most ${MAX_CELLS.toLocaleString("en-US")} (split it into several sweeps)`,
    );
  const flagSetsByPreset = new Map(spec.presets.map((p) => [p, presetFlagSets(spec, p)]));
  const cells: GridCell[] = [];
  for (const workload of spec.workloads)
    for (const level of spec.levels)
      for (const profile of spec.profiles)
        for (const preset of spec.presets)
          for (const model of spec.models)
            for (const flags of flagSetsByPreset.get(preset)!) {
              const params: CellParams = {
                workload,
                level,
                preset,
                profile,
                model,
                flags,
                iterations: spec.iterations,
                params: spec.params,
              };
              cells.push({ index: cells.length, key: stableJson(params), params });
            }
  return { id: gridId(cells.map((c) => c.key)), cells };
}

/** `--shard k/n`: this machine runs the cells whose index % n is k - 1. */
export interface Shard {
  readonly k: number;
  readonly n: number;
}

export function parseShard(text: string): Shard {
  const match = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(text);
  if (match === null)
    throw new UsageError(`--shard ${text}: expected k/n (e.g. 2/8: the second of 8 shards)`);
  const k = Number(match[1]);
  const n = Number(match[2]);
  if (n < 1 || n > 1_000_000) throw new UsageError(`--shard ${text}: n must be between 1 and 1000000`);
  if (k < 1 || k > n) throw new UsageError(`--shard ${text}: k must be between 1 and n`);
  return { k, n };
}

export function inShard(index: number, shard: Shard | undefined): boolean {
  return shard === undefined || index % shard.n === shard.k - 1;
}

/** A cell for people: "cpuid L2 v6.12 intel-server kvm-evmcs.mjs shadowVmcs=off". */
export function describeCell(params: CellParams): string {
  const flags = flagSettings(params.flags);
  return [
    params.workload,
    `L${params.level}`,
    params.preset,
    params.profile,
    ...(params.model === null ? [] : [params.model]),
    ...flags,
  ].join(" ");
}
