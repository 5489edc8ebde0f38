import { describe, expect, it } from "vitest";
import { closest, didYouMean, editDistance } from "./suggest";

describe("suggestions", () => {
  it("counts edits, with a transposition as one", () => {
    expect(editDistance("cpuid", "cpuid")).toBe(0);
    expect(editDistance("cpuid", "cpiud")).toBe(1);
    expect(editDistance("", "abc")).toBe(3);
  });

  it("suggests only close names", () => {
    expect(closest("comapre", ["compare", "run"])).toBe("compare");
    expect(closest("xyz", ["compare", "run"])).toBeUndefined();
    expect(didYouMean("Decode", ["decode"])).toBe(' (did you mean "decode"?)');
  });
});
