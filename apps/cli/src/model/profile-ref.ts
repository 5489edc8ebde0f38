import { resolve } from "node:path";
import {
  COST_PROFILE_NAMES,
  type CostProfile,
  CostProfileError,
  costProfile,
  DEFAULT_COST_PROFILE_NAME,
  parseCostProfileText,
} from "@nestvisor/hypervisor";
import { UsageError } from "../framework/errors";
import { didYouMean } from "../framework/suggest";
import { readTextFile } from "./files";

/** The largest profile file read (a full profile is about 30 KB). */
export const MAX_PROFILE_BYTES = 4 * 1024 * 1024;

/**
 * Results and sweep rows name a profile by its `name`: a file may use a shipped profile's name only
 * for the same prices (a copy), or its numbers would be reported as the shipped profile's.
 */
function checkOwnName(profile: CostProfile, shown: string): void {
  if (!(COST_PROFILE_NAMES as readonly string[]).includes(profile.name)) return;
  if (JSON.stringify(profile) === JSON.stringify(costProfile(profile.name))) return;
  throw new UsageError(
    `${shown}: name: "${profile.name}" is the name of a shipped profile, but this file's profile differs from it; give it a name of its own`,
  );
}

/**
 * `--profile name|file`: a shipped cost profile by name, or a JSON profile file (validated: every
 * event priced, every number with a source or an assumption).
 */
export function loadProfile(reference: string | undefined, cwd: string): CostProfile {
  const ref = reference ?? DEFAULT_COST_PROFILE_NAME;
  if ((COST_PROFILE_NAMES as readonly string[]).includes(ref)) return costProfile(ref);
  const looksLikeFile = /[/\\.]/.test(ref);
  if (!looksLikeFile) {
    throw new UsageError(
      `unknown cost profile "${ref}"${didYouMean(ref, COST_PROFILE_NAMES)}; shipped profiles: ${COST_PROFILE_NAMES.join(", ")} (or give a JSON file)`,
    );
  }
  const text = readTextFile(resolve(cwd, ref), ref, "cost profile", MAX_PROFILE_BYTES);
  try {
    const profile = parseCostProfileText(text, ref);
    checkOwnName(profile, ref);
    return profile;
  } catch (error) {
    if (error instanceof CostProfileError) {
      const first = error.message.split("\n")[0] ?? error.message;
      const more = error.issues.length > 1 ? ` (and ${error.issues.length - 1} more problems)` : "";
      throw new UsageError(`${first}${more}`);
    }
    throw error;
  }
}
