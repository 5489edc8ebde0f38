import { describe, expect, it } from "vitest";
import { ACCESS, accessOf } from "./access";
import { AccessCaseExpectation, accessCaseExpectedPa, expectAccessCase } from "./access-case-outcome";
import {
  ACCESS_CASE_ENTRY_GPAS,
  ACCESS_CASE_ENTRY_NAMES,
  ACCESS_CASE_LAYOUT,
  type AccessCaseCpu,
  type AccessCaseEntries,
  accessCaseAccess,
  accessCaseCpu,
  accessCasePagingContext,
  buildAccessCaseEntries,
  buildScenarioEntries,
  newAccessCaseEntries,
  type ScenarioPage,
} from "./access-case-setup";
import {
  accessCaseSpace,
  describeAccessCase,
  ACCESS_CASE_FLAG as F,
  forEachAccessCase,
} from "./access-case-space";
import { DenseMemory } from "./dense-memory";
import { PFERR } from "./page-fault";
import { AD_UPDATE, type AdUpdate, PageWalker } from "./page-walk";
import type { PagingContext } from "./paging-context";
import { PTE_HI, PTE_LO } from "./paging-entry";

/**
 * The case space of kvm-unit-tests `x86/access.c` (plus the `smap.c`, `pku.c` and `pks.c`
 * scenarios), run through the PageWalker. The cases, their entries, CPU state and access, and the
 * expected outcome (`expectAccessCase`, from SDM 4.5–4.8 and our documented A/D policies) are the
 * arch layer's `access-case-*` modules; this file runs them on the walker and checks the fault,
 * the #PF error code, the physical address and the A/D bits left in every entry.
 */

const L = ACCESS_CASE_LAYOUT;

// Entry bits.
const P = PTE_LO.PRESENT;
const W = PTE_LO.WRITABLE;
const U = PTE_LO.USER;
const A = PTE_LO.ACCESSED;
const D = PTE_LO.DIRTY;
const PS = PTE_LO.PAGE_SIZE;
const XD = PTE_HI.XD;

// Error-code bits (SDM 4.7).
const EC_P = PFERR.PRESENT;
const EC_W = PFERR.WRITE;
const EC_U = PFERR.USER;
const EC_RSVD = PFERR.RSVD;
const EC_I = PFERR.FETCH;
const EC_PK = PFERR.PK;

// ---------------------------------------------------------------------------------------------
// Running cases through the walker.

interface Runner {
  readonly memory: DenseMemory;
  readonly walker: PageWalker;
  readonly ctx: (cpu: AccessCaseCpu) => PagingContext;
}

/** A walker over its own memory; with 5 levels a fixed PML5E (A already set) sits above the PML4. */
function runner(policy: AdUpdate, levels: 4 | 5 = 4): Runner {
  const memory = new DenseMemory(L.MEMORY_BYTES);
  if (levels === 5) memory.write64(L.PML5E, L.PML4 | P | W | U | A, 0);
  // One context per case CPU state (by key); hand-made states (key -1) get a fresh one.
  const cache = new Map<number, PagingContext>();
  const ctx = (cpu: AccessCaseCpu) => {
    if (cpu.key < 0) return accessCasePagingContext(cpu, levels);
    let c = cache.get(cpu.key);
    if (c === undefined) {
      c = accessCasePagingContext(cpu, levels);
      cache.set(cpu.key, c);
    }
    return c;
  };
  return { memory, walker: new PageWalker(memory, { adUpdate: policy }), ctx };
}

function store(m: DenseMemory, e: AccessCaseEntries): void {
  for (let i = 0; i < 4; i++) m.write64(ACCESS_CASE_ENTRY_GPAS[i]!, e[2 * i]!, e[2 * i + 1]!);
}

/** The first entry whose memory differs from the model, described; null when all four agree. */
function entriesDiffer(m: DenseMemory, e: AccessCaseEntries): string | null {
  for (let i = 0; i < 4; i++) {
    const at = ACCESS_CASE_ENTRY_GPAS[i]!;
    const lo = m.read32(at);
    const hi = m.read32(at + 4);
    if (lo !== e[2 * i] || hi !== e[2 * i + 1]) {
      return `${ACCESS_CASE_ENTRY_NAMES[i]} ${hi.toString(16)}_${lo.toString(16)}, expected ${e[2 * i + 1]!.toString(16)}_${e[2 * i]!.toString(16)}`;
    }
  }
  return null;
}

const expected = new AccessCaseExpectation();

/** Runs one access on the walker and on the model; returns a description of any difference. */
function check(
  r: Runner,
  model: AccessCaseEntries,
  cpu: AccessCaseCpu,
  acc: number,
  policy: AdUpdate,
): string | null {
  const ok = r.walker.walk(r.ctx(cpu), L.LA_LO, L.LA_HI, acc);
  expectAccessCase(model, cpu, acc, policy, expected);
  const res = r.walker.result;
  if (ok === expected.fault)
    return ok ? "unexpected access" : `unexpected fault ${res.errorCode.toString(16)}`;
  if (!ok && res.errorCode !== expected.errorCode)
    return `error code ${res.errorCode.toString(16)}, expected ${expected.errorCode.toString(16)}`;
  if (ok && res.pa !== accessCaseExpectedPa(model))
    return `pa ${res.pa.toString(16)}, expected ${accessCaseExpectedPa(model).toString(16)}`;
  return entriesDiffer(r.memory, model);
}

