import type { BenchResult } from "./measure";

/** Formats a rate with a metric suffix: 12_345_678 → "12.35 M". */
export function formatRate(perSecond: number): string {
  if (perSecond >= 1e9) return `${(perSecond / 1e9).toFixed(2)} G`;
  if (perSecond >= 1e6) return `${(perSecond / 1e6).toFixed(2)} M`;
  if (perSecond >= 1e3) return `${(perSecond / 1e3).toFixed(2)} k`;
  return `${perSecond.toFixed(1)} `;
}

/** Renders results as a fixed-width table, one line per case, with an optional target column. */
export function renderTable(title: string, results: readonly (BenchResult & { target?: number })[]): string {
  const nameWidth = Math.max(4, ...results.map((r) => r.name.length));
  const lines = [
    title,
    `${"case".padEnd(nameWidth)}  ${"rate".padStart(16)}  ${"ns/op".padStart(8)}  target`,
  ];
  for (const r of results) {
    const rate = `${formatRate(r.opsPerSecond)}${r.unit}/s`;
    const target =
      r.target === undefined
        ? ""
        : `${r.opsPerSecond >= r.target ? "met" : "MISSED"} (>= ${formatRate(r.target)}${r.unit}/s)`;
    lines.push(
      `${r.name.padEnd(nameWidth)}  ${rate.padStart(16)}  ${r.nsPerOp.toFixed(1).padStart(8)}  ${target}`,
    );
  }
  return lines.join("\n");
}
