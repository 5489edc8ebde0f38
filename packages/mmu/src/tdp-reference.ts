import { PAGE_SIZE } from "@nestvisor/x86-arch";
import {
  type ReferenceMapping,
  type ReferenceTable,
  type ReferenceTranslator,
  throughMemslots,
} from "./audit-reference";
import type { Memslots } from "./memslots";
import { ACC } from "./page-role";

/** Larger than any span a memslot can give (gfns are below 2^40). */
const UNLIMITED = 2 ** 53;

/**
 * The reference for a TDP root (L0's EPT for L1, or for L2 when L1 has no EPT): a GPA maps to its
 * memslot's host page with every right, except W on a read-only slot (kvm: kvm_tdp_mmu_map →
 * make_spte with ACC_ALL, W dropped when `fault->map_writable` is false for KVM_MEM_READONLY).
 * The shadow may grant less (dirty logging, write-protection), never more. A gfn outside every
 * slot is emulated MMIO and must have no present leaf. Direct table pages record the first gfn
 * they map (kvm: tdp_mmu_alloc_sp with the fault's gfn rounded to the parent entry's span).
 */
export function tdpReference(memslots: Memslots): ReferenceTranslator {
  return {
    name: "memslots",
    input: "GPA",
    translate(address: number, out: ReferenceMapping): boolean {
      out.rights = ACC.ALL;
      out.altRights = -1;
      out.span = UNLIMITED;
      return throughMemslots(memslots, address, out);
    },
    expectedTable(address: number, _level: number, out: ReferenceTable): boolean {
      out.gfn = Math.floor(address / PAGE_SIZE);
      out.direct = true;
      return true;
    },
  };
}
