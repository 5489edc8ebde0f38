import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createStyle, visibleWidth } from "./style";
import { renderTable } from "./table";

describe("renderTable", () => {
  it("pads columns, right-aligns numbers and draws a rule under the header", () => {
    const lines = renderTable(
      [{ header: "name" }, { header: "n", align: "right" }],
      [
        ["cpuid", "1,028"],
        ["vmcall", "9"],
      ],
    );
    expect(lines).toEqual(["name        n", "------  -----", "cpuid   1,028", "vmcall      9"]);
  });

  it("cuts the widest text column with an ellipsis to fit the width", () => {
    const lines = renderTable([{ header: "a" }, { header: "b" }], [["x".repeat(80), "y".repeat(40)]], {
      maxWidth: 60,
    });
    for (const line of lines) expect(visibleWidth(line)).toBeLessThanOrEqual(60);
    expect(lines[2]).toContain("…");
  });

  it("wraps cells of a wrap column onto more lines instead of cutting them", () => {
    const lines = renderTable(
      [{ header: "k" }, { header: "text", wrap: true, minWidth: 10 }],
      [["a", "one two three four five six seven"]],
      {
        maxWidth: 20,
      },
    );
    expect(lines.slice(2).join(" ")).toContain("seven");
    expect(lines.length).toBeGreaterThan(3);
    for (const line of lines) expect(visibleWidth(line)).toBeLessThanOrEqual(20);
  });

  it("measures coloured cells by their visible width", () => {
    const style = createStyle(true);
    const lines = renderTable([{ header: "h" }, { header: "v", align: "right" }], [[style.red("abc"), "1"]], {
      style,
    });
    expect(visibleWidth(lines[2]!)).toBe("abc  v".length);
  });

  it("always fits 100 columns when the text columns may shrink to their minimum", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.string({ maxLength: 120 }), fc.string({ maxLength: 60 }), fc.integer()), {
          maxLength: 8,
        }),
        (rows) => {
          const cells = rows.map(([a, b, n]) => [a.replace(/\s/g, "_"), b.replace(/\s/g, "_"), String(n)]);
          const lines = renderTable(
            [{ header: "first" }, { header: "second" }, { header: "n", align: "right" }],
            cells,
          );
          for (const line of lines) expect(visibleWidth(line)).toBeLessThanOrEqual(100);
        },
      ),
    );
  });
});

describe("fitLines", () => {
  it("wraps long prose lines under the width, keeping a whole-line colour", async () => {
    const { fitLines } = await import("./output");
    const style = createStyle(true);
    const long = `  ${"word ".repeat(40).trim()}`;
    const lines = fitLines([long, style.yellow(long.trim()), "short"], 50);
    for (const line of lines) expect(visibleWidth(line)).toBeLessThanOrEqual(50);
    expect(lines.at(-1)).toBe("short");
    expect(lines[1]!.startsWith("    word")).toBe(true);
    expect(lines.filter((l) => l.startsWith("\u001b[33m")).length).toBeGreaterThan(1);
  });
});
