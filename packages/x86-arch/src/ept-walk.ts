import type { EptContext } from "./ept-context";
import { EPT_BAD_MEMORY_TYPES, EPT_MISCONFIG, EPTE_HI, EPTE_LO, type EptMisconfig } from "./ept-entry";
import { EPT_VIOLATION } from "./ept-violation";
import { AD_UPDATE, type AdUpdate } from "./page-walk";
import type { PhysicalMemory } from "./physical-memory";
import type { WalkTrace } from "./walk-result";

/**
 * An access through EPT. The bits are the qualification's bits 2:0, so a violation reports the
 * access as given: a locked read-modify-write of a guest paging entry is READ | WRITE.
 */
export const EPT_ACCESS = {
  READ: 1 << 0,
  WRITE: 1 << 1,
  FETCH: 1 << 2,
} as const;

/** How an EPT walk ended. */
export const EPT_OUTCOME = {
  OK: 0,
  /** An EPT violation (exit reason 48) with `qualification`. */
  VIOLATION: 1,
  /** An EPT misconfiguration (exit reason 49); `misconfig` says why. */
  MISCONFIG: 2,
} as const;
export type EptOutcome = (typeof EPT_OUTCOME)[keyof typeof EPT_OUTCOME];

/** The outcome of one EPT walk, written in place (one object reused across walks). */
export class EptWalkResult {
  ok = false;
  outcome: EptOutcome = EPT_OUTCOME.OK;
  /** Host-physical address of the access. */
  hpa = 0;
  /** 4 KiB, 2 MiB or 1 GiB. */
  pageSize = 0;
  /** Level of the leaf (1 = EPT PTE), or of the entry where the walk stopped. */
  level = 0;
  /**
   * AND over the entries used of R, W, X (bits 2:0) and, with mode-based execute control, XU
   * (bit 10), in entry bit positions (`EPTE_LO`). On a not-present stop it includes that entry, so is 0.
   */
  permissions = 0;
  /** The leaf's memory type (bits 5:3) and ignore-PAT bit. */
  memoryType = 0;
  ignorePat = false;
  leafLo = 0;
  leafHi = 0;
  /** Exit qualification of a violation (0 otherwise). */
  qualification = 0;
  misconfig: EptMisconfig = EPT_MISCONFIG.NONE;
  /** EPT entries read: the walk's memory references. */
  entryReads = 0;
  /** EPT entries whose accessed or dirty flag this walk wrote. */
  entryWrites = 0;

  reset(): void {
    this.ok = false;
    this.outcome = EPT_OUTCOME.OK;
    this.hpa = 0;
    this.pageSize = 0;
    this.level = 0;
    this.permissions = 0;
    this.memoryType = 0;
    this.ignorePat = false;
    this.leafLo = 0;
    this.leafHi = 0;
    this.qualification = 0;
    this.misconfig = EPT_MISCONFIG.NONE;
    this.entryReads = 0;
    this.entryWrites = 0;
  }
}

export interface EptWalkerOptions {
  /**
   * When EPT accessed/dirty flags (EPTP bit 6) are written: HARDWARE sets A in each non-leaf entry
   * as it is used and A (+D for writes) in the leaf once the access is allowed; AFTER_SUCCESS writes
   * them only after a successful walk (as KVM's walk of L1's EPT does); NONE never writes.
   */
  readonly adUpdate?: AdUpdate;
}

const TWO_32 = 4294967296;
/** 2^-32: multiplying by it is exact and cheaper than dividing by 2^32. */
const INV_TWO_32 = 1 / TWO_32;
const MAX_LEVELS = 5;
const XWR_XU = EPTE_LO.XWR | EPTE_LO.USER_EXECUTE;
const LINEAR_BITS = EPT_VIOLATION.GLA_VALID | EPT_VIOLATION.FINAL_TRANSLATION;
/** Bits 2:0 values that are always misconfigured (as a bitmask of values): 010b and 110b. */
const BAD_XWR = (1 << 0b010) | (1 << 0b110);

