import { isDeepStrictEqual } from "node:util";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type AccessKind, accessOf, PAGE_ACCESS } from "./access";
import { cpuFeatures } from "./cpu-features";
import { loadPdptes } from "./pae-pdpte";
import { PFERR } from "./page-fault";
import { AD_UPDATE, type AdUpdate, PageWalker } from "./page-walk";
import { createPagingContext } from "./paging-context";
import { SparseMemory } from "./sparse-memory";
import {
  type ReferenceAdPolicy,
  type ReferenceMode,
  type ReferenceOutcome,
  type ReferenceState,
  referenceBadPdpte,
  referenceWalk,
} from "./testing/reference-walker";
import { GUEST_FAULT, WalkTrace } from "./walk-result";

/**
 * The production walker against the SDM reference walker (`testing/reference-walker.ts`) on
 * random page tables, in every paging mode, under all three A/D policies.
 */

const RUNS_PER_MODE = 2000;

const CR0_PE = 1n;
const CR0_WP = 1n << 16n;
const CR0_PG = 1n << 31n;
const CR4_PSE = 1n << 4n;
const CR4_PAE = 1n << 5n;
const CR4_LA57 = 1n << 12n;
const CR4_SMEP = 1n << 20n;
const CR4_SMAP = 1n << 21n;
const CR4_PKE = 1n << 22n;
const CR4_PKS = 1n << 24n;
const EFER_LME = 1n << 8n;
const EFER_LMA = 1n << 10n;
const EFER_NXE = 1n << 11n;
const RFLAGS_AC = 1n << 18n;

/** A page address drawn as a raw 40-bit page number, usually folded below MAXPHYADDR. */
interface PageChoice {
  readonly pageNumber: bigint;
  readonly belowMaxPhys: boolean;
}

/** One random paging-structure entry. */
interface EntrySpec {
  readonly present: boolean;
  /** Bits 11:1 (R/W, U/S, PWT, PCD, A, D, PS, G, ignored bits). */
  readonly low: number;
  /**
   * Bit 7 again, drawn with its own bias so leaves above level 1 are common. Not applied to
   * PML5Es/PML4Es, where it is always reserved (`extraBit` still sets it there now and then).
   */
  readonly pageSize: boolean;
  /** Pool table (0..3) or a random page. */
  readonly target: number | PageChoice;
  /** Clear the large-page reserved bits (20:13 or 29:13) so large leaves are often valid. */
  readonly alignLarge: boolean;
  readonly xd: boolean;
  readonly pkey: number;
  /** Bits 58:52 (ignored in IA-32e entries, reserved in PAE ones), usually zero. */
  readonly ignoredHigh: number;
  /** One arbitrary bit to set, anywhere in the entry. */
  readonly extraBit: number | null;
}

interface Scenario {
  readonly mode: ReferenceMode;
  readonly maxPhysAddr: number;
  readonly pse36: boolean;
  readonly gbPages: boolean;
  readonly nx: boolean;
  readonly wp: boolean;
  readonly pse: boolean;
  readonly nxe: boolean;
  readonly smep: boolean;
  readonly smap: boolean;
  readonly pke: boolean;
  readonly pks: boolean;
  readonly ac: boolean;
  readonly pkru: number;
  readonly pkrs: number;
  readonly cr3Low: number;
  readonly pool: readonly PageChoice[];
  readonly pdptes: readonly EntrySpec[];
  readonly path: readonly EntrySpec[];
  readonly extra: readonly { table: number; slot: number; entry: EntrySpec }[];
  readonly laLo: number;
  readonly laHi: number;
  readonly otherMask: { lo: number; hi: number };
  readonly kind: AccessKind;
  readonly cpl: 0 | 1 | 2 | 3;
  readonly implicit: boolean;
}

const pageChoice: fc.Arbitrary<PageChoice> = fc.record({
  pageNumber: fc.bigInt({ min: 0n, max: (1n << 40n) - 1n }),
  belowMaxPhys: fc.integer({ min: 0, max: 19 }).map((x) => x > 0),
});

