import {
  ACCESS,
  AD_UPDATE,
  type CpuFeatures,
  CR0,
  CR4,
  cpuFeatures,
  createPagingContext,
  DenseMemory,
  EFER,
  GUEST_FAULT,
  loadPdptes,
  MODERN_CPU,
  PAGE_1G,
  PAGE_2M,
  PAGE_4K,
  PAGE_4M,
  PAGING_MODE,
  PageWalker,
  type PagingMode,
  PFERR,
  type PhysicalMemory,
  PTE_HI,
  PTE_LO,
  SparseMemory,
  WalkTrace,
} from "@nestvisor/x86-arch";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  buildGuestPageTables,
  GuestPageTableError,
  type GuestPageTables,
  guestPageTablePages,
  type PageTableRegion,
} from "./guest-page-tables";
import type { AddressSpaceLayout, GvaMapping, WorkloadSetup } from "./workload-ops";

const TWO_32 = 2 ** 32;
const TWO_32_BIG = 2n ** 32n;
const MIB = 2 ** 20;
const GIB = 2 ** 30;
const { PRESENT: P, WRITABLE: RW, USER: US, PAGE_SIZE: PS } = PTE_LO;

/** A memory that records the byte range every write touches. */
class RecordingMemory implements PhysicalMemory {
  readonly inner: PhysicalMemory;
  writes = 0;
  low = Number.POSITIVE_INFINITY;
  high = Number.NEGATIVE_INFINITY;
  constructor(inner: PhysicalMemory) {
    this.inner = inner;
  }
  get size(): number {
    return this.inner.size;
  }
  #record(pa: number, bytes: number): void {
    this.writes++;
    this.low = Math.min(this.low, pa);
    this.high = Math.max(this.high, pa + bytes);
  }
  read8(pa: number): number {
    return this.inner.read8(pa);
  }
  read16(pa: number): number {
    return this.inner.read16(pa);
  }
  read32(pa: number): number {
    return this.inner.read32(pa);
  }
  read64(pa: number): number {
    return this.inner.read64(pa);
  }
  write8(pa: number, value: number): void {
    this.#record(pa, 1);
    this.inner.write8(pa, value);
  }
  write16(pa: number, value: number): void {
    this.#record(pa, 2);
    this.inner.write16(pa, value);
  }
  write32(pa: number, value: number): void {
    this.#record(pa, 4);
    this.inner.write32(pa, value);
  }
  write64(pa: number, lo: number, hi: number): void {
    this.#record(pa, 8);
    this.inner.write64(pa, lo, hi);
  }
  readBytes(pa: number, length: number): Uint8Array {
    return this.inner.readBytes(pa, length);
  }
  writeBytes(pa: number, bytes: Uint8Array): void {
    this.#record(pa, bytes.length);
    this.inner.writeBytes(pa, bytes);
  }
}

const PG = (CR0.PE | CR0.PG) >>> 0;
const LONG = EFER.LME | EFER.LMA;

/** Control registers of a mode, without SMEP/SMAP, so that the leaf's R/W, U/S and XD decide alone. */
function registers(mode: PagingMode, opts: { wp?: boolean; nxe?: boolean; pcide?: boolean } = {}) {
  const cr0 = opts.wp === false ? PG : (PG | CR0.WP) >>> 0;
  const nxe = opts.nxe === false ? 0 : EFER.NXE;
  const pcide = opts.pcide === true ? CR4.PCIDE : 0;
  switch (mode) {
    case PAGING_MODE.NONE:
      return { cr0: CR0.PE, cr4: 0, efer: 0 };
    case PAGING_MODE.BIT32:
      return { cr0, cr4: CR4.PSE, efer: 0 };
    case PAGING_MODE.PAE:
      return { cr0, cr4: CR4.PAE, efer: nxe };
    case PAGING_MODE.LEVEL4:
      return { cr0, cr4: CR4.PAE | pcide, efer: LONG | nxe };
    default:
      return { cr0, cr4: CR4.PAE | CR4.LA57 | pcide, efer: LONG | nxe };
  }
}

function makeSetup(
  mode: PagingMode,
  spaces: readonly AddressSpaceLayout[],
  memoryBytes: number,
  regs: { cr0: number; cr4: number; efer: number } = registers(mode),
): WorkloadSetup {
  return {
    level: 1,
    pagingMode: mode,
    memoryBytes,
    cpl: 0,
    ...regs,
    addressSpaces: spaces,
    initialAddressSpace: 0,
  };
}

function mapping(gva: bigint, gpa: number, pages: number, pageSize: number, flags: Partial<GvaMapping> = {}) {
  return {
    gvaLo: Number(gva % 2n ** 32n),
    gvaHi: Number(gva >> 32n),
    gpa,
    pages,
    pageSize,
    writable: true,
    user: true,
    executable: true,
    ...flags,
  };
}

