/**
 * The essentials of KVM's `struct kvm_mmu_page` (kvm: arch/x86/kvm/mmu/mmu_internal.h): one
 * page-table page of L0's own tables (a TDP page, a shadow page of a guest table, or a shadow-EPT
 * page). The model keeps them struct-of-arrays in `ShadowPageStore`, indexed by a small integer
 * *id*; this file holds the per-page flags, the hash that spreads pages over the SP hash buckets,
 * and the readable snapshot of one page for reports and tests.
 */

/** Per-page flag bits (one byte per page). */
export const SP_FLAG = {
  /** The id names a live page. */
  LIVE: 1 << 0,
  /** kvm: `sp->tdp_mmu_page` — owned by the TDP MMU (not hashed, not on the active list, no generation). */
  TDP_MMU: 1 << 1,
  /** kvm: `sp->unsync` — an indirect last-level page that may be out of date with its guest table. */
  UNSYNC: 1 << 2,
  /** kvm: `account_shadowed` ran — the shadowed guest gfn is write-tracked. */
  WRITE_TRACKED: 1 << 3,
  /** On `active_mmu_pages`. */
  ON_ACTIVE_LIST: 1 << 4,
  /** On the pending invalid list (prepared, not yet committed). */
  ON_INVALID_LIST: 1 << 5,
  /** kvm: `sp->tdp_mmu_scheduled_root_to_zap` — an invalidated TDP root still to be zapped. */
  ZAP_SCHEDULED: 1 << 6,
  /** Linked into its SP hash bucket. */
  HASHED: 1 << 7,
} as const;

/** kvm: KVM_MMU_HASH_SHIFT = 12, so 4096 buckets (`kvm->arch.mmu_page_hash`). */
export const SP_HASH_SHIFT = 12;
export const SP_HASH_BUCKETS = 1 << SP_HASH_SHIFT;

/** The 64-bit golden-ratio multiplier of Linux's `hash_64` (include/linux/hash.h: GOLDEN_RATIO_64). */
const GOLDEN_HI = 0x61c88646;
const GOLDEN_LO = 0x80b583eb;
const TWO_32 = 4294967296;

/**
 * The SP hash bucket of a gfn (kvm: `kvm_page_table_hashfn(gfn)` = `hash_64(gfn, 12)`): the top
 * 12 bits of the low 64 bits of `gfn * GOLDEN_RATIO_64`. Computed from 16-bit partial products so
 * that every step is exact in a double (gfn < 2^40); no BigInt.
 */
export function spHashBucket(gfn: number): number {
  const gl = gfn >>> 0;
  const gh = Math.floor(gfn / TWO_32) >>> 0;
  // High 32 bits of the 64-bit product gl * GOLDEN_LO.
  const a0 = gl & 0xffff;
  const a1 = gl >>> 16;
  const b0 = GOLDEN_LO & 0xffff;
  const b1 = GOLDEN_LO >>> 16;
  const mid = a0 * b1 + a1 * b0; // < 2^33
  const carry = Math.floor((mid * 65536 + a0 * b0) / TWO_32); // mid * 2^16 < 2^49: exact
  const highOfLow = a1 * b1 + carry;
  // Bits 63:32 of the full product, modulo 2^32.
  const hi = (highOfLow + Math.imul(gl, GOLDEN_HI) + Math.imul(gh, GOLDEN_LO)) >>> 0;
  return hi >>> (32 - SP_HASH_SHIFT);
}

/** One page as named fields (`ShadowPageStore.describe`): for reports, traces and tests. */
export interface ShadowPageInfo {
  readonly id: number;
  /** kvm: `sp->gfn` — the guest frame the page shadows, or the first gfn a direct page maps. */
  readonly gfn: number;
  /** kvm: `sp->role.word`. */
  readonly role: number;
  readonly level: number;
  /** Host-physical address of the table (kvm: `__pa(sp->spt)`). */
  readonly hostPage: number;
  /** kvm: `sp->root_count` (legacy) or `sp->tdp_mmu_root_count` (TDP MMU). */
  readonly rootCount: number;
  /** Number of parent SPTEs pointing to the page (kvm: `sp->parent_ptes`; `sp->ptep` for TDP pages). */
  readonly parentCount: number;
  readonly unsync: boolean;
  /** kvm: `sp->unsync_children` — entries marked in the page's unsync-child bitmap. */
  readonly unsyncChildren: number;
  readonly tdpMmuPage: boolean;
  readonly writeTracked: boolean;
  /** kvm: `sp->mmu_valid_gen`. */
  readonly mmuValidGen: number;
  readonly invalid: boolean;
  readonly obsolete: boolean;
  readonly onActiveList: boolean;
}
