import { describe, expect, it } from "vitest";
import { measure } from "./measure";
import { formatRate, renderTable } from "./report";

describe("measure", () => {
  it("runs the batch, folds its checksum and reports a finite rate", () => {
    let calls = 0;
    const result = measure(
      {
        name: "sum",
        unit: "adds",
        ops: 1000,
        batch: () => {
          calls++;
          let s = 0;
          for (let i = 0; i < 1000; i++) s += i;
          return s;
        },
      },
      { budgetMs: 5, warmupMs: 1 },
    );
    expect(calls).toBeGreaterThanOrEqual(result.samples);
    expect(result.samples).toBeGreaterThanOrEqual(5);
    expect(result.opsPerSecond).toBeGreaterThan(0);
    expect(result.sink).not.toBe(0);
  });
});

describe("report", () => {
  it("formats rates with metric suffixes", () => {
    expect(formatRate(12_345_678)).toBe("12.35 M");
    expect(formatRate(2_500)).toBe("2.50 k");
    expect(formatRate(3_000_000_000)).toBe("3.00 G");
  });

  it("marks targets as met or missed", () => {
    const base = { unit: "walks", nsPerOp: 1, samples: 1, sink: 0 };
    const text = renderTable("t", [
      { ...base, name: "fast", opsPerSecond: 2e7, target: 1e7 },
      { ...base, name: "slow", opsPerSecond: 1e6, target: 1e7 },
    ]);
    expect(text).toMatch(/fast.*met/);
    expect(text).toMatch(/slow.*MISSED/);
  });
});
