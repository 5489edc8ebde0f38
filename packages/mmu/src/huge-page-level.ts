import type { Memslots } from "./memslots";
import type { ShadowPageStore } from "./shadow-page-store";

/** 4-KiB pages per 2-MiB page. */
export const PAGES_PER_2M = 512;

/**
 * kvm: kvm_mmu_max_mapping_level for a host that backs its memslots with 2-MiB pages (THP or
 * hugetlbfs): 2 when the aligned 512-page range holding `gfn` lies inside memslot `slot`, its host
 * address is 2-MiB aligned (the lpage_info `disallow_lpage` rule for misaligned slots,
 * host_pfn_mapping_level) and no gfn of the range is shadowed or write-tracked (account_shadowed →
 * kvm_mmu_gfn_disallow_lpage for a last-level page; __kvm_write_track_add_gfn for an upper-level
 * one); else 1. 1-GiB host pages are not modelled. The NX huge-page
 * mitigation (iTLB multihit) is off, as on processors that are not affected.
 */
export function maxMappingLevel(
  memslots: Memslots,
  store: ShadowPageStore,
  slot: number,
  gfn: number,
): 1 | 2 {
  const first = gfn - (gfn % PAGES_PER_2M);
  const base = memslots.baseGfnAt(slot);
  if (first < base || first + PAGES_PER_2M > base + memslots.npagesAt(slot)) return 1;
  if (memslots.hostAddressAt(slot, first) % (PAGES_PER_2M * 4096) !== 0) return 1;
  for (let g = first; g < first + PAGES_PER_2M; g++) if (store.isGfnShadowed(g)) return 1;
  return 2;
}
