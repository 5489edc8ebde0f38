import { type Meter, NOOP_METER } from "@nestvisor/vmx";
import { CR0, CR3, CR4, EFER, isPaePaging } from "@nestvisor/x86-arch";
import {
  cpuRoleBase,
  cpuRoleExt,
  MMU_CR0_ROLE_BITS,
  MMU_CR4_ROLE_BITS,
  MMU_CR4_ROLE_BITS_PRE_5_16,
  MMU_EFER_ROLE_BITS,
  MMU_EFER_ROLE_BITS_PRE_5_18,
} from "./cpu-role";
import { MmioCache } from "./mmio-cache";
import { kvmMmuRootPrevious, MMU_CONTEXT_KIND, MMU_FLAVOUR, MmuContext } from "./mmu-context";
import { MMU_EVENTS } from "./mmu-events";
import { DEFAULT_MMU_FLAGS, type MmuFlags } from "./mmu-flags";
import {
  type GuestCpuModel,
  type HostMmuModel,
  initNestedMmu,
  initShadowEptMmu,
  initShadowMmu,
  initTdpMmu,
  type MmuInitEnv,
  refreshPassthroughBits,
} from "./mmu-init";
import { MMU_REQUEST, MMU_REQUEST_TLB_FLUSH, type MmuRequest } from "./mmu-request";
import { PG_LEVEL } from "./reserved-bits";
import { calcRootPageRole, tdpRootLevel } from "./role-calculation";
import type { RootBackend } from "./root-backend";
import {
  kvmMmuFreeGuestModeRoots,
  kvmMmuFreeObsoleteRoots,
  kvmMmuFreeRoots,
  kvmMmuReload,
  rootsMatchingEptp,
} from "./root-cache";
import { KVM_ROOT_CACHE, type RootCachePolicy } from "./root-cache-policy";

/**
 * One vCPU's MMU state as KVM keeps it in `struct kvm_vcpu_arch` (kvm-mmu.md §1.5, §4, §6): the
 * three contexts, the `mmu` and `walk_mmu` pointers, the control registers the roles are computed
 * from, and the operations that reconfigure contexts and switch roots — `kvm_init_mmu`,
 * `kvm_mmu_reset_context`, the CR0/CR4/EFER post-set handlers, the CPUID invalidation, and the MMU
 * part of a nested VM entry and exit (nested_ept_init_mmu_context, nested_vmx_load_cr3,
 * nested_ept_uninit_mmu_context, load_vmcs12_host_state, handle_invept, free_nested).
 *
 * With `splitGuestMmu` off there is no separate guest_mmu: `guestMmu` *is* `rootMmu`, the one
 * context that is re-targeted each way (kvm-mmu.md §6.4).
 *
 * Register values are numbers: CR0/CR4/EFER as their low words (every bit the MMU reads is below
 * bit 32), CR3 and the EPTP as whole values below 2^53 (the CR3 without its NOFLUSH bit 63, which
 * `setCr3` takes as a separate argument).
 *
 * The TLB-flush and sync requests the handlers make (kvm: kvm_make_request) collect in `requests`
 * (MMU_REQUEST bits) for the owner of the vCPU to serve before the next entry; each flush request
 * made also counts TLB_FLUSH_REQUEST.
 */

/** INVEPT types (SDM Vol. 3C 31.3 "INVEPT"; kvm: VMX_EPT_EXTENT_CONTEXT, VMX_EPT_EXTENT_GLOBAL). */
export const INVEPT_TYPE = {
  SINGLE_CONTEXT: 1,
  GLOBAL: 2,
} as const;
export type InveptType = (typeof INVEPT_TYPE)[keyof typeof INVEPT_TYPE];

/** What L1 offers L2 for nested EPT (from the nested IA32_VMX_EPT_VPID_CAP). */
export interface NestedEptCaps {
  /** Execute-only EPT entries allowed (kvm: VMX_EPT_EXECUTE_ONLY_BIT in nested.msrs.ept_caps). */
  readonly executeOnly: boolean;
  /** Largest EPT12 leaf (a PG_LEVEL; kvm: the nested caps' 2M/1G bits). */
  readonly hugePageLevel: number;
}

/** Control registers as a group (KVM_SET_SREGS, vmcs12 guest or host state). */
export interface MmuRegisters {
  readonly cr0: number;
  readonly cr3: number;
  readonly cr4: number;
  readonly efer: number;
}

/** L2's state at a nested VM entry; `eptp` present means vmcs12 enables EPT. */
export interface NestedEntryState extends MmuRegisters {
  readonly eptp?: number;
}

