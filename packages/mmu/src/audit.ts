import { EPT_BAD_MEMORY_TYPES, EPTE_LO, type PhysicalMemory, PTE_HI, PTE_LO } from "@nestvisor/x86-arch";
import {
  describeRights,
  ReferenceMapping,
  ReferenceTable,
  type ReferenceTranslator,
} from "./audit-reference";
import { ACC, PAGE_ROLE } from "./page-role";
import type { ShadowPageStore } from "./shadow-page-store";
import { SPTE_LO, SPTES_PER_PAGE } from "./spte";

/**
 * The MMU audit (DESIGN.md §3: "`mmu` can audit every present shadow entry against that composed
 * walk"): a depth-first walk over every present entry of one of L0's table trees in host memory,
 * comparing each leaf with a `ReferenceTranslator` — the slow, architectural answer to "what may
 * the guest reach at this address" — and each non-leaf entry with the shadow-page bookkeeping.
 * It reports the *first* inconsistency (in index order from the root) as a value; tests call
 * `assertAuditClean` after every step. KVM once carried a debug audit of the same kind
 * (CONFIG_KVM_MMU_AUDIT, mmu_audit.c); this one is the model's own.
 *
 * Checks:
 * - a leaf's frame is the reference's host page for every 4-KiB subpage it maps (a large leaf is
 *   checked run by run, using the reference's `span`, so every subpage is covered at the cost of
 *   one query per contiguous run);
 * - a leaf's effective rights (the AND over the walk, as the processor computes them; in ACC
 *   form) are a subset of the reference's (or of its CR0.WP=0 alternative): the shadow may grant
 *   less (W removed for clean or write-tracked pages), never more;
 * - a leaf is well formed: bit 7 only at levels 2–3, a large frame aligned to its size, and for
 *   EPT no W without R and no reserved memory type (SDM 29.3.3.1);
 * - a non-leaf entry points to a table: inside host memory, or with a `ShadowPageStore`, a live
 *   shadow page one level down whose gfn and direct bit are what the reference expects
 *   (kvm: `sp->gfn`, `sp->role`; kvm-mmu.md §2.8).
 *
 * Not checked: non-present entries (including MMIO SPTEs, which KVM keeps without its present
 * bit), A/D bits, memory types other than the reserved ones, and leaves of unsync pages (stale by
 * design until the guest's next TLB flush, kvm: mmu_sync_children), unless `skipUnsync` is false.
 *
 * The walk reads 64-bit entries as two 32-bit halves and keeps its path in a fixed array: nothing
 * is allocated per entry, only one report object when something is wrong.
 */

/** Table formats: EPT (TDP and EPT02), 64-bit x86 PTEs (shadow paging, 4/5 levels), and PAE (a 4-entry root). */
export const AUDIT_FORMAT = {
  EPT: "ept",
  X86_64: "x86-64",
  X86_PAE: "x86-pae",
} as const;
export type AuditFormat = (typeof AUDIT_FORMAT)[keyof typeof AUDIT_FORMAT];

/**
 * Which entries count as present. KVM: its own present bit 11 (kvm: SPTE_MMU_PRESENT_MASK,
 * is_shadow_present_pte), set in every SPTE KVM installs as present and clear in MMIO SPTEs.
 * HARDWARE: what the processor walks (EPT: any of R/W/X; x86: P). The entries of a PAE root are
 * always tested on P: KVM writes them as PDPTEs without bit 11 (kvm: mmu_alloc_shadow_roots).
 */
export const AUDIT_PRESENCE = {
  KVM: "kvm",
  HARDWARE: "hardware",
} as const;
export type AuditPresence = (typeof AUDIT_PRESENCE)[keyof typeof AUDIT_PRESENCE];

