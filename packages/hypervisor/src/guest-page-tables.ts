/**
 * Builds a workload's address spaces (`WorkloadSetup.addressSpaces`) as real guest page tables in
 * the guest's physical memory, so that the page walker translates the workload's GVAs the way the
 * processor would (DESIGN.md §3: memory is real).
 *
 * The tables are taken from a caller-given region of guest-physical memory with a bump allocator
 * (the runtime puts the region at the top of guest memory, above the workload's own memory). Every
 * input is checked before anything is written, and the whole layout is planned first, so a region
 * that is too small is reported with the number of pages needed and nothing is written.
 *
 * Entry contents (SDM 4.3-4.5):
 * - non-leaf entries are present, R/W = 1, U/S = 1 and never XD, so that the leaf alone decides the
 *   rights (SDM 4.6.1 combines R/W and U/S of all levels with AND, XD with OR);
 * - PAE PDPTEs hold only P and the address: R/W, U/S and XD are reserved there (SDM 4.4.1);
 * - leaves carry P, R/W from `writable`, U/S from `user`, PS above level 1, and XD for a mapping
 *   that is not executable when XD exists: PAE or IA-32e paging with EFER.NXE in the setup and NX
 *   in the CPU (SDM 4.6.1; without NXE bit 63 is reserved, so nothing can be made non-executable);
 * - accessed and dirty flags are clear (the walker sets them, SDM 4.8); PWT, PCD, PAT and G are 0.
 *
 * Pages share intermediate tables: one table per (level, GVA block) per address space. A PAE
 * page-directory-pointer table (32 bytes) takes a page of its own. Only numbers are used (no
 * BigInt): GVAs are handled as 4-KiB page numbers, which are exact below 2^53.
 */
import {
  type CpuFeatures,
  CR4,
  EFER,
  MODERN_CPU,
  PAGE_1G,
  PAGE_2M,
  PAGE_4K,
  PAGE_4M,
  PAGING_MODE,
  PAGING_MODE_NAMES,
  type PagingMode,
  type PhysicalMemory,
  PTE_HI,
  PTE_LO,
} from "@nestvisor/x86-arch";
import { inMmioWindow, MMIO_WINDOW_BASE, MMIO_WINDOW_END } from "./mmio-devices";
import type { AddressSpaceLayout, GvaMapping, WorkloadSetup } from "./workload-ops";

/** Where the page tables may go: `pages` 4-KiB pages of guest-physical memory from `base`. */
export interface PageTableRegion {
  /** Guest-physical address of the first page (4-KiB aligned). */
  readonly base: number;
  readonly pages: number;
}

/** The built tables. */
export interface GuestPageTables {
  /**
   * CR3 value per address space, in `setup.addressSpaces` order: the root table's address with the
   * space's PCID in bits 11:0 (SDM 4.10.1), PWT and PCD clear. `[0]` when paging is off.
   */
  readonly roots: readonly number[];
  /** Table pages taken from the region (from `region.base` upwards). */
  readonly tablePages: number;
  /**
   * PAE paging only: per address space, the four PDPTE values a MOV to CR3 of that root loads
   * (SDM 4.4.1; what `loadPdptes` reads back), ready for `createPagingContext`.
   */
  readonly pdptes?: readonly (readonly number[])[];
}

/** An input the builder refuses; `space` and `mapping` index the offending address space and mapping. */
export class GuestPageTableError extends Error {
  readonly space: number | null;
  readonly mapping: number | null;
  constructor(message: string, space: number | null = null, mapping: number | null = null) {
    super(message);
    this.name = "GuestPageTableError";
    this.space = space;
    this.mapping = mapping;
  }
}

const TWO_32 = 4294967296;
/** 4-KiB pages in the 64-bit linear space: a GVA's page number is below this (and exact). */
const PAGES_2_64 = 2 ** 52;
const PAGE_FLAGS = PTE_LO.PRESENT | PTE_LO.WRITABLE | PTE_LO.USER;
const ZERO_PAGE = new Uint8Array(PAGE_4K);

/** The shape of a paging mode's tables. */
interface Shape {
  readonly mode: PagingMode;
  /** 8-byte entries (PAE, IA-32e) rather than 4-byte ones (32-bit paging). */
  readonly wide: boolean;
  /** Level of the root table's entries (PAE: 3, the PDPT). */
  readonly top: number;
  /** log2 of the number of entries in a table (9, or 10 in 32-bit paging). */
  readonly indexBits: number;
  /** Linear-address width in bits (32, 48 or 57; SDM 4.1.1). */
  readonly width: number;
}

