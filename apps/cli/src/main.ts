import { COMMANDS } from "./commands/registry";
import {
  type Command,
  type CommandContext,
  type CommandGroup,
  isCommandGroup,
  isPassthrough,
  type PassthroughCommand,
  type Writer,
} from "./framework/command";
import { CliError, EXIT, oneLine, UsageError } from "./framework/errors";
import { commandHelp, groupHelp, wrapText } from "./framework/help";
import { COMMON_OPTIONS, parseOptions } from "./framework/options";
import { Progress, progressEnabled } from "./framework/progress";
import { colourEnabled, createStyle, type Style } from "./framework/style";
import { didYouMean } from "./framework/suggest";
import { VERSION } from "./version";

export const PROGRAM = "nestvisor";

/** The process around a command run: streams, environment, working directory. */
export interface Io {
  readonly out: Writer;
  readonly err: Writer;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
  readonly stdin: NodeJS.ReadableStream;
}

function topHelp(style: Style): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length)) + 2;
  const lines = [
    `${style.bold("Usage:")} ${PROGRAM} <command> [options]`,
    "",
    "A faithful model of x86 nested virtualization as Linux KVM does it: measure what each nested-VMX",
    "optimization saves, explain a round trip, decode values and read real KVM traces.",
    "",
    style.bold("Commands:"),
    ...COMMANDS.flatMap((c) => wrapText(c.summary, 100, width + 2, `  ${c.name.padEnd(width)}`)),
    "",
    style.bold("Options:"),
    "  -h, --help     show help (also: nestvisor <command> --help)",
    "  -V, --version  print the version",
    "",
    style.bold("Examples:"),
    `  ${style.dim("# what the 2019-2023 nested-VMX work saves on the vmexit microbenchmarks")}`,
    `  $ ${PROGRAM} compare`,
    `  ${style.dim("# one nested CPUID round trip, step by step")}`,
    `  $ ${PROGRAM} explain cpuid`,
    "",
    "Exit codes: 0 success, 1 a failed check, 2 bad usage. Colour only on a terminal; NO_COLOR=1 turns it off.",
  ];
  return `${lines.join("\n")}\n`;
}

function hasFlag(argv: readonly string[], ...names: string[]): boolean {
  const end = argv.indexOf("--");
  const head = end < 0 ? argv : argv.slice(0, end);
  return head.some((a) => names.includes(a));
}

/** Runs the command line `argv` (without node and the script) and returns the exit code. */
export async function main(argv: readonly string[], io: Io): Promise<number> {
  const noColor = hasFlag(argv, "--no-color");
  const style = createStyle(colourEnabled({ isTTY: io.out.isTTY, env: io.env, flag: !noColor }));
  const errStyle = createStyle(colourEnabled({ isTTY: io.err.isTTY, env: io.env, flag: !noColor }));
  let label = PROGRAM;
  const fail = (error: unknown): number => {
    if (error instanceof CliError) {
      io.err.write(`${errStyle.red(`${label}:`)} ${oneLine(error.message)}\n`);
      return error.exitCode;
    }
    const message = error instanceof Error ? error.message : String(error);
    io.err.write(`${errStyle.red(`${label}: internal error:`)} ${oneLine(message)}\n`);
    if (io.env.NESTVISOR_DEBUG === "1" && error instanceof Error && error.stack)
      io.err.write(`${error.stack}\n`);
    return EXIT.FAILED;
  };
  try {
    const first = argv[0];
    if (
      first === undefined ||
      first === "--help" ||
      first === "-h" ||
      (first === "help" && argv.length === 1)
    ) {
      io.out.write(topHelp(style));
      return EXIT.OK;
    }
    if (first === "--version" || first === "-V" || first === "version") {
      io.out.write(`${VERSION}\n`);
      return EXIT.OK;
    }
    // `nestvisor help compare` is `nestvisor compare --help`.
    const words = first === "help" ? [...argv.slice(1), "--help"] : [...argv];
    const name = words[0]!;
    const entry = COMMANDS.find((c) => c.name === name);
    if (entry === undefined) {
      if (name.startsWith("-"))
        throw new UsageError(`unknown option ${name} (options come after the command)`);
      throw new UsageError(
        `unknown command "${name}"${didYouMean(
          name,
          COMMANDS.map((c) => c.name),
        )}; commands: ${COMMANDS.map((c) => c.name).join(", ")}`,
      );
    }
    label = `${PROGRAM} ${entry.name}`;
    const loaded: Command | CommandGroup | PassthroughCommand = await entry.load();
    let command: Command;
    let rest = words.slice(1);
    if (isPassthrough(loaded)) {
      if (hasFlag(rest, "--help", "-h")) {
        io.out.write(await loaded.help(PROGRAM, style));
        return EXIT.OK;
      }
      return await loaded.run(rest, { out: io.out, err: io.err, env: io.env, cwd: io.cwd });
    }
    if (isCommandGroup(loaded)) {
      const sub = rest[0];
      const subNames = loaded.subcommands.map((c) => c.name.split(" ").pop()!);
      if (sub === "--help" || sub === "-h") {
        io.out.write(groupHelp(PROGRAM, loaded, style));
        return EXIT.OK;
      }
      if (sub === undefined) {
        io.err.write(groupHelp(PROGRAM, loaded, errStyle));
        return EXIT.USAGE;
      }
      const found = loaded.subcommands.find((c) => c.name.split(" ").pop() === sub);
      if (found === undefined) {
        throw new UsageError(
          `unknown subcommand "${sub}"${didYouMean(sub, subNames)}; expected one of: ${subNames.join(", ")}`,
        );
      }
      command = found;
      rest = rest.slice(1);
      label = `${PROGRAM} ${command.name}`;
    } else {
      command = loaded;
      const sub = command.subcommands?.find((c) => c.name.split(" ").pop() === rest[0]);
      if (sub !== undefined) {
        command = sub;
        rest = rest.slice(1);
        label = `${PROGRAM} ${command.name}`;
      }
    }

    const specs = [...command.options, ...COMMON_OPTIONS];
    if (hasFlag(rest, "--help", "-h")) {
      io.out.write(commandHelp(PROGRAM, command, specs, style));
      return EXIT.OK;
    }
    const parsed = parseOptions(rest, specs);
    const allowed = command.positionals ?? { min: 0, max: 0, names: "" };
    if (parsed.positionals.length < allowed.min) {
      throw new UsageError(`missing ${allowed.names} (usage: ${PROGRAM} ${command.usage})`);
    }
    if (parsed.positionals.length > allowed.max) {
      const extra = parsed.positionals[allowed.max]!;
      throw new UsageError(
        allowed.max === 0
          ? `unexpected argument "${extra}" (usage: ${PROGRAM} ${command.usage})`
          : `too many arguments: "${extra}" (usage: ${PROGRAM} ${command.usage})`,
      );
    }
    const context: CommandContext = {
      name: command.name,
      values: parsed.values,
      positionals: parsed.positionals,
      out: io.out,
      err: io.err,
      style,
      errStyle,
      env: io.env,
      cwd: io.cwd,
      stdin: io.stdin,
      progress: (what) =>
        new Progress(io.err, `${PROGRAM} ${command.name}`.concat(what === "" ? "" : ` ${what}`), {
          enabled: progressEnabled(io.err, io.env),
        }),
      warn: (message) => {
        io.err.write(`${errStyle.yellow(`${label}: warning:`)} ${oneLine(message)}\n`);
      },
    };
    return await command.run(context);
  } catch (error) {
    return fail(error);
  }
}