/** What is wrong with an entry. */
export const AUDIT_PROBLEM = {
  /** A present leaf maps an address the reference does not map. */
  NOT_MAPPED: "not-mapped",
  /** A leaf maps another host page than the reference's. */
  WRONG_FRAME: "wrong-frame",
  /** A leaf grants a right the reference does not. */
  EXCESS_RIGHTS: "excess-rights",
  /** An entry the processor would not use as KVM means it. */
  MALFORMED: "malformed",
  /** A non-leaf entry (or the root) is not a table page: outside host memory, or not a live shadow page. */
  UNKNOWN_TABLE: "unknown-table",
  /** The table page's level is not the parent's level minus one (or the root's level). */
  WRONG_TABLE_LEVEL: "wrong-table-level",
  /** The table page's gfn is not the one the reference expects. */
  WRONG_TABLE_GFN: "wrong-table-gfn",
  /** The table page is direct where the reference expects a shadow of a guest table, or the reverse. */
  WRONG_TABLE_KIND: "wrong-table-kind",
} as const;
export type AuditProblem = (typeof AUDIT_PROBLEM)[keyof typeof AUDIT_PROBLEM];

/** The first inconsistency an audit found. */
export interface AuditInconsistency {
  readonly problem: AuditProblem;
  readonly format: AuditFormat;
  /**
   * Entry index at each level from the root down to the offending entry (for a PAE root the
   * first index is the PDPTE, 0–3). Empty when the root page itself is wrong.
   */
  readonly path: readonly number[];
  /** Level of the offending entry (the root's level for a root-page problem). */
  readonly level: number;
  /**
   * Input address (GPA, L2 GPA or GVA, as the reference names it; a linear address as its bits
   * 47:0 or 56:0): for a leaf the 4-KiB page that disagrees, otherwise the first address the
   * entry covers.
   */
  readonly address: number;
  /** Host-physical address of the entry, or -1 for a root-page problem. */
  readonly entryAddress: number;
  readonly entryLo: number;
  readonly entryHi: number;
  /**
   * What was expected and found: host addresses (NOT_MAPPED: found only, expected -1;
   * WRONG_FRAME; UNKNOWN_TABLE: found only), ACC rights (EXCESS_RIGHTS), a level
   * (WRONG_TABLE_LEVEL), a gfn (WRONG_TABLE_GFN), 1 = direct / 0 = indirect (WRONG_TABLE_KIND);
   * -1 where nothing applies (MALFORMED).
   */
  readonly expected: number;
  readonly found: number;
  /** One readable sentence with all of the above. */
  readonly message: string;
}

/** What one audit covered. */
export interface AuditStats {
  /** Table pages walked (a PAE root counts as one). */
  readonly tables: number;
  /** Present entries seen. */
  readonly entries: number;
  /** Present leaves among them. */
  readonly leaves: number;
  /** Reference translations asked for (leaf runs plus expected-table queries). */
  readonly queries: number;
  /** Leaves of unsync pages left unchecked. */
  readonly skippedUnsyncLeaves: number;
}

export type AuditResult =
  | { readonly ok: true; readonly stats: AuditStats; readonly inconsistency: null }
  | { readonly ok: false; readonly stats: AuditStats; readonly inconsistency: AuditInconsistency };

export interface TableAuditorOptions {
  /** Host memory holding the tables. */
  readonly memory: PhysicalMemory;
  readonly format: AuditFormat;
  /** Levels of an "ept" or "x86-64" tree (the root's level): 4 or 5. Default 4; "x86-pae" is always 3. */
  readonly levels?: 4 | 5;
  readonly reference: ReferenceTranslator;
  /** When given, table pages are checked against it (live, level, gfn, direct). */
  readonly store?: ShadowPageStore | null;
  /** Default KVM. */
  readonly presence?: AuditPresence;
  /** Leave the leaves of unsync pages unchecked. Default true. */
  readonly skipUnsync?: boolean;
}

const TWO_32 = 4294967296;
/** Bytes one entry maps at each level (index = level). */
const SPAN_BYTES = [0, 2 ** 12, 2 ** 21, 2 ** 30, 2 ** 39, 2 ** 48] as const;
const PAGE_BYTES = 4096;
const PAE_ROOT_ENTRIES = 4;
const MAX_DEPTH = 6;
const ADDRESS_HI = 0x000fffff;
const PAGE_SIZE_BIT = 0x80;

export class AuditError extends Error {
  readonly inconsistency: AuditInconsistency;

