import { EPT_MEMORY_TYPE, EPTE_LO, type PhysicalMemory, PTE_HI, PTE_LO } from "@nestvisor/x86-arch";
import { ACC } from "../page-role";
import { SPTE_LO } from "../spte";

/**
 * Test helper: lays out L0-style tables by hand in host memory — EPT-format (TDP, EPT02) or
 * 64-bit x86 (shadow paging, 4/5 levels or a PAE root) — so audit tests do not depend on the MMU
 * code that normally builds them. Entries carry KVM's present bit 11 as KVM's SPTEs do (a PAE
 * root's entries only P, as KVM writes them). Table pages come from `newTable`, which may
 * allocate through a `ShadowPageStore` to give them a role and gfn.
 */
export type HandTableFormat = "ept" | "x86" | "x86-pae";

/** Returns the host-physical address of a zeroed page for a table of `level` covering [`base`, ...). */
export type NewTable = (level: number, base: number) => number;

const TWO_32 = 4294967296;
const SPAN_BYTES = [0, 2 ** 12, 2 ** 21, 2 ** 30, 2 ** 39, 2 ** 48] as const;
const WB_LEAF = (EPT_MEMORY_TYPE.WB << EPTE_LO.MEMORY_TYPE_SHIFT) | EPTE_LO.IGNORE_PAT;

export class HandBuiltTables {
  readonly memory: PhysicalMemory;
  readonly format: HandTableFormat;
  /** 4 or 5, or 3 for a PAE root. */
  readonly levels: number;
  readonly root: number;
  readonly #newTable: NewTable;

  constructor(memory: PhysicalMemory, format: HandTableFormat, levels: number, newTable: NewTable) {
    this.memory = memory;
    this.format = format;
    this.levels = format === "x86-pae" ? 3 : levels;
    this.#newTable = newTable;
    this.root = newTable(this.levels, 0);
  }

  /**
   * Maps the input range at `address` (aligned to the leaf size) to host `frame` with a leaf at
   * `leafLevel` and `rights` (ACC form), creating tables on the way.
   */
  map(address: number, frame: number, leafLevel: number, rights: number): void {
    let table = this.root;
    let level = this.levels;
    if (this.format === "x86-pae") {
      const pa = this.root + Math.floor(address / SPAN_BYTES[3]) * 8;
      if ((this.memory.read32(pa) & PTE_LO.PRESENT) === 0) {
        const next = this.#newTable(2, address - (address % SPAN_BYTES[3]));
        this.memory.write64(pa, ((next % TWO_32) | PTE_LO.PRESENT) >>> 0, Math.floor(next / TWO_32));
      }
      table = this.#pointer(pa);
      level = 2;
    }
    for (; level > leafLevel; level--) {
      const pa = this.entryIn(table, address, level);
      if ((this.memory.read32(pa) & SPTE_LO.MMU_PRESENT) === 0) {
        const next = this.#newTable(level - 1, address - (address % SPAN_BYTES[level]!));
        this.memory.write64(pa, this.#nonLeafLo(next), Math.floor(next / TWO_32));
      }
      table = this.#pointer(pa);
    }
    this.memory.write64(
      this.entryIn(table, address, leafLevel),
      this.leafLo(frame, leafLevel, rights),
      this.leafHi(frame, rights),
    );
  }

  /** Host-physical address of the entry at `level` on the way to `address` (the tables must exist). */
  entryAddress(address: number, level: number): number {
    let table = this.root;
    let top = this.levels;
    if (this.format === "x86-pae") {
      const pa = this.root + Math.floor(address / SPAN_BYTES[3]) * 8;
      if (level === 3) return pa;
      table = this.#pointer(pa);
      top = 2;
    }
    for (let l = top; l > level; l--) table = this.#pointer(this.entryIn(table, address, l));
    return this.entryIn(table, address, level);
  }

  /** The entry of the table at `table` (of `level`) that covers `address`. */
  entryIn(table: number, address: number, level: number): number {
    return table + (Math.floor(address / SPAN_BYTES[level]!) % 512) * 8;
  }

  /** Low word of a leaf in this format. */
  leafLo(frame: number, level: number, rights: number): number {
    let lo = SPTE_LO.MMU_PRESENT | (frame % TWO_32);
    if (level > 1) lo |= 0x80;
    if (this.format === "ept") {
      lo |= WB_LEAF | EPTE_LO.ACCESSED;
      if ((rights & ACC.USER) !== 0) lo |= EPTE_LO.READ;
      if ((rights & ACC.WRITE) !== 0) lo |= EPTE_LO.WRITE;
      if ((rights & ACC.EXEC) !== 0) lo |= EPTE_LO.EXECUTE;
    } else {
      lo |= PTE_LO.PRESENT | PTE_LO.ACCESSED | (rights & (ACC.WRITE | ACC.USER));
    }
    return lo >>> 0;
  }

  /** High word of a leaf in this format (NX for x86 without EXEC). */
  leafHi(frame: number, rights: number): number {
    const hi = Math.floor(frame / TWO_32);
    return (this.format !== "ept" && (rights & ACC.EXEC) === 0 ? hi | PTE_HI.XD : hi) >>> 0;
  }

  #nonLeafLo(next: number): number {
    const rights =
      this.format === "ept"
        ? EPTE_LO.READ | EPTE_LO.WRITE | EPTE_LO.EXECUTE | EPTE_LO.ACCESSED
        : PTE_LO.PRESENT | PTE_LO.WRITABLE | PTE_LO.USER | PTE_LO.ACCESSED;
    return (SPTE_LO.MMU_PRESENT | rights | (next % TWO_32)) >>> 0;
  }

  #pointer(pa: number): number {
    const lo = this.memory.read32(pa);
    const hi = this.memory.read32(pa + 4);
    return (hi & 0xfffff) * TWO_32 + ((lo & 0xfffff000) >>> 0);
  }
}