const entrySpec: fc.Arbitrary<EntrySpec> = fc.record({
  present: fc.integer({ min: 0, max: 19 }).map((x) => x > 0),
  low: fc.integer({ min: 0, max: 0x7ff }).map((x) => x << 1),
  pageSize: fc.integer({ min: 0, max: 4 }).map((x) => x === 0),
  target: fc.oneof(fc.integer({ min: 0, max: 3 }), pageChoice),
  alignLarge: fc.integer({ min: 0, max: 5 }).map((x) => x > 0),
  xd: fc.integer({ min: 0, max: 4 }).map((x) => x === 0),
  pkey: fc.integer({ min: 0, max: 15 }),
  ignoredHigh: fc.oneof(
    { arbitrary: fc.constant(0), weight: 9 },
    { arbitrary: fc.integer({ min: 0, max: 0x7f }), weight: 1 },
  ),
  extraBit: fc.oneof(
    { arbitrary: fc.constant(null), weight: 7 },
    { arbitrary: fc.integer({ min: 0, max: 63 }), weight: 1 },
  ),
});

const MODES = ["none", "32-bit", "pae", "4-level", "5-level"] as const;

function scenario(mode: ReferenceMode): fc.Arbitrary<Scenario> {
  return fc.record({
    mode: fc.constant(mode),
    maxPhysAddr: fc.oneof(fc.integer({ min: 32, max: 52 }), fc.constantFrom(36, 39, 40, 46, 52)),
    pse36: fc.boolean(),
    gbPages: fc.boolean(),
    nx: fc.integer({ min: 0, max: 5 }).map((x) => x > 0),
    wp: fc.boolean(),
    pse: fc.boolean(),
    nxe: fc.integer({ min: 0, max: 3 }).map((x) => x > 0),
    smep: fc.boolean(),
    smap: fc.boolean(),
    pke: fc.boolean(),
    pks: fc.boolean(),
    ac: fc.boolean(),
    pkru: fc.integer({ min: 0, max: 0xffffffff }),
    pkrs: fc.integer({ min: 0, max: 0xffffffff }),
    cr3Low: fc.integer({ min: 0, max: 0xfff }),
    pool: fc.array(pageChoice, { minLength: 4, maxLength: 4 }),
    pdptes: fc.array(entrySpec, { minLength: 4, maxLength: 4 }),
    path: fc.array(entrySpec, { minLength: 5, maxLength: 5 }),
    extra: fc.array(
      fc.record({
        table: fc.integer({ min: 0, max: 3 }),
        slot: fc.integer({ min: 0, max: 1023 }),
        entry: entrySpec,
      }),
      { maxLength: 4 },
    ),
    laLo: fc.integer({ min: 0, max: 0xffffffff }),
    laHi: fc.integer({ min: 0, max: 0xffffffff }),
    otherMask: fc.oneof(
      fc.record({ lo: fc.integer({ min: 0, max: 0x1ff }).map((x) => x << 12), hi: fc.constant(0) }),
      fc.record({ lo: fc.integer({ min: 0, max: 0xffffffff }), hi: fc.integer({ min: 0, max: 0x1ffffff }) }),
    ),
    kind: fc.constantFrom<AccessKind>("read", "write", "fetch"),
    cpl: fc.constantFrom<0 | 1 | 2 | 3>(0, 1, 2, 3),
    implicit: fc.integer({ min: 0, max: 4 }).map((x) => x === 0),
  });
}

/** A concrete world: memory writes, the register state, and the accesses to make. */
interface World {
  readonly writes: readonly { address: bigint; value: bigint }[];
  readonly wide: boolean;
  readonly state: ReferenceState;
  readonly walks: readonly { lo: number; hi: number }[];
}