function shapeOf(mode: PagingMode): Shape {
  switch (mode) {
    case PAGING_MODE.BIT32:
      return { mode, wide: false, top: 2, indexBits: 10, width: 32 };
    case PAGING_MODE.PAE:
      return { mode, wide: true, top: 3, indexBits: 9, width: 32 };
    case PAGING_MODE.LEVEL4:
      return { mode, wide: true, top: 4, indexBits: 9, width: 48 };
    default:
      return { mode, wide: true, top: 5, indexBits: 9, width: 57 };
  }
}

function hex(value: number): string {
  return `0x${value.toString(16)}`;
}

/** A mapping's 64-bit GVA in hex. */
function gvaText(mapping: GvaMapping): string {
  const { gvaLo, gvaHi } = mapping;
  if (gvaHi === 0) return hex(gvaLo);
  return `0x${gvaHi.toString(16)}${gvaLo.toString(16).padStart(8, "0")}`;
}

function spaceLabel(space: AddressSpaceLayout, s: number): string {
  return `address space ${s} ("${space.name}")`;
}

function isUint32(value: number): boolean {
  return Number.isInteger(value) && value >= 0 && value < TWO_32;
}

/** Why a page size cannot be used, or null (SDM 4.3, 4.4.2, 4.5.4 and the CPUID bits of 4.1.4). */
function pageSizeProblem(pageSize: number, setup: WorkloadSetup, features: CpuFeatures): string | null {
  const mode = setup.pagingMode;
  const name = PAGING_MODE_NAMES[mode];
  const longMode = mode === PAGING_MODE.LEVEL4 || mode === PAGING_MODE.LEVEL5;
  switch (pageSize) {
    case PAGE_4K:
      return null;
    case PAGE_2M:
      // SDM 4.4.2, 4.5.4: a PDE with PS maps 2 MiB in PAE and IA-32e paging.
      return mode === PAGING_MODE.PAE || longMode ? null : `2-MiB pages do not exist in ${name} paging`;
    case PAGE_4M:
      // SDM 4.3: a PDE with PS maps 4 MiB only in 32-bit paging with CR4.PSE (CPUID.01H:EDX.PSE).
      if (mode !== PAGING_MODE.BIT32) return `4-MiB pages exist only in 32-bit paging, not ${name}`;
      if ((setup.cr4 & CR4.PSE) === 0) return "4-MiB pages need CR4.PSE in the setup (SDM 4.3)";
      if (!features.pse) return "4-MiB pages need a CPU with PSE (CPUID.01H:EDX[3])";
      return null;
    case PAGE_1G:
      // SDM 4.5.4: a PDPTE with PS maps 1 GiB in IA-32e paging when CPUID.80000001H:EDX[26].
      if (!longMode) return `1-GiB pages exist only in 4-level and 5-level paging, not ${name}`;
      if (!features.gbPages) return "1-GiB pages need a CPU with Page1GB (CPUID.80000001H:EDX[26])";
      return null;
    default:
      return `page size ${pageSize} is not 4 KiB, 2 MiB, 4 MiB or 1 GiB`;
  }
}

/** Level of the leaf entry for a page size. */
function leafLevelOf(pageSize: number): number {
  if (pageSize === PAGE_4K) return 1;
  return pageSize === PAGE_1G ? 3 : 2;
}

/** A checked mapping: its GVA as a 4-KiB page number (mode width only) and its extent in 4-KiB pages. */
interface PlannedMapping {
  readonly mapping: GvaMapping;
  readonly index: number;
  readonly vpn: number;
  readonly span: number;
}

