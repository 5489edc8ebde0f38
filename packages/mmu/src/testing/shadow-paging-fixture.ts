import { CountingMeter } from "@nestvisor/vmx";
import {
  AD_UPDATE,
  CR0,
  CR4,
  createPagingContext,
  DenseMemory,
  EFER,
  loadPdptes,
  MODERN_CPU,
  PageWalker,
  type PagingContext,
} from "@nestvisor/x86-arch";
import { HostPageAllocator } from "../host-page-allocator";
import { Memslots } from "../memslots";
import { MMU_EVENTS } from "../mmu-events";
import { ACC, PAGE_ROLE } from "../page-role";
import { SHADOW_FAULT, type ShadowFaultResult } from "../shadow-fault";
import { ShadowMmu } from "../shadow-mmu";
import { ShadowPageStore } from "../shadow-page-store";
import { ShadowPagingMmu } from "../shadow-paging-mmu";
import { ShadowRootBackend } from "../shadow-root-backend";
import { SPTE_FORMAT } from "../shadow-spte";
import { GuestPageTableBuilder, type GuestTableMode } from "./guest-page-table-builder";
import type { GuestPagingRegs } from "./shadow-audit";

export interface ShadowPagingFixtureOptions {
  readonly wp?: boolean;
  readonly smep?: boolean;
  readonly smap?: boolean;
  readonly tablePages?: number;
  /** Pages of guest RAM in memslot 0 (default 8192 = 32 MiB). */
  readonly guestPages?: number;
}

/**
 * The shadow root role for a guest (kvm-mmu.md §2.3: the cpu role with level at least 3 and
 * efer_nx forced; CR0.WP, and SMEP/SMAP when WP is off, select separate page sets).
 */
export function shadowPagingRootRole(
  mode: GuestTableMode,
  wp: boolean,
  smep: boolean,
  smap: boolean,
): number {
  let role = (mode === "level4" ? 4 : 3) | (ACC.ALL << PAGE_ROLE.ACCESS_SHIFT) | PAGE_ROLE.EFER_NX;
  if (mode === "bit32") role |= PAGE_ROLE.HAS_4_BYTE_GPTE;
  if (wp) role |= PAGE_ROLE.CR0_WP;
  if (smep && !wp) role |= PAGE_ROLE.SMEP_ANDNOT_WP;
  if (smap && !wp) role |= PAGE_ROLE.SMAP_ANDNOT_WP;
  return role >>> 0;
}

export const PAGING_TABLE_BASE = 0x10_0000;

/**
 * Test helper: L0 without TDP shadowing one guest's page tables. Guest RAM is memslot 0 (gfns
 * [0, guestPages)) plus a 16-page read-only slot at gfn `roGfn`; the guest's tables are built in
 * guest memory from `tablesBase` up. `guestAccess` runs a guest access as the processor and L0
 * would: walk the shadow tables in host memory (CR0.WP and EFER.NX forced on, PAE for a
 * `pae_root`), and on a #PF call `ShadowPagingMmu.fault` and retry while L0 fixed it. Call
 * `reload` after building a PAE guest's PDPT (the root reads the PDPTE registers).
 */
