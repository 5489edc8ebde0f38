/**
 * The case space of kvm-unit-tests `x86/access.c`: a case is a set of flags, one bit each, that
 * say how the four paging-structure entries of one linear address are built (present, R/W, U/S,
 * A, D, XD, PS, one reserved bit), how the processor is configured (EFER.NXE, CR0.WP, CR4.SMEP,
 * CR4.PKE and PKRU's rights for key 1) and which access is made (user or supervisor; read, write
 * or fetch; optionally after a supervisor read of the same address). The bit positions follow
 * access.c's flag enumeration (its `AC_*_BIT` values, without `AC_FEP`, which only makes its
 * harness force KVM's instruction emulator). The flag set, the legality rules and the split into
 * 885 constrained combinations × 2^16 free ones are access.c's facts; the code is ours.
 *
 * `buildAccessCaseEntries`, `accessCaseCpu` and `accessCaseAccess` turn a case into entries, a
 * processor state and an access; `expectAccessCase` says what the access must do.
 */
export const ACCESS_CASE_FLAG = {
  /** PTE R/W = 1. */
  PTE_WRITABLE: 1 << 0,
  /** PTE U/S = 1. */
  PTE_USER: 1 << 1,
  /** PTE A = 1 before the access. */
  PTE_ACCESSED: 1 << 2,
  /** PTE D = 1 before the access. */
  PTE_DIRTY: 1 << 3,
  /** PTE XD (bit 63) = 1: execute-disable with EFER.NXE, a reserved bit without. */
  PTE_NX: 1 << 4,
  /** PTE P = 1. */
  PTE_PRESENT: 1 << 5,
  /** PTE bit 51 = 1 (reserved: MAXPHYADDR < 52). */
  PTE_BIT51: 1 << 6,
  /** PTE bit 36 = 1 (reserved: MAXPHYADDR 36). */
  PTE_BIT36: 1 << 7,
  /** PDE R/W = 1. */
  PDE_WRITABLE: 1 << 8,
  /** PDE U/S = 1. */
  PDE_USER: 1 << 9,
  /** PDE A = 1 before the access. */
  PDE_ACCESSED: 1 << 10,
  /** PDE D = 1 before the access (only meaningful for a 2-MiB page). */
  PDE_DIRTY: 1 << 11,
  /** PDE PS = 1: the PDE maps a 2-MiB page and there is no PTE. */
  PDE_PSE: 1 << 12,
  /** PDE XD (bit 63) = 1. */
  PDE_NX: 1 << 13,
  /** PDE P = 1. */
  PDE_PRESENT: 1 << 14,
  /** PDE bit 51 = 1 (reserved). */
  PDE_BIT51: 1 << 15,
  /** PDE bit 36 = 1 (reserved). */
  PDE_BIT36: 1 << 16,
  /** PDE bit 13 = 1: reserved in a 2-MiB PDE (SDM Table 4-17), an address bit otherwise. */
  PDE_BIT13: 1 << 17,
  /** PDPTE R/W = 0 (the PDPTE is otherwise writable). */
  PDPTE_NO_WRITABLE: 1 << 18,
  /** PKRU.AD for key 1 = 1 (with CR4.PKE). */
  PKU_AD: 1 << 19,
  /** PKRU.WD for key 1 = 1 (with CR4.PKE). */
  PKU_WD: 1 << 20,
  /** The leaf carries protection key 1 (and a non-leaf PDE key 2, which must not matter). */
  PKU_PKEY: 1 << 21,
  /** The access is a user-mode access (CPL 3). */
  ACCESS_USER: 1 << 22,
  /** The access is a write. */
  ACCESS_WRITE: 1 << 23,
  /** The access is an instruction fetch. */
  ACCESS_FETCH: 1 << 24,
  /** A supervisor read of the address comes first (it may set A flags the access then sees). */
  ACCESS_TWICE: 1 << 25,
  /** EFER.NXE = 1. */
  CPU_EFER_NX: 1 << 26,
  /** CR0.WP = 1. */
  CPU_CR0_WP: 1 << 27,
  /** CR4.SMEP = 1. */
  CPU_CR4_SMEP: 1 << 28,
  /** CR4.PKE = 1. */
  CPU_CR4_PKE: 1 << 29,
} as const;