export interface VcpuMmuOptions {
  readonly backend: RootBackend;
  readonly meter?: Meter;
  readonly flags?: MmuFlags;
  /** L0 uses EPT/NPT (kvm: tdp_enabled). Default true. */
  readonly tdpEnabled?: boolean;
  readonly guest?: Partial<GuestCpuModel>;
  readonly host?: Partial<HostMmuModel>;
  readonly nestedEpt?: Partial<NestedEptCaps>;
  /** How contexts cache roots (size, lookup, replacement). Default: KVM's. */
  readonly rootCache?: RootCachePolicy;
}

/** A recent Intel host: 46-bit physical addresses, 1-GiB pages, 4-level EPT with A/D bits. */
export const DEFAULT_HOST_MMU: HostMmuModel = Object.freeze({
  physBits: 46,
  amd: false,
  gbPages: true,
  maxHugePageLevel: PG_LEVEL.SIZE_1G,
  maxTdpLevel: 4,
  forcedTdpLevel: 0,
  adEnabled: true,
});

/** A guest CPUID like the host's (Intel, MAXPHYADDR 46, 1-GiB pages). */
export const DEFAULT_GUEST_CPU: GuestCpuModel = Object.freeze({ maxPhysAddr: 46, gbPages: true, amd: false });

/** KVM offers execute-only EPT and 1-GiB EPT pages when the host has them. */
export const DEFAULT_NESTED_EPT_CAPS: NestedEptCaps = Object.freeze({
  executeOnly: true,
  hugePageLevel: PG_LEVEL.SIZE_1G,
});

/**
 * Where seed 001 v2 patch 18 keeps a full unload, because a TLB flush is architecturally required
 * or the role does not capture the change (kvm-mmu.md §4.4): CR0.PG 1→0 and CR4.SMEP 0→1. CPUID
 * changes unload in kvm_mmu_after_set_cpuid.
 */
function patch18UnloadRequired(oldCr0: number, newCr0: number, oldCr4: number, newCr4: number): boolean {
  return (oldCr0 & ~newCr0 & CR0.PG) !== 0 || (newCr4 & ~oldCr4 & CR4.SMEP) !== 0;
}

/** CR0 after RESET/INIT (SDM Vol. 3A 10.1.1, Table 10-1): CD, NW, ET. */
const CR0_RESET = 0x60000010;

/** The CR0 bits that exist (kvm: the complement of CR0_RESERVED_BITS; SDM Vol. 3A 2.5). */
const CR0_DEFINED_BITS =
  (CR0.PE | CR0.MP | CR0.EM | CR0.TS | CR0.ET | CR0.NE | CR0.WP | CR0.AM | CR0.NW | CR0.CD | CR0.PG) >>> 0;

const EV_UNLOAD = MMU_EVENTS.MMU_UNLOAD;
const EV_RESET = MMU_EVENTS.MMU_RESET_CONTEXT;
const EV_TLB_FLUSH_REQUEST = MMU_EVENTS.TLB_FLUSH_REQUEST;

export class VcpuMmu implements MmuInitEnv {
  readonly backend: RootBackend;
  readonly meter: Meter;
  readonly flags: MmuFlags;
  readonly tdpEnabled: boolean;
  readonly guest: GuestCpuModel;
  readonly host: HostMmuModel;
  readonly nestedEpt: NestedEptCaps;
  readonly tdpLevel: number;
  readonly rootCache: RootCachePolicy;

  /** kvm: vcpu->arch.root_mmu. */
  readonly rootMmu: MmuContext;
  /** kvm: vcpu->arch.guest_mmu; the same object as `rootMmu` with `splitGuestMmu` off. */
  readonly guestMmu: MmuContext;
  /** kvm: vcpu->arch.nested_mmu. */
  readonly nestedMmu: MmuContext;
  /** kvm: vcpu->arch.mmu — the context that handles faults and holds roots. */
  mmu: MmuContext;
  /** kvm: vcpu->arch.walk_mmu — the context used for gva→gpa walks. */
  walkMmu: MmuContext;

  cr0 = CR0_RESET;
  cr3 = 0;
  cr4 = 0;
  efer = 0;
  /** kvm: is_smm(vcpu). */
  smm = false;
  /** kvm: is_guest_mode(vcpu) — L2 is running. */
  guestMode = false;
  /** vmcs12's EPT pointer (what guest_mmu's get_guest_pgd returns). */
  eptp12 = 0;
  /** Pending MMU_REQUEST bits (kvm: the KVM_REQ_* bits of vcpu->requests made by the MMU side). */
  requests = 0;
  /** kvm: the vCPU's MMIO cache (vcpu->arch.mmio_*). */
  readonly mmioCache = new MmioCache();

