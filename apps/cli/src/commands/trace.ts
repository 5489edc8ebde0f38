import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import type { Command, CommandContext, CommandGroup } from "../framework/command";
import { toCsv } from "../framework/csv";
import { UsageError } from "../framework/errors";
import { formatAmount, formatNumber } from "../framework/format";
import { booleanOption, integerOption, JSON_OPTION, listOption, stringOption } from "../framework/options";
import { writeJson, writeLines } from "../framework/output";
import { type Column, renderTable } from "../framework/table";
import { readBytesFile } from "../model/files";
import { checkPresets, presetFlags } from "../model/flag-args";
import { iterationsOption, presetsOption, profileOption } from "../model/model-options";
import { loadProfile } from "../model/profile-ref";
import { replayTrace } from "../model/trace-replay";
import { type ExitGroup, type StatRow, statRows, type TraceStats, traceStats } from "../model/trace-stat";

/** A trace is read whole, then parsed in chunks: up to 4 GiB (a Node buffer's limit on 64-bit hosts). */
const MAX_TRACE_FILE_BYTES = 4 * 1024 ** 3;

/** The name errors give a trace: its file name, or "stdin" for "-". */
function shownName(file: string): string {
  return file === "-" ? "stdin" : file;
}

function readStdin(): Uint8Array {
  try {
    return readFileSync(0);
  } catch (error) {
    throw new UsageError(`stdin: cannot read a trace (${(error as Error).message})`);
  }
}

/** Reads a trace file (or stdin for "-"), refusing binary recordings with the command that converts them. */
function readTrace(ctx: CommandContext, file: string): { stats: TraceStats } {
  if (file.trim() === "")
    throw new UsageError(
      `the trace file name is empty (${JSON.stringify(file)}); give a file, or - for stdin`,
    );
  const bytes =
    file === "-" ? readStdin() : readBytesFile(resolve(ctx.cwd, file), file, "trace", MAX_TRACE_FILE_BYTES);
  const shown = shownName(file);
  const head = new TextDecoder("latin1").decode(bytes.subarray(0, 16));
  // trace.dat starts with the bytes 0x17 0x08 0x44 and "tracing" (trace-cmd's file magic).
  if (head.startsWith("\u0017\u0008Dtracing")) {
    throw new UsageError(
      `${file} is a binary trace-cmd recording; convert it first: trace-cmd report -i ${file} > trace.txt`,
    );
  }
  if (head.startsWith("PERFILE")) {
    throw new UsageError(
      `${file} is a binary perf.data file; convert it first: perf script -i ${file} > trace.txt`,
    );
  }
  if (bytes.subarray(0, 4096).includes(0))
    throw new UsageError(`${shown} is a binary file, not a text trace from trace-cmd report or perf script`);
  // Bytes, not one string: a trace may be larger than the longest string JavaScript can hold.
  const stats = traceStats(bytes);
  if (stats.events === 0) {
    const what =
      stats.lines === 0 || stats.lines === stats.headers
        ? "it holds no event lines"
        : `none of its ${formatNumber(stats.lines)} lines is a trace-cmd report, ftrace or perf script event line${
            stats.garbageSamples[0] === undefined
              ? ""
              : ` (line ${stats.garbageSamples[0].line}: ${stats.garbageSamples[0].why})`
          }`;
    throw new UsageError(`${shown} is not a trace: ${what}`);
  }
  return { stats };
}

/**
 * The exit groups of the vCPU `--vcpu` names: by its label (KVM's id, "id/tid" or "tid N"), else
 * by its thread id. A value that names no vCPU of the trace is a usage error listing the ones it has.
 */
