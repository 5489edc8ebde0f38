import { describe, expect, it } from "vitest";
import { didYouMean, didYouMeanSuffix, editDistance } from "./name-suggestion";

describe("editDistance", () => {
  it("counts insertions, deletions, substitutions and adjacent swaps", () => {
    expect(editDistance("", "")).toBe(0);
    expect(editDistance("cpuid", "cpuid")).toBe(0);
    expect(editDistance("cpuid", "cpuidd")).toBe(1);
    expect(editDistance("cpuid", "cpid")).toBe(1);
    expect(editDistance("cpuid", "cpxid")).toBe(1);
    expect(editDistance("paging", "pagnig")).toBe(1);
    expect(editDistance("abc", "xyz")).toBe(3);
  });
});

describe("didYouMean", () => {
  const keys = ["paging", "memory", "addressSpaces", "initialAddressSpace", "cpl"];

  it("suggests the closest candidate within the distance limit", () => {
    expect(didYouMean("pagin", keys)).toBe("paging");
    expect(didYouMean("memroy", keys)).toBe("memory");
  });

  it("matches across case and snake_case/camelCase", () => {
    expect(didYouMean("address_spaces", keys)).toBe("addressSpaces");
    expect(didYouMean("PAGING", keys)).toBe("paging");
  });

  it("suggests nothing when nothing is close", () => {
    expect(didYouMean("zzzzzz", keys)).toBeUndefined();
    expect(didYouMean("x", [])).toBeUndefined();
  });

  it("formats a suffix for messages", () => {
    expect(didYouMeanSuffix("memroy", keys)).toBe(' (did you mean "memory"?)');
    expect(didYouMeanSuffix("zzzzzz", keys)).toBe("");
  });
});