  constructor(options: VcpuMmuOptions) {
    this.backend = options.backend;
    this.meter = options.meter ?? NOOP_METER;
    this.flags = options.flags ?? DEFAULT_MMU_FLAGS;
    this.tdpEnabled = options.tdpEnabled ?? true;
    this.guest = Object.freeze({ ...DEFAULT_GUEST_CPU, ...options.guest });
    this.host = Object.freeze({ ...DEFAULT_HOST_MMU, ...options.host });
    this.nestedEpt = Object.freeze({ ...DEFAULT_NESTED_EPT_CAPS, ...options.nestedEpt });
    this.tdpLevel = tdpRootLevel(this.host.maxTdpLevel, this.host.forcedTdpLevel, this.guest.maxPhysAddr);
    // kvm: kvm_mmu_create — mmu = walk_mmu = &root_mmu; every root slot invalid.
    this.rootCache = options.rootCache ?? KVM_ROOT_CACHE;
    const size = this.rootCache.prevRoots;
    this.rootMmu = new MmuContext(MMU_CONTEXT_KIND.ROOT_MMU, size);
    this.guestMmu = this.flags.splitGuestMmu
      ? new MmuContext(MMU_CONTEXT_KIND.GUEST_MMU, size)
      : this.rootMmu;
    this.nestedMmu = new MmuContext(MMU_CONTEXT_KIND.NESTED_MMU, size);
    this.mmu = this.rootMmu;
    this.walkMmu = this.rootMmu;
  }

  /** kvm: is_pae_paging — the vCPU's CR0/CR4/EFER select PAE paging, so its PDPTEs are in use. */
  get paePaging(): boolean {
    return isPaePaging(this.cr0, this.cr4, this.efer);
  }

  /** kvm: mmu_is_nested — walks go through nested_mmu (L2 runs with nested EPT). */
  get mmuIsNested(): boolean {
    return this.walkMmu === this.nestedMmu;
  }

  /** The contexts that hold roots: root_mmu and, when split, guest_mmu. */
  get rootContexts(): readonly MmuContext[] {
    return this.guestMmu === this.rootMmu ? [this.rootMmu] : [this.rootMmu, this.guestMmu];
  }

  /** What the context's get_guest_pgd hook returns: vmcs12's EPTP for shadow EPT, else CR3. */
  guestPgd(ctx: MmuContext): number {
    return ctx.guestPgdIsEptp ? this.eptp12 : this.cr3;
  }

  // ---- Requests (kvm: kvm_make_request / kvm_check_request) ---------------------------------

  /** kvm: kvm_make_request for the MMU_REQUEST bits in `bits`. A TLB-flush request counts TLB_FLUSH_REQUEST once. */
  makeRequest(bits: number): void {
    this.requests = (this.requests | bits) >>> 0;
    if ((bits & MMU_REQUEST_TLB_FLUSH) !== 0) this.meter.count(EV_TLB_FLUSH_REQUEST);
  }

  /** kvm: kvm_check_request — whether `request` is pending; clears it. */
  checkRequest(request: MmuRequest): boolean {
    if ((this.requests & request) === 0) return false;
    this.requests = (this.requests & ~request) >>> 0;
    return true;
  }

  // ---- Configuration -------------------------------------------------------------------------

  /**
   * kvm: kvm_init_mmu — compute the cpu role from the vCPU's registers and reconfigure at most one
   * context if its gate fails: nested_mmu while L2 runs with nested EPT, else root_mmu as TDP or
   * shadow paging.
   */
  initMmu(): void {
    const base = cpuRoleBase(this.cr0, this.cr4, this.efer, this.smm, this.guestMode);
    const ext = cpuRoleExt(this.cr0, this.cr4, this.efer);
    if (this.mmuIsNested) initNestedMmu(this.nestedMmu, base, ext, this);
    else if (this.tdpEnabled) initTdpMmu(this.rootMmu, base, ext, this);
    else initShadowMmu(this.rootMmu, base, ext, this);
  }

  /**
   * kvm: kvm_mmu_unload — free every root of root_mmu and guest_mmu (nested_mmu has none), then
   * forget the MMIO cache's page (vcpu_clear_mmio_info(MMIO_GVA_ANY), v5.18 commit 6d58f275e6dc;
   * done under every preset here).
   */
  unload(): void {
    this.meter.count(EV_UNLOAD);
    kvmMmuFreeRoots(this.rootMmu, this.rootMmu.allRoots, this);
    if (this.guestMmu !== this.rootMmu) kvmMmuFreeRoots(this.guestMmu, this.guestMmu.allRoots, this);
    this.mmioCache.clear(null);
  }

