import { ACCESS } from "./access";
import { CR0 } from "./cr0";
import { CR4 } from "./cr4";

/**
 * A tagged, set-associative TLB: the translations a logical processor may cache and the operations
 * that architecturally invalidate them.
 *
 * Sources: SDM Vol. 3A 4.10 ("Caching Translation Information": 4.10.1 PCIDs, 4.10.2 TLBs,
 * 4.10.4 invalidation) and Vol. 3C 28.3 ("Caching Translation Information" under VMX; 29.4 in
 * recent editions): linear mappings (tagged VPID + PCID, EPT not in use), guest-physical mappings
 * (tagged EP4TA) and combined mappings (tagged VPID + PCID + EP4TA).
 *
 * What is modelled: the TLB proper (final translations). The paging-structure caches (SDM 4.10.3)
 * are not. Each mapping is cached at its own page size (a processor may instead split a large
 * page into smaller entries, SDM 4.10.2.3; the invalidation rules below are written so that
 * either choice gives the same architectural result). Where the SDM lets the processor invalidate
 * more than required, this model invalidates exactly what is required unless a method says
 * otherwise.
 *
 * Hot paths (`lookup`, `lookupGuestPhysical`, `insert*`) use typed arrays only and allocate
 * nothing. A hit returns the index of the entry; read it with the accessors (`physicalAddress`,
 * `pageAccess`, …) before the next insert or invalidation.
 */

/** The three kinds of cached mapping (SDM 3C 28.3.1), used for counters and `entries()`. */
export const TLB_MAPPING = {
  /** Linear page → physical frame, derived from the paging structures when EPT is not in use. */
  LINEAR: 0,
  /** Linear page → host-physical frame, derived from guest paging structures and EPT together. */
  COMBINED: 1,
  /** Guest-physical page → host-physical frame, derived from the EPT paging structures. */
  GUEST_PHYSICAL: 2,
} as const;
export type TlbMapping = (typeof TLB_MAPPING)[keyof typeof TLB_MAPPING];

/** Returned by the lookups when no usable entry exists. */
export const TLB_MISS = -1;

/** Flags of an inserted translation. */
export const TLB_FLAG = {
  /**
   * The leaf had G = 1 and CR4.PGE was 1 (SDM 4.10.2.4). A global linear or combined mapping is
   * usable with any PCID (same VPID and EP4TA). Ignored for guest-physical mappings.
   */
  GLOBAL: 1,
  /**
   * The dirty flag the access would set is already 1 (the guest leaf's D and, for a combined or
   * guest-physical mapping with EPT A/D enabled, the EPT leaf's D; pass it when EPT A/D is off).
   * A write never uses an entry cached with D = 0: the processor must go to memory to set D
   * (SDM 4.8, 4.10.2.2), so the lookup misses and the caller walks again.
   */
  DIRTY: 2,
} as const;

/** The architectural operations that invalidate entries, one counter pair each in `stats()`. */
export const TLB_INVALIDATION = {
  MOV_CR3: 0,
  INVLPG: 1,
  INVPCID_INDIVIDUAL_ADDRESS: 2,
  INVPCID_SINGLE_CONTEXT: 3,
  INVPCID_ALL_CONTEXTS_INCLUDING_GLOBALS: 4,
  INVPCID_ALL_CONTEXTS: 5,
  INVVPID_INDIVIDUAL_ADDRESS: 6,
  INVVPID_SINGLE_CONTEXT: 7,
  INVVPID_ALL_CONTEXTS: 8,
  INVVPID_SINGLE_CONTEXT_RETAINING_GLOBALS: 9,
  INVEPT_SINGLE_CONTEXT: 10,
  INVEPT_ALL_CONTEXTS: 11,
  MOV_CR0: 12,
  MOV_CR4: 13,
  TASK_SWITCH: 14,
  VM_TRANSITION: 15,
  PAGE_FAULT: 16,
  EPT_VIOLATION: 17,
  RESET: 18,
  /** The processor dropped entries of its own accord (SDM 4.10.2: it may invalidate any entry at any time). */
  EVICTION: 19,
} as const;
export type TlbInvalidation = (typeof TLB_INVALIDATION)[keyof typeof TLB_INVALIDATION];

/** Names of the invalidations as they appear in `stats().invalidations`, indexed by kind. */
export const TLB_INVALIDATION_NAMES = [
  "movCr3",
  "invlpg",
  "invpcidIndividualAddress",
  "invpcidSingleContext",
  "invpcidAllContextsIncludingGlobals",
  "invpcidAllContexts",
  "invvpidIndividualAddress",
  "invvpidSingleContext",
  "invvpidAllContexts",
  "invvpidSingleContextRetainingGlobals",
  "inveptSingleContext",
  "inveptAllContexts",
  "movCr0",
  "movCr4",
  "taskSwitch",
  "vmTransition",
  "pageFault",
  "eptViolation",
  "reset",
  "eviction",
] as const;
export type TlbInvalidationName = (typeof TLB_INVALIDATION_NAMES)[number];

/** INVPCID types (SDM 4.10.4.1; Vol. 2 INVPCID). */
export const INVPCID_TYPE = {
  INDIVIDUAL_ADDRESS: 0,
  SINGLE_CONTEXT: 1,
  ALL_CONTEXTS_INCLUDING_GLOBALS: 2,
  ALL_CONTEXTS: 3,
} as const;

/** INVVPID types (SDM 3C 28.3.3.1). */
export const INVVPID_TYPE = {
  INDIVIDUAL_ADDRESS: 0,
  SINGLE_CONTEXT: 1,
  ALL_CONTEXTS: 2,
  SINGLE_CONTEXT_RETAINING_GLOBALS: 3,
} as const;

/** INVEPT types (SDM 3C 28.3.3.1; type 0 is not defined). */
export const INVEPT_TYPE = {
  SINGLE_CONTEXT: 1,
  ALL_CONTEXTS: 2,
} as const;

