import { ACC } from "./page-role";
import { eptNonLeafSpteHi, eptNonLeafSpteLo, SPTE_HI, SPTE_LO } from "./spte";

/**
 * The two SPTE formats of KVM's shadow MMU (kvm: arch/x86/kvm/mmu/spte.c `make_spte`,
 * `make_nonleaf_spte`, and the masks of `kvm_mmu_set_ept_masks` / `kvm_mmu_reset_all_pte_masks`):
 *
 * - EPT: the entries of EPT02, the tables L0 builds for L2 when L1 uses EPT (shadow EPT). Same
 *   layout as the TDP MMU's SPTEs (`spte.ts`), but a leaf carries the rights the walk of L1's
 *   EPT12 allowed instead of always R+X.
 * - X86: the entries of the tables loaded into the hardware CR3 when L0 runs without TDP (shadow
 *   paging): ordinary 64-bit (PAE / IA-32e) paging entries (SDM 4.4, 4.5) plus KVM's software
 *   bits 9–11, which the processor ignores.
 *
 * Both formats keep KVM's "MMU present" bit 11 (kvm: SPTE_MMU_PRESENT_MASK), bit 7 for large leaves,
 * bit 1 for writable (kvm: PT_WRITABLE_MASK = VMX_EPT_WRITABLE_MASK) and address bits 51:12, so
 * `isShadowPresentSpte`, `isLastSpte` and `spteAddress` of `spte.ts` read either.
 */
export const SPTE_FORMAT = {
  /** Shadow EPT (EPT02). */
  EPT: 0,
  /** Shadow paging: x86 64-bit paging entries. */
  X86: 1,
} as const;
export type SpteFormat = (typeof SPTE_FORMAT)[keyof typeof SPTE_FORMAT];

/** Low-word bits of an X86-format SPTE (kvm: PT_*_MASK, DEFAULT_SPTE_*, SPTE_MMU_PRESENT_MASK). */
export const X86_SPTE_LO = {
  /** kvm: shadow_present_mask = PT_PRESENT_MASK. */
  PRESENT: 1 << 0,
  WRITABLE: 1 << 1,
  /** kvm: shadow_user_mask = PT_USER_MASK (ACC_USER). */
  USER: 1 << 2,
  /** kvm: shadow_accessed_mask / shadow_dirty_mask. */
  ACCESSED: 1 << 5,
  DIRTY: 1 << 6,
  PAGE_SIZE: 1 << 7,
  /** kvm: DEFAULT_SPTE_HOST_WRITABLE (bit 9, ignored by the processor). */
  HOST_WRITABLE: 1 << 9,
  /** kvm: DEFAULT_SPTE_MMU_WRITABLE (bit 10). */
  MMU_WRITABLE: 1 << 10,
  /** kvm: SPTE_MMU_PRESENT_MASK (bit 11). */
  MMU_PRESENT: 1 << 11,
  ADDRESS: 0xfffff000,
} as const;

export const X86_SPTE_HI = {
  ADDRESS: 0x000fffff,
  /** kvm: shadow_nx_mask = PT64_NX_MASK, set when the leaf's rights lack ACC_EXEC. */
  NX: 0x80000000,
} as const;

/** The writable bit of either format (kvm: PT_WRITABLE_MASK). */
export const SPTE_WRITABLE = 1 << 1;

const TWO_32 = 4294967296;
/** EPT leaf memory type: WB with ignore-PAT (kvm: vmx_get_mt_mask without non-coherent DMA). */
const EPT_LEAF_MEMORY_TYPE = (6 << SPTE_LO.MEMORY_TYPE_SHIFT) | SPTE_LO.IGNORE_PAT;

/**
 * Low word of a non-leaf SPTE pointing to the table at `tableHpa` (kvm: make_nonleaf_spte): EPT
 * R+W+X (A unless the child page's A/D bits are disabled); X86 P+W+U+A. Rights are decided at the
 * leaf, so upper entries grant everything.
 */
export function nonLeafSpteLo(format: SpteFormat, tableHpa: number, adDisabled: boolean): number {
  if (format === SPTE_FORMAT.EPT) return eptNonLeafSpteLo(tableHpa, adDisabled);
  return (
    (X86_SPTE_LO.MMU_PRESENT |
      X86_SPTE_LO.PRESENT |
      X86_SPTE_LO.WRITABLE |
      X86_SPTE_LO.USER |
      X86_SPTE_LO.ACCESSED |
      ((tableHpa % TWO_32) & X86_SPTE_LO.ADDRESS)) >>>
    0
  );
}

/** High word of a non-leaf SPTE. */
export function nonLeafSpteHi(format: SpteFormat, tableHpa: number, adDisabled: boolean): number {
  if (format === SPTE_FORMAT.EPT) return eptNonLeafSpteHi(tableHpa, adDisabled);
  return (Math.floor(tableHpa / TWO_32) & X86_SPTE_HI.ADDRESS) >>> 0;
}