/** Which misconfiguration a present entry that failed the combined check has (off the hot path). */
function misconfigKind(ctx: EptContext, lo: number, hi: number, rsvd: number): EptMisconfig {
  const xwr = lo & EPTE_LO.XWR;
  if ((xwr & (EPTE_LO.READ | EPTE_LO.WRITE)) === EPTE_LO.WRITE) return EPT_MISCONFIG.WRITE_WITHOUT_READ;
  if (xwr === EPTE_LO.EXECUTE && !ctx.executeOnly) return EPT_MISCONFIG.EXECUTE_ONLY;
  return (lo & ctx.reservedLo[rsvd]!) !== 0 || (hi & ctx.reservedHi[rsvd]!) !== 0
    ? EPT_MISCONFIG.RESERVED_BIT
    : EPT_MISCONFIG.NONE;
}

/**
 * The EPT walker (SDM Vol. 3C 29.3.2–29.3.5; 28.2.2–28.2.4 in older editions): translates a
 * guest-physical address to host-physical for a read, write or fetch, reading the EPT paging
 * structures from host memory. Reports success with the effective permissions, an EPT violation
 * with its exact exit qualification, or an EPT misconfiguration. Allocates nothing per walk.
 */
export class EptWalker {
  readonly result = new EptWalkResult();
  readonly memory: PhysicalMemory;
  readonly adUpdate: AdUpdate;
  readonly #entryPa = new Float64Array(MAX_LEVELS);
  readonly #entryLo = new Uint32Array(MAX_LEVELS);

  constructor(memory: PhysicalMemory, options: EptWalkerOptions = {}) {
    this.memory = memory;
    this.adUpdate = options.adUpdate ?? AD_UPDATE.HARDWARE;
  }