export interface TlbOptions {
  /** Sets for linear and combined mappings (a power of two). Default 64. */
  readonly sets?: number;
  /** Ways per set for linear and combined mappings. Default 8. */
  readonly ways?: number;
  /** Sets for guest-physical mappings (a power of two). Default: `sets`. */
  readonly guestPhysicalSets?: number;
  /** Ways per set for guest-physical mappings. Default: `ways`. */
  readonly guestPhysicalWays?: number;
}

/** One cached translation as a plain object (for display and tests, not hot paths). */
export interface TlbEntry {
  readonly mapping: TlbMapping;
  readonly vpid: number;
  /** PCID of a non-global entry; null for global and guest-physical entries. */
  readonly pcid: number | null;
  /** EP4TA tag (`eptTagOf`); 0 for a linear mapping. */
  readonly eptTag: number;
  /** Linear (or guest-physical) address divided by the page size (exact: below 2^52). */
  readonly pageNumber: number;
  readonly pageSize: number;
  /** Physical (host-physical under EPT) address of the first byte of the frame. */
  readonly frame: number;
  readonly pageAccess: number;
  readonly pkey: number;
  readonly global: boolean;
  readonly dirty: boolean;
}

export interface TlbKindCounters {
  linear: number;
  combined: number;
  guestPhysical: number;
}

export interface TlbStats {
  readonly sets: number;
  readonly ways: number;
  readonly guestPhysicalSets: number;
  readonly guestPhysicalWays: number;
  /** Entries now valid, per kind. */
  readonly entries: TlbKindCounters;
  readonly hits: TlbKindCounters;
  readonly misses: TlbKindCounters;
  readonly inserts: TlbKindCounters;
  /** Valid entries replaced to make room, counted by the kind of the entry evicted. */
  readonly evictions: TlbKindCounters;
  /** Per operation: how many times it ran and how many entries it dropped. */
  readonly invalidations: Record<TlbInvalidationName, { operations: number; entries: number }>;
}

// Entry key (Int32Array, non-negative when valid): PCID in bits 11:0 (0 for global and
// guest-physical entries, whose PCID no rule consults), VPID in bits 27:12, page-size index in
// bits 29:28, GLOBAL in bit 30. Guest-physical entries live in their own region of the arrays.
const KEY_INVALID = -1;
/** Never a key (not even KEY_INVALID): disables the global comparison for guest-physical lookups. */
const KEY_NONE = -2;
const KEY_PCID = 0xfff;
const KEY_VPID_SHIFT = 12;
const KEY_VPID = 0xffff << KEY_VPID_SHIFT;
const KEY_SIZE_SHIFT = 28;
const KEY_GLOBAL = 1 << 30;
/** A (mask, value) pair that no valid key satisfies, for predicates with one alternative. */
const NEVER_MASK = 0;
const NEVER_VALUE = 1;

const ATTR_ACCESS = 0xf;
const ATTR_DIRTY = 0x10;

// Page sizes by index: shift, bytes, and the weight of the high address word in the page number.
const SIZE_COUNT = 4;
const SIZE_SHIFT = [12, 21, 22, 30] as const;
const SIZE_BYTES = [4096, 2 ** 21, 2 ** 22, 2 ** 30] as const;
const SIZE_HI_WEIGHT = [2 ** 20, 2 ** 11, 2 ** 10, 2 ** 2] as const;
/** Spreads the page sizes over different sets for the same address range. */
const SIZE_SALT = [0, 0x2d, 0x5a, 0x77] as const;

function sizeIndexOf(pageSize: number): number {
  switch (pageSize) {
    case 4096:
      return 0;
    case 2 ** 21:
      return 1;
    case 2 ** 22:
      return 2;
    case 2 ** 30:
      return 3;
    default:
      throw new RangeError(`unsupported page size ${pageSize} (4 KiB, 2 MiB, 4 MiB or 1 GiB)`);
  }
}

/** Throws unless `value` is an integer in 0..max, where max is 2^k - 1. */
function checkRange(name: string, value: number, max: number): void {
  if ((value & max) !== value) throw new RangeError(`${name} ${value} is outside 0..${max}`);
}

function checkEptTag(value: number, allowZero: boolean): void {
  if (!(value >= (allowZero ? 0 : 1) && value <= Number.MAX_SAFE_INTEGER && Math.floor(value) === value)) {
    throw new RangeError(
      `EPT tag ${value} must be a ${allowZero ? "non-negative" : "positive"} safe integer`,
    );
  }
}

function checkGeometry(name: string, sets: number, ways: number): void {
  if (!Number.isInteger(sets) || sets < 1 || sets > 1 << 20 || (sets & (sets - 1)) !== 0) {
    throw new RangeError(`${name} sets must be a power of two from 1 to 2^20, got ${sets}`);
  }
  if (!Number.isInteger(ways) || ways < 1 || ways > 256) {
    throw new RangeError(`${name} ways must be an integer from 1 to 256, got ${ways}`);
  }
}

/**
 * The EPT tag of an EPTP: its EP4TA (bits 51:12, the address of the EPT PML4 or PML5 table; SDM 3C
 * 28.3.1) as a page number plus one, so that 0 stays free to mean "EPT not in use".
 */
export function eptTagOf(eptpLo: number, eptpHi: number): number {
  return (eptpHi & 0xfffff) * 2 ** 20 + (eptpLo >>> 12) + 1;
}

/**
 * The TLB. Linear and combined mappings share one set-associative region (`sets` × `ways`);
 * guest-physical mappings have their own (`guestPhysicalSets` × `guestPhysicalWays`). The set is
 * chosen by the page number at the entry's page size (like a virtually indexed TLB, so the tags do
 * not move an entry between sets and a global entry is found in the same set for every PCID);
 * within a set the least recently used way is replaced, by a use counter.
 *
 * Tags: `vpid` is 0 outside VMX non-root operation or when "enable VPID" is 0 (SDM 3C 28.1);
 * `pcid` is 0 when CR4.PCIDE = 0 (SDM 4.10.1); `eptTag` is 0 when EPT is not in use, otherwise
 * the EP4TA tag from `eptTagOf`.
 */