  constructor(inconsistency: AuditInconsistency) {
    super(inconsistency.message);
    this.name = "AuditError";
    this.inconsistency = inconsistency;
  }
}

/**
 * An audit of one table format against one reference, reusable across calls (the reference
 * answers and the path live in the auditor, so `audit` allocates only its result).
 */
export class TableAuditor {
  readonly memory: PhysicalMemory;
  readonly format: AuditFormat;
  readonly rootLevel: number;
  readonly reference: ReferenceTranslator;
  readonly store: ShadowPageStore | null;
  readonly presence: AuditPresence;
  readonly skipUnsync: boolean;
  readonly #ept: boolean;
  readonly #presentMask: number;
  readonly #mapping = new ReferenceMapping();
  readonly #table = new ReferenceTable();
  readonly #path = new Int16Array(MAX_DEPTH);
  #tables = 0;
  #entries = 0;
  #leaves = 0;
  #queries = 0;
  #skipped = 0;
  #found: AuditInconsistency | null = null;

  constructor(options: TableAuditorOptions) {
    const levels = options.levels ?? 4;
    if (levels !== 4 && levels !== 5) throw new RangeError(`audit levels ${levels} is not 4 or 5`);
    this.memory = options.memory;
    this.format = options.format;
    this.rootLevel = options.format === AUDIT_FORMAT.X86_PAE ? 3 : levels;
    this.reference = options.reference;
    this.store = options.store ?? null;
    this.presence = options.presence ?? AUDIT_PRESENCE.KVM;
    this.skipUnsync = options.skipUnsync ?? true;
    this.#ept = options.format === AUDIT_FORMAT.EPT;
    this.#presentMask =
      this.presence === AUDIT_PRESENCE.KVM ? SPTE_LO.MMU_PRESENT : this.#ept ? EPTE_LO.XWR : PTE_LO.PRESENT;
  }

