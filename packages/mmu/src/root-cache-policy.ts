import type { MmuContext } from "./mmu-context";
import { KVM_MMU_NUM_PREV_ROOTS } from "./mmu-context";
import { kvmMmuNewPgd, type RootCacheEnv } from "./root-cache";

/**
 * How a vCPU's MMU contexts cache roots — an extension point (issue: composable models). KVM keeps
 * the current root plus `KVM_MMU_NUM_PREV_ROOTS` (3) previous ones per context and switches with
 * kvm_mmu_new_pgd (fast_pgd_switch: compare the current root, then rotate through the previous
 * ones, LRU replacement). A policy may change the size, the lookup and the replacement; the flags of
 * seeds 002/004 (`fastSwitchIgnoresCr3ForDirect`, `reuseCurrentRoot`) and 001
 * (`keepRootsOnRoleChange`) keep acting inside KVM's lookup, which is the default policy.
 */
export interface RootCachePolicy {
  /** For reports. */
  readonly name: string;
  /** Previous-root slots per context (1 … MAX_PREV_ROOTS). */
  readonly prevRoots: number;
  /**
   * Switch `ctx` to the root for (`pgd`, `role`): reuse the current or a cached root, or drop the
   * current one so that the next reload allocates (kvm: kvm_mmu_new_pgd). Returns whether it hit.
   */
  newPgd(ctx: MmuContext, pgd: number, role: number, env: RootCacheEnv): boolean;
}

/** KVM's root cache: 3 previous roots, kvm_mmu_new_pgd. */
export const KVM_ROOT_CACHE: RootCachePolicy = Object.freeze({
  name: "kvm",
  prevRoots: KVM_MMU_NUM_PREV_ROOTS,
  newPgd: kvmMmuNewPgd,
});

/** KVM's lookup and replacement with another number of previous roots (e.g. 8). */
export function kvmRootCacheWithSize(prevRoots: number): RootCachePolicy {
  return Object.freeze({ name: `kvm-${prevRoots}-prev`, prevRoots, newPgd: kvmMmuNewPgd });
}