export class Tlb {
  readonly sets: number;
  readonly ways: number;
  readonly guestPhysicalSets: number;
  readonly guestPhysicalWays: number;
  /** Entries for linear and combined mappings; guest-physical ones follow at this index. */
  readonly linearCapacity: number;
  readonly capacity: number;

  readonly #key: Int32Array;
  /** Page number at the entry's size (address >> shift), below 2^52. */
  readonly #page: Float64Array;
  /** EP4TA tag; 0 for linear mappings. */
  readonly #space: Float64Array;
  /** Physical address of the frame's first byte. */
  readonly #frame: Float64Array;
  /** Permissions in bits 3:0, DIRTY in bit 4. */
  readonly #attr: Uint8Array;
  readonly #pkey: Uint8Array;
  /** Last use (LRU): a value of `#clock`. */
  readonly #stamp: Float64Array;
  #clock = 0;
  /** Valid entries per region (0 linear/combined, 1 guest-physical) and size: region * 4 + size. */
  readonly #sizeCount = new Int32Array(2 * SIZE_COUNT);
  /** Bit s set when region 0 holds an entry of size index s. */
  #linearSizes = 0;
  #guestPhysicalSizes = 0;

  readonly #hits = new Float64Array(3);
  readonly #misses = new Float64Array(3);
  readonly #inserts = new Float64Array(3);
  readonly #evictions = new Float64Array(3);
  readonly #invalidationOps = new Float64Array(TLB_INVALIDATION_NAMES.length);
  readonly #invalidationEntries = new Float64Array(TLB_INVALIDATION_NAMES.length);

  constructor(options: TlbOptions = {}) {
    const sets = options.sets ?? 64;
    const ways = options.ways ?? 8;
    const gpSets = options.guestPhysicalSets ?? sets;
    const gpWays = options.guestPhysicalWays ?? ways;
    checkGeometry("linear", sets, ways);
    checkGeometry("guest-physical", gpSets, gpWays);
    this.sets = sets;
    this.ways = ways;
    this.guestPhysicalSets = gpSets;
    this.guestPhysicalWays = gpWays;
    this.linearCapacity = sets * ways;
    this.capacity = this.linearCapacity + gpSets * gpWays;
    this.#key = new Int32Array(this.capacity).fill(KEY_INVALID);
    this.#page = new Float64Array(this.capacity);
    this.#space = new Float64Array(this.capacity);
    this.#frame = new Float64Array(this.capacity);
    this.#attr = new Uint8Array(this.capacity);
    this.#pkey = new Uint8Array(this.capacity);
    this.#stamp = new Float64Array(this.capacity);
  }

  // ---------------------------------------------------------------------------------------------
  // Lookups and inserts (hot paths).

