import type { Command, CommandGroup, Example } from "./command";
import type { OptionSpec } from "./options";
import type { Style } from "./style";

/** `--help` text, wrapped for a 100-column terminal. */

const WIDTH = 100;

/**
 * Wraps `text` to `width` columns. The first line starts with `prefix` (e.g. a padded label); the
 * following lines are indented by `indent` spaces (default: the prefix's length). Explicit line
 * breaks in `text` start new paragraphs with the same indentation.
 */
export function wrapText(text: string, width: number, indent?: number, prefix = ""): string[] {
  const hang = " ".repeat(indent ?? prefix.length);
  const lines: string[] = [];
  let line = prefix;
  let empty = true;
  for (const paragraph of text.split("\n")) {
    if (!empty || lines.length > 0) {
      lines.push(line.trimEnd());
      line = hang;
      empty = true;
    }
    for (const word of paragraph.split(/\s+/).filter((w) => w !== "")) {
      if (!empty && line.length + 1 + word.length > width) {
        lines.push(line);
        line = hang + word;
      } else line = empty ? line + word : `${line} ${word}`;
      empty = false;
    }
  }
  lines.push(line.trimEnd());
  return lines;
}

function optionSignature(spec: OptionSpec): string {
  const short = spec.short === undefined ? "    " : `-${spec.short}, `;
  const value = spec.type === "string" ? ` <${spec.value ?? "value"}>` : "";
  return `${short}--${spec.name}${value}`;
}

function optionLines(options: readonly OptionSpec[]): string[] {
  const signatures = options.map(optionSignature);
  const column = Math.min(34, Math.max(...signatures.map((s) => s.length)) + 4);
  const lines: string[] = [];
  options.forEach((spec, i) => {
    const sig = `  ${signatures[i]!}`;
    let text = spec.description;
    if (spec.defaultText !== undefined) text += ` (default: ${spec.defaultText})`;
    if (spec.multiple === true) text += " (repeatable)";
    if (sig.length + 2 > column) {
      lines.push(sig, ...wrapText(text, WIDTH, column, " ".repeat(column)));
    } else lines.push(...wrapText(text, WIDTH, column, sig.padEnd(column)));
  });
  return lines;
}

/** The examples block of a help text: a dimmed comment line, then the command. */
export function exampleLines(examples: readonly Example[], style: Style): string[] {
  const lines: string[] = [];
  for (const example of examples) {
    lines.push(...wrapText(`# ${example.description}`, WIDTH - 2, 2).map((l) => `  ${style.dim(l)}`));
    lines.push(`  $ ${example.command}`);
  }
  return lines;
}

export function commandHelp(
  program: string,
  command: Command,
  options: readonly OptionSpec[],
  style: Style,
): string {
  const lines = [
    `${style.bold("Usage:")} ${program} ${command.usage}`,
    "",
    ...wrapText(command.summary, WIDTH),
  ];
  if (command.description !== undefined) lines.push("", ...wrapText(command.description, WIDTH));
  const subcommands = command.subcommands ?? [];
  if (subcommands.length > 0) {
    const names = subcommands.map((c) => c.name);
    const width = Math.max(...names.map((n) => n.length)) + 2;
    lines.push("", style.bold("Subcommands:"));
    subcommands.forEach((c, i) => {
      lines.push(...wrapText(c.summary, WIDTH, width + 2, `  ${names[i]!.padEnd(width)}`));
    });
    lines.push(`Run '${program} ${names[0]} --help' for its options.`);
  }
  lines.push("", style.bold("Options:"), ...optionLines(options));
  if (command.examples.length > 0)
    lines.push("", style.bold("Examples:"), ...exampleLines(command.examples, style));
  return `${lines.join("\n")}\n`;
}

export function groupHelp(program: string, group: CommandGroup, style: Style): string {
  const names = group.subcommands.map((c) => c.name.split(" ").pop() ?? c.name);
  const width = Math.max(...names.map((n) => n.length)) + 2;
  const lines = [
    `${style.bold("Usage:")} ${program} ${group.name} <${names.join("|")}> [options]`,
    "",
    ...wrapText(group.summary, WIDTH),
  ];
  if (group.description !== undefined) lines.push("", ...wrapText(group.description, WIDTH));
  lines.push("", style.bold("Commands:"));
  group.subcommands.forEach((c, i) => {
    lines.push(...wrapText(c.summary, WIDTH, width + 2, `  ${names[i]!.padEnd(width)}`));
  });
  lines.push("", `Run '${program} ${group.name} <command> --help' for a command's options.`);
  if (group.examples.length > 0)
    lines.push("", style.bold("Examples:"), ...exampleLines(group.examples, style));
  return `${lines.join("\n")}\n`;
}
