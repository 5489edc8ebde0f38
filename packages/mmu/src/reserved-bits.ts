import { EXT_ROLE } from "./extended-role";
import { PAGE_ROLE } from "./page-role";

/**
 * KVM's reserved-bit tables (kvm: `struct rsvd_bits_validate`; kvm-mmu.md §1.4, §5.7), used twice
 * per MMU context: `guest_rsvd_check` for software walks of guest tables (a hit is a #PF with
 * RSVD, or an EPT misconfiguration for shadow EPT) and `shadow_zero_check` for the entries KVM
 * itself writes (a hit is a KVM bug).
 *
 * - `rsvd_bits_mask[bit7][level-1]` is held as `lo[i]`/`hi[i]` with `i = bit7 * 5 + level - 1`.
 * - `bad_mt_xwr` (EPT only) is a 64-bit set indexed by entry bits 5:0 (memory type × XWR), held as
 *   `badMtXwr[0]` (bits 31:0) and `badMtXwr[1]` (bits 63:32).
 *
 * The reset functions write only the entries KVM writes; the others keep what they held (KVM never
 * reads them for that paging mode).
 */
export interface RsvdBitsValidate {
  readonly lo: Uint32Array;
  readonly hi: Uint32Array;
  readonly badMtXwr: Uint32Array;
}

/** Page-size levels (kvm: PG_LEVEL_4K, PG_LEVEL_2M, PG_LEVEL_1G). */
export const PG_LEVEL = {
  SIZE_4K: 1,
  SIZE_2M: 2,
  SIZE_1G: 3,
} as const;

/** Paging levels of a guest or root (kvm: PT32_ROOT_LEVEL, PT32E_ROOT_LEVEL, PT64_ROOT_4LEVEL, PT64_ROOT_5LEVEL). */
export const ROOT_LEVEL = {
  PT32: 2,
  PT32E: 3,
  PT64_4: 4,
  PT64_5: 5,
} as const;

/** A zeroed table (as in a freshly allocated `struct kvm_mmu`). */
export function createRsvdBitsValidate(): RsvdBitsValidate {
  return { lo: new Uint32Array(10), hi: new Uint32Array(10), badMtXwr: new Uint32Array(2) };
}

/** Index of `rsvd_bits_mask[bit7][level-1]`. */
export function rsvdMaskIndex(bit7: 0 | 1, level: number): number {
  return bit7 * 5 + level - 1;
}

function set(out: RsvdBitsValidate, bit7: 0 | 1, level: number, lo: number, hi: number): void {
  const i = bit7 * 5 + level - 1;
  out.lo[i] = lo >>> 0;
  out.hi[i] = hi >>> 0;
}

function copy(
  out: RsvdBitsValidate,
  toBit7: 0 | 1,
  toLevel: number,
  fromBit7: 0 | 1,
  fromLevel: number,
): void {
  const from = fromBit7 * 5 + fromLevel - 1;
  set(out, toBit7, toLevel, out.lo[from]!, out.hi[from]!);
}

function checkPhysBits(physBits: number): void {
  if (!Number.isInteger(physBits) || physBits < 12 || physBits > 64) {
    throw new RangeError(`physical-address width ${physBits} must be an integer in [12, 64]`);
  }
}

/** Low word of bits 63:physBits (kvm: rsvd_bits(physBits, 63), e.g. reserved_gpa_bits). */
function paRsvdLo(physBits: number): number {
  return physBits >= 32 ? 0 : (0xffffffff << physBits) >>> 0;
}

/** High word of bits 63:physBits. */
function paRsvdHi(physBits: number): number {
  if (physBits <= 32) return 0xffffffff;
  if (physBits >= 64) return 0;
  return (0xffffffff << (physBits - 32)) >>> 0;
}

