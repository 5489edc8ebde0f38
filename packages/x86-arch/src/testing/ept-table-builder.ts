import { EPTE_LO } from "../ept-entry";
import { encodeEptPointer } from "../ept-pointer";
import type { PhysicalMemory } from "../physical-memory";

const TWO_32 = 4294967296;
/** Leaf default: RWX, memory type WB (6), as KVM and the unit tests build them. */
export const EPT_LEAF_RWX_WB = EPTE_LO.XWR | (6 << EPTE_LO.MEMORY_TYPE_SHIFT);

/**
 * Test helper: lays out EPT tables in host memory, allocating table pages from a bump pointer.
 * Not exported from the package.
 */
export class EptTableBuilder {
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

  /** The EPTP for these tables: WB, this walk length, optional A/D enable. */
  eptp(opts: { accessedDirty?: boolean; supervisorShadowStack?: boolean } = {}): { lo: number; hi: number } {
    return encodeEptPointer({
      memoryType: 6,
      walkLength: this.levels,
      accessedDirty: opts.accessedDirty ?? false,
      supervisorShadowStack: opts.supervisorShadowStack ?? false,
      root: this.root,
    });
  }

  /**
   * Maps `gpa` to `hpa` with a leaf at `leafLevel` (1 = 4 KiB, 2 = 2 MiB, 3 = 1 GiB). Missing
   * tables are created with `upperLo` (default RWX); `leafLo`/`leafHi` are the leaf's flag bits
   * (default RWX, WB); bit 7 is added for large leaves.
   */
  map(
    gpa: number,
    hpa: number,
    opts: { leafLevel?: 1 | 2 | 3; upperLo?: number; leafLo?: number; leafHi?: number } = {},
  ): void {
    const leafLevel = opts.leafLevel ?? 1;
    const table = this.#tableFor(gpa, leafLevel, opts.upperLo ?? EPTE_LO.XWR);
    const ps = leafLevel > 1 ? EPTE_LO.LARGE_PAGE : 0;
    this.memory.write64(
      table + indexOf(gpa, leafLevel) * 8,
      (((hpa >>> 0) & 0xfffff000) | (opts.leafLo ?? EPT_LEAF_RWX_WB) | ps) >>> 0,
      (Math.floor(hpa / TWO_32) | (opts.leafHi ?? 0)) >>> 0,
    );
  }

  /** Host address of the entry at `level` on the path of `gpa` (the tables above must exist). */
  entryAddress(gpa: number, level: number): number {
    let table = this.root;
    for (let l = this.levels; l > level; l--) {
      const entry = table + indexOf(gpa, l) * 8;
      const lo = this.memory.read32(entry);
      const hi = this.memory.read32(entry + 4);
      if ((lo & 0x407) === 0) throw new Error(`no EPT table at level ${l - 1} for 0x${gpa.toString(16)}`);
      table = (hi & 0xfffff) * TWO_32 + ((lo & 0xfffff000) >>> 0);
    }
    return table + indexOf(gpa, level) * 8;
  }

  /** Reads the entry at `level` for `gpa`. */
  entry(gpa: number, level: number): { lo: number; hi: number } {
    const at = this.entryAddress(gpa, level);
    return { lo: this.memory.read32(at), hi: this.memory.read32(at + 4) };
  }

  /** Rewrites the entry at `level` for `gpa`. */
  setEntry(gpa: number, level: number, lo: number, hi: number): void {
    this.memory.write64(this.entryAddress(gpa, level), lo >>> 0, hi >>> 0);
  }

  #tableFor(gpa: number, leafLevel: number, upperLo: number): number {
    let table = this.root;
    for (let level = this.levels; level > leafLevel; level--) {
      const entry = table + indexOf(gpa, level) * 8;
      let lo = this.memory.read32(entry);
      if ((lo & 0x7) === 0) {
        const next = this.allocPage();
        lo = ((next >>> 0) | upperLo) >>> 0;
        this.memory.write64(entry, lo, Math.floor(next / TWO_32));
      }
      table =
        (this.memory.read32(entry + 4) & 0xfffff) * TWO_32 + ((this.memory.read32(entry) & 0xfffff000) >>> 0);
    }
    return table;
  }
}

function indexOf(gpa: number, level: number): number {
  return Math.floor(gpa / 2 ** (12 + 9 * (level - 1))) % 512;
}
