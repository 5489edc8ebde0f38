import { describe, expect, it } from "vitest";
import { ACCESS } from "./access";
import { cpuFeatures } from "./cpu-features";
import { DenseMemory } from "./dense-memory";
import { AD_UPDATE, type AdUpdate, PageWalker } from "./page-walk";
import { createPagingContext, type PagingContext } from "./paging-context";

/**
 * The case space of kvm-unit-tests `x86/access.c` (plus the `smap.c`, `pku.c` and `pks.c`
 * scenarios), run through the PageWalker. Each case builds one linear address's PML4E/PDPTE/PDE/
 * PTE from a set of flags, makes one access (or a supervisor read and then the access, for
 * "twice"), and checks the fault, the #PF error code and the A/D bits left in every entry against
 * `emulate`, an expected-outcome function written here from the SDM (4.5 reserved bits, 4.6.1
 * access rights, 4.6.2 protection keys, 4.7 error code, 4.8 A/D flags) and our documented A/D
 * policies. Only the case space is kvm-unit-tests'; the code is ours.
 */

// ---------------------------------------------------------------------------------------------
// The flags of a case (one bit each, as access.c numbers them conceptually).

const F = {
  PTE_WRITABLE: 1 << 0,
  PTE_USER: 1 << 1,
  PTE_ACCESSED: 1 << 2,
  PTE_DIRTY: 1 << 3,
  PTE_NX: 1 << 4,
  PTE_PRESENT: 1 << 5,
  PTE_BIT51: 1 << 6,
  PTE_BIT36: 1 << 7,
  PDE_WRITABLE: 1 << 8,
  PDE_USER: 1 << 9,
  PDE_ACCESSED: 1 << 10,
  PDE_DIRTY: 1 << 11,
  PDE_PSE: 1 << 12,
  PDE_NX: 1 << 13,
  PDE_PRESENT: 1 << 14,
  PDE_BIT51: 1 << 15,
  PDE_BIT36: 1 << 16,
  PDE_BIT13: 1 << 17,
  PDPTE_NO_WRITABLE: 1 << 18,
  PKU_AD: 1 << 19,
  PKU_WD: 1 << 20,
  PKU_PKEY: 1 << 21,
  ACCESS_USER: 1 << 22,
  ACCESS_WRITE: 1 << 23,
  ACCESS_FETCH: 1 << 24,
  ACCESS_TWICE: 1 << 25,
  CPU_EFER_NX: 1 << 26,
  CPU_CR0_WP: 1 << 27,
  CPU_CR4_SMEP: 1 << 28,
  CPU_CR4_PKE: 1 << 29,
} as const;
const FLAG_COUNT = 30;
const FLAG_NAMES = Object.keys(F);

function describeFlags(flags: number): string {
  return FLAG_NAMES.filter((_, i) => (flags & (1 << i)) !== 0).join(" ") || "(none)";
}

/**
 * access.c's legality rules, minus those that only protect its own test harness (it cannot run
 * user code with SMEP on, so it skips SMEP; we can run every combination):
 * - an access is not both a write and a fetch;
 * - PKRU.AD/WD are only varied with CR4.PKE (with PKE off PKRU is all-disabled anyway);
 * - PDE bit 13 is a reserved bit only in a 2-MiB PDE (in a table pointer it is an address bit);
 * - at most one reserved bit per case (bits 51, 36, 13, and XD when EFER.NXE=0).
 */
function legal(flags: number): boolean {
  if ((flags & F.ACCESS_WRITE) !== 0 && (flags & F.ACCESS_FETCH) !== 0) return false;
  if ((flags & F.CPU_CR4_PKE) === 0 && ((flags & F.PKU_AD) !== 0 || (flags & F.PKU_WD) !== 0)) return false;
  if ((flags & F.PDE_PSE) === 0 && (flags & F.PDE_BIT13) !== 0) return false;
  let reserved = flags & (F.PDE_BIT51 | F.PDE_BIT36 | F.PDE_BIT13 | F.PTE_BIT51 | F.PTE_BIT36);
  if ((flags & F.CPU_EFER_NX) === 0) reserved |= flags & (F.PDE_NX | F.PTE_NX);
  return (reserved & (reserved - 1)) === 0;
}

// ---------------------------------------------------------------------------------------------
// The world a case runs in. MAXPHYADDR 36, so bits 36 and 51 are both reserved (access.c skips
// the bit it cannot test on wider machines).

const MAXPHYADDR = 36;
const features = cpuFeatures({ maxPhysAddr: MAXPHYADDR });
const PML4 = 0x10000;
const PDPT = 0x11000;
const PD = 0x12000;
const PT = 0x13000;
const DATA = 0x200_0000; // 32 MiB, 2-MiB aligned
/** Linear address 0xffff_9234_0012_3abc, as its halves. */
const LA_HI = 0xffff9234;
const LA_LO = 0x0012_3abc;
const PML4E_AT = PML4 + ((LA_HI >>> 7) & 0x1ff) * 8;
const PDPTE_AT = PDPT + (((LA_LO >>> 30) | ((LA_HI & 0x7f) << 2)) & 0x1ff) * 8;
const PDE_AT = PD + ((LA_LO >>> 21) & 0x1ff) * 8;
const PTE_AT = PT + ((LA_LO >>> 12) & 0x1ff) * 8;

// Entry bits.
const P = 1 << 0;
const W = 1 << 1;
const U = 1 << 2;
const A = 1 << 5;
const D = 1 << 6;
const PS = 1 << 7;
const XD_HI = 0x8000_0000;
const PKEY_SHIFT_HI = 27; // bits 62:59 are bits 30:27 of the high word

