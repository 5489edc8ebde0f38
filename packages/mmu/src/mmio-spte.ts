import { EPTE_LO, type PhysicalMemory } from "@nestvisor/x86-arch";
import { ACC } from "./page-role";
import { SPTE_FORMAT, type SpteFormat } from "./shadow-spte";
import { spteAddress } from "./spte";

/**
 * MMIO SPTEs (kvm: make_mmio_spte, is_mmio_spte, get_mmio_spte_gfn, get_mmio_spte_access,
 * get_mmio_spte_generation, with the masks kvm_mmu_set_ept_masks and kvm_mmu_reset_all_pte_masks
 * install).
 *
 * When a fault finds no memslot for its gfn, KVM caches the fact in the 4-KiB leaf instead of leaving
 * it empty, in a form the processor refuses, so the next access goes straight to MMIO emulation:
 * - EPT format: W and X without R (kvm: VMX_EPT_MISCONFIG_WX_VALUE), an EPT misconfiguration (SDM
 *   29.3.3.1); no access bits are kept (shadow_mmio_access_mask is 0) and bit 63 (suppress #VE) is
 *   clear;
 * - x86 format (shadow paging): P and the reserved address bit 51, so the access faults with
 *   PFEC.RSVD (SDM 4.7); the guest's W and U rights are kept in bits 1 and 2 (kvm: ACC_WRITE_MASK |
 *   ACC_USER_MASK).
 * Both keep the gfn in the address bits and the memslot generation the entry was made under in bits
 * 10:3 (the generation's low 8 bits) and 62:52 (its next 11), so a memslot change makes every cached
 * entry stale at once. Neither is shadow-present (bit 11 clear): zaps, audits and rmaps skip them.
 *
 * `shadow_nonpresent_or_rsvd_mask` is taken as 0: it is KVM's L1TF mitigation, set only on CPUs
 * with the L1TF erratum, and the model's host (MODERN_CPU, 46 physical-address bits) does not have
 * it; with fewer than 52 physical-address bits bit 51 is reserved, as the x86 format needs.
 */

/** kvm: VMX_EPT_MISCONFIG_WX_VALUE — the R/W/X bits of every EPT-format MMIO SPTE. */
export const EPT_MMIO_SPTE_VALUE = EPTE_LO.WRITE | EPTE_LO.EXECUTE;
/** kvm: MMIO_SPTE_GEN_MASK — the 19 generation bits an MMIO SPTE holds. */
export const MMIO_GENERATION_MASK = 0x7ffff;

const TWO_20 = 1048576;
/** Bit 63 (suppress #VE) in the high word: part of KVM's mmio mask for EPT, clear in the value. */
const SUPPRESS_VE_HI = 0x8000_0000;
/** Bit 51 in the high word: the reserved address bit of x86-format MMIO SPTEs. */
const RSVD_BIT51_HI = 1 << 19;
/** x86 format: P, and the guest rights kept (W = bit 1, U = bit 2). */
const X86_PRESENT = 1;
const X86_ACCESS_BITS = ACC.WRITE | ACC.USER;

/**
 * Low word of the MMIO SPTE for `gfn` under memslot generation `generation`; `access` (ACC bits)
 * is kept by the x86 format only.
 */
export function mmioSpteLo(format: SpteFormat, gfn: number, generation: number, access: number): number {
  const bits = format === SPTE_FORMAT.EPT ? EPT_MMIO_SPTE_VALUE : X86_PRESENT | (access & X86_ACCESS_BITS);
  return (((gfn % TWO_20) << 12) | ((generation & 0xff) << 3) | bits) >>> 0;
}

/** High word of the MMIO SPTE for `gfn`: address bits 51:32 and generation bits 18:8 at 62:52. */
export function mmioSpteHi(format: SpteFormat, gfn: number, generation: number): number {
  const hi = (Math.floor(gfn / TWO_20) & 0xfffff) | (((generation >>> 8) & 0x7ff) << 20);
  return (format === SPTE_FORMAT.EPT ? hi : hi | RSVD_BIT51_HI) >>> 0;
}

/** kvm: is_mmio_spte — the bits under KVM's mmio mask equal its mmio value. */
export function isMmioSpte(format: SpteFormat, lo: number, hi: number): boolean {
  if (format === SPTE_FORMAT.EPT) return (lo & 7) === EPT_MMIO_SPTE_VALUE && (hi & SUPPRESS_VE_HI) === 0;
  return (lo & X86_PRESENT) !== 0 && (hi & RSVD_BIT51_HI) !== 0;
}

/** kvm: get_mmio_spte_gfn (bit 51 of the x86 format is not an address bit here). */
export function mmioSpteGfn(lo: number, hi: number): number {
  return spteAddress(lo, hi & ~RSVD_BIT51_HI) / 4096;
}

/** kvm: get_mmio_spte_access — the ACC rights an x86-format entry kept (none for EPT). */
export function mmioSpteAccess(format: SpteFormat, lo: number): number {
  return format === SPTE_FORMAT.EPT ? 0 : lo & X86_ACCESS_BITS;
}

/** kvm: get_mmio_spte_generation. */
export function mmioSpteGeneration(lo: number, hi: number): number {
  return ((lo >>> 3) & 0xff) | (((hi >>> 20) & 0x7ff) << 8);
}

/**
 * Writes the MMIO SPTE for `gfn` under the memslot generation `memslotGeneration` (its low 19 bits
 * are kept) at `pa`, unless the entry already holds it. Returns whether it wrote.
 */
export function writeMmioSpte(
  memory: PhysicalMemory,
  pa: number,
  format: SpteFormat,
  gfn: number,
  memslotGeneration: number,
  access: number,
): boolean {
  const generation = memslotGeneration & MMIO_GENERATION_MASK;
  const lo = mmioSpteLo(format, gfn, generation, access);
  const hi = mmioSpteHi(format, gfn, generation);
  if (memory.read32(pa) === lo && memory.read32(pa + 4) === hi) return false;
  memory.write64(pa, lo, hi);
  return true;
}
