import { EXIT_REASON } from "@nestvisor/vmx";
import {
  AD_UPDATE,
  EPT_OUTCOME,
  EPT_VIOLATION,
  EPTE_LO,
  type EptContext,
  EptWalker,
  PAGE_SIZE,
  WalkTrace,
} from "@nestvisor/x86-arch";
import { MMU_EVENTS } from "./mmu-events";
import { ACC } from "./page-role";
import { SHADOW_FAULT, ShadowFaultResult } from "./shadow-fault";
import type { ShadowMmu } from "./shadow-mmu";
import { SPTE_FORMAT } from "./shadow-spte";

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
 *   shadow page per EPT12 table, write-tracking each, and a leaf whose rights are EPT12's AND the
 *   slot's (no W for a read-only slot), minus W while the EPT12 leaf is clean (kvm:
 *   protect_clean_gpte, with EPTP12 A/D enabled) or its target is a shadowed table.
 *
 * EPT12 accessed/dirty flags are set as KVM's walk does (after a successful walk, kvm:
 * FNAME(update_accessed_dirty_bits)); those writes by L0 are not tracked writes.
 *
 * INVEPT is the root cache's business (kvm: handle_invept frees guest_mmu roots whose EPTP matches,
 * or all of them): `ShadowRootBackend.putRoot` drops the references and a valid root's pages stay
 * in the hash, in sync because every EPT12 table they shadow is write-tracked; a root zapped
 * meanwhile is freed with its last reference. With no unsync pages there is nothing for INVEPT or
 * nested_ept_invalidate_addr to resync.
 */
export class ShadowEptMmu {
  readonly shadow: ShadowMmu;
  /** Walks EPT12 in L1 memory, setting its A/D flags only after a successful walk. */
  readonly walker: EptWalker;
  readonly trace = new WalkTrace();
  readonly result = new ShadowFaultResult();

  constructor(shadow: ShadowMmu) {
    if (shadow.format !== SPTE_FORMAT.EPT)
      throw new RangeError("shadow EPT needs a ShadowMmu in the EPT format");
    this.shadow = shadow;
    this.walker = new EptWalker(shadow.guestMemory, { adUpdate: AD_UPDATE.AFTER_SUCCESS });
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
