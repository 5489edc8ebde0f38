import type { Command, CommandContext } from "../framework/command";
import { UsageError } from "../framework/errors";
import { formatAmount } from "../framework/format";
import { wrapText } from "../framework/help";
import {
  booleanOption,
  integerOption,
  JSON_OPTION,
  repeatedOption,
  stringOption,
} from "../framework/options";
import { writeJson, writeLines } from "../framework/output";
import { commandModel, onCommandModel } from "../model/command-model";
import { type Effects, flagEffects, type StepEffect } from "../model/flag-effects";
import { modelFailure } from "../model/model-module";
import { flagOption, modelOption, paramOption, presetOption, profileOption } from "../model/model-options";
import { type RoundTrip, recordRoundTrip } from "../model/round-trip";
import { buildProgram, parseParams, resolveWorkload } from "../model/workload-ref";

const WIDTH = 100;
const RUN_ITERATIONS = 3;

function signed(n: number): string {
  return `${n > 0 ? "+" : n < 0 ? "-" : "±"}${formatAmount(Math.abs(n))}`;
}

function effectText(e: StepEffect): string {
  const setting = `${e.flag}=${e.value ? "on" : "off"}`;
  if (e.kind === "removes") return `${setting} removes it`;
  const events = Object.entries(e.events)
    .sort((a, b) => Math.abs(b[1]) - Math.abs(a[1]))
    .slice(0, 4)
    .map(([name, d]) => `${d > 0 ? "+" : ""}${formatAmount(d)} ${name}`);
  return `${setting}: ${events.join(", ")}${events.length < Object.keys(e.events).length ? ", …" : ""} (${signed(e.cyclesDelta)} cycles)`;
}

function render(ctx: CommandContext, title: string, trip: RoundTrip, effects: Effects | undefined): string[] {
  const s = ctx.style;
  const levels = trip.byLevel
    .map((c, l) => (c > 0 ? `L${l} ${formatAmount(c)}` : ""))
    .filter((x) => x !== "")
    .join(" · ");
  const lines = [
    s.bold(title),
    `${formatAmount(trip.cycles)} cycles in ${trip.steps.length} steps (${levels})`,
    "",
  ];
  trip.steps.forEach((step, i) => {
    const head = `${String(i + 1).padStart(3)}  ${(step.transition ?? `L${step.level}`).padEnd(6)} ${step.step}`;
    const cycles = `${formatAmount(step.cycles)} cycles`;
    lines.push(s.bold(head) + " ".repeat(Math.max(1, WIDTH - head.length - cycles.length)) + cycles);
    const pad = " ".repeat(12);
    lines.push(...wrapText(step.kvm, WIDTH, 12 + 9, `${pad}mirrors  `).map((l) => s.dim(l)));
    const counts = step.events
      .map((e) => `${e.name} ${formatAmount(e.count)} (${formatAmount(e.cycles)})`)
      .join(" · ");
    lines.push(...wrapText(counts === "" ? "nothing counted" : counts, WIDTH, 12 + 9, `${pad}counts   `));
    if (effects !== undefined) {
      const list = effects.byStep[i] ?? [];
      const text = list.length === 0 ? "no flag changes this step" : list.map(effectText).join("; ");
      lines.push(
        ...wrapText(text, WIDTH, 12 + 9, `${pad}flags    `).map((l) =>
          list.length === 0 ? s.dim(l) : s.yellow(l),
        ),
      );
    }
  });
  if (effects !== undefined) {
    for (const a of effects.added) {
      const what = a.steps
        .map((x) => `${x.count}× L${x.level} ${x.step} (${formatAmount(x.cycles)})`)
        .join("; ");
      lines.push(...wrapText(what, WIDTH, 6, `  ${s.yellow(`${a.flag}=${a.value ? "on" : "off"} adds:`)} `));
    }
    lines.push("", s.bold("Each flag flipped alone, on this round trip:"));
    const sorted = [...effects.summary].sort(
      (a, b) => Math.abs(b.delta ?? Number.POSITIVE_INFINITY) - Math.abs(a.delta ?? Number.POSITIVE_INFINITY),
    );
    for (const f of sorted) {
      const setting = `${f.flag}=${f.value ? "on" : "off"}`.padEnd(36);
      if (f.skipped !== undefined) lines.push(s.dim(`  ${setting} ${f.skipped}`));
      else if (f.cycles === null)
        lines.push(`  ${setting} no ${trip.reason} round trip at all (the exit no longer happens)`);
      else if (f.delta === 0) lines.push(s.dim(`  ${setting} no change`));
      else
        lines.push(
          `  ${setting} ${signed(f.delta!)} cycles (${((f.delta! / trip.cycles) * 100).toFixed(1)}%)`,
        );
    }
  }
  return lines;
}

