import {
  FlagError,
  type HypervisorFlagName,
  type HypervisorFlags,
  KERNEL_PRESET_NAMES,
  kernelPreset,
  parseFlagAssignment,
  withFlags,
} from "@nestvisor/hypervisor";
import { UsageError } from "../framework/errors";

/**
 * Flag overrides from repeated `--flag name=on|off` (or comma-separated lists of them). A flag set
 * twice to the same value is kept once; set both on and off, it is a usage error naming it.
 */
export function parseFlagOptions(
  items: readonly string[],
): Readonly<Partial<Record<HypervisorFlagName, boolean>>> {
  const out: Partial<Record<HypervisorFlagName, boolean>> = {};
  for (const item of items.flatMap((text) => text.split(","))) {
    if (item.trim() === "") continue;
    let assignment: { name: HypervisorFlagName; value: boolean };
    try {
      assignment = parseFlagAssignment(item);
    } catch (error) {
      if (error instanceof FlagError) throw new UsageError(error.message);
      throw error;
    }
    const { name, value } = assignment;
    const before = out[name];
    if (before !== undefined && before !== value) {
      throw new UsageError(
        `flag "${name}" is set both ${before ? "on" : "off"} and ${value ? "on" : "off"}; set it once`,
      );
    }
    out[name] = value;
  }
  return out;
}

/** Flag settings as the command line writes them ("name=on", "name=off"), in the object's order. */
export function flagSettings(flags: Readonly<Record<string, boolean>>): string[] {
  return Object.entries(flags).map(([name, on]) => `${name}=${on ? "on" : "off"}`);
}

/** Checks preset names (a usage error with a suggestion for an unknown one). */
export function checkPresets(names: readonly string[]): string[] {
  for (const name of names) presetFlags(name, {});
  return [...names];
}

/** The flags of a preset with overrides applied. */
export function presetFlags(
  preset: string,
  overrides: Readonly<Partial<Record<HypervisorFlagName, boolean>>>,
): HypervisorFlags {
  try {
    return withFlags(kernelPreset(preset).flags, overrides);
  } catch (error) {
    if (error instanceof FlagError) throw new UsageError(error.message);
    throw error;
  }
}

export const PRESET_NAMES: readonly string[] = KERNEL_PRESET_NAMES;
