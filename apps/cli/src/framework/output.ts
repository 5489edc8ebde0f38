import type { Writer } from "./command";
import { wrapText } from "./help";
import { stripAnsi, visibleWidth } from "./style";

/** Terminal width every text output fits (the limit). */
export const OUTPUT_WIDTH = 100;

/** JSON on stdout: two-space indentation, one trailing newline. */
export function writeJson(out: Writer, value: unknown): void {
  out.write(`${JSON.stringify(value, null, 2)}\n`);
}

// One style around the whole line: an SGR sequence at the start and a reset at the end.
const WHOLE_LINE_STYLE = new RegExp(
  `^(${String.fromCharCode(27)}\\[[0-9;]*m)([^${String.fromCharCode(27)}]*)(${String.fromCharCode(27)}\\[[0-9;]*m)$`,
);

/**
 * Wraps lines wider than `width` at spaces, continuing two spaces deeper than the line's own
 * indentation. A line coloured as a whole keeps its colour on every piece; other colour codes in
 * a line that must wrap are dropped.
 */
export function fitLines(lines: readonly string[], width = OUTPUT_WIDTH): string[] {
  const out: string[] = [];
  for (const line of lines) {
    if (visibleWidth(line) <= width) {
      out.push(line);
      continue;
    }
    const styled = WHOLE_LINE_STYLE.exec(line);
    const plain = styled ? styled[2]! : stripAnsi(line);
    const indent = /^ */.exec(plain)![0].length;
    const pieces = wrapText(plain.slice(indent), width, indent + 2, " ".repeat(indent));
    out.push(...(styled ? pieces.map((p) => `${styled[1]}${p}${styled[3]}`) : pieces));
  }
  return out;
}

/** Lines on stdout, each ending in a newline, wrapped to fit 100 columns. */
export function writeLines(out: Writer, lines: readonly string[]): void {
  if (lines.length > 0) out.write(`${fitLines(lines).join("\n")}\n`);
}
