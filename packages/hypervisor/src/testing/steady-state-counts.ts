import { MMU_EVENTS } from "@nestvisor/mmu";
import { CountingMeter, type MeterSnapshot, VMX_EVENTS } from "@nestvisor/vmx";
import { builtinWorkload } from "../builtin-workloads";
import { HYPERVISOR_EVENTS } from "../hypervisor-events";
import { resolveFlags } from "../kernel-presets";
import { Machine } from "../machine";

/**
 * Steady-state counts of one iteration of a workload: the counts of a run of 30 iterations minus
 * those of a run of 10, divided by 20, so that boot and the first (cold) iterations cancel out.
 * `build` makes the machine for an iteration count, counting into the meter it is given.
 */
export function steadyStateCounts(
  build: (iterations: number, meter: CountingMeter) => Machine,
): Record<string, number> {
  const counts = (iterations: number): MeterSnapshot => {
    const meter = new CountingMeter([VMX_EVENTS, MMU_EVENTS, HYPERVISOR_EVENTS]);
    const machine = build(iterations, meter);
    meter.reset();
    machine.run();
    return meter.snapshot();
  };
  const a = counts(10);
  const b = counts(30);
  const out: Record<string, number> = {};
  for (const name of Object.keys(b)) out[name] = ((b[name] ?? 0) - (a[name] ?? 0)) / 20;
  return out;
}

/** `steadyStateCounts` of built-in workload `name` at `level` under `preset` with `flags` on top. */
export function builtinSteadyStateCounts(
  name: string,
  level: number,
  preset: string,
  flags: Record<string, boolean> = {},
): Record<string, number> {
  return steadyStateCounts(
    (iterations, meter) =>
      new Machine({
        program: builtinWorkload(name, { level, iterations }),
        config: resolveFlags(preset, flags),
        meter,
      }),
  );
}