/** Bit 63 in the high word. */
const BIT63_HI = 0x80000000;
/** Bit 7 (PS) and bit 8 in the low word. */
const BIT7 = 1 << 7;
const BIT8 = 1 << 8;
/** kvm: rsvd_bits(17, 21) — a 4-MiB PDE's bits above a 36-bit address (PSE-36). */
const PSE36_4M_RSVD = 0x003e0000;
/** kvm: rsvd_bits(5, 8) | rsvd_bits(1, 2) — a PAE PDPTE's low reserved bits (SDM 4.4.1). */
const PAE_PDPTE_RSVD_LO = 0x000001e6;
/** kvm: rsvd_bits(13, 20) / rsvd_bits(13, 29) — 2-MiB / 1-GiB leaf address bits below the page (bit 12 is PAT). */
const LARGE_2M_RSVD = 0x001fe000;
const LARGE_1G_RSVD = 0x3fffe000;
/** EPT: rsvd_bits(3, 7), rsvd_bits(3, 6), rsvd_bits(12, 20), rsvd_bits(12, 29). */
const EPT_RSVD_7_3 = 0xf8;
const EPT_RSVD_6_3 = 0x78;
const EPT_LARGE_2M_RSVD = 0x001ff000;
const EPT_LARGE_1G_RSVD = 0x3ffff000;

/**
 * KVM's reserved masks for x86 (non-EPT) paging structures (kvm: __reset_rsvds_bits_mask).
 *
 * - `physBits`: the entries' reserved address bits are `physBits..63` (guest: MAXPHYADDR, kvm:
 *   reserved_gpa_bits; shadow/TDP: the host's, kvm: reserved_hpa_bits).
 * - `level`: 2 (32-bit), 3 (PAE), 4 or 5; any other value leaves the table untouched except
 *   `bad_mt_xwr`, which is always cleared.
 * - `nx`: EFER.NX (without it bit 63 is reserved); `gbpages`: 1-GiB pages; `pse`: CR4.PSE
 *   (32-bit paging only); `amd`: bit 8 of PML4Es/PML5Es is reserved (AMD APM).
 *
 * Differences from the SDM (kept, as KVM behaves this way):
 * - 32-bit 4-MiB PDE: KVM always assumes PSE-36 with a 36-bit physical address and reserves bits
 *   21:17; the SDM reserves bit 21 and bits 20:(13 + min(MAXPHYADDR, 40) − 32).
 * - A 1-GiB PDPTE when 1-GiB pages are unsupported: KVM's mask is bit 7 | 29:13 | address bits,
 *   x86-arch's is bit 7 | address bits; both reject every such entry.
 */
export function resetRsvdsBitsMask(
  out: RsvdBitsValidate,
  physBits: number,
  level: number,
  nx: boolean,
  gbpages: boolean,
  pse: boolean,
  amd: boolean,
): void {
  checkPhysBits(physBits);
  out.badMtXwr[0] = 0;
  out.badMtXwr[1] = 0;

  const gbpagesBit = gbpages ? 0 : BIT7;
  // Address bits above the physical width: up to bit 62 in PAE entries (SDM 4.4.2: bits 62:M are
  // reserved), up to bit 51 otherwise (bits 62:52 are ignored / protection key in IA-32e paging).
  const highLo = paRsvdLo(physBits);
  let highHi = paRsvdHi(physBits) & (level === ROOT_LEVEL.PT32E ? 0x7fffffff : 0x000fffff);
  // SDM 4.4.2/4.5: with EFER.NX=0, bit 63 (XD) is reserved.
  if (!nx) highHi |= BIT63_HI;
  // AMD APM: bit 8 of a non-leaf PML4E/PML5E is reserved.
  const nonleafBit8 = amd ? BIT8 : 0;

  switch (level) {
    case ROOT_LEVEL.PT32: {
      // SDM 4.3: 4-KiB PTEs and PDEs that reference a table have no reserved bits.
      set(out, 0, 2, 0, 0);
      set(out, 0, 1, 0, 0);
      copy(out, 1, 1, 0, 1);
      if (!pse) {
        set(out, 1, 2, 0, 0);
        break;
      }
      // kvm: is_cpuid_PSE36() is hardwired to 1, so KVM's 21:13 variant for CPUs without PSE-36
      // is never chosen: a 4-MiB PDE always reserves bits 21:17.
      set(out, 1, 2, PSE36_4M_RSVD, 0);
      break;
    }
    case ROOT_LEVEL.PT32E: {
      // PDPTE (checked by MOV to CR3, not by the walk): bit 63, address bits, 8:5 and 2:1.
      set(out, 0, 3, highLo | PAE_PDPTE_RSVD_LO, highHi | BIT63_HI);
      set(out, 0, 2, highLo, highHi);
      set(out, 0, 1, highLo, highHi);
      set(out, 1, 2, highLo | LARGE_2M_RSVD, highHi);
      copy(out, 1, 1, 0, 1);
      break;
    }
    case ROOT_LEVEL.PT64_5:
    case ROOT_LEVEL.PT64_4: {
      if (level === ROOT_LEVEL.PT64_5) {
        // A PML5E has no page-size bit: bit 7 is reserved.
        set(out, 0, 5, highLo | nonleafBit8 | BIT7, highHi);
        copy(out, 1, 5, 0, 5);
      }
      set(out, 0, 4, highLo | nonleafBit8 | BIT7, highHi);
      set(out, 0, 3, highLo | gbpagesBit, highHi);
      set(out, 0, 2, highLo, highHi);
      set(out, 0, 1, highLo, highHi);
      copy(out, 1, 4, 0, 4);
      set(out, 1, 3, highLo | gbpagesBit | LARGE_1G_RSVD, highHi);
      set(out, 1, 2, highLo | LARGE_2M_RSVD, highHi);
      // Bit 7 of a PTE is PAT, not a page size.
      copy(out, 1, 1, 0, 1);
      break;
    }
    default:
      break;
  }
}