function vcpuGroups(stats: TraceStats, file: string, vcpu: string): ExitGroup[] {
  const byLabel = stats.groups.filter((g) => g.vcpu === vcpu || g.vcpu === `tid ${vcpu}`);
  if (byLabel.length > 0) return byLabel;
  const byTid = /^\d+$/.test(vcpu) ? stats.groups.filter((g) => g.tid === Number(vcpu)) : [];
  if (byTid.length > 0) return byTid;
  const labels = [...new Set(stats.groups.map((g) => g.vcpu))].sort((a, b) =>
    a.localeCompare(b, undefined, { numeric: true }),
  );
  const listed =
    labels.length > 10 ? `${labels.slice(0, 10).join(", ")}, … (${labels.length})` : labels.join(", ");
  throw new UsageError(
    `--vcpu ${JSON.stringify(vcpu)}: ${shownName(file)} has no exits of that vCPU or thread id (${labels.length === 0 ? "it has no exits" : `vCPUs: ${listed}`})`,
  );
}

function summary(file: string, stats: TraceStats, ctx: CommandContext): string[] {
  const producers = stats.producers
    .map((p) => (p === "perf" ? "perf script" : "trace-cmd/ftrace"))
    .join(" + ");
  const lines = [
    ctx.style.bold(
      `${shownName(file)}: ${formatNumber(stats.lines)} lines, ${formatNumber(stats.events)} events (${producers}), ${formatNumber(stats.exits)} VM exits` +
        `${stats.nested ? " — a nested trace" : ""}${stats.span > 0 ? `, ${stats.span >= 1 ? `${stats.span.toFixed(3)} s` : `${(stats.span * 1000).toFixed(3)} ms`}` : ""}`,
    ),
  ];
  if (stats.garbage > 0) {
    const first = stats.garbageSamples[0]!;
    lines.push(
      ctx.style.yellow(
        `${formatNumber(stats.garbage)} ${stats.garbage === 1 ? "line" : "lines"} not understood (skipped); first: line ${first.line}: ${first.why}: ${JSON.stringify(first.text.slice(0, 60))}`,
      ),
    );
  }
  if (stats.timeReversals > 0)
    lines.push(
      ctx.style.yellow(
        `${formatNumber(stats.timeReversals)} ${stats.timeReversals === 1 ? "event is" : "events are"} timestamped earlier than the event before on its thread (first: line ${stats.firstTimeReversal}): an exit whose kvm_entry is earlier than its kvm_exit is counted but not timed`,
      ),
    );
  if (stats.lostEvents > 0)
    lines.push(
      ctx.style.yellow(
        `the tracer reported ${formatNumber(stats.lostEvents)} lost events: some exits may be unpaired`,
      ),
    );
  return lines;
}

function us(value: number | null): string {
  return value === null ? "" : value >= 100 ? formatNumber(value, 0) : value.toFixed(2);
}

function pct(value: number | null): string {
  return value === null ? "" : `${(value * 100).toFixed(1)}%`;
}

function reasonFilter(ctx: CommandContext): RegExp | undefined {
  const text = stringOption(ctx.values, "reason");
  if (text === undefined) return undefined;
  try {
    return new RegExp(text, "i");
  } catch (error) {
    throw new UsageError(
      `--reason ${JSON.stringify(text)} is not a regular expression (${(error as Error).message})`,
    );
  }
}

function jsonRow(row: StatRow) {
  return {
    vcpu: row.vcpu,
    exitingLevel: row.exitingLevel,
    handledBy: row.handledBy,
    reason: row.reason,
    count: row.count,
    share: row.share,
    timeShare: row.timeShare,
    timedCount: row.timedCount,
    minUs: row.minUs,
    p50Us: row.p50Us,
    p99Us: row.p99Us,
    maxUs: row.maxUs,
    meanUs: row.meanUs,
    totalUs: row.totalUs,
  };
}

