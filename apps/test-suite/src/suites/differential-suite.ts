import {
  BUILTIN_WORKLOAD_NAMES,
  builtinWorkload,
  type GuestStateSnapshot,
  type HypervisorFlagName,
  type HypervisorFlags,
  KERNEL_PRESET_NAMES,
  OPTIMIZATION_FLAG_NAMES,
  resolveFlags,
  withFlags,
} from "@nestvisor/hypervisor";
import type { CaseRecorder } from "../case-recorder";
import type { ModelFactory } from "../model";
import type { CaseGroup, Suite, SuiteContext } from "../suite";
import { pagingMethodGroup } from "./paging-method-group";
import { snapshotDifference, workloadView } from "./snapshot-difference";

/**
 * DESIGN.md §2.3: an optimization never changes what a guest sees. For every built-in workload at
 * levels 1 and 2, against the run's configuration as the reference:
 * - another preset, or one flag flipped, at L0 only (the guest hypervisors keep the reference
 *   configuration): the whole snapshot is equal, vmcs12 as L1 reads it back included;
 * - the same everywhere: the workload's own view is equal (vmcs12 may differ, because L1 is then a
 *   different kernel that intercepts other things).
 * The fast default tries the presets `none`, `v4.19`, `v5.3` and `all` and three flags per workload
 * (every flag is covered across the workloads); `--full` tries every preset and every flag.
 */

function params(name: string, level: number, full: boolean): Record<string, number> {
  if (name === "touch_memory") return { level, pages: full ? 24 : 8 };
  if (name === "cr3_switch") return { level, iterations: 2 };
  return { level, iterations: full ? 4 : 2 };
}

type Variant = { readonly label: string; readonly config: HypervisorFlags; readonly l0Only: boolean };

function variantsFor(ctx: SuiteContext, index: number, level: number): Variant[] {
  const base = ctx.flags;
  const presets = ctx.full
    ? KERNEL_PRESET_NAMES.filter((p) => p !== ctx.preset)
    : (["none", "v4.19", "v5.3", "all"] as const).filter((p) => p !== ctx.preset);
  const flags: readonly HypervisorFlagName[] = ctx.full
    ? OPTIMIZATION_FLAG_NAMES
    : [0, 1, 2].map((k) => OPTIMIZATION_FLAG_NAMES[(3 * index + k) % OPTIMIZATION_FLAG_NAMES.length]!);
  const out: Variant[] = [];
  for (const preset of presets) {
    // Presets differ in configuration switches only where they differ in kernel (tdpMmu); the run's
    // switches stay, so a `--flag tdpMmu=off` run compares like with like.
    const config = withFlags(resolveFlags(preset, {}), {
      ept: base.ept,
      l1Ept: base.l1Ept,
      shadowVmcs: base.shadowVmcs,
    });
    out.push({ label: `preset ${preset} at L0`, config, l0Only: true });
    if (level > 1) out.push({ label: `preset ${preset} everywhere`, config, l0Only: false });
  }
  for (const flag of flags) {
    const config = withFlags(base, { [flag]: !base[flag] });
    const label = `${flag}=${base[flag] ? "off" : "on"}`;
    out.push({ label: `${label} at L0`, config, l0Only: true });
    if (level > 1) out.push({ label: `${label} everywhere`, config, l0Only: false });
  }
  return out;
}

function snapshotOf(
  model: ModelFactory,
  name: string,
  level: number,
  full: boolean,
  config: HypervisorFlags,
  inner: HypervisorFlags,
) {
  const machine = model.createMachine({
    program: builtinWorkload(name, params(name, level, full)),
    config,
    innerConfig: inner,
  });
  machine.run();
  return machine.snapshot();
}

function workloadGroup(ctx: SuiteContext, name: string, index: number): CaseGroup {
  const levels = [1, 2];
  const count = levels.reduce((n, level) => n + variantsFor(ctx, index, level).length, 0);
  return {
    id: `differential/${name}`,
    description: `${name} at L1 and L2: the guest-visible state under other presets and with each flag flipped equals the run's`,
    cases: count,
    run(rec: CaseRecorder, c: SuiteContext) {
      for (const level of levels) {
        const reference = snapshotOf(c.model, name, level, c.full, c.flags, c.flags);
        for (const v of variantsFor(c, index, level)) {
          let got: GuestStateSnapshot;
          try {
            got = snapshotOf(c.model, name, level, c.full, v.config, v.l0Only ? c.flags : v.config);
          } catch (error) {
            rec.fail(`L${level}, ${v.label}: the machine failed: ${(error as Error).message}`);
            continue;
          }
          const d = v.l0Only
            ? snapshotDifference(got, reference)
            : snapshotDifference(workloadView(got), workloadView(reference));
          if (d === null) rec.pass();
          else rec.fail(`L${level}, ${v.label}: ${d} (a guest can tell; DESIGN.md §2.3)`);
        }
      }
    },
  };
}

/** The `differential` suite. */
export const DIFFERENTIAL_SUITE: Suite = {
  name: "differential",
  description:
    "every built-in workload with each flag flipped and under other presets, and random address-space programs with EPT or shadow paging, give the same guest-visible state",
  groups(ctx) {
    const unsupported =
      !ctx.flags.ept || !ctx.flags.l1Ept ? "the runtime models ept=on and l1Ept=on only" : undefined;
    return [
      ...BUILTIN_WORKLOAD_NAMES.map((name, i) => ({
        ...workloadGroup(ctx, name, i),
        ...(unsupported === undefined ? {} : { skip: unsupported }),
      })),
      pagingMethodGroup(ctx),
    ];
  },
};