// Error-code bits (SDM 4.7).
const EC_P = 1;
const EC_W = 2;
const EC_U = 4;
const EC_RSVD = 8;
const EC_I = 16;
const EC_PK = 32;

// Register bits.
const CR0_PE = 1;
const CR0_WP = 1 << 16;
const CR0_PG = 0x8000_0000;
const CR4_PAE = 1 << 5;
const CR4_LA57 = 1 << 12;
const CR4_SMEP = 1 << 20;
const CR4_SMAP = 1 << 21;
const CR4_PKE = 1 << 22;
const CR4_PKS = 1 << 24;
const EFER_LME_LMA = (1 << 8) | (1 << 10);
const EFER_NXE = 1 << 11;
const RFLAGS_AC = 1 << 18;

/** A 64-bit entry as two words. */
interface Entry {
  lo: number;
  hi: number;
}

/** The four entries of the case's address (the tables below them are fixed). */
interface Tables {
  readonly pml4e: Entry;
  readonly pdpte: Entry;
  readonly pde: Entry;
  readonly pte: Entry;
}

function tables(): Tables {
  return { pml4e: { lo: 0, hi: 0 }, pdpte: { lo: 0, hi: 0 }, pde: { lo: 0, hi: 0 }, pte: { lo: 0, hi: 0 } };
}

/** Builds the entries of a case, as access.c lays them out (in our own words). */
function entriesFor(flags: number, out: Tables): void {
  out.pml4e.lo = (PDPT | P | W | U) >>> 0;
  out.pml4e.hi = 0;
  out.pdpte.lo = (PD | P | U | ((flags & F.PDPTE_NO_WRITABLE) !== 0 ? 0 : W)) >>> 0;
  out.pdpte.hi = 0;

  let pde = (flags & F.PDE_PSE) !== 0 ? DATA | PS : PT;
  if ((flags & F.PDE_PRESENT) !== 0) pde |= P;
  if ((flags & F.PDE_WRITABLE) !== 0) pde |= W;
  if ((flags & F.PDE_USER) !== 0) pde |= U;
  if ((flags & F.PDE_ACCESSED) !== 0) pde |= A;
  if ((flags & F.PDE_DIRTY) !== 0) pde |= D;
  if ((flags & F.PDE_BIT13) !== 0) pde |= 1 << 13;
  let pdeHi = 0;
  if ((flags & F.PDE_NX) !== 0) pdeHi |= XD_HI;
  if ((flags & F.PDE_BIT51) !== 0) pdeHi |= 1 << 19;
  if ((flags & F.PDE_BIT36) !== 0) pdeHi |= 1 << 4;
  // The key: 1 on the leaf; a non-leaf PDE carries key 2, which must be ignored.
  if ((flags & F.PKU_PKEY) !== 0) pdeHi |= ((flags & F.PDE_PSE) !== 0 ? 1 : 2) << PKEY_SHIFT_HI;
  out.pde.lo = pde >>> 0;
  out.pde.hi = pdeHi >>> 0;

  let pte = DATA;
  if ((flags & F.PTE_PRESENT) !== 0) pte |= P;
  if ((flags & F.PTE_WRITABLE) !== 0) pte |= W;
  if ((flags & F.PTE_USER) !== 0) pte |= U;
  if ((flags & F.PTE_ACCESSED) !== 0) pte |= A;
  if ((flags & F.PTE_DIRTY) !== 0) pte |= D;
  let pteHi = 0;
  if ((flags & F.PTE_NX) !== 0) pteHi |= XD_HI;
  if ((flags & F.PTE_BIT51) !== 0) pteHi |= 1 << 19;
  if ((flags & F.PTE_BIT36) !== 0) pteHi |= 1 << 4;
  if ((flags & F.PKU_PKEY) !== 0) pteHi |= 1 << PKEY_SHIFT_HI;
  out.pte.lo = pte >>> 0;
  out.pte.hi = pteHi >>> 0;
}

// ---------------------------------------------------------------------------------------------
// The expected outcome, from the SDM (the à-la-`ac_emulate_access` oracle).

interface Cpu {
  readonly nxe: boolean;
  readonly wp: boolean;
  readonly smep: boolean;
  readonly smap: boolean;
  readonly ac: boolean;
  readonly pke: boolean;
  readonly pks: boolean;
  readonly pkru: number;
  readonly pkrs: number;
}

interface Access {
  readonly user: boolean;
  readonly write: boolean;
  readonly fetch: boolean;
  /** An implicit supervisor-mode access (never with `user`). */
  readonly implicit: boolean;
}

/** Reserved bits of a present entry with MAXPHYADDR 36 (SDM 4.5, Tables 4-14..4-20). */
function reserved(e: Entry, level: number, cpu: Cpu): boolean {
  if ((e.hi & 0x000f_fff0) !== 0) return true; // bits 51:36
  if (!cpu.nxe && (e.hi & XD_HI) !== 0) return true; // XD without EFER.NXE
  if (level === 4 && (e.lo & PS) !== 0) return true; // PS in a PML4E
  if (level === 3 && (e.lo & PS) !== 0 && (e.lo & 0x3fff_e000) !== 0) return true; // 1-GiB page: 29:13
  if (level === 2 && (e.lo & PS) !== 0 && (e.lo & 0x001f_e000) !== 0) return true; // 2-MiB page: 20:13
  return false;
}

const expected = { fault: false, errorCode: 0 };
const PATH: Entry[] = [];

/**
 * Applies one access to `t` (updating A/D flags per `policy`) and sets `expected`. The walk
 * goes PML4E → PDPTE → PDE (→ PTE); the first not-present or reserved entry stops it.
 */