  /** kvm: kvm_mmu_reset_context = kvm_mmu_unload + kvm_init_mmu (still the upstream definition). */
  resetContext(): void {
    this.meter.count(EV_RESET);
    this.unload();
    this.initMmu();
  }

  /**
   * Every caller of kvm_mmu_reset_context except CPUID (register writes, SMM switches,
   * KVM_SET_SREGS, the late VM-fail unwind). Upstream it always unloads. With
   * `keepRootsOnAllRoleChanges` (seed 001 v2 patch 18, unmerged; kvm-mmu.md §4.4) the reset itself
   * no longer unloads: unless `unloadRequired`, the context is re-initialised and the current PGD
   * reloaded with the new root role, so toggling a role bit back finds the old root in the cache.
   * The patch defers that reload to a request (KVM_REQ_MMU_UPDATE_ROOT) served before the next
   * entry; it is done here at once, which is the same for one register write per exit (all the
   * runtime does) — a caller making several role changes in a row without an entry in between
   * would see one PGD lookup per change instead of one in all.
   */
  private roleChanged(unloadRequired: boolean): void {
    if (unloadRequired || !this.flags.keepRootsOnRoleChange || !this.flags.keepRootsOnAllRoleChanges) {
      this.resetContext();
      return;
    }
    this.meter.count(EV_RESET);
    this.initMmu();
    this.newPgd(this.guestPgd(this.mmu));
  }

  /** kvm: kvm_mmu_reload before a VM entry — load a root for `mmu` if it has none. Returns whether it loaded. */
  reload(): boolean {
    return kvmMmuReload(this.mmu, this.guestPgd(this.mmu), this);
  }

  /**
   * kvm: kvm_mmu_new_pgd on `mmu`. Today with the context's own root role; with
   * `keepRootsOnRoleChange` off, as the pre-v5.18 kvm_mmu_new_cr3 did, with a role computed from
   * the vCPU's registers (kvm: kvm_mmu_calc_root_page_role). Returns whether it hit.
   */
  newPgd(pgd: number): boolean {
    const role = this.flags.keepRootsOnRoleChange ? this.mmu.rootRole : this.computedRootRole();
    return this.rootCache.newPgd(this.mmu, pgd, role, this);
  }

  private computedRootRole(): number {
    const base = cpuRoleBase(this.cr0, this.cr4, this.efer, this.smm, this.guestMode);
    return calcRootPageRole(this.tdpEnabled, base, this.tdpLevel, this.host.adEnabled);
  }

  /**
   * KVM_SET_SREGS (kvm: __set_sregs_common, __set_sregs): load the registers (as given: KVM checks
   * them, e.g. EFER.LMA against LME and PG, and stores them through the vendor hooks); reset the
   * MMU if CR0, CR3, CR4 or EFER changed, or whenever the vCPU is now in PAE paging (the PDPTRs
   * are reloaded), and then request a guest TLB flush (`mmu_reset_needed`). CR3 is stored without
   * a PGD switch.
   */
  setSregs(regs: MmuRegisters): void {
    let resetNeeded =
      regs.cr0 !== this.cr0 || regs.cr3 !== this.cr3 || regs.cr4 !== this.cr4 || regs.efer !== this.efer;
    const unloadRequired = patch18UnloadRequired(this.cr0, regs.cr0, this.cr4, regs.cr4);
    this.cr0 = regs.cr0;
    this.cr3 = regs.cr3;
    this.cr4 = regs.cr4;
    this.efer = regs.efer;
    // kvm: __set_sregs_common — with PAE paging, load_pdptrs and mmu_reset_needed = 1.
    if (this.paePaging) resetNeeded = true;
    if (!resetNeeded) return;
    this.roleChanged(unloadRequired);
    // kvm: __set_sregs — the reset comes with KVM_REQ_TLB_FLUSH_GUEST (Michal Luczaj, 2023; older
    // kernels made no request here).
    this.makeRequest(MMU_REQUEST.TLB_FLUSH_GUEST);
  }

  // ---- Register writes (x86.c) ---------------------------------------------------------------

