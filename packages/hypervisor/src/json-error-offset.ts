/**
 * Where JSON text stops being valid (RFC 8259 grammar), for error messages that name a line and
 * column: `JSON.parse` in Node 20 does not always report a position. Report-time only.
 */

class Stop {
  readonly offset: number;
  constructor(offset: number) {
    this.offset = offset;
  }
}

/**
 * The offset of the first character at which `text` is not valid JSON (text.length when it ends
 * too early), or -1 when the whole text is valid.
 */
export function jsonErrorOffset(text: string): number {
  let i = 0;
  const stop = (): never => {
    throw new Stop(i);
  };
  const ws = (): void => {
    while (i < text.length && (text[i] === " " || text[i] === "\t" || text[i] === "\n" || text[i] === "\r"))
      i++;
  };
  const expect = (char: string): void => {
    if (text[i] !== char) stop();
    i++;
  };
  const digits = (): void => {
    if (!(text[i]! >= "0" && text[i]! <= "9")) stop();
    while (text[i]! >= "0" && text[i]! <= "9") i++;
  };
  const string = (): void => {
    expect('"');
    for (;;) {
      if (i >= text.length) stop();
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return;
      }
      if (c < 0x20) stop();
      if (c === 0x5c) {
        i++;
        const e = text[i];
        if (e === "u") {
          for (let k = 1; k <= 4; k++) {
            if (!/[0-9a-fA-F]/.test(text[i + k] ?? "")) {
              i += k;
              stop();
            }
          }
          i += 5;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) i++;
        else stop();
      } else i++;
    }
  };
  /** A number or a literal at `i` (the first character is not a bracket or a quote). */
  const scalar = (): void => {
    const c = text[i];
    if (c === "-" || (c !== undefined && c >= "0" && c <= "9")) {
      if (text[i] === "-") i++;
      if (text[i] === "0") i++;
      else digits();
      if (text[i] === ".") {
        i++;
        digits();
      }
      if (text[i] === "e" || text[i] === "E") {
        i++;
        if (text[i] === "+" || text[i] === "-") i++;
        digits();
      }
      return;
    }
    for (const word of ["true", "false", "null"]) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return;
      }
    }
    stop();
  };
  /** `"key":` inside an object, up to the colon. */
  const member = (): void => {
    ws();
    string();
    ws();
    expect(":");
  };
  // Containers nest on an explicit stack, not the call stack: a text of 100,000 "[" is reported
  // like any other, instead of overflowing the stack.
  const OBJECT = 1;
  const ARRAY = 0;
  const open: number[] = [];
  const value = (): void => {
    next: for (;;) {
      ws();
      const c = text[i];
      if (c === "{") {
        i++;
        ws();
        if (text[i] !== "}") {
          member();
          open.push(OBJECT);
          continue;
        }
        i++;
      } else if (c === "[") {
        i++;
        ws();
        if (text[i] !== "]") {
          open.push(ARRAY);
          continue;
        }
        i++;
      } else if (c === '"') string();
      else scalar();
      // A value is complete: close the containers it completes, or go on to the next element.
      while (open.length > 0) {
        ws();
        const container = open[open.length - 1];
        if (text[i] === ",") {
          i++;
          if (container === OBJECT) member();
          continue next;
        }
        expect(container === OBJECT ? "}" : "]");
        open.pop();
      }
      return;
    }
  };
  try {
    value();
    ws();
    if (i < text.length) stop();
    return -1;
  } catch (error) {
    if (error instanceof Stop) return error.offset;
    throw error;
  }
}