function emulate(t: Tables, cpu: Cpu, acc: Access, policy: AdUpdate): void {
  // SDM 4.7: W/R and U/S describe the access; I/D only for a fetch with SMEP or EFER.NXE.
  const code =
    (acc.write ? EC_W : 0) | (acc.user ? EC_U : 0) | (acc.fetch && (cpu.smep || cpu.nxe) ? EC_I : 0);
  const hardware = policy === AD_UPDATE.HARDWARE;
  const path = PATH;
  path[0] = t.pml4e;
  path[1] = t.pdpte;
  path[2] = t.pde;
  path[3] = t.pte;
  let writable = true;
  let user = true;
  let xd = false;
  let leaf: Entry | null = null;
  let used = 0;
  for (let level = 4; leaf === null; level--) {
    const e = path[4 - level]!;
    used++;
    if ((e.lo & P) === 0) {
      expected.fault = true;
      expected.errorCode = code;
      return;
    }
    if (reserved(e, level, cpu)) {
      expected.fault = true;
      expected.errorCode = code | EC_P | EC_RSVD;
      return;
    }
    writable &&= (e.lo & W) !== 0;
    user &&= (e.lo & U) !== 0;
    xd ||= cpu.nxe && (e.hi & XD_HI) !== 0;
    if (level === 1 || (level <= 3 && (e.lo & PS) !== 0)) leaf = e;
    else if (hardware) e.lo = (e.lo | A) >>> 0; // SDM 4.8: used to reach the next level
  }

  // SDM 4.6.1.
  let denied: boolean;
  if (acc.user) denied = !user || (acc.write && !writable) || (acc.fetch && xd);
  else if (acc.fetch) denied = xd || (user && cpu.smep);
  else denied = (user && cpu.smap && (acc.implicit || !cpu.ac)) || (acc.write && !writable && cpu.wp);
  // SDM 4.6.2: data accesses; PKRU for user pages (CR4.PKE), IA32_PKRS for supervisor ones (CR4.PKS).
  let keyDenied = false;
  if (!acc.fetch && (user ? cpu.pke : cpu.pks)) {
    const key = (leaf.hi >>> PKEY_SHIFT_HI) & 0xf;
    const rights = ((user ? cpu.pkru : cpu.pkrs) >>> (2 * key)) & 3;
    keyDenied = (rights & 1) !== 0 || ((rights & 2) !== 0 && acc.write && (acc.user || cpu.wp));
  }
  if (denied || keyDenied) {
    expected.fault = true;
    expected.errorCode = code | EC_P | (keyDenied ? EC_PK : 0);
    return;
  }
  expected.fault = false;
  expected.errorCode = 0;
  if (policy === AD_UPDATE.AFTER_SUCCESS)
    for (let i = 0; i < used - 1; i++) path[i]!.lo = (path[i]!.lo | A) >>> 0;
  if (policy !== AD_UPDATE.NONE) leaf.lo = (leaf.lo | A | (acc.write ? D : 0)) >>> 0;
}

// ---------------------------------------------------------------------------------------------
// Running cases through the walker.

interface Runner {
  readonly memory: DenseMemory;
  readonly walker: PageWalker;
  readonly ctx: (cpu: Cpu) => PagingContext;
}

const PML5 = 0x14000;
const PML5E_AT = PML5 + ((LA_HI >>> 16) & 0x1ff) * 8;

/** A walker over its own memory; with 5 levels a fixed PML5E (A already set) sits above the PML4. */
function runner(policy: AdUpdate, levels: 4 | 5 = 4): Runner {
  const memory = new DenseMemory(64 * 1024 * 1024);
  if (levels === 5) memory.write64(PML5E_AT, PML4 | P | W | U | A, 0);
  const cache = new Map<Cpu, PagingContext>();
  const ctx = (cpu: Cpu) => {
    let c = cache.get(cpu);
    if (c === undefined) {
      c = createPagingContext(
        {
          cr0: CR0_PG | CR0_PE | (cpu.wp ? CR0_WP : 0),
          cr3: levels === 5 ? PML5 : PML4,
          cr4:
            CR4_PAE |
            (levels === 5 ? CR4_LA57 : 0) |
            (cpu.smep ? CR4_SMEP : 0) |
            (cpu.smap ? CR4_SMAP : 0) |
            (cpu.pke ? CR4_PKE : 0) |
            (cpu.pks ? CR4_PKS : 0),
          efer: EFER_LME_LMA | (cpu.nxe ? EFER_NXE : 0),
          rflags: 2 | (cpu.ac ? RFLAGS_AC : 0),
          pkru: cpu.pkru,
          pkrs: cpu.pkrs,
        },
        features,
      );
      cache.set(cpu, c);
    }
    return c;
  };
  return { memory, walker: new PageWalker(memory, { adUpdate: policy }), ctx };
}

function store(m: DenseMemory, t: Tables): void {
  m.write64(PML4E_AT, t.pml4e.lo, t.pml4e.hi);
  m.write64(PDPTE_AT, t.pdpte.lo, t.pdpte.hi);
  m.write64(PDE_AT, t.pde.lo, t.pde.hi);
  m.write64(PTE_AT, t.pte.lo, t.pte.hi);
}

function accessBits(acc: Access): number {
  return (
    (acc.write ? ACCESS.WRITE : 0) |
    (acc.fetch ? ACCESS.FETCH : 0) |
    (acc.user ? ACCESS.USER : 0) |
    (acc.implicit ? ACCESS.IMPLICIT : 0)
  );
}

function differs(name: string, m: DenseMemory, at: number, e: Entry): string | null {
  const lo = m.read32(at);
  const hi = m.read32(at + 4);
  if (lo === e.lo && hi === e.hi) return null;
  return `${name} ${hi.toString(16)}_${lo.toString(16)}, expected ${e.hi.toString(16)}_${e.lo.toString(16)}`;
}

