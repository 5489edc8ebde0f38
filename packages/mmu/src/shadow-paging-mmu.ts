import {
  AD_UPDATE,
  PAGE_ACCESS,
  PAGE_SIZE,
  PAGING_MODE,
  PageWalker,
  type PagingContext,
  PFERR,
  PTE_HI,
  PTE_LO,
  WalkTrace,
} from "@nestvisor/x86-arch";
import { MMU_EVENTS } from "./mmu-events";
import { ACC } from "./page-role";
import { SHADOW_FAULT, ShadowFaultResult } from "./shadow-fault";
import type { ShadowMmu } from "./shadow-mmu";
import { SPTE_FORMAT } from "./shadow-spte";

/** The error-code bits that describe the access (#PF error code = ACCESS bits, SDM 4.7). */
const ACCESS_BITS = PFERR.WRITE | PFERR.USER | PFERR.FETCH;

/**
 * Shadow paging (kvm: the PTTYPE 64 and PTTYPE 32 instances of paging_tmpl.h — paging64/paging32
 * page_fault — and nonpaging_page_fault), for L0 running without TDP: the hardware CR3 points to
 * tables L0 builds from the guest's own page tables. A #PF in the guest is handled by walking the
 * guest's tables (in guest memory, through the memslots) for the faulting linear address:
 *
 * - if the guest's tables do not allow the access, the #PF is the guest's: it is injected with the
 *   error code the walk computes (P, W, U, RSVD, I/D as the architecture defines them);
 * - otherwise `ShadowMmu` builds the shadow tables: one indirect shadow page per guest table
 *   (write-tracked), direct pages under a guest huge page, and a 4-KiB leaf in the x86 format with
 *   the guest's effective rights and the memslot's host page.
 *
 * What differs from the guest's own translation, as in KVM:
 * - W is left out while the guest's leaf is clean and the fault is a read (kvm:
 *   protect_clean_gpte): the first write faults, the walk sets D, and W is granted then;
 * - W is left out for a gfn the shadow MMU shadows (a guest page table) or in a read-only slot;
 * - with CR0.WP = 0, a supervisor write to a read-only page gets a writable, supervisor-only SPTE
 *   (not executable with SMEP), as the hardware runs the guest with CR0.WP = 1;
 * - the SPTE has NX whenever the guest page is not executable: KVM runs the guest with EFER.NX = 1.
 *
 * The guest's accessed/dirty flags are set as KVM's walk does (after a successful walk). PAE and
 * 32-bit guests are shadowed with PAE tables under a `pae_root`; 4-level guests with 4-level tables.
 * Protection keys are not modelled: KVM offers PKU only with TDP.
 */
export class ShadowPagingMmu {
  readonly shadow: ShadowMmu;
  readonly walker: PageWalker;
  readonly trace = new WalkTrace();
  readonly result = new ShadowFaultResult();

  constructor(shadow: ShadowMmu) {
    if (shadow.format !== SPTE_FORMAT.X86)
      throw new RangeError("shadow paging needs a ShadowMmu in the X86 format");
    this.shadow = shadow;
    this.walker = new PageWalker(shadow.guestMemory, { adUpdate: AD_UPDATE.AFTER_SUCCESS });
  }