/** Checks a mapping on its own; returns its GVA page number. */
function checkMapping(
  setup: WorkloadSetup,
  features: CpuFeatures,
  shape: Shape,
  region: PageTableRegion | null,
  mapping: GvaMapping,
  fail: (message: string) => never,
): number {
  const { pageSize, pages, gvaLo, gvaHi, gpa } = mapping;
  const sizeProblem = pageSizeProblem(pageSize, setup, features);
  if (sizeProblem !== null) fail(sizeProblem);
  if (!Number.isInteger(pages) || pages <= 0) fail(`pages ${pages} is not a positive integer`);
  if (!isUint32(gvaLo) || !isUint32(gvaHi)) fail(`GVA halves ${gvaLo}, ${gvaHi} are not 32-bit integers`);
  if (gvaLo % pageSize !== 0)
    fail(`GVA ${gvaText(mapping)} is not aligned to the page size ${hex(pageSize)}`);
  if (!Number.isSafeInteger(gpa) || gpa < 0) fail(`GPA ${gpa} is not a non-negative integer`);
  if (gpa % pageSize !== 0) fail(`GPA ${hex(gpa)} is not aligned to the page size ${hex(pageSize)}`);

  // The linear range must fit the mode's address width and, in IA-32e mode, be canonical without
  // crossing the hole (SDM 3.3.7.1): a non-canonical GVA cannot be walked at all.
  const span = pages * (pageSize / PAGE_4K);
  const widthPages = 2 ** (shape.width - 12);
  let vpn: number;
  if (shape.width === 32) {
    if (gvaHi !== 0 || gvaLo / PAGE_4K + span > widthPages)
      fail(`GVA range does not fit the 32-bit linear addresses of ${PAGING_MODE_NAMES[shape.mode]} paging`);
    vpn = gvaLo / PAGE_4K;
  } else {
    const full = gvaHi * 2 ** 20 + gvaLo / PAGE_4K; // the 64-bit GVA's page number, < 2^52
    const half = widthPages / 2;
    const low = full + span <= half;
    const high = full >= PAGES_2_64 - half && full + span <= PAGES_2_64;
    if (!low && !high) {
      fail(
        `GVA range from ${gvaText(mapping)} is not canonical for ${shape.width}-bit linear addresses (SDM 3.3.7.1)`,
      );
    }
    vpn = full % widthPages;
  }

  const bytes = pages * pageSize;
  // A mapping is of RAM, or of the MMIO device window (mmio-devices.ts), which must lie above RAM.
  const device = inMmioWindow(gpa, bytes);
  if (gpa + bytes > setup.memoryBytes && !device) {
    fail(
      `maps guest-physical ${hex(gpa)}..${hex(gpa + bytes - 1)}, outside guest memory [0, ${hex(setup.memoryBytes)}) and the MMIO device window [${hex(MMIO_WINDOW_BASE)}, ${hex(MMIO_WINDOW_END)})`,
    );
  }
  if (device && setup.memoryBytes > MMIO_WINDOW_BASE) {
    fail(
      `maps the MMIO device window at ${hex(gpa)}, but guest memory [0, ${hex(setup.memoryBytes)}) reaches into the window, so no device is there`,
    );
  }
  // What an entry can hold (SDM 4.3: 32-bit paging frames are below 4 GiB, except 4-MiB pages with
  // PSE-36 below 2^min(MAXPHYADDR, 40); SDM 4.4/4.5: below 2^MAXPHYADDR).
  let limitBits = features.maxPhysAddr;
  if (shape.mode === PAGING_MODE.BIT32)
    limitBits = pageSize === PAGE_4M && features.pse36 ? Math.min(features.maxPhysAddr, 40) : 32;
  if (gpa + bytes > 2 ** limitBits) {
    fail(
      `maps guest-physical ${hex(gpa)}..${hex(gpa + bytes - 1)}, beyond the ${limitBits}-bit physical addresses these entries hold`,
    );
  }
  if (region !== null && region.pages > 0) {
    const regionEnd = region.base + region.pages * PAGE_4K;
    if (gpa < regionEnd && region.base < gpa + bytes) {
      fail(
        `maps guest-physical ${hex(gpa)}..${hex(gpa + bytes - 1)}, which overlaps the page-table region ${hex(region.base)}..${hex(regionEnd - 1)}`,
      );
    }
  }
  return vpn;
}