  /** Audits the tree whose root table (or PAE root) is at host-physical `root`. */
  audit(root: number): AuditResult {
    this.#tables = 0;
    this.#entries = 0;
    this.#leaves = 0;
    this.#queries = 0;
    this.#skipped = 0;
    this.#found = null;
    if (this.format === AUDIT_FORMAT.X86_PAE) this.#paeRoot(root);
    else if (this.#checkRoot(root)) this.#walk(root, this.rootLevel, 0, ACC.ALL, 0);
    const stats: AuditStats = {
      tables: this.#tables,
      entries: this.#entries,
      leaves: this.#leaves,
      queries: this.#queries,
      skippedUnsyncLeaves: this.#skipped,
    };
    const found = this.#found;
    return found === null
      ? { ok: true, stats, inconsistency: null }
      : { ok: false, stats, inconsistency: found };
  }

  // ---- the walk -----------------------------------------------------------------------------

  /** A PAE root: four PDPTE-format entries (P only), each pointing to a level-2 table for 1 GiB. */
  #paeRoot(root: number): void {
    if (!this.#inMemory(root, PAE_ROOT_ENTRIES * 8)) {
      this.#report(AUDIT_PROBLEM.UNKNOWN_TABLE, -1, 3, 0, -1, 0, 0, -1, root, "");
      return;
    }
    const memory = this.memory;
    this.#tables++;
    for (let i = 0; i < PAE_ROOT_ENTRIES; i++) {
      const pa = root + i * 8;
      const lo = memory.read32(pa);
      if ((lo & PTE_LO.PRESENT) === 0) continue;
      const hi = memory.read32(pa + 4);
      this.#entries++;
      this.#path[0] = i;
      const address = i * SPAN_BYTES[3];
      const next = (hi & ADDRESS_HI) * TWO_32 + ((lo & PTE_LO.ADDRESS) >>> 0);
      if (!this.#checkChild(next, 2, address, 0, pa, lo, hi)) return;
      if (!this.#walk(next, 2, address, ACC.ALL, 1)) return;
    }
  }

  /** Every present entry of the table at `table` (level `level`, first input address `base`). */
  #walk(table: number, level: number, base: number, rights: number, depth: number): boolean {
    const memory = this.memory;
    const store = this.store;
    const ept = this.#ept;
    const presentMask = this.#presentMask;
    const span = SPAN_BYTES[level]!;
    this.#tables++;
    let skipLeaves = false;
    if (store !== null && this.skipUnsync) {
      const id = store.idOfHostPage(table);
      skipLeaves = id >= 0 && store.isUnsync(id);
    }
    for (let i = 0; i < SPTES_PER_PAGE; i++) {
      const pa = table + i * 8;
      const lo = memory.read32(pa);
      if ((lo & presentMask) === 0) continue;
      const hi = memory.read32(pa + 4);
      this.#entries++;
      this.#path[depth] = i;
      const address = base + i * span;
      // Effective rights, ACC form: EPT R → USER, W, X (kvm: FNAME(gpte_access) for EPT); x86 W and
      // U/S sit at ACC's positions, X is "no XD" (SDM 4.6.1).
      const acc =
        rights &
        (ept
          ? ((lo & EPTE_LO.READ) << 2) | (lo & EPTE_LO.WRITE) | ((lo >>> 2) & 1)
          : (lo & (ACC.WRITE | ACC.USER)) | ((hi & PTE_HI.XD) === 0 ? ACC.EXEC : 0));
      if (level > 1 && (lo & PAGE_SIZE_BIT) === 0) {
        const next = (hi & ADDRESS_HI) * TWO_32 + ((lo & PTE_LO.ADDRESS) >>> 0);
        if (!this.#checkChild(next, level - 1, address, depth, pa, lo, hi)) return false;
        if (!this.#walk(next, level - 1, address, acc, depth + 1)) return false;
        continue;
      }
      this.#leaves++;
      if (level > 3) {
        // Bit 7 of a PML4E/PML5E is reserved in both formats (SDM 4.5 Table 4-14/4-15; 29.3.2 Table 29-1).
        return this.#malformed(depth, level, address, pa, lo, hi, "bit 7 (page size) set above level 3");
      }
      if (skipLeaves) {
        this.#skipped++;
        continue;
      }
      if (!this.#leaf(depth, level, address, acc, pa, lo, hi)) return false;
    }
    return true;
  }

  /** Checks one leaf against the reference, run by run over its 4-KiB subpages. */
  #leaf(
    depth: number,
    level: number,
    address: number,
    acc: number,
    pa: number,
    lo: number,
    hi: number,
  ): boolean {
    const size = SPAN_BYTES[level]!;
    let frame: number;
    if (this.#ept) {
      // W without R is a misconfiguration; so is memory type 2, 3 or 7 (SDM 29.3.3.1).
      if ((lo & (EPTE_LO.READ | EPTE_LO.WRITE)) === EPTE_LO.WRITE) {
        return this.#malformed(depth, level, address, pa, lo, hi, "EPT leaf is writable but not readable");
      }
      if (
        ((EPT_BAD_MEMORY_TYPES >>> ((lo & EPTE_LO.MEMORY_TYPE_MASK) >>> EPTE_LO.MEMORY_TYPE_SHIFT)) & 1) !==
        0
      ) {
        return this.#malformed(depth, level, address, pa, lo, hi, "EPT leaf has a reserved memory type");
      }
      frame = (hi & ADDRESS_HI) * TWO_32 + ((lo & EPTE_LO.ADDRESS) >>> 0);
    } else {
      // Bit 12 of a large x86 leaf is PAT, not an address bit (SDM 4.5 Tables 4-17/4-18).
      const low = level > 1 ? lo & PTE_LO.ADDRESS & ~PTE_LO.PAT_LARGE : lo & PTE_LO.ADDRESS;
      frame = (hi & ADDRESS_HI) * TWO_32 + (low >>> 0);
    }
    if (frame % size !== 0) {
      return this.#malformed(
        depth,
        level,
        address,
        pa,
        lo,
        hi,
        `large frame not aligned to ${size / 1024} KiB`,
      );
    }
    const m = this.#mapping;
    const reference = this.reference;
    for (let pos = 0; pos < size; ) {
      const at = address + pos;
      this.#queries++;
      if (!reference.translate(at, m)) {
        this.#report(AUDIT_PROBLEM.NOT_MAPPED, depth, level, at, pa, lo, hi, -1, frame + pos, "");
        return false;
      }
      if (m.hpa !== frame + pos) {
        this.#report(AUDIT_PROBLEM.WRONG_FRAME, depth, level, at, pa, lo, hi, m.hpa, frame + pos, "");
        return false;
      }
      if ((acc & ~m.rights) !== 0 && (m.altRights < 0 || (acc & ~m.altRights) !== 0)) {
        const alt = m.altRights >= 0 ? ` (or ${describeRights(m.altRights, this.#ept)})` : "";
        this.#report(AUDIT_PROBLEM.EXCESS_RIGHTS, depth, level, at, pa, lo, hi, m.rights, acc, alt);
        return false;
      }
      const step = m.span - (m.span % PAGE_BYTES);
      pos += Math.max(step, PAGE_BYTES);
    }
    return true;
  }

  /** The root page: in memory, and with a store a live page of the root level the reference expects. */
  #checkRoot(root: number): boolean {
    const level = this.rootLevel;
    if (!this.#inMemory(root, PAGE_BYTES)) {
      this.#report(AUDIT_PROBLEM.UNKNOWN_TABLE, -1, level, 0, -1, 0, 0, -1, root, "");
      return false;
    }
    return this.#checkPage(root, level, 0, -1, level, -1, 0, 0);
  }

  /** The table a non-leaf entry points to (`childLevel` = the entry's level - 1). */
  #checkChild(
    next: number,
    childLevel: number,
    address: number,
    depth: number,
    pa: number,
    lo: number,
    hi: number,
  ): boolean {
    if (!this.#inMemory(next, PAGE_BYTES)) {
      this.#report(AUDIT_PROBLEM.UNKNOWN_TABLE, depth, childLevel + 1, address, pa, lo, hi, -1, next, "");
      return false;
    }
    return this.#checkPage(next, childLevel, address, depth, childLevel + 1, pa, lo, hi);
  }

