import type { BenchCase } from "@nestvisor/bench";
import { NOOP_TRACER, TimelineTracer, TRACE_KIND, type Tracer } from "../src/tracer";

/** Spans per batch. */
const SPANS = 100_000;
/** Exits per batch (each: an instant, two nested spans, an instant: 4 events). */
const EXITS = 25_000;

/**
 * Throughput target for "TimelineTracer span (begin + end)", in spans per second: recording must
 * cost no more than a few counted events (≥ 20 M/s, 50 ns per span), so that tracing a short run
 * does not change how long it takes by much.
 */
export const TRACER_SPAN_TARGET = 20_000_000;

function spanBatch(tracer: Tracer, clear: () => void, checksum: () => number): () => number {
  return () => {
    clear();
    let cycle = 0;
    for (let i = 0; i < SPANS; i++) {
      if (tracer.enabled) tracer.begin(TRACE_KIND.VMX_INSTRUCTION, 1, i & 0x7fff, cycle);
      cycle += 40;
      if (tracer.enabled) tracer.end(cycle);
    }
    return checksum();
  };
}

export function tracerBenchCases(): BenchCase[] {
  // Room for every event of a batch: `clear()` between batches keeps the tracer recording.
  const spans = new TimelineTracer({ capacity: SPANS });
  const exits = new TimelineTracer({ capacity: EXITS * 4 });
  const full = new TimelineTracer({ capacity: 1 });
  return [
    {
      name: "TimelineTracer span (begin + end)",
      unit: "spans",
      ops: SPANS,
      batch: spanBatch(
        spans,
        () => spans.clear(),
        () => spans.length,
      ),
    },
    {
      name: "TimelineTracer span, full (dropped)",
      unit: "spans",
      ops: SPANS,
      batch: spanBatch(
        full,
        () => {
          full.clear();
          full.instant(TRACE_KIND.GUEST, 0, 0, 0);
        },
        () => full.dropped | 0,
      ),
    },
    {
      name: "NOOP_TRACER span, guarded by enabled (reference)",
      unit: "spans",
      ops: SPANS,
      batch: spanBatch(
        NOOP_TRACER,
        () => {},
        () => SPANS,
      ),
    },
    {
      name: "exit timeline (instant, 2 nested spans, instant)",
      unit: "exits",
      ops: EXITS,
      batch: () => {
        exits.clear();
        let cycle = 0;
        for (let i = 0; i < EXITS; i++) {
          exits.instant(TRACE_KIND.VM_EXIT, 2, 10, cycle);
          exits.begin(TRACE_KIND.VM_EXIT, 0, 10, cycle);
          cycle += 300;
          exits.begin(TRACE_KIND.HANDLER, 0, 10, cycle);
          cycle += 200;
          exits.end(cycle);
          exits.end(cycle);
          exits.instant(TRACE_KIND.VM_ENTRY, 2, 0, cycle);
        }
        return exits.length;
      },
    },
  ];
}
