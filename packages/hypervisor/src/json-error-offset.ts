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
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      ws();
      if (text[i] === "}") {
        i++;
        return;
      }
      for (;;) {
        ws();
        string();
        ws();
        expect(":");
        value();
        ws();
        if (text[i] === ",") i++;
        else {
          expect("}");
          return;
        }
      }
    } else if (c === "[") {
      i++;
      ws();
      if (text[i] === "]") {
        i++;
        return;
      }
      for (;;) {
        value();
        ws();
        if (text[i] === ",") i++;
        else {
          expect("]");
          return;
        }
      }
    } else if (c === '"') string();
    else if (c === "-" || (c !== undefined && c >= "0" && c <= "9")) {
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
    } else {
      for (const word of ["true", "false", "null"]) {
        if (text.startsWith(word, i)) {
          i += word.length;
          return;
        }
      }
      stop();
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