export function shadowPagingFixture(mode: GuestTableMode, options: ShadowPagingFixtureOptions = {}) {
  const wp = options.wp ?? true;
  const smep = options.smep ?? false;
  const smap = options.smap ?? false;
  const tablePages = options.tablePages ?? 1024;
  const guestPages = options.guestPages ?? 0x2000;
  const guestHost = Math.ceil((PAGING_TABLE_BASE + tablePages * 4096) / 0x40_0000) * 0x40_0000;
  const roHost = guestHost + guestPages * 4096;
  const roGfn = guestPages + 0x100;
  const memory = new DenseMemory(roHost + 16 * 4096);
  const allocator = new HostPageAllocator(memory, {
    base: PAGING_TABLE_BASE,
    pages: tablePages,
    zeroed: true,
  });
  const meter = new CountingMeter([MMU_EVENTS]);
  const memslots = new Memslots();
  memslots.add({ id: 0, baseGfn: 0, npages: guestPages, hostBase: guestHost });
  memslots.add({ id: 1, baseGfn: roGfn, npages: 16, hostBase: roHost, readOnly: true });
  const store = new ShadowPageStore({ allocator, meter, memslots, tdpEnabled: false });
  const shadow = new ShadowMmu({ store, memslots, format: SPTE_FORMAT.X86, meter });
  const paging = new ShadowPagingMmu(shadow);
  const backend = new ShadowRootBackend({ shadow });
  const tablesBase = Math.floor(guestPages / 2) * 4096;
  const builder = new GuestPageTableBuilder(shadow.guestMemory, tablesBase, mode);
  const role = shadowPagingRootRole(mode, wp, smep, smap);

  let cr4 = 0;
  if (mode !== "bit32") cr4 |= CR4.PAE;
  else cr4 |= CR4.PSE;
  if (smep) cr4 |= CR4.SMEP;
  if (smap) cr4 |= CR4.SMAP;
  const cr0 = CR0.PE | CR0.PG | (wp ? CR0.WP : 0);
  const efer = mode === "level4" ? EFER.LME | EFER.LMA | EFER.NXE : mode === "pae" ? EFER.NXE : 0;

  /** The guest's registers, with the PDPTE registers as a MOV to CR3 would load them now. */
  const regs = (): GuestPagingRegs =>
    mode === "pae"
      ? { cr0, cr3: builder.cr3, cr4, efer, pdptes: builder.pdptes() }
      : { cr0, cr3: builder.cr3, cr4, efer };

  const state = {
    root: backend.allocShadowRoot(role, builder.cr3),
    ctx: createPagingContext(regs(), MODERN_CPU) as PagingContext,
    rflagsAc: false,
  };

  /** The processor's view while the guest runs on the shadow root. */
  const hardwareContext = (): PagingContext => {
    const pae = shadow.isSpecialRoot(state.root);
    const hw = {
      cr0: cr0 | CR0.WP,
      cr3: state.root,
      cr4: (cr4 | CR4.PAE) & ~CR4.PSE,
      efer: pae ? EFER.NXE : EFER.NXE | EFER.LME | EFER.LMA,
      rflags: state.rflagsAc ? 1 << 18 : 0,
    };
    if (!pae) return createPagingContext(hw, MODERN_CPU);
    const load = loadPdptes(memory, state.root, MODERN_CPU);
    if (!load.ok) throw new Error("malformed pae_root");
    return createPagingContext({ ...hw, pdptes: load.pdptes }, MODERN_CPU);
  };
  const hardware = new PageWalker(memory, { adUpdate: AD_UPDATE.NONE });

  /** Drops the root and loads a new one for the current CR3/PDPTEs (kvm: kvm_mmu_unload + kvm_mmu_load). */
  const reload = () => {
    backend.putRoot(state.root);
    state.root = backend.allocShadowRoot(role, builder.cr3);
    state.ctx = createPagingContext({ ...regs(), rflags: state.rflagsAc ? 1 << 18 : 0 }, MODERN_CPU);
  };

  /**
   * A guest access (`ACCESS` bits) at linear address (laLo, laHi). A fault that retries because
   * the root went stale is followed by a root reload, as vcpu_enter_guest frees obsolete roots
   * (KVM_REQ_MMU_FREE_OBSOLETE_ROOTS) and reloads before re-entering the guest.
   */
  const guestAccess = (
    laLo: number,
    laHi: number,
    access: number,
  ): { ok: boolean; pa: number; faults: number; outcome: number; last: ShadowFaultResult | null } => {
    let ctx = hardwareContext();
    let faults = 0;
    let last: ShadowFaultResult | null = null;
    for (;;) {
      if (hardware.walk(ctx, laLo, laHi, access)) {
        return { ok: true, pa: hardware.result.pa, faults, outcome: SHADOW_FAULT.FIXED, last };
      }
      faults++;
      last = paging.fault(state.root, state.ctx, laLo, laHi, hardware.result.errorCode);
      if (last.outcome === SHADOW_FAULT.RETRY && shadow.isRootStale(state.root) && faults <= 4) {
        reload();
        ctx = hardwareContext();
        continue;
      }
      if ((last.outcome !== SHADOW_FAULT.FIXED && last.outcome !== SHADOW_FAULT.SPURIOUS) || faults > 4) {
        return { ok: false, pa: -1, faults, outcome: last.outcome, last };
      }
    }
  };

  return {
    memory,
    allocator,
    meter,
    memslots,
    store,
    shadow,
    paging,
    backend,
    builder,
    role,
    state,
    guestHost,
    roGfn,
    roHost,
    tablesBase,
    regs,
    reload,
    hardwareContext,
    guestAccess,
  };
}
