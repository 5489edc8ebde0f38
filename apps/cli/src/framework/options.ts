import { parseArgs } from "node:util";
import { UsageError } from "./errors";
import { didYouMean } from "./suggest";

/**
 * Command-line options, described once: the same table feeds `node:util` parseArgs, the `--help`
 * text and the typed accessors below. Parse errors become one-line usage errors (exit 2) with a
 * suggestion for misspelt option names, instead of Node's multi-sentence messages.
 */
export interface OptionSpec {
  /** Long name without the dashes, e.g. "workloads". */
  readonly name: string;
  readonly short?: string;
  readonly type: "string" | "boolean";
  /** May be given more than once (values are collected in order). */
  readonly multiple?: boolean;
  /** Placeholder shown in help, e.g. "a,b" or "N". */
  readonly value?: string;
  readonly description: string;
  /** The default, as help shows it. */
  readonly defaultText?: string;
}

export type OptionValue = string | boolean | (string | boolean)[] | undefined;
export type OptionValues = Readonly<Record<string, OptionValue>>;

export interface ParsedArguments {
  readonly values: OptionValues;
  readonly positionals: readonly string[];
}

/** Options every command takes. */
export const COMMON_OPTIONS: readonly OptionSpec[] = [
  { name: "help", short: "h", type: "boolean", description: "show this help" },
  {
    name: "no-color",
    type: "boolean",
    description: "no colour (also NO_COLOR=1; colour is used only on a terminal)",
  },
];

export const JSON_OPTION: OptionSpec = {
  name: "json",
  type: "boolean",
  description: "print the result as JSON on stdout",
};

function optionLabel(spec: OptionSpec): string {
  return `--${spec.name}`;
}

/** Parses `argv` against `specs`; throws a `UsageError` naming the offending argument. */
export function parseOptions(argv: readonly string[], specs: readonly OptionSpec[]): ParsedArguments {
  const config: Record<string, { type: "string" | "boolean"; short?: string; multiple?: boolean }> = {};
  for (const spec of specs) {
    config[spec.name] = {
      type: spec.type,
      ...(spec.short === undefined ? {} : { short: spec.short }),
      ...(spec.multiple === true ? { multiple: true } : {}),
    };
  }
  try {
    const { values, positionals } = parseArgs({
      args: [...argv],
      options: config,
      allowPositionals: true,
      strict: true,
    });
    return { values: values as OptionValues, positionals };
  } catch (error) {
    throw toUsageError(error, specs);
  }
}

function toUsageError(error: unknown, specs: readonly OptionSpec[]): UsageError {
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: string }).code;
  const names = specs.map(optionLabel);
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
    const option = /'([^']+)'/.exec(message)?.[1] ?? message;
    const bare = option.replace(/=.*$/, "");
    return new UsageError(`unknown option ${bare}${didYouMean(bare, names)}`);
  }
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
    const option = /--([\w-]+)/.exec(message)?.[0] ?? "an option";
    if (/argument missing/.test(message)) return new UsageError(`option ${option} needs a value`);
    if (/does not take an argument/.test(message)) return new UsageError(`option ${option} takes no value`);
    return new UsageError(`bad value for ${option}`);
  }
  return new UsageError(message.split(". ")[0] ?? message);
}

/** The last value of a string option, or undefined. */
export function stringOption(values: OptionValues, name: string): string | undefined {
  const v = values[name];
  if (Array.isArray(v)) {
    const last = v[v.length - 1];
    return typeof last === "string" ? last : undefined;
  }
  return typeof v === "string" ? v : undefined;
}

export function booleanOption(values: OptionValues, name: string): boolean {
  return values[name] === true;
}

/** Every value of a repeatable string option (empty when absent). */
export function repeatedOption(values: OptionValues, name: string): string[] {
  const v = values[name];
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [v]).filter((x): x is string => typeof x === "string");
}

/**
 * A comma-separated list option (`--presets a,b`), also accepted repeated (`--presets a --presets
 * b`); empty items are dropped. Undefined when the option is absent.
 */
export function listOption(values: OptionValues, name: string): string[] | undefined {
  if (values[name] === undefined) return undefined;
  const items = repeatedOption(values, name)
    .flatMap((text) => text.split(","))
    .map((item) => item.trim())
    .filter((item) => item !== "");
  if (items.length === 0) throw new UsageError(`option --${name} needs at least one value`);
  return items;
}

/** Parses an integer typed by a user (decimal, 0x…, with `_` separators) within [min, max]. */
export function parseInteger(text: string, what: string, min: number, max: number): number {
  const clean = text.trim().replace(/_/g, "");
  const value = /^0x[0-9a-f]+$/i.test(clean)
    ? Number.parseInt(clean, 16)
    : /^\d+$/.test(clean)
      ? Number(clean)
      : Number.NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new UsageError(`${what} must be an integer in [${min}, ${max}], not "${text}"`);
  }
  return value;
}

/** An integer option within [min, max], or undefined when absent. */
export function integerOption(
  values: OptionValues,
  name: string,
  min: number,
  max: number,
): number | undefined {
  const text = stringOption(values, name);
  return text === undefined ? undefined : parseInteger(text, `--${name}`, min, max);
}
