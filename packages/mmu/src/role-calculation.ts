import { EPTP } from "@nestvisor/x86-arch";
import { EXT_ROLE } from "./extended-role";
import { ACC, PAGE_ROLE, roleLevel } from "./page-role";
import { ROOT_LEVEL } from "./reserved-bits";

/**
 * The roles each MMU flavour derives from a cpu role (kvm-mmu.md §2.2–2.6): the *root role* names
 * the shadow/TDP pages a context builds (compared against a root's page to reuse it), the *cpu
 * role* is what the context's software walks and permission checks follow. All functions take and
 * return 32-bit words; none allocates.
 */

/**
 * The level of TDP (EPT/NPT) roots (kvm: kvm_mmu_get_tdp_level). `forcedLevel` is the vendor's
 * forced level (SVM NPT uses the host paging depth; 0 = none). Otherwise 5-level TDP is used only
 * when the guest can address more than 48 bits.
 */
export function tdpRootLevel(maxTdpLevel: number, forcedLevel: number, guestMaxPhysAddr: number): number {
  if (forcedLevel !== 0) return forcedLevel;
  // kvm: kvm_mmu_get_tdp_level — "Use 5-level TDP if and only if it's useful/necessary."
  if (maxTdpLevel === ROOT_LEVEL.PT64_5 && guestMaxPhysAddr <= 48) return ROOT_LEVEL.PT64_4;
  return maxTdpLevel;
}

/**
 * Root role of the TDP context (kvm: kvm_calc_tdp_mmu_root_page_role, §2.2): direct, ACC_ALL,
 * CR0.WP and EFER.NX forced to 1, 8-byte entries; only `smm` and `guest_mode` come from the cpu
 * role. `adEnabled` is kvm_ad_enabled() (host EPT A/D bits in use).
 */
export function tdpRootRole(cpuBase: number, level: number, adEnabled: boolean): number {
  let role =
    level |
    PAGE_ROLE.DIRECT |
    (ACC.ALL << PAGE_ROLE.ACCESS_SHIFT) |
    PAGE_ROLE.CR0_WP |
    PAGE_ROLE.EFER_NX |
    (cpuBase & (PAGE_ROLE.SMM_MASK | PAGE_ROLE.GUEST_MODE));
  if (!adEnabled) role |= PAGE_ROLE.AD_DISABLED;
  return role >>> 0;
}

/**
 * Root role of the shadow-paging context (kvm: kvm_init_shadow_mmu, §2.3): the cpu role's base
 * with at least PAE depth (KVM shadows 2-level and PAE guests with PAE tables) and EFER.NX forced
 * to 1 (KVM always uses NX in SPTEs without TDP). CR0.WP, SMEP/SMAP-and-not-WP, the gpte size,
 * `direct` (paging off), guest mode and SMM are kept.
 */
export function shadowRootRole(cpuBase: number): number {
  const level = Math.max(roleLevel(cpuBase), ROOT_LEVEL.PT32E);
  return ((cpuBase & ~PAGE_ROLE.LEVEL_MASK) | level | PAGE_ROLE.EFER_NX) >>> 0;
}

/**
 * The EPT page-walk length an EPTP selects, as KVM reads it (kvm: vmx_eptp_page_walk_level): 5
 * when bits 5:3 say a 5-level walk, 4 otherwise. `eptpLo` is the EPTP's low word.
 */
export function eptpWalkLevel(eptpLo: number): number {
  const walkLengthMinusOne = (eptpLo >>> EPTP.WALK_LENGTH_SHIFT) & EPTP.WALK_LENGTH_MASK;
  return walkLengthMinusOne === ROOT_LEVEL.PT64_5 - 1 ? ROOT_LEVEL.PT64_5 : ROOT_LEVEL.PT64_4;
}

/** Whether L1's EPTP enables accessed/dirty flags (kvm: nested_ept_ad_enabled; EPTP bit 6). */
export function eptpAccessedDirty(eptpLo: number): boolean {
  return (eptpLo & EPTP.ACCESSED_DIRTY) !== 0;
}

/**
 * Base word of the shadow-EPT cpu role, which is also its root role (kvm:
 * kvm_calc_shadow_ept_root_page_role, §2.4): indirect, 8-byte entries, ACC_ALL, guest mode,
 * `ad_disabled` when L1's EPTP has A/D off. SMM, CR0.WP, EFER.NX and the SMEP/SMAP bits are all 0:
 * EPT does not consume L2's CR0, CR4 or EFER.
 */
export function shadowEptRoleBase(level: number, accessedDirty: boolean): number {
  let role = level | (ACC.ALL << PAGE_ROLE.ACCESS_SHIFT) | PAGE_ROLE.GUEST_MODE;
  if (!accessedDirty) role |= PAGE_ROLE.AD_DISABLED;
  return role >>> 0;
}

/** Ext word of the shadow-EPT cpu role: `valid`, plus `execonly` when L1 was offered execute-only EPT. */
export function shadowEptRoleExt(executeOnly: boolean): number {
  return executeOnly ? EXT_ROLE.VALID | EXT_ROLE.EXECONLY : EXT_ROLE.VALID;
}

/**
 * Root role of the shadow-NPT context (SVM; kvm: kvm_init_shadow_npt_mmu, §2.5): L1's nested
 * paging cpu role (computed without CR4.PKE) at the TDP level, with `passthrough` when KVM uses
 * 5-level NPT over a 4-level L1 NPT.
 */
export function shadowNptRootRole(cpuBase: number, tdpLevel: number): number {
  let role = (cpuBase & ~PAGE_ROLE.LEVEL_MASK) | tdpLevel;
  if (tdpLevel === ROOT_LEVEL.PT64_5 && roleLevel(cpuBase) === ROOT_LEVEL.PT64_4)
    role |= PAGE_ROLE.PASSTHROUGH;
  return role >>> 0;
}

/**
 * The root role the pre-v5.18 fast switch computed from vCPU state before the context was
 * initialised (kvm: kvm_mmu_calc_root_page_role, removed by d2e5f3334169): the TDP root role under
 * TDP, the shadow root role otherwise. Today's formulas are used for both: the kernels of that era
 * also copied the guest's CR0.WP and EFER.NX into TDP roles (kvm_calc_mmu_role_common) and did not
 * force NX in shadow roots, which this model does not reproduce. That is a known deviation for the
 * pre-v5.18 presets, and not only in which root is picked: there a CR0.WP toggle gave the legacy
 * MMU a second TDP root (its own hashed tree, built again by EPT violations), where this model
 * keeps using the WP=1 tree — so `toggle_cr0_wp` under v4.19–v5.17 undercounts ROOT_ALLOC, shadow
 * page allocations and the EPT violations that fill the second tree.
 */
export function calcRootPageRole(
  tdpEnabled: boolean,
  cpuBase: number,
  tdpLevel: number,
  adEnabled: boolean,
): number {
  return tdpEnabled ? tdpRootRole(cpuBase, tdpLevel, adEnabled) : shadowRootRole(cpuBase);
}
