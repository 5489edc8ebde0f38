import type { CostProfile } from "@nestvisor/hypervisor";
import { formatAmount, formatChange, formatNumber, formatRatio } from "../framework/format";
import type { Style } from "../framework/style";
import { type Column, renderTable } from "../framework/table";
import type { Matrix, SnapshotMismatch } from "./compare-matrix";
import { iterationsOf } from "./result-row";

/** The text report of `nestvisor compare`: a cycles table, then the counters that differ most. */

const NOT_MODELLED = "n/m";

function perIteration(matrix: Matrix, w: number, level: number, v: number): number | undefined {
  const result = matrix.cell(w, level, v)?.result;
  return result ? result.cyclesPerIteration : undefined;
}

function baselineOf(matrix: Matrix, v: number): number {
  const group = matrix.variants[v]!.group;
  return matrix.variants.findIndex((x) => x.group === group);
}

/** A flipped variant as "flag=off", with its preset when several presets are ablated. */
function variantLabel(matrix: Matrix, v: number): string {
  const variant = matrix.variants[v]!;
  const several = new Set(matrix.variants.map((x) => x.group)).size > 1;
  if (variant.flipped === undefined || several) return variant.label;
  return variant.short;
}

/** Whether the variants form one group per preset (--ablate or --model). */
function grouped(matrix: Matrix): boolean {
  return matrix.variants.some((v) => v.flipped !== undefined || v.modelName !== null);
}

export function cyclesTable(matrix: Matrix, style: Style): string[] {
  const ratioLevels = matrix.levels.includes(1) ? matrix.levels.filter((l) => l > 1) : [];
  const columns: Column[] = [
    { header: "workload", minWidth: 10 },
    { header: "variant", minWidth: 12 },
  ];
  for (const level of matrix.levels) {
    columns.push({ header: `L${level} cyc/it`, align: "right" }, { header: "Δ", align: "right" });
  }
  for (const level of ratioLevels) columns.push({ header: `L${level}/L1`, align: "right" });
  const rows: string[][] = [];
  matrix.workloads.forEach((ref, w) => {
    matrix.variants.forEach((variant, v) => {
      const base = baselineOf(matrix, v);
      const label = v !== base && grouped(matrix) ? `  ${variant.short}` : variant.label;
      const row = [v === 0 ? ref.name : "", label];
      for (const level of matrix.levels) {
        const value = perIteration(matrix, w, level, v);
        const baseValue = perIteration(matrix, w, level, base);
        row.push(value === undefined ? NOT_MODELLED : formatAmount(value));
        if (v === base || value === undefined || baseValue === undefined) row.push(v === base ? "" : "");
        else {
          const change = formatChange(baseValue, value);
          const colour = value < baseValue ? style.green : value > baseValue ? style.red : (t: string) => t;
          row.push(change === "0.0%" ? style.dim(change) : colour(change));
        }
      }
      for (const level of ratioLevels) {
        const l1 = perIteration(matrix, w, 1, v);
        const ln = perIteration(matrix, w, level, v);
        row.push(l1 === undefined || ln === undefined || l1 === 0 ? "" : formatRatio(ln / l1));
      }
      rows.push(row);
    });
  });
  return renderTable(columns, rows, { style });
}

interface CounterDifference {
  readonly workload: number;
  readonly level: number;
  readonly name: string;
  /** Per variant, per iteration (undefined where the cell did not run). */
  readonly values: readonly (number | undefined)[];
  /** Largest cycle change per iteration against the baseline of any variant. */
  readonly weight: number;
  /** Cycles per count in the profile. */
  readonly cost: number;
}

function counterDifferences(matrix: Matrix, profile: CostProfile): CounterDifference[] {
  const out: CounterDifference[] = [];
  matrix.workloads.forEach((_, w) => {
    for (const level of matrix.levels) {
      const perVariant = matrix.variants.map((_, v) => {
        const result = matrix.cell(w, level, v)?.result;
        if (!result) return undefined;
        const n = iterationsOf(result);
        return new Map(result.attribution.events.map((e) => [e.name, e.count / n]));
      });
      const names = new Set<string>();
      for (const m of perVariant) for (const name of m?.keys() ?? []) names.add(name);
      for (const name of names) {
        const values = perVariant.map((m) => (m === undefined ? undefined : (m.get(name) ?? 0)));
        const cost = (profile.events as Readonly<Record<string, { cycles: number }>>)[name]?.cycles ?? 0;
        let weight = 0;
        values.forEach((value, v) => {
          const base = values[baselineOf(matrix, v)];
          if (value === undefined || base === undefined) return;
          weight = Math.max(weight, Math.abs(value - base) * Math.max(cost, 1e-9));
        });
        if (weight > 0) out.push({ workload: w, level, name, values, weight, cost });
      }
    }
  });
  return out;
}

function topByGroup<T extends { workload: number; level: number; weight: number }>(
  items: T[],
  top: number,
): T[] {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const key = `${item.workload}/${item.level}`;
    const list = groups.get(key) ?? [];
    list.push(item);
    groups.set(key, list);
  }
  const out: T[] = [];
  for (const list of groups.values()) out.push(...list.sort((a, b) => b.weight - a.weight).slice(0, top));
  return out.sort((a, b) => a.workload - b.workload || a.level - b.level);
}