function pageAddress(choice: PageChoice, s: Scenario): bigint {
  const limitBits = s.mode === "32-bit" || s.mode === "pae" ? Math.min(32, s.maxPhysAddr) : s.maxPhysAddr;
  const page = choice.pageNumber << 12n;
  if (s.mode === "32-bit" || s.mode === "pae") return page & ((1n << 32n) - 4096n);
  return choice.belowMaxPhys ? page & ((1n << BigInt(limitBits)) - 4096n) : page & ((1n << 52n) - 4096n);
}

function entryValue(spec: EntrySpec, level: number, s: Scenario, pool: readonly bigint[]): bigint {
  const target = typeof spec.target === "number" ? pool[spec.target]! : pageAddress(spec.target, s);
  const large = spec.pageSize && level <= 3 && level >= 2;
  let value = target | BigInt(spec.low) | (spec.present ? 1n : 0n);
  value = large ? value | 0x80n : value & ~0x80n;
  if (large && spec.alignLarge) {
    if (s.mode === "32-bit")
      value &= ~(1n << 21n); // PSE-36 bits 20:13 stay random
    else value &= level === 2 ? ~(0xffn << 13n) : ~(0x1ffffn << 13n);
  }
  if (s.mode !== "32-bit") {
    if (spec.xd) value |= 1n << 63n;
    // Protection keys exist only in IA-32e paging; bits 62:52 of a PAE entry are reserved.
    if (s.mode !== "pae") value |= BigInt(spec.pkey) << 59n;
    value |= BigInt(spec.ignoredHigh) << 52n;
  }
  if (spec.extraBit !== null) value |= 1n << BigInt(spec.extraBit);
  return s.mode === "32-bit" ? value & 0xffff_ffffn : value;
}

function buildWorld(s: Scenario): World {
  const wide = s.mode !== "32-bit";
  const longMode = s.mode === "4-level" || s.mode === "5-level";
  const pool = s.pool.map((p) => pageAddress({ pageNumber: p.pageNumber, belowMaxPhys: true }, s));
  const root = pool[0]!;
  const writes: { address: bigint; value: bigint }[] = [];
  const written = new Set<bigint>();
  const put = (address: bigint, value: bigint) => {
    if (written.has(address)) return; // keep the first value: the walk sees one memory
    written.add(address);
    writes.push({ address, value });
  };

  let cr0 = CR0_PE | (s.wp ? CR0_WP : 0n);
  let cr4 = (s.pse ? CR4_PSE : 0n) | (s.smep ? CR4_SMEP : 0n) | (s.smap ? CR4_SMAP : 0n);
  cr4 |= (s.pke ? CR4_PKE : 0n) | (s.pks ? CR4_PKS : 0n);
  let efer = s.nx && s.nxe ? EFER_NXE : 0n;
  if (s.mode !== "none") cr0 |= CR0_PG;
  if (s.mode === "pae" || longMode) cr4 |= CR4_PAE;
  if (longMode) efer |= EFER_LME | EFER_LMA;
  if (s.mode === "5-level") cr4 |= CR4_LA57;
  const cr3 = s.mode === "pae" ? root | (BigInt(s.cr3Low) & 0xfe0n) : root | BigInt(s.cr3Low);

  const la = (BigInt(s.laHi) << 32n) | BigInt(s.laLo);
  const pdptes: bigint[] = [0n, 0n, 0n, 0n];
  let table = root;
  let level = longMode ? (s.mode === "5-level" ? 5 : 4) : 2;
  if (s.mode === "pae") {
    // PDPTE registers hold only legal values (a present one with a reserved bit makes MOV to CR3
    // fault); a not-present one keeps bits below 53 so the register fits a number.
    for (let i = 0; i < 4; i++) {
      const spec = s.pdptes[i]!;
      const target = typeof spec.target === "number" ? pool[spec.target]! : pageAddress(spec.target, s);
      pdptes[i] = spec.present
        ? target | 1n | (BigInt(spec.low) & 0xe18n)
        : (target | BigInt(spec.low) | (BigInt(spec.ignoredHigh) << 40n)) & ~1n;
    }
    const spec = s.pdptes[Number((la >> 30n) & 3n)]!;
    table = typeof spec.target === "number" ? pool[spec.target]! : pageAddress(spec.target, s);
  }
  if (s.mode !== "none") {
    for (let i = 0; level >= 1; i++, level--) {
      const spec = s.path[i]!;
      let index: bigint;
      if (s.mode === "32-bit") index = level === 2 ? (la >> 22n) & 0x3ffn : (la >> 12n) & 0x3ffn;
      else index = (la >> BigInt(12 + 9 * (level - 1))) & 0x1ffn;
      put(table + index * (wide ? 8n : 4n), entryValue(spec, level, s, pool));
      table = typeof spec.target === "number" ? pool[spec.target]! : pageAddress(spec.target, s);
    }
    for (const e of s.extra) {
      const slots = wide ? 512 : 1024;
      put(
        pool[e.table]! + BigInt((e.slot % slots) * (wide ? 8 : 4)),
        entryValue(e.entry, 1 + (e.slot % 3), s, pool),
      );
    }
  }

  const state: ReferenceState = {
    cr0,
    cr3,
    cr4,
    efer,
    rflags: 2n | (s.ac ? RFLAGS_AC : 0n),
    pkru: BigInt(s.pkru),
    pkrs: BigInt(s.pkrs),
    pdptes,
    maxPhysAddr: s.maxPhysAddr,
    pse36: s.pse36,
    gbPages: s.gbPages,
  };
  const walks = [
    { lo: s.laLo, hi: s.laHi },
    { lo: (s.laLo ^ s.otherMask.lo) >>> 0, hi: (s.laHi ^ s.otherMask.hi) >>> 0 },
  ];
  return { writes, wide, state, walks };
}