function space(mappings: readonly GvaMapping[], name = "a", pcid = 0): AddressSpaceLayout {
  return { name, pcid, mappings };
}

/** Linear-address width in bits, and the leaf level of a page size. */
function widthOf(mode: PagingMode): number {
  if (mode === PAGING_MODE.LEVEL5) return 57;
  return mode === PAGING_MODE.LEVEL4 ? 48 : 32;
}
function leafLevel(pageSize: number): number {
  return pageSize === PAGE_4K ? 1 : pageSize === PAGE_1G ? 3 : 2;
}
const TOP_LEVEL: Record<number, number> = {
  [PAGING_MODE.BIT32]: 2,
  [PAGING_MODE.PAE]: 3,
  [PAGING_MODE.LEVEL4]: 4,
  [PAGING_MODE.LEVEL5]: 5,
};

/** Oracle: the fewest table pages (a root per space, one table per level and GVA block in use). */
function oracleTablePages(setup: WorkloadSetup): number {
  const mode = setup.pagingMode;
  const bits = mode === PAGING_MODE.BIT32 ? 10n : 9n;
  const width = BigInt(widthOf(mode));
  const top = TOP_LEVEL[mode]!;
  let total = 0;
  for (const s of setup.addressSpaces) {
    const tables = new Set<string>();
    for (const m of s.mappings) {
      const first = (BigInt(m.gvaHi) << 32n) | BigInt(m.gvaLo);
      for (let p = 0; p < m.pages; p++) {
        const vpn = ((first + BigInt(p * m.pageSize)) % (1n << width)) >> 12n;
        for (let level = leafLevel(m.pageSize); level < top; level++) {
          tables.add(`${level}:${vpn >> (bits * BigInt(level))}`);
        }
      }
    }
    total += 1 + tables.size;
  }
  return total;
}

interface ModeCase {
  readonly name: string;
  readonly mode: PagingMode;
  readonly sizes: readonly number[];
  readonly memoryBytes: number;
}

const CASES: ModeCase[] = [
  { name: "32-bit, 4 KiB", mode: PAGING_MODE.BIT32, sizes: [PAGE_4K], memoryBytes: 64 * MIB },
  { name: "32-bit, 4 MiB", mode: PAGING_MODE.BIT32, sizes: [PAGE_4M], memoryBytes: 64 * MIB },
  { name: "32-bit, mixed", mode: PAGING_MODE.BIT32, sizes: [PAGE_4K, PAGE_4M], memoryBytes: 64 * MIB },
  { name: "PAE, 4 KiB", mode: PAGING_MODE.PAE, sizes: [PAGE_4K], memoryBytes: 64 * MIB },
  { name: "PAE, 2 MiB", mode: PAGING_MODE.PAE, sizes: [PAGE_2M], memoryBytes: 64 * MIB },
  { name: "PAE, mixed", mode: PAGING_MODE.PAE, sizes: [PAGE_4K, PAGE_2M], memoryBytes: 64 * MIB },
  { name: "4-level, 4 KiB", mode: PAGING_MODE.LEVEL4, sizes: [PAGE_4K], memoryBytes: 64 * MIB },
  { name: "4-level, 2 MiB", mode: PAGING_MODE.LEVEL4, sizes: [PAGE_2M], memoryBytes: 64 * MIB },
  { name: "4-level, 1 GiB", mode: PAGING_MODE.LEVEL4, sizes: [PAGE_1G], memoryBytes: 8 * GIB },
  {
    name: "4-level, mixed",
    mode: PAGING_MODE.LEVEL4,
    sizes: [PAGE_4K, PAGE_2M, PAGE_1G],
    memoryBytes: 8 * GIB,
  },
  { name: "5-level, 4 KiB", mode: PAGING_MODE.LEVEL5, sizes: [PAGE_4K], memoryBytes: 64 * MIB },
  { name: "5-level, 2 MiB", mode: PAGING_MODE.LEVEL5, sizes: [PAGE_2M], memoryBytes: 64 * MIB },
  { name: "5-level, 1 GiB", mode: PAGING_MODE.LEVEL5, sizes: [PAGE_1G], memoryBytes: 8 * GIB },
  {
    name: "5-level, mixed",
    mode: PAGING_MODE.LEVEL5,
    sizes: [PAGE_4K, PAGE_2M, PAGE_1G],
    memoryBytes: 8 * GIB,
  },
];

/** 1-GiB-aligned places where mappings are put near, so that they share tables and cross table edges. */
function anchors(mode: PagingMode): bigint[] {
  const top = 2n ** 64n;
  if (mode === PAGING_MODE.BIT32 || mode === PAGING_MODE.PAE) return [0n, 1n << 30n, 3n << 30n, 1n << 32n];
  const half = 1n << BigInt(widthOf(mode) - 1);
  const list = [0n, 1n << 30n, 1n << 39n, half, top - half, top - (1n << 39n), top];
  if (mode === PAGING_MODE.LEVEL5) list.push(1n << 48n, top - (1n << 48n));
  return list;
}

