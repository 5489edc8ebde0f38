import {
  AD_UPDATE,
  EPTE_LO,
  type EptContext,
  EptWalker,
  PAGE_SIZE,
  type PhysicalMemory,
  WalkTrace,
} from "@nestvisor/x86-arch";
import {
  eptRightsToAcc,
  type ReferenceMapping,
  type ReferenceTable,
  type ReferenceTranslator,
  throughMemslots,
} from "./audit-reference";
import type { Memslots } from "./memslots";

/** An EPT walk that checks no access right: a probe of what the entries allow. */
const PROBE = 0;

/**
 * The reference for EPT02, KVM's shadow of L1's EPT12 (kvm-mmu.md §2.4, §6.1; DESIGN.md §3: "built
 * by walking L1's EPT12 and L0's EPT01"): an L2 GPA goes through EPT12 in L1's memory with the
 * x86-arch `EptWalker` (a probe: no A/D writes, no rights demanded), giving an L1 GPA, which the
 * memslots turn into a host page. The rights are the AND of EPT12's R/W/X over the walk (ACC form,
 * R → USER) and the memslot's (no W on a read-only slot). KVM may grant less — W is removed from
 * clean pages when EPT12 has A/D on (kvm: FNAME(protect_clean_gpte)) and from write-tracked gfns
 * such as L1's own EPT12 pages — never more.
 *
 * Not mapped: an EPT12 violation or misconfiguration (KVM reflects it to L1 and installs nothing)
 * or an L1 GPA outside every memslot. Mode-based execute control is not offered to L1 by KVM, so
 * only R/W/X are compared.
 *
 * `l1Memory` is L1's guest-physical memory (e.g. a `MemslotMemory` over host memory), and
 * `ept12` the walk context of the EPTP in vmcs12 (`createEptContext`). Table pages: an EPT02 page
 * at a level where EPT12 has a table shadows that table (indirect, gfn = the EPT12 table's L1
 * gfn); below an EPT12 large page it is direct with the first L1 gfn it maps (kvm: FNAME(fetch)).
 */
export function eptOnEptReference(
  l1Memory: PhysicalMemory,
  ept12: EptContext,
  memslots: Memslots,
): ReferenceTranslator {
  const walker = new EptWalker(l1Memory, { adUpdate: AD_UPDATE.NONE });
  const trace = new WalkTrace();
  const result = walker.result;
  return {
    name: "EPT12 walk + memslots",
    input: "L2 GPA",
    translate(address: number, out: ReferenceMapping): boolean {
      if (!walker.walk(ept12, address, PROBE)) return false;
      out.rights = eptRightsToAcc(result.permissions & EPTE_LO.XWR);
      out.altRights = -1;
      out.span = result.pageSize - (address % result.pageSize);
      return throughMemslots(memslots, result.hpa, out);
    },
    expectedTable(address: number, level: number, out: ReferenceTable): boolean {
      const ok = walker.walk(ept12, address, PROBE, 0, trace);
      for (let i = 0; i < trace.count; i++) {
        if (trace.level[i] === level) {
          out.gfn = Math.floor(trace.address[i]! / PAGE_SIZE);
          out.direct = false;
          return true;
        }
      }
      if (!ok || result.level <= level) return false;
      out.gfn = Math.floor(result.hpa / PAGE_SIZE);
      out.direct = true;
      return true;
    },
  };
}
