import { EPT_MEMORY_TYPE, EPTE_LO, type PhysicalMemory } from "@nestvisor/x86-arch";

/**
 * KVM's shadow PTEs ("SPTEs": the entries of L0's own tables) as they look with EPT on an Intel
 * host (kvm: arch/x86/kvm/mmu/spte.h, spte.c `make_spte`/`make_nonleaf_spte`, and the masks
 * `kvm_mmu_set_ept_masks` installs). Hardware bits are the EPT entry's (SDM 29.3.2); KVM adds
 * software bits in positions EPT ignores. Masks apply to the low word unless named in `SPTE_HI`.
 */
export const SPTE_LO = {
  /** Bits 2:0: EPT R, W, X (kvm: shadow_present_mask/shadow_user_mask = R, shadow_x_mask = X; PT_WRITABLE_MASK = bit 1). */
  READABLE: EPTE_LO.READ,
  WRITABLE: EPTE_LO.WRITE,
  EXECUTABLE: EPTE_LO.EXECUTE,
  /** Bits 5:3 and 6 of a leaf: memory type and ignore-PAT (kvm: vmx_get_mt_mask). */
  MEMORY_TYPE_SHIFT: EPTE_LO.MEMORY_TYPE_SHIFT,
  IGNORE_PAT: EPTE_LO.IGNORE_PAT,
  /** Bit 7 (kvm: PT_PAGE_SIZE_MASK): a 2-MiB/1-GiB leaf. */
  PAGE_SIZE: EPTE_LO.LARGE_PAGE,
  /** Bits 8 and 9 (kvm: shadow_accessed_mask/shadow_dirty_mask with EPT A/D). */
  ACCESSED: EPTE_LO.ACCESSED,
  DIRTY: EPTE_LO.DIRTY,
  /** Bit 11 (kvm: SPTE_MMU_PRESENT_MASK): KVM's own "present" bit; EPT ignores it. */
  MMU_PRESENT: 1 << 11,
  /** Address bits 31:12. */
  ADDRESS: 0xfffff000,
} as const;

export const SPTE_HI = {
  /** Address bits 51:32. */
  ADDRESS: 0x000fffff,
  /** Bits 53:52 (kvm: SPTE_TDP_AD_MASK): 01b = SPTE_TDP_AD_DISABLED, the page's A/D bits are unused. */
  TDP_AD_DISABLED: 1 << 20,
  /** Bit 57 (kvm: EPT_SPTE_HOST_WRITABLE): the host mapping is writable (dropped by kernels after ~v6.12). */
  HOST_WRITABLE: 1 << 25,
  /** Bit 58 (kvm: EPT_SPTE_MMU_WRITABLE): KVM's MMU allows the entry to be writable. */
  MMU_WRITABLE: 1 << 26,
} as const;

/** Entries per 4-KiB table (kvm: SPTE_ENT_PER_PAGE). */
export const SPTES_PER_PAGE = 512;

/** The EPT leaf bits every RAM mapping gets: WB with ignore-PAT (kvm: vmx_get_mt_mask, no non-coherent DMA). */
const LEAF_MEMORY_TYPE = (EPT_MEMORY_TYPE.WB << SPTE_LO.MEMORY_TYPE_SHIFT) | SPTE_LO.IGNORE_PAT;
const TWO_32 = 4294967296;

/** kvm: is_shadow_present_pte. */
export function isShadowPresentSpte(lo: number): boolean {
  return (lo & SPTE_LO.MMU_PRESENT) !== 0;
}

/** kvm: is_last_spte — level 1, or bit 7 above it. */
export function isLastSpte(lo: number, level: number): boolean {
  return level === 1 || (lo & SPTE_LO.PAGE_SIZE) !== 0;
}

/** The physical address bits 51:12 of an SPTE (kvm: SPTE_BASE_ADDR_MASK). */
export function spteAddress(lo: number, hi: number): number {
  return (hi & SPTE_HI.ADDRESS) * TWO_32 + ((lo & SPTE_LO.ADDRESS) >>> 0);
}

/**
 * Low word of an EPT non-leaf SPTE pointing to the table at `tableHpa` (kvm: make_nonleaf_spte):
 * R, W and X all set (permissions are decided at the leaf), KVM's present bit, and the accessed
 * bit pre-set unless A/D bits are disabled for the page.
 */
