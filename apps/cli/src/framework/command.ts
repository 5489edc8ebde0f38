import type { OptionSpec, OptionValues } from "./options";
import type { Progress } from "./progress";
import type { Style } from "./style";

/** Where a command writes: stdout or stderr (or a test double). */
export interface Writer {
  readonly isTTY?: boolean | undefined;
  write(text: string): unknown;
}

export interface Example {
  readonly command: string;
  readonly description: string;
}

/** What a command gets when it runs. */
export interface CommandContext {
  /** Full command name, e.g. "compare" or "trace stat". */
  readonly name: string;
  readonly values: OptionValues;
  readonly positionals: readonly string[];
  readonly out: Writer;
  readonly err: Writer;
  /** Colours for stdout. */
  readonly style: Style;
  /** Colours for stderr. */
  readonly errStyle: Style;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
  readonly stdin: NodeJS.ReadableStream;
  /** A progress reporter on stderr (silent unless the work takes over a second). */
  progress(label: string): Progress;
  /** A warning on stderr (one line, prefixed with the command name). */
  warn(message: string): void;
}

export interface Command {
  readonly name: string;
  /** One line for command lists. */
  readonly summary: string;
  /** Usage after the program name, e.g. "compare [options]". */
  readonly usage: string;
  /** A paragraph or two for `--help`. */
  readonly description?: string;
  readonly options: readonly OptionSpec[];
  /** How many positional arguments are accepted (default none). */
  readonly positionals?: { readonly min: number; readonly max: number; readonly names: string };
  readonly examples: readonly Example[];
  /**
   * Subcommands reached as `<name> <sub>` (`sweep merge`); without one the command itself runs.
   * Each subcommand's name is the full name ("sweep merge").
   */
  readonly subcommands?: readonly Command[];
  /** Returns the exit code. */
  run(context: CommandContext): number | Promise<number>;
}

/** What a passthrough command gets: the process around it, its arguments untouched. */
export interface PassthroughIo {
  readonly out: Writer;
  readonly err: Writer;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
}

/**
 * A command that parses its own arguments: `nestvisor test` hands them to the conformance suite's
 * command. Only `--help` is answered here (with the suite's usage and examples).
 */
export interface PassthroughCommand {
  readonly name: string;
  readonly summary: string;
  readonly passthrough: true;
  /** The `--help` text. */
  help(program: string, style: Style): string | Promise<string>;
  /** Runs with `argv` (everything after the command name); returns the exit code. */
  run(argv: readonly string[], io: PassthroughIo): Promise<number>;
}

export function isPassthrough(
  value: Command | CommandGroup | PassthroughCommand,
): value is PassthroughCommand {
  return "passthrough" in value && value.passthrough === true;
}

/** A command with subcommands (`vmcs12 layout|dump`, `trace stat|replay`). */
export interface CommandGroup {
  readonly name: string;
  readonly summary: string;
  readonly description?: string;
  readonly subcommands: readonly Command[];
  readonly examples: readonly Example[];
}

export function isCommandGroup(value: Command | CommandGroup | PassthroughCommand): value is CommandGroup {
  return "subcommands" in value && !("run" in value);
}