  /** Store checks of the page at `page`, expected at `pageLevel` covering `address`. */
  #checkPage(
    page: number,
    pageLevel: number,
    address: number,
    depth: number,
    entryLevel: number,
    pa: number,
    lo: number,
    hi: number,
  ): boolean {
    const store = this.store;
    if (store === null) return true;
    const id = store.idOfHostPage(page);
    if (id < 0) {
      this.#report(AUDIT_PROBLEM.UNKNOWN_TABLE, depth, entryLevel, address, pa, lo, hi, -1, page, "");
      return false;
    }
    const level = store.level(id);
    if (level !== pageLevel) {
      this.#report(
        AUDIT_PROBLEM.WRONG_TABLE_LEVEL,
        depth,
        entryLevel,
        address,
        pa,
        lo,
        hi,
        pageLevel,
        level,
        "",
      );
      return false;
    }
    const reference = this.reference;
    const t = this.#table;
    if (reference.expectedTable === undefined) return true;
    this.#queries++;
    if (!reference.expectedTable(address, pageLevel, t)) return true;
    const gfn = store.gfn(id);
    if (gfn !== t.gfn) {
      this.#report(AUDIT_PROBLEM.WRONG_TABLE_GFN, depth, entryLevel, address, pa, lo, hi, t.gfn, gfn, "");
      return false;
    }
    const direct = (store.role(id) & PAGE_ROLE.DIRECT) !== 0;
    if (direct !== t.direct) {
      const expected = t.direct ? 1 : 0;
      this.#report(
        AUDIT_PROBLEM.WRONG_TABLE_KIND,
        depth,
        entryLevel,
        address,
        pa,
        lo,
        hi,
        expected,
        1 - expected,
        "",
      );
      return false;
    }
    return true;
  }

  #inMemory(pa: number, bytes: number): boolean {
    return pa >= 0 && pa + bytes <= this.memory.size;
  }

  // ---- reports (off the hot path) -----------------------------------------------------------

  #malformed(
    depth: number,
    level: number,
    address: number,
    pa: number,
    lo: number,
    hi: number,
    why: string,
  ): false {
    this.#report(AUDIT_PROBLEM.MALFORMED, depth, level, address, pa, lo, hi, -1, -1, why);
    return false;
  }

  #report(
    problem: AuditProblem,
    depth: number,
    level: number,
    address: number,
    entryAddress: number,
    lo: number,
    hi: number,
    expected: number,
    found: number,
    detail: string,
  ): void {
    const path: number[] = [];
    for (let d = 0; d <= depth; d++) path.push(this.#path[d]!);
    const partial = {
      problem,
      format: this.format,
      path,
      level,
      address,
      entryAddress,
      entryLo: lo >>> 0,
      entryHi: hi >>> 0,
      expected,
      found,
    };
    this.#found = Object.freeze({ ...partial, message: this.#describe(partial, detail) });
  }

  #describe(f: Omit<AuditInconsistency, "message">, detail: string): string {
    const ref = this.reference;
    const ept = this.#ept;
    const input = `${ref.input} ${this.#formatInput(f.address)}`;
    const where =
      f.entryAddress < 0
        ? `root page (level ${f.level})`
        : `level-${f.level} entry ${hex64(f.entryLo, f.entryHi)} at hpa ${hex(f.entryAddress)}, path [${f.path.join(", ")}]`;
    let what: string;
    switch (f.problem) {
      case AUDIT_PROBLEM.NOT_MAPPED:
        what = `maps ${input} to hpa ${hex(f.found)}, but the reference does not map it`;
        break;
      case AUDIT_PROBLEM.WRONG_FRAME:
        what = `maps ${input} to hpa ${hex(f.found)}; expected hpa ${hex(f.expected)}`;
        break;
      case AUDIT_PROBLEM.EXCESS_RIGHTS:
        what = `grants ${describeRights(f.found, ept)} on ${input}; the reference allows ${describeRights(f.expected, ept)}${detail}`;
        break;
      case AUDIT_PROBLEM.MALFORMED:
        what = `is malformed (${detail}) at ${input}`;
        break;
      case AUDIT_PROBLEM.UNKNOWN_TABLE:
        what = `points to hpa ${hex(f.found)} for ${input}, which is ${this.store === null ? "outside host memory" : "not a live shadow page"}`;
        break;
      case AUDIT_PROBLEM.WRONG_TABLE_LEVEL:
        what = `points to a level-${f.found} page for ${input}; expected level ${f.expected}`;
        break;
      case AUDIT_PROBLEM.WRONG_TABLE_GFN:
        what = `points to a page for gfn ${hex(f.found)} for ${input}; expected gfn ${hex(f.expected)}`;
        break;
      case AUDIT_PROBLEM.WRONG_TABLE_KIND:
        what = `points to a ${f.found === 1 ? "direct" : "indirect"} page for ${input}; expected ${f.expected === 1 ? "direct" : "indirect"}`;
        break;
    }
    return `${this.format} audit against ${ref.name}: ${where} ${what}`;
  }

  /** Linear addresses of 4/5-level x86 trees are shown sign-extended (canonical); others as they are. */
  #formatInput(address: number): string {
    if (this.format !== AUDIT_FORMAT.X86_64) return hex(address);
    const bits = 12 + 9 * this.rootLevel;
    const value = BigInt(address);
    if (((value >> BigInt(bits - 1)) & 1n) === 0n) return hex(address);
    const canonical = value | (((1n << BigInt(64 - bits)) - 1n) << BigInt(bits));
    return `0x${canonical.toString(16)}`;
  }
}

function hex(value: number): string {
  return value < 0 ? String(value) : `0x${value.toString(16)}`;
}

function hex64(lo: number, hi: number): string {
  return `0x${(hi >>> 0).toString(16).padStart(8, "0")}_${(lo >>> 0).toString(16).padStart(8, "0")}`;
}

/** One-shot audit (builds a `TableAuditor`; keep one when auditing repeatedly). */
export function auditTables(options: TableAuditorOptions & { readonly root: number }): AuditResult {
  return new TableAuditor(options).audit(options.root);
}

/** Throws an `AuditError` carrying the first inconsistency and its message; returns the stats when clean. */
export function assertAuditClean(result: AuditResult): AuditStats {
  if (!result.ok) throw new AuditError(result.inconsistency);
  return result.stats;
}
