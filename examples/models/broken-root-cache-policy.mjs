// @ts-check
/**
 * A deliberately broken model in the ModelSpec format (what `nestvisor --model` takes): KVM with a
 * root-cache policy that finds a cached root by its PGD alone and never compares the page role.
 *
 * KVM may reuse a cached root only when the root page's role equals the role the MMU context wants
 * (kvm: is_root_usable compares `root_to_sp(root)->role.word` after the PGD). This policy keeps the
 * PGD comparison (skipped for direct roots with `fastSwitchIgnoresCr3ForDirect`, as in KVM) and drops
 * the role comparison. The first nested VM entry without EPT12 then hands L2 the TDP root L1 runs
 * on: the same PGD, a different role (guest_mode). The suite's `mmu` suite reports it:
 *
 *   nestvisor-test-suite --model examples/models/broken-root-cache-policy.mjs --filter '^mmu/'
 *
 * It is the ModelSpec twin of `broken-root-cache.mjs` (a model factory replacing the `vcpuMmu` hook).
 */
import { INVALID_ROOT, kvmMmuNewPgd, MMU_EVENTS, PAGE_ROLE } from "@nestvisor/mmu";

/** @type {import("@nestvisor/mmu").RootCachePolicy} */
export const roleBlindRootCache = Object.freeze({
  name: "role-blind",
  prevRoots: 3,
  /**
   * @param {import("@nestvisor/mmu").MmuContext} ctx
   * @param {number} pgd
   * @param {number} role
   * @param {import("@nestvisor/mmu").RootCacheEnv} env
   */
  newPgd(ctx, pgd, role, env) {
    const ignorePgd = (role & PAGE_ROLE.DIRECT) !== 0 && env.flags.fastSwitchIgnoresCr3ForDirect;
    /** @type {(hpa: number, rootPgd: number) => boolean} */
    const usable = (hpa, rootPgd) => hpa !== INVALID_ROOT && (ignorePgd || rootPgd === pgd); // the bug: no role check
    if (usable(ctx.rootHpa, ctx.rootPgd)) {
      ctx.stats.hitCurrent++;
      env.meter.count(MMU_EVENTS.PGD_HIT_CURRENT);
      return true;
    }
    for (let i = 0; i < ctx.prevHpa.length; i++) {
      const hpa = /** @type {number} */ (ctx.prevHpa[i]);
      const prevPgd = /** @type {number} */ (ctx.prevPgd[i]);
      if (!usable(hpa, prevPgd)) continue;
      ctx.prevHpa[i] = ctx.rootHpa;
      ctx.prevPgd[i] = ctx.rootPgd;
      ctx.rootHpa = hpa;
      ctx.rootPgd = prevPgd;
      ctx.stats.hitPrev[i] = (ctx.stats.hitPrev[i] ?? 0) + 1;
      env.meter.count(MMU_EVENTS.PGD_HIT_PREV);
      return true;
    }
    // Nothing cached under this PGD: KVM's own switch (a miss, or a hit it finds after all).
    return kvmMmuNewPgd(ctx, pgd, role, env);
  },
});

/** @type {import("@nestvisor/hypervisor").ModelSpec} */
const model = {
  name: "broken-root-cache-policy",
  policies: { rootCache: roleBlindRootCache },
};

export default model;
