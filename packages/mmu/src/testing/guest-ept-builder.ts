import { EPT_MEMORY_TYPE, EPTE_LO, encodeEptPointer, type PhysicalMemory } from "@nestvisor/x86-arch";

const TWO_32 = 4294967296;
/** Leaf default: RWX, memory type WB. */
export const EPT12_LEAF_RWX = EPTE_LO.XWR | (EPT_MEMORY_TYPE.WB << EPTE_LO.MEMORY_TYPE_SHIFT);

/** Index of `gpa`'s entry at `level` (1 = PTE) of a 512-entry EPT table. */
export function eptIndex(gpa: number, level: number): number {
  return Math.floor(gpa / 2 ** (12 + 9 * (level - 1))) % 512;
}

export interface EptMapOptions {
  /** 1 = 4 KiB, 2 = 2 MiB, 3 = 1 GiB. */
  readonly leafLevel?: 1 | 2 | 3;
  /** Flags of tables created on the way (default RWX). */
  readonly upperLo?: number;
  /** Flags of the leaf's low word (default RWX, WB). Bit 7 is added for a large leaf. */
  readonly leafLo?: number;
}

/**
 * Test helper: L1's EPT12 tables, laid out in L1's guest-physical memory (any `PhysicalMemory`,
 * typically a `MemslotMemory`), table pages taken from a bump pointer. Not exported from the
 * package.
 */
export class GuestEptBuilder {
  readonly memory: PhysicalMemory;
  readonly levels: 4 | 5;
  readonly root: number;
  #next: number;

  constructor(memory: PhysicalMemory, firstFreeGpa: number, levels: 4 | 5 = 4) {
    this.memory = memory;
    this.levels = levels;
    this.#next = firstFreeGpa;
    this.root = this.allocPage();
  }

  /** Guest-physical address of the next page the builder would take. */
  get nextFree(): number {
    return this.#next;
  }

  allocPage(): number {
    const page = this.#next;
    this.#next += 4096;
    for (let i = 0; i < 4096; i += 4) this.memory.write32(page + i, 0);
    return page;
  }

  /** vmcs12's EPT pointer for these tables, as its two words and as a number. */
  eptp(accessedDirty: boolean): { lo: number; hi: number; value: number } {
    const { lo, hi } = encodeEptPointer({
      memoryType: EPT_MEMORY_TYPE.WB,
      walkLength: this.levels,
      accessedDirty,
      supervisorShadowStack: false,
      root: this.root,
    });
    return { lo, hi, value: hi * TWO_32 + lo };
  }

  /** Maps L2 GPA `gpa` to L1 GPA `target`, creating tables as needed. */
  map(gpa: number, target: number, options: EptMapOptions = {}): void {
    const leafLevel = options.leafLevel ?? 1;
    const upperLo = options.upperLo ?? EPTE_LO.XWR;
    let table = this.root;
    for (let level = this.levels; level > leafLevel; level--) {
      const entry = table + eptIndex(gpa, level) * 8;
      let lo = this.memory.read32(entry);
      let hi = this.memory.read32(entry + 4);
      if ((lo & EPTE_LO.XWR) === 0) {
        const next = this.allocPage();
        lo = ((next % TWO_32) | upperLo) >>> 0;
        hi = Math.floor(next / TWO_32);
        this.memory.write64(entry, lo, hi);
      }
      table = (hi & 0xfffff) * TWO_32 + ((lo & 0xfffff000) >>> 0);
    }
    const ps = leafLevel > 1 ? EPTE_LO.LARGE_PAGE : 0;
    this.memory.write64(
      table + eptIndex(gpa, leafLevel) * 8,
      (((target % TWO_32) & 0xfffff000) | (options.leafLo ?? EPT12_LEAF_RWX) | ps) >>> 0,
      Math.floor(target / TWO_32),
    );
  }

  /** Guest-physical address of the entry at `level` on `gpa`'s path; -1 if a table above is missing. */
  entryAddress(gpa: number, level: number): number {
    let table = this.root;
    for (let l = this.levels; l > level; l--) {
      const entry = table + eptIndex(gpa, l) * 8;
      const lo = this.memory.read32(entry);
      const hi = this.memory.read32(entry + 4);
      if ((lo & EPTE_LO.XWR) === 0 || (l <= 3 && (lo & EPTE_LO.LARGE_PAGE) !== 0)) return -1;
      table = (hi & 0xfffff) * TWO_32 + ((lo & 0xfffff000) >>> 0);
    }
    return table + eptIndex(gpa, level) * 8;
  }
}