  /**
   * The guest may change the CR0 bits it owns without an exit (CR0.WP under EPT since v6.4): before
   * reading CR0, KVM takes them from the VMCS (kvm: kvm_read_cr0_bits → vmx_cache_reg for
   * VCPU_EXREG_CR0). `guestCr0` is the VMCS's GUEST_CR0; `ownedBits` the guest-owned mask. Only the
   * stored value changes: what a changed WP means for the MMU is decided by the next setCr0.
   */
  cacheGuestOwnedCr0(guestCr0: number, ownedBits: number): void {
    this.cr0 = ((this.cr0 & ~ownedBits) | (guestCr0 & ownedBits)) >>> 0;
  }

  /**
   * The MMU side of kvm_set_cr0: store the value with ET forced on and the reserved bits dropped
   * (kvm: kvm_set_cr0), let EFER.LMA follow paging when EFER.LME is set (kvm: vmx_set_cr0 →
   * enter_lmode / exit_lmode), then kvm_post_set_cr0. The value is assumed valid (KVM injects #GP
   * for an invalid one before any of this).
   */
  setCr0(value: number): void {
    const old = this.cr0;
    const cr0 = ((value | CR0.ET) & CR0_DEFINED_BITS) >>> 0;
    this.cr0 = cr0;
    if ((this.efer & EFER.LME) !== 0) {
      if ((old & CR0.PG) === 0 && (cr0 & CR0.PG) !== 0) this.efer = (this.efer | EFER.LMA) >>> 0;
      else if ((old & CR0.PG) !== 0 && (cr0 & CR0.PG) === 0) this.efer = (this.efer & ~EFER.LMA) >>> 0;
    }
    this.postSetCr0(old, cr0);
  }

  /**
   * kvm: kvm_post_set_cr0. A change of PG or WP resets the MMU — except (v6.4, with both halves
   * of flag b) when *only* WP changed: nothing with paging off, kvm_init_mmu alone under TDP.
   * Since v5.18 (82518a181e6c) clearing PG also requests a guest TLB flush.
   */
  postSetCr0(oldCr0: number, newCr0: number): void {
    const changed = (oldCr0 ^ newCr0) >>> 0;
    if (this.flags.keepRootsOnRoleChange && this.flags.keepRootsOnWpOnlyChange && changed === CR0.WP) {
      // kvm: e40bcf9f3a18 — no permission bits to emulate with CR0.PG = 0.
      if ((newCr0 & CR0.PG) === 0) return;
      // kvm: 01b31714bd90 — CR0.WP does not affect TDP SPTEs: re-init, keep the roots.
      if (this.tdpEnabled) {
        this.initMmu();
        return;
      }
    }
    // kvm: kvm_post_set_cr0 — clearing CR0.PG flushes the guest's TLB (SDM 4.10.4.1).
    if (this.flags.keepRootsOnRoleChange && (oldCr0 & ~newCr0 & CR0.PG) !== 0) {
      this.makeRequest(MMU_REQUEST.TLB_FLUSH_GUEST);
    }
    if ((changed & MMU_CR0_ROLE_BITS) !== 0) this.roleChanged(patch18UnloadRequired(oldCr0, newCr0, 0, 0));
  }

  /** The MMU side of kvm_set_cr4: store the value, then kvm_post_set_cr4. */
  setCr4(value: number): void {
    const old = this.cr4;
    this.cr4 = value >>> 0;
    this.postSetCr4(old, this.cr4);
  }

  /**
   * kvm: kvm_post_set_cr4, in three generations:
   *
   * - v5.18+ (`keepRootsOnRoleChange`, 82518a181e6c): a role-bit change resets the MMU; with
   *   shadow paging, PCIDE 0→1 also unloads (stale prev roots could be reused after a MOV to CR3
   *   with NOFLUSH); then, independently, a PGE change or PCIDE 1→0 requests a guest TLB flush,
   *   else a PAE change or SMEP 0→1 requests a current-context flush.
   * - v5.16–v5.17 (`keepRootsOnPgeChange`; a91a7c709600, 552617382c19, 509bfe3d9796): a role-bit
   *   change resets, else any PCIDE change unloads (KVM_REQ_MMU_RELOAD, served by kvm_mmu_unload
   *   before the next entry; done here at once), else a PGE change requests a guest TLB flush.
   * - up to v5.15: PGE is in the role-bit mask, and a role-bit change or PCIDE 1→0 resets.
   */
  postSetCr4(oldCr4: number, newCr4: number): void {
    const changed = (oldCr4 ^ newCr4) >>> 0;
    const pcideOff = (oldCr4 & ~newCr4 & CR4.PCIDE) !== 0;
    if (this.flags.keepRootsOnRoleChange) {
      if ((changed & MMU_CR4_ROLE_BITS) !== 0)
        this.roleChanged(patch18UnloadRequired(this.cr0, this.cr0, oldCr4, newCr4));
      if (!this.tdpEnabled && (newCr4 & ~oldCr4 & CR4.PCIDE) !== 0) this.unload();
      // kvm: kvm_post_set_cr4 — the flushes SDM 4.10.4.1 requires, whatever happened above.
      if ((changed & CR4.PGE) !== 0 || pcideOff) this.makeRequest(MMU_REQUEST.TLB_FLUSH_GUEST);
      else if ((changed & CR4.PAE) !== 0 || (newCr4 & ~oldCr4 & CR4.SMEP) !== 0) {
        this.makeRequest(MMU_REQUEST.TLB_FLUSH_CURRENT);
      }
      return;
    }
    if (this.flags.keepRootsOnPgeChange) {
      if ((changed & MMU_CR4_ROLE_BITS) !== 0) this.resetContext();
      else if ((changed & CR4.PCIDE) !== 0) this.unload();
      else if ((changed & CR4.PGE) !== 0) this.makeRequest(MMU_REQUEST.TLB_FLUSH_GUEST);
      return;
    }
    if ((changed & MMU_CR4_ROLE_BITS_PRE_5_16) !== 0 || pcideOff) this.resetContext();
  }

