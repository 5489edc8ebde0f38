/** Which stage of a (possibly two-dimensional) walk stopped it. */
export const FAULT_STAGE = {
  NONE: 0,
  /** The guest's own page tables: a #PF with `errorCode`. */
  GUEST: 1,
  /** Stage 2 (EPT) while accessing a guest paging-structure entry. */
  STAGE2_PAGING_STRUCTURE: 2,
  /** Stage 2 (EPT) on the final guest-physical address. */
  STAGE2_FINAL: 3,
} as const;
export type FaultStage = (typeof FAULT_STAGE)[keyof typeof FAULT_STAGE];

/** Why the guest walk faulted (a finer reading of the error code, for display and tests). */
export const GUEST_FAULT = {
  NONE: 0,
  NOT_PRESENT: 1,
  RESERVED_BIT: 2,
  ACCESS_RIGHTS: 3,
} as const;
export type GuestFault = (typeof GUEST_FAULT)[keyof typeof GUEST_FAULT];

/**
 * The outcome of one walk, written in place by the walker (one object reused across walks, so the
 * hot path allocates nothing). Read it before the next walk.
 */
export class WalkResult {
  /** The translation succeeded. */
  ok = false;
  /** Physical address of the access (guest-physical for a one-dimensional walk of a guest). */
  pa = 0;
  /** Page size in bytes: 4 KiB, 2 MiB, 4 MiB or 1 GiB. */
  pageSize = 0;
  /** Effective permissions in ACC form (`PAGE_ACCESS`). */
  pageAccess = 0;
  /** Protection key of the leaf (0 unless CR4.PKE or CR4.PKS is in effect in IA-32e paging). */
  pkey = 0;
  /** Raw leaf entry. */
  leafLo = 0;
  leafHi = 0;
  /** Level of the leaf (1 = PTE) or of the entry that faulted. */
  level = 0;
  /** Where the walk stopped when it failed. */
  stage: FaultStage = FAULT_STAGE.NONE;
  guestFault: GuestFault = GUEST_FAULT.NONE;
  /** #PF error code when `stage` is GUEST. */
  errorCode = 0;
  /** Paging-structure entries read by this walk (including stage-2 reads when two-dimensional). */
  memoryReads = 0;
  /** Entries whose accessed or dirty flag this walk wrote. */
  memoryWrites = 0;

  reset(): void {
    this.ok = false;
    this.pa = 0;
    this.pageSize = 0;
    this.pageAccess = 0;
    this.pkey = 0;
    this.leafLo = 0;
    this.leafHi = 0;
    this.level = 0;
    this.stage = FAULT_STAGE.NONE;
    this.guestFault = GUEST_FAULT.NONE;
    this.errorCode = 0;
    this.memoryReads = 0;
    this.memoryWrites = 0;
  }
}

/** Maximum entries one walk reads: 5 levels (PAE adds its PDPTE register as a pseudo-entry). */
export const WALK_TRACE_CAPACITY = 6;

/**
 * Every entry a walk read, in order (the shape of KVM's `struct guest_walker`): the address it
 * was read from (-1 for a PAE PDPTE register), its value and its level. Pass one to the walker
 * only when you want it; a walk without a trace does no recording.
 */
export class WalkTrace {
  count = 0;
  readonly address: Float64Array = new Float64Array(WALK_TRACE_CAPACITY);
  readonly lo: Uint32Array = new Uint32Array(WALK_TRACE_CAPACITY);
  readonly hi: Uint32Array = new Uint32Array(WALK_TRACE_CAPACITY);
  readonly level: Uint8Array = new Uint8Array(WALK_TRACE_CAPACITY);

  record(address: number, lo: number, hi: number, level: number): void {
    const i = this.count++;
    this.address[i] = address;
    this.lo[i] = lo;
    this.hi[i] = hi;
    this.level[i] = level;
  }

  /** The recorded entries as objects (for display and tests, not hot paths). */
  entries(): { address: number; lo: number; hi: number; level: number }[] {
    const out = [];
    for (let i = 0; i < this.count; i++) {
      out.push({ address: this.address[i]!, lo: this.lo[i]!, hi: this.hi[i]!, level: this.level[i]! });
    }
    return out;
  }
}
