import { resolve } from "node:path";
import type { Command } from "../framework/command";
import { toCsv } from "../framework/csv";
import { EXIT, UsageError } from "../framework/errors";
import { formatNumber } from "../framework/format";
import {
  booleanOption,
  integerOption,
  JSON_OPTION,
  listOption,
  parseInteger,
  repeatedOption,
  stringOption,
} from "../framework/options";
import { writeJson, writeLines } from "../framework/output";
import {
  compareVariants,
  type Matrix,
  type ModelSource,
  runMatrix,
  snapshotMismatches,
  type Variant,
} from "../model/compare-matrix";
import { compareReport } from "../model/compare-report";
import { checkPresets, flagSettings, parseFlagOptions } from "../model/flag-args";
import { importModelModule, modelFromExports } from "../model/model-module";
import {
  flagOption,
  iterationsOption,
  MAX_ITERATIONS,
  modelOption,
  paramOption,
  presetsOption,
  profileOption,
} from "../model/model-options";
import { loadProfile } from "../model/profile-ref";
import { type ResultRow, resultRow } from "../model/result-row";
import { renderBarChart } from "../model/svg-chart";
import { parseParams, resolveWorkload, takesIterations } from "../model/workload-ref";
import { checkOutputPath, writeWholeFile } from "../sweep/output-file";

/** The kvm-unit-tests x86/vmexit.c microbenchmarks the model mirrors, in that file's spirit. */
export const DEFAULT_COMPARE_WORKLOADS = [
  "cpuid",
  "vmcall",
  "inl_from_kernel",
  "outl_to_kernel",
  "inl_from_qemu",
  "inl_from_pmtimer",
  "toggle_cr0_wp",
] as const;
export const DEFAULT_COMPARE_PRESETS = ["v5.2", "v5.3", "v6.12"] as const;
export const DEFAULT_COMPARE_LEVELS = [1, 2] as const;

/** The JSON row of a variant's result. */
function variantRow(
  workload: string,
  variant: Variant,
  result: NonNullable<Matrix["cells"][number]["result"]>,
): ResultRow {
  return resultRow(
    {
      workload,
      preset: variant.preset,
      model: variant.modelName,
      profile: variant.model.profile.name,
      flags: variant.overrides,
    },
    result,
  );
}

function csvRows(matrix: Matrix): string {
  const rows: (string | number)[][] = [];
  for (const cell of matrix.cells) {
    if (cell.result === null) continue;
    const variant = matrix.variants[cell.variant]!;
    const row = variantRow(matrix.workloads[cell.workload]!.name, variant, cell.result);
    const key = [row.workload, row.level, row.preset, row.model ?? "", flagSettings(row.flags).join(";")];
    rows.push([...key, "cyclesPerIteration", row.cyclesPerIteration]);
    for (const [level, cycles] of Object.entries(row.cyclesByLevel))
      rows.push([...key, `cycles.${level}`, cycles]);
    for (const [name, count] of Object.entries(row.counters)) rows.push([...key, `counter.${name}`, count]);
  }
  return toCsv(["workload", "level", "preset", "model", "flags", "metric", "value"], rows);
}

function chart(matrix: Matrix, profileName: string, iterationsText: string): string {
  const groups = matrix.workloads.flatMap((ref, w) =>
    matrix.levels.map((level) => ({
      label: `${ref.name} · L${level}`,
      bars: matrix.variants.map((variant, v) => ({
        label: variant.label,
        value: matrix.cell(w, level, v)?.result?.cyclesPerIteration ?? null,
      })),
    })),
  );
  return renderBarChart({
    title: "nestvisor compare: cycles per iteration",
    subtitle: `profile ${profileName}, ${iterationsText}; bars scaled within each workload and level`,
    unit: "cycles per iteration",
    groups,
  });
}