function memoryOf(world: World): SparseMemory {
  const memory = new SparseMemory();
  for (const w of world.writes) {
    const a = Number(w.address);
    memory.write32(a, Number(w.value & 0xffff_ffffn));
    if (world.wide) memory.write32(a + 4, Number(w.value >> 32n));
  }
  return memory;
}

function contextOf(world: World, s: Scenario) {
  const st = world.state;
  return createPagingContext(
    {
      cr0: Number(st.cr0),
      cr3: Number(st.cr3),
      cr4: Number(st.cr4),
      efer: Number(st.efer),
      rflags: Number(st.rflags),
      pkru: Number(st.pkru),
      pkrs: Number(st.pkrs),
      pdptes: st.pdptes.map((p) => Number(p)),
    },
    cpuFeatures({ maxPhysAddr: s.maxPhysAddr, pse36: s.pse36, gbPages: s.gbPages, nx: s.nx }),
  );
}

const GUEST_FAULT_OF = {
  "not-present": GUEST_FAULT.NOT_PRESENT,
  reserved: GUEST_FAULT.RESERVED_BIT,
  "access-rights": GUEST_FAULT.ACCESS_RIGHTS,
} as const;

function accOf(r: { writable: boolean; user: boolean; executable: boolean }): number {
  return (
    (r.writable ? PAGE_ACCESS.WRITE : 0) |
    (r.user ? PAGE_ACCESS.USER : 0) |
    (r.executable ? PAGE_ACCESS.EXEC : 0)
  );
}

/** The walker's result and trace, in the reference's terms, for one toEqual. */
/** A walk outcome as a plain object (fields present only where they are meaningful). */
type OutcomeView = Record<string, unknown>;

function walkerView(walker: PageWalker, trace: WalkTrace): OutcomeView {
  const r = walker.result;
  return {
    ok: r.ok,
    ...(r.ok
      ? {
          pa: r.pa,
          pageSize: r.pageSize,
          leafLo: r.leafLo,
          leafHi: r.leafHi,
          acc: r.pageAccess,
          pkey: r.pkey,
        }
      : r.guestFault === GUEST_FAULT.ACCESS_RIGHTS
        ? { errorCode: r.errorCode, fault: r.guestFault, acc: r.pageAccess, pkey: r.pkey }
        : { errorCode: r.errorCode, fault: r.guestFault }),
    level: r.level,
    reads: r.memoryReads,
    writes: r.memoryWrites,
    trace: trace.entries().map((e) => ({ address: e.address, lo: e.lo, hi: e.hi, level: e.level })),
  };
}