function maxPages(pageSize: number): number {
  if (pageSize === PAGE_4K) return 24;
  return pageSize === PAGE_1G ? 3 : 6;
}

/** Whether [start, end) is a valid linear range for the mode (32-bit, or one canonical half). */
function validRange(mode: PagingMode, start: bigint, end: bigint): boolean {
  if (start < 0n || end > 2n ** 64n) return false;
  const width = widthOf(mode);
  if (width === 32) return end <= 1n << 32n;
  const half = 1n << BigInt(width - 1);
  return end <= half || start >= 2n ** 64n - half;
}

function mappingArb(c: ModeCase): fc.Arbitrary<Candidate> {
  return fc
    .record({
      pageSize: fc.constantFrom(...c.sizes),
      anchor: fc.constantFrom(...anchors(c.mode)),
      delta: fc.integer({ min: -40, max: 40 }),
      pages: fc.integer({ min: 1, max: 24 }),
      gpaUnits: fc.nat(),
      writable: fc.boolean(),
      user: fc.boolean(),
      executable: fc.boolean(),
    })
    .map((r) => {
      const pages = 1 + ((r.pages - 1) % maxPages(r.pageSize));
      const gva = r.anchor + BigInt(r.delta) * BigInt(r.pageSize);
      const slots = (c.memoryBytes - pages * r.pageSize) / r.pageSize + 1;
      const gpa = (r.gpaUnits % slots) * r.pageSize;
      return {
        gva,
        pages,
        pageSize: r.pageSize,
        gpa,
        writable: r.writable,
        user: r.user,
        executable: r.executable,
      };
    });
}

interface Candidate {
  readonly gva: bigint;
  readonly pages: number;
  readonly pageSize: number;
  readonly gpa: number;
  readonly writable: boolean;
  readonly user: boolean;
  readonly executable: boolean;
}

/** Keeps the valid candidates that do not overlap an earlier kept one. */
function keep(mode: PagingMode, candidates: readonly Candidate[]): GvaMapping[] {
  const kept: { start: bigint; end: bigint }[] = [];
  const out: GvaMapping[] = [];
  for (const c of candidates) {
    const start = c.gva;
    const end = start + BigInt(c.pages * c.pageSize);
    if (!validRange(mode, start, end)) continue;
    if (kept.some((k) => k.start < end && start < k.end)) continue;
    kept.push({ start, end });
    out.push(mapping(start, c.gpa, c.pages, c.pageSize, c));
  }
  return out;
}

function scenarioArb(c: ModeCase) {
  const longMode = c.mode === PAGING_MODE.LEVEL4 || c.mode === PAGING_MODE.LEVEL5;
  return fc.record({
    spaces: fc.array(
      fc.record({
        candidates: fc.array(mappingArb(c), { minLength: 1, maxLength: 5 }),
        pcid: longMode ? fc.integer({ min: 0, max: 0xfff }) : fc.constant(0),
      }),
      { minLength: 1, maxLength: 3 },
    ),
    wp: fc.boolean(),
    nxe: fc.boolean(),
    spare: fc.integer({ min: 0, max: 3 }),
    offsetSeed: fc.nat(),
  });
}

interface Checked {
  readonly tables: GuestPageTables;
  readonly memory: RecordingMemory;
  readonly region: PageTableRegion;
}

/** Builds into a recording memory and checks the writes stayed in the used part of the region. */
function buildChecked(setup: WorkloadSetup, spare: number, features: CpuFeatures = MODERN_CPU): Checked {
  const needed = guestPageTablePages(setup, features);
  const memory = new RecordingMemory(
    setup.memoryBytes + (needed + spare) * PAGE_4K <= 256 * MIB
      ? new DenseMemory(setup.memoryBytes + (needed + spare) * PAGE_4K)
      : new SparseMemory(),
  );
  const region = { base: setup.memoryBytes, pages: needed + spare };
  const tables = buildGuestPageTables(setup, memory, region, features);
  expect(tables.tablePages).toBe(needed);
  expect(memory.low).toBeGreaterThanOrEqual(region.base);
  expect(memory.high).toBeLessThanOrEqual(region.base + tables.tablePages * PAGE_4K);
  return { tables, memory, region };
}

/** The paging context of address space `s`, loading the PAE PDPTEs from memory as MOV to CR3 does. */
function contextOf(setup: WorkloadSetup, built: Checked, s: number, features: CpuFeatures = MODERN_CPU) {
  const cr3 = built.tables.roots[s]!;
  let pdptes: readonly number[] | undefined;
  if (setup.pagingMode === PAGING_MODE.PAE) {
    const load = loadPdptes(built.memory, cr3, features);
    expect(load.ok).toBe(true);
    if (load.ok) pdptes = load.pdptes;
    expect(pdptes).toEqual(built.tables.pdptes?.[s]);
  }
  return createPagingContext(
    { cr0: setup.cr0, cr3, cr4: setup.cr4, efer: setup.efer, ...(pdptes === undefined ? {} : { pdptes }) },
    features,
  );
}

