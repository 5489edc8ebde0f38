import { EXIT_REASON } from "@nestvisor/vmx";
import {
  AD_UPDATE,
  EPT_MISCONFIG,
  EPT_OUTCOME,
  EPT_VIOLATION,
  EPTE_LO,
  type EptContext,
  EptWalker,
  eptEntryAddress,
  eptEntryMisconfiguration,
  eptEntryPresent,
  PAGE_SIZE,
  WalkTrace,
} from "@nestvisor/x86-arch";
import { MMU_EVENTS } from "./mmu-events";
import { ACC, PAGE_ROLE } from "./page-role";
import { SHADOW_FAULT, ShadowFaultResult } from "./shadow-fault";
import type { ShadowMmu, SyncSpteSource } from "./shadow-mmu";
import { SPTE_FORMAT } from "./shadow-spte";
import { spteAddress } from "./spte";

/** Qualification bits 5:3: the AND of R, W, X over the EPT entries walked (SDM Table 28-7). */
const RWX_BITS = EPT_VIOLATION.READABLE | EPT_VIOLATION.WRITABLE | EPT_VIOLATION.EXECUTABLE;
/** The bits of the hardware qualification KVM carries into the one it reflects (bits 7 and 8). */
const GLA_BITS = EPT_VIOLATION.GLA_VALID | EPT_VIOLATION.FINAL_TRANSLATION;

/** ACC rights of EPT entry bits 2:0 (kvm: FNAME(gpte_access) for PTTYPE_EPT: ACC_USER means readable). */
function eptAcc(bits: number): number {
  let acc = 0;
  if ((bits & EPTE_LO.READ) !== 0) acc |= ACC.USER;
  if ((bits & EPTE_LO.WRITE) !== 0) acc |= ACC.WRITE;
  if ((bits & EPTE_LO.EXECUTE) !== 0) acc |= ACC.EXEC;
  return acc;
}

/**
 * Shadow EPT (kvm: the PTTYPE_EPT instance of paging_tmpl.h — ept_page_fault — with
 * nested_ept_inject_page_fault of vmx/nested.c): L0's EPT02 for L2 when L1 runs L2 with EPT. An
 * EPT violation of L2 on EPT02 is handled by walking L1's EPT12 (which lives in L1's memory, read
 * through the memslots) for the L2 GPA:
 *
 * - if EPT12 does not allow the access, the fault is L1's: an EPT violation (or, for a
 *   misconfigured EPT12 entry, an EPT misconfiguration) is reflected to L1 with the qualification
 *   KVM builds — the access bits, the AND of the EPT12 R/W/X bits walked (bits 5:3) and bits 7:8
 *   of the hardware qualification — and the L2 GPA;
 * - otherwise the L1 GPA it maps goes through L0's own mapping of L1 memory (the memslots: KVM
 *   faults in from the memslot, not from EPT01) and `ShadowMmu` builds EPT02 with one indirect
 *   shadow page per EPT12 table, write-protecting each (upper tables by write tracking), and a
 *   leaf whose rights are EPT12's AND the slot's (no W for a read-only slot), minus W while the
 *   EPT12 leaf is clean (kvm: protect_clean_gpte, with EPTP12 A/D enabled) or its target is a
 *   write-protected table.
 *
 * EPT12 accessed/dirty flags are set as KVM's walk does (after a successful walk, kvm:
 * FNAME(update_accessed_dirty_bits)); those writes by L0 are not tracked writes.
 *
 * Unsync: with an unsync store, an EPT12 last-level table is write-protected rather than
 * write-tracked, and L1's first store to it unsyncs its EPT02 pages (in L0's TDP fault). This class
 * is the EPT format's `syncSource` (kvm: FNAME(sync_spte) for PTTYPE_EPT), run against the EPT12
 * context of the last fault or of `syncRoots`.
 *
 * INVEPT is the root cache's business (kvm: handle_invept frees guest_mmu roots whose EPTP matches,
 * or all of them): `ShadowRootBackend.putRoot` drops the references and a valid root's pages stay
 * in the hash; a root zapped meanwhile is freed with its last reference. The next root load finds
 * the pages in the hash and syncs the unsync ones under it (kvm: kvm_mmu_load → kvm_mmu_sync_roots).
 */