/** Runs one access on the walker and on the model; returns a description of any difference. */
function check(r: Runner, model: Tables, cpu: Cpu, acc: Access, policy: AdUpdate): string | null {
  const ctx = r.ctx(cpu);
  const ok = r.walker.walk(ctx, LA_LO, LA_HI, accessBits(acc));
  emulate(model, cpu, acc, policy);
  const res = r.walker.result;
  const m = r.memory;
  if (ok === expected.fault)
    return ok ? "unexpected access" : `unexpected fault ${res.errorCode.toString(16)}`;
  if (!ok && res.errorCode !== expected.errorCode)
    return `error code ${res.errorCode.toString(16)}, expected ${expected.errorCode.toString(16)}`;
  if (ok) {
    const large = (model.pde.lo & PS) !== 0;
    const pa = DATA + (large ? LA_LO & 0x1f_ffff : LA_LO & 0xfff);
    if (res.pa !== pa) return `pa ${res.pa.toString(16)}, expected ${pa.toString(16)}`;
  }
  return (
    differs("PML4E", m, PML4E_AT, model.pml4e) ??
    differs("PDPTE", m, PDPTE_AT, model.pdpte) ??
    differs("PDE", m, PDE_AT, model.pde) ??
    differs("PTE", m, PTE_AT, model.pte)
  );
}

const CPUS = new Map<number, Cpu>();

/** The CPU state of a case (one object per distinct state). */
function cpuOf(flags: number): Cpu {
  const key = flags & (F.CPU_EFER_NX | F.CPU_CR0_WP | F.CPU_CR4_SMEP | F.CPU_CR4_PKE | F.PKU_AD | F.PKU_WD);
  let cpu = CPUS.get(key);
  if (cpu === undefined) {
    cpu = cpuOfFlags(key);
    CPUS.set(key, cpu);
  }
  return cpu;
}

function cpuOfFlags(flags: number): Cpu {
  const pke = (flags & F.CPU_CR4_PKE) !== 0;
  return {
    nxe: (flags & F.CPU_EFER_NX) !== 0,
    wp: (flags & F.CPU_CR0_WP) !== 0,
    smep: (flags & F.CPU_CR4_SMEP) !== 0,
    smap: false,
    ac: false,
    pke,
    pks: false,
    // Key 2: AD=WD=1 (a non-leaf key must not matter); key 1 from the flags; key 0 open. With
    // PKE off, PKRU denies every key but 0 (access.c leaves 0xfffffffc), which must not matter.
    pkru: pke ? 0x30 | ((flags & F.PKU_WD) !== 0 ? 8 : 0) | ((flags & F.PKU_AD) !== 0 ? 4 : 0) : 0xfffffffc,
    pkrs: 0,
  };
}

const SUPERVISOR_READ: Access = { user: false, write: false, fetch: false, implicit: false };
const ACCESSES: Access[] = [];
for (let i = 0; i < 8; i++) {
  ACCESSES.push({ user: (i & 1) !== 0, write: (i & 2) !== 0, fetch: (i & 4) !== 0, implicit: false });
}

/** One access.c case: set up the entries, optionally a supervisor read first, then the access. */
function runCase(r: Runner, flags: number, policy: AdUpdate, model: Tables): string | null {
  entriesFor(flags, model);
  store(r.memory, model);
  const cpu = cpuOf(flags);
  if ((flags & F.ACCESS_TWICE) !== 0) {
    const first = check(r, model, cpu, SUPERVISOR_READ, policy);
    if (first !== null) return `first read: ${first}`;
  }
  const acc = ACCESSES[(flags >>> 22) & 7]!; // ACCESS_USER, ACCESS_WRITE, ACCESS_FETCH
  return check(r, model, cpu, acc, policy);
}

/** Flags that no legality rule mentions: every combination of them is legal. */
const FREE_FLAGS =
  F.PTE_WRITABLE |
  F.PTE_USER |
  F.PTE_ACCESSED |
  F.PTE_DIRTY |
  F.PTE_PRESENT |
  F.PDE_WRITABLE |
  F.PDE_USER |
  F.PDE_ACCESSED |
  F.PDE_DIRTY |
  F.PDE_PRESENT |
  F.PDPTE_NO_WRITABLE |
  F.PKU_PKEY |
  F.ACCESS_USER |
  F.ACCESS_TWICE |
  F.CPU_CR0_WP |
  F.CPU_CR4_SMEP;

/** Every subset of a mask, as flag values. */
function subsets(mask: number): number[] {
  const out: number[] = [];
  let s = 0;
  do {
    out.push(s);
    s = (s - mask) & mask;
  } while (s !== 0);
  return out;
}

/** The legal values of the constrained flags (the rest of `legal`'s inputs). */
const CONSTRAINED = subsets(((1 << FLAG_COUNT) - 1) & ~FREE_FLAGS).filter(legal);
const FREE = subsets(FREE_FLAGS);
/** Number of legal cases: every free combination with every legal constrained one. */
const CASES = CONSTRAINED.length * FREE.length;

function runMatrix(policy: AdUpdate, slices: number, slice: number, levels: 4 | 5 = 4) {
  const r = runner(policy, levels);
  const model = tables();
  const failures: string[] = [];
  let run = 0;
  // Slice `slice` of `slices` pairs the i-th constrained combination with the free ones whose
  // index is congruent to (7i + slice) modulo `slices`: the slices partition the cases, and each
  // one still covers every constrained combination and every free flag value.
  for (let i = 0; i < CONSTRAINED.length; i++) {
    const constrained = CONSTRAINED[i]!;
    for (let j = (7 * i + slice) % slices; j < FREE.length; j += slices) {
      const flags = constrained | FREE[j]!;
      run++;
      const failure = runCase(r, flags, policy, model);
      if (failure !== null && failures.length < 20) failures.push(`${describeFlags(flags)}: ${failure}`);
    }
  }
  if (levels === 5 && r.memory.read32(PML5E_AT) !== (PML4 | P | W | U | A))
    failures.push("the PML5E changed");
  return { run, failures };
}

