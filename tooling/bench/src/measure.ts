/**
 * A throughput measurement: run a batch function repeatedly and report operations per second.
 *
 * The batch does `ops` units of real work and returns a number derived from the work (a checksum);
 * the harness folds it into a sink so the optimiser cannot drop the work. The rate reported is the
 * median over the timed batches, which is steadier than the mean on a shared 2-core machine.
 */
export interface BenchCase {
  /** What is measured, e.g. "4-level walk (4 KiB pages, TLB off)". */
  readonly name: string;
  /** Unit of one operation, e.g. "walks". */
  readonly unit: string;
  /** Operations performed by one call of `batch`. */
  readonly ops: number;
  /** Performs `ops` operations and returns a value that depends on their results. */
  readonly batch: () => number;
}

export interface BenchResult {
  readonly name: string;
  readonly unit: string;
  /** Median operations per second over the timed batches. */
  readonly opsPerSecond: number;
  /** Median nanoseconds per operation. */
  readonly nsPerOp: number;
  /** Number of timed batches. */
  readonly samples: number;
  /** The folded checksums; printed so the work is observably used. */
  readonly sink: number;
}

export interface MeasureOptions {
  /** Wall-clock budget for the timed batches, in milliseconds. */
  readonly budgetMs?: number;
  /** Wall-clock budget for warm-up, in milliseconds. */
  readonly warmupMs?: number;
}

export function measure(bench: BenchCase, options: MeasureOptions = {}): BenchResult {
  const budgetMs = options.budgetMs ?? 1000;
  const warmupMs = options.warmupMs ?? 200;
  let sink = 0;
  const warmupEnd = performance.now() + warmupMs;
  while (performance.now() < warmupEnd) sink = (sink + bench.batch()) | 0;

  const rates: number[] = [];
  const end = performance.now() + budgetMs;
  do {
    const t0 = performance.now();
    sink = (sink + bench.batch()) | 0;
    const elapsedMs = performance.now() - t0;
    rates.push(elapsedMs > 0 ? (bench.ops * 1000) / elapsedMs : Number.POSITIVE_INFINITY);
  } while (performance.now() < end || rates.length < 5);

  rates.sort((a, b) => a - b);
  const opsPerSecond = rates[rates.length >> 1] ?? 0;
  return {
    name: bench.name,
    unit: bench.unit,
    opsPerSecond,
    nsPerOp: 1e9 / opsPerSecond,
    samples: rates.length,
    sink,
  };
}