export type AccessCaseFlagName = keyof typeof ACCESS_CASE_FLAG;

/** Number of case flags: flags are values below 2^30. */
export const ACCESS_CASE_FLAG_COUNT = 30;

/** The flag names by bit position. */
export const ACCESS_CASE_FLAG_NAMES: readonly AccessCaseFlagName[] = Object.freeze(
  Object.keys(ACCESS_CASE_FLAG) as AccessCaseFlagName[],
);

const F = ACCESS_CASE_FLAG;
const ALL_FLAGS = (1 << ACCESS_CASE_FLAG_COUNT) - 1;

/** A case's flags as lower-case names separated by spaces (for failure messages). */
export function describeAccessCase(flags: number): string {
  const parts: string[] = [];
  for (let i = 0; i < ACCESS_CASE_FLAG_COUNT; i++) {
    if ((flags & (1 << i)) !== 0) parts.push(ACCESS_CASE_FLAG_NAMES[i]!.toLowerCase());
  }
  return parts.length === 0 ? "(no flags)" : parts.join(" ");
}

/**
 * Whether a combination of flags is a case (kvm-unit-tests access.c: `ac_test_legal`):
 * - an access is not both a write and a fetch;
 * - PKRU.AD/WD are varied only with CR4.PKE;
 * - PDE bit 13 only with PDE.PS (in a table pointer it is an address bit, not a reserved one);
 * - at most one reserved bit per case: bits 51 and 36 of the PDE and the PTE, bit 13 of the PDE,
 *   and XD of either while EFER.NXE = 0 (a reserved-bit fault stops the walk whatever the others).
 *
 * access.c also leaves out CR4.SMEP cases (current versions skip them all; older ones skipped user
 * accesses with SMEP, since its harness makes its own code supervisor-only while SMEP is on). Those
 * limits are its harness's, not the architecture's, so SMEP cases are kept here.
 */
export function isLegalAccessCase(flags: number): boolean {
  if ((flags & ~ALL_FLAGS) !== 0) return false;
  if ((flags & F.ACCESS_WRITE) !== 0 && (flags & F.ACCESS_FETCH) !== 0) return false;
  if ((flags & F.CPU_CR4_PKE) === 0 && (flags & (F.PKU_AD | F.PKU_WD)) !== 0) return false;
  if ((flags & F.PDE_PSE) === 0 && (flags & F.PDE_BIT13) !== 0) return false;
  let reserved = flags & (F.PDE_BIT51 | F.PDE_BIT36 | F.PDE_BIT13 | F.PTE_BIT51 | F.PTE_BIT36);
  if ((flags & F.CPU_EFER_NX) === 0) reserved |= flags & (F.PDE_NX | F.PTE_NX);
  return (reserved & (reserved - 1)) === 0;
}

/** The flags no legality rule mentions: each of their 2^16 combinations goes with every legal rest. */
export const ACCESS_CASE_FREE_FLAGS =
  F.PTE_WRITABLE |
  F.PTE_USER |
  F.PTE_ACCESSED |
  F.PTE_DIRTY |
  F.PTE_PRESENT |
  F.PDE_WRITABLE |
  F.PDE_USER |
  F.PDE_ACCESSED |
  F.PDE_DIRTY |
  F.PDE_PRESENT |
  F.PDPTE_NO_WRITABLE |
  F.PKU_PKEY |
  F.ACCESS_USER |
  F.ACCESS_TWICE |
  F.CPU_CR0_WP |
  F.CPU_CR4_SMEP;

/** The protection-key flags, left clear in a space without protection keys. */
export const ACCESS_CASE_PKU_FLAGS = F.PKU_AD | F.PKU_WD | F.PKU_PKEY | F.CPU_CR4_PKE;

/**
 * The legal cases as a product: every legal value of the constrained flags (the ones the legality
 * rules mention) with every value of the free flags. Case `index` is
 * `constrained[floor(index / free.length)] | free[index % free.length]`; both arrays ascend.
 */
export interface AccessCaseSpace {
  /** The legal values of the constrained flags, ascending (885 with protection keys, 177 without). */
  readonly constrained: Int32Array;
  /** Every value of the free flags, ascending (2^16 with protection keys, 2^15 without). */
  readonly free: Int32Array;
  /** Number of cases: `constrained.length * free.length`. */
  readonly total: number;
  /** The flags `constrained` is made of. */
  readonly constrainedMask: number;
  /** The flags `free` is made of. */
  readonly freeMask: number;
}

