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

/** An argument that parseArgs would read as an option, not as the value of the one before it. */
function optionLike(arg: string): boolean {
  return arg.length > 1 && arg.startsWith("-");
}

/**
 * A string option followed by something that looks like an option (`--iterations -5`,
 * `--level --json`): Node only says the argument is "ambiguous"; this names the option and what
 * follows it.
 */
function missingValue(argv: readonly string[], specs: readonly OptionSpec[]): UsageError | undefined {
  for (let i = 0; i + 1 < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") return undefined;
    const spec = specs.find(
      (s) =>
        s.type === "string" && (arg === `--${s.name}` || (s.short !== undefined && arg === `-${s.short}`)),
    );
    const next = argv[i + 1]!;
    if (spec !== undefined && optionLike(next)) {
      return new UsageError(
        `option ${optionLabel(spec)} needs a value, but "${next}" follows it (to give a value that starts with "-", write ${optionLabel(spec)}=${next})`,
      );
    }
  }
  return undefined;
}

/**
 * Parses `argv` against `specs`; throws a `UsageError` naming the offending argument. A string
 * option given more than once keeps every value (an array): `listOption` and `repeatedOption` read
 * them all, and `stringOption` refuses different values for an option that takes one.
 */
export function parseOptions(argv: readonly string[], specs: readonly OptionSpec[]): ParsedArguments {
  const config: Record<string, { type: "string" | "boolean"; short?: string; multiple?: boolean }> = {};
  for (const spec of specs) {
    config[spec.name] = {
      type: spec.type,
      ...(spec.short === undefined ? {} : { short: spec.short }),
      ...(spec.type === "string" ? { multiple: true } : {}),
    };
  }
  let parsed: { values: Record<string, OptionValue>; positionals: string[] };
  try {
    parsed = parseArgs({
      args: [...argv],
      options: config,
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    throw toUsageError(error, argv, specs);
  }
  const values: Record<string, OptionValue> = { ...parsed.values };
  for (const spec of specs) {
    const value = values[spec.name];
    // An option that takes one value and was given once reads as a string, as declared.
    if (spec.multiple !== true && Array.isArray(value) && value.length === 1) values[spec.name] = value[0];
  }
  return { values, positionals: parsed.positionals };
}

function toUsageError(error: unknown, argv: readonly string[], specs: readonly OptionSpec[]): UsageError {
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: string } | null)?.code;
  const names = specs.map(optionLabel);
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
    const option = /^Unknown option '(.*?)'(?:\. |\.?$)/s.exec(message)?.[1] ?? message;
    const bare = option.replace(/=.*$/s, "");
    // `decode cr0 -1`: a negative number reads as an option; say so rather than suggest a name.
    if (/^-(\d|0x)/i.test(bare)) {
      return new UsageError(
        `unknown option ${bare}: a negative number is not an option (to pass text that starts with "-" as an argument, put -- before it)`,
      );
    }
    return new UsageError(`unknown option ${bare}${didYouMean(bare, names)}`);
  }
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
    const option = /--([\w-]+)/.exec(message)?.[0] ?? "an option";
    if (/argument missing/.test(message)) return new UsageError(`option ${option} needs a value`);
    if (/does not take an argument/.test(message)) return new UsageError(`option ${option} takes no value`);
    if (/ambiguous/.test(message)) {
      return (
        missingValue(argv, specs) ??
        new UsageError(
          `option ${option} needs a value (to give a value that starts with "-", write ${option}=VALUE)`,
        )
      );
    }
    return new UsageError(`bad value for ${option}`);
  }
  return new UsageError(message.split(". ")[0] ?? message);
}

/**
 * The value of an option that takes one, or undefined when absent. Given more than once with
 * different values, or with an empty value, it is a usage error naming the option.
 */
export function stringOption(values: OptionValues, name: string): string | undefined {
  const texts = repeatedOption(values, name);
  const distinct = [...new Set(texts)];
  if (distinct.length > 1) {
    throw new UsageError(
      `option --${name} is given ${texts.length} times (${distinct.map((t) => JSON.stringify(t)).join(", ")}); give it once`,
    );
  }
  const text = distinct[0];
  if (text !== undefined && text.trim() === "") {
    throw new UsageError(`option --${name} needs a value, not ${JSON.stringify(text)}`);
  }
  return text;
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

/**
 * Parses an integer typed by a user (decimal or 0x…, with `_` between digits) within [min, max].
 * Anything else — a sign, an exponent, a fraction, NaN, Infinity, a number past 2^53 — is a usage
 * error naming `what`, the range and the text.
 */
export function parseInteger(text: string, what: string, min: number, max: number): number {
  const clean = text.trim();
  const value = /^0x[0-9a-f]+(?:_[0-9a-f]+)*$/i.test(clean)
    ? Number.parseInt(clean.slice(2).replace(/_/g, ""), 16)
    : /^\d+(?:_\d+)*$/.test(clean)
      ? Number(clean.replace(/_/g, ""))
      : Number.NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new UsageError(`${what} must be an integer in [${min}, ${max}], not ${JSON.stringify(text)}`);
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
