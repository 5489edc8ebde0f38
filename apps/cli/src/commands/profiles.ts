import {
  COST_EVENT_NAMES,
  COST_PROFILE_NAMES,
  type CostProfile,
  costProfile,
  costProvenance,
  DEFAULT_COST_PROFILE_NAME,
} from "@nestvisor/hypervisor";
import type { Command } from "../framework/command";
import { formatAmount } from "../framework/format";
import { booleanOption, JSON_OPTION } from "../framework/options";
import { writeJson, writeLines } from "../framework/output";
import { renderTable } from "../framework/table";
import { loadProfile } from "../model/profile-ref";

function sourced(profile: CostProfile): number {
  return COST_EVENT_NAMES.filter((name) => "source" in profile.events[name]).length;
}

export const profilesCommand: Command = {
  name: "profiles",
  summary: "List the cost profiles, or show one profile's price for every event and where it comes from.",
  usage: "profiles [name|file.json] [--json]",
  description:
    "A cost profile turns counted events into cycles. Every number names its public source or is marked as an " +
    "assumption; a profile file you write is checked the same way (every event priced, provenance given).",
  options: [JSON_OPTION],
  positionals: { min: 0, max: 1, names: "a profile name or file" },
  examples: [
    { command: "nestvisor profiles", description: "the shipped profiles" },
    { command: "nestvisor profiles intel-server", description: "every event's cycles and provenance" },
    { command: "nestvisor profiles my-cpu.json --json", description: "check a profile file you wrote" },
  ],
  run(ctx) {
    const json = booleanOption(ctx.values, "json");
    const chosen = ctx.positionals[0];
    if (chosen === undefined) {
      const profiles = COST_PROFILE_NAMES.map((name) => costProfile(name));
      if (json) {
        writeJson(
          ctx.out,
          profiles.map((p) => ({
            name: p.name,
            default: p.name === DEFAULT_COST_PROFILE_NAME,
            description: p.description,
            cpu: p.cpu,
            tscGHz: p.tscGHz.value,
            events: COST_EVENT_NAMES.length,
            sourced: sourced(p),
          })),
        );
        return 0;
      }
      const lines = renderTable(
        [
          { header: "profile" },
          { header: "sourced", align: "right" },
          { header: "description", minWidth: 24, wrap: true },
        ],
        profiles.map((p) => [
          p.name + (p.name === DEFAULT_COST_PROFILE_NAME ? " *" : ""),
          `${sourced(p)}/${COST_EVENT_NAMES.length}`,
          p.description,
        ]),
        { style: ctx.style },
      );
      lines.push(
        "",
        "* default. 'sourced' counts events priced from a published figure; the rest are marked assumptions.",
        "Use --profile <name|file.json> with compare, run and explain; `nestvisor profiles <name>` lists the prices.",
      );
      writeLines(ctx.out, lines);
      return 0;
    }
    const profile = loadProfile(chosen, ctx.cwd);
    if (json) {
      writeJson(ctx.out, profile);
      return 0;
    }
    const lines = [
      `${ctx.style.bold(profile.name)}: ${profile.description}`,
      `cpu: ${profile.cpu}`,
      `TSC: ${profile.tscGHz.value} GHz (${costProvenance(profile.tscGHz).text})`,
      "",
      ...renderTable(
        [
          { header: "event" },
          { header: "cycles", align: "right" },
          { header: "kind" },
          { header: "source or assumption", minWidth: 30, wrap: true },
        ],
        COST_EVENT_NAMES.map((name) => {
          const entry = profile.events[name];
          const p = costProvenance(entry);
          return [name, formatAmount(entry.cycles), p.kind, p.text];
        }),
        { style: ctx.style },
      ),
    ];
    writeLines(ctx.out, lines);
    return 0;
  },
};
