import { resolve } from "node:path";
import { type RunResult, TimelineTracer } from "@nestvisor/hypervisor";
import type { Command } from "../framework/command";
import { UsageError } from "../framework/errors";
import { formatAmount, formatNumber, formatShare } from "../framework/format";
import {
  booleanOption,
  integerOption,
  JSON_OPTION,
  repeatedOption,
  stringOption,
} from "../framework/options";
import { writeJson, writeLines } from "../framework/output";
import { renderTable } from "../framework/table";
import { commandModel, onCommandModel } from "../model/command-model";
import { flagSettings } from "../model/flag-args";
import {
  flagOption,
  iterationsOption,
  MAX_ITERATIONS,
  modelOption,
  paramOption,
  presetOption,
  profileOption,
} from "../model/model-options";
import { perfettoTrace } from "../model/perfetto";
import { iterationsOf, resultRow } from "../model/result-row";
import { buildProgram, parseParams, resolveWorkload } from "../model/workload-ref";
import { checkOutputPath, writeWholeFile } from "../sweep/output-file";

/** Events kept for --perfetto: 262,144 spans and instants (7 MiB of typed arrays). */
const TRACE_CAPACITY = 1 << 18;

export const runCommand: Command = {
  name: "run",
  summary:
    "Run one workload and show where its cycles go: by level, by exit reason with latency percentiles, by event.",
  usage: "run <workload|file> [options]",
  description:
    "The workload is a built-in (nestvisor workloads) or a YAML/JSON workload file. Figures are per iteration; exit " +
    "latencies are the cycles from a guest's VM exit to its resumption, nested work included. --perfetto writes a " +
    "Chrome trace-event JSON timeline (one track per level) that opens in ui.perfetto.dev.",
  options: [
    {
      name: "level",
      short: "l",
      type: "string",
      value: "N",
      description: "level the workload runs at (1, 2 or 3)",
      defaultText: "the workload's (2 for built-ins)",
    },
    presetOption(),
    flagOption(),
    iterationsOption("iterations (built-ins that take them)"),
    paramOption(),
    profileOption(),
    modelOption("run a model module's ModelSpec, built on top of --preset, --flag and --profile"),
    {
      name: "perfetto",
      type: "string",
      value: "file.json",
      description: "write a Chrome trace-event timeline for Perfetto",
    },
    { name: "top", type: "string", value: "N", description: "events listed", defaultText: "15" },
    JSON_OPTION,
  ],
  positionals: { min: 1, max: 1, names: "a workload name or file" },
  examples: [
    { command: "nestvisor run cpuid", description: "a nested CPUID loop under today's kernel" },
    {
      command: "nestvisor run toggle_cr0_wp --preset v5.17 --level 2",
      description: "the W^X pattern before seed 001",
    },
    {
      command: "nestvisor run cpuid --iterations 100 --perfetto cpuid.json",
      description: "a timeline to open in ui.perfetto.dev",
    },
    { command: "nestvisor run my-workload.yaml --json", description: "a workload file, as a JSON row" },
    {
      command: "nestvisor run cpuid --model examples/enlightened-vmcs/model.mjs",
      description: "a model module: an enlightened VMCS instead of shadow VMCS",
    },
  ],
  async run(ctx) {
    const ref = resolveWorkload(ctx.positionals[0]!, ctx.cwd);
    const level = integerOption(ctx.values, "level", 1, 3);
    const iterations = integerOption(ctx.values, "iterations", 1, MAX_ITERATIONS);
    if (iterations !== undefined && ref.kind === "builtin" && !("iterations" in ref.builtin.parameters)) {
      throw new UsageError(
        `${ref.name} takes no iterations parameter; its parameters: ${Object.keys(ref.builtin.parameters).join(", ")} (use --param)`,
      );
    }
    const program = buildProgram(ref, {
      ...(level === undefined ? {} : { level }),
      ...(iterations === undefined ? {} : { iterations }),
      params: parseParams(repeatedOption(ctx.values, "param")),
    });
    const perfetto = stringOption(ctx.values, "perfetto");
    const top = integerOption(ctx.values, "top", 0, 10_000) ?? 15;
    // A path that cannot be written is found before the run, not after it.
    if (perfetto !== undefined) checkOutputPath(resolve(ctx.cwd, perfetto), perfetto);
    const chosen = await commandModel(ctx.values, ctx.cwd);
    const { model, modelName, flags } = chosen;
    const { preset, profile } = model;
    const tracer = perfetto === undefined ? undefined : new TimelineTracer({ capacity: TRACE_CAPACITY });
    const result: RunResult = onCommandModel(chosen, `${program.name} at L${program.setup.level}`, () =>
      model.run(program, tracer === undefined ? {} : { tracer }),
    );
    if (perfetto !== undefined && tracer !== undefined) {
      const trace = perfettoTrace(tracer, profile, program.name, result.level);
      // Written whole or not at all (a temporary file renamed into place).
      writeWholeFile(resolve(ctx.cwd, perfetto), perfetto, (write) => write(JSON.stringify(trace)));
      if (tracer.dropped > 0) {
        ctx.warn(
          `the timeline holds the first ${formatNumber(tracer.length)} events; ${formatNumber(tracer.dropped)} later ones were dropped (use fewer --iterations)`,
        );
      }
      if (!booleanOption(ctx.values, "json"))
        ctx.err.write(`timeline written to ${perfetto} (open it in https://ui.perfetto.dev)\n`);
    }
    const row = resultRow(
      { workload: program.name, preset, model: modelName, profile: profile.name, flags },
      result,
    );
    if (booleanOption(ctx.values, "json")) {
      writeJson(ctx.out, {
        rows: [row],
        tlb: tlbSummary(result.tlb),
        exits: result.attribution.exits.map((e) => ({
          level: e.level,
          reason: e.name,
          count: e.count,
          perIteration: e.count / iterationsOf(result),
          meanCycles: e.meanCycles,
          p50: e.p50,
          p90: e.p90,
          p99: e.p99,
          minCycles: e.minCycles,
          maxCycles: e.maxCycles,
          histogram: e.histogram.map((b) => ({
            low: b.low,
            high: Number.isFinite(b.high) ? b.high : null,
            count: b.count,
          })),
        })),
      });
      return 0;
    }
    const n = iterationsOf(result);
    const s = ctx.style;
    const ghz = profile.tscGHz.value;
    const lines = [
      s.bold(`${program.name} at L${result.level}`) +
        (modelName === null ? "" : ` · model ${modelName}`) +
        ` · preset ${preset}${Object.keys(flags).length > 0 ? ` + ${flagSettings(flags).join(",")}` : ""}` +
        ` · profile ${profile.name} · ${formatNumber(result.iterations)} iterations · simulated in ${formatNumber(result.wallMs, 0)} ms`,
      "",
      `${s.bold(formatAmount(result.cyclesPerIteration))} cycles per iteration (${(result.cyclesPerIteration / ghz / 1000).toFixed(2)} µs at ${ghz} GHz)`,
      "",
      s.bold("Cycles by level"),
      ...renderTable(
        [{ header: "level" }, { header: "cycles/it", align: "right" }, { header: "share", align: "right" }],
        Object.entries(row.cyclesByLevel).map(([level, cycles]) => [
          level,
          formatAmount(cycles),
          formatShare(cycles, row.cyclesPerIteration),
        ]),
        { style: s },
      ),
      "",
      s.bold("Cycles by exit reason being handled (per iteration)"),
      ...renderTable(
        [
          { header: "reason" },
          ...Array.from({ length: result.level + 1 }, (_, l) => ({
            header: `L${l}`,
            align: "right" as const,
          })),
          { header: "total", align: "right" },
          { header: "share", align: "right" },
        ],
        [...result.attribution.byReason]
          .sort((a, b) => b.cycles - a.cycles)
          .map((r) => [
            r.name,
            ...Array.from({ length: result.level + 1 }, (_, l) => formatAmount((r.byLevel[l] ?? 0) / n)),
            formatAmount(r.cycles / n),
            formatShare(r.cycles, result.totalCycles),
          ]),
        { style: s },
      ),
      "",
      s.bold("Exits: count per iteration and latency in cycles (exit to resume, nested work included)"),
      ...renderTable(
        [
          { header: "guest" },
          { header: "reason" },
          { header: "count/it", align: "right" },
          { header: "mean", align: "right" },
          { header: "p50", align: "right" },
          { header: "p90", align: "right" },
          { header: "p99", align: "right" },
          { header: "max", align: "right" },
        ],
        [...result.attribution.exits]
          .sort((a, b) => b.level - a.level || b.totalCycles - a.totalCycles)
          .map((e) => [
            `L${e.level}`,
            e.name,
            formatAmount(e.count / n),
            formatAmount(e.meanCycles),
            formatAmount(e.p50),
            formatAmount(e.p90),
            formatAmount(e.p99),
            formatAmount(e.maxCycles),
          ]),
        { style: s },
      ),
    ];
    const events = [...result.attribution.events].sort((a, b) => b.cycles - a.cycles || b.count - a.count);
    if (top > 0) {
      lines.push(
        "",
        s.bold(
          `Events (${events.length > top ? `top ${top} of ${events.length}` : "all"} by cycles; per iteration)`,
        ),
        ...renderTable(
          [
            { header: "event" },
            { header: "count/it", align: "right" },
            { header: "cycles/it", align: "right" },
            { header: "share", align: "right" },
            ...Array.from({ length: result.level + 1 }, (_, l) => ({
              header: `L${l} count`,
              align: "right" as const,
            })),
          ],
          events
            .slice(0, top)
            .map((e) => [
              e.name,
              formatAmount(e.count / n),
              formatAmount(e.cycles / n),
              formatShare(e.cycles, result.totalCycles),
              ...Array.from({ length: result.level + 1 }, (_, l) =>
                formatAmount((e.countByLevel[l] ?? 0) / n),
              ),
            ]),
          { style: s },
        ),
      );
    }
    lines.push("", tlbLine(result.tlb));
    writeLines(ctx.out, lines);
    return 0;
  },
};

