import {
  ACCESS,
  AD_UPDATE,
  PAGE_SIZE,
  PAGING_MODE,
  PageWalker,
  type PagingContext,
  type PhysicalMemory,
  WalkTrace,
} from "@nestvisor/x86-arch";
import {
  type ReferenceMapping,
  type ReferenceTable,
  type ReferenceTranslator,
  throughMemslots,
} from "./audit-reference";
import type { Memslots } from "./memslots";
import { ACC } from "./page-role";

const TWO_32 = 4294967296;

/**
 * The rights KVM may give a shadow PTE instead of the guest's `acc` when CR0.WP=0, or -1. A
 * supervisor write to a page the guest maps read-only is allowed with WP=0; no single SPTE says
 * "kernel may write, user may only read", so KVM makes the SPTE writable and supervisor-only, and
 * also non-executable under SMEP (kvm: FNAME(page_fault); mmu.rst "Emulating cr0.wp"). A later
 * user access faults and gets the guest's rights back.
 */
export function cr0WpAlternative(acc: number, wp: boolean, smep: boolean): number {
  if (wp || (acc & ACC.WRITE) !== 0) return -1;
  const alt = (acc & ~ACC.USER) | ACC.WRITE;
  return smep ? alt & ~ACC.EXEC : alt;
}

/**
 * The reference for shadow paging (L0 without EPT, `tdp_enabled = 0`: kvm-mmu.md §2.3, §6.3 C):
 * a GVA goes through the guest's own page tables with the x86-arch `PageWalker` (a probe: no A/D
 * writes, a supervisor read, so no rights are demanded), giving a GPA, which the memslots turn into
 * a host page. The rights are the walk's ACC (kvm: FNAME(gpte_access) ANDed over the levels):
 * W = every R/W, U = every U/S, X = no XD; SPTEs carry them as R/W, U/S and NX (kvm: make_spte), so
 * the shadow may grant these or fewer (W removed for clean or write-tracked pages), never more —
 * or, with CR0.WP=0, the writable supervisor variant of `cr0WpAlternative`. A read-only memslot
 * removes W.
 *
 * SMAP and protection keys are not part of an SPTE: the processor applies them from the guest's
 * CR4/PKRU on the shadow's U/S bit (and KVM offers no PKU without TDP, kvm: kvm_set_cpu_caps), so
 * the probe walks with them off and compares U, W, X only.
 *
 * Not mapped: a guest fault (not present, reserved bit) or a GPA outside every memslot.
 *
 * `guestMemory` is the guest's physical memory (e.g. a `MemslotMemory`), `paging` the walk
 * context of the guest's registers (`createPagingContext`). Table pages: a shadow page at a level
 * where the guest has a table shadows it (indirect, gfn = the guest table's gfn; for a 32-bit
 * guest each PAE shadow page shadows part of it, kvm: role.quadrant); below a guest large page,
 * or with paging off, it is direct with the first gfn it maps (kvm: FNAME(fetch)).
 */
export function shadowPagingReference(
  guestMemory: PhysicalMemory,
  paging: PagingContext,
  memslots: Memslots,
): ReferenceTranslator {
  // A supervisor read never fails the rights check once SMAP and keys are out of the way (SDM 4.6).
  const probe: PagingContext = Object.freeze({ ...paging, smap: false, pke: false, pks: false });
  const walker = new PageWalker(guestMemory, { adUpdate: AD_UPDATE.NONE });
  const trace = new WalkTrace();
  const result = walker.result;
  const pagingOff = paging.mode === PAGING_MODE.NONE;
  return {
    name: "guest page walk + memslots",
    input: "GVA",
    translate(address: number, out: ReferenceMapping): boolean {
      const laLo = address % TWO_32;
      if (!walker.walk(probe, laLo, (address - laLo) / TWO_32, ACCESS.READ)) return false;
      const acc = result.pageAccess;
      out.rights = acc;
      out.altRights = cr0WpAlternative(acc, paging.wp, paging.smep);
      // Paging off: linear = physical over the 32-bit space.
      out.span = pagingOff ? TWO_32 - laLo : result.pageSize - (result.pa % result.pageSize);
      return throughMemslots(memslots, result.pa, out);
    },
    expectedTable(address: number, level: number, out: ReferenceTable): boolean {
      const laLo = address % TWO_32;
      const ok = walker.walk(probe, laLo, (address - laLo) / TWO_32, ACCESS.READ, trace);
      for (let i = 0; i < trace.count; i++) {
        // A PAE PDPTE comes from a register (address -1): the PAE root is not a shadow page.
        if (trace.level[i] === level && trace.address[i]! >= 0) {
          out.gfn = Math.floor(trace.address[i]! / PAGE_SIZE);
          out.direct = false;
          return true;
        }
      }
      if (!ok || (!pagingOff && result.level <= level)) return false;
      out.gfn = Math.floor(result.pa / PAGE_SIZE);
      out.direct = true;
      return true;
    },
  };
}
