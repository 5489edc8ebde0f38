import type { Command } from "../framework/command";
import { UsageError } from "../framework/errors";
import { booleanOption, JSON_OPTION, stringOption } from "../framework/options";
import { writeJson, writeLines } from "../framework/output";
import { DECODE_KINDS, decodeKind } from "../model/decoders";

export const decodeCommand: Command = {
  name: "decode",
  summary: "Decode a value from a KVM trace, a dump or the SDM into its named fields.",
  usage: "decode <kind> <value> [--reason R] [--json]",
  description: [
    // One paragraph per kind: --help re-wraps the description, so padding would not survive.
    "Kinds:",
    ...DECODE_KINDS.map((k) => `${k.name}: ${k.summary}`),
    "",
    "Numbers are decimal or 0x-prefixed hex; MMU roles are always hex, as KVM prints them. --json prints the named " +
      "fields with KVM's names.",
  ].join("\n"),
  options: [
    {
      name: "reason",
      short: "r",
      type: "string",
      value: "R",
      description: "exit reason, for exit-qual (name or number)",
    },
    JSON_OPTION,
  ],
  positionals: { min: 2, max: 2, names: "<kind> <value>" },
  examples: [
    {
      command: "nestvisor decode vmcs-field 0x6c16",
      description: "which field is 0x6c16, and is it shadowed?",
    },
    { command: "nestvisor decode role 0x1a3 --json", description: "a shadow page's role word" },
    {
      command: "nestvisor decode exit-qual 0x5658000b --reason IO_INSTRUCTION",
      description: "the I/O exit from a trace line",
    },
    { command: "nestvisor decode cr4 0x3626e0", description: "which CR4 bits are set" },
  ],
  run(ctx) {
    const kind = decodeKind(ctx.positionals[0]!);
    const reason = stringOption(ctx.values, "reason");
    if (reason !== undefined && kind.name !== "exit-qual")
      throw new UsageError(`--reason is for exit-qual only, not for ${kind.name}`);
    const decoded = kind.decode(ctx.positionals[1]!, reason === undefined ? {} : { reason });
    if (booleanOption(ctx.values, "json")) writeJson(ctx.out, decoded.json);
    else writeLines(ctx.out, decoded.lines);
    return 0;
  },
};