/** The counters that differ most between variants (per iteration), `top` per workload and level. */
export function countersTable(matrix: Matrix, profile: CostProfile, top: number, style: Style): string[] {
  const diffs = counterDifferences(matrix, profile);
  if (diffs.length === 0 || top === 0) return [];
  const wide = matrix.variants.length <= 5;
  if (wide) {
    const columns: Column[] = [
      { header: "workload", minWidth: 10 },
      { header: "level" },
      { header: "counter (per iteration)", minWidth: 16 },
      ...matrix.variants.map((v) => ({ header: v.label, align: "right" as const, shrink: false })),
    ];
    let previousWorkload = -1;
    let previousKey = "";
    const rows = topByGroup(diffs, top).map((d) => {
      const key = `${d.workload}/${d.level}`;
      const firstOfWorkload = d.workload !== previousWorkload;
      const firstOfLevel = key !== previousKey;
      previousWorkload = d.workload;
      previousKey = key;
      return [
        firstOfWorkload ? matrix.workloads[d.workload]!.name : "",
        firstOfLevel ? `L${d.level}` : "",
        d.name,
        ...d.values.map((x) => (x === undefined ? NOT_MODELLED : formatAmount(x))),
      ];
    });
    return renderTable(columns, rows, { style });
  }
  // Ablation: one line per flipped flag that changed something, its largest counter change.
  const rows: string[][] = [];
  const byVariant: {
    workload: number;
    level: number;
    variant: number;
    name: string;
    base: number;
    value: number;
    weight: number;
  }[] = [];
  for (const d of diffs) {
    d.values.forEach((value, v) => {
      const b = baselineOf(matrix, v);
      const base = d.values[b];
      if (v === b || value === undefined || base === undefined || value === base) return;
      byVariant.push({
        workload: d.workload,
        level: d.level,
        variant: v,
        name: d.name,
        base,
        value,
        weight: Math.abs(value - base) * Math.max(d.cost, 1e-9),
      });
    });
  }
  const seen = new Map<string, number>();
  byVariant.sort(
    (a, b) => a.workload - b.workload || a.level - b.level || a.variant - b.variant || b.weight - a.weight,
  );
  let previousWorkload = -1;
  let previousGroup = "";
  for (const item of byVariant) {
    const key = `${item.workload}/${item.level}/${item.variant}`;
    const count = seen.get(key) ?? 0;
    if (count >= top) continue;
    seen.set(key, count + 1);
    const group = `${item.workload}/${item.level}`;
    const firstOfWorkload = item.workload !== previousWorkload;
    const firstOfLevel = group !== previousGroup;
    previousWorkload = item.workload;
    previousGroup = group;
    rows.push([
      firstOfWorkload ? matrix.workloads[item.workload]!.name : "",
      firstOfLevel ? `L${item.level}` : "",
      variantLabel(matrix, item.variant),
      item.name,
      `${formatAmount(item.base)} → ${formatAmount(item.value)}`,
    ]);
  }
  return renderTable(
    [
      { header: "workload", minWidth: 10 },
      { header: "level" },
      { header: "variant", minWidth: 16 },
      { header: "counter (per iteration)", minWidth: 16 },
      { header: "baseline → variant", align: "right" },
    ],
    rows,
    { style },
  );
}

export interface ReportOptions {
  readonly profile: CostProfile;
  readonly iterationsText: string;
  readonly top: number;
  readonly mismatches: readonly SnapshotMismatch[];
  readonly style: Style;
  /** The --model modules, for the legend under the table. */
  readonly models?: readonly {
    readonly shown: string;
    readonly name: string;
    readonly policies: readonly string[];
  }[];
}

export function compareReport(matrix: Matrix, options: ReportOptions): string[] {
  const { style } = options;
  const ablate = matrix.variants.some((v) => v.flipped !== undefined);
  const perPreset = new Set(matrix.variants.map((v) => v.group)).size > 1;
  const lines = [
    style.bold(
      `Cycles per iteration (profile ${options.profile.name}, ${options.iterationsText}); Δ against ${perPreset ? "each preset" : `the first variant (${matrix.variants[0]!.label})`}`,
    ),
    "",
    ...cyclesTable(matrix, style),
  ];
  if ((options.models ?? []).length > 0) lines.push("");
  for (const m of options.models ?? []) {
    const replaced = m.policies.length === 0 ? "no policy replaced" : `replaces ${m.policies.join(", ")}`;
    lines.push(style.dim(`${m.name}: --model ${m.shown} (${replaced})`));
  }
  const counters = countersTable(matrix, options.profile, options.top, style);
  if (counters.length > 0) {
    lines.push(
      "",
      style.bold(ablate ? "Largest counter change per flipped flag" : "Counters that differ most"),
      "",
      ...counters,
    );
  }
  const skipped = matrix.cells.find((c) => c.skipped !== undefined);
  lines.push("");
  if (skipped) lines.push(`${NOT_MODELLED}: not modelled (${skipped.skipped})`);
  const runs = matrix.cells.filter((c) => c.result !== null).length;
  if (options.mismatches.length === 0) {
    lines.push(
      style.green(`✓ guest-visible results identical under every variant (${formatNumber(runs)} runs)`),
    );
  } else {
    for (const m of options.mismatches) {
      lines.push(
        style.red(`✗ ${m.workload} at L${m.level}: the guest saw different results under ${m.a} and ${m.b}`),
      );
    }
  }
  return lines;
}