/**
 * KVM's reserved masks for EPT entries (kvm: __reset_rsvds_bits_mask_ept; SDM 29.3.2/29.3.3.1).
 *
 * - `physBits`: address bits `physBits..51` are reserved (bits 63:52 never are).
 * - `execonly`: XWR = 100b is allowed (IA32_VMX_EPT_VPID_CAP bit 0).
 * - `hugePageLevel`: the largest leaf allowed (PG_LEVEL); bit 7 of a PDPTE/PDE is reserved above it.
 *
 * `bad_mt_xwr` rejects memory types 2, 3 and 7 and XWR = 010b/110b (write without read), plus
 * 100b without `execonly`, at every level (for non-leaf entries bits 5:3 are reserved anyway).
 */
export function resetRsvdsBitsMaskEpt(
  out: RsvdBitsValidate,
  physBits: number,
  execonly: boolean,
  hugePageLevel: number,
): void {
  checkPhysBits(physBits);
  const highLo = paRsvdLo(physBits);
  const highHi = paRsvdHi(physBits) & 0x000fffff;
  const large1g = hugePageLevel < PG_LEVEL.SIZE_1G ? BIT7 : 0;
  const large2m = hugePageLevel < PG_LEVEL.SIZE_2M ? BIT7 : 0;

  set(out, 0, 5, highLo | EPT_RSVD_7_3, highHi);
  set(out, 0, 4, highLo | EPT_RSVD_7_3, highHi);
  set(out, 0, 3, highLo | EPT_RSVD_6_3 | large1g, highHi);
  set(out, 0, 2, highLo | EPT_RSVD_6_3 | large2m, highHi);
  set(out, 0, 1, highLo, highHi);
  copy(out, 1, 5, 0, 5);
  copy(out, 1, 4, 0, 4);
  set(out, 1, 3, highLo | EPT_LARGE_1G_RSVD | large1g, highHi);
  set(out, 1, 2, highLo | EPT_LARGE_2M_RSVD | large2m, highHi);
  copy(out, 1, 1, 0, 1);

  // Bit (memtype * 8 + xwr): whole bytes for memory types 2, 3, 7; bits 2 and 6 of every byte for
  // XWR 010b/110b; bit 4 of every byte for XWR 100b unless execute-only is supported.
  const xwrBits = 0x44444444 | (execonly ? 0 : 0x10101010);
  out.badMtXwr[0] = (0xffff0000 | xwrBits) >>> 0;
  out.badMtXwr[1] = (0xff000000 | xwrBits) >>> 0;
}

/**
 * The largest EPT leaf a set of EPT capabilities allows (kvm: ept_caps_to_lpage_level): 1 GiB if
 * 1-GiB pages are offered, else 2 MiB if 2-MiB pages are, else 4 KiB. (KVM checks 1 GiB first, so
 * a 1-GiB-without-2-MiB capability set, which no CPU reports, allows 2-MiB pages too.)
 */