function referenceView(ref: ReferenceOutcome): OutcomeView {
  return {
    ok: ref.ok,
    ...(ref.ok
      ? {
          pa: Number(ref.pa),
          pageSize: Number(ref.pageSize),
          leafLo: Number(ref.leaf & 0xffff_ffffn),
          leafHi: Number(ref.leaf >> 32n),
          acc: accOf(ref),
          pkey: ref.pkey,
        }
      : ref.rights !== null
        ? {
            errorCode: ref.errorCode,
            fault: GUEST_FAULT_OF[ref.fault],
            acc: accOf(ref.rights),
            pkey: ref.rights.pkey,
          }
        : { errorCode: ref.errorCode, fault: GUEST_FAULT_OF[ref.fault] }),
    level: ref.level,
    reads: ref.entries.filter((e) => e.address >= 0n).length,
    writes: ref.adWrites,
    trace: ref.entries.map((e) => ({
      address: Number(e.address),
      lo: Number(e.value & 0xffff_ffffn),
      hi: Number(e.value >> 32n),
      level: e.level,
    })),
  };
}

const POLICIES: readonly [AdUpdate, ReferenceAdPolicy][] = [
  [AD_UPDATE.NONE, "none"],
  [AD_UPDATE.HARDWARE, "hardware"],
  [AD_UPDATE.AFTER_SUCCESS, "after-success"],
];

/** Both memories at every address they could differ at: the setup writes and every entry read. */
function memoryImage(world: World, memory: SparseMemory, touched: readonly bigint[]): number[] {
  const addresses = new Set<number>();
  for (const w of world.writes) addresses.add(Number(w.address));
  for (const x of touched) if (x >= 0n) addresses.add(Number(x));
  const image: number[] = [];
  for (const address of [...addresses].sort((a, b) => a - b)) {
    image.push(address, memory.read32(address), world.wide ? memory.read32(address + 4) : 0);
  }
  image.push(...memory.allocatedFrames());
  return image;
}

/** Deep equality first (cheap), `expect` only to report a difference. */
function expectSame<T>(actual: T, expected: T): void {
  if (!isDeepStrictEqual(actual, expected)) expect(actual).toEqual(expected);
}

/** Outcome categories seen per mode, to check that the generators reach every kind of result. */
const seen = new Map<ReferenceMode, Map<string, number>>();

function note(mode: ReferenceMode, ref: ReferenceOutcome): void {
  const counts = seen.get(mode) ?? new Map<string, number>();
  seen.set(mode, counts);
  const keys = ref.ok ? [`ok L${ref.level}`] : [ref.fault];
  if (!ref.ok && (ref.errorCode & PFERR.PK) !== 0) keys.push("protection key");
  if (!ref.ok && ref.fault === "not-present" && ref.level === 3 && ref.mode === "pae")
    keys.push("PDPTE not present");
  for (const k of keys) counts.set(k, (counts.get(k) ?? 0) + 1);
}

function checkScenario(s: Scenario): void {
  const world = buildWorld(s);
  const ctx = contextOf(world, s);
  const implicit = s.implicit && s.kind !== "fetch";
  const access = accessOf(s.kind, s.cpl, implicit);
  const refAccess = { kind: s.kind, cpl: s.cpl, implicit };
  for (const [adUpdate, policy] of POLICIES) {
    const memory = memoryOf(world);
    const model = memoryOf(world);
    const walker = new PageWalker(memory, { adUpdate });
    const trace = new WalkTrace();
    const touched: bigint[] = [];
    for (const la of world.walks) {
      walker.walk(ctx, la.lo, la.hi, access, trace);
      const ref = referenceWalk(
        model,
        world.state,
        (BigInt(la.hi) << 32n) | BigInt(la.lo),
        refAccess,
        policy,
      );
      for (const e of ref.entries) touched.push(e.address);
      expectSame(walkerView(walker, trace), referenceView(ref));
      if (adUpdate === AD_UPDATE.NONE) note(s.mode, ref);
    }
    expectSame(memoryImage(world, memory, touched), memoryImage(world, model, touched));
  }
}