const ACCESSES = [
  ACCESS.READ,
  ACCESS.WRITE,
  ACCESS.FETCH,
  ACCESS.READ | ACCESS.USER,
  ACCESS.WRITE | ACCESS.USER,
  ACCESS.FETCH | ACCESS.USER,
] as const;

/** Whether the access is allowed on the leaf's rights (no SMEP, SMAP or protection keys in these tests). */
function allowed(m: GvaMapping, access: number, wp: boolean, nxe: boolean): boolean {
  const write = (access & ACCESS.WRITE) !== 0;
  const fetch = (access & ACCESS.FETCH) !== 0;
  const executable = m.executable || !nxe;
  if ((access & ACCESS.USER) !== 0) return m.user && (!write || m.writable) && (!fetch || executable);
  if (fetch) return executable;
  return !write || m.writable || !wp;
}

function faultCode(access: number, present: boolean, nxe: boolean): number {
  let code = (present ? PFERR.PRESENT : 0) | (access & (PFERR.WRITE | PFERR.USER));
  if ((access & ACCESS.FETCH) !== 0 && nxe) code |= PFERR.FETCH;
  return code;
}

function halves(gva: bigint): [number, number] {
  return [Number(gva % 2n ** 32n), Number(gva >> 32n)];
}

describe("buildGuestPageTables: the walker translates every mapped page", () => {
  for (const c of CASES) {
    it(c.name, () => {
      fc.assert(
        fc.property(scenarioArb(c), (sc) => {
          const spaces = sc.spaces.map((sp, s) => space(keep(c.mode, sp.candidates), `space${s}`, sp.pcid));
          const pcide = spaces.some((sp) => sp.pcid !== 0);
          const setup = makeSetup(
            c.mode,
            spaces,
            c.memoryBytes,
            registers(c.mode, { wp: sc.wp, nxe: sc.nxe, pcide }),
          );
          const built = buildChecked(setup, sc.spare);
          const { tables, memory, region } = built;
          expect(tables.tablePages).toBe(oracleTablePages(setup));
          expect(tables.roots).toHaveLength(spaces.length);
          expect(tables.pdptes !== undefined).toBe(c.mode === PAGING_MODE.PAE);
          const nxe = sc.nxe && c.mode !== PAGING_MODE.BIT32;
          const walker = new PageWalker(memory, { adUpdate: AD_UPDATE.NONE });
          const trace = new WalkTrace();
          const writesAfterBuild = memory.writes;

          spaces.forEach((sp, s) => {
            const cr3 = tables.roots[s]!;
            expect(cr3 % PAGE_4K).toBe(sp.pcid);
            const root = cr3 - sp.pcid;
            expect(root).toBeGreaterThanOrEqual(region.base);
            expect(root).toBeLessThan(region.base + tables.tablePages * PAGE_4K);
            const ctx = contextOf(setup, built, s);
            expect(ctx.nxe).toBe(nxe);
            const width = BigInt(widthOf(c.mode));

            sp.mappings.forEach((m, i) => {
              const first = (BigInt(m.gvaHi) << 32n) | BigInt(m.gvaLo);
              for (let p = 0; p < m.pages; p++) {
                const offset = (sc.offsetSeed + (p + i) * 0x9e3779b1) % m.pageSize;
                const [lo, hi] = halves(first + BigInt(p * m.pageSize + offset));
                for (const access of ACCESSES) {
                  const ok = walker.walk(ctx, lo, hi, access, trace);
                  const r = walker.result;
                  if (allowed(m, access, sc.wp, nxe)) {
                    expect(ok).toBe(true);
                    expect(r.pa).toBe(m.gpa + p * m.pageSize + offset);
                    expect(r.pageSize).toBe(m.pageSize);
                    expect(r.level).toBe(leafLevel(m.pageSize));
                  } else {
                    expect(ok).toBe(false);
                    expect(r.guestFault).toBe(GUEST_FAULT.ACCESS_RIGHTS);
                    expect(r.errorCode).toBe(faultCode(access, true, nxe));
                  }
                }
                // Entry contents: pointers P|RW|US and no XD (PAE PDPTE: P only), leaf as mapped, A/D clear.
                const entries = trace.entries();
                const leaf = entries[entries.length - 1]!;
                for (const e of entries.slice(0, -1)) {
                  if (e.address === -1) {
                    expect(e.lo & 0xfff).toBe(P);
                    expect(e.hi).toBe(0);
                  } else {
                    expect(e.lo & 0xfff).toBe(P | RW | US);
                    expect((e.hi & PTE_HI.XD) >>> 0).toBe(0);
                  }
                }
                const leafFlags =
                  P | (m.writable ? RW : 0) | (m.user ? US : 0) | (m.pageSize === PAGE_4K ? 0 : PS);
                expect(leaf.lo & 0xfff).toBe(leafFlags);
                expect((leaf.hi & PTE_HI.XD) >>> 0).toBe(nxe && !m.executable ? PTE_HI.XD : 0);
              }
            });

            // Unmapped pages next to each mapping (often in a shared table) fault not-present.
            const covered = (vpn: bigint) =>
              sp.mappings.some((m) => {
                const start = (((BigInt(m.gvaHi) << 32n) | BigInt(m.gvaLo)) % (1n << width)) >> 12n;
                return vpn >= start && vpn < start + BigInt((m.pages * m.pageSize) / PAGE_4K);
              });
            for (const m of sp.mappings) {
              const start = (((BigInt(m.gvaHi) << 32n) | BigInt(m.gvaLo)) % (1n << width)) >> 12n;
              for (const vpn of [start - 1n, start + BigInt((m.pages * m.pageSize) / PAGE_4K)]) {
                if (vpn < 0n || vpn >= 1n << (width - 12n) || covered(vpn)) continue;
                const [lo, hi] = halves(vpn << 12n);
                for (const access of ACCESSES) {
                  expect(walker.walk(ctx, lo, hi, access)).toBe(false);
                  expect(walker.result.guestFault).toBe(GUEST_FAULT.NOT_PRESENT);
                  expect(walker.result.errorCode).toBe(faultCode(access, false, nxe));
                }
              }
            }
          });
          expect(memory.writes).toBe(writesAfterBuild);
        }),
        { numRuns: 40 },
      );
    });
  }
});

