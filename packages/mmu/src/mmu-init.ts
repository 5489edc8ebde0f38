import { MMU_FLAVOUR, type MmuContext } from "./mmu-context";
import { MMU_EVENTS } from "./mmu-events";
import { PAGE_ROLE, roleLevel } from "./page-role";
import { pkruLoopRuns, updatePermissionBitmask, updatePkruBitmask } from "./permission-bitmask";
import {
  resetEptShadowZeroBitsMask,
  resetGuestRsvdsBitsMask,
  resetRsvdsBitsMaskEpt,
  resetShadowZeroBitsMask,
  resetTdpShadowZeroBitsMask,
} from "./reserved-bits";
import {
  eptpAccessedDirty,
  eptpWalkLevel,
  shadowEptRoleBase,
  shadowEptRoleExt,
  shadowRootRole,
  tdpRootRole,
} from "./role-calculation";
import { kvmMmuNewPgd, type RootCacheEnv } from "./root-cache";

/**
 * Configuring one MMU context for a flavour (kvm-mmu.md §2.2–2.6, §4): compute the roles, pass
 * the "is reconfiguration needed?" gate (when `skipUnchangedMmuInit` is on), and rebuild what a
 * configuration holds — the permission table, the PKRU mask, the guest reserved-bit masks and the
 * shadow-zero masks. Each rebuild is counted on the Meter and in the context's stats, which is
 * where seed 000's saving shows.
 */

/** The guest CPUID facts the guest reserved-bit masks depend on (kvm: reserved_gpa_bits, guest_can_use). */
export interface GuestCpuModel {
  /** Guest MAXPHYADDR (CPUID.80000008H:EAX[7:0]). */
  readonly maxPhysAddr: number;
  /** Guest CPUID reports 1-GiB pages. */
  readonly gbPages: boolean;
  /** Guest CPUID vendor is AMD or Hygon (bit 8 of PML4Es reserved). */
  readonly amd: boolean;
}

/** The host facts the root roles and shadow-zero masks depend on. */
export interface HostMmuModel {
  /** Host physical-address width (kvm: shadow_phys_bits). */
  readonly physBits: number;
  /** Host CPU is AMD (NPT format for TDP shadow-zero masks; kvm: boot_cpu_is_amd). */
  readonly amd: boolean;
  /** Host supports 1-GiB pages. */
  readonly gbPages: boolean;
  /** Largest huge page KVM maps (kvm: max_huge_page_level, a PG_LEVEL value). */
  readonly maxHugePageLevel: number;
  /** kvm: max_tdp_level (4 or 5). */
  readonly maxTdpLevel: number;
  /** kvm: tdp_root_level, the vendor-forced TDP level (0 = none; SVM uses the host depth). */
  readonly forcedTdpLevel: number;
  /** kvm: kvm_ad_enabled() — TDP roles have `ad_disabled` when false. */
  readonly adEnabled: boolean;
}

/** What the init functions read besides the context: flags, meter, backend, and the models. */
export interface MmuInitEnv extends RootCacheEnv {
  readonly guest: GuestCpuModel;
  readonly host: HostMmuModel;
  /** The TDP root level for this vCPU (kvm: kvm_mmu_get_tdp_level; see `tdpRootLevel`). */
  readonly tdpLevel: number;
}

const EV_INIT = MMU_EVENTS.CONTEXT_INIT;
const EV_PERM = MMU_EVENTS.PERMISSION_BITMASK_UPDATE;
const EV_PKRU = MMU_EVENTS.PKRU_BITMASK_UPDATE;
const EV_RSVD = MMU_EVENTS.GUEST_RSVD_MASK_RESET;
const EV_ZERO = MMU_EVENTS.SHADOW_ZERO_MASK_RESET;

function countInit(ctx: MmuContext, env: MmuInitEnv): void {
  ctx.stats.inits++;
  env.meter.count(EV_INIT);
}

function rebuildPermissions(ctx: MmuContext, ept: boolean, env: MmuInitEnv): void {
  updatePermissionBitmask(ctx.permissions, ctx.cpuRoleBase, ctx.cpuRoleExt, ept);
  ctx.stats.permissionUpdates++;
  env.meter.count(EV_PERM);
}

function countGuestRsvdReset(ctx: MmuContext, env: MmuInitEnv): void {
  ctx.stats.guestRsvdResets++;
  env.meter.count(EV_RSVD);
}

function countShadowZeroReset(ctx: MmuContext, env: MmuInitEnv): void {
  ctx.stats.shadowZeroResets++;
  env.meter.count(EV_ZERO);
}

