/**
 * Latency distributions of exits (reference/user-expectations.md §1: log2 histograms and
 * p50/p90/p99/max per reason and level, not just averages).
 *
 * A recorder keeps, per key (the accumulator uses guest level × exit-reason slot): count, sum,
 * sum of squares, min, max and a log2 histogram, all in typed arrays; plus one shared,
 * preallocated sample buffer from which exact percentiles are computed. When more samples arrive
 * than the buffer holds, it becomes a uniform reservoir sample (Vitter's algorithm R, with a seeded
 * generator so runs stay deterministic) and percentiles are reported as not exact. Recording a
 * sample allocates nothing.
 */

/** Histogram buckets: 0 holds latencies below 1 cycle, bucket b ≥ 1 holds [2^(b-1), 2^b). */
export const LATENCY_BUCKETS = 64;

const TWO_32 = 4294967296;

/** The log2 bucket of a latency in cycles (bucket 63 also takes everything above 2^63). */
export function latencyBucket(cycles: number): number {
  if (!(cycles >= 1)) return 0;
  if (cycles < TWO_32) return 32 - Math.clz32(cycles >>> 0);
  const high = Math.floor(cycles / TWO_32);
  if (high >= TWO_32) return LATENCY_BUCKETS - 1;
  return Math.min(LATENCY_BUCKETS - 1, 64 - Math.clz32(high >>> 0));
}

/** The inclusive lower bound of a bucket, in cycles. */
export function latencyBucketLow(bucket: number): number {
  return bucket === 0 ? 0 : 2 ** (bucket - 1);
}

/** The exclusive upper bound of a bucket, in cycles (Infinity for the last). */
export function latencyBucketHigh(bucket: number): number {
  return bucket === LATENCY_BUCKETS - 1 ? Number.POSITIVE_INFINITY : 2 ** bucket;
}

/**
 * The nearest-rank percentile of sorted values: the smallest value with at least p% of the values
 * at or below it (p = 0 gives the minimum). NaN for no values.
 */