// ---------------------------------------------------------------------------------------------
// Single accesses for the scenario tests.

const BASE_CPU: Cpu = {
  nxe: true,
  wp: true,
  smep: false,
  smap: false,
  ac: false,
  pke: false,
  pks: false,
  pkru: 0,
  pkrs: 0,
};

interface Page {
  readonly user?: boolean;
  readonly writable?: boolean;
  readonly pkey?: number;
}

const shared = new Map<AdUpdate, Runner>();
function sharedRunner(policy: AdUpdate): Runner {
  let r = shared.get(policy);
  if (r === undefined) {
    r = runner(policy);
    shared.set(policy, r);
  }
  return r;
}

/** Upper entries P|W|U with A clear; the PTE maps DATA with the page's rights and key. */
function simpleTables(page: Page): Tables {
  const t = tables();
  t.pml4e.lo = PDPT | P | W | U;
  t.pdpte.lo = PD | P | W | U;
  t.pde.lo = PT | P | W | U;
  t.pte.lo = (DATA | P | (page.writable === false ? 0 : W) | (page.user === false ? 0 : U)) >>> 0;
  t.pte.hi = ((page.pkey ?? 0) << PKEY_SHIFT_HI) >>> 0;
  return t;
}

/**
 * One access to a fresh page: returns the walker's outcome (the error code, or 0 when allowed),
 * after checking that it and the A/D flags it left agree with `emulate`.
 */
function access(cpu: Partial<Cpu>, page: Page, acc: Access, policy: AdUpdate = AD_UPDATE.HARDWARE) {
  const r = sharedRunner(policy);
  const model = simpleTables(page);
  store(r.memory, model);
  const difference = check(r, model, { ...BASE_CPU, ...cpu }, acc, policy);
  expect(difference).toBeNull();
  return { ok: r.walker.result.ok, errorCode: r.walker.result.ok ? 0 : r.walker.result.errorCode };
}

const read = (cpl: 0 | 3, implicit = false): Access => ({
  user: cpl === 3 && !implicit,
  write: false,
  fetch: false,
  implicit,
});
const write = (cpl: 0 | 3, implicit = false): Access => ({
  user: cpl === 3 && !implicit,
  write: true,
  fetch: false,
  implicit,
});
const fetch = (cpl: 0 | 3): Access => ({ user: cpl === 3, write: false, fetch: true, implicit: false });
const ALLOWED = { ok: true, errorCode: 0 };
const fault = (errorCode: number) => ({ ok: false, errorCode });

// ---------------------------------------------------------------------------------------------

/**
 * The default run takes a deterministic slice of the 4-level HARDWARE matrix (1 in
 * `DEFAULT_SLICES`) and thinner slices of the other two; NESTVISOR_ACCESS_MATRIX=full runs every
 * case (about a minute).
 */
const FULL = process.env.NESTVISOR_ACCESS_MATRIX === "full";
const DEFAULT_SLICES = 32;
const FULL_TIMEOUT_MS = 30 * 60 * 1000;

describe("access.c case space", () => {
  it("has 885 legal combinations of the constrained flags and 57,999,360 cases in all", () => {
    expect(FLAG_NAMES).toHaveLength(FLAG_COUNT);
    expect(CONSTRAINED).toHaveLength(885);
    expect(FREE).toHaveLength(2 ** 16);
    expect(CASES).toBe(57_999_360);
    // Spot-check the legality rules.
    expect(legal(F.ACCESS_WRITE | F.ACCESS_FETCH)).toBe(false);
    expect(legal(F.PKU_AD)).toBe(false);
    expect(legal(F.PKU_AD | F.CPU_CR4_PKE)).toBe(true);
    expect(legal(F.PDE_BIT13)).toBe(false);
    expect(legal(F.PDE_BIT13 | F.PDE_PSE)).toBe(true);
    expect(legal(F.PTE_BIT51 | F.PDE_BIT36)).toBe(false);
    expect(legal(F.PTE_NX | F.PDE_NX)).toBe(false);
    expect(legal(F.PTE_NX | F.PDE_NX | F.CPU_EFER_NX)).toBe(true);
  });

  it(
    `4-level, HARDWARE A/D: ${FULL ? "every case" : `slice 0 of ${DEFAULT_SLICES}`} (fault, error code, A/D of every entry)`,
    () => {
      const slices = FULL ? 1 : DEFAULT_SLICES;
      const { run, failures } = runMatrix(AD_UPDATE.HARDWARE, slices, 0);
      expect(failures).toEqual([]);
      expect(run).toBe(CASES / slices);
    },
    FULL ? FULL_TIMEOUT_MS : 20_000,
  );

  it(
    `4-level, AFTER_SUCCESS A/D (no A/D on any fault): ${FULL ? "every case" : "slice 1 of 256"}`,
    () => {
      const slices = FULL ? 1 : 256;
      const { run, failures } = runMatrix(AD_UPDATE.AFTER_SUCCESS, slices, FULL ? 0 : 1);
      expect(failures).toEqual([]);
      expect(run).toBe(CASES / slices);
    },
    FULL ? FULL_TIMEOUT_MS : 20_000,
  );

  it(
    `5-level, HARDWARE A/D: ${FULL ? "every case" : "slice 2 of 256"}`,
    () => {
      const slices = FULL ? 1 : 256;
      const { run, failures } = runMatrix(AD_UPDATE.HARDWARE, slices, FULL ? 0 : 2, 5);
      expect(failures).toEqual([]);
      expect(run).toBe(CASES / slices);
    },
    FULL ? FULL_TIMEOUT_MS : 20_000,
  );

  it("the slices partition the cases", () => {
    // Every (constrained, free) pair lands in exactly one slice: j ≡ 7i + slice (mod slices).
    const slices = 8;
    const seen = new Uint8Array(FREE.length);
    for (const i of [0, 1, 2, 884]) {
      seen.fill(0);
      for (let slice = 0; slice < slices; slice++) {
        for (let j = (7 * i + slice) % slices; j < FREE.length; j += slices) seen[j]!++;
      }
      expect(seen.every((x) => x === 1)).toBe(true);
    }
  });
});