const statCommand: Command = {
  name: "trace stat",
  summary: "A perf-kvm-stat table of a KVM trace: per exit reason, count, share and time min/p50/p99/max.",
  usage: "trace stat <file|-> [--vcpu N] [--reason REGEX] [--per-vcpu] [--json|--csv]",
  description:
    "Reads the text of `trace-cmd report` or `perf script` (kvm_exit, kvm_entry, kvm_nested_vmexit, " +
    "kvm_nested_vmexit_inject, kvm_nested_vmenter, kvm_mmu_get_page; every kernel layout of them). An exit lasts from " +
    "kvm_exit to the vCPU's next kvm_entry, as in perf kvm stat. In a nested trace, L2 exits are split by who handled " +
    "them: L0 alone, or L1 after kvm_nested_vmexit_inject reflected them. Lines that are not understood are counted " +
    "and skipped. --json and --csv print one row per vCPU, level, handler and reason.",
  options: [
    { name: "vcpu", type: "string", value: "N", description: "only this vCPU (its id, or the thread id)" },
    {
      name: "reason",
      type: "string",
      value: "REGEX",
      description: "only exit reasons matching this (case-insensitive)",
    },
    { name: "per-vcpu", type: "boolean", description: "one table row per vCPU and reason" },
    JSON_OPTION,
    { name: "csv", type: "boolean", description: "print CSV rows" },
  ],
  positionals: { min: 1, max: 1, names: "a trace file (or - for stdin)" },
  examples: [
    {
      command: "trace-cmd report > trace.txt && nestvisor trace stat trace.txt",
      description: "a recorded trace",
    },
    {
      command: "perf script | nestvisor trace stat - --reason 'EPT|IO'",
      description: "perf output, EPT and I/O exits only",
    },
    { command: "nestvisor trace stat trace.txt --vcpu 0 --csv > exits.csv", description: "one vCPU as CSV" },
  ],
  run(ctx) {
    const json = booleanOption(ctx.values, "json");
    const csv = booleanOption(ctx.values, "csv");
    if (json && csv) throw new UsageError("--json and --csv cannot be used together");
    const file = ctx.positionals[0]!;
    const reason = reasonFilter(ctx);
    const { stats: all } = readTrace(ctx, file);
    const vcpu = stringOption(ctx.values, "vcpu");
    const stats = vcpu === undefined ? all : { ...all, groups: vcpuGroups(all, file, vcpu) };
    const filters = reason === undefined ? {} : { reason };
    const rows = statRows(stats, { ...filters, mergeVcpus: false });
    if (json) {
      writeJson(ctx.out, {
        file,
        lines: stats.lines,
        events: stats.events,
        kvmEvents: stats.kvmEvents,
        garbageLines: stats.garbage,
        garbageSamples: stats.garbageSamples,
        lostEvents: stats.lostEvents,
        timeReversals: stats.timeReversals,
        firstTimeReversal: stats.firstTimeReversal,
        nested: stats.nested,
        exits: stats.exits,
        nestedEntries: stats.nestedEntries,
        mmuPagesCreated: stats.mmuPagesCreated,
        rows: rows.map(jsonRow),
      });
    } else if (csv) {
      const header = [
        "vcpu",
        "exitingLevel",
        "handledBy",
        "reason",
        "count",
        "share",
        "timeShare",
        "minUs",
        "p50Us",
        "p99Us",
        "maxUs",
        "meanUs",
      ];
      ctx.out.write(
        toCsv(
          header,
          rows.map((r) => [
            r.vcpu,
            r.exitingLevel,
            r.handledBy,
            r.reason,
            r.count,
            r.share,
            r.timeShare,
            r.minUs,
            r.p50Us,
            r.p99Us,
            r.maxUs,
            r.meanUs,
          ]),
        ),
      );
    } else {
      const perVcpu = booleanOption(ctx.values, "per-vcpu");
      const shown = perVcpu ? rows : statRows(stats, { ...filters, mergeVcpus: true });
      const columns: Column[] = [];
      if (perVcpu) columns.push({ header: "vcpu" });
      if (stats.nested) columns.push({ header: "exit of" }, { header: "handled by" });
      columns.push(
        { header: "reason", minWidth: 12 },
        { header: "count", align: "right" },
        { header: "count%", align: "right" },
        { header: "time%", align: "right" },
        { header: "min µs", align: "right" },
        { header: "p50 µs", align: "right" },
        { header: "p99 µs", align: "right" },
        { header: "max µs", align: "right" },
      );
      const table = renderTable(
        columns,
        shown.map((r) => [
          ...(perVcpu ? [r.vcpu] : []),
          ...(stats.nested ? [r.exitingLevel ?? "", r.handledBy] : []),
          r.reason,
          formatNumber(r.count),
          pct(r.share),
          pct(r.timeShare),
          us(r.minUs),
          us(r.p50Us),
          us(r.p99Us),
          us(r.maxUs),
        ]),
        { style: ctx.style },
      );
      const lines = [...summary(file, stats, ctx), ""];
      if (shown.length === 0) lines.push("no VM exits match");
      else lines.push(...table);
      // Per-vCPU totals.
      const byVcpu = new Map<string, { count: number; us: number }>();
      for (const r of rows) {
        const t = byVcpu.get(r.vcpu) ?? { count: 0, us: 0 };
        t.count += r.count;
        t.us += r.totalUs ?? 0;
        byVcpu.set(r.vcpu, t);
      }
      if (!perVcpu && byVcpu.size > 1) {
        lines.push(
          "",
          ...renderTable(
            [{ header: "vcpu" }, { header: "exits", align: "right" }, { header: "time µs", align: "right" }],
            [...byVcpu.entries()]
              .sort((a, b) => a[0].localeCompare(b[0], undefined, { numeric: true }))
              .map(([v, t]) => [v, formatNumber(t.count), formatNumber(t.us, 0)]),
            { style: ctx.style },
          ),
        );
      }
      if (stats.nested)
        lines.push(
          "",
          `${formatNumber(stats.nestedEntries)} nested VM entries (kvm_nested_vmenter); time = kvm_exit to the next kvm_entry of the vCPU`,
        );
      if (stats.mmuPagesCreated > 0)
        lines.push(
          `${formatNumber(stats.mmuPagesCreated)} shadow/TDP pages created (kvm_mmu_get_page ... new)`,
        );
      writeLines(ctx.out, lines);
    }
    return 0;
  },
};

