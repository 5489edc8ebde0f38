import { EPTE_LO, PAGE_SIZE } from "@nestvisor/x86-arch";
import type { Memslots } from "./memslots";
import { ACC } from "./page-role";

/**
 * What the MMU audit compares L0's tables with: a *reference translator* that answers, for one
 * input address (a GPA for TDP, an L2 GPA for EPT02, a GVA for shadow paging), which host page the
 * guest is entitled to see there and with which rights, computed the slow and obvious way (the
 * architectural walk of the guest's own tables, then the memslots). The audit (`audit.ts`) asks
 * it once per leaf — or once per run of pages the reference says are contiguous — and never
 * allocates: answers are written into one reused `ReferenceMapping`.
 *
 * Rights are in KVM's ACC form for every table format (kvm: ACC_EXEC_MASK = 1, ACC_WRITE_MASK = 2,
 * ACC_USER_MASK = 4): for x86 PTEs USER is U/S and EXEC is "no NX"; for EPT, KVM reuses USER to
 * mean "readable" (kvm: FNAME(gpte_access) for PTTYPE_EPT; make_spte's shadow_user_mask is the
 * EPT R bit), so an exec-only translation is EXEC alone.
 */
export class ReferenceMapping {
  /** Host-physical address of the 4-KiB page at the queried address. */
  hpa = 0;
  /** The intermediate address the reference went through (GPA / L1 GPA; the input itself for TDP). */
  gpa = 0;
  /** Rights the guest is entitled to (ACC form): the shadow may grant these or fewer, never more. */
  rights = 0;
  /**
   * A second set of rights the shadow may use instead of `rights`, or -1. Shadow paging with
   * CR0.WP=0 maps a supervisor write to a read-only page as a writable *supervisor* page (kvm:
   * FNAME(page_fault), Documentation/virt/kvm/x86/mmu.rst "Emulating cr0.wp").
   */
  altRights = -1;
  /**
   * Bytes, from the queried (page-aligned) address, over which `hpa` advances linearly and the
   * rights stay the same: a multiple of 4096, at least 4096. A large leaf is checked one run at a
   * time, so a 2-MiB leaf over one guest 2-MiB page and one memslot costs one query, yet every
   * 4-KiB subpage is covered. A reference that cannot tell answers 4096.
   */
  span = 4096;
}

/** The `kvm_mmu_page` the reference expects for a table page (kvm: `sp->gfn`, `sp->role.direct`). */
export class ReferenceTable {
  /** The guest table the page shadows (indirect), or the first gfn it maps (direct). */
  gfn = 0;
  direct = false;
}

/** A reference translation, as the audit uses it. */
export interface ReferenceTranslator {
  /** Short name for messages, e.g. "EPT12 walk + memslots". */
  readonly name: string;
  /** What the input address is, e.g. "GPA", "L2 GPA", "GVA". */
  readonly input: string;
  /**
   * Translates the page-aligned input `address` into `out`. Returns false when the guest has no
   * mapping there (a guest fault, an EPT12 violation or misconfiguration, or a gfn outside every
   * memslot): a present leaf of L0's tables must not map such an address.
   */
  translate(address: number, out: ReferenceMapping): boolean;
  /**
   * The page KVM links below a non-leaf entry: the table page of `level` covering the region that
   * starts at `address`. Returns false when the reference has no expectation (then only the
   * page's existence and level are checked).
   */
  expectedTable?(address: number, level: number, out: ReferenceTable): boolean;
}

/**
 * The last step of every reference: the guest-physical page `gpa` (page aligned) through the
 * memslots. The caller has set `out.rights`, `out.altRights` and `out.span` from the guest's
 * walk; this fills `out.gpa` and `out.hpa`, shortens `span` to the slot's end, and removes W from
 * both rights sets on a read-only slot (kvm: KVM_MEM_READONLY makes `map_writable` false, so
 * make_spte leaves W clear). Returns false when no slot holds the gfn (emulated MMIO: no leaf).
 */
export function throughMemslots(memslots: Memslots, gpa: number, out: ReferenceMapping): boolean {
  const gfn = Math.floor(gpa / PAGE_SIZE);
  const slot = memslots.lookup(gfn);
  if (slot < 0) return false;
  out.gpa = gpa;
  out.hpa = memslots.hostAddressAt(slot, gfn);
  const left = (memslots.baseGfnAt(slot) + memslots.npagesAt(slot) - gfn) * PAGE_SIZE;
  if (left < out.span) out.span = left;
  if (memslots.readOnlyAt(slot)) {
    out.rights &= ~ACC.WRITE;
    if (out.altRights >= 0) out.altRights &= ~ACC.WRITE;
  }
  return true;
}

/** EPT R/W/X (entry bits 2:0) to ACC: R → USER, W → WRITE, X → EXEC (kvm: FNAME(gpte_access), PTTYPE_EPT). */
export function eptRightsToAcc(xwr: number): number {
  return (
    ((xwr & EPTE_LO.READ) !== 0 ? ACC.USER : 0) |
    ((xwr & EPTE_LO.WRITE) !== 0 ? ACC.WRITE : 0) |
    ((xwr & EPTE_LO.EXECUTE) !== 0 ? ACC.EXEC : 0)
  );
}

/** Names the ACC bits of `rights` for messages, in the format's terms ("R", "W", "X" or "U", "W", "X"). */
export function describeRights(rights: number, ept: boolean): string {
  const parts: string[] = [];
  if ((rights & ACC.USER) !== 0) parts.push(ept ? "R" : "U");
  if ((rights & ACC.WRITE) !== 0) parts.push("W");
  if ((rights & ACC.EXEC) !== 0) parts.push("X");
  return parts.length === 0 ? "none" : parts.join("");
}