  /**
   * The MMU side of set_efer: store the value but keep the current EFER.LMA (kvm: set_efer — LMA
   * is the CPU's, set and cleared with CR0.PG in `setCr0`); a change of LME or NX (before v5.18:
   * NX) resets the MMU.
   */
  setEfer(value: number): void {
    const efer = ((value & ~EFER.LMA) | (this.efer & EFER.LMA)) >>> 0;
    const changed = (this.efer ^ efer) >>> 0;
    this.efer = efer;
    const bits = this.flags.keepRootsOnRoleChange ? MMU_EFER_ROLE_BITS : MMU_EFER_ROLE_BITS_PRE_5_18;
    if ((changed & bits) !== 0) this.roleChanged(false);
  }

  /**
   * The MMU side of kvm_set_cr3 for a MOV to CR3 whose operand is `value` plus, as bit 63,
   * `noFlush` (default: bit 63 clear). A different value switches the PGD (kvm: kvm_mmu_new_pgd);
   * then, unless CR4.PCIDE = 1 and `noFlush`, the new PCID (0 with PCIDE = 0) is invalidated
   * (kvm: kvm_invalidate_pcid). The value is assumed valid (KVM injects #GP otherwise). PAE paging
   * reloads the PDPTRs even for the same value; a PDPTE change that frees the current shadow root
   * (kvm: load_pdptrs) is not modelled here. Returns whether the PGD switch found a root to reuse
   * (kvm_mmu_new_pgd then requests KVM_REQ_LOAD_MMU_PGD; a miss leaves no root, and the reload
   * before the entry loads one).
   */
  setCr3(value: number, noFlush = false): boolean {
    const pcide = (this.cr4 & CR4.PCIDE) !== 0;
    // kvm: kvm_set_cr3 — NOFLUSH and the PCID are only read with CR4.PCIDE = 1. `value` is below
    // 2^53, so the bitwise AND sees its exact low bits.
    const pcid = pcide ? value & CR3.PCID_MASK : 0;
    const hit = value !== this.cr3 && this.newPgd(value);
    this.cr3 = value;
    if (!(pcide && noFlush)) this.invalidatePcid(pcid);
    return hit;
  }

  /** kvm: kvm_get_active_pcid — CR3's PCID with CR4.PCIDE = 1, else 0. */
  get activePcid(): number {
    return (this.cr4 & CR4.PCIDE) !== 0 ? this.cr3 & CR3.PCID_MASK : 0;
  }

  /**
   * kvm: kvm_invalidate_pcid (MOV to CR3 without NOFLUSH, INVPCID). Under TDP only a guest TLB
   * flush is requested (KVM's own tables are not tagged by PCID). Under shadow paging: if `pcid`
   * is the active one, KVM_REQ_MMU_SYNC and KVM_REQ_TLB_FLUSH_CURRENT; and with CR4.PCIDE = 1 every
   * previous root of `mmu` whose pgd carries `pcid` is freed, since it holds translations the
   * guest has just invalidated. With PCIDE = 0 the previous roots stay (since 509bfe3d9796, v5.16;
   * v5.8–v5.15 freed them all, ≤ v5.7 freed none — neither is modelled).
   */
  invalidatePcid(pcid: number): void {
    if (this.tdpEnabled) {
      this.makeRequest(MMU_REQUEST.TLB_FLUSH_GUEST);
      return;
    }
    const pcide = (this.cr4 & CR4.PCIDE) !== 0;
    if (this.activePcid === pcid) this.makeRequest(MMU_REQUEST.MMU_SYNC | MMU_REQUEST.TLB_FLUSH_CURRENT);
    if (!pcide) return;
    const mmu = this.mmu;
    let mask = 0;
    // A freed or never-used slot may match too: kvmMmuFreeRoots skips slots without a root.
    for (let i = 0; i < mmu.prevPgd.length; i++) {
      if ((mmu.prevPgd[i]! & CR3.PCID_MASK) === pcid) mask |= kvmMmuRootPrevious(i);
    }
    if (mask !== 0) kvmMmuFreeRoots(mmu, mask, this);
  }