function checkRegion(
  setup: WorkloadSetup,
  features: CpuFeatures,
  memory: PhysicalMemory,
  region: PageTableRegion,
): void {
  const { base, pages } = region;
  const fail = (message: string): never => {
    throw new GuestPageTableError(`page-table region: ${message}`);
  };
  if (!Number.isSafeInteger(base) || base < 0 || base % PAGE_4K !== 0)
    fail(`base ${base} is not a 4-KiB-aligned guest-physical address`);
  if (!Number.isSafeInteger(pages) || pages < 0) fail(`pages ${pages} is not a non-negative integer`);
  const end = base + pages * PAGE_4K;
  if (end > memory.size)
    fail(`${hex(base)}..${hex(end - 1)} is beyond the memory's ${hex(memory.size)} bytes`);
  // Tables are reached through entries that hold physical addresses below 2^MAXPHYADDR (SDM 4.4-4.5),
  // or below 4 GiB in 32-bit paging (SDM 4.3, CR3 and PDE bits 31:12).
  const limitBits = setup.pagingMode === PAGING_MODE.BIT32 ? 32 : features.maxPhysAddr;
  if (end > 2 ** limitBits)
    fail(`${hex(base)}..${hex(end - 1)} is beyond the ${limitBits}-bit addresses paging entries hold`);
}

/** Checks every space: mappings one by one, then GVA overlaps within a space. */
function checkSpaces(
  setup: WorkloadSetup,
  features: CpuFeatures,
  shape: Shape,
  region: PageTableRegion | null,
): PlannedMapping[][] {
  const longMode = shape.mode === PAGING_MODE.LEVEL4 || shape.mode === PAGING_MODE.LEVEL5;
  return setup.addressSpaces.map((space, s) => {
    const label = spaceLabel(space, s);
    const { pcid } = space;
    if (!Number.isInteger(pcid) || pcid < 0 || pcid > 0xfff)
      throw new GuestPageTableError(`${label}: PCID ${pcid} is not in [0, 0xfff]`, s);
    if (pcid !== 0) {
      // SDM 4.10.1: PCIDs exist only with CR4.PCIDE, which needs IA-32e mode and CPUID PCID.
      if (!longMode || (setup.cr4 & CR4.PCIDE) === 0 || !features.pcid) {
        throw new GuestPageTableError(
          `${label}: PCID ${pcid} needs CR4.PCIDE in IA-32e mode on a CPU with PCID (SDM 4.10.1)`,
          s,
        );
      }
    }
    const planned = space.mappings.map((mapping, m): PlannedMapping => {
      const fail = (message: string): never => {
        throw new GuestPageTableError(`${label}, mappings[${m}]: ${message}`, s, m);
      };
      const vpn = checkMapping(setup, features, shape, region, mapping, fail);
      return { mapping, index: m, vpn, span: mapping.pages * (mapping.pageSize / PAGE_4K) };
    });
    const sorted = [...planned].sort((a, b) => a.vpn - b.vpn);
    for (let i = 1; i < sorted.length; i++) {
      const previous = sorted[i - 1]!;
      const current = sorted[i]!;
      if (current.vpn < previous.vpn + previous.span) {
        const [first, second] = previous.index < current.index ? [previous, current] : [current, previous];
        throw new GuestPageTableError(
          `${label}, mappings[${second.index}]: overlaps mappings[${first.index}] in GVA (at ${gvaText(current.mapping)})`,
          s,
          second.index,
        );
      }
    }
    return planned;
  });
}

/**
 * Lays the tables out. With `memory` null it only assigns addresses (the plan: counts pages and
 * finds where the region runs out); with a memory it writes exactly that plan.
 */
class TableLayout {
  readonly shape: Shape;
  readonly memory: PhysicalMemory | null;
  readonly base: number;
  readonly limit: number;
  /** Pages allocated so far. */
  used = 0;
  /** Where the region first ran out, for the error. */
  overflowSpace = -1;
  overflowMapping = -1;
  /** PAE: the PDPT of each space must be below 4 GiB, CR3 holding only bits 31:5 (SDM 4.4.1). */
  highPdptSpace = -1;
  readonly roots: number[] = [];
  readonly pdptes: number[][] = [];

  constructor(shape: Shape, memory: PhysicalMemory | null, base: number, limit: number) {
    this.shape = shape;
    this.memory = memory;
    this.base = base;
    this.limit = limit;
  }

