import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { UsageError } from "../framework/errors";
import { parseShard, varyFlagSets } from "./grid";

describe("--shard k/n on arbitrary text", () => {
  it("gives 1 <= k <= n <= 1,000,000, or a UsageError quoting the text", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc
            .tuple(fc.bigInt({ min: -5n, max: 2n ** 70n }), fc.bigInt({ min: -5n, max: 2n ** 70n }))
            .map(([k, n]) => `${k}/${n}`),
          fc
            .tuple(fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max: 20 }))
            .map(([k, n]) => `${k}/${n}`),
        ),
        (text) => {
          try {
            const { k, n } = parseShard(text);
            expect(Number.isSafeInteger(k) && Number.isSafeInteger(n)).toBe(true);
            expect(1 <= k && k <= n && n <= 1_000_000).toBe(true);
          } catch (error) {
            expect(error).toBeInstanceOf(UsageError);
            expect((error as Error).message.startsWith(`--shard ${text}: `)).toBe(true);
          }
        },
      ),
      { numRuns: 1000 },
    );
  });
});

describe("grid defects found by the robustness audit (regressions)", () => {
  it("--vary with a flag listed twice names the flag", () => {
    expect(() => varyFlagSets(["ept", "shadowVmcs", "ept"])).toThrow(
      new UsageError('--vary lists a flag twice: "ept"'),
    );
    expect(varyFlagSets(["ept"])).toHaveLength(2);
  });
});
