import type { PhysicalMemory } from "../physical-memory";

/**
 * Test helper: lays out IA-32e page tables in a memory, allocating table pages from a bump
 * pointer. Not exported from the package; tests across layers build their own fixtures.
 */
export class PageTableBuilder {
  #next: number;
  readonly root: number;

  readonly memory: PhysicalMemory;
  readonly levels: 4 | 5;

  constructor(memory: PhysicalMemory, firstFreePage: number, levels: 4 | 5 = 4) {
    this.memory = memory;
    this.levels = levels;
    this.#next = firstFreePage;
    this.root = this.allocPage();
  }

  allocPage(): number {
    const page = this.#next;
    this.#next += 4096;
    for (let i = 0; i < 4096; i += 4) this.memory.write32(page + i, 0);
    return page;
  }

  /**
   * Maps the 64-bit linear address `la` (a number below 2^53) to `pa` with a leaf at `leafLevel`
   * (1 = 4 KiB, 2 = 2 MiB, 3 = 1 GiB). `upperLo`/`leafLo` are the low-word flags of the non-leaf
   * and leaf entries; `leafHi` the leaf's high-word flags (XD, protection key).
   */
  map(
    la: number,
    pa: number,
    opts: { leafLevel?: 1 | 2 | 3; upperLo?: number; leafLo?: number; leafHi?: number } = {},
  ): void {
    const leafLevel = opts.leafLevel ?? 1;
    const upperLo = opts.upperLo ?? 0x7; // P | RW | US
    const leafLo = opts.leafLo ?? 0x7;
    let table = this.root;
    for (let level = this.levels; level > leafLevel; level--) {
      const index = Math.floor(la / 2 ** (12 + 9 * (level - 1))) % 512;
      const entry = table + index * 8;
      let lo = this.memory.read32(entry);
      if ((lo & 1) === 0) {
        const next = this.allocPage();
        lo = (next >>> 0) | upperLo;
        this.memory.write64(entry, lo, Math.floor(next / 2 ** 32));
      }
      table =
        (this.memory.read32(entry + 4) & 0xfffff) * 2 ** 32 +
        ((this.memory.read32(entry) & 0xfffff000) >>> 0);
    }
    const index = Math.floor(la / 2 ** (12 + 9 * (leafLevel - 1))) % 512;
    const ps = leafLevel > 1 ? 0x80 : 0;
    this.memory.write64(
      table + index * 8,
      ((pa >>> 0) & 0xfffff000) | leafLo | ps,
      Math.floor(pa / 2 ** 32) | (opts.leafHi ?? 0),
    );
  }
}
