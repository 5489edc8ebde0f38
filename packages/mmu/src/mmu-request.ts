/**
 * The vCPU requests (kvm: the KVM_REQ_* bits of vcpu->requests) that the MMU side of the register
 * handlers makes: `VcpuMmu` sets them in its `requests` mask, and whoever runs the vCPU services
 * them before the next VM entry (kvm: vcpu_enter_guest → kvm_check_request). Bits of a plain
 * number, so that making and checking a request allocates nothing.
 */
export const MMU_REQUEST = {
  /** kvm: KVM_REQ_TLB_FLUSH_CURRENT — flush the current context (kvm_vcpu_flush_tlb_current). */
  TLB_FLUSH_CURRENT: 1 << 0,
  /** kvm: KVM_REQ_TLB_FLUSH_GUEST — flush everything the guest can see (kvm_vcpu_flush_tlb_guest). */
  TLB_FLUSH_GUEST: 1 << 1,
  /** kvm: KVM_REQ_MMU_SYNC — resync unsync shadow pages of the current root (kvm_mmu_sync_roots). */
  MMU_SYNC: 1 << 2,
} as const;
export type MmuRequest = (typeof MMU_REQUEST)[keyof typeof MMU_REQUEST];

/** The request bits that ask for a TLB flush (each one made counts as a TLB_FLUSH_REQUEST). */
export const MMU_REQUEST_TLB_FLUSH = (MMU_REQUEST.TLB_FLUSH_CURRENT | MMU_REQUEST.TLB_FLUSH_GUEST) as number;

/** Names of the bits set in `mask`, lowest first (for test failure messages and reports; allocates). */
export function describeMmuRequests(mask: number): string[] {
  const names: string[] = [];
  for (const [name, bit] of Object.entries(MMU_REQUEST)) if ((mask & bit) !== 0) names.push(name);
  return names;
}
