import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  ExitLatencyRecorder,
  LATENCY_BUCKETS,
  latencyBucket,
  latencyBucketHigh,
  latencyBucketLow,
  nearestRank,
} from "./exit-latency";

/** Oracle: bucket by repeated doubling. */
function bucketOracle(x: number): number {
  if (x < 1) return 0;
  let b = 1;
  let limit = 2;
  while (x >= limit && b < LATENCY_BUCKETS - 1) {
    limit *= 2;
    b++;
  }
  return b;
}

/** Oracle: sort a copy, take the nearest rank. */
function percentileOracle(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1]!;
}

const latency = fc.oneof(
  fc.double({ min: 0, max: 1e6, noNaN: true }),
  fc.integer({ min: 0, max: 5000 }),
  fc.double({ min: 0, max: 2 ** 70, noNaN: true }),
);

describe("latencyBucket", () => {
  it("matches the doubling oracle and the bucket bounds (property)", () => {
    fc.assert(
      fc.property(latency, (x) => {
        const b = latencyBucket(x);
        expect(b).toBe(bucketOracle(x));
        expect(x).toBeGreaterThanOrEqual(latencyBucketLow(b));
        expect(x).toBeLessThan(latencyBucketHigh(b));
      }),
    );
  });

  it("puts powers of two at the start of their bucket", () => {
    expect(latencyBucket(0)).toBe(0);
    expect(latencyBucket(0.99)).toBe(0);
    expect(latencyBucket(1)).toBe(1);
    expect(latencyBucket(1023.5)).toBe(10);
    expect(latencyBucket(1024)).toBe(11);
    expect(latencyBucket(2 ** 32 - 0.5)).toBe(32);
    expect(latencyBucket(2 ** 32)).toBe(33);
    expect(latencyBucket(2 ** 62)).toBe(63);
    expect(latencyBucket(2 ** 80)).toBe(63);
  });
});

describe("ExitLatencyRecorder", () => {
  const samples = fc.array(fc.tuple(fc.integer({ min: 0, max: 5 }), latency), { maxLength: 200 });

  it("gives exact nearest-rank percentiles, counts, extremes and histograms per key (sort-based oracle)", () => {
    fc.assert(
      fc.property(
        samples,
        fc.array(fc.double({ min: 0, max: 100, noNaN: true }), { maxLength: 6 }),
        (recorded, ps) => {
          const recorder = new ExitLatencyRecorder({ keys: 6, sampleCapacity: 256 });
          for (const [key, x] of recorded) recorder.record(key, x);
          expect(recorder.exact).toBe(true);
          expect(recorder.recorded).toBe(recorded.length);
          for (let key = 0; key < 6; key++) {
            const values = recorded.filter(([k]) => k === key).map(([, x]) => x);
            const result = recorder.percentiles(key, [...ps, 50, 90, 99, 0, 100]);
            expect(result.samples).toBe(values.length);
            expect(result.values).toEqual(
              [...ps, 50, 90, 99, 0, 100].map((p) => percentileOracle(values, p)),
            );
            expect(recorder.count(key)).toBe(values.length);
            expect(recorder.min(key)).toBe(values.length === 0 ? Number.NaN : Math.min(...values));
            expect(recorder.max(key)).toBe(values.length === 0 ? Number.NaN : Math.max(...values));
            const histogram = new Array<number>(LATENCY_BUCKETS).fill(0);
            for (const x of values) histogram[bucketOracle(x)]!++;
            expect(recorder.histogram(key)).toEqual(histogram);
          }
        },
      ),
    );
  });

  it("computes mean and standard deviation", () => {
    const recorder = new ExitLatencyRecorder({ keys: 1 });
    for (const x of [2, 4, 4, 4, 5, 5, 7, 9]) recorder.record(0, x);
    expect(recorder.mean(0)).toBe(5);
    expect(recorder.stddev(0)).toBe(2);
    expect(new ExitLatencyRecorder({ keys: 1 }).mean(0)).toBeNaN();
  });

  it("keeps a deterministic uniform reservoir when the buffer overflows, and says the percentiles are not exact", () => {
    const run = (seed: number) => {
      const recorder = new ExitLatencyRecorder({ keys: 2, sampleCapacity: 100, seed });
      for (let i = 0; i < 10_000; i++) recorder.record(i & 1, i);
      return recorder;
    };
    const a = run(7);
    expect(a.recorded).toBe(10_000);
    expect(a.kept).toBe(100);
    expect(a.exact).toBe(false);
    const kept = [...a.sortedSamples(0), ...a.sortedSamples(1)];
    expect(kept.length).toBe(100);
    for (const x of a.sortedSamples(0)) expect(x % 2).toBe(0);
    for (const x of a.sortedSamples(1)) expect(x % 2).toBe(1);
    // Uniform: the kept samples are spread over the whole run, not the first 100.
    expect(kept.filter((x) => x >= 5000).length).toBeGreaterThan(25);
    expect(a.percentiles(0, [50]).exact).toBe(false);
    // Same seed, same reservoir; the histogram and count stay complete.
    expect([...run(7).sortedSamples(0)]).toEqual([...a.sortedSamples(0)]);
    expect(a.count(0)).toBe(5000);
    expect(a.histogram(0).reduce((s, n) => s + n, 0)).toBe(5000);
  });

  it("works without a sample buffer (histograms only)", () => {
    const recorder = new ExitLatencyRecorder({ keys: 1, sampleCapacity: 0 });
    recorder.record(0, 10);
    expect(recorder.percentiles(0, [50])).toEqual({ samples: 0, exact: false, values: [Number.NaN] });
    expect(recorder.histogram(0)[latencyBucket(10)]).toBe(1);
  });

  it("resets to an empty state with the reservoir restarted", () => {
    const recorder = new ExitLatencyRecorder({ keys: 1, sampleCapacity: 4, seed: 3 });
    for (let i = 0; i < 50; i++) recorder.record(0, i);
    const first = [...recorder.sortedSamples(0)];
    recorder.reset();
    expect(recorder.recorded).toBe(0);
    expect(recorder.count(0)).toBe(0);
    expect(recorder.histogram(0).every((n) => n === 0)).toBe(true);
    for (let i = 0; i < 50; i++) recorder.record(0, i);
    expect([...recorder.sortedSamples(0)]).toEqual(first);
  });

  it("rejects bad keys, negative latencies, bad percentiles and bad options", () => {
    const recorder = new ExitLatencyRecorder({ keys: 2 });
    expect(() => recorder.record(2, 1)).toThrow(RangeError);
    expect(() => recorder.record(0.5, 1)).toThrow(RangeError);
    expect(() => recorder.record(0, -1)).toThrow(RangeError);
    expect(() => recorder.record(0, Number.NaN)).toThrow(RangeError);
    expect(() => nearestRank([1], 101)).toThrow(RangeError);
    expect(() => new ExitLatencyRecorder({ keys: 0 })).toThrow(RangeError);
    expect(() => new ExitLatencyRecorder({ keys: 1, sampleCapacity: -1 })).toThrow(RangeError);
  });
});