export const explainCommand: Command = {
  name: "explain",
  summary:
    "Walk through one nested round trip step by step: level, KVM function, events and cycles, and the flags that change each step.",
  usage: "explain <workload|file> [options]",
  description:
    `The workload runs ${RUN_ITERATIONS} iterations; the round trip explained is the first of the last one (warm), or ` +
    "the last one with --reason, or the N-th with --round-trip. A round trip goes from the workload level's VM exit " +
    "to the VM entry that resumes it. Each step names the KVM function it mirrors and the events it counts with their " +
    "cycles; then every flag is flipped alone and the same round trip recorded again, to show which flag removes or " +
    "changes which step (--no-flags skips that).",
  options: [
    {
      name: "level",
      short: "l",
      type: "string",
      value: "N",
      description: "level the workload runs at",
      defaultText: "2",
    },
    presetOption(),
    flagOption(),
    paramOption(),
    profileOption(),
    modelOption("explain a model module's ModelSpec, built on top of --preset, --flag and --profile"),
    {
      name: "reason",
      short: "r",
      type: "string",
      value: "R",
      description: "explain a round trip of this exit reason",
    },
    { name: "round-trip", type: "string", value: "N", description: "explain the N-th round trip of the run" },
    { name: "no-flags", type: "boolean", description: "do not rerun with each flag flipped" },
    JSON_OPTION,
  ],
  positionals: { min: 1, max: 1, names: "a workload name or file" },
  examples: [
    { command: "nestvisor explain cpuid", description: "a nested CPUID round trip under today's kernel" },
    {
      command: "nestvisor explain cpuid --preset v5.2",
      description: "the same before the 2019 VMX optimizations",
    },
    {
      command: "nestvisor explain toggle_cr0_wp --preset v5.17 --reason CR_ACCESS",
      description: "the CR0.WP toggle of seed 001",
    },
    {
      command: "nestvisor explain cpuid --model examples/enlightened-vmcs/model.mjs --no-flags",
      description: "the same round trip with an enlightened VMCS",
    },
  ],
  async run(ctx) {
    const ref = resolveWorkload(ctx.positionals[0]!, ctx.cwd);
    const level = integerOption(ctx.values, "level", 1, 3) ?? (ref.kind === "builtin" ? 2 : undefined);
    const params = parseParams(repeatedOption(ctx.values, "param"));
    if (ref.kind === "builtin") {
      if ("iterations" in ref.builtin.parameters && !("iterations" in params))
        params.iterations = String(RUN_ITERATIONS);
      if ("pages" in ref.builtin.parameters && !("pages" in params)) params.pages = String(RUN_ITERATIONS);
    }
    const program = buildProgram(ref, { ...(level === undefined ? {} : { level }), params });
    const chosen = await commandModel(ctx.values, ctx.cwd);
    const { model, modelName, flags } = chosen;
    const { preset, profile } = model;
    const reason = stringOption(ctx.values, "reason");
    const index = integerOption(ctx.values, "round-trip", 1, 1_000_000);
    const select = { ...(reason === undefined ? {} : { reason }), ...(index === undefined ? {} : { index }) };
    const options = { program, model, iterations: RUN_ITERATIONS, select };
    const where = `${program.name} at L${program.setup.level}`;
    const recorded = onCommandModel(chosen, where, () => recordRoundTrip(options));
    const trip = recorded.trip;
    if (trip === undefined || recorded.anchor === undefined) {
      if (recorded.trips === 0) {
        throw new UsageError(
          `${program.name} at L${program.setup.level} under ${preset} makes no VM exit: nothing to explain`,
        );
      }
      throw new UsageError(
        `no such round trip: the run has ${recorded.trips} (exit reasons: ${recorded.reasons.join(", ")})${index !== undefined ? `; --round-trip goes up to ${recorded.trips}` : ""}`,
      );
    }
    const progress = ctx.progress("");
    let effects: Effects | undefined;
    if (!booleanOption(ctx.values, "no-flags")) {
      try {
        effects = flagEffects(trip, recorded.anchor, options, (i, total, flag) => {
          if (i === 0) progress.start(total);
          progress.tick(i, `${flag} flipped`);
        });
      } catch (error) {
        if (modelName !== null) throw modelFailure(error, modelName, `${where} with a flag flipped`);
        throw error;
      }
      progress.finish();
    }
    const title = `${program.name} at L${program.setup.level}: ${trip.reason} round trip ${trip.index + 1} of ${trip.count}, ${modelName === null ? "" : `model ${modelName}, `}preset ${preset}${Object.keys(flags).length > 0 ? " + flags" : ""}, profile ${profile.name}`;
    if (booleanOption(ctx.values, "json")) {
      writeJson(ctx.out, {
        workload: program.name,
        level: program.setup.level,
        preset,
        model: modelName,
        flags,
        profile: profile.name,
        reason: trip.reason,
        roundTrip: trip.index + 1,
        roundTrips: trip.count,
        cycles: trip.cycles,
        cyclesByLevel: Object.fromEntries(
          trip.byLevel.map((c, l) => [`L${l}`, c]).filter(([, c]) => (c as number) > 0),
        ),
        steps: trip.steps.map((step, i) => ({
          index: i + 1,
          level: step.level,
          transition: step.transition ?? null,
          step: step.step,
          kvm: step.kvm,
          cycles: step.cycles,
          events: step.events,
          ...(effects === undefined ? {} : { flags: effects.byStep[i] }),
        })),
        ...(effects === undefined ? {} : { addedByFlags: effects.added, flagSummary: effects.summary }),
      });
      return 0;
    }
    writeLines(ctx.out, render(ctx, title, trip, effects));
    return 0;
  },
};
