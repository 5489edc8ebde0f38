import { DEFAULT_PRESET_NAME } from "@nestvisor/hypervisor";
import type { OptionSpec } from "../framework/options";

/**
 * The options that choose a model and a workload's parameters, declared once: each command passes
 * only what its help says differently (the description, the default, whether it repeats), so names,
 * short letters and value placeholders cannot drift between commands.
 */

/** `--preset/-p name`: one kernel preset. */
export function presetOption(description = "kernel preset"): OptionSpec {
  return {
    name: "preset",
    short: "p",
    type: "string",
    value: "name",
    description,
    defaultText: DEFAULT_PRESET_NAME,
  };
}

/** `--presets/-p a,b`: several kernel presets. */
export function presetsOption(description: string, defaultText: string): OptionSpec {
  return { name: "presets", short: "p", type: "string", value: "a,b", description, defaultText };
}

/** `--flag/-f name=on|off`, repeatable. */
export function flagOption(description = "flag set on top of the preset"): OptionSpec {
  return { name: "flag", short: "f", type: "string", multiple: true, value: "name=on|off", description };
}

/** `--param name=value`, repeatable: a built-in workload's parameter. */
export function paramOption(description = "built-in workload parameter"): OptionSpec {
  return { name: "param", type: "string", multiple: true, value: "name=value", description };
}

/**
 * The most `--iterations` a run, compare or sweep takes. Figures are per iteration and the
 * simulation is deterministic, so more iterations change nothing but the time: 100,000 is minutes
 * for the slowest workload at L3, and `trace replay` has the same limit; the workload's own limit
 * (2^32 - 1) would run for days.
 */
export const MAX_ITERATIONS = 100_000;

/** `--iterations/-n N`. */
export function iterationsOption(description: string, defaultText?: string): OptionSpec {
  return {
    name: "iterations",
    short: "n",
    type: "string",
    value: "N",
    description,
    ...(defaultText === undefined ? {} : { defaultText }),
  };
}

/** `--profile name|file`: one cost profile. */
export function profileOption(description = "cost profile"): OptionSpec {
  return { name: "profile", type: "string", value: "name|file", description, defaultText: "intel-server" };
}

/** `--model/-m module.mjs`: a model module (`repeatable` where each one adds a variant). */
export function modelOption(description: string, repeatable = false): OptionSpec {
  return {
    name: "model",
    short: "m",
    type: "string",
    ...(repeatable ? { multiple: true } : {}),
    value: "module.mjs",
    description,
  };
}