const replayCommand: Command = {
  name: "trace replay",
  summary: "Feed a trace's exit mix through the model and estimate the cycles each preset would spend on it.",
  usage: "trace replay <file|-> [--presets a,b] [--profile P] [--iterations N] [--json]",
  description:
    "Each exit reason of the trace (at its level, L1 or L2) becomes a one-operation workload that causes that exit " +
    "(the I/O port and CR number come from the trace's qualifications). The model's cycles per operation under each " +
    "preset, times the trace's count, give the estimate. In a nested trace, L1's VMX-instruction exits are the work " +
    "L1 does for reflected L2 exits, which the model produces inside the L2 round trips: they are shown as covered. " +
    "Reasons with no workload operation are listed as not modelled.",
  options: [
    presetsOption("kernel presets", "v5.2,v5.3,v6.12"),
    profileOption(),
    iterationsOption("operations simulated per reason", "200"),
    {
      name: "vcpu",
      type: "string",
      value: "N",
      description: "only this vCPU's exits (its id, or the thread id)",
    },
    JSON_OPTION,
  ],
  positionals: { min: 1, max: 1, names: "a trace file (or - for stdin)" },
  examples: [
    {
      command: "nestvisor trace replay trace.txt",
      description: "what v5.2, v5.3 and today's KVM would spend on this mix",
    },
    {
      command: "nestvisor trace replay trace.txt --presets v4.19,v6.12 --json",
      description: "two presets, as JSON",
    },
  ],
  run(ctx) {
    const file = ctx.positionals[0]!;
    const presetNames = checkPresets(listOption(ctx.values, "presets") ?? ["v5.2", "v5.3", "v6.12"]);
    const profile = loadProfile(stringOption(ctx.values, "profile"), ctx.cwd);
    const iterations = integerOption(ctx.values, "iterations", 10, 100_000) ?? 200;
    const { stats: all } = readTrace(ctx, file);
    const vcpu = stringOption(ctx.values, "vcpu");
    const stats = vcpu === undefined ? all : { ...all, groups: vcpuGroups(all, file, vcpu) };
    const progress = ctx.progress("");
    const presets = presetNames.map((name) => ({ name, flags: presetFlags(name, {}) }));
    let started = false;
    const rows = replayTrace(stats, {
      presets,
      profile,
      iterations,
      onRun: (done, total, what) => {
        if (!started) {
          progress.start(total);
          started = true;
        }
        progress.tick(done, what);
      },
    });
    progress.finish();
    const totals: Record<string, number> = {};
    for (const p of presetNames) totals[p] = rows.reduce((a, r) => a + (r.totalCycles[p] ?? 0), 0);
    const exitCount = rows.reduce((a, r) => a + r.count, 0);
    const simulated = rows.filter((r) => r.status === "simulated").reduce((a, r) => a + r.count, 0);
    const covered = rows.filter((r) => r.status === "covered").reduce((a, r) => a + r.count, 0);
    if (booleanOption(ctx.values, "json")) {
      writeJson(ctx.out, {
        file,
        profile: profile.name,
        presets: presetNames,
        nested: stats.nested,
        exits: exitCount,
        simulatedExits: simulated,
        coveredExits: covered,
        rows,
        totalCycles: totals,
      });
      return 0;
    }
    const ghz = profile.tscGHz.value;
    const lines = [...summary(file, stats, ctx), ""];
    lines.push(
      ctx.style.bold("Model cycles per traced exit, by preset"),
      ...renderTable(
        [
          { header: "reason", minWidth: 14 },
          { header: "level" },
          ...(stats.nested ? [{ header: "handled" }] : []),
          { header: "count", align: "right" },
          ...presetNames.map((p) => ({ header: p, align: "right" as const, shrink: false })),
          { header: "replayed as", minWidth: 12, wrap: true },
        ],
        rows.map((r) => [
          r.reason,
          `L${r.level}`,
          ...(stats.nested ? [r.handledBy ?? ""] : []),
          formatNumber(r.count),
          ...presetNames.map((p) => {
            const c = r.cyclesPerExit[p];
            if (c === undefined) return "";
            const noExit = r.exitsPerOperation[p] === 0 ? "*" : "";
            return `${formatAmount(c)}${noExit}`;
          }),
          r.status === "simulated"
            ? r.operation!
            : r.status === "covered"
              ? "covered by the L2 exits"
              : "not modelled",
        ]),
        { style: ctx.style },
      ),
      "",
      ...renderTable(
        [
          { header: "preset" },
          { header: "estimated cycles", align: "right" },
          { header: "at TSC", align: "right" },
          { header: "vs first", align: "right" },
        ],
        presetNames.map((p) => [
          p,
          formatNumber(totals[p]!),
          `${formatNumber(totals[p]! / (ghz * 1000), 0)} µs`,
          totals[presetNames[0]!]! === 0
            ? ""
            : `${(((totals[p]! - totals[presetNames[0]!]!) / totals[presetNames[0]!]!) * 100).toFixed(1)}%`,
        ]),
        { style: ctx.style },
      ),
      "",
      `estimates cover ${formatNumber(simulated)} of ${formatNumber(exitCount)} exits (${exitCount === 0 ? 0 : ((simulated / exitCount) * 100).toFixed(1)}%)` +
        (covered > 0
          ? `; ${formatNumber(covered)} L1 VMX-instruction exits are part of the simulated L2 round trips`
          : "") +
        `; profile ${profile.name} at ${ghz} GHz`,
    );
    if (rows.some((r) => Object.values(r.exitsPerOperation).some((x) => x === 0))) {
      lines.push(
        "* the model does not exit for this operation under that preset (the cost is the operation itself)",
      );
    }
    writeLines(ctx.out, lines);
    return 0;
  },
};

export const traceGroup: CommandGroup = {
  name: "trace",
  summary: "Read KVM traces from trace-cmd report or perf script: statistics, or a replay through the model.",
  subcommands: [statCommand, replayCommand],
  examples: [
    { command: "nestvisor trace stat trace.txt", description: "a perf-kvm-stat table" },
    {
      command: "nestvisor trace replay trace.txt --presets v5.2,v6.12",
      description: "what two kernels would spend on it",
    },
  ],
};