export class ShadowEptMmu implements SyncSpteSource {
  readonly shadow: ShadowMmu;
  /** Walks EPT12 in L1 memory, setting its A/D flags only after a successful walk. */
  readonly walker: EptWalker;
  readonly trace = new WalkTrace();
  readonly result = new ShadowFaultResult();
  /** The EPT12 context a sync reads entries with (kvm: vcpu->arch.mmu, the guest MMU in use). */
  #ept12: EptContext | null = null;

  constructor(shadow: ShadowMmu) {
    if (shadow.format !== SPTE_FORMAT.EPT)
      throw new RangeError("shadow EPT needs a ShadowMmu in the EPT format");
    this.shadow = shadow;
    this.walker = new EptWalker(shadow.guestMemory, { adUpdate: AD_UPDATE.AFTER_SUCCESS });
    shadow.syncSource = this;
  }

  /**
   * kvm: kvm_mmu_sync_roots with the guest MMU of nested EPT: syncs the unsync EPT02 pages under
   * `rootHpa` against the EPT12 of `ept12` (the EPT pointer of vmcs12).
   */
  syncRoots(rootHpa: number, ept12: EptContext): void {
    this.#ept12 = ept12;
    this.shadow.syncRoots(rootHpa);
  }

  /**
   * kvm: FNAME(sync_spte) for PTTYPE_EPT — entry `index` of the EPT02 last-level page `id` against
   * the EPT12 entry it shadows. The SPTE is dropped (returns 1) when the EPT12 entry is not
   * present, not accessed while EPTP12 enables A/D, misconfigured (kvm: prefetch_invalid_gpte), or
   * maps another page; left alone (0) while its rights are unchanged; otherwise rebuilt with the
   * page role's access AND the entry's, minus W for a clean entry under A/D (protect_clean_gpte).
   * 6.12 does not drop an SPTE whose rights became empty (its check compares against the 64-bit
   * non-present value, which a rights mask never equals), so neither does this. -1 when the entry's
   * page is in no memslot.
   */
  syncSpte(id: number, index: number): number {
    const shadow = this.shadow;
    const ctx = this.#ept12;
    if (ctx === null) return -1;
    const gpa = shadow.store.gfn(id) * PAGE_SIZE + index * 8;
    if (shadow.memslots.lookup(Math.floor(gpa / PAGE_SIZE)) < 0) return -1;
    const memory = shadow.guestMemory;
    const lo = memory.read32(gpa);
    const hi = memory.read32(gpa + 4);
    if (
      !eptEntryPresent(lo, ctx.modeBasedExecute) ||
      (ctx.accessedDirty && (lo & EPTE_LO.ACCESSED) === 0) ||
      eptEntryMisconfiguration(ctx, lo, hi, 1) !== EPT_MISCONFIG.NONE
    ) {
      shadow.dropSpte(id, index);
      return 1;
    }
    const gfn = Math.floor(eptEntryAddress(lo, hi) / PAGE_SIZE);
    const role = shadow.store.role(id);
    let access = ((role & PAGE_ROLE.ACCESS_MASK) >>> PAGE_ROLE.ACCESS_SHIFT) & eptAcc(lo);
    if (ctx.accessedDirty && (lo & EPTE_LO.DIRTY) === 0) access &= ~ACC.WRITE;
    const spte = shadow.store.hostPage(id) + index * 8;
    const mapped = spteAddress(shadow.memory.read32(spte), shadow.memory.read32(spte + 4));
    if (shadow.memslots.lookup(gfn) < 0 || shadow.memslots.gfnToHpa(gfn) !== mapped) {
      shadow.dropSpte(id, index);
      return 1;
    }
    if (shadow.leafAccess(id, index) === access) return 0;
    return shadow.resyncLeaf(id, index, gfn, access);
  }