  /** SMM entry or exit (kvm: kvm_smm_changed): the SMM address space changes, so the MMU is reset. */
  setSmm(smm: boolean): void {
    if (smm === this.smm) return;
    this.smm = smm;
    this.roleChanged(false);
  }

  /**
   * kvm: kvm_mmu_after_set_cpuid — CPUID feeds the reserved-bit masks, so every context's roles
   * are invalidated (root_role.invalid = 1, cpu_role.ext.valid = 0) and the MMU is reset.
   */
  afterSetCpuid(): void {
    this.rootMmu.invalidateRoles();
    this.guestMmu.invalidateRoles();
    this.nestedMmu.invalidateRoles();
    this.resetContext();
  }

  /**
   * Before an emulated permission check on `ctx` (kvm: kvm_mmu_refresh_passthrough_bits): under
   * TDP the guest may have toggled CR0.WP without an exit, so the stored bit is refreshed and the
   * tables rebuilt if it differs. Not for guest_mmu (EPT ignores CR0). Returns whether it rebuilt.
   */
  refreshPassthroughBits(ctx: MmuContext = this.walkMmu): boolean {
    if (
      !this.tdpEnabled ||
      ctx.kind === MMU_CONTEXT_KIND.GUEST_MMU ||
      ctx.flavour === MMU_FLAVOUR.SHADOW_EPT
    ) {
      return false;
    }
    return refreshPassthroughBits(ctx, (this.cr0 & CR0.WP) !== 0, this);
  }

  /** Handles KVM_REQ_MMU_FREE_OBSOLETE_ROOTS (kvm: kvm_mmu_free_obsolete_roots) for both root contexts. */
  freeObsoleteRoots(): void {
    kvmMmuFreeObsoleteRoots(this.rootMmu, this);
    if (this.guestMmu !== this.rootMmu) kvmMmuFreeObsoleteRoots(this.guestMmu, this);
  }

  // ---- Nested VMX (vmx/nested.c) -------------------------------------------------------------

  /** kvm: enter_guest_mode — before any role is computed for L2. */
  enterGuestMode(): void {
    this.guestMode = true;
  }

  /** kvm: leave_guest_mode. */
  leaveGuestMode(): void {
    this.guestMode = false;
  }

  /**
   * kvm: nested_ept_init_mmu_context — `mmu` = guest_mmu, shadow-EPT init with its PGD switch to
   * L1's EPTP, then `walk_mmu` = nested_mmu. Throws if walks already go through nested_mmu (KVM
   * WARNs).
   */
  nestedEptInitMmuContext(eptp: number): void {
    if (this.mmuIsNested) throw new Error("nested_ept_init_mmu_context while walk_mmu is already nested_mmu");
    this.mmu = this.guestMmu;
    this.nestedEptNewEptp(eptp);
    this.walkMmu = this.nestedMmu;
  }

  /**
   * kvm: nested_ept_new_eptp — (re)initialise guest_mmu for `eptp` (also used for VMFUNC EPTP
   * switching, nested_vmx_eptp_switching).
   */
  nestedEptNewEptp(eptp: number): void {
    this.eptp12 = eptp;
    initShadowEptMmu(this.guestMmu, eptp, this.nestedEpt.executeOnly, this.nestedEpt.hugePageLevel, this);
  }

  /** kvm: nested_ept_uninit_mmu_context — a pointer swap back to root_mmu; guest_mmu keeps everything. */
  nestedEptUninitMmuContext(): void {
    this.mmu = this.rootMmu;
    this.walkMmu = this.rootMmu;
  }

  /**
   * kvm: vmx_set_cr0 / vmx_set_cr4 / vmx_set_efer as prepare_vmcs02 and load_vmcs12_host_state
   * use them: the registers change with no MMU call (kvm_post_set_cr* does not run).
   */
  loadControlRegisters(cr0: number, cr4: number, efer: number): void {
    this.cr0 = cr0 >>> 0;
    this.cr4 = cr4 >>> 0;
    this.efer = efer >>> 0;
  }