  /**
   * Looks up the translation of linear address `(laHi << 32) | laLo` for an access (`ACCESS`
   * bits) in context (vpid, pcid, eptTag). Returns the entry index or `TLB_MISS`.
   *
   * Usable entries (SDM 3C 28.3.2; SDM 4.10.2.4): linear mappings when eptTag = 0, combined
   * mappings with that EP4TA otherwise; tagged with the current VPID and either the current PCID
   * or global (any PCID). Every cached page size is probed. A write skips entries cached with
   * D = 0 (SDM 4.8). The caller checks the access rights of the hit (`pageAccess`, `pkey`): a TLB
   * entry may deny an access the paging structures now allow (SDM 4.10.4.3).
   */
  lookup(vpid: number, pcid: number, eptTag: number, laLo: number, laHi: number, access: number): number {
    const kind = eptTag === 0 ? TLB_MAPPING.LINEAR : TLB_MAPPING.COMBINED;
    const vpidBits = (vpid & 0xffff) << KEY_VPID_SHIFT;
    const i = this.#find(
      0,
      this.sets - 1,
      this.ways,
      this.#linearSizes,
      vpidBits | (pcid & KEY_PCID),
      KEY_GLOBAL | vpidBits,
      eptTag,
      laLo,
      laHi,
      (access & ACCESS.WRITE) !== 0,
    );
    if (i < 0) {
      this.#misses[kind]!++;
      return TLB_MISS;
    }
    this.#hits[kind]!++;
    this.#stamp[i] = ++this.#clock;
    return i;
  }

  /**
   * Looks up a guest-physical mapping (SDM 3C 28.3.2: usable when EPT is in use, for accesses
   * that use guest-physical addresses, tagged with the current EP4TA). `access` matters only for
   * the dirty rule, as in `lookup`.
   */
  lookupGuestPhysical(eptTag: number, gpaLo: number, gpaHi: number, access: number): number {
    const i = this.#find(
      this.linearCapacity,
      this.guestPhysicalSets - 1,
      this.guestPhysicalWays,
      this.#guestPhysicalSizes,
      0,
      KEY_NONE,
      eptTag,
      gpaLo,
      gpaHi,
      (access & ACCESS.WRITE) !== 0,
    );
    if (i < 0) {
      this.#misses[TLB_MAPPING.GUEST_PHYSICAL]!++;
      return TLB_MISS;
    }
    this.#hits[TLB_MAPPING.GUEST_PHYSICAL]!++;
    this.#stamp[i] = ++this.#clock;
    return i;
  }

  #find(
    base: number,
    setMask: number,
    ways: number,
    sizes: number,
    context: number,
    globalContext: number,
    space: number,
    lo: number,
    hi: number,
    write: boolean,
  ): number {
    const key = this.#key;
    const pages = this.#page;
    const spaces = this.#space;
    for (let s = 0; s < SIZE_COUNT; s++) {
      if ((sizes & (1 << s)) === 0) continue;
      const shift = SIZE_SHIFT[s]!;
      const page = hi * SIZE_HI_WEIGHT[s]! + (lo >>> shift);
      const set = (((lo >>> shift) | (hi << (32 - shift))) ^ SIZE_SALT[s]!) & setMask;
      const sizeBits = s << KEY_SIZE_SHIFT;
      const exact = sizeBits | context;
      const global = globalContext === KEY_NONE ? KEY_NONE : sizeBits | globalContext;
      const start = base + set * ways;
      const end = start + ways;
      for (let i = start; i < end; i++) {
        const k = key[i]!;
        if ((k === exact || k === global) && pages[i] === page && spaces[i] === space) {
          if (write && (this.#attr[i]! & ATTR_DIRTY) === 0) continue; // SDM 4.8: D must be set
          return i;
        }
      }
    }
    return TLB_MISS;
  }

  /**
   * Caches a linear mapping (eptTag = 0) or combined mapping (eptTag > 0) for the page of size
   * `pageSize` containing linear address `(laHi << 32) | laLo`. `pa` is the physical address of
   * any byte of the frame (e.g. `WalkResult.pa`); `pageAccess` is in ACC form (`PAGE_ACCESS`);
   * `flags` are `TLB_FLAG` bits. A combined mapping's size is the smaller of the guest and EPT page
   * sizes. The processor caches only translations whose walk set every accessed flag (SDM
   * 4.10.2.3); that is the caller's to ensure. An entry with the same tags and page is updated in
   * place. Returns the entry index.
   */
  insert(
    vpid: number,
    pcid: number,
    eptTag: number,
    laLo: number,
    laHi: number,
    pageSize: number,
    pa: number,
    pageAccess: number,
    pkey: number,
    flags: number,
  ): number {
    checkRange("VPID", vpid, 0xffff);
    checkRange("PCID", pcid, 0xfff);
    checkEptTag(eptTag, true);
    const s = sizeIndexOf(pageSize);
    const global = (flags & TLB_FLAG.GLOBAL) !== 0;
    const key = (s << KEY_SIZE_SHIFT) | (vpid << KEY_VPID_SHIFT) | (global ? KEY_GLOBAL : pcid);
    const kind = eptTag === 0 ? TLB_MAPPING.LINEAR : TLB_MAPPING.COMBINED;
    return this.#store(0, kind, s, key, eptTag, laLo, laHi, pa, pageAccess, pkey, flags);
  }

  /**
   * Caches a guest-physical mapping (EPT only, SDM 3C 28.3.1) for the page containing
   * `(gpaHi << 32) | gpaLo`. `eptAccess` holds the EPT leaf's permissions: bits 2:0 as in the
   * entry (read, write, execute) and bit 3 for user-mode execute (EPT bit 10, with mode-based
   * execute control). Pages are 4 KiB, 2 MiB or 1 GiB.
   */
  insertGuestPhysical(
    eptTag: number,
    gpaLo: number,
    gpaHi: number,
    pageSize: number,
    hpa: number,
    eptAccess: number,
    flags: number,
  ): number {
    checkEptTag(eptTag, false);
    const s = sizeIndexOf(pageSize);
    if (s === 2) throw new RangeError("EPT has no 4-MiB pages");
    const key = s << KEY_SIZE_SHIFT;
    return this.#store(
      this.linearCapacity,
      TLB_MAPPING.GUEST_PHYSICAL,
      s,
      key,
      eptTag,
      gpaLo,
      gpaHi,
      hpa,
      eptAccess,
      0,
      flags & TLB_FLAG.DIRTY,
    );
  }

  #store(
    base: number,
    kind: TlbMapping,
    s: number,
    key: number,
    space: number,
    lo: number,
    hi: number,
    pa: number,
    permissions: number,
    pkey: number,
    flags: number,
  ): number {
    const region = base === 0 ? 0 : 1;
    const ways = region === 0 ? this.ways : this.guestPhysicalWays;
    const setMask = (region === 0 ? this.sets : this.guestPhysicalSets) - 1;
    const shift = SIZE_SHIFT[s]!;
    const page = hi * SIZE_HI_WEIGHT[s]! + (lo >>> shift);
    const set = (((lo >>> shift) | (hi << (32 - shift))) ^ SIZE_SALT[s]!) & setMask;
    const start = base + set * ways;
    const keys = this.#key;
    const pages = this.#page;
    const spaces = this.#space;
    const stamps = this.#stamp;

    // The same translation already cached: refresh it. Otherwise an empty way, else the LRU way
    // (an empty way has stamp -1, older than any use).
    let victim = start;
    let oldest = Number.POSITIVE_INFINITY;
    let i = start;
    for (const end = start + ways; i < end; i++) {
      const k = keys[i]!;
      if (k === key && pages[i] === page && spaces[i] === space) break;
      const age = k === KEY_INVALID ? -1 : stamps[i]!;
      if (age < oldest) {
        victim = i;
        oldest = age;
      }
    }
    if (i === start + ways) {
      i = victim;
      const old = keys[i]!;
      if (old !== KEY_INVALID) {
        const oldKind = region === 1 ? TLB_MAPPING.GUEST_PHYSICAL : this.#kindAt(i);
        this.#evictions[oldKind]!++;
        this.#forget(i, old);
      }
      keys[i] = key;
      pages[i] = page;
      spaces[i] = space;
      this.#remember(region, s);
    }
    const bytes = SIZE_BYTES[s]!;
    this.#frame[i] = Math.floor(pa / bytes) * bytes;
    this.#attr[i] = (permissions & ATTR_ACCESS) | ((flags & TLB_FLAG.DIRTY) !== 0 ? ATTR_DIRTY : 0);
    this.#pkey[i] = pkey & 0xf;
    this.#stamp[i] = ++this.#clock;
    this.#inserts[kind]!++;
    return i;
  }

  #kindAt(i: number): TlbMapping {
    if (i >= this.linearCapacity) return TLB_MAPPING.GUEST_PHYSICAL;
    return this.#space[i] === 0 ? TLB_MAPPING.LINEAR : TLB_MAPPING.COMBINED;
  }

  #remember(region: number, s: number): void {
    if (this.#sizeCount[region * SIZE_COUNT + s]!++ === 0) {
      if (region === 0) this.#linearSizes |= 1 << s;
      else this.#guestPhysicalSizes |= 1 << s;
    }
  }

  /** Marks entry i (with key `key`) invalid and updates the per-size counts. */
  #forget(i: number, key: number): void {
    const region = i < this.linearCapacity ? 0 : 1;
    const s = (key >>> KEY_SIZE_SHIFT) & 3;
    this.#key[i] = KEY_INVALID;
    if (--this.#sizeCount[region * SIZE_COUNT + s]! === 0) {
      if (region === 0) this.#linearSizes &= ~(1 << s);
      else this.#guestPhysicalSizes &= ~(1 << s);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Reading an entry returned by a lookup or insert.

  /** Physical address of linear (or guest-physical) address `lo` within entry i's page. */
  physicalAddress(i: number, lo: number): number {
    const s = (this.#key[i]! >>> KEY_SIZE_SHIFT) & 3;
    return this.#frame[i]! + (lo & (SIZE_BYTES[s]! - 1));
  }

  /** Physical address of the first byte of entry i's frame. */
  frameAddress(i: number): number {
    return this.#frame[i]!;
  }

  pageSize(i: number): number {
    return SIZE_BYTES[(this.#key[i]! >>> KEY_SIZE_SHIFT) & 3]!;
  }

  /** ACC form (`PAGE_ACCESS`) for linear/combined entries; EPT permissions for guest-physical. */
  pageAccess(i: number): number {
    return this.#attr[i]! & ATTR_ACCESS;
  }

  protectionKey(i: number): number {
    return this.#pkey[i]!;
  }

  isGlobal(i: number): boolean {
    return (this.#key[i]! & KEY_GLOBAL) !== 0;
  }

  isDirty(i: number): boolean {
    return (this.#attr[i]! & ATTR_DIRTY) !== 0;
  }

  /** Valid entries now held (both regions). */
  get size(): number {
    let n = 0;
    for (let i = 0; i < 2 * SIZE_COUNT; i++) n += this.#sizeCount[i]!;
    return n;
  }

  /** Every valid entry as a plain object, in index order (display and tests). */
  entries(): TlbEntry[] {
    const out: TlbEntry[] = [];
    for (let i = 0; i < this.capacity; i++) {
      const k = this.#key[i]!;
      if (k === KEY_INVALID) continue;
      const mapping = this.#kindAt(i);
      const s = (k >>> KEY_SIZE_SHIFT) & 3;
      const global = (k & KEY_GLOBAL) !== 0;
      out.push({
        mapping,
        vpid: (k & KEY_VPID) >>> KEY_VPID_SHIFT,
        pcid: global || mapping === TLB_MAPPING.GUEST_PHYSICAL ? null : k & KEY_PCID,
        eptTag: this.#space[i]!,
        pageNumber: this.#page[i]!,
        pageSize: SIZE_BYTES[s]!,
        frame: this.#frame[i]!,
        pageAccess: this.#attr[i]! & ATTR_ACCESS,
        pkey: this.#pkey[i]!,
        global,
        dirty: (this.#attr[i]! & ATTR_DIRTY) !== 0,
      });
    }
    return out;
  }

  // ---------------------------------------------------------------------------------------------
  // Architectural invalidations. Each returns how many entries it dropped.
  //
  // SDM 3C 28.3.3.1: operations that invalidate TLB entries independently of VMX (MOV to CR3/CR0/
  // CR4, INVLPG, INVPCID, task switches, page faults) invalidate linear and combined mappings; they
  // are required to do so only for the current VPID, and for combined mappings for every EP4TA.
  // So these methods take the current VPID and never filter on the EPT tag.

  /**
   * MOV to CR3 with source operand `(srcHi << 32) | srcLo` (SDM 4.10.4.1):
   * - CR4.PCIDE = 0: every non-global entry of PCID 000H.
   * - CR4.PCIDE = 1, bit 63 clear: every non-global entry of the PCID in bits 11:0 of the source.
   * - CR4.PCIDE = 1, bit 63 set: nothing is required, and nothing is dropped.
   */
  movToCr3(vpid: number, pcide: boolean, srcLo: number, srcHi: number): number {
    let dropped = 0;
    if (!pcide || (srcHi & 0x80000000) === 0) {
      const pcid = pcide ? srcLo & KEY_PCID : 0;
      dropped = this.#dropAll(
        KEY_GLOBAL | KEY_VPID | KEY_PCID,
        this.#vpidBits(vpid) | pcid,
        NEVER_MASK,
        NEVER_VALUE,
      );
    }
    return this.#count(TLB_INVALIDATION.MOV_CR3, dropped);
  }

  /**
   * A task switch that changes CR3 (SDM 4.10.4.1): every non-global entry of PCID 000H (task
   * switches cannot happen with CR4.PCIDE = 1, which needs IA-32e mode).
   */
  taskSwitch(vpid: number): number {
    const dropped = this.#dropAll(
      KEY_GLOBAL | KEY_VPID | KEY_PCID,
      this.#vpidBits(vpid),
      NEVER_MASK,
      NEVER_VALUE,
    );
    return this.#count(TLB_INVALIDATION.TASK_SWITCH, dropped);
  }

  /**
   * INVLPG (SDM 4.10.4.1): entries for the page number of the address that belong to the current
   * PCID, and global entries for that page number whatever their PCID. Entries of every page size
   * that covers the address go (for a large page cached as smaller entries, all of them, SDM
   * 4.10.2.3).
   */
  invlpg(vpid: number, pcid: number, laLo: number, laHi: number): number {
    return this.#count(TLB_INVALIDATION.INVLPG, this.#dropPageOfCurrentPcid(vpid, pcid, laLo, laHi));
  }

  /**
   * INVPCID (SDM 4.10.4.1) in the current VPID. The instruction's checks (#GP on an invalid type,
   * a PCID above 0FFFH with type 0/1, a non-canonical address with type 0) are the caller's.
   * - 0 individual-address: non-global entries for that PCID and page number.
   * - 1 single-context: every non-global entry for that PCID.
   * - 2 all-context including globals: every entry, all PCIDs, global ones included.
   * - 3 all-context: every non-global entry, all PCIDs.
   */
  invpcid(type: number, vpid: number, pcid: number, laLo = 0, laHi = 0): number {
    const v = this.#vpidBits(vpid);
    const exact = KEY_GLOBAL | KEY_VPID | KEY_PCID;
    switch (type) {
      case INVPCID_TYPE.INDIVIDUAL_ADDRESS:
        return this.#count(
          TLB_INVALIDATION.INVPCID_INDIVIDUAL_ADDRESS,
          this.#dropAt(laLo, laHi, exact, v | (pcid & KEY_PCID), NEVER_MASK, NEVER_VALUE),
        );
      case INVPCID_TYPE.SINGLE_CONTEXT:
        return this.#count(
          TLB_INVALIDATION.INVPCID_SINGLE_CONTEXT,
          this.#dropAll(exact, v | (pcid & KEY_PCID), NEVER_MASK, NEVER_VALUE),
        );
      case INVPCID_TYPE.ALL_CONTEXTS_INCLUDING_GLOBALS:
        return this.#count(
          TLB_INVALIDATION.INVPCID_ALL_CONTEXTS_INCLUDING_GLOBALS,
          this.#dropAll(KEY_VPID, v, NEVER_MASK, NEVER_VALUE),
        );
      case INVPCID_TYPE.ALL_CONTEXTS:
        return this.#count(
          TLB_INVALIDATION.INVPCID_ALL_CONTEXTS,
          this.#dropAll(KEY_GLOBAL | KEY_VPID, v, NEVER_MASK, NEVER_VALUE),
        );
      default:
        throw new RangeError(`INVPCID type ${type} is not defined (0-3)`);
    }
  }

  /**
   * INVVPID (SDM 3C 28.3.3.1): linear and combined mappings, for every PCID and every EP4TA.
   * The instruction's checks (VMfail for VPID 0 with types 0/1/3, a non-canonical address with
   * type 0, an unsupported type) are the caller's.
   * - 0 individual-address: that VPID's entries that translate the address.
   * - 1 single-context: every entry of that VPID.
   * - 2 all-context: every entry of every VPID except 0000H.
   * - 3 single-context retaining globals: every non-global entry of that VPID.
   */
  invvpid(type: number, vpid: number, laLo = 0, laHi = 0): number {
    const v = this.#vpidBits(vpid);
    switch (type) {
      case INVVPID_TYPE.INDIVIDUAL_ADDRESS:
        return this.#count(
          TLB_INVALIDATION.INVVPID_INDIVIDUAL_ADDRESS,
          this.#dropAt(laLo, laHi, KEY_VPID, v, NEVER_MASK, NEVER_VALUE),
        );
      case INVVPID_TYPE.SINGLE_CONTEXT:
        return this.#count(
          TLB_INVALIDATION.INVVPID_SINGLE_CONTEXT,
          this.#dropAll(KEY_VPID, v, NEVER_MASK, NEVER_VALUE),
        );
      case INVVPID_TYPE.ALL_CONTEXTS: {
        let dropped = 0;
        if (this.#linearSizes !== 0)
          for (let i = 0; i < this.linearCapacity; i++) {
            const k = this.#key[i]!;
            if (k !== KEY_INVALID && (k & KEY_VPID) !== 0) {
              this.#forget(i, k);
              dropped++;
            }
          }
        return this.#count(TLB_INVALIDATION.INVVPID_ALL_CONTEXTS, dropped);
      }
      case INVVPID_TYPE.SINGLE_CONTEXT_RETAINING_GLOBALS:
        return this.#count(
          TLB_INVALIDATION.INVVPID_SINGLE_CONTEXT_RETAINING_GLOBALS,
          this.#dropAll(KEY_GLOBAL | KEY_VPID, v, NEVER_MASK, NEVER_VALUE),
        );
      default:
        throw new RangeError(`INVVPID type ${type} is not defined (0-3)`);
    }
  }

  /**
   * INVEPT (SDM 3C 28.3.3.1): guest-physical and combined mappings; linear mappings stay.
   * - 1 single-context: those of the EP4TA `eptTag`, for every VPID and PCID.
   * - 2 all-context: those of every EP4TA.
   */
  invept(type: number, eptTag = 0): number {
    let dropped = 0;
    let kind: TlbInvalidation;
    if (type === INVEPT_TYPE.SINGLE_CONTEXT) {
      checkEptTag(eptTag, false);
      kind = TLB_INVALIDATION.INVEPT_SINGLE_CONTEXT;
    } else if (type === INVEPT_TYPE.ALL_CONTEXTS) {
      kind = TLB_INVALIDATION.INVEPT_ALL_CONTEXTS;
    } else {
      throw new RangeError(`INVEPT type ${type} is not defined (1 or 2)`);
    }
    const all = type === INVEPT_TYPE.ALL_CONTEXTS;
    const empty = this.#linearSizes === 0 && this.#guestPhysicalSizes === 0;
    for (let i = 0, n = empty ? 0 : this.capacity; i < n; i++) {
      const k = this.#key[i]!;
      if (k === KEY_INVALID) continue;
      const space = this.#space[i]!;
      if (all ? space !== 0 : space === eptTag) {
        this.#forget(i, k);
        dropped++;
      }
    }
    return this.#count(kind, dropped);
  }

  /**
   * MOV to CR0 (SDM 4.10.4.1): clearing CR0.PG (1 → 0) invalidates every entry, global ones
   * included, for all PCIDs. No other CR0 change is required to invalidate anything (changes of
   * CD/NW may, and CR0.WP is applied when the entry is used, so WP changes drop nothing here).
   */
  movToCr0(vpid: number, oldCr0: number, newCr0: number): number {
    let dropped = 0;
    if ((oldCr0 & CR0.PG) !== 0 && (newCr0 & CR0.PG) === 0) {
      dropped = this.#dropAll(KEY_VPID, this.#vpidBits(vpid), NEVER_MASK, NEVER_VALUE);
    }
    return this.#count(TLB_INVALIDATION.MOV_CR0, dropped);
  }

  /**
   * MOV to CR4 (SDM 4.10.4.1):
   * - a change of CR4.PGE, or CR4.PCIDE 1 → 0: every entry, global ones included, for all PCIDs;
   * - otherwise a change of CR4.PAE, or CR4.SMEP 0 → 1: every entry for the current PCID. Here
   *   that also drops the VPID's global entries: they are usable with the current PCID, the model
   *   does not keep a global entry's PCID, and dropping more is always allowed.
   * Other CR4 bits (PSE, SMAP, PKE, PKS, LA57, …) are not in the list (LA57 cannot change while
   * IA-32e paging is on; PSE and PAE changes of 32-bit paging go through the PAE rule only).
   */
  movToCr4(vpid: number, pcid: number, oldCr4: number, newCr4: number): number {
    const changed = oldCr4 ^ newCr4;
    const v = this.#vpidBits(vpid);
    let dropped = 0;
    if ((changed & CR4.PGE) !== 0 || ((oldCr4 & CR4.PCIDE) !== 0 && (newCr4 & CR4.PCIDE) === 0)) {
      dropped = this.#dropAll(KEY_VPID, v, NEVER_MASK, NEVER_VALUE);
    } else if ((changed & CR4.PAE) !== 0 || ((newCr4 & CR4.SMEP) !== 0 && (oldCr4 & CR4.SMEP) === 0)) {
      dropped = this.#dropAll(
        KEY_GLOBAL | KEY_VPID | KEY_PCID,
        v | (pcid & KEY_PCID),
        KEY_GLOBAL | KEY_VPID,
        KEY_GLOBAL | v,
      );
    }
    return this.#count(TLB_INVALIDATION.MOV_CR4, dropped);
  }

  /**
   * A VM entry or VM exit (SDM 3C 28.3.3.1; SDM 4.11.1): when the "enable VPID" control is 0, it
   * invalidates the linear and combined mappings of VPID 0000H, for all PCIDs and all EP4TAs,
   * global ones included. With VPIDs enabled nothing is invalidated.
   */
  vmTransition(vpidEnabled: boolean): number {
    const dropped = vpidEnabled ? 0 : this.#dropAll(KEY_VPID, 0, NEVER_MASK, NEVER_VALUE);
    return this.#count(TLB_INVALIDATION.VM_TRANSITION, dropped);
  }

  /**
   * A page fault on linear address `(laHi << 32) | laLo` (SDM 4.10.4.1, after the instruction
   * list): it invalidates the TLB entries for that page number associated with the current PCID,
   * so that the fault does not recur from stale cached entries. Global entries for that page are
   * dropped too (they are usable with the current PCID and may be what faulted).
   */
  pageFault(vpid: number, pcid: number, laLo: number, laHi: number): number {
    return this.#count(TLB_INVALIDATION.PAGE_FAULT, this.#dropPageOfCurrentPcid(vpid, pcid, laLo, laHi));
  }

  /** Entries for the page of the address in the current VPID: the current PCID's and global ones. */
  #dropPageOfCurrentPcid(vpid: number, pcid: number, laLo: number, laHi: number): number {
    const v = this.#vpidBits(vpid);
    return this.#dropAt(
      laLo,
      laHi,
      KEY_GLOBAL | KEY_VPID | KEY_PCID,
      v | (pcid & KEY_PCID),
      KEY_GLOBAL | KEY_VPID,
      KEY_GLOBAL | v,
    );
  }

  /**
   * An EPT violation on guest-physical address `(gpaHi << 32) | gpaLo` that was not the
   * translation of a linear address (SDM 3C 28.3.3.1): the guest-physical mappings of the current
   * EP4TA that would translate it.
   */
  eptViolation(eptTag: number, gpaLo: number, gpaHi: number): number {
    return this.#count(TLB_INVALIDATION.EPT_VIOLATION, this.#dropGuestPhysicalAt(eptTag, gpaLo, gpaHi));
  }

  /**
   * An EPT violation on a guest-physical address that translated linear address
   * `(laHi << 32) | laLo` (SDM 3C 28.3.3.1): the guest-physical mappings as in `eptViolation`, and
   * the combined mappings for that linear address of the current VPID, PCID and EP4TA (global
   * ones usable in that context too, as for page faults).
   */
  eptViolationForLinear(
    vpid: number,
    pcid: number,
    eptTag: number,
    laLo: number,
    laHi: number,
    gpaLo: number,
    gpaHi: number,
  ): number {
    checkEptTag(eptTag, false);
    const v = this.#vpidBits(vpid);
    const dropped =
      this.#dropGuestPhysicalAt(eptTag, gpaLo, gpaHi) +
      this.#dropAt(
        laLo,
        laHi,
        KEY_GLOBAL | KEY_VPID | KEY_PCID,
        v | (pcid & KEY_PCID),
        KEY_GLOBAL | KEY_VPID,
        KEY_GLOBAL | v,
        eptTag,
      );
    return this.#count(TLB_INVALIDATION.EPT_VIOLATION, dropped);
  }

  /**
   * Power-up or RESET (SDM 3C 28.3.3.1: invalidates all linear, guest-physical and combined
   * mappings). Also zeroes every counter: the TLB is as constructed.
   */
  reset(): void {
    this.#key.fill(KEY_INVALID);
    this.#sizeCount.fill(0);
    this.#linearSizes = 0;
    this.#guestPhysicalSizes = 0;
    this.#clock = 0;
    this.#stamp.fill(0);
    this.clearStats();
  }

  /**
   * Drops every entry, as power-up or RESET does (SDM 3C 28.3.3.1), keeping the counters (the
   * drop is counted under `reset`).
   */
  flushAll(): number {
    const dropped = this.size;
    this.#key.fill(KEY_INVALID);
    this.#sizeCount.fill(0);
    this.#linearSizes = 0;
    this.#guestPhysicalSizes = 0;
    return this.#count(TLB_INVALIDATION.RESET, dropped);
  }

  /**
   * The processor drops every entry on its own (SDM 4.10.2: a processor that implements TLBs may
   * invalidate any entry at any time; software cannot rely on an entry being kept). Counted under
   * `eviction`, apart from the architectural operations.
   */
  evictAll(): number {
    const dropped = this.size;
    if (dropped === 0) return this.#count(TLB_INVALIDATION.EVICTION, 0);
    this.#key.fill(KEY_INVALID);
    this.#sizeCount.fill(0);
    this.#linearSizes = 0;
    this.#guestPhysicalSizes = 0;
    return this.#count(TLB_INVALIDATION.EVICTION, dropped);
  }

  /** Zeroes the counters, keeping the entries. */
  clearStats(): void {
    this.#hits.fill(0);
    this.#misses.fill(0);
    this.#inserts.fill(0);
    this.#evictions.fill(0);
    this.#invalidationOps.fill(0);
    this.#invalidationEntries.fill(0);
  }

  /** A snapshot of the counters and occupancy as plain data. */
  stats(): TlbStats {
    const perKind = (a: Float64Array): TlbKindCounters => ({
      linear: a[TLB_MAPPING.LINEAR]!,
      combined: a[TLB_MAPPING.COMBINED]!,
      guestPhysical: a[TLB_MAPPING.GUEST_PHYSICAL]!,
    });
    const entries = new Float64Array(3);
    for (let i = 0; i < this.capacity; i++) {
      if (this.#key[i] !== KEY_INVALID) entries[this.#kindAt(i)]!++;
    }
    const invalidations = {} as Record<TlbInvalidationName, { operations: number; entries: number }>;
    TLB_INVALIDATION_NAMES.forEach((name, kind) => {
      invalidations[name] = {
        operations: this.#invalidationOps[kind]!,
        entries: this.#invalidationEntries[kind]!,
      };
    });
    return {
      sets: this.sets,
      ways: this.ways,
      guestPhysicalSets: this.guestPhysicalSets,
      guestPhysicalWays: this.guestPhysicalWays,
      entries: perKind(entries),
      hits: perKind(this.#hits),
      misses: perKind(this.#misses),
      inserts: perKind(this.#inserts),
      evictions: perKind(this.#evictions),
      invalidations,
    };
  }

  // ---------------------------------------------------------------------------------------------
  // Invalidation helpers. An entry of the linear/combined region matches a predicate when
  // (key & maskA) === valueA or (key & maskB) === valueB (NEVER_MASK/NEVER_VALUE disable B).

  #vpidBits(vpid: number): number {
    checkRange("VPID", vpid, 0xffff);
    return vpid << KEY_VPID_SHIFT;
  }

  #count(kind: TlbInvalidation, dropped: number): number {
    this.#invalidationOps[kind]!++;
    this.#invalidationEntries[kind]! += dropped;
    return dropped;
  }

  /** Drops every linear/combined entry matching the predicate, whatever its EPT tag. */
  #dropAll(maskA: number, valueA: number, maskB: number, valueB: number): number {
    // Every VM transition without VPID and every flush KVM makes lands here: skip an empty region.
    if (this.#linearSizes === 0) return 0;
    const keys = this.#key;
    let dropped = 0;
    for (let i = 0; i < this.linearCapacity; i++) {
      const k = keys[i]!;
      if (k !== KEY_INVALID && ((k & maskA) === valueA || (k & maskB) === valueB)) {
        this.#forget(i, k);
        dropped++;
      }
    }
    return dropped;
  }

  /**
   * Drops the linear/combined entries matching the predicate whose page (of any cached size)
   * contains the linear address; with `space` ≥ 0 only those with that EPT tag.
   */
  #dropAt(
    lo: number,
    hi: number,
    maskA: number,
    valueA: number,
    maskB: number,
    valueB: number,
    space = -1,
  ): number {
    const keys = this.#key;
    const setMask = this.sets - 1;
    const ways = this.ways;
    let dropped = 0;
    for (let s = 0; s < SIZE_COUNT; s++) {
      if ((this.#linearSizes & (1 << s)) === 0) continue;
      const shift = SIZE_SHIFT[s]!;
      const page = hi * SIZE_HI_WEIGHT[s]! + (lo >>> shift);
      const set = (((lo >>> shift) | (hi << (32 - shift))) ^ SIZE_SALT[s]!) & setMask;
      const sizeBits = s << KEY_SIZE_SHIFT;
      for (let i = set * ways, end = i + ways; i < end; i++) {
        const k = keys[i]!;
        if (
          k !== KEY_INVALID &&
          (k & (3 << KEY_SIZE_SHIFT)) === sizeBits &&
          this.#page[i] === page &&
          (space < 0 || this.#space[i] === space) &&
          ((k & maskA) === valueA || (k & maskB) === valueB)
        ) {
          this.#forget(i, k);
          dropped++;
        }
      }
    }
    return dropped;
  }

  #dropGuestPhysicalAt(eptTag: number, lo: number, hi: number): number {
    checkEptTag(eptTag, false);
    const keys = this.#key;
    const setMask = this.guestPhysicalSets - 1;
    const ways = this.guestPhysicalWays;
    let dropped = 0;
    for (let s = 0; s < SIZE_COUNT; s++) {
      if ((this.#guestPhysicalSizes & (1 << s)) === 0) continue;
      const shift = SIZE_SHIFT[s]!;
      const page = hi * SIZE_HI_WEIGHT[s]! + (lo >>> shift);
      const set = (((lo >>> shift) | (hi << (32 - shift))) ^ SIZE_SALT[s]!) & setMask;
      const key = s << KEY_SIZE_SHIFT;
      for (let i = this.linearCapacity + set * ways, end = i + ways; i < end; i++) {
        if (keys[i] === key && this.#page[i] === page && this.#space[i] === eptTag) {
          this.#forget(i, key);
          dropped++;
        }
      }
    }
    return dropped;
  }
}
