import { type Style, stripAnsi, visibleWidth } from "./style";

/**
 * Plain-text tables that fit a terminal: columns padded to their widest cell and separated by two
 * spaces, a header and a rule, numbers right-aligned. When the table is wider than `maxWidth`
 * (100 columns by default, the limit), the widest *shrinkable* columns (text, never
 * numbers) are narrowed one character at a time and their cells cut with "…".
 */
export interface Column {
  readonly header: string;
  readonly align?: "left" | "right";
  /** May be narrowed to fit (default: true for left-aligned columns). */
  readonly shrink?: boolean;
  /** Narrowest width when shrinking (default 8). */
  readonly minWidth?: number;
  /** Wrap long cells onto more lines instead of cutting them (implies shrink). */
  readonly wrap?: boolean;
}

export interface TableOptions {
  readonly maxWidth?: number;
  readonly style?: Style;
  /** Spaces before every line. */
  readonly indent?: number;
}

export const DEFAULT_TABLE_WIDTH = 100;
const GAP = 2;

function truncate(text: string, width: number): string {
  if (visibleWidth(text) <= width) return text;
  const plain = [...stripAnsi(text)];
  return width <= 1 ? "…".slice(0, width) : `${plain.slice(0, width - 1).join("")}…`;
}

/** Splits a cell into lines of at most `width` columns at spaces (long words are cut). */
function wrapCell(text: string, width: number): string[] {
  if (visibleWidth(text) <= width) return [text];
  const lines: string[] = [];
  let line = "";
  for (const word of stripAnsi(text).split(" ")) {
    if (line === "") line = word;
    else if (line.length + 1 + word.length <= width) line = `${line} ${word}`;
    else {
      lines.push(line);
      line = word;
    }
    while (line.length > width) {
      lines.push(line.slice(0, width));
      line = line.slice(width);
    }
  }
  if (line !== "") lines.push(line);
  return lines;
}

function pad(text: string, width: number, align: "left" | "right"): string {
  const fill = " ".repeat(Math.max(0, width - visibleWidth(text)));
  return align === "right" ? fill + text : text + fill;
}

/** Renders rows (each a cell per column) as lines, without trailing spaces. */
export function renderTable(
  columns: readonly Column[],
  rows: readonly (readonly string[])[],
  options: TableOptions = {},
): string[] {
  const maxWidth = options.maxWidth ?? DEFAULT_TABLE_WIDTH;
  const indent = " ".repeat(options.indent ?? 0);
  const widths = columns.map((c, i) =>
    Math.max(visibleWidth(c.header), ...rows.map((r) => visibleWidth(r[i] ?? ""))),
  );
  const total = () =>
    indent.length + widths.reduce((a, b) => a + b, 0) + GAP * Math.max(0, columns.length - 1);
  const shrinkable = (i: number) => {
    const c = columns[i]!;
    return (
      (c.wrap === true || (c.shrink ?? (c.align ?? "left") === "left")) && widths[i]! > (c.minWidth ?? 8)
    );
  };
  while (total() > maxWidth) {
    let widest = -1;
    for (let i = 0; i < columns.length; i++) {
      if (shrinkable(i) && (widest < 0 || widths[i]! > widths[widest]!)) widest = i;
    }
    if (widest < 0) break;
    widths[widest]!--;
  }
  const line = (cells: readonly string[], header: boolean): string[] => {
    const parts = columns.map((c, i) => {
      const cell = cells[i] ?? "";
      return c.wrap === true && !header ? wrapCell(cell, widths[i]!) : [truncate(cell, widths[i]!)];
    });
    const height = Math.max(1, ...parts.map((p) => p.length));
    const out: string[] = [];
    for (let k = 0; k < height; k++) {
      const text = columns
        .map((c, i) => {
          const text = parts[i]![k] ?? "";
          return pad(
            header && options.style && text !== "" ? options.style.bold(text) : text,
            widths[i]!,
            c.align ?? "left",
          );
        })
        .join(" ".repeat(GAP));
      out.push((indent + text).trimEnd());
    }
    return out;
  };
  const rule = indent + widths.map((w) => "-".repeat(w)).join(" ".repeat(GAP));
  return [
    ...line(
      columns.map((c) => c.header),
      true,
    ),
    options.style?.dim(rule) ?? rule,
    ...rows.flatMap((r) => line(r, false)),
  ];
}
