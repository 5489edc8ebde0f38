import { describe, expect, it } from "vitest";
import { colourEnabled, createStyle, stripAnsi, visibleWidth } from "./style";

describe("colour", () => {
  it("is on only on a terminal", () => {
    expect(colourEnabled({ isTTY: true, env: {} })).toBe(true);
    expect(colourEnabled({ isTTY: false, env: {} })).toBe(false);
    expect(colourEnabled({ isTTY: undefined, env: {} })).toBe(false);
  });

  it("is never on with NO_COLOR or --no-color, even when forced", () => {
    expect(colourEnabled({ isTTY: true, env: { NO_COLOR: "1" } })).toBe(false);
    expect(colourEnabled({ isTTY: true, env: { NO_COLOR: "1", FORCE_COLOR: "1" } })).toBe(false);
    expect(colourEnabled({ isTTY: true, env: {}, flag: false })).toBe(false);
    // An empty NO_COLOR does not count (no-color.org).
    expect(colourEnabled({ isTTY: true, env: { NO_COLOR: "" } })).toBe(true);
  });

  it("can be forced for a pipe, and is off on a dumb terminal", () => {
    expect(colourEnabled({ isTTY: false, env: { FORCE_COLOR: "1" } })).toBe(true);
    expect(colourEnabled({ isTTY: false, env: { FORCE_COLOR: "0" } })).toBe(false);
    expect(colourEnabled({ isTTY: true, env: { TERM: "dumb" } })).toBe(false);
  });

  it("wraps text in SGR codes that stripAnsi removes", () => {
    const style = createStyle(true);
    expect(style.red("x")).not.toBe("x");
    expect(stripAnsi(style.bold(style.red("abc")))).toBe("abc");
    expect(visibleWidth(style.green("Δ→"))).toBe(2);
    expect(createStyle(false).red("x")).toBe("x");
  });
});