  /**
   * Walks `gpa` (< 2^52; a 4-level walk uses bits 47:0) for `access` (`EPT_ACCESS` bits).
   *
   * `linear` carries what the caller knows about the linear address, as qualification bits 11:7
   * (`EPT_VIOLATION.GLA_VALID`, `FINAL_TRANSLATION`, `USER_LINEAR`, `WRITABLE_LINEAR`,
   * `EXECUTE_DISABLE_LINEAR`): they are copied into a violation's qualification where the SDM
   * defines them, and USER_LINEAR selects XU over X for a fetch under mode-based execute control.
   * A guest paging-structure access is GLA_VALID without FINAL_TRANSLATION. Returns `result.ok`.
   */
  walk(ctx: EptContext, gpa: number, access: number, linear = 0, trace: WalkTrace | null = null): boolean {
    if (trace !== null) trace.count = 0;
    const memory = this.memory;
    const mbec = ctx.modeBasedExecute;
    const presentMask = mbec ? XWR_XU : EPTE_LO.XWR;

    // With EPT A/D enabled, the processor's accesses to guest paging structures are treated as
    // writes (SDM 29.3.3.2; a read that may set guest A/D flags is a locked read-modify-write).
    if (ctx.accessedDirty && (linear & LINEAR_BITS) === EPT_VIOLATION.GLA_VALID) {
      access |= EPT_ACCESS.READ | EPT_ACCESS.WRITE;
    }
    // The entry bits the access needs (SDM 29.3.3.2): R for reads, W for writes, and for fetches
    // X, or with mode-based execute control XU when the linear address is user-mode.
    let need = access & (EPT_ACCESS.READ | EPT_ACCESS.WRITE);
    if ((access & EPT_ACCESS.FETCH) !== 0) {
      need |= mbec && (linear & EPT_VIOLATION.USER_LINEAR) !== 0 ? EPTE_LO.USER_EXECUTE : EPTE_LO.EXECUTE;
    }

    const gpaLo = gpa >>> 0;
    const gpaHi = ((gpa - gpaLo) * INV_TWO_32) >>> 0; // exact: gpa - gpaLo is a multiple of 2^32
    const reservedLo = ctx.reservedLo;
    const reservedHi = ctx.reservedHi;
    const adHardware = ctx.accessedDirty && this.adUpdate === AD_UPDATE.HARDWARE;
    // Entries are remembered only when A/D flags may be written after the walk.
    const track = ctx.accessedDirty && this.adUpdate !== AD_UPDATE.NONE;
    const badXwr = ctx.executeOnly ? BAD_XWR : BAD_XWR | (1 << EPTE_LO.EXECUTE);
    let level: number = ctx.levels;
    let table = ctx.root;
    let and = presentMask;
    let used = 0;
    let reads = 0;
    let writes = 0;
    let lo = 0;
    let hi = 0;

    for (;;) {
      let index: number;
      if (level === 1) index = (gpaLo >>> 12) & 0x1ff;
      else if (level === 2) index = (gpaLo >>> 21) & 0x1ff;
      else if (level === 3) index = ((gpaLo >>> 30) | ((gpaHi & 0x7f) << 2)) & 0x1ff;
      else if (level === 4) index = (gpaHi >>> 7) & 0x1ff;
      else index = (gpaHi >>> 16) & 0x1ff;

      const entryPa = table + index * 8;
      lo = memory.read32(entryPa);
      hi = memory.read32(entryPa + 4);
      reads++;
      if (trace !== null) trace.record(entryPa, lo, hi, level);
      and &= lo;

      // Not present: bits 2:0 (and bit 10 with mode-based execute control) all clear (SDM 29.3.2).
      if ((lo & presentMask) === 0)
        return this.#violation(ctx, access, and, linear, level, -1, reads, writes);

      // Misconfigurations of a present entry (SDM 29.3.3.1), checked before any permission:
      // W without R (010b, 110b), execute-only (100b) without the capability, reserved bits.
      const bit7 = (lo >>> 7) & 1;
      const rsvd = level * 2 + bit7;
      if (
        ((badXwr >>> (lo & EPTE_LO.XWR)) & 1) !== 0 ||
        ((lo & reservedLo[rsvd]!) | (hi & reservedHi[rsvd]!)) !== 0
      ) {
        return this.#misconfig(misconfigKind(ctx, lo, hi, rsvd), level, lo, hi, reads, writes);
      }
      // Bit 7 at levels 4/5 is reserved (caught above), so here it means a 2-MiB/1-GiB leaf.
      const leaf = level === 1 || bit7 === 1;
      if (leaf && ((EPT_BAD_MEMORY_TYPES >>> ((lo >>> 3) & 7)) & 1) !== 0) {
        return this.#misconfig(EPT_MISCONFIG.MEMORY_TYPE, level, lo, hi, reads, writes);
      }

      if (track) {
        // Accessed flag of an entry used to reach the next level (SDM 29.3.5).
        if (adHardware && !leaf && (lo & EPTE_LO.ACCESSED) === 0) {
          lo = (lo | EPTE_LO.ACCESSED) >>> 0;
          memory.write32(entryPa, lo);
          writes++;
        }
        this.#entryPa[used] = entryPa;
        this.#entryLo[used] = lo;
        used++;
      }
      if (leaf) break;
      table = (hi & EPTE_HI.ADDRESS) * TWO_32 + ((lo & EPTE_LO.ADDRESS) >>> 0);
      level--;
    }

    // Access rights: the AND over all levels must grant every bit the access needs (SDM 29.3.3.2).
    if ((need & ~and) !== 0) return this.#violation(ctx, access, and, linear, level, hi, reads, writes);

    let hpa: number;
    let pageSize: number;
    if (level === 1) {
      pageSize = 4096;
      hpa = (hi & EPTE_HI.ADDRESS) * TWO_32 + ((lo & EPTE_LO.ADDRESS) >>> 0) + (gpaLo & 0xfff);
    } else if (level === 2) {
      pageSize = 2 * 1024 * 1024;
      hpa = (hi & EPTE_HI.ADDRESS) * TWO_32 + ((lo & 0xffe00000) >>> 0) + (gpaLo & 0x1fffff);
    } else {
      pageSize = 1024 * 1024 * 1024;
      hpa = (hi & EPTE_HI.ADDRESS) * TWO_32 + ((lo & 0xc0000000) >>> 0) + (gpaLo & 0x3fffffff);
    }

    // Accessed flags on every entry used, dirty on the leaf for a write (SDM 29.3.5).
    if (track) {
      const leafIndex = used - 1;
      if (this.adUpdate === AD_UPDATE.AFTER_SUCCESS) {
        for (let u = 0; u < leafIndex; u++) writes += this.#setFlags(u, EPTE_LO.ACCESSED);
      }
      writes += this.#setFlags(
        leafIndex,
        (access & EPT_ACCESS.WRITE) !== 0 ? EPTE_LO.ACCESSED | EPTE_LO.DIRTY : EPTE_LO.ACCESSED,
      );
      lo = this.#entryLo[leafIndex]!;
    }