  #alloc(space: number, mapping: number): number {
    if (this.used === this.limit && this.overflowSpace < 0) {
      this.overflowSpace = space;
      this.overflowMapping = mapping;
    }
    const page = this.base + this.used * PAGE_4K;
    this.used++;
    if (this.memory !== null) this.memory.writeBytes(page, ZERO_PAGE);
    return page;
  }

  /** Writes a non-leaf entry at `table[index]` pointing to `child` (level `level` entry). */
  #writePointer(table: number, index: number, level: number, child: number): void {
    const memory = this.memory;
    if (memory === null) return;
    const shape = this.shape;
    if (!shape.wide) {
      memory.write32(table + index * 4, (child | PAGE_FLAGS) >>> 0);
      return;
    }
    // A PAE PDPTE has only P and the address: bits 2:1 and 63 are reserved (SDM 4.4.1, Table 4-8).
    const flags = shape.mode === PAGING_MODE.PAE && level === 3 ? PTE_LO.PRESENT : PAGE_FLAGS;
    memory.write64(table + index * 8, ((child % TWO_32) | flags) >>> 0, Math.floor(child / TWO_32));
  }

  /** Lays out one address space; returns its root table's address. */
  space(s: number, planned: readonly PlannedMapping[], xd: boolean, features: CpuFeatures): number {
    const shape = this.shape;
    const { wide, top, indexBits } = shape;
    const entryBytes = wide ? 8 : 4;
    const entries = 2 ** indexBits;
    const root = this.#alloc(s, -1);
    if (shape.mode === PAGING_MODE.PAE && root + PAGE_4K > TWO_32 && this.highPdptSpace < 0)
      this.highPdptSpace = s;
    const pdptes = [0, 0, 0, 0];
    // One table per (level of its entries, GVA block it covers): key = block * 8 + level.
    const tables = new Map<number, number>();
    const memory = this.memory;

    for (const { mapping, index: m, vpn: firstVpn } of planned) {
      const pageSize = mapping.pageSize;
      const step = pageSize / PAGE_4K;
      const leafLevel = leafLevelOf(pageSize);
      // Pages covered by one entry at leafLevel, and by a table of such entries.
      const leafTableSpan = 2 ** (indexBits * leafLevel);
      const entrySpan = leafTableSpan / entries;
      let flagsLo = PTE_LO.PRESENT;
      if (mapping.writable) flagsLo |= PTE_LO.WRITABLE;
      if (mapping.user) flagsLo |= PTE_LO.USER;
      if (leafLevel > 1) flagsLo |= PTE_LO.PAGE_SIZE;
      const flagsHi = xd && !mapping.executable ? PTE_HI.XD : 0;

      let vpn = firstVpn;
      let gpa = mapping.gpa;
      let cachedBlock = -1;
      let table = root;
      for (let p = 0; p < mapping.pages; p++, vpn += step, gpa += pageSize) {
        if (leafLevel < top) {
          const block = Math.floor(vpn / leafTableSpan);
          if (block !== cachedBlock) {
            // Walk down from the root, creating the missing tables and the entries that reach them.
            let t = root;
            for (let level = top; level > leafLevel; level--) {
              const childSpan = 2 ** (indexBits * (level - 1));
              const key = Math.floor(vpn / childSpan) * 8 + (level - 1);
              let child = tables.get(key);
              if (child === undefined) {
                child = this.#alloc(s, m);
                tables.set(key, child);
                const index = Math.floor(vpn / childSpan) % entries;
                this.#writePointer(t, index, level, child);
                if (shape.mode === PAGING_MODE.PAE && level === 3) pdptes[index] = child + PTE_LO.PRESENT;
              }
              t = child;
            }
            cachedBlock = block;
            table = t;
          }
        }
        if (memory === null) continue;
        const entry = table + (Math.floor(vpn / entrySpan) % entries) * entryBytes;
        if (wide) {
          memory.write64(entry, ((gpa % TWO_32) | flagsLo) >>> 0, (Math.floor(gpa / TWO_32) | flagsHi) >>> 0);
        } else {
          // PSE-36: bits 39:32 of a 4-MiB page's address go in PDE bits 20:13 (SDM 4.3, Table 4-4).
          const high = leafLevel === 2 && features.pse36 ? (Math.floor(gpa / TWO_32) & 0xff) << 13 : 0;
          memory.write32(entry, ((gpa % TWO_32) | high | flagsLo) >>> 0);
        }
      }
    }
    this.roots.push(root);
    this.pdptes.push(pdptes);
    return root;
  }
}

function checkedShape(setup: WorkloadSetup): Shape | null {
  const mode = setup.pagingMode;
  if (mode === PAGING_MODE.NONE) {
    if (setup.addressSpaces.length > 0) {
      throw new GuestPageTableError(
        "paging is off: there are no page tables, so there can be no address spaces",
      );
    }
    return null;
  }
  if (PAGING_MODE_NAMES[mode] === undefined) throw new GuestPageTableError(`unknown paging mode ${mode}`);
  return shapeOf(mode);
}

