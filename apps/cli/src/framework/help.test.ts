import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { wrapText } from "./help";

describe("wrapText", () => {
  it("starts with the prefix and indents the following lines", () => {
    expect(wrapText("one two three", 12, 4, "  x ")).toEqual(["  x one two", "    three"]);
  });

  it("never exceeds the width unless a single word is longer, and keeps every word in order", () => {
    fc.assert(
      fc.property(
        fc.array(fc.stringMatching(/^[a-z]{1,12}$/), { maxLength: 40 }),
        fc.integer({ min: 20, max: 100 }),
        (words, width) => {
          const lines = wrapText(words.join(" "), width, 4, "> ");
          for (const line of lines) expect(line.length).toBeLessThanOrEqual(width);
          expect(
            lines
              .join(" ")
              .replace(/^>\s?/, "")
              .split(/\s+/)
              .filter((w) => w !== ""),
          ).toEqual(words);
        },
      ),
    );
  });
});