describe("buildGuestPageTables: layout", () => {
  it("returns [0] and writes nothing when paging is off", () => {
    const memory = new RecordingMemory(new DenseMemory(MIB));
    const setup = makeSetup(PAGING_MODE.NONE, [], MIB / 2);
    expect(buildGuestPageTables(setup, memory, { base: MIB / 2, pages: 0 })).toEqual({
      roots: [0],
      tablePages: 0,
    });
    expect(guestPageTablePages(setup)).toBe(0);
    expect(memory.writes).toBe(0);
  });

  it("shares the tables of neighbouring pages: 16 MiB identity-mapped with 4-KiB pages takes 11 pages", () => {
    // 1 PML4 + 1 PDPT + 1 PD + 8 PTs (one per 2 MiB).
    const setup = makeSetup(
      PAGING_MODE.LEVEL4,
      [space([mapping(0n, 0, 4096, PAGE_4K)], "identity")],
      16 * MIB,
    );
    const built = buildChecked(setup, 0);
    expect(built.tables.tablePages).toBe(11);
    expect(built.tables.roots).toEqual([16 * MIB]);
  });

  it("zeroes the table pages it takes, whatever the region held", () => {
    const inner = new DenseMemory(4 * MIB);
    for (let pa = 2 * MIB; pa < 4 * MIB; pa += 4) inner.write32(pa, 0xffffffff);
    const setup = makeSetup(PAGING_MODE.LEVEL4, [space([mapping(0x1000n, 0x1000, 1, PAGE_4K)])], 2 * MIB);
    const tables = buildGuestPageTables(setup, inner, { base: 2 * MIB, pages: 8 });
    const walker = new PageWalker(inner, { adUpdate: AD_UPDATE.NONE });
    const ctx = createPagingContext({ cr3: tables.roots[0]!, ...registers(PAGING_MODE.LEVEL4) }, MODERN_CPU);
    expect(walker.walk(ctx, 0x1234, 0, ACCESS.READ)).toBe(true);
    expect(walker.result.pa).toBe(0x1234);
    expect(walker.walk(ctx, 0x2000, 0, ACCESS.READ)).toBe(false);
    expect(walker.result.guestFault).toBe(GUEST_FAULT.NOT_PRESENT);
    expect(inner.read32(2 * MIB + tables.tablePages * PAGE_4K)).toBe(0xffffffff);
  });

  it("gives each PAE space its own 32-byte aligned PDPT below 4 GiB, with PDPTEs of P and address only", () => {
    const setup = makeSetup(
      PAGING_MODE.PAE,
      [
        space([mapping(0n, 0, 2, PAGE_4K), mapping(3n << 30n, 0x200000, 1, PAGE_2M)], "a"),
        space([mapping(1n << 30n, 0, 1, PAGE_2M)], "b"),
      ],
      4 * MIB,
    );
    const built = buildChecked(setup, 0);
    const { roots, pdptes } = built.tables;
    expect(roots.every((r) => r % 32 === 0 && r < TWO_32)).toBe(true);
    const [a, b] = pdptes ?? [];
    expect(a?.map((e) => e % PAGE_4K)).toEqual([P, 0, 0, P]);
    expect(b?.map((e) => e % PAGE_4K)).toEqual([0, P, 0, 0]);
  });

  it("sets accessed and dirty only when the walker uses the tables, inside the region", () => {
    const setup = makeSetup(PAGING_MODE.LEVEL5, [space([mapping(0x40000000n, 0, 4, PAGE_4K)])], MIB);
    const built = buildChecked(setup, 0);
    const walker = new PageWalker(built.memory, { adUpdate: AD_UPDATE.HARDWARE });
    const ctx = contextOf(setup, built, 0);
    expect(walker.walk(ctx, 0x40001008, 0, ACCESS.WRITE)).toBe(true);
    expect(walker.result.leafLo & (PTE_LO.ACCESSED | PTE_LO.DIRTY)).toBe(PTE_LO.ACCESSED | PTE_LO.DIRTY);
    expect(built.memory.high).toBeLessThanOrEqual(built.region.base + built.tables.tablePages * PAGE_4K);
  });

  it("leaves XD clear when EFER.NXE is off (bit 63 would be reserved) and in 32-bit paging", () => {
    for (const mode of [PAGING_MODE.BIT32, PAGING_MODE.PAE, PAGING_MODE.LEVEL4] as const) {
      const setup = makeSetup(
        mode,
        [space([mapping(0x400000n, 0x400000, 1, PAGE_4K, { executable: false })])],
        8 * MIB,
        registers(mode, { nxe: false }),
      );
      const built = buildChecked(setup, 0);
      const walker = new PageWalker(built.memory, { adUpdate: AD_UPDATE.NONE });
      expect(walker.walk(contextOf(setup, built, 0), 0x400010, 0, ACCESS.FETCH)).toBe(true);
      expect(walker.result.leafHi).toBe(0);
    }
    // Without NX in the CPU, EFER.NXE has no effect either.
    const setup = makeSetup(
      PAGING_MODE.LEVEL4,
      [space([mapping(0n, 0, 1, PAGE_4K, { executable: false })])],
      MIB,
    );
    const features = cpuFeatures({ nx: false });
    const built = buildChecked(setup, 0, features);
    const walker = new PageWalker(built.memory, { adUpdate: AD_UPDATE.NONE });
    expect(walker.walk(contextOf(setup, built, 0, features), 0x10, 0, ACCESS.FETCH)).toBe(true);
  });

  it("maps 4-MiB pages above 4 GiB with PSE-36 (PDE bits 20:13)", () => {
    const gpa = 5 * GIB + 8 * MIB;
    const setup = makeSetup(PAGING_MODE.BIT32, [space([mapping(0x800000n, gpa, 2, PAGE_4M)])], 6 * GIB);
    const memory = new SparseMemory();
    const tables = buildGuestPageTables(setup, memory, { base: 16 * MIB, pages: 1 });
    expect(tables.tablePages).toBe(1);
    const walker = new PageWalker(memory, { adUpdate: AD_UPDATE.NONE });
    const ctx = createPagingContext({ cr3: tables.roots[0]!, ...registers(PAGING_MODE.BIT32) }, MODERN_CPU);
    expect(walker.walk(ctx, 0xc12345, 0, ACCESS.WRITE | ACCESS.USER)).toBe(true);
    expect(walker.result.pa).toBe(gpa + 4 * MIB + 0x12345);
    expect(() =>
      buildGuestPageTables(setup, memory, { base: 16 * MIB, pages: 1 }, cpuFeatures({ pse36: false })),
    ).toThrow(/beyond the 32-bit physical addresses/);
  });

  it("puts tables above 4 GiB in 4-level paging, with the root's high bits in CR3", () => {
    const setup = makeSetup(PAGING_MODE.LEVEL4, [space([mapping(0n, 0, 1, PAGE_4K)], "a", 5)], MIB, {
      ...registers(PAGING_MODE.LEVEL4, { pcide: true }),
    });
    const memory = new SparseMemory();
    const tables = buildGuestPageTables(setup, memory, { base: 6 * GIB, pages: 4 });
    expect(tables.roots).toEqual([6 * GIB + 5]);
    const walker = new PageWalker(memory, { adUpdate: AD_UPDATE.NONE });
    const ctx = createPagingContext({ cr3: tables.roots[0]!, ...setup }, MODERN_CPU);
    expect(walker.walk(ctx, 0xabc, 0, ACCESS.READ)).toBe(true);
    expect(walker.result.pa).toBe(0xabc);
  });
});

