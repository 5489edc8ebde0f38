import { ACCESS, PAGE_ACCESS } from "./access";
import { PFERR } from "./page-fault";
import type { PagingContext } from "./paging-context";
import { PTE_HI, PTE_LO } from "./paging-entry";
import { PAGING_MODE } from "./paging-mode";
import { accessRightsFault } from "./permission";
import type { PhysicalMemory } from "./physical-memory";
import { FAULT_STAGE, GUEST_FAULT, WalkResult, type WalkTrace } from "./walk-result";

/**
 * When the walk writes accessed and dirty flags (SDM 4.8).
 * - HARDWARE: as the processor does: A of each non-leaf entry as soon as it is used to reach the
 *   next level (so upper A bits can be set by a walk that then faults lower down), and A/D of the
 *   leaf only when the access is allowed.
 * - AFTER_SUCCESS: as KVM's emulated walk does (kvm: FNAME(update_accessed_dirty_bits)): nothing
 *   unless the whole walk succeeds, then A on every level and D on the leaf for a write.
 * - NONE: a probe with no side effects (for display, audits, and "what would happen").
 */
export const AD_UPDATE = {
  HARDWARE: 0,
  AFTER_SUCCESS: 1,
  NONE: 2,
} as const;
export type AdUpdate = (typeof AD_UPDATE)[keyof typeof AD_UPDATE];

/** What a stage-2 translation is for (SDM 29.3.3.2: guest paging-structure accesses vs the final one). */
export const STAGE2_KIND = {
  /** Reading a guest paging-structure entry. */
  PAGING_READ: 0,
  /** Setting A/D in a guest paging-structure entry (a locked read-modify-write). */
  PAGING_WRITE: 1,
  /** The access itself, to the final guest-physical address. */
  FINAL: 2,
} as const;
export type Stage2Kind = (typeof STAGE2_KIND)[keyof typeof STAGE2_KIND];

/**
 * A second translation stage (EPT) applied to every guest-physical address the walk touches.
 * Returns the host-physical address, or -1 after recording its own fault (an EPT violation or
 * misconfiguration) for the caller to read. `access` is the original access (`ACCESS` bits);
 * `laLo/laHi` is the guest-linear address, reported in EPT exit qualifications. For the FINAL
 * kind, `pageAccess` is the guest translation's effective rights (`PAGE_ACCESS`; all of them when
 * guest paging is off), which advanced EPT exit information reports (SDM Table 28-7, bits 9–11);
 * it is 0 for paging-structure accesses.
 */
export interface Stage2Translator {
  translate(
    gpa: number,
    kind: Stage2Kind,
    access: number,
    laLo: number,
    laHi: number,
    pageAccess: number,
  ): number;
}

export interface PageWalkerOptions {
  readonly adUpdate?: AdUpdate;
  /** Makes the walk two-dimensional: every guest-physical address goes through this stage. */
  readonly stage2?: Stage2Translator | null;
}

const TWO_32 = 4294967296;
const MAX_LEVELS = 6;

/**
 * The linear-address walker (SDM 4.3–4.6): translates a linear address for a read, write or fetch
 * under a `PagingContext`, reporting the physical address with its permissions and page size, or
 * a #PF with the exact error code. One walker per memory; it reuses one `WalkResult`.
 */
export class PageWalker {
  readonly result = new WalkResult();
  readonly memory: PhysicalMemory;
  readonly adUpdate: AdUpdate;
  readonly stage2: Stage2Translator | null;
  /** Where each used entry was read from (stage-2 translated), for deferred A/D writes. */
  readonly #entryPa = new Float64Array(MAX_LEVELS);
  readonly #entryLo = new Uint32Array(MAX_LEVELS);
  /** Guest-physical address of each used entry, for stage-2 A/D write permission checks. */
  readonly #entryGpa = new Float64Array(MAX_LEVELS);
  #used = 0;

  constructor(memory: PhysicalMemory, options: PageWalkerOptions = {}) {
    this.memory = memory;
    this.adUpdate = options.adUpdate ?? AD_UPDATE.HARDWARE;
    this.stage2 = options.stage2 ?? null;
  }

