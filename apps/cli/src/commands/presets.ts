import { KERNEL_PRESET_NAMES, KERNEL_PRESETS, OPTIMIZATION_FLAG_NAMES } from "@nestvisor/hypervisor";
import type { Command } from "../framework/command";
import { wrapText } from "../framework/help";
import { booleanOption, JSON_OPTION } from "../framework/options";
import { writeJson, writeLines } from "../framework/output";
import { renderTable } from "../framework/table";

export const presetsCommand: Command = {
  name: "presets",
  summary: "List the kernel presets, oldest first, with the flags each one changes from the one before.",
  usage: "presets [--json]",
  description:
    "A preset is the set of optimization flags a kernel release had. `none` is every optimization off on " +
    "today's configuration (the ablation baseline); `all` is every optimization on.",
  options: [JSON_OPTION],
  examples: [
    { command: "nestvisor presets", description: "the table and each preset's changes" },
    { command: "nestvisor compare --presets v4.19,v6.12", description: "compare two of them" },
  ],
  run(ctx) {
    if (booleanOption(ctx.values, "json")) {
      writeJson(
        ctx.out,
        KERNEL_PRESET_NAMES.map((name) => KERNEL_PRESETS[name]),
      );
      return 0;
    }
    const rows = KERNEL_PRESET_NAMES.map((name) => {
      const preset = KERNEL_PRESETS[name];
      const on = OPTIMIZATION_FLAG_NAMES.filter((f) => preset.flags[f]).length;
      return [name, preset.kernel, `${on}/${OPTIMIZATION_FLAG_NAMES.length}`, preset.description];
    });
    const lines = renderTable(
      [
        { header: "preset" },
        { header: "kernel" },
        { header: "optimizations", align: "right" },
        { header: "what it is", minWidth: 24, wrap: true },
      ],
      rows,
      { style: ctx.style },
    );
    lines.push("", ctx.style.bold("Changes from the preset before:"));
    for (const name of KERNEL_PRESET_NAMES) {
      const preset = KERNEL_PRESETS[name];
      if (preset.changes.length === 0) continue;
      lines.push(`${name}:`);
      for (const change of preset.changes) {
        const head = `  ${change.flag}=${preset.flags[change.flag] ? "on" : "off"}: `;
        lines.push(...wrapText(`${change.note} [${change.commitOrSeries}]`, 100, 6, head));
      }
    }
    writeLines(ctx.out, lines);
    return 0;
  },
};
