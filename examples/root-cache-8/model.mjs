// @ts-check
// A nestvisor model module (`nestvisor compare --model examples/root-cache-8/model.mjs`): today's
// KVM with 8 previous roots per MMU context instead of 3. See README.md.
import { kvmRootCacheWithSize } from "@nestvisor/mmu";

/**
 * KVM's root cache lookup (kvm: kvm_mmu_new_pgd → fast_pgd_switch) and LRU replacement, with room
 * for 8 previous roots (kvm: KVM_MMU_NUM_PREV_ROOTS is 3). Preset, flags and profile come from the
 * command line, so the comparison changes this one policy only.
 * @type {import("@nestvisor/hypervisor").ModelSpec}
 */
const model = {
  name: "kvm-root-cache-8",
  policies: { rootCache: kvmRootCacheWithSize(8) },
};

export default model;