/** XD can be written: PAE or IA-32e paging with EFER.NXE on an NX CPU (SDM 4.1.1, 4.6.1). */
function xdUsable(setup: WorkloadSetup, features: CpuFeatures): boolean {
  return setup.pagingMode >= PAGING_MODE.PAE && features.nx && (setup.efer & EFER.NXE) !== 0;
}

function plan(
  setup: WorkloadSetup,
  features: CpuFeatures,
  shape: Shape,
  planned: readonly PlannedMapping[][],
  memory: PhysicalMemory | null,
  region: PageTableRegion,
): TableLayout {
  const layout = new TableLayout(shape, memory, region.base, region.pages);
  const xd = xdUsable(setup, features);
  planned.forEach((mappings, s) => {
    layout.space(s, mappings, xd, features);
  });
  return layout;
}

/**
 * Number of 4-KiB table pages `buildGuestPageTables` takes for a setup (the size to give the
 * region). Checks the setup like the builder does, except against a region.
 */
export function guestPageTablePages(setup: WorkloadSetup, features: CpuFeatures = MODERN_CPU): number {
  const shape = checkedShape(setup);
  if (shape === null) return 0;
  const planned = checkSpaces(setup, features, shape, null);
  return plan(setup, features, shape, planned, null, { base: 0, pages: Number.MAX_SAFE_INTEGER }).used;
}

/**
 * Table pages the machine gives a workload's page-table region beyond what its tables take (room
 * the model's own page-table edits may need).
 */
export const GUEST_TABLE_SPARE_PAGES = 16;

/**
 * Bytes of a workload's guest-physical memory as the machine lays it out: its RAM, then its
 * page-table region right above it (`tablePages` from `guestPageTablePages`, plus the spare pages).
 */
export function guestPhysicalBytes(setup: WorkloadSetup, tablePages = guestPageTablePages(setup)): number {
  return setup.memoryBytes + (tablePages + GUEST_TABLE_SPARE_PAGES) * 4096;
}

/**
 * Writes the page tables of every address space of `setup` into `memory` (the guest's physical
 * memory), taking table pages from `region` upwards, and returns the CR3 value of each space.
 * Throws a `GuestPageTableError` naming the space and mapping for a bad input, before writing
 * anything: an illegal page size for the mode and CPU, a misaligned or non-canonical GVA, a GPA
 * range outside `[0, setup.memoryBytes)` or overlapping the region, two mappings of one space that
 * overlap in GVA, a PCID without CR4.PCIDE, or a region too small for the tables.
 */
export function buildGuestPageTables(
  setup: WorkloadSetup,
  memory: PhysicalMemory,
  region: PageTableRegion,
  features: CpuFeatures = MODERN_CPU,
): GuestPageTables {
  const shape = checkedShape(setup);
  if (shape === null) return { roots: [0], tablePages: 0 };
  checkRegion(setup, features, memory, region);
  const planned = checkSpaces(setup, features, shape, region);

  const dry = plan(setup, features, shape, planned, null, region);
  if (dry.used > region.pages) {
    const s = dry.overflowSpace;
    const space = setup.addressSpaces[s]!;
    const where =
      dry.overflowMapping < 0
        ? `${spaceLabel(space, s)}, root table`
        : `${spaceLabel(space, s)}, mappings[${dry.overflowMapping}]`;
    throw new GuestPageTableError(
      `${where}: the page-table region (${region.pages} pages at ${hex(region.base)}) is full; the tables need ${dry.used} pages`,
      s,
      dry.overflowMapping < 0 ? null : dry.overflowMapping,
    );
  }
  if (dry.highPdptSpace >= 0) {
    const s = dry.highPdptSpace;
    throw new GuestPageTableError(
      `${spaceLabel(setup.addressSpaces[s]!, s)}: its PAE page-directory-pointer table would be at or above 4 GiB, which CR3 cannot hold (SDM 4.4.1): move the region below 4 GiB`,
      s,
    );
  }

  const layout = plan(setup, features, shape, planned, memory, region);
  const roots = layout.roots.map((root, s) => root + setup.addressSpaces[s]!.pcid);
  if (shape.mode === PAGING_MODE.PAE) return { roots, tablePages: layout.used, pdptes: layout.pdptes };
  return { roots, tablePages: layout.used };
}