export interface AccessCaseSpaceOptions {
  /**
   * Include the protection-key flags (default true). Without them PKU stays off (as under KVM's
   * shadow paging, which offers PKU only with TDP).
   */
  readonly protectionKeys?: boolean;
}

/** Every subset of `mask`, ascending. */
function subsets(mask: number): number[] {
  const out: number[] = [];
  let s = 0;
  do {
    out.push(s);
    s = (s - mask) & mask;
  } while (s !== 0);
  return out;
}

/** Builds the case space: 885 × 65,536 = 57,999,360 cases, or 177 × 32,768 = 5,799,936 without protection keys. */
export function accessCaseSpace(options: AccessCaseSpaceOptions = {}): AccessCaseSpace {
  const excluded = options.protectionKeys === false ? ACCESS_CASE_PKU_FLAGS : 0;
  const constrainedMask = ALL_FLAGS & ~ACCESS_CASE_FREE_FLAGS & ~excluded;
  const freeMask = ACCESS_CASE_FREE_FLAGS & ~excluded;
  const constrained = Int32Array.from(subsets(constrainedMask).filter(isLegalAccessCase));
  const free = Int32Array.from(subsets(freeMask));
  return { constrained, free, total: constrained.length * free.length, constrainedMask, freeMask };
}

/** The flags of case `index` (an integer in [0, `space.total`)). */
export function accessCaseAt(space: AccessCaseSpace, index: number): number {
  if (!Number.isInteger(index) || index < 0 || index >= space.total) {
    throw new RangeError(`case index ${index} is not an integer in [0, ${space.total})`);
  }
  const n = space.free.length;
  return space.constrained[Math.floor(index / n)]! | space.free[index % n]!;
}

/** Position of `value` in the ascending `values`, or -1. */
function search(values: Int32Array, value: number): number {
  let lo = 0;
  let hi = values.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const v = values[mid]!;
    if (v === value) return mid;
    if (v < value) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/** The index of the case with these flags (`accessCaseAt`'s inverse), or -1 when it is not in the space. */
export function accessCaseIndex(space: AccessCaseSpace, flags: number): number {
  if ((flags & ~(space.constrainedMask | space.freeMask)) !== 0) return -1;
  const i = search(space.constrained, flags & space.constrainedMask);
  if (i < 0) return -1;
  return i * space.free.length + search(space.free, flags & space.freeMask);
}

function checkSlice(slices: number, slice: number): void {
  if (!Number.isInteger(slices) || slices < 1 || !Number.isInteger(slice) || slice < 0 || slice >= slices) {
    throw new RangeError(`slice ${slice} of ${slices} is not a slice (need integers 0 <= slice < slices)`);
  }
}

/**
 * Calls `fn` with the flags of every case in slice `slice` of `slices` and returns how many there
 * were. Slice s pairs the i-th constrained value with the free values whose index j satisfies
 * j ≡ 7i + s (mod `slices`): the slices partition the space, and each one still meets every
 * constrained value and both values of every free flag. Nothing is allocated.
 */
export function forEachAccessCase(
  space: AccessCaseSpace,
  slices: number,
  slice: number,
  fn: (flags: number) => void,
): number {
  checkSlice(slices, slice);
  const { constrained, free } = space;
  let n = 0;
  for (let i = 0; i < constrained.length; i++) {
    const c = constrained[i]!;
    for (let j = (7 * i + slice) % slices; j < free.length; j += slices) {
      fn(c | free[j]!);
      n++;
    }
  }
  return n;
}

/** Number of cases in slice `slice` of `slices` (what `forEachAccessCase` returns), without visiting them. */
export function accessCaseSliceSize(space: AccessCaseSpace, slices: number, slice: number): number {
  checkSlice(slices, slice);
  const n = space.free.length;
  let total = 0;
  for (let i = 0; i < space.constrained.length; i++) {
    const first = (7 * i + slice) % slices;
    if (first < n) total += Math.floor((n - 1 - first) / slices) + 1;
  }
  return total;
}
