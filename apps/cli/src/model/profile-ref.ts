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
  const text = readTextFile(resolve(cwd, ref), ref, "cost profile");
  try {
    return parseCostProfileText(text, ref);
  } catch (error) {
    if (error instanceof CostProfileError) {
      const first = error.message.split("\n")[0] ?? error.message;
      const more = error.issues.length > 1 ? ` (and ${error.issues.length - 1} more problems)` : "";
      throw new UsageError(`${first}${more}`);
    }
    throw error;
  }
}