export function eptHugePageLevel(pages2M: boolean, pages1G: boolean): number {
  if (pages1G) return PG_LEVEL.SIZE_1G;
  if (pages2M) return PG_LEVEL.SIZE_2M;
  return PG_LEVEL.SIZE_4K;
}

/**
 * `guest_rsvd_check` for an x86 CPU role (kvm: reset_guest_rsvds_bits_mask): level, EFER.NX and
 * CR4.PSE come from the role; `maxPhysAddr` (guest CPUID), `gbpages` (guest CPUID 1-GiB pages) and
 * `amd` (guest CPUID vendor AMD/Hygon) from the vCPU model.
 */
export function resetGuestRsvdsBitsMask(
  out: RsvdBitsValidate,
  roleBase: number,
  roleExt: number,
  maxPhysAddr: number,
  gbpages: boolean,
  amd: boolean,
): void {
  resetRsvdsBitsMask(
    out,
    maxPhysAddr,
    roleBase & PAGE_ROLE.LEVEL_MASK,
    (roleBase & PAGE_ROLE.EFER_NX) !== 0,
    gbpages,
    (roleExt & EXT_ROLE.CR4_PSE) !== 0,
    amd,
  );
}

/**
 * `shadow_zero_check` for shadow paging and shadow NPT (kvm: reset_shadow_zero_bits_mask): the
 * x86 format at the root role's level with its EFER.NX, no PSE and the AMD bit-8 rule always on.
 * KVM's memory-encryption adjustment (shadow_me_mask/shadow_me_value) is not modelled (both 0).
 */
export function resetShadowZeroBitsMask(
  out: RsvdBitsValidate,
  rootRole: number,
  hostPhysBits: number,
  guestGbpages: boolean,
): void {
  resetRsvdsBitsMask(
    out,
    hostPhysBits,
    rootRole & PAGE_ROLE.LEVEL_MASK,
    (rootRole & PAGE_ROLE.EFER_NX) !== 0,
    guestGbpages,
    false,
    true,
  );
}

/**
 * `shadow_zero_check` for a TDP context (kvm: reset_tdp_shadow_zero_bits_mask): NPT on AMD (x86
 * format, NX on, AMD rules, the host's 1-GiB support), else the EPT format without execute-only
 * and with the host's largest huge page (kvm: max_huge_page_level). shadow_me_mask: not modelled.
 */
export function resetTdpShadowZeroBitsMask(
  out: RsvdBitsValidate,
  rootRole: number,
  hostPhysBits: number,
  hostIsAmd: boolean,
  hostGbpages: boolean,
  maxHugePageLevel: number,
): void {
  if (hostIsAmd) {
    resetRsvdsBitsMask(out, hostPhysBits, rootRole & PAGE_ROLE.LEVEL_MASK, true, hostGbpages, false, true);
  } else {
    resetRsvdsBitsMaskEpt(out, hostPhysBits, false, maxHugePageLevel);
  }
}

/**
 * `shadow_zero_check` for the shadow-EPT context (kvm: reset_ept_shadow_zero_bits_mask): the EPT
 * format with L1's execute-only setting and the host's largest huge page.
 */
export function resetEptShadowZeroBitsMask(
  out: RsvdBitsValidate,
  hostPhysBits: number,
  execonly: boolean,
  maxHugePageLevel: number,
): void {
  resetRsvdsBitsMaskEpt(out, hostPhysBits, execonly, maxHugePageLevel);
}

/**
 * Whether an entry at `level` has a reserved bit set (kvm: is_rsvd_spte = __is_bad_mt_xwr ||
 * __is_rsvd_bits_set; for guest walks FNAME(is_rsvd_bits_set), identical because non-EPT tables
 * have an empty `bad_mt_xwr`). The mask is chosen by the entry's bit 7 and the level. For EPT the
 * caller tests presence (XWR ≠ 0) first, as the walk does. `hi` is 0 for 32-bit entries.
 */
export function isReservedGpte(masks: RsvdBitsValidate, level: number, lo: number, hi: number): boolean {
  const low6 = lo & 0x3f;
  if (((masks.badMtXwr[low6 >>> 5]! >>> (low6 & 31)) & 1) !== 0) return true;
  const i = ((lo >>> 7) & 1) * 5 + level - 1;
  return (lo & masks.lo[i]!) !== 0 || (hi & masks.hi[i]!) !== 0;
}