describe("access.c's scenario tests", () => {
  it("the A bit of a PDE is set by a walk that then faults on its PTE (HARDWARE), never by AFTER_SUCCESS", () => {
    for (const policy of [AD_UPDATE.HARDWARE, AD_UPDATE.AFTER_SUCCESS]) {
      const r = runner(policy);
      const model = tables();
      entriesFor(F.PDE_PRESENT | F.PDE_WRITABLE | F.PDE_USER | F.CPU_EFER_NX, model); // PTE not present
      store(r.memory, model);
      expect(r.walker.walk(r.ctx(BASE_CPU), LA_LO, LA_HI, ACCESS.READ)).toBe(false);
      expect(r.walker.result.errorCode).toBe(0);
      const pdeA = r.memory.read32(PDE_AT) & A;
      const pml4eA = r.memory.read32(PML4E_AT) & A;
      expect({ pdeA, pml4eA }).toEqual(
        policy === AD_UPDATE.HARDWARE ? { pdeA: A, pml4eA: A } : { pdeA: 0, pml4eA: 0 },
      );
    }
  });

  it("effective rights are the AND along each path, also when two PDPTEs share a page directory", () => {
    // Two PDPTEs (one writable, one read-only) point at the same page directory, whose PDEs
    // are read-only (for the first 2 MiB) and writable (for the next). All user, all present.
    const memory = new DenseMemory(64 * 1024 * 1024);
    const walker = new PageWalker(memory, { adUpdate: AD_UPDATE.HARDWARE });
    const ctx = sharedRunner(AD_UPDATE.HARDWARE).ctx(BASE_CPU);
    const base = 0x4000_0000; // PDPT index 1 → read-write; index 2 → read-only
    memory.write64(PML4, PDPT | P | W | U, 0);
    memory.write64(PDPT + 8, PD | P | W | U, 0);
    memory.write64(PDPT + 16, PD | P | U, 0);
    memory.write64(PD, PT | P | U, 0);
    memory.write64(PD + 8, (PT + 0x1000) | P | W | U, 0);
    memory.write64(PT, DATA | P | W | U, 0);
    memory.write64(PT + 0x1000, (DATA + 0x1000) | P | W | U | D, 0);
    const ptr1 = base;
    const ptr2 = base + 0x20_0000;
    const ptr3 = base + 0x4000_0000;
    const ptr4 = ptr3 + 0x20_0000;
    const user = ACCESS.USER;
    expect(walker.walk(ctx, ptr1, 0, user)).toBe(true);
    expect(walker.walk(ctx, ptr2, 0, user | ACCESS.WRITE)).toBe(true);
    expect(walker.walk(ctx, ptr3, 0, user)).toBe(true);
    expect(walker.walk(ctx, ptr4, 0, user | ACCESS.WRITE)).toBe(false);
    expect(walker.result.errorCode).toBe(EC_P | EC_W | EC_U);
    expect(walker.walk(ctx, ptr1, 0, user | ACCESS.WRITE)).toBe(false); // the PDE is read-only
  });

  it("a supervisor write with CR0.WP=0 dirties a read-only user page; SMEP then stops a fetch from it", () => {
    const page = { user: true, writable: false };
    expect(access({ wp: false }, page, write(0))).toEqual(ALLOWED);
    expect(access({ wp: false, smep: true }, page, fetch(0))).toEqual(fault(EC_P | EC_I));
  });

  it("CR0.WP decides a supervisor write to a read-only page, whichever way it was toggled", () => {
    const page = { user: false, writable: false };
    for (const wp of [false, true, false, true]) {
      expect(access({ wp, nxe: false }, page, write(0))).toEqual(wp ? fault(EC_P | EC_W) : ALLOWED);
    }
  });

  it("a neighbouring PTE with XD and EFER.NXE=0 is a reserved-bit fault, the first PTE still works", () => {
    const r = runner(AD_UPDATE.HARDWARE);
    const model = tables();
    entriesFor(F.PDE_PRESENT | F.PTE_PRESENT, model);
    store(r.memory, model);
    r.memory.write64(PTE_AT + 16, (DATA + 0x2000) | P, XD_HI); // the PTE two pages on
    const ctx = r.ctx({ ...BASE_CPU, nxe: false });
    expect(r.walker.walk(ctx, LA_LO, LA_HI, ACCESS.READ)).toBe(true);
    expect(r.walker.walk(ctx, LA_LO + 0x2000, LA_HI, ACCESS.READ)).toBe(false);
    expect(r.walker.result.errorCode).toBe(EC_P | EC_RSVD);
  });

  it("two PDEs mapping one 2-MiB page each get D only from a write through themselves", () => {
    const r = runner(AD_UPDATE.HARDWARE);
    const ctx = r.ctx({ ...BASE_CPU, wp: false });
    r.memory.write64(PML4E_AT, PDPT | P | W | U, 0);
    r.memory.write64(PDPTE_AT, PD | P | W | U, 0);
    const other = PDE_AT + 8; // the next 2 MiB, same physical page, read-only
    r.memory.write64(PDE_AT, DATA | P | PS, 0);
    r.memory.write64(other, DATA | P | PS, 0);
    expect(r.walker.walk(ctx, LA_LO, LA_HI, ACCESS.READ)).toBe(true);
    expect(r.memory.read32(PDE_AT) & (A | D)).toBe(A);
    expect(r.walker.walk(ctx, LA_LO + 0x20_0000, LA_HI, ACCESS.WRITE)).toBe(true); // WP=0: allowed
    expect(r.memory.read32(other) & (A | D)).toBe(A | D);
    expect(r.memory.read32(PDE_AT) & (A | D)).toBe(A);
    expect(r.walker.walk(ctx, LA_LO, LA_HI, ACCESS.WRITE)).toBe(true);
    expect(r.memory.read32(PDE_AT) & (A | D)).toBe(A | D);
  });
});

