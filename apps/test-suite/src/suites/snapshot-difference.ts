import type { GuestStateSnapshot } from "@nestvisor/hypervisor";

/**
 * What the workload's guest sees: the snapshot without a guest hypervisor's vmcs12, which a change
 * of configuration (another L1 kernel, L1 on shadow paging) may legitimately change.
 */
export function workloadView(s: GuestStateSnapshot): Omit<GuestStateSnapshot, "vmcs12"> {
  const { vmcs12: _ignored, ...rest } = s;
  return rest;
}

/** The first difference between two snapshots, as "path: got instead of want", or null. */
export function snapshotDifference(got: unknown, want: unknown, path = "snapshot"): string | null {
  if (Object.is(got, want)) return null;
  if (typeof got !== "object" || typeof want !== "object" || got === null || want === null) {
    return `${path}: ${JSON.stringify(got)} instead of ${JSON.stringify(want)}`;
  }
  const keys = new Set([...Object.keys(got), ...Object.keys(want)]);
  for (const k of keys) {
    const d = snapshotDifference(
      (got as Record<string, unknown>)[k],
      (want as Record<string, unknown>)[k],
      `${path}.${k}`,
    );
    if (d !== null) return d;
  }
  return null;
}