export const compareCommand: Command = {
  name: "compare",
  summary: "Run workloads at each level under each kernel preset and compare cycles per iteration.",
  usage: "compare [options]",
  description:
    "With no options: the vmexit-style built-ins (" +
    DEFAULT_COMPARE_WORKLOADS.join(", ") +
    `) at L1 and L2 under ${DEFAULT_COMPARE_PRESETS.join(", ")}: cycles per iteration under each preset, the change ` +
    "against the first, the L2/L1 ratio, and the counters that differ most. --flag applies on top of every preset; " +
    "--ablate adds, for each preset, one variant per optimization flag flipped alone. --model (repeatable) adds, " +
    "for each preset, one variant per model module, built on top of that preset and --flag/--profile: the module's " +
    "policies against the project's KVM model. --vs (repeatable) adds, for each preset, one variant with those flags " +
    "set: a what-if such as 2 MiB host pages, shadow paging or no VMCS shadowing. Every run's guest-visible " +
    "results are compared across variants: a difference is a failed check (exit 1). With --json every figure is per " +
    "iteration.",
  options: [
    {
      name: "workloads",
      short: "w",
      type: "string",
      value: "a,b",
      description: "built-in workloads or workload files",
      defaultText: "the vmexit-style built-ins",
    },
    {
      name: "levels",
      short: "l",
      type: "string",
      value: "1,2,3",
      description: "levels the workloads run at",
      defaultText: "1,2",
    },
    presetsOption("kernel presets (nestvisor presets)", DEFAULT_COMPARE_PRESETS.join(",")),
    flagOption("flag set on top of every preset (nestvisor flags)"),
    {
      name: "ablate",
      type: "boolean",
      description: "add one variant per optimization flag flipped alone, for each preset",
    },
    {
      name: "vs",
      type: "string",
      multiple: true,
      value: "name=on|off,…",
      description: "add a variant per preset with these flags set (a what-if; nestvisor flags) (repeatable)",
    },
    modelOption("add a variant per preset: a model module's ModelSpec on top of the preset", true),
    profileOption("cost profile (nestvisor profiles)"),
    iterationsOption("iterations of workloads that take an iterations parameter", "1000"),
    paramOption("built-in workload parameter (nestvisor workloads)"),
    {
      name: "top",
      type: "string",
      value: "N",
      description: "counters listed per workload and level",
      defaultText: "3, or 1 with --ablate",
    },
    {
      name: "chart",
      type: "string",
      value: "file.svg",
      description: "also write a bar chart of the table as SVG",
    },
    JSON_OPTION,
    {
      name: "csv",
      type: "boolean",
      description: "print long-format CSV: workload,level,preset,flags,metric,value",
    },
  ],
  examples: [
    { command: "nestvisor compare", description: "the seed-003 era and today on the vmexit microbenchmarks" },
    {
      command: "nestvisor compare --workloads cpuid,toggle_cr0_wp --presets v6.12 --ablate",
      description: "what each optimization is worth on its own",
    },
    {
      command: "nestvisor compare --levels 1,2,3 --flag shadowVmcs=off",
      description: "three levels without VMCS shadowing",
    },
    {
      command: "nestvisor compare -w touch_memory -p v6.12 --vs hugePages=on --vs l1Ept=off",
      description: "first touch of memory on 2 MiB host pages, and with L1 on shadow paging",
    },
    {
      command: "nestvisor compare -m examples/root-cache-8/model.mjs -w cr3_switch -l 1 -f ept=off",
      description: "a model module (8 previous roots) next to today's KVM",
    },
    {
      command: "nestvisor compare --chart compare.svg --json > compare.json",
      description: "a chart and machine-readable rows",
    },
  ],
  async run(ctx) {
    const json = booleanOption(ctx.values, "json");
    const csv = booleanOption(ctx.values, "csv");
    if (json && csv) throw new UsageError("--json and --csv cannot be used together");
    const ablate = booleanOption(ctx.values, "ablate");
    const workloadNames = listOption(ctx.values, "workloads") ?? [...DEFAULT_COMPARE_WORKLOADS];
    const levels = (listOption(ctx.values, "levels") ?? DEFAULT_COMPARE_LEVELS.map(String)).map((l) =>
      parseInteger(l.replace(/^L/i, ""), "a level in --levels", 1, 3),
    );
    const presets = checkPresets(listOption(ctx.values, "presets") ?? [...DEFAULT_COMPARE_PRESETS]);
    const overrides = parseFlagOptions(repeatedOption(ctx.values, "flag"));
    // Each --vs is one variant; its comma-separated assignments go together.
    const whatIfs = repeatedOption(ctx.values, "vs").map((text) => {
      const flags = parseFlagOptions([text]);
      if (Object.keys(flags).length === 0)
        throw new UsageError(`--vs "${text}" sets no flag; give name=on|off`);
      return flags;
    });
    const profile = loadProfile(stringOption(ctx.values, "profile"), ctx.cwd);
    const iterations = integerOption(ctx.values, "iterations", 1, MAX_ITERATIONS);
    const params = parseParams(repeatedOption(ctx.values, "param"));
    const top = integerOption(ctx.values, "top", 0, 1000) ?? (ablate ? 1 : 3);
    const chartPath = stringOption(ctx.values, "chart");
    // A path that cannot be written is found before the runs, not after them.
    if (chartPath !== undefined) checkOutputPath(resolve(ctx.cwd, chartPath), chartPath);
    const workloads = workloadNames.map((name) => resolveWorkload(name, ctx.cwd));
    const distinctLevels = [...new Set(levels)].sort((a, b) => a - b);
    const models: ModelSource[] = [];
    for (const shown of repeatedOption(ctx.values, "model")) {
      const exports = await importModelModule(shown, ctx.cwd);
      models.push({ shown, build: (base) => modelFromExports(exports, shown, base) });
    }
    const variants = compareVariants(presets, overrides, ablate, profile, models, whatIfs);
    const matrix = runMatrix(workloads, distinctLevels, variants, {
      settings: { ...(iterations === undefined ? {} : { iterations }), params },
      progress: ctx.progress(""),
    });
    const mismatches = snapshotMismatches(matrix);
    const counts = [...new Set(matrix.cells.map((c) => c.result?.iterations).filter((n) => n !== undefined))];
    const iterationsText =
      counts.length === 1
        ? `${formatNumber(counts[0]!)} iterations`
        : `iterations as each workload sets them`;
    if (iterations !== undefined && !workloads.some(takesIterations)) {
      ctx.warn("--iterations has no effect: none of these workloads takes an iterations parameter");
    }
    if (chartPath !== undefined) {
      // Written whole or not at all (a temporary file renamed into place).
      writeWholeFile(resolve(ctx.cwd, chartPath), chartPath, (write) =>
        write(chart(matrix, profile.name, iterationsText)),
      );
      if (!json && !csv) ctx.err.write(`chart written to ${chartPath}\n`);
    }
    if (json) {
      const rows = matrix.cells.flatMap((cell) => {
        if (cell.result === null) return [];
        const variant = matrix.variants[cell.variant]!;
        return [variantRow(matrix.workloads[cell.workload]!.name, variant, cell.result)];
      });
      writeJson(ctx.out, { rows });
    } else if (csv) {
      ctx.out.write(csvRows(matrix));
    } else {
      writeLines(
        ctx.out,
        compareReport(matrix, {
          profile,
          iterationsText,
          top,
          mismatches,
          style: ctx.style,
          models: models.map((m, i) => {
            const model = variants.filter((v) => v.modelName !== null && v.group === 0)[i]!.model;
            return { shown: m.shown, name: model.name, policies: Object.keys(model.policies) };
          }),
        }),
      );
    }
    if (mismatches.length > 0) {
      const m = mismatches[0]!;
      ctx.warn(
        `check failed: ${m.workload} at L${m.level} saw different guest-visible results under ${m.a} and ${m.b}` +
          (mismatches.length > 1 ? ` (and ${mismatches.length - 1} more)` : ""),
      );
      return EXIT.FAILED;
    }
    return EXIT.OK;
  },
};
