import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { csvField, toCsv } from "./csv";

/** A minimal RFC 4180 reader for one line of fields (the oracle of the property below). */
function readLine(line: string): string[] {
  const out: string[] = [];
  let i = 0;
  for (;;) {
    let field = "";
    if (line[i] === '"') {
      i++;
      for (;;) {
        if (line[i] === '"' && line[i + 1] === '"') {
          field += '"';
          i += 2;
        } else if (line[i] === '"') {
          i++;
          break;
        } else field += line[i++];
      }
    } else {
      while (i < line.length && line[i] !== ",") field += line[i++];
    }
    out.push(field);
    if (line[i] !== ",") return out;
    i++;
  }
}

describe("csv", () => {
  it("quotes only fields that need it", () => {
    expect(csvField("cpuid")).toBe("cpuid");
    expect(csvField("a,b")).toBe('"a,b"');
    expect(csvField('say "x"')).toBe('"say ""x"""');
    expect(csvField(null)).toBe("");
    expect(toCsv(["a", "b"], [[1, true]])).toBe("a,b\n1,true\n");
  });

  it("round-trips any field without line breaks", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.string().filter((s) => !/[\r\n]/.test(s)),
          { minLength: 1, maxLength: 6 },
        ),
        (fields) => {
          expect(readLine(fields.map(csvField).join(","))).toEqual(fields);
        },
      ),
    );
  });
});