    // Every field is written (no reset first: this is the hot path).
    const r = this.result;
    r.ok = true;
    r.outcome = EPT_OUTCOME.OK;
    r.hpa = hpa;
    r.pageSize = pageSize;
    r.level = level;
    r.permissions = and;
    r.memoryType = (lo >>> 3) & 7;
    r.ignorePat = (lo & EPTE_LO.IGNORE_PAT) !== 0;
    r.leafLo = lo >>> 0;
    r.leafHi = hi >>> 0;
    r.qualification = 0;
    r.misconfig = EPT_MISCONFIG.NONE;
    r.entryReads = reads;
    r.entryWrites = writes;
    return true;
  }

  /** ORs `flags` into a remembered entry; returns 1 if it wrote, else 0. */
  #setFlags(u: number, flags: number): number {
    const lo = this.#entryLo[u]!;
    if ((lo & flags) === flags) return 0;
    const updated = (lo | flags) >>> 0;
    this.memory.write32(this.#entryPa[u]!, updated);
    this.#entryLo[u] = updated;
    return 1;
  }

  /**
   * An EPT violation (SDM 28.2.1, Table 28-7): the access in bits 2:0, the AND of R/W/X in 5:3 (and
   * of XU in bit 6 with mode-based execute control), the caller's linear-address bits where
   * defined, and the leaf's supervisor-shadow-stack bit when EPTP bit 7 is set and the walk reached
   * the leaf (`leafHi` >= 0).
   */
  #violation(
    ctx: EptContext,
    access: number,
    and: number,
    linear: number,
    level: number,
    leafHi: number,
    reads: number,
    writes: number,
  ): boolean {
    let q = (access & EPT_VIOLATION.ACCESS_MASK) | ((and & EPTE_LO.XWR) << EPT_VIOLATION.PERMISSIONS_SHIFT);
    if (ctx.modeBasedExecute && (and & EPTE_LO.USER_EXECUTE) !== 0) q |= EPT_VIOLATION.USER_EXECUTABLE;
    if ((linear & EPT_VIOLATION.GLA_VALID) !== 0) {
      q |= linear & LINEAR_BITS;
      if ((linear & EPT_VIOLATION.FINAL_TRANSLATION) !== 0 && ctx.advancedExitInfo) {
        q |= linear & EPT_VIOLATION.ADVANCED_MASK;
      }
    }
    if (ctx.supervisorShadowStack && leafHi >= 0 && (leafHi & EPTE_HI.SUPERVISOR_SHADOW_STACK) !== 0) {
      q |= EPT_VIOLATION.SUPERVISOR_SHADOW_STACK;
    }
    const r = this.result;
    r.reset();
    r.outcome = EPT_OUTCOME.VIOLATION;
    r.level = level;
    r.permissions = and;
    r.qualification = q;
    r.entryReads = reads;
    r.entryWrites = writes;
    return false;
  }

  #misconfig(
    kind: EptMisconfig,
    level: number,
    lo: number,
    hi: number,
    reads: number,
    writes: number,
  ): boolean {
    const r = this.result;
    r.reset();
    r.entryReads = reads;
    r.entryWrites = writes;
    r.outcome = EPT_OUTCOME.MISCONFIG;
    r.misconfig = kind;
    r.level = level;
    r.leafLo = lo >>> 0;
    r.leafHi = hi >>> 0;
    return false;
  }
}