  /**
   * Walks the linear address `(laHi << 32) | laLo` (bits above the mode's width are ignored; the
   * canonical check is the caller's, as it raises #GP, not #PF). Returns `result.ok`.
   */
  walk(
    ctx: PagingContext,
    laLo: number,
    laHi: number,
    access: number,
    trace: WalkTrace | null = null,
  ): boolean {
    const r = this.result;
    r.reset();
    if (trace !== null) trace.count = 0;
    this.#used = 0;
    const mode = ctx.mode;
    const memory = this.memory;
    const stage2 = this.stage2;

    if (mode === PAGING_MODE.NONE) {
      // Without paging, linear addresses are physical (32-bit outside IA-32e mode).
      return this.#finish(ctx, laLo >>> 0, 4096, PAGE_ACCESS.ALL, 0, 0, 0, 0, access, laLo, laHi);
    }

    const wide = mode !== PAGING_MODE.BIT32;
    let level = ctx.levels;
    let table = ctx.root;
    let andLo = 0xffffffff;
    let orHi = 0;

    if (mode === PAGING_MODE.PAE) {
      // PAE: the PDPTE comes from a register loaded at MOV to CR3 (SDM 4.4.1); only P is checked.
      const pdpte = ctx.pdptes[(laLo >>> 30) & 3]!;
      const pdpteLo = pdpte >>> 0;
      if (trace !== null) trace.record(-1, pdpteLo, Math.floor(pdpte / TWO_32), 3);
      if ((pdpteLo & PTE_LO.PRESENT) === 0)
        return this.#guestFault(ctx, access, 0, GUEST_FAULT.NOT_PRESENT, 3);
      table = (Math.floor(pdpte / TWO_32) & ctx.addressMaskHi) * TWO_32 + ((pdpteLo & PTE_LO.ADDRESS) >>> 0);
      level = 2;
    }

    let lo = 0;
    let hi = 0;
    for (;;) {
      let index: number;
      if (!wide) index = level === 2 ? laLo >>> 22 : (laLo >>> 12) & 0x3ff;
      else if (level === 1) index = (laLo >>> 12) & 0x1ff;
      else if (level === 2) index = (laLo >>> 21) & 0x1ff;
      else if (level === 3) index = ((laLo >>> 30) | ((laHi & 0x7f) << 2)) & 0x1ff;
      else if (level === 4) index = (laHi >>> 7) & 0x1ff;
      else index = (laHi >>> 16) & 0x1ff;

      const entryGpa = table + index * (wide ? 8 : 4);
      let entryPa = entryGpa;
      if (stage2 !== null) {
        entryPa = stage2.translate(entryGpa, STAGE2_KIND.PAGING_READ, access, laLo, laHi, 0);
        if (entryPa < 0) return this.#stage2Fault(FAULT_STAGE.STAGE2_PAGING_STRUCTURE, level);
      }
      lo = memory.read32(entryPa);
      hi = wide ? memory.read32(entryPa + 4) : 0;
      r.memoryReads++;
      if (trace !== null) trace.record(entryPa, lo, hi, level);

      if ((lo & PTE_LO.PRESENT) === 0)
        return this.#guestFault(ctx, access, 0, GUEST_FAULT.NOT_PRESENT, level);
      const bit7 = (lo >>> 7) & 1;
      if ((lo & ctx.reservedLo[level * 2 + bit7]!) !== 0 || (hi & ctx.reservedHi[level * 2 + bit7]!) !== 0) {
        return this.#guestFault(ctx, access, PFERR.PRESENT | PFERR.RSVD, GUEST_FAULT.RESERVED_BIT, level);
      }
      andLo &= lo;
      orHi |= hi;

      // A leaf: level 1, or bit 7 at level 2/3 (at level 2 of 32-bit paging only with CR4.PSE).
      const leaf = level === 1 || (bit7 === 1 && (wide || ctx.pse));
      const u = this.#used++;
      this.#entryPa[u] = entryPa;
      this.#entryGpa[u] = entryGpa;
      this.#entryLo[u] = lo;
      if (leaf) break;

      if (this.adUpdate === AD_UPDATE.HARDWARE && (lo & PTE_LO.ACCESSED) === 0) {
        if (!this.#setFlags(u, PTE_LO.ACCESSED, access, laLo, laHi)) {
          return this.#stage2Fault(FAULT_STAGE.STAGE2_PAGING_STRUCTURE, level);
        }
      }
      table = wide
        ? (hi & ctx.addressMaskHi) * TWO_32 + ((lo & PTE_LO.ADDRESS) >>> 0)
        : (lo & PTE_LO.ADDRESS) >>> 0;
      level--;
    }

    // Effective rights (SDM 4.6.1): AND of R/W and U/S over the levels, XD if any level had it.
    let pageAccess = andLo & (PAGE_ACCESS.WRITE | PAGE_ACCESS.USER);
    if (!ctx.nxe || (orHi & PTE_HI.XD) === 0) pageAccess |= PAGE_ACCESS.EXEC;
    const pkey = ctx.pke || ctx.pks ? (hi >>> PTE_HI.PKEY_SHIFT) & PTE_HI.PKEY_MASK : 0;
    r.level = level;
    r.leafLo = lo >>> 0;
    r.leafHi = hi >>> 0;
    r.pageAccess = pageAccess;
    r.pkey = pkey;
    const rightsFault = accessRightsFault(ctx, pageAccess, pkey, access);
    if (rightsFault !== 0)
      return this.#guestFault(ctx, access, rightsFault, GUEST_FAULT.ACCESS_RIGHTS, level);

    let pa: number;
    let pageSize: number;
    if (level === 1) {
      pageSize = 4096;
      pa = (wide ? (hi & ctx.addressMaskHi) * TWO_32 : 0) + ((lo & 0xfffff000) >>> 0) + (laLo & 0xfff);
    } else if (level === 2 && !wide) {
      // 4-MiB page; PSE-36 puts physical-address bits 39:32 in PDE bits 20:13 (SDM 4.3, Table 4-4).
      pageSize = 4 * 1024 * 1024;
      const high = ctx.features.pse36 ? (lo >>> 13) & 0xff & ctx.addressMaskHi : 0;
      pa = high * TWO_32 + ((lo & 0xffc00000) >>> 0) + (laLo & 0x3fffff);
    } else if (level === 2) {
      pageSize = 2 * 1024 * 1024;
      pa = (hi & ctx.addressMaskHi) * TWO_32 + ((lo & 0xffe00000) >>> 0) + (laLo & 0x1fffff);
    } else {
      pageSize = 1024 * 1024 * 1024;
      pa = (hi & ctx.addressMaskHi) * TWO_32 + ((lo & 0xc0000000) >>> 0) + (laLo & 0x3fffffff);
    }
    return this.#finish(ctx, pa, pageSize, pageAccess, lo, hi, pkey, level, access, laLo, laHi);
  }