type TlbStats = RunResult["tlb"];

/** The processor TLB's work over the run as JSON: lookups, and the invalidations that dropped entries. */
function tlbSummary(tlb: TlbStats) {
  const invalidations: Record<string, { operations: number; entries: number }> = {};
  for (const [kind, counts] of Object.entries(tlb.invalidations)) {
    if (counts.operations > 0) invalidations[kind] = counts;
  }
  return {
    hits: tlb.hits.linear + tlb.hits.combined,
    misses: tlb.misses.linear + tlb.misses.combined,
    inserts: tlb.inserts.linear + tlb.inserts.combined,
    invalidations,
  };
}

/** One line: TLB hits and misses of the guest's accesses, and what dropped entries. */
function tlbLine(tlb: TlbStats): string {
  const t = tlbSummary(tlb);
  const lookups = t.hits + t.misses;
  const dropped = Object.entries(t.invalidations)
    .filter(([, c]) => c.entries > 0)
    .map(([kind, c]) => `${kind} ${formatNumber(c.entries)}`);
  return (
    `Processor TLB (guest accesses; evicted at every VM exit): ${formatNumber(t.hits)} hits, ` +
    `${formatNumber(t.misses)} misses${lookups > 0 ? ` (${formatShare(t.hits, lookups)} hits)` : ""}` +
    (dropped.length > 0 ? `; entries dropped by ${dropped.join(", ")}` : "")
  );
}
