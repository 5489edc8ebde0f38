import { COST_EVENT_NAMES } from "./cost-catalogs";
import { type CostProfile, parseCostProfile } from "./cost-profile";
import { didYouMeanSuffix } from "./name-suggestion";
import intelServerJson from "./profiles/intel-server.json" with { type: "json" };

/**
 * The cost profiles shipped with the package, selectable by name (DESIGN.md §5):
 *
 * - `intel-server` (default): calibrated against published component costs only (see the file's
 *   notes and `calibration.ts`);
 * - `zero`: every event, guest compute included, costs 0: for runs that only count;
 * - `uniform`: every event costs 1, so cycles equal the number of counted units (for tests).
 *
 * Profiles are validated when first asked for, not at import: a catalog that gained an event the
 * profiles do not price yet breaks cost lookups (and the coverage test), not every import.
 */

export const DEFAULT_COST_PROFILE_NAME = "intel-server";

export const COST_PROFILE_NAMES = Object.freeze(["intel-server", "zero", "uniform"] as const);
export type CostProfileName = (typeof COST_PROFILE_NAMES)[number];

/**
 * A profile in which every event costs `cycles`, each marked as the assumption `why`. The value
 * goes through `parseCostProfile` like any user file.
 */
export function flatCostProfile(name: string, cycles: number, description: string, why: string): CostProfile {
  const events: Record<string, { cycles: number; assumption: string }> = {};
  for (const event of COST_EVENT_NAMES) events[event] = { cycles, assumption: why };
  return parseCostProfile(
    {
      name,
      description,
      cpu: "none (synthetic)",
      tscGHz: { value: 1, assumption: "synthetic profile: one cycle per nanosecond" },
      notes: ["Synthetic: not calibrated against anything."],
      events,
    },
    `built-in profile ${name}`,
  );
}

const BUILDERS: Readonly<Record<CostProfileName, () => CostProfile>> = {
  "intel-server": () => parseCostProfile(intelServerJson, "profiles/intel-server.json"),
  zero: () =>
    flatCostProfile(
      "zero",
      0,
      "Every event costs 0 cycles: for runs that only count events",
      "counting-only profile: no cycles are charged",
    ),
  uniform: () =>
    flatCostProfile(
      "uniform",
      1,
      "Every event costs 1 cycle per count: cycles equal counted units (tests)",
      "test profile: one cycle per counted unit",
    ),
};

const loaded = new Map<CostProfileName, CostProfile>();

function isCostProfileName(name: string): name is CostProfileName {
  return (COST_PROFILE_NAMES as readonly string[]).includes(name);
}

/**
 * A shipped profile by name. Throws a RangeError naming the known profiles (with a suggestion) for
 * any other name, and a `CostProfileError` if the shipped file no longer prices every event.
 */
export function costProfile(name: string = DEFAULT_COST_PROFILE_NAME): CostProfile {
  if (!isCostProfileName(name)) {
    throw new RangeError(
      `unknown cost profile "${name}"${didYouMeanSuffix(name, COST_PROFILE_NAMES)}; ` +
        `shipped profiles: ${COST_PROFILE_NAMES.join(", ")} (or load a JSON file with parseCostProfileText)`,
    );
  }
  let profile = loaded.get(name);
  if (profile === undefined) {
    profile = BUILDERS[name]();
    loaded.set(name, profile);
  }
  return profile;
}