export function eptNonLeafSpteLo(tableHpa: number, adDisabled: boolean): number {
  let lo = SPTE_LO.MMU_PRESENT | SPTE_LO.READABLE | SPTE_LO.WRITABLE | SPTE_LO.EXECUTABLE;
  if (!adDisabled) lo |= SPTE_LO.ACCESSED;
  return (lo | ((tableHpa % TWO_32) & SPTE_LO.ADDRESS)) >>> 0;
}

/** High word of an EPT non-leaf SPTE (kvm: make_nonleaf_spte, SPTE_TDP_AD_DISABLED). */
export function eptNonLeafSpteHi(tableHpa: number, adDisabled: boolean): number {
  const hi = Math.floor(tableHpa / TWO_32) & SPTE_HI.ADDRESS;
  return (adDisabled ? hi | SPTE_HI.TDP_AD_DISABLED : hi) >>> 0;
}

/**
 * Low word of an EPT leaf SPTE for a TDP fault (kvm: make_spte with pte_access = ACC_ALL, not a
 * prefetch): R and X always (ACC_USER → shadow_user_mask = R, ACC_EXEC → X), W when `writable`;
 * WB memory type with ignore-PAT; bit 7 above level 1; A pre-set, and D pre-set on a writable
 * entry, unless A/D bits are disabled for the page.
 */
export function eptLeafSpteLo(
  pageHpa: number,
  level: number,
  writable: boolean,
  adDisabled: boolean,
): number {
  let lo = SPTE_LO.MMU_PRESENT | SPTE_LO.READABLE | SPTE_LO.EXECUTABLE | LEAF_MEMORY_TYPE;
  if (writable) lo |= SPTE_LO.WRITABLE;
  if (level > 1) lo |= SPTE_LO.PAGE_SIZE;
  if (!adDisabled) {
    lo |= SPTE_LO.ACCESSED;
    if (writable) lo |= SPTE_LO.DIRTY;
  }
  return (lo | ((pageHpa % TWO_32) & SPTE_LO.ADDRESS)) >>> 0;
}

/**
 * High word of an EPT leaf SPTE: address bits 51:32, SPTE_TDP_AD_DISABLED when A/D bits are off,
 * host-writable when the memslot is writable (kvm: `fault->map_writable`), MMU-writable with W.
 */
export function eptLeafSpteHi(
  pageHpa: number,
  hostWritable: boolean,
  writable: boolean,
  adDisabled: boolean,
): number {
  let hi = Math.floor(pageHpa / TWO_32) & SPTE_HI.ADDRESS;
  if (adDisabled) hi |= SPTE_HI.TDP_AD_DISABLED;
  if (hostWritable) hi |= SPTE_HI.HOST_WRITABLE;
  if (writable) hi |= SPTE_HI.MMU_WRITABLE;
  return hi >>> 0;
}

/** Index of the entry for address (lo, hi) in a 512-entry table at `level` (kvm: SPTE_INDEX). */
export function spteIndex(lo: number, hi: number, level: number): number {
  if (level === 1) return (lo >>> 12) & 0x1ff;
  if (level === 2) return (lo >>> 21) & 0x1ff;
  if (level === 3) return ((lo >>> 30) | ((hi & 0x7f) << 2)) & 0x1ff;
  if (level === 4) return (hi >>> 7) & 0x1ff;
  return (hi >>> 16) & 0x1ff;
}

/**
 * The terminal SPTE of a lockless walk (kvm: get_sptes_lockless): its words, level and host address;
 * level 0: the walk found nothing (no root).
 */
export class TerminalSpte {
  lo = 0;
  hi = 0;
  level = 0;
  pa = -1;
}

/**
 * kvm: get_sptes_lockless — walks from the table at `table` (of `level`) towards address (aLo, aHi)
 * and leaves in `out` the first entry that is a leaf or not shadow-present (an MMIO SPTE is such
 * an entry).
 */
export function walkToTerminalSpte(
  memory: PhysicalMemory,
  table: number,
  level: number,
  aLo: number,
  aHi: number,
  out: TerminalSpte,
): void {
  for (; level >= 1; level--) {
    const pa = table + spteIndex(aLo, aHi, level) * 8;
    const lo = memory.read32(pa);
    const hi = memory.read32(pa + 4);
    if (!isShadowPresentSpte(lo) || isLastSpte(lo, level)) {
      out.lo = lo;
      out.hi = hi;
      out.level = level;
      out.pa = pa;
      return;
    }
    table = spteAddress(lo, hi);
  }
  out.level = 0;
  out.pa = -1;
}
