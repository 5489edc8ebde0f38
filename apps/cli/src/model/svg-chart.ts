/**
 * A grouped horizontal bar chart as a standalone SVG document, written by hand (no dependency):
 * one group per workload and level, one bar per variant, the value printed at the end of each
 * bar. Bars are scaled within each group, so the variants of one workload and level compare by
 * length while the printed values carry the absolute figures.
 */
export interface ChartBar {
  readonly label: string;
  /** Null for a configuration that did not run (drawn as a note, not a bar). */
  readonly value: number | null;
}

export interface ChartGroup {
  readonly label: string;
  readonly bars: readonly ChartBar[];
}

export interface BarChart {
  readonly title: string;
  readonly subtitle: string;
  readonly unit: string;
  readonly groups: readonly ChartGroup[];
}

const PALETTE = [
  "#4e79a7",
  "#f28e2b",
  "#59a14f",
  "#e15759",
  "#76b7b2",
  "#edc948",
  "#b07aa1",
  "#ff9da7",
  "#9c755f",
  "#bab0ac",
];

/** XML 1.0 allows tab, newline, carriage return and U+0020 up (minus U+FFFE/U+FFFF and lone surrogates). */
function isXmlChar(code: number): boolean {
  return (
    code === 0x9 ||
    code === 0xa ||
    code === 0xd ||
    (code >= 0x20 && code <= 0xd7ff) ||
    (code >= 0xe000 && code <= 0xfffd) ||
    code >= 0x10000
  );
}

/** Text escaped for XML character data and attribute values (characters XML forbids are dropped). */
export function escapeXml(text: string): string {
  let kept = "";
  for (const ch of text) if (isXmlChar(ch.codePointAt(0)!)) kept += ch;
  return kept
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&apos;");
}

function formatValue(value: number): string {
  return Math.round(value).toLocaleString("en-US");
}

export function renderBarChart(chart: BarChart): string {
  const labelWidth = 190;
  const plotWidth = 560;
  const valueWidth = 90;
  const barHeight = 14;
  const barGap = 3;
  const groupGap = 14;
  const top = 58;
  const variants = [...new Set(chart.groups.flatMap((g) => g.bars.map((b) => b.label)))];
  const legendColumns = 3;
  const legendRows = Math.ceil(variants.length / legendColumns);
  const legendHeight = legendRows * 18 + 10;
  const width = labelWidth + plotWidth + valueWidth + 20;
  const out: string[] = [];
  let y = top;
  for (const group of chart.groups) {
    const max = Math.max(0, ...group.bars.map((b) => b.value ?? 0));
    const groupHeight = group.bars.length * (barHeight + barGap) - barGap;
    out.push(
      `<text x="${labelWidth - 10}" y="${y + groupHeight / 2 + 4}" text-anchor="end" class="group">${escapeXml(group.label)}</text>`,
    );
    group.bars.forEach((bar, i) => {
      const by = y + i * (barHeight + barGap);
      const colour = PALETTE[variants.indexOf(bar.label) % PALETTE.length]!;
      if (bar.value === null) {
        out.push(
          `<text x="${labelWidth + 4}" y="${by + barHeight - 3}" class="note">${escapeXml(bar.label)}: not modelled</text>`,
        );
        return;
      }
      const w = max > 0 ? Math.max(1, (bar.value / max) * plotWidth) : 1;
      out.push(
        `<rect x="${labelWidth}" y="${by}" width="${w.toFixed(1)}" height="${barHeight}" fill="${colour}"><title>${escapeXml(`${group.label}, ${bar.label}: ${formatValue(bar.value)} ${chart.unit}`)}</title></rect>`,
        `<text x="${(labelWidth + w + 4).toFixed(1)}" y="${by + barHeight - 3}" class="value">${formatValue(bar.value)}</text>`,
      );
    });
    y += groupHeight + groupGap;
  }
  const legend: string[] = [];
  variants.forEach((label, i) => {
    const lx = 20 + (i % legendColumns) * 280;
    const ly = y + 10 + Math.floor(i / legendColumns) * 18;
    legend.push(
      `<rect x="${lx}" y="${ly}" width="12" height="12" fill="${PALETTE[i % PALETTE.length]!}"/>`,
      `<text x="${lx + 18}" y="${ly + 10}" class="legend">${escapeXml(label)}</text>`,
    );
  });
  const height = y + legendHeight + 10;
  return [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${escapeXml(chart.title)}">`,
    `<title>${escapeXml(chart.title)}</title>`,
    `<style>text{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;font-size:12px;fill:#222}.title{font-size:16px;font-weight:600}.subtitle{fill:#555}.group{font-weight:600}.value{font-size:11px;fill:#333}.note{font-style:italic;fill:#777}.legend{font-size:12px}</style>`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="20" y="24" class="title">${escapeXml(chart.title)}</text>`,
    `<text x="20" y="42" class="subtitle">${escapeXml(chart.subtitle)}</text>`,
    `<line x1="${labelWidth}" y1="${top - 4}" x2="${labelWidth}" y2="${y - groupGap + 4}" stroke="#888"/>`,
    ...out,
    ...legend,
    `</svg>`,
    "",
  ].join("\n");
}
