// @ts-check
/**
 * A deliberately broken model for nestvisor-test-suite: its root cache ignores the page role.
 *
 * KVM may reuse a cached root only when the root's page role equals the role the MMU context wants
 * (kvm: is_root_usable compares `root_to_sp(root)->role.word`). This model's `newPgd` finds a root by
 * its PGD alone (ignoring the PGD of direct roots, as KVM does with fast_switch_ignores_cr3). The
 * first nested VM entry without EPT12 then hands L2 the TDP root L1 runs on: the same PGD (0), a
 * different role (guest_mode). The suite's `mmu` suite reports it:
 *
 *   nestvisor-test-suite --model examples/models/broken-root-cache.mjs --filter '^mmu/'
 *
 * The module exports a function of the kit (the packages and the default model), so it needs no
 * dependencies of its own; see ./README.md for the interface.
 *
 * @param {import("../../apps/test-suite/src/model").ModelKit} kit
 * @returns {import("../../apps/test-suite/src/model").ModelFactory}
 */
export default function brokenRootCache(kit) {
  const { VcpuMmu, PAGE_ROLE, INVALID_ROOT, KVM_MMU_NUM_PREV_ROOTS } = kit.mmu;

  class RoleBlindVcpuMmu extends VcpuMmu {
    /**
     * @override
     * @param {number} pgd
     */
    newPgd(pgd) {
      const ctx = this.mmu;
      const direct = (ctx.rootRole & PAGE_ROLE.DIRECT) !== 0;
      const ignorePgd = direct && this.flags.fastSwitchIgnoresCr3ForDirect;
      /** @type {(hpa: number, rootPgd: number) => boolean} */
      const usable = (hpa, rootPgd) => hpa !== INVALID_ROOT && (ignorePgd || rootPgd === pgd); // no role check: the bug
      if (usable(ctx.rootHpa, ctx.rootPgd)) {
        ctx.stats.hitCurrent++;
        return true;
      }
      for (let i = 0; i < KVM_MMU_NUM_PREV_ROOTS; i++) {
        const hpa = /** @type {number} */ (ctx.prevHpa[i]);
        const prevPgd = /** @type {number} */ (ctx.prevPgd[i]);
        if (!usable(hpa, prevPgd)) continue;
        ctx.prevHpa[i] = ctx.rootHpa;
        ctx.prevPgd[i] = ctx.rootPgd;
        ctx.rootHpa = hpa;
        ctx.rootPgd = prevPgd;
        ctx.stats.hitPrev[i] = (ctx.stats.hitPrev[i] ?? 0) + 1;
        return true;
      }
      return super.newPgd(pgd);
    }
  }

  return {
    ...kit.defaultModel,
    name: "broken-root-cache",
    description: "KVM's model with a root cache that ignores the page role (a deliberate bug)",
    hooks: { ...kit.defaultModel.hooks, vcpuMmu: (options) => new RoleBlindVcpuMmu(options) },
  };
}