describe("buildGuestPageTables: bad inputs", () => {
  const L4 = PAGING_MODE.LEVEL4;

  /** Builds and returns the error, checking that nothing was written. */
  function failure(
    setup: WorkloadSetup,
    region: PageTableRegion = { base: setup.memoryBytes, pages: 64 },
    features: CpuFeatures = MODERN_CPU,
    memorySize = setup.memoryBytes + 64 * PAGE_4K,
  ): GuestPageTableError {
    const memory = new RecordingMemory(new SparseMemory());
    Object.defineProperty(memory, "size", { value: memorySize });
    let error: unknown;
    try {
      buildGuestPageTables(setup, memory, region, features);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(GuestPageTableError);
    expect(memory.writes).toBe(0);
    return error as GuestPageTableError;
  }

  function one(mode: PagingMode, m: GvaMapping, regs = registers(mode), memoryBytes = 64 * MIB) {
    return makeSetup(mode, [space([mapping(0n, 0, 1, PAGE_4K), m], "main")], memoryBytes, regs);
  }

  it.each([
    ["2 MiB in 32-bit paging", PAGING_MODE.BIT32, PAGE_2M, /2-MiB pages do not exist in 32-bit/],
    ["4 MiB in PAE paging", PAGING_MODE.PAE, PAGE_4M, /4-MiB pages exist only in 32-bit paging/],
    ["4 MiB in 4-level paging", L4, PAGE_4M, /4-MiB pages exist only in 32-bit paging/],
    ["1 GiB in PAE paging", PAGING_MODE.PAE, PAGE_1G, /1-GiB pages exist only in 4-level/],
    ["1 GiB in 32-bit paging", PAGING_MODE.BIT32, PAGE_1G, /1-GiB pages exist only/],
    ["8 KiB anywhere", L4, 8192, /page size 8192 is not/],
  ])("refuses %s", (_name, mode, pageSize, message) => {
    const e = failure(one(mode, mapping(BigInt(2 * GIB), 0, 1, pageSize), registers(mode), 2 * GIB));
    expect(e.message).toMatch(/^address space 0 \("main"\), mappings\[1\]: /);
    expect(e.message).toMatch(message);
    expect([e.space, e.mapping]).toEqual([0, 1]);
  });

  it("refuses 4-MiB pages without CR4.PSE or a PSE CPU, and 1-GiB pages without Page1GB", () => {
    const m4 = mapping(BigInt(8 * MIB), 0, 1, PAGE_4M);
    expect(failure(one(PAGING_MODE.BIT32, m4, { cr0: PG, cr4: 0, efer: 0 })).message).toMatch(/CR4\.PSE/);
    const bit32 = one(PAGING_MODE.BIT32, m4);
    expect(failure(bit32, undefined, cpuFeatures({ pse: false })).message).toMatch(/CPU with PSE/);
    const g = one(L4, mapping(BigInt(GIB), 0, 1, PAGE_1G), registers(L4), 2 * GIB);
    expect(failure(g, undefined, cpuFeatures({ gbPages: false })).message).toMatch(/Page1GB/);
  });

  it("refuses misaligned GVAs and GPAs, and empty mappings", () => {
    expect(failure(one(L4, mapping(0x201000n, 0, 1, PAGE_2M))).message).toMatch(
      /GVA 0x201000 is not aligned to the page size 0x200000/,
    );
    expect(failure(one(L4, mapping(0x200000n, 0x1000, 1, PAGE_2M))).message).toMatch(
      /GPA 0x1000 is not aligned/,
    );
    expect(failure(one(L4, mapping(0x2000n, 0, 0, PAGE_4K))).message).toMatch(/pages 0 is not a positive/);
    expect(failure(one(L4, mapping(0x2000n, -4096, 1, PAGE_4K))).message).toMatch(/GPA -4096/);
  });

  it("refuses GPA ranges outside guest memory or over the table region", () => {
    const beyond = failure(one(L4, mapping(0x2000n, 64 * MIB - PAGE_4K, 2, PAGE_4K)));
    expect(beyond.message).toMatch(/outside guest memory \[0, 0x4000000\)/);
    const setup = one(L4, mapping(0x2000n, 32 * MIB, 1, PAGE_4K));
    const over = failure(setup, { base: 32 * MIB, pages: 16 });
    expect(over.message).toMatch(/overlaps the page-table region 0x2000000\.\.0x200ffff/);
    expect([over.space, over.mapping]).toEqual([0, 1]);
  });

  it("refuses GVA overlaps within a space, but not across spaces", () => {
    const a = mapping(0x10000n, 0, 4, PAGE_4K);
    const b = mapping(0x0n, 0, 1, PAGE_2M);
    const overlapping = makeSetup(
      L4,
      [space([mapping(1n << 40n, 0, 1, PAGE_4K)], "x"), space([a, b], "y")],
      8 * MIB,
    );
    const e = failure(overlapping);
    expect(e.message).toBe('address space 1 ("y"), mappings[1]: overlaps mappings[0] in GVA (at 0x10000)');
    expect([e.space, e.mapping]).toEqual([1, 1]);
    const separate = makeSetup(L4, [space([a], "x"), space([b], "y")], 8 * MIB);
    expect(buildChecked(separate, 0).tables.roots).toHaveLength(2);
  });

  it("refuses GVAs the mode cannot address", () => {
    // 4-level: bits 63:47 must be equal (SDM 3.3.7.1); a range may not cross the hole.
    expect(failure(one(L4, mapping(1n << 47n, 0, 1, PAGE_4K))).message).toMatch(/not canonical for 48-bit/);
    expect(failure(one(L4, mapping((1n << 47n) - 4096n, 0, 2, PAGE_4K))).message).toMatch(/not canonical/);
    const l5 = PAGING_MODE.LEVEL5;
    expect(failure(one(l5, mapping(1n << 56n, 0, 1, PAGE_4K))).message).toMatch(/not canonical for 57-bit/);
    expect(failure(one(PAGING_MODE.PAE, mapping(1n << 32n, 0, 1, PAGE_4K))).message).toMatch(
      /32-bit linear addresses of PAE paging/,
    );
    expect(failure(one(PAGING_MODE.BIT32, mapping(TWO_32_BIG - 4096n, 0, 2, PAGE_4K))).message).toMatch(
      /32-bit linear addresses of 32-bit paging/,
    );
  });

  it("refuses a region that is too small, naming where it ran out and what is needed", () => {
    const setup = makeSetup(
      L4,
      [
        space([mapping(0n, 0, 1, PAGE_4K)], "a"),
        space([mapping(0n, 0, 1, PAGE_4K), mapping(1n << 39n, 0, 1, PAGE_4K)], "b"),
      ],
      MIB,
    );
    expect(guestPageTablePages(setup)).toBe(11);
    const e = failure(setup, { base: MIB, pages: 10 });
    expect(e.message).toBe(
      'address space 1 ("b"), mappings[1]: the page-table region (10 pages at 0x100000) is full; the tables need 11 pages',
    );
    expect([e.space, e.mapping]).toEqual([1, 1]);
    const rootless = failure(setup, { base: MIB, pages: 4 });
    expect(rootless.message).toMatch(/^address space 1 \("b"\), root table: /);
    expect([rootless.space, rootless.mapping]).toEqual([1, null]);
  });

  it("refuses regions that are misaligned, beyond memory, or beyond what entries hold", () => {
    const setup = one(L4, mapping(0x2000n, 0, 1, PAGE_4K));
    expect(failure(setup, { base: 64 * MIB + 8, pages: 4 }).message).toMatch(
      /^page-table region: base .* 4-KiB-aligned/,
    );
    expect(failure(setup, { base: 64 * MIB, pages: 65 }).message).toMatch(
      /beyond the memory's 0x4040000 bytes/,
    );
    expect(failure(setup, { base: 64 * MIB, pages: -1 }).message).toMatch(/pages -1/);
    const bit32 = one(PAGING_MODE.BIT32, mapping(0x2000n, 0, 1, PAGE_4K));
    expect(failure(bit32, { base: 4 * GIB, pages: 4 }, MODERN_CPU, 8 * GIB).message).toMatch(
      /beyond the 32-bit addresses/,
    );
    const narrow = cpuFeatures({ maxPhysAddr: 36 });
    expect(failure(setup, { base: 64 * GIB, pages: 4 }, narrow, 128 * GIB).message).toMatch(/36-bit/);
    // PAE: only the PDPT must be below 4 GiB (CR3 is 32 bits outside IA-32e mode).
    const pae = one(PAGING_MODE.PAE, mapping(0x2000n, 0, 1, PAGE_4K));
    expect(failure(pae, { base: 4 * GIB, pages: 4 }, MODERN_CPU, 8 * GIB).message).toMatch(
      /^address space 0 \("main"\): its PAE page-directory-pointer table would be at or above 4 GiB/,
    );
  });

  it("refuses PCIDs without CR4.PCIDE in IA-32e mode, and out of range", () => {
    const withPcid = (mode: PagingMode, pcid: number, regs = registers(mode)) =>
      makeSetup(mode, [space([mapping(0n, 0, 1, PAGE_4K)], "p", pcid)], MIB, regs);
    expect(failure(withPcid(L4, 1)).message).toMatch(/^address space 0 \("p"\): PCID 1 needs CR4\.PCIDE/);
    expect(failure(withPcid(PAGING_MODE.PAE, 1)).message).toMatch(/needs CR4\.PCIDE in IA-32e mode/);
    const pcide = registers(L4, { pcide: true });
    expect(failure(withPcid(L4, 0x1000, pcide)).message).toMatch(/PCID 4096 is not in \[0, 0xfff\]/);
    expect(failure(withPcid(L4, 3, pcide), undefined, cpuFeatures({ pcid: false })).message).toMatch(
      /PCID 3/,
    );
    const built = buildChecked(withPcid(L4, 0xfff, pcide), 0);
    expect(built.tables.roots[0]! % PAGE_4K).toBe(0xfff);
  });

  it("refuses address spaces when paging is off", () => {
    const setup = makeSetup(PAGING_MODE.NONE, [space([])], MIB);
    expect(failure(setup).message).toMatch(/paging is off/);
  });
});