export function nearestRank(sorted: ArrayLike<number>, p: number): number {
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile ${p} is not within 0–100`);
  const n = sorted.length;
  if (n === 0) return Number.NaN;
  const rank = Math.min(n, Math.max(1, Math.ceil((p / 100) * n)));
  return sorted[rank - 1]!;
}

export interface ExitLatencyOptions {
  /** Number of keys (distinct series). */
  readonly keys: number;
  /** Samples kept for exact percentiles (default 65,536; 0 disables percentiles). */
  readonly sampleCapacity?: number;
  /** Seed of the reservoir's generator (default 1). */
  readonly seed?: number;
}

/** Percentiles of one key. */
export interface LatencyPercentiles {
  /** Samples of this key the values were computed from. */
  readonly samples: number;
  /** True when every sample ever recorded is in the buffer, so the values are exact. */
  readonly exact: boolean;
  /** One value per requested percentile (NaN when there are no samples). */
  readonly values: readonly number[];
}

export const DEFAULT_SAMPLE_CAPACITY = 65_536;

export class ExitLatencyRecorder {
  readonly keys: number;
  readonly sampleCapacity: number;
  /** Per key: samples recorded, Σ cycles, Σ cycles², min, max. */
  readonly counts: Float64Array;
  readonly sums: Float64Array;
  readonly sumSquares: Float64Array;
  readonly mins: Float64Array;
  readonly maxs: Float64Array;
  /** Per key, LATENCY_BUCKETS counts: `histograms[key * LATENCY_BUCKETS + bucket]`. */
  readonly histograms: Float64Array;
  readonly #sampleValues: Float64Array;
  readonly #sampleKeys: Uint32Array;
  readonly #seed: number;
  #recorded = 0;
  #rng: number;

  constructor(options: ExitLatencyOptions) {
    const { keys } = options;
    const capacity = options.sampleCapacity ?? DEFAULT_SAMPLE_CAPACITY;
    if (!Number.isInteger(keys) || keys <= 0)
      throw new RangeError(`key count ${keys} is not a positive integer`);
    if (!Number.isInteger(capacity) || capacity < 0)
      throw new RangeError(`sample capacity ${capacity} is not a non-negative integer`);
    this.keys = keys;
    this.sampleCapacity = capacity;
    this.counts = new Float64Array(keys);
    this.sums = new Float64Array(keys);
    this.sumSquares = new Float64Array(keys);
    this.mins = new Float64Array(keys).fill(Number.POSITIVE_INFINITY);
    this.maxs = new Float64Array(keys).fill(Number.NEGATIVE_INFINITY);
    this.histograms = new Float64Array(keys * LATENCY_BUCKETS);
    this.#sampleValues = new Float64Array(capacity);
    this.#sampleKeys = new Uint32Array(capacity);
    // xorshift32 needs a non-zero state.
    this.#seed = (options.seed ?? 1) >>> 0 || 1;
    this.#rng = this.#seed;
  }

  /** Records one latency for `key`. No allocation. */
  record(key: number, cycles: number): void {
    if (key >>> 0 !== key || key >= this.keys) throw new RangeError(`latency key ${key} is out of range`);
    if (!(cycles >= 0)) throw new RangeError(`latency ${cycles} is not a non-negative number`);
    this.counts[key] = this.counts[key]! + 1;
    this.sums[key] = this.sums[key]! + cycles;
    this.sumSquares[key] = this.sumSquares[key]! + cycles * cycles;
    if (cycles < this.mins[key]!) this.mins[key] = cycles;
    if (cycles > this.maxs[key]!) this.maxs[key] = cycles;
    const h = key * LATENCY_BUCKETS + latencyBucket(cycles);
    this.histograms[h] = this.histograms[h]! + 1;
    const i = this.#recorded++;
    const capacity = this.sampleCapacity;
    if (i < capacity) {
      this.#sampleValues[i] = cycles;
      this.#sampleKeys[i] = key;
    } else if (capacity > 0) {
      // Algorithm R: the (i+1)-th sample replaces a random slot with probability capacity/(i+1).
      const j = Math.floor(this.#uniform() * (i + 1));
      if (j < capacity) {
        this.#sampleValues[j] = cycles;
        this.#sampleKeys[j] = key;
      }
    }
  }

  /** A uniform double in [0, 1) from two xorshift32 steps (53 random bits). */
  #uniform(): number {
    const a = this.#step() >>> 5; // 27 bits
    const b = this.#step() >>> 6; // 26 bits
    return (a * 67108864 + b) / 9007199254740992;
  }

  #step(): number {
    let x = this.#rng;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#rng = x >>> 0;
    return this.#rng;
  }

  /** Samples recorded, all keys together. */
  get recorded(): number {
    return this.#recorded;
  }

  /** Samples held in the buffer. */
  get kept(): number {
    return Math.min(this.#recorded, this.sampleCapacity);
  }

  /** True while every recorded sample is held, i.e. percentiles are exact. */
  get exact(): boolean {
    return this.#recorded <= this.sampleCapacity;
  }

  /** Samples recorded for `key`. */
  count(key: number): number {
    return this.counts[key] ?? 0;
  }

  /** Mean latency of `key` (NaN without samples). */
  mean(key: number): number {
    const n = this.count(key);
    return n === 0 ? Number.NaN : this.sums[key]! / n;
  }

  /** Population standard deviation of `key` (NaN without samples). */
  stddev(key: number): number {
    const n = this.count(key);
    if (n === 0) return Number.NaN;
    const mean = this.sums[key]! / n;
    return Math.sqrt(Math.max(0, this.sumSquares[key]! / n - mean * mean));
  }

  /** Smallest latency of `key` (NaN without samples). */
  min(key: number): number {
    return this.count(key) === 0 ? Number.NaN : this.mins[key]!;
  }

  /** Largest latency of `key` (NaN without samples). */
  max(key: number): number {
    return this.count(key) === 0 ? Number.NaN : this.maxs[key]!;
  }

  /** The LATENCY_BUCKETS bucket counts of `key` (a copy). */
  histogram(key: number): number[] {
    if (key >>> 0 !== key || key >= this.keys) throw new RangeError(`latency key ${key} is out of range`);
    return Array.from(this.histograms.subarray(key * LATENCY_BUCKETS, (key + 1) * LATENCY_BUCKETS));
  }

  /** The held samples of `key`, sorted ascending (a new array). */
  sortedSamples(key: number): Float64Array {
    const kept = this.kept;
    let n = 0;
    for (let i = 0; i < kept; i++) if (this.#sampleKeys[i] === key) n++;
    const out = new Float64Array(n);
    let k = 0;
    for (let i = 0; i < kept; i++) if (this.#sampleKeys[i] === key) out[k++] = this.#sampleValues[i]!;
    return out.sort();
  }

  /** Nearest-rank percentiles of `key` (e.g. [50, 90, 99]) from the held samples. */
  percentiles(key: number, ps: readonly number[]): LatencyPercentiles {
    const sorted = this.sortedSamples(key);
    return {
      samples: sorted.length,
      exact: this.exact,
      values: ps.map((p) => nearestRank(sorted, p)),
    };
  }

  /** Forgets everything, restarting the reservoir's generator from its seed. */
  reset(): void {
    this.counts.fill(0);
    this.sums.fill(0);
    this.sumSquares.fill(0);
    this.mins.fill(Number.POSITIVE_INFINITY);
    this.maxs.fill(Number.NEGATIVE_INFINITY);
    this.histograms.fill(0);
    this.#recorded = 0;
    this.#rng = this.#seed;
  }
}
