import { describe, expect, it } from "vitest";
import { formatAmount, formatChange, formatNumber, formatRatio, formatShare, hex } from "./format";

describe("number formatting", () => {
  it("groups thousands and keeps the requested decimals", () => {
    expect(formatNumber(1234567)).toBe("1,234,567");
    expect(formatNumber(2.5, 2)).toBe("2.50");
  });

  it("shows per-iteration amounts with fewer decimals as they grow", () => {
    expect(formatAmount(6937)).toBe("6,937");
    expect(formatAmount(13.6)).toBe("13.6");
    expect(formatAmount(0.58)).toBe("0.58");
    expect(formatAmount(3)).toBe("3");
  });

  it("prints signed relative changes, and n/a without a base", () => {
    expect(formatChange(9049, 6977)).toBe("-22.9%");
    expect(formatChange(100, 150)).toBe("+50.0%");
    expect(formatChange(100, 100)).toBe("0.0%");
    expect(formatChange(0, 5)).toBe("n/a");
  });

  it("formats ratios, shares and hex", () => {
    expect(formatRatio(6937 / 1028)).toBe("6.75×");
    expect(formatShare(1, 4)).toBe("25.0%");
    expect(hex(255, 4)).toBe("0x00ff");
    expect(hex(1n << 63n)).toBe("0x8000000000000000");
  });
});