/** What every mode's random tables must produce at least a few times. */
const EXPECTED_OUTCOMES: Readonly<Record<ReferenceMode, readonly string[]>> = {
  none: ["ok L0"],
  "32-bit": ["ok L1", "ok L2", "not-present", "reserved", "access-rights"],
  pae: ["ok L1", "ok L2", "not-present", "PDPTE not present", "reserved", "access-rights"],
  "4-level": ["ok L1", "ok L2", "ok L3", "not-present", "reserved", "access-rights", "protection key"],
  "5-level": ["ok L1", "ok L2", "ok L3", "not-present", "reserved", "access-rights", "protection key"],
};

describe("PageWalker agrees with the SDM reference walker on random page tables", () => {
  for (const mode of MODES) {
    it(`${mode} paging: outcome, error code, rights, trace and A/D writes`, () => {
      fc.assert(fc.property(scenario(mode), checkScenario), { numRuns: RUNS_PER_MODE });
      const counts = seen.get(mode);
      for (const outcome of EXPECTED_OUTCOMES[mode]) {
        expect(counts?.get(outcome) ?? 0, `${mode}: "${outcome}" outcomes`).toBeGreaterThanOrEqual(10);
      }
    });
  }
});

describe("loadPdptes agrees with the reference PDPTE check", () => {
  it("rejects exactly the present PDPTEs with a reserved bit (2:1, 8:5, 63:MAXPHYADDR)", () => {
    const pdpte = fc.record({
      present: fc.boolean(),
      low: fc.integer({ min: 0, max: 0xffffffff }),
      hi: fc.integer({ min: 0, max: 0xffffffff }),
      clean: fc.integer({ min: 0, max: 2 }).map((x) => x > 0),
    });
    fc.assert(
      fc.property(
        fc.array(pdpte, { minLength: 4, maxLength: 4 }),
        fc.integer({ min: 32, max: 52 }),
        fc.integer({ min: 0, max: 127 }),
        (entries, maxPhysAddr, slot) => {
          const memory = new SparseMemory();
          const cr3 = 0x1000 + slot * 32;
          const values = entries.map((e) => {
            let lo = e.present ? e.low | 1 : e.low & ~1;
            let hi = e.hi;
            if (e.clean) {
              lo &= ~0x1e6; // bits 8:5 and 2:1
              hi &= maxPhysAddr >= 52 ? 0xfffff : (2 ** (maxPhysAddr - 32) - 1) >>> 0;
            }
            return { lo: lo >>> 0, hi: hi >>> 0 };
          });
          values.forEach((v, i) => {
            memory.write64(cr3 + i * 8, v.lo, v.hi);
          });
          const big = values.map((v) => (BigInt(v.hi) << 32n) | BigInt(v.lo));
          const expected = referenceBadPdpte(big, maxPhysAddr);
          const loaded = loadPdptes(memory, cr3, cpuFeatures({ maxPhysAddr }));
          if (expected >= 0) {
            expect(loaded).toEqual({ ok: false, badIndex: expected });
          } else {
            expect(loaded.ok).toBe(true);
            if (loaded.ok) {
              // Present ones are exact (no bit above 51); all keep their low word and P bit.
              loaded.pdptes.forEach((p, i) => {
                expect(p >>> 0 === values[i]!.lo || big[i]! >= 1n << 53n).toBe(true);
                if ((values[i]!.lo & 1) === 1) expect(BigInt(p)).toBe(big[i]);
              });
            }
          }
        },
      ),
      { numRuns: 2000 },
    );
  });
});