describe("SMAP (smap.c-style)", () => {
  const userPage = { user: true };
  const supervisorPage = { user: false };
  const on = { smap: true };

  it("supervisor accesses to user pages need RFLAGS.AC; supervisor pages are unaffected", () => {
    expect(access(on, supervisorPage, write(0))).toEqual(ALLOWED);
    expect(access({ ...on, ac: true }, userPage, read(0))).toEqual(ALLOWED);
    expect(access(on, userPage, read(0))).toEqual(fault(EC_P));
    expect(access({ ...on, ac: true }, userPage, write(0))).toEqual(ALLOWED);
    expect(access(on, userPage, write(0))).toEqual(fault(EC_P | EC_W));
  });

  it("SMAP does not stop instruction fetches (that is SMEP's job) nor user-mode accesses", () => {
    expect(access(on, userPage, fetch(0))).toEqual(ALLOWED);
    expect(access({ ...on, smep: true }, userPage, fetch(0))).toEqual(fault(EC_P | EC_I));
    expect(access(on, userPage, read(3))).toEqual(ALLOWED);
    expect(access(on, userPage, write(3))).toEqual(ALLOWED);
  });

  it("implicit supervisor accesses are stopped whatever RFLAGS.AC and the CPL", () => {
    for (const cpl of [0, 3] as const) {
      expect(access({ ...on, ac: true }, userPage, read(cpl, true))).toEqual(fault(EC_P));
      expect(access({ ...on, ac: true }, userPage, write(cpl, true))).toEqual(fault(EC_P | EC_W));
      expect(access({ ...on, ac: true }, supervisorPage, read(cpl, true))).toEqual(ALLOWED);
    }
    // Without SMAP an implicit access at CPL 3 may use a user page: it is a supervisor access.
    expect(access({ ac: true }, { user: true, writable: false }, write(3, true))).toEqual(fault(EC_P | EC_W));
    expect(access({ ac: true, wp: false }, { user: true, writable: false }, write(3, true))).toEqual(ALLOWED);
  });

  it("with CR0.WP=0: a write to a read-only user page is allowed without SMAP, a read is stopped with it", () => {
    const page = { user: true, writable: false };
    expect(access({ wp: false }, page, write(0))).toEqual(ALLOWED);
    expect(access({ wp: false, smap: true }, page, read(0))).toEqual(fault(EC_P));
  });

  it("every combination of page U/S and R/W, SMAP, AC, WP, SMEP, CPL, implicit and kind agrees with the model", () => {
    let cases = 0;
    let faults = 0;
    for (let bits = 0; bits < 1 << 8; bits++) {
      const cpu = {
        smap: (bits & 1) !== 0,
        ac: (bits & 2) !== 0,
        wp: (bits & 4) !== 0,
        smep: (bits & 8) !== 0,
        nxe: (bits & 16) !== 0,
      };
      const page = { user: (bits & 32) !== 0, writable: (bits & 64) !== 0 };
      const cpl = (bits & 128) !== 0 ? 3 : 0;
      for (const acc of [read(cpl), write(cpl), fetch(cpl), read(cpl, true), write(cpl, true)]) {
        cases++;
        if (!access(cpu, page, acc).ok) faults++;
      }
    }
    expect(cases).toBe(1280);
    expect(faults).toBeGreaterThan(200);
    expect(faults).toBeLessThan(1080);
  });
});