/** One access.c case: set up the entries, optionally a supervisor read first, then the access. */
function runCase(r: Runner, flags: number, policy: AdUpdate, model: AccessCaseEntries): string | null {
  buildAccessCaseEntries(flags, model);
  store(r.memory, model);
  const cpu = accessCaseCpu(flags);
  if ((flags & F.ACCESS_TWICE) !== 0) {
    const first = check(r, model, cpu, ACCESS.READ, policy);
    if (first !== null) return `first read: ${first}`;
  }
  return check(r, model, cpu, accessCaseAccess(flags), policy);
}

const SPACE = accessCaseSpace();

function runMatrix(policy: AdUpdate, slices: number, slice: number, levels: 4 | 5 = 4) {
  const r = runner(policy, levels);
  const model = newAccessCaseEntries();
  const failures: string[] = [];
  const run = forEachAccessCase(SPACE, slices, slice, (flags) => {
    const failure = runCase(r, flags, policy, model);
    if (failure !== null && failures.length < 20) failures.push(`${describeAccessCase(flags)}: ${failure}`);
  });
  if (levels === 5 && r.memory.read32(L.PML5E) !== (L.PML4 | P | W | U | A))
    failures.push("the PML5E changed");
  return { run, failures };
}

// ---------------------------------------------------------------------------------------------
// Single accesses for the scenario tests.

const BASE_CPU: AccessCaseCpu = {
  key: -1,
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

const shared = new Map<AdUpdate, Runner>();
function sharedRunner(policy: AdUpdate): Runner {
  let r = shared.get(policy);
  if (r === undefined) {
    r = runner(policy);
    shared.set(policy, r);
  }
  return r;
}

/** Upper entries P|W|U with A clear; the PTE maps the data page with the page's rights and key. */
function scenarioEntries(page: Partial<ScenarioPage>): AccessCaseEntries {
  const e = newAccessCaseEntries();
  buildScenarioEntries({ user: page.user ?? true, writable: page.writable ?? true, pkey: page.pkey ?? 0 }, e);
  return e;
}

/**
 * One access to a fresh page: returns the walker's outcome (the error code, or 0 when allowed),
 * after checking that it and the A/D flags it left agree with `expectAccessCase`.
 */
function access(
  cpu: Partial<AccessCaseCpu>,
  page: Partial<ScenarioPage>,
  acc: number,
  policy: AdUpdate = AD_UPDATE.HARDWARE,
) {
  const r = sharedRunner(policy);
  const model = scenarioEntries(page);
  store(r.memory, model);
  const difference = check(r, model, { ...BASE_CPU, ...cpu, key: -1 }, acc, policy);
  expect(difference).toBeNull();
  return { ok: r.walker.result.ok, errorCode: r.walker.result.ok ? 0 : r.walker.result.errorCode };
}

const read = (cpl: 0 | 3, implicit = false) => accessOf("read", cpl, implicit);
const write = (cpl: 0 | 3, implicit = false) => accessOf("write", cpl, implicit);
const fetch = (cpl: 0 | 3) => accessOf("fetch", cpl);
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
  it(
    `4-level, HARDWARE A/D: ${FULL ? "every case" : `slice 0 of ${DEFAULT_SLICES}`} (fault, error code, A/D of every entry)`,
    () => {
      const slices = FULL ? 1 : DEFAULT_SLICES;
      const { run, failures } = runMatrix(AD_UPDATE.HARDWARE, slices, 0);
      expect(failures).toEqual([]);
      expect(run).toBe(SPACE.total / slices);
    },
    FULL ? FULL_TIMEOUT_MS : 20_000,
  );

  it(
    `4-level, AFTER_SUCCESS A/D (no A/D on any fault): ${FULL ? "every case" : "slice 1 of 256"}`,
    () => {
      const slices = FULL ? 1 : 256;
      const { run, failures } = runMatrix(AD_UPDATE.AFTER_SUCCESS, slices, FULL ? 0 : 1);
      expect(failures).toEqual([]);
      expect(run).toBe(SPACE.total / slices);
    },
    FULL ? FULL_TIMEOUT_MS : 20_000,
  );

  it(
    `5-level, HARDWARE A/D: ${FULL ? "every case" : "slice 2 of 256"}`,
    () => {
      const slices = FULL ? 1 : 256;
      const { run, failures } = runMatrix(AD_UPDATE.HARDWARE, slices, FULL ? 0 : 2, 5);
      expect(failures).toEqual([]);
      expect(run).toBe(SPACE.total / slices);
    },
    FULL ? FULL_TIMEOUT_MS : 20_000,
  );
});

