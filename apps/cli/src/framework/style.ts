/**
 * Terminal colour, decided once per stream: on only when the stream is a terminal, never when
 * NO_COLOR is set to anything non-empty (no-color.org) or `--no-color` is given, and forced on by
 * FORCE_COLOR (except "0") for people piping into `less -R`. TERM=dumb turns it off.
 */
export interface Style {
  readonly enabled: boolean;
  bold(text: string): string;
  dim(text: string): string;
  red(text: string): string;
  green(text: string): string;
  yellow(text: string): string;
  cyan(text: string): string;
}

export interface ColourInputs {
  readonly isTTY: boolean | undefined;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** `false` when the user passed --no-color. */
  readonly flag?: boolean;
}

/** Whether to colour output written to a stream with these properties. */
export function colourEnabled(inputs: ColourInputs): boolean {
  const { env } = inputs;
  if (inputs.flag === false) return false;
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== "") return false;
  const force = env.FORCE_COLOR;
  if (force !== undefined && force !== "" && force !== "0" && force !== "false") return true;
  if (env.TERM === "dumb") return false;
  return inputs.isTTY === true;
}

function wrap(open: number, close: number): (text: string) => string {
  return (text) => `\u001b[${open}m${text}\u001b[${close}m`;
}

const PLAIN = (text: string): string => text;

export function createStyle(enabled: boolean): Style {
  if (!enabled) {
    return { enabled, bold: PLAIN, dim: PLAIN, red: PLAIN, green: PLAIN, yellow: PLAIN, cyan: PLAIN };
  }
  return {
    enabled,
    bold: wrap(1, 22),
    dim: wrap(2, 22),
    red: wrap(31, 39),
    green: wrap(32, 39),
    yellow: wrap(33, 39),
    cyan: wrap(36, 39),
  };
}

// ESC [ … m: built from a string so the pattern holds no literal control character.
const ANSI = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, "g");

/** The text without colour codes. */
export function stripAnsi(text: string): string {
  return text.replace(ANSI, "");
}

/** Columns the text takes on a terminal (code points, colour codes excluded). */
export function visibleWidth(text: string): number {
  let n = 0;
  for (const _ of stripAnsi(text)) n++;
  return n;
}
