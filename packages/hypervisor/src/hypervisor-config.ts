import type { MmuFlags } from "@nestvisor/mmu";

/**
 * What the KVM model reads of the configuration: the seed-003 VMX flags, the MMU flags and the
 * configuration switches. `HypervisorFlags` (hypervisor-flags.ts) is the complete, validated set;
 * this is the subset the runtime needs, so it does not depend on how flags are named for users.
 */
export interface KvmConfig extends MmuFlags {
  readonly readOnlyShadowFields: boolean;
  readonly precomputedShadowOffsets: boolean;
  readonly lazyRareGuestSync: boolean;
  readonly noVcpuPutOnVmcsSwitch: boolean;
  readonly nestedEntryWriteTrims: boolean;
  readonly controlsShadow: boolean;
  /** vcpu_enter_guest reads the host's DEBUGCTL before every entry (kernel behaviour, v6.14+). */
  readonly hostDebugctlPerEntry: boolean;
  /** L0 uses EPT (kvm: enable_ept). */
  readonly ept: boolean;
  /** A guest hypervisor gives its own guest EPT (vmcs12 enables EPT). */
  readonly l1Ept: boolean;
  /** L0 uses VMCS shadowing for its guest hypervisor (kvm: enable_shadow_vmcs). */
  readonly shadowVmcs: boolean;
  /** The TDP MMU (kvm: tdp_mmu) rather than the legacy shadow-page MMU for direct roots. */
  readonly tdpMmu: boolean;
  /** The host backs guest memory with 2-MiB pages (THP or hugetlbfs). */
  readonly hugePages: boolean;
}