describe("access.c's scenario tests", () => {
  it("the A bit of a PDE is set by a walk that then faults on its PTE (HARDWARE), never by AFTER_SUCCESS", () => {
    for (const policy of [AD_UPDATE.HARDWARE, AD_UPDATE.AFTER_SUCCESS]) {
      const r = runner(policy);
      const model = newAccessCaseEntries();
      buildAccessCaseEntries(F.PDE_PRESENT | F.PDE_WRITABLE | F.PDE_USER | F.CPU_EFER_NX, model); // PTE not present
      store(r.memory, model);
      expect(r.walker.walk(r.ctx(BASE_CPU), L.LA_LO, L.LA_HI, ACCESS.READ)).toBe(false);
      expect(r.walker.result.errorCode).toBe(0);
      const pdeA = r.memory.read32(L.PDE) & A;
      const pml4eA = r.memory.read32(L.PML4E) & A;
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
    const base = 0x4000_0000; // L.PDPT index 1 → read-write; index 2 → read-only
    memory.write64(L.PML4, L.PDPT | P | W | U, 0);
    memory.write64(L.PDPT + 8, L.PD | P | W | U, 0);
    memory.write64(L.PDPT + 16, L.PD | P | U, 0);
    memory.write64(L.PD, L.PT | P | U, 0);
    memory.write64(L.PD + 8, (L.PT + 0x1000) | P | W | U, 0);
    memory.write64(L.PT, L.DATA | P | W | U, 0);
    memory.write64(L.PT + 0x1000, (L.DATA + 0x1000) | P | W | U | D, 0);
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
    const model = newAccessCaseEntries();
    buildAccessCaseEntries(F.PDE_PRESENT | F.PTE_PRESENT, model);
    store(r.memory, model);
    r.memory.write64(L.PTE + 16, (L.DATA + 0x2000) | P, XD); // the PTE two pages on
    const ctx = r.ctx({ ...BASE_CPU, nxe: false });
    expect(r.walker.walk(ctx, L.LA_LO, L.LA_HI, ACCESS.READ)).toBe(true);
    expect(r.walker.walk(ctx, L.LA_LO + 0x2000, L.LA_HI, ACCESS.READ)).toBe(false);
    expect(r.walker.result.errorCode).toBe(EC_P | EC_RSVD);
  });

  it("two PDEs mapping one 2-MiB page each get D only from a write through themselves", () => {
    const r = runner(AD_UPDATE.HARDWARE);
    const ctx = r.ctx({ ...BASE_CPU, wp: false });
    r.memory.write64(L.PML4E, L.PDPT | P | W | U, 0);
    r.memory.write64(L.PDPTE, L.PD | P | W | U, 0);
    const other = L.PDE + 8; // the next 2 MiB, same physical page, read-only
    r.memory.write64(L.PDE, L.DATA | P | PS, 0);
    r.memory.write64(other, L.DATA | P | PS, 0);
    expect(r.walker.walk(ctx, L.LA_LO, L.LA_HI, ACCESS.READ)).toBe(true);
    expect(r.memory.read32(L.PDE) & (A | D)).toBe(A);
    expect(r.walker.walk(ctx, L.LA_LO + 0x20_0000, L.LA_HI, ACCESS.WRITE)).toBe(true); // WP=0: allowed
    expect(r.memory.read32(other) & (A | D)).toBe(A | D);
    expect(r.memory.read32(L.PDE) & (A | D)).toBe(A);
    expect(r.walker.walk(ctx, L.LA_LO, L.LA_HI, ACCESS.WRITE)).toBe(true);
    expect(r.memory.read32(L.PDE) & (A | D)).toBe(A | D);
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
    const faults: [Partial<ScenarioPage>, Partial<AccessCaseCpu>, number][] = [
      [{ user: false }, {}, read(3)],
      [{ writable: false }, {}, write(3)],
      [{ pkey: 1 }, { pke: true, pkru: 4 }, read(3)],
      [{ user: true }, { smap: true }, read(0)],
      [{ user: true }, { smep: true }, fetch(0)],
    ];
    for (const [page, cpu, acc] of faults) {
      const model = scenarioEntries(page);
      store(r.memory, model);
      expect(r.walker.walk(r.ctx({ ...BASE_CPU, ...cpu }), L.LA_LO, L.LA_HI, acc)).toBe(false);
      expect(r.walker.result.memoryWrites).toBe(0);
      expect(entriesDiffer(r.memory, model)).toBeNull();
    }
    // And a success sets A everywhere, D on the leaf.
    const model = scenarioEntries({});
    store(r.memory, model);
    expect(r.walker.walk(r.ctx(BASE_CPU), L.LA_LO, L.LA_HI, ACCESS.WRITE)).toBe(true);
    expect([L.PML4E, L.PDPTE, L.PDE, L.PTE].map((at) => r.memory.read32(at) & (A | D))).toEqual([
      A,
      A,
      A,
      A | D,
    ]);
  });
});
