import type { SweepRow } from "../sweep/sweep-row";

/** Test helper: a sweep row of a 4-cell grid, with `more` replacing members. */
export function fakeRow(index: number, more: Partial<SweepRow> = {}): SweepRow {
  return {
    grid: "0123456789abcdef",
    gridCells: 4,
    index,
    key: JSON.stringify({ workload: "cpuid", level: 1, index }),
    workload: "cpuid",
    level: 1,
    preset: "v6.12",
    model: null,
    profile: "intel-server",
    flags: {},
    cyclesPerIteration: 1000 + index,
    cyclesByLevel: { L0: 700, L1: 300 + index },
    counters: { HARDWARE_VM_EXIT: 1 },
    guest: "00000000000000aa",
    ...more,
  };
}