describe("protection keys (pku.c- and pks.c-style)", () => {
  const KEY = 2;
  const AD2 = 1 << (2 * KEY);
  const WD2 = 2 << (2 * KEY);
  const userPage = { user: true, pkey: KEY };
  const supervisorPage = { user: false, pkey: KEY };

  it("PKRU governs user pages only, and only data accesses", () => {
    const pke = { pke: true };
    for (const wp of [false, true]) {
      expect(access({ ...pke, wp, pkru: AD2 }, supervisorPage, write(0))).toEqual(ALLOWED);
      expect(access({ ...pke, wp, pkru: WD2 }, supervisorPage, write(0))).toEqual(ALLOWED);
    }
    expect(access({ ...pke, wp: false, pkru: WD2 }, userPage, write(0))).toEqual(ALLOWED);
    expect(access({ ...pke, wp: true, pkru: WD2 }, userPage, write(0))).toEqual(fault(EC_P | EC_W | EC_PK));
    expect(access({ ...pke, pkru: AD2 }, userPage, read(0))).toEqual(fault(EC_P | EC_PK));
    expect(access({ ...pke, pkru: AD2 }, userPage, read(3))).toEqual(fault(EC_P | EC_U | EC_PK));
    expect(access({ ...pke, wp: false, pkru: WD2 }, userPage, write(3))).toEqual(
      fault(EC_P | EC_W | EC_U | EC_PK),
    );
    expect(access({ ...pke, pkru: AD2 | WD2 }, userPage, fetch(3))).toEqual(ALLOWED);
    expect(access({ pke: false, pkru: AD2 }, userPage, read(3))).toEqual(ALLOWED);
  });

  it("a key fault and a rights fault together report both P and PK", () => {
    const page = { user: true, writable: false, pkey: KEY };
    expect(access({ pke: true, pkru: AD2 }, page, write(3))).toEqual(fault(EC_P | EC_W | EC_U | EC_PK));
    expect(access({ pke: true, pkru: AD2, smap: true }, userPage, read(0))).toEqual(fault(EC_P | EC_PK));
  });

  it("IA32_PKRS governs supervisor pages: AD always, WD only with CR0.WP", () => {
    const pks = { pks: true };
    expect(access({ ...pks, wp: true, pkrs: AD2 }, supervisorPage, write(0))).toEqual(
      fault(EC_P | EC_W | EC_PK),
    );
    expect(access({ ...pks, wp: false, pkrs: AD2 }, supervisorPage, write(0))).toEqual(
      fault(EC_P | EC_W | EC_PK),
    );
    expect(access({ ...pks, wp: true, pkrs: WD2 }, supervisorPage, write(0))).toEqual(
      fault(EC_P | EC_W | EC_PK),
    );
    expect(access({ ...pks, wp: false, pkrs: WD2 }, supervisorPage, write(0))).toEqual(ALLOWED);
    expect(access({ ...pks, wp: false, pkrs: WD2 }, userPage, write(0))).toEqual(ALLOWED);
    expect(access({ ...pks, wp: true, pkrs: WD2 }, userPage, write(0))).toEqual(ALLOWED);
    expect(access({ ...pks, pkrs: AD2 }, userPage, read(0))).toEqual(ALLOWED);
    expect(access({ ...pks, pkrs: AD2 }, supervisorPage, read(0))).toEqual(fault(EC_P | EC_PK));
    expect(access({ ...pks, pkrs: AD2 }, supervisorPage, fetch(0))).toEqual(ALLOWED);
    expect(access({ ...pks, pkrs: AD2 }, supervisorPage, read(0, true))).toEqual(fault(EC_P | EC_PK));
    expect(access({ pks: false, pkrs: AD2 }, supervisorPage, read(0))).toEqual(ALLOWED);
  });

  it("every combination of page, PKE, PKS, both registers' rights for the key, WP, CPL, implicit and kind agrees with the model", () => {
    let cases = 0;
    let keyFaults = 0;
    for (let bits = 0; bits < 1 << 10; bits++) {
      const rightsU = bits & 3;
      const rightsS = (bits >> 2) & 3;
      const others = 0xffffffff; // every other key fully disabled: the right key must be used
      const cpu = {
        pke: (bits & 16) !== 0,
        pks: (bits & 32) !== 0,
        wp: (bits & 64) !== 0,
        pkru: ((others & ~(3 << (2 * KEY))) | (rightsU << (2 * KEY))) >>> 0,
        pkrs: ((others & ~(3 << (2 * KEY))) | (rightsS << (2 * KEY))) >>> 0,
      };
      const page = { user: (bits & 128) !== 0, writable: (bits & 256) !== 0, pkey: KEY };
      const cpl = (bits & 512) !== 0 ? 3 : 0;
      for (const acc of [read(cpl), write(cpl), fetch(cpl), read(cpl, true), write(cpl, true)]) {
        cases++;
        const outcome = access(cpu, page, acc);
        if ((outcome.errorCode & EC_PK) !== 0) keyFaults++;
      }
    }
    expect(cases).toBe(5120);
    expect(keyFaults).toBeGreaterThan(500);
  });
});

describe("AFTER_SUCCESS writes no A/D on any fault", () => {
  it("not present, reserved bit, rights and key faults leave every entry as it was", () => {
    const r = sharedRunner(AD_UPDATE.AFTER_SUCCESS);
    const faults: [Page, Partial<Cpu>, Access][] = [
      [{ user: false }, {}, read(3)],
      [{ writable: false }, {}, write(3)],
      [{ pkey: 1 }, { pke: true, pkru: 4 }, read(3)],
      [{ user: true }, { smap: true }, read(0)],
      [{ user: true }, { smep: true }, fetch(0)],
    ];
    for (const [page, cpu, acc] of faults) {
      const model = simpleTables(page);
      store(r.memory, model);
      expect(r.walker.walk(r.ctx({ ...BASE_CPU, ...cpu }), LA_LO, LA_HI, accessBits(acc))).toBe(false);
      expect(r.walker.result.memoryWrites).toBe(0);
      expect(
        differs("PML4E", r.memory, PML4E_AT, model.pml4e) ?? differs("PTE", r.memory, PTE_AT, model.pte),
      ).toBeNull();
      expect(
        differs("PDPTE", r.memory, PDPTE_AT, model.pdpte) ?? differs("PDE", r.memory, PDE_AT, model.pde),
      ).toBeNull();
    }
    // And a success sets A everywhere, D on the leaf.
    const model = simpleTables({});
    store(r.memory, model);
    expect(r.walker.walk(r.ctx(BASE_CPU), LA_LO, LA_HI, ACCESS.WRITE)).toBe(true);
    expect([PML4E_AT, PDPTE_AT, PDE_AT, PTE_AT].map((at) => r.memory.read32(at) & (A | D))).toEqual([
      A,
      A,
      A,
      A | D,
    ]);
  });
});
