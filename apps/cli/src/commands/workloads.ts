import { BUILTIN_WORKLOADS, type BuiltinParameter } from "@nestvisor/hypervisor";
import type { Command } from "../framework/command";
import { booleanOption, JSON_OPTION } from "../framework/options";
import { writeJson, writeLines } from "../framework/output";
import { renderTable } from "../framework/table";

function parameterText(name: string, p: BuiltinParameter): string {
  return `${name}=${String(p.default)}`;
}

export const workloadsCommand: Command = {
  name: "workloads",
  summary: "List the built-in workloads: what each does, the exits it is written to cause, what it mirrors.",
  usage: "workloads [--json]",
  description:
    "Built-ins run by name in `compare`, `run` and `explain`. The first six mirror kvm-unit-tests x86/vmexit.c; " +
    "parameters are set with --param name=value (and --level, --iterations). A workload can also be a YAML or " +
    "JSON file (see the hypervisor package's workload schema).",
  options: [JSON_OPTION],
  examples: [
    { command: "nestvisor workloads", description: "the table" },
    {
      command: "nestvisor workloads --json | jq '.[].name'",
      description: "names and parameters for scripts",
    },
  ],
  run(ctx) {
    if (booleanOption(ctx.values, "json")) {
      writeJson(
        ctx.out,
        BUILTIN_WORKLOADS.map((w) => ({
          name: w.name,
          description: w.description,
          exercises: w.exercises,
          mirrors: w.mirrors ?? null,
          parameters: w.parameters,
        })),
      );
      return 0;
    }
    const rows = BUILTIN_WORKLOADS.map((w) => [
      w.name,
      w.exercises.join(", "),
      Object.entries(w.parameters)
        .filter(([name]) => name !== "level")
        .map(([name, p]) => parameterText(name, p))
        .join(" "),
    ]);
    const lines = renderTable(
      [
        { header: "workload" },
        { header: "exits", minWidth: 14, wrap: true },
        { header: "parameters (defaults)", minWidth: 20, wrap: true },
      ],
      rows,
      { style: ctx.style },
    );
    lines.push("");
    for (const w of BUILTIN_WORKLOADS) {
      lines.push(`${ctx.style.bold(w.name)}: ${w.description}`);
      if (w.mirrors !== undefined) lines.push(`  ${ctx.style.dim(`mirrors ${w.mirrors}`)}`);
    }
    lines.push("", "Every built-in also takes level=1|2|3 (--level). Files: nestvisor run my-workload.yaml.");
    writeLines(ctx.out, lines);
    return 0;
  },
};
