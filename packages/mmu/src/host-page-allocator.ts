import { PAGE_SIZE, type PhysicalMemory } from "@nestvisor/x86-arch";

/**
 * Host pages for L0's page tables (DESIGN.md §3: "L0's EPT and shadow tables [live] in host
 * memory"). KVM takes zeroed pages from per-vCPU memory caches (kvm: `mmu_shadow_page_cache`,
 * `gfp_zero = __GFP_ZERO`) and frees them with `free_page`; the model hands out 4-KiB pages of a
 * region of host `PhysicalMemory`, so every SPTE the MMU writes is real bytes an `EptWalker` can
 * read.
 *
 * Pages are zeroed when handed out, unless the page is known to be zero already: a page freed
 * with `knownZero` (the TDP MMU clears every present entry before freeing a table) or never
 * written since the allocator was created over memory declared zero.
 *
 * A page's *index* (its offset in the region divided by 4096) is a dense small integer: the
 * shadow-page store uses it as the id of the `kvm_mmu_page` that owns the page, as KVM reaches the
 * `kvm_mmu_page` of a table through `page_private(virt_to_page(spt))`.
 */
export interface HostPageAllocatorOptions {
  /** First byte of the region (4-KiB aligned). */
  readonly base: number;
  /** Number of 4-KiB pages in the region. */
  readonly pages: number;
  /** The region's memory is all zero now (a fresh `DenseMemory`/`SparseMemory`): skip the first zeroing. */
  readonly zeroed?: boolean;
}

const ZERO_PAGE = new Uint8Array(PAGE_SIZE);

export class HostPageAllocator {
  readonly memory: PhysicalMemory;
  /** Host-physical address of the region's first page. */
  readonly base: number;
  /** Pages in the region. */
  readonly capacity: number;
  /** Stack of free page indices; the next page handed out is `#free[#freeCount - 1]`. */
  readonly #free: Int32Array;
  #freeCount: number;
  /** 1 while a page is handed out. */
  readonly #allocated: Uint8Array;
  /** 1 when a page's bytes may be non-zero. */
  readonly #dirty: Uint8Array;
  #peak = 0;
  #allocations = 0;
  #zeroings = 0;

  constructor(memory: PhysicalMemory, options: HostPageAllocatorOptions) {
    const { base, pages } = options;
    if (!Number.isInteger(base) || base < 0 || base % PAGE_SIZE !== 0) {
      throw new RangeError(`host page region base 0x${base.toString(16)} is not a 4-KiB-aligned address`);
    }
    if (!Number.isInteger(pages) || pages <= 0 || pages >= 2 ** 31) {
      throw new RangeError(`host page region size ${pages} pages is not a positive 31-bit count`);
    }
    if (base + pages * PAGE_SIZE > memory.size) {
      throw new RangeError(
        `host page region [0x${base.toString(16)}, +${pages} pages) exceeds host memory of 0x${memory.size.toString(16)} bytes`,
      );
    }
    this.memory = memory;
    this.base = base;
    this.capacity = pages;
    this.#free = new Int32Array(pages);
    // Hand out low addresses first: deterministic and easy to read in dumps.
    for (let i = 0; i < pages; i++) this.#free[i] = pages - 1 - i;
    this.#freeCount = pages;
    this.#allocated = new Uint8Array(pages);
    this.#dirty = new Uint8Array(pages).fill(options.zeroed === true ? 0 : 1);
  }

  /** Pages handed out now. */
  get inUse(): number {
    return this.capacity - this.#freeCount;
  }

  /** Pages left. */
  get available(): number {
    return this.#freeCount;
  }

  /** Largest `inUse` seen. */
  get peakInUse(): number {
    return this.#peak;
  }

  /** Pages handed out since creation. */
  get allocations(): number {
    return this.#allocations;
  }

  /** Pages that had to be cleared when handed out. */
  get zeroings(): number {
    return this.#zeroings;
  }

  /**
   * A zeroed page; returns its host-physical address. Throws a RangeError when the region is
   * exhausted (KVM would fail the fault with -ENOMEM after its caches ran dry).
   */
  alloc(): number {
    if (this.#freeCount === 0) {
      throw new RangeError(
        `host page region at 0x${this.base.toString(16)} is exhausted (${this.capacity} pages): more guest memory ` +
          "mapped and touched than this KVM's page-table pool holds is not modelled",
      );
    }
    const index = this.#free[--this.#freeCount]!;
    this.#allocated[index] = 1;
    const hpa = this.base + index * PAGE_SIZE;
    if (this.#dirty[index] === 1) {
      this.memory.writeBytes(hpa, ZERO_PAGE);
      this.#zeroings++;
    }
    this.#dirty[index] = 1;
    this.#allocations++;
    const inUse = this.capacity - this.#freeCount;
    if (inUse > this.#peak) this.#peak = inUse;
    return hpa;
  }

  /**
   * Returns a page. `knownZero` promises every byte of it is zero (the next `alloc` then skips
   * clearing it). Throws a RangeError for an address outside the region, not page aligned, or not
   * handed out (a double free is a bug in the model).
   */
  free(hpa: number, knownZero = false): void {
    const index = this.pageIndex(hpa);
    if (index < 0 || this.#allocated[index] !== 1) {
      throw new RangeError(`host page 0x${hpa.toString(16)} is not an allocated page of this region`);
    }
    this.#allocated[index] = 0;
    if (knownZero) this.#dirty[index] = 0;
    this.#free[this.#freeCount++] = index;
  }

  /** Index of the page at `hpa` in the region, or -1 when `hpa` is not a page of the region. */
  pageIndex(hpa: number): number {
    const offset = hpa - this.base;
    if (!(offset >= 0 && offset < this.capacity * PAGE_SIZE) || offset % PAGE_SIZE !== 0) return -1;
    return offset / PAGE_SIZE;
  }

  /** Host-physical address of page `index`. */
  pageAddress(index: number): number {
    return this.base + index * PAGE_SIZE;
  }

  /** The page at `hpa` is handed out. */
  isAllocated(hpa: number): boolean {
    const index = this.pageIndex(hpa);
    return index >= 0 && this.#allocated[index] === 1;
  }
}