  /**
   * kvm: nested_vmx_load_cr3 — set CR3 and re-initialise the MMU (which picks up the new CR0/CR4
   * role bits), then, without nested EPT, switch `mmu` to the new CR3. Before v5.18
   * (`keepRootsOnRoleChange` off) the switch came first, with a computed role.
   */
  nestedVmxLoadCr3(cr3: number, nestedEpt: boolean): void {
    if (!this.flags.keepRootsOnRoleChange) {
      if (!nestedEpt) this.newPgd(cr3);
      this.cr3 = cr3;
      this.initMmu();
      return;
    }
    this.cr3 = cr3;
    this.initMmu();
    if (!nestedEpt) this.newPgd(cr3);
  }

  /**
   * The MMU part of a nested VM entry (kvm: nested_vmx_enter_non_root_mode → prepare_vmcs02):
   * enter guest mode; with vmcs12 EPT, nested_ept_init_mmu_context; load L2's CR0/CR4/EFER through
   * the vendor hooks; nested_vmx_load_cr3. The root, if the switches missed, is loaded by the next
   * `reload()` (vcpu_enter_guest).
   */
  nestedVmEntry(l2: NestedEntryState): void {
    this.enterGuestMode();
    const nestedEpt = l2.eptp !== undefined;
    if (l2.eptp !== undefined) this.nestedEptInitMmuContext(l2.eptp);
    this.loadControlRegisters(l2.cr0, l2.cr4, l2.efer);
    this.nestedVmxLoadCr3(l2.cr3, nestedEpt);
  }

  /**
   * The MMU part of a nested VM exit (kvm: nested_vmx_vmexit → leave_guest_mode,
   * load_vmcs12_host_state): L1's host CR0/CR4/EFER, nested_ept_uninit_mmu_context, and
   * nested_vmx_load_cr3 with the host CR3 (kvm_init_mmu on root_mmu, then its PGD switch). With
   * `splitGuestMmu` off and `unloadOnExit` on, the single context is reset instead (14c07ad89f4d).
   */
  nestedVmExit(host: MmuRegisters): void {
    this.leaveGuestMode();
    this.loadControlRegisters(host.cr0, host.cr4, host.efer);
    this.nestedEptUninitMmuContext();
    if (!this.flags.splitGuestMmu && this.flags.unloadOnExit) {
      this.cr3 = host.cr3;
      this.resetContext();
      return;
    }
    this.nestedVmxLoadCr3(host.cr3, false);
  }

  /**
   * The late VM-fail unwind (kvm: nested_vmx_restore_host_state): back to L1's state with a full
   * kvm_mmu_reset_context instead of the PGD switch.
   */
  nestedVmxRestoreHostState(host: MmuRegisters): void {
    const unloadRequired = patch18UnloadRequired(this.cr0, host.cr0, this.cr4, host.cr4);
    this.leaveGuestMode();
    this.nestedEptUninitMmuContext();
    this.loadControlRegisters(host.cr0, host.cr4, host.efer);
    this.cr3 = host.cr3;
    this.roleChanged(unloadRequired);
  }

  /**
   * kvm: handle_invept on guest_mmu. Single-context frees the current and previous roots whose
   * EPTP names the same table as `eptp` (bits 51:12; nested_ept_root_matches); global frees them
   * all. With `splitGuestMmu` off the single context is the one searched.
   */
  handleInvept(type: InveptType, eptp: number): void {
    const mask =
      type === INVEPT_TYPE.GLOBAL ? this.guestMmu.allRoots : rootsMatchingEptp(this.guestMmu, eptp);
    if (mask !== 0) kvmMmuFreeRoots(this.guestMmu, mask, this);
  }

  /**
   * INVVPID without EPT (kvm: handle_invvpid → kvm_mmu_free_guest_mode_roots on root_mmu): L2's
   * cached shadow roots are freed; L1's current root stays.
   */
  handleInvvpidShadowPaging(): void {
    if (!this.tdpEnabled) kvmMmuFreeGuestModeRoots(this.rootMmu, this);
  }

  /** kvm: free_nested (VMXOFF, nested teardown) — every guest_mmu root. Nothing without a split guest_mmu. */
  freeNested(): void {
    if (this.guestMmu !== this.rootMmu) kvmMmuFreeRoots(this.guestMmu, this.guestMmu.allRoots, this);
  }
}
