import type { GuestStateSnapshot } from "../run-workload";

/**
 * Parameters that keep a built-in workload's run short in a cross-configuration test: `pages`
 * pages for `touch_memory`, two rounds of `cr3_switch`, `iterations` iterations of the others.
 */
export function shortBuiltinParams(
  name: string,
  level: number,
  sizes: { readonly iterations?: number; readonly pages?: number } = {},
): Record<string, number> {
  if (name === "touch_memory") return { level, pages: sizes.pages ?? 24 };
  if (name === "cr3_switch") return { level, iterations: 2 };
  return { level, iterations: sizes.iterations ?? 3 };
}

/**
 * What the workload's guest sees: the snapshot without a guest hypervisor's vmcs12, which a change
 * of configuration at L1 (another kernel, L1's own EPT built with 2-MiB leaves) may change.
 */
export function workloadView(s: GuestStateSnapshot): Omit<GuestStateSnapshot, "vmcs12"> {
  const { vmcs12: _ignored, ...rest } = s;
  return rest;
}
