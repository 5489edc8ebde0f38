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

/** Flag overrides from repeated `--flag name=on|off` (or comma-separated lists of them). */
export function parseFlagOptions(
  items: readonly string[],
): Readonly<Partial<Record<HypervisorFlagName, boolean>>> {
  const out: Partial<Record<HypervisorFlagName, boolean>> = {};
  for (const item of items.flatMap((text) => text.split(","))) {
    if (item.trim() === "") continue;
    try {
      const { name, value } = parseFlagAssignment(item);
      out[name] = value;
    } catch (error) {
      if (error instanceof FlagError) throw new UsageError(error.message);
      throw error;
    }
  }
  return out;
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