/**
 * The expensive part of a reconfiguration (kvm: reset_guest_paging_metadata, §4.3). Nothing
 * happens with CR0.PG = 0 — the tables keep their old contents. Otherwise: the guest reserved-bit
 * masks, `update_permission_bitmask` (16 iterations) and `update_pkru_bitmask` (whose 16-iteration
 * loop runs, and is counted, only with CR4.PKE in long mode).
 */
export function resetGuestPagingMetadata(ctx: MmuContext, env: MmuInitEnv): void {
  // kvm: reset_guest_paging_metadata — `if (!is_cr0_pg(mmu)) return;` (cpu role level 0).
  if (roleLevel(ctx.cpuRoleBase) === 0) return;
  const g = env.guest;
  resetGuestRsvdsBitsMask(
    ctx.guestRsvdCheck,
    ctx.cpuRoleBase,
    ctx.cpuRoleExt,
    g.maxPhysAddr,
    g.gbPages,
    g.amd,
  );
  countGuestRsvdReset(ctx, env);
  rebuildPermissions(ctx, false, env);
  ctx.pkruMask = updatePkruBitmask(ctx.cpuRoleBase, ctx.cpuRoleExt);
  if (pkruLoopRuns(ctx.cpuRoleExt)) {
    ctx.stats.pkruUpdates++;
    env.meter.count(EV_PKRU);
  }
}

/**
 * The TDP context for L1, or for L2 when L1 does not use EPT (kvm: init_kvm_tdp_mmu, §2.2).
 * Gate: both the cpu role and the root role unchanged. Returns whether it reconfigured.
 */
export function initTdpMmu(ctx: MmuContext, cpuBase: number, cpuExt: number, env: MmuInitEnv): boolean {
  const rootRole = tdpRootRole(cpuBase, env.tdpLevel, env.host.adEnabled);
  // kvm: init_kvm_tdp_mmu — return at once if cpu_role.as_u64 and root_role.word are unchanged.
  if (
    env.flags.skipUnchangedMmuInit &&
    cpuBase === ctx.cpuRoleBase &&
    cpuExt === ctx.cpuRoleExt &&
    rootRole === ctx.rootRole
  ) {
    return false;
  }
  ctx.cpuRoleBase = cpuBase;
  ctx.cpuRoleExt = cpuExt;
  ctx.rootRole = rootRole;
  ctx.flavour = MMU_FLAVOUR.TDP;
  ctx.guestPgdIsEptp = false;
  countInit(ctx, env);
  resetGuestPagingMetadata(ctx, env);
  const h = env.host;
  resetTdpShadowZeroBitsMask(ctx.shadowZeroCheck, rootRole, h.physBits, h.amd, h.gbPages, h.maxHugePageLevel);
  countShadowZeroReset(ctx, env);
  return true;
}

/**
 * Shadow paging (kvm: init_kvm_softmmu → kvm_init_shadow_mmu → shadow_mmu_init_context, §2.3).
 * Same gate as TDP; the root role is the cpu role at PAE depth or more with NX forced. The
 * get_guest_pgd hook is set whether or not the gate passes, as init_kvm_softmmu does.
 */
export function initShadowMmu(ctx: MmuContext, cpuBase: number, cpuExt: number, env: MmuInitEnv): boolean {
  const rootRole = shadowRootRole(cpuBase);
  ctx.guestPgdIsEptp = false;
  // kvm: shadow_mmu_init_context — same gate as init_kvm_tdp_mmu.
  if (
    env.flags.skipUnchangedMmuInit &&
    cpuBase === ctx.cpuRoleBase &&
    cpuExt === ctx.cpuRoleExt &&
    rootRole === ctx.rootRole
  ) {
    return false;
  }
  ctx.cpuRoleBase = cpuBase;
  ctx.cpuRoleExt = cpuExt;
  ctx.rootRole = rootRole;
  ctx.flavour = MMU_FLAVOUR.SHADOW;
  countInit(ctx, env);
  resetGuestPagingMetadata(ctx, env);
  resetShadowZeroBitsMask(ctx.shadowZeroCheck, rootRole, env.host.physBits, env.guest.gbPages);
  countShadowZeroReset(ctx, env);
  return true;
}

/**
 * Shadow EPT for L2 when L1 uses EPT (kvm: kvm_init_shadow_ept_mmu, §2.4), including its PGD
 * switch to `eptp` (L1's EPTP as a number; its walk length and A/D bit select the role). Gate: the
 * EPT-derived cpu role unchanged. The PGD switch always happens: after the gate, with the
 * context's root role (v5.18+, 3cffc89d9d07) or, with `keepRootsOnRoleChange` off, before the gate
 * with the newly computed role. Returns whether it reconfigured.
 */