  /**
   * An EPT violation of L2 at `l2Gpa` on the EPT02 root `rootHpa` (kvm: handle_ept_violation →
   * kvm_mmu_page_fault → ept_page_fault). `ept12` is the walk context of vmcs12's EPT pointer with
   * the EPT capabilities L1 was offered and L1's MAXPHYADDR; `exitQualification` is the hardware
   * qualification (bits 2:0 give the access, bits 5:3 whether an EPT02 entry was present, bits 7:8
   * the linear-address information). Counts SHADOW_EPT_FAULT and GUEST_WALK. Returns `result`.
   */
  fault(rootHpa: number, ept12: EptContext, l2Gpa: number, exitQualification: number): ShadowFaultResult {
    const shadow = this.shadow;
    shadow.count(MMU_EVENTS.SHADOW_EPT_FAULT);
    const r = this.result;
    r.reset();
    this.#ept12 = ept12;
    if (!shadow.isDummyRoot(rootHpa) && !shadow.isSpecialRoot(rootHpa)) {
      const id = shadow.store.idOfHostPage(rootHpa);
      if (id >= 0 && shadow.store.level(id) !== ept12.levels) {
        throw new RangeError(
          `EPT02 root level ${shadow.store.level(id)} differs from EPT12's ${ept12.levels}-level walk`,
        );
      }
    }
    // kvm: handle_ept_violation — pfec R → USER, W → WRITE, F → FETCH, bits 5:3 → PRESENT.
    const access = exitQualification & EPT_VIOLATION.ACCESS_MASK;
    const write = (access & EPT_VIOLATION.WRITE) !== 0;
    const present = (exitQualification & RWX_BITS) !== 0;

    shadow.count(MMU_EVENTS.GUEST_WALK);
    const walker = this.walker;
    const trace = this.trace;
    if (!walker.walk(ept12, l2Gpa, access, 0, trace)) {
      const w = walker.result;
      r.gpa = l2Gpa;
      if (w.outcome === EPT_OUTCOME.MISCONFIG) {
        // kvm: PFERR_RSVD in the walk's error code → EXIT_REASON_EPT_MISCONFIG, qualification 0.
        r.outcome = SHADOW_FAULT.INJECT_EPT_MISCONFIG;
        r.exitReason = EXIT_REASON.EPT_MISCONFIG;
      } else {
        // kvm: FNAME(walk_addr_generic) `error:` for PTTYPE_EPT — access bits, then the RWX AND.
        r.outcome = SHADOW_FAULT.INJECT_EPT_VIOLATION;
        r.exitReason = EXIT_REASON.EPT_VIOLATION;
        r.qualification =
          (exitQualification & GLA_BITS) | (w.qualification & (EPT_VIOLATION.ACCESS_MASK | RWX_BITS));
      }
      return r;
    }

    const w = walker.result;
    // kvm: walker->pt_access and table_gfn per level, from the entries the walk read.
    const tableGfn = shadow.walkTableGfn;
    const ptAccess = shadow.walkPtAccess;
    let and = EPTE_LO.XWR;
    for (let i = 0; i < trace.count; i++) {
      const level = trace.level[i]!;
      tableGfn[level - 1] = Math.floor(trace.address[i]! / PAGE_SIZE);
      ptAccess[level - 1] = eptAcc(and);
      and &= trace.lo[i]!;
    }
    let pteAccess = eptAcc(w.permissions);
    // kvm: FNAME(protect_clean_gpte) — a read leaves a clean EPT12 leaf's W out of the SPTE.
    if (!write && ept12.accessedDirty && (w.leafLo & EPTE_LO.DIRTY) === 0) pteAccess &= ~ACC.WRITE;
    const gfn = Math.floor(w.hpa / PAGE_SIZE);
    const aLo = l2Gpa >>> 0;
    const aHi = Math.floor(l2Gpa / 4294967296) >>> 0;
    return shadow.finishFault(r, rootHpa, aLo, aHi, w.level, gfn, pteAccess, write, present, false, false);
  }
}
