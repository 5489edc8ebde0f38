import { type PhysicalMemory, PTE_LO } from "@nestvisor/x86-arch";

const TWO_32 = 4294967296;
/** P | R/W | U/S. */
export const GUEST_PTE_PWU = PTE_LO.PRESENT | PTE_LO.WRITABLE | PTE_LO.USER;

/** Which guest paging mode the tables are for. */
export type GuestTableMode = "level4" | "pae" | "bit32";

export interface GuestMapOptions {
  /** 1 = 4 KiB; 2 = 2 MiB (4 MiB for 32-bit paging); 3 = 1 GiB (4-level only). */
  readonly leafLevel?: 1 | 2 | 3;
  /** Low-word flags of tables created on the way (default P | R/W | U/S). */
  readonly upperLo?: number;
  /** Low-word flags of the leaf (default P | R/W | U/S); bit 7 is added for a large leaf. */
  readonly leafLo?: number;
  /** High-word flags of the leaf (XD). */
  readonly leafHi?: number;
}

/**
 * Test helper: a guest's own page tables (4-level, PAE or 32-bit) laid out in its guest-physical
 * memory, table pages taken from a bump pointer. For PAE the PDPT is the first 32 bytes of the
 * root page and its entries carry only P and the address (SDM 4.4.1). Not exported from the package.
 */
export class GuestPageTableBuilder {
  readonly memory: PhysicalMemory;
  readonly mode: GuestTableMode;
  /** The CR3 value (the table's guest-physical address). */
  readonly cr3: number;
  #next: number;

  constructor(memory: PhysicalMemory, firstFreeGpa: number, mode: GuestTableMode) {
    this.memory = memory;
    this.mode = mode;
    this.#next = firstFreeGpa;
    this.cr3 = this.allocPage();
  }

  get nextFree(): number {
    return this.#next;
  }

  allocPage(): number {
    const page = this.#next;
    this.#next += 4096;
    for (let i = 0; i < 4096; i += 4) this.memory.write32(page + i, 0);
    return page;
  }

  get #wide(): boolean {
    return this.mode !== "bit32";
  }

  /** Entry size in bytes. */
  get entryBytes(): number {
    return this.#wide ? 8 : 4;
  }

  /** The four PDPTE registers a PAE guest's MOV to CR3 would load. */
  pdptes(): number[] {
    const out: number[] = [];
    for (let i = 0; i < 4; i++) {
      out.push(this.memory.read32(this.cr3 + i * 8 + 4) * TWO_32 + this.memory.read32(this.cr3 + i * 8));
    }
    return out;
  }

  /** Top level of the walk (the PDPT counts as level 3 for PAE). */
  get topLevel(): number {
    return this.mode === "level4" ? 4 : this.mode === "pae" ? 3 : 2;
  }

  /** Index of `la`'s entry at `level`. */
  index(la: number, level: number): number {
    if (this.mode === "bit32")
      return level === 2 ? Math.floor(la / 2 ** 22) % 1024 : Math.floor(la / 4096) % 1024;
    if (this.mode === "pae" && level === 3) return Math.floor(la / 2 ** 30) % 4;
    return Math.floor(la / 2 ** (12 + 9 * (level - 1))) % 512;
  }

  /** Maps linear address `la` (below 2^53, canonical high bits dropped) to guest-physical `pa`. */
  map(la: number, pa: number, options: GuestMapOptions = {}): void {
    const leafLevel = options.leafLevel ?? 1;
    const upperLo = options.upperLo ?? GUEST_PTE_PWU;
    let table = this.cr3;
    for (let level = this.topLevel; level > leafLevel; level--) {
      const entry = table + this.index(la, level) * this.entryBytes;
      let lo = this.memory.read32(entry);
      let hi = this.#wide ? this.memory.read32(entry + 4) : 0;
      if ((lo & PTE_LO.PRESENT) === 0) {
        const next = this.allocPage();
        // A PDPTE has only P (bits 2:1 are reserved).
        const flags = this.mode === "pae" && level === 3 ? PTE_LO.PRESENT : upperLo;
        lo = ((next % TWO_32) | flags) >>> 0;
        hi = Math.floor(next / TWO_32);
        this.#write(entry, lo, hi);
      }
      table = (hi & 0xfffff) * TWO_32 + ((lo & 0xfffff000) >>> 0);
    }
    const ps = leafLevel > 1 ? PTE_LO.PAGE_SIZE : 0;
    const lo = (((pa % TWO_32) & 0xfffff000) | (options.leafLo ?? GUEST_PTE_PWU) | ps) >>> 0;
    this.#write(
      table + this.index(la, leafLevel) * this.entryBytes,
      lo,
      (Math.floor(pa / TWO_32) | (options.leafHi ?? 0)) >>> 0,
    );
  }

  /** Guest-physical address of the entry at `level` on `la`'s path; -1 if a table above is missing. */
  entryAddress(la: number, level: number): number {
    let table = this.cr3;
    for (let l = this.topLevel; l > level; l--) {
      const entry = table + this.index(la, l) * this.entryBytes;
      const lo = this.memory.read32(entry);
      const hi = this.#wide ? this.memory.read32(entry + 4) : 0;
      if ((lo & PTE_LO.PRESENT) === 0) return -1;
      // A large leaf: bit 7 of a PDPTE/PDE in 4-level paging, of a PDE in PAE and 32-bit paging.
      const largeLevel = this.mode === "level4" ? l <= 3 : l === 2;
      if (largeLevel && (lo & PTE_LO.PAGE_SIZE) !== 0) return -1;
      table = (hi & 0xfffff) * TWO_32 + ((lo & 0xfffff000) >>> 0);
    }
    return table + this.index(la, level) * this.entryBytes;
  }

  #write(entry: number, lo: number, hi: number): void {
    if (this.#wide) this.memory.write64(entry, lo, hi);
    else this.memory.write32(entry, lo);
  }
}