  /**
   * A #PF at linear address (laLo, laHi) with hardware error code `errorCode`, on the shadow root
   * `rootHpa`, for a guest whose paging state is `ctx` (CR0/CR3/CR4/EFER/RFLAGS.AC and the PDPTE
   * registers; kvm: FNAME(page_fault)). Counts SHADOW_FAULT and GUEST_WALK. Returns `result`.
   */
  fault(
    rootHpa: number,
    ctx: PagingContext,
    laLo: number,
    laHi: number,
    errorCode: number,
  ): ShadowFaultResult {
    if (ctx.mode === PAGING_MODE.NONE) {
      throw new RangeError("guest paging is off: use nonpagingFault with a direct root");
    }
    const shadow = this.shadow;
    shadow.count(MMU_EVENTS.SHADOW_FAULT);
    const r = this.result;
    r.reset();
    const write = (errorCode & PFERR.WRITE) !== 0;
    const user = (errorCode & PFERR.USER) !== 0;
    const present = (errorCode & PFERR.PRESENT) !== 0;

    shadow.count(MMU_EVENTS.GUEST_WALK);
    const walker = this.walker;
    const trace = this.trace;
    // kvm: "If PFEC.RSVD is set, this is a shadow page fault" — the walk does not see it.
    if (!walker.walk(ctx, laLo, laHi, errorCode & ACCESS_BITS, trace)) {
      r.outcome = SHADOW_FAULT.INJECT_PAGE_FAULT;
      r.errorCode = walker.result.errorCode;
      r.addressLo = laLo >>> 0;
      r.addressHi = laHi >>> 0;
      return r;
    }

    const w = walker.result;
    // kvm: walker->pt_access and table_gfn per level; a PAE PDPTE register is not part of the AND.
    const tableGfn = shadow.walkTableGfn;
    const ptAccess = shadow.walkPtAccess;
    let andLo = PTE_LO.WRITABLE | PTE_LO.USER;
    let executable = true;
    for (let i = 0; i < trace.count; i++) {
      const address = trace.address[i]!;
      if (address < 0) continue;
      const level = trace.level[i]!;
      tableGfn[level - 1] = Math.floor(address / PAGE_SIZE);
      ptAccess[level - 1] = (andLo & (ACC.WRITE | ACC.USER)) | (executable ? ACC.EXEC : 0);
      andLo &= trace.lo[i]!;
      if ((trace.hi[i]! & PTE_HI.XD) !== 0) executable = false;
    }
    let pteAccess = w.pageAccess & PAGE_ACCESS.ALL;
    // kvm: FNAME(protect_clean_gpte) — a read leaves a clean guest leaf's W out of the SPTE.
    if (!write && (w.leafLo & PTE_LO.DIRTY) === 0) pteAccess &= ~ACC.WRITE;
    const gfn = Math.floor(w.pa / PAGE_SIZE);
    return shadow.finishFault(
      r,
      rootHpa,
      laLo >>> 0,
      laHi >>> 0,
      w.level,
      gfn,
      pteAccess,
      write,
      present,
      !ctx.wp && !user,
      ctx.smep,
    );
  }

  /**
   * A #PF at guest-physical `gpa` while guest paging is off, on a direct root (kvm:
   * nonpaging_page_fault → direct_page_fault → direct_map): the page is mapped with all rights,
   * except W for a write-tracked gfn or a read-only slot. Counts SHADOW_FAULT. Returns `result`.
   */
  nonpagingFault(rootHpa: number, gpa: number, errorCode: number): ShadowFaultResult {
    const shadow = this.shadow;
    shadow.count(MMU_EVENTS.SHADOW_FAULT);
    const r = this.result;
    r.reset();
    const write = (errorCode & PFERR.WRITE) !== 0;
    const gfn = Math.floor(gpa / PAGE_SIZE);
    r.gfn = gfn;
    r.guestLevel = 1;
    r.access = ACC.ALL;
    const memslots = shadow.memslots;
    const slot = memslots.lookup(gfn);
    // kvm: page_fault_handle_page_track, then kvm_faultin_pfn.
    if ((errorCode & PFERR.PRESENT) !== 0 && write && slot >= 0 && shadow.store.isGfnTracked(gfn)) {
      r.outcome = SHADOW_FAULT.EMULATE_WRITE_PROTECTED;
      return r;
    }
    if (slot >= 0 && write && memslots.readOnlyAt(slot)) {
      r.outcome = SHADOW_FAULT.EMULATE_READ_ONLY;
      return r;
    }
    if (shadow.isRootStale(rootHpa)) {
      r.outcome = SHADOW_FAULT.RETRY;
      return r;
    }
    // kvm: kvm_handle_noslot_fault — without a memslot direct_map caches an MMIO SPTE (EMULATE_MMIO).
    r.outcome = shadow.directMap(rootHpa, gpa, gfn, slot, write);
    if (r.outcome !== SHADOW_FAULT.RETRY && slot >= 0) r.hpa = memslots.hostAddressAt(slot, gfn);
    return r;
  }
}
