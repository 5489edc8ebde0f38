import { DEFAULT_PRESET_NAME, HYPERVISOR_FLAG_INFO, kernelPreset } from "@nestvisor/hypervisor";
import type { Command } from "../framework/command";
import { booleanOption, JSON_OPTION } from "../framework/options";
import { writeJson, writeLines } from "../framework/output";
import { renderTable } from "../framework/table";

export const flagsCommand: Command = {
  name: "flags",
  summary:
    "List every optimization flag, kernel behaviour and configuration switch, with the seed and kernel it comes from.",
  usage: "flags [--json]",
  description:
    "An optimization flag changes which work KVM does, never what a guest sees; a kernel behaviour is work a " +
    "later kernel does for its own reasons (e.g. hostDebugctlPerEntry: the host's DEBUGCTL read before every " +
    "entry); a switch changes the machine modelled (EPT, nested EPT, VMCS shadowing, TDP MMU, 2 MiB host " +
    "pages). Set them with " +
    "--flag name=on|off on top of a preset.",
  options: [JSON_OPTION],
  examples: [
    { command: "nestvisor flags", description: "the table" },
    {
      command: "nestvisor compare --workloads cpuid --flag controlsShadow=off",
      description: "use one in a comparison",
    },
  ],
  run(ctx) {
    const today = kernelPreset(DEFAULT_PRESET_NAME).flags;
    if (booleanOption(ctx.values, "json")) {
      writeJson(
        ctx.out,
        HYPERVISOR_FLAG_INFO.map((f) => ({ ...f, [DEFAULT_PRESET_NAME]: today[f.name] })),
      );
      return 0;
    }
    const rows = HYPERVISOR_FLAG_INFO.map((f) => [
      f.name,
      f.kind,
      f.seed,
      f.since.replace(/\s*\(.*\)\s*$/, "") || f.since,
      today[f.name] ? "on" : "off",
      f.summary,
    ]);
    const lines = renderTable(
      [
        { header: "flag" },
        { header: "kind" },
        { header: "seed" },
        { header: "since", minWidth: 6 },
        { header: DEFAULT_PRESET_NAME },
        { header: "what it does", minWidth: 20, wrap: true },
      ],
      rows,
      { style: ctx.style },
    );
    lines.push(
      "",
      `Off means the baseline behaviour; \`nestvisor flags --json\` adds each flag's baseline and the commits or series it comes from.`,
    );
    writeLines(ctx.out, lines);
    return 0;
  },
};