export function initShadowEptMmu(
  ctx: MmuContext,
  eptp: number,
  executeOnly: boolean,
  hugePageLevel: number,
  env: MmuInitEnv,
): boolean {
  const eptpLo = eptp >>> 0;
  const base = shadowEptRoleBase(eptpWalkLevel(eptpLo), eptpAccessedDirty(eptpLo));
  const ext = shadowEptRoleExt(executeOnly);
  const pgdAfterInit = env.flags.keepRootsOnRoleChange;
  // kvm (pre-v5.18): __kvm_mmu_new_cr3(vcpu, new_eptp, new_role.base) ran before the gate.
  if (!pgdAfterInit) kvmMmuNewPgd(ctx, eptp, base, env);
  let reconfigured = false;
  // kvm: kvm_init_shadow_ept_mmu — reconfigure only if new_mode.as_u64 != cpu_role.as_u64.
  if (!env.flags.skipUnchangedMmuInit || base !== ctx.cpuRoleBase || ext !== ctx.cpuRoleExt) {
    ctx.cpuRoleBase = base;
    ctx.cpuRoleExt = ext;
    ctx.rootRole = base;
    ctx.flavour = MMU_FLAVOUR.SHADOW_EPT;
    countInit(ctx, env);
    // EPT does not consume L2's CR0/CR4/EFER: the EPT flavour of the permission table, no PKRU.
    rebuildPermissions(ctx, true, env);
    ctx.pkruMask = 0;
    resetRsvdsBitsMaskEpt(ctx.guestRsvdCheck, env.guest.maxPhysAddr, executeOnly, hugePageLevel);
    countGuestRsvdReset(ctx, env);
    resetEptShadowZeroBitsMask(
      ctx.shadowZeroCheck,
      env.host.physBits,
      executeOnly,
      env.host.maxHugePageLevel,
    );
    countShadowZeroReset(ctx, env);
    reconfigured = true;
  }
  // kvm: nested_ept_init_mmu_context points get_guest_pgd at nested_ept_get_eptp.
  ctx.guestPgdIsEptp = true;
  if (pgdAfterInit) kvmMmuNewPgd(ctx, eptp, ctx.rootRole, env);
  return reconfigured;
}

/**
 * The walk-only context for L2's own tables while L1 uses EPT for it (kvm: init_kvm_nested_mmu,
 * §2.6). Gate: the cpu role unchanged; the root role is neither computed nor compared.
 */
export function initNestedMmu(ctx: MmuContext, cpuBase: number, cpuExt: number, env: MmuInitEnv): boolean {
  // kvm: init_kvm_nested_mmu — return if new_mode.as_u64 == g_context->cpu_role.as_u64.
  if (env.flags.skipUnchangedMmuInit && cpuBase === ctx.cpuRoleBase && cpuExt === ctx.cpuRoleExt)
    return false;
  ctx.cpuRoleBase = cpuBase;
  ctx.cpuRoleExt = cpuExt;
  ctx.flavour = MMU_FLAVOUR.NESTED_WALK;
  ctx.guestPgdIsEptp = false;
  countInit(ctx, env);
  resetGuestPagingMetadata(ctx, env);
  return true;
}

/**
 * The lazy CR0.WP refresh before an emulated permission check (kvm:
 * __kvm_mmu_refresh_passthrough_bits, v6.4): when the guest changed CR0.WP without an exit (WP is
 * guest-owned under EPT), only the stored `cr0_wp` bit is updated — not smep/smap_andnot_wp — and
 * the permission metadata is rebuilt. Returns whether it rebuilt. The caller skips this without
 * TDP and for guest_mmu (kvm: kvm_mmu_refresh_passthrough_bits).
 */
export function refreshPassthroughBits(ctx: MmuContext, cr0Wp: boolean, env: MmuInitEnv): boolean {
  const stored = (ctx.cpuRoleBase & PAGE_ROLE.CR0_WP) !== 0;
  if (stored === cr0Wp) return false;
  ctx.cpuRoleBase = (cr0Wp ? ctx.cpuRoleBase | PAGE_ROLE.CR0_WP : ctx.cpuRoleBase & ~PAGE_ROLE.CR0_WP) >>> 0;
  resetGuestPagingMetadata(ctx, env);
  return true;
}
