/** Test helper: a well-formedness check for the SVG documents the CLI writes. */

/** XML 1.0 Char production (tab, newline, carriage return and U+0020 up, minus the non-characters). */
export function isXmlChar(code: number): boolean {
  return (
    code === 0x9 ||
    code === 0xa ||
    code === 0xd ||
    (code >= 0x20 && code <= 0xd7ff) ||
    (code >= 0xe000 && code <= 0xfffd) ||
    code >= 0x10000
  );
}

/**
 * A small well-formedness check: every tag closes in order, attributes are quoted, and text holds
 * no raw '<' or unescaped '&' (enough for the SVG this module writes; a browser or rsvg renders
 * what passes it).
 */
export function checkWellFormedSvg(svg: string): void {
  const body = svg.replace(/^<\?xml[^?]*\?>\s*/, "");
  const stack: string[] = [];
  const token = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|([^<]+)/gy;
  let position = 0;
  while (position < body.length) {
    token.lastIndex = position;
    const m = token.exec(body);
    if (m === null)
      throw new Error(`malformed markup at ${position}: ${body.slice(position, position + 40)}`);
    if (m[5] !== undefined) {
      if (/&(?!(amp|lt|gt|quot|apos);)/.test(m[5])) throw new Error(`unescaped & in ${m[5]}`);
      for (const ch of m[5])
        if (!isXmlChar(ch.codePointAt(0)!))
          throw new Error(`character U+${ch.codePointAt(0)!.toString(16)} is not allowed in XML`);
    } else if (m[1] === "/") {
      if (stack.pop() !== m[2]) throw new Error(`</${m[2]}> closes the wrong element`);
    } else if (m[4] !== "/") stack.push(m[2]!);
    position = token.lastIndex;
  }
  if (stack.length > 0) throw new Error(`unclosed <${stack.join("><")}>`);
  if (!body.startsWith("<svg")) throw new Error("the document element is not <svg>");
}