  /** Final stage-2 translation and A/D updates of a permitted access. */
  #finish(
    ctx: PagingContext,
    pa: number,
    pageSize: number,
    pageAccess: number,
    lo: number,
    hi: number,
    pkey: number,
    level: number,
    access: number,
    laLo: number,
    laHi: number,
  ): boolean {
    const r = this.result;
    let finalPa = pa;
    if (this.stage2 !== null) {
      finalPa = this.stage2.translate(pa, STAGE2_KIND.FINAL, access, laLo, laHi, pageAccess);
      if (finalPa < 0) return this.#stage2Fault(FAULT_STAGE.STAGE2_FINAL, level);
    }
    if (this.adUpdate !== AD_UPDATE.NONE && ctx.mode !== PAGING_MODE.NONE) {
      const leaf = this.#used - 1;
      const first = this.adUpdate === AD_UPDATE.AFTER_SUCCESS ? 0 : leaf;
      for (let u = first; u < leaf; u++) {
        if (
          (this.#entryLo[u]! & PTE_LO.ACCESSED) === 0 &&
          !this.#setFlags(u, PTE_LO.ACCESSED, access, laLo, laHi)
        ) {
          return this.#stage2Fault(FAULT_STAGE.STAGE2_PAGING_STRUCTURE, level);
        }
      }
      const wanted = (access & ACCESS.WRITE) !== 0 ? PTE_LO.ACCESSED | PTE_LO.DIRTY : PTE_LO.ACCESSED;
      if ((this.#entryLo[leaf]! & wanted) !== wanted && !this.#setFlags(leaf, wanted, access, laLo, laHi)) {
        return this.#stage2Fault(FAULT_STAGE.STAGE2_PAGING_STRUCTURE, level);
      }
      lo = this.#entryLo[leaf]!;
    }
    r.ok = true;
    r.pa = finalPa;
    r.pageSize = pageSize;
    r.pageAccess = pageAccess;
    r.pkey = pkey;
    r.leafLo = lo >>> 0;
    r.leafHi = hi >>> 0;
    r.level = level;
    return true;
  }

  /** ORs flags into a used entry's low word; a stage-2 write check comes first when two-dimensional. */
  #setFlags(u: number, flags: number, access: number, laLo: number, laHi: number): boolean {
    let pa = this.#entryPa[u]!;
    if (this.stage2 !== null) {
      pa = this.stage2.translate(this.#entryGpa[u]!, STAGE2_KIND.PAGING_WRITE, access, laLo, laHi, 0);
      if (pa < 0) return false;
    }
    const lo = (this.#entryLo[u]! | flags) >>> 0;
    this.memory.write32(pa, lo);
    this.#entryLo[u] = lo;
    this.result.memoryWrites++;
    return true;
  }

  /**
   * A #PF (SDM 4.7): the access's W and U bits, I/D for fetches when NX or SMEP is in effect,
   * plus what the walk found (`bits`: 0 for not present, P|RSVD, or P[|PK] for access rights).
   */
  #guestFault(ctx: PagingContext, access: number, bits: number, kind: number, level: number): boolean {
    const r = this.result;
    r.ok = false;
    r.stage = FAULT_STAGE.GUEST;
    r.guestFault = kind as WalkResult["guestFault"];
    r.level = level;
    let code = bits | (access & (PFERR.WRITE | PFERR.USER));
    if ((access & ACCESS.FETCH) !== 0 && ctx.fetchSetsErrorI) code |= PFERR.FETCH;
    r.errorCode = code;
    return false;
  }

  #stage2Fault(stage: WalkResult["stage"], level: number): boolean {
    const r = this.result;
    r.ok = false;
    r.stage = stage;
    r.level = level;
    return false;
  }
}