/**
 * Low word of a leaf SPTE (kvm: make_spte, not a prefetch) mapping `pageHpa` at `level` with the
 * rights `access` (ACC form, already reduced for a read-only slot or a write-protected gfn):
 *
 * - EPT: R for ACC_USER (kvm: shadow_user_mask = VMX_EPT_READABLE_MASK; the present mask is empty
 *   because the host supports execute-only), W for ACC_WRITE, X for ACC_EXEC; WB + ignore-PAT
 *   (L1's memory type is not used); A, and D when writable, unless A/D bits are disabled.
 * - X86: P, U for ACC_USER, W for ACC_WRITE (with MMU-writable), A, D when writable, host-writable.
 *
 * Both: bit 7 above level 1 and KVM's present bit 11.
 */
export function leafSpteLo(
  format: SpteFormat,
  pageHpa: number,
  level: number,
  access: number,
  hostWritable: boolean,
  adDisabled: boolean,
): number {
  const writable = (access & ACC.WRITE) !== 0;
  const address = (pageHpa % TWO_32) & SPTE_LO.ADDRESS;
  if (format === SPTE_FORMAT.EPT) {
    let lo = SPTE_LO.MMU_PRESENT | EPT_LEAF_MEMORY_TYPE;
    if ((access & ACC.USER) !== 0) lo |= SPTE_LO.READABLE;
    if (writable) lo |= SPTE_LO.WRITABLE;
    if ((access & ACC.EXEC) !== 0) lo |= SPTE_LO.EXECUTABLE;
    if (level > 1) lo |= SPTE_LO.PAGE_SIZE;
    if (!adDisabled) {
      lo |= SPTE_LO.ACCESSED;
      if (writable) lo |= SPTE_LO.DIRTY;
    }
    return (lo | address) >>> 0;
  }
  let lo = X86_SPTE_LO.MMU_PRESENT | X86_SPTE_LO.PRESENT | X86_SPTE_LO.ACCESSED;
  if ((access & ACC.USER) !== 0) lo |= X86_SPTE_LO.USER;
  if (writable) lo |= X86_SPTE_LO.WRITABLE | X86_SPTE_LO.MMU_WRITABLE | X86_SPTE_LO.DIRTY;
  if (hostWritable) lo |= X86_SPTE_LO.HOST_WRITABLE;
  if (level > 1) lo |= X86_SPTE_LO.PAGE_SIZE;
  return (lo | address) >>> 0;
}

/**
 * High word of a leaf SPTE: address bits 51:32; EPT: SPTE_TDP_AD_DISABLED, host-writable and
 * MMU-writable in the ignored high bits; X86: NX when the rights lack ACC_EXEC.
 */
export function leafSpteHi(
  format: SpteFormat,
  pageHpa: number,
  access: number,
  hostWritable: boolean,
  adDisabled: boolean,
): number {
  const hi = Math.floor(pageHpa / TWO_32) & SPTE_HI.ADDRESS;
  if (format === SPTE_FORMAT.EPT) {
    let out = hi;
    if (adDisabled) out |= SPTE_HI.TDP_AD_DISABLED;
    if (hostWritable) out |= SPTE_HI.HOST_WRITABLE;
    if ((access & ACC.WRITE) !== 0) out |= SPTE_HI.MMU_WRITABLE;
    return out >>> 0;
  }
  return ((access & ACC.EXEC) === 0 ? hi | X86_SPTE_HI.NX : hi) >>> 0;
}

/**
 * The low word of `lo` with write permission removed for shadow-page protection (kvm:
 * spte_write_protect with pt_protect: PT_WRITABLE_MASK and shadow_mmu_writable_mask cleared).
 * The EPT format keeps MMU-writable in the high word: see `writeProtectedSpteHi`.
 */
export function writeProtectedSpteLo(format: SpteFormat, lo: number): number {
  if (format === SPTE_FORMAT.EPT) return (lo & ~SPTE_WRITABLE) >>> 0;
  return (lo & ~(SPTE_WRITABLE | X86_SPTE_LO.MMU_WRITABLE)) >>> 0;
}

/** The high word of a write-protected SPTE (EPT: MMU-writable is bit 58). */
export function writeProtectedSpteHi(format: SpteFormat, hi: number): number {
  if (format === SPTE_FORMAT.EPT) return (hi & ~SPTE_HI.MMU_WRITABLE) >>> 0;
  return hi >>> 0;
}

/**
 * The rights an SPTE gives, in ACC form (EPT: R → ACC_USER, W, X; X86: U, W, and X unless NX).
 * For reports and audits.
 */
export function spteAccess(format: SpteFormat, lo: number, hi: number): number {
  let acc = (lo & SPTE_WRITABLE) !== 0 ? ACC.WRITE : 0;
  if (format === SPTE_FORMAT.EPT) {
    if ((lo & SPTE_LO.READABLE) !== 0) acc |= ACC.USER;
    if ((lo & SPTE_LO.EXECUTABLE) !== 0) acc |= ACC.EXEC;
    return acc;
  }
  if ((lo & X86_SPTE_LO.USER) !== 0) acc |= ACC.USER;
  if ((hi & X86_SPTE_HI.NX) === 0) acc |= ACC.EXEC;
  return acc;
}
