import { AD_UPDATE, type AdUpdate } from "@nestvisor/x86-arch";

/**
 * The case space of kvm-unit-tests `x86/access.c` (vmx-tests.md §9 "Nested #PF test" runs it in L2
 * too): one linear address whose PML4E/PDPTE/PDE/PTE are built from a set of flags, one access (or a
 * supervisor read first, then the access), and the expected #PF error code and A/D bits of every
 * entry. Only the idea of the case space is access.c's: the flags, the legality rules, the layout and
 * the expected-outcome function (from SDM 4.5–4.8) are written here.
 */

/** One bit per case flag. */
export const ACCESS_FLAG = {
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

export const ACCESS_FLAG_COUNT = 30;
const NAMES = Object.keys(ACCESS_FLAG);

/** The flags of a case as words, for failure messages. */
export function describeCase(flags: number): string {
  const parts: string[] = [];
  for (let i = 0; i < ACCESS_FLAG_COUNT; i++)
    if ((flags & (1 << i)) !== 0) parts.push(NAMES[i]!.toLowerCase());
  return parts.length === 0 ? "(no flags)" : parts.join(" ");
}

const F = ACCESS_FLAG;
const PKU_FLAGS = F.PKU_AD | F.PKU_WD | F.PKU_PKEY | F.CPU_CR4_PKE;

/**
 * The legality rules (access.c's, minus those that only protect its own harness, which cannot run
 * user code with SMEP on): not both write and fetch; PKRU rights only with CR4.PKE; PDE bit 13 only
 * in a 2-MiB PDE; at most one reserved bit per case (51, 36, 13, and XD without EFER.NXE).
 */
export function isLegalCase(flags: number): boolean {
  if ((flags & F.ACCESS_WRITE) !== 0 && (flags & F.ACCESS_FETCH) !== 0) return false;
  if ((flags & F.CPU_CR4_PKE) === 0 && (flags & (F.PKU_AD | F.PKU_WD)) !== 0) return false;
  if ((flags & F.PDE_PSE) === 0 && (flags & F.PDE_BIT13) !== 0) return false;
  let reserved = flags & (F.PDE_BIT51 | F.PDE_BIT36 | F.PDE_BIT13 | F.PTE_BIT51 | F.PTE_BIT36);
  if ((flags & F.CPU_EFER_NX) === 0) reserved |= flags & (F.PDE_NX | F.PTE_NX);
  return (reserved & (reserved - 1)) === 0;
}

/** Flags no legality rule mentions: all their combinations are legal. */
const FREE_MASK =
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

function subsets(mask: number): number[] {
  const out: number[] = [];
  let s = 0;
  do {
    out.push(s);
    s = (s - mask) & mask;
  } while (s !== 0);
  return out;
}

/**
 * The legal cases as constrained × free combinations. With `pku` false the protection-key flags stay
 * clear (shadow paging: KVM offers PKU only with TDP).
 */
export interface CaseSpace {
  readonly constrained: Int32Array;
  readonly free: Int32Array;
  readonly total: number;
}

export function accessCaseSpace(pku: boolean): CaseSpace {
  const all = (1 << ACCESS_FLAG_COUNT) - 1;
  const excluded = pku ? 0 : PKU_FLAGS;
  const constrained = Int32Array.from(subsets(all & ~FREE_MASK & ~excluded).filter(isLegalCase));
  const free = Int32Array.from(subsets(FREE_MASK & ~excluded));
  return { constrained, free, total: constrained.length * free.length };
}

/**
 * Calls `fn` for the cases of slice `slice` of `slices`: the i-th constrained combination with the
 * free ones whose index is congruent to 7i + slice modulo `slices`. The slices partition the space,
 * and each covers every constrained combination and every free flag value. Returns the number visited.
 */
export function forEachCase(
  space: CaseSpace,
  slices: number,
  slice: number,
  fn: (flags: number) => void,
): number {
  let n = 0;
  const { constrained, free } = space;
  for (let i = 0; i < constrained.length; i++) {
    const c = constrained[i]!;
    for (let j = (7 * i + slice) % slices; j < free.length; j += slices) {
      fn(c | free[j]!);
      n++;
    }
  }
  return n;
}

/** Cases in one slice (exactly `forEachCase`'s count). */
export function sliceSize(space: CaseSpace, slices: number, slice: number): number {
  let n = 0;
  for (let i = 0; i < space.constrained.length; i++) {
    const first = (7 * i + slice) % slices;
    if (first < space.free.length) n += Math.floor((space.free.length - 1 - first) / slices) + 1;
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// Layout: MAXPHYADDR 36 (bits 36 and 51 both reserved), one linear address, tables at fixed GPAs.

export const ACCESS_MAXPHYADDR = 36;
export const PML5_GPA = 0x14000;
export const PML4_GPA = 0x10000;
export const PDPT_GPA = 0x11000;
export const PD_GPA = 0x12000;
export const PT_GPA = 0x13000;
/** The data page (2-MiB aligned, so a PSE PDE can map it). */
export const DATA_GPA = 0x200_0000;
/** Guest memory the layout needs: the 2-MiB data region ends at 34 MiB. */
export const ACCESS_MEMORY_BYTES = 0x220_0000;
/** Linear address 0xffff_9234_0012_3abc as its halves. */
export const LA_HI = 0xffff9234;
export const LA_LO = 0x0012_3abc;

export const PML5E_GPA = PML5_GPA + ((LA_HI >>> 16) & 0x1ff) * 8;
export const PML4E_GPA = PML4_GPA + ((LA_HI >>> 7) & 0x1ff) * 8;
export const PDPTE_GPA = PDPT_GPA + (((LA_LO >>> 30) | ((LA_HI & 0x7f) << 2)) & 0x1ff) * 8;
export const PDE_GPA = PD_GPA + ((LA_LO >>> 21) & 0x1ff) * 8;
export const PTE_GPA = PT_GPA + ((LA_LO >>> 12) & 0x1ff) * 8;
/** Where each of the four entries lives, root first. */
export const ENTRY_GPAS: readonly number[] = [PML4E_GPA, PDPTE_GPA, PDE_GPA, PTE_GPA];
export const ENTRY_NAMES: readonly string[] = ["PML4E", "PDPTE", "PDE", "PTE"];

// Entry and error-code bits (SDM 4.5, 4.7).
const P = 1;
const W = 2;
const U = 4;
const A = 0x20;
const D = 0x40;
const PS = 0x80;
const XD_HI = 0x8000_0000;
const PKEY_SHIFT_HI = 27;
export const EC = { P: 1, W: 2, U: 4, RSVD: 8, I: 16, PK: 32 } as const;

/** The four entries (low and high words), root first: [pml4eLo, pml4eHi, pdpteLo, …, pteHi]. */
export type Entries = Uint32Array;

export function newEntries(): Entries {
  return new Uint32Array(8);
}

/** Builds the entries of a case (access.c's layout idea, our code). */
export function entriesFor(flags: number, out: Entries): void {
  out[0] = (PDPT_GPA | P | W | U) >>> 0;
  out[1] = 0;
  out[2] = (PD_GPA | P | U | ((flags & F.PDPTE_NO_WRITABLE) !== 0 ? 0 : W)) >>> 0;
  out[3] = 0;
  let pde = (flags & F.PDE_PSE) !== 0 ? DATA_GPA | PS : PT_GPA;
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
  // Key 1 on the leaf; a non-leaf PDE carries key 2, which must be ignored.
  if ((flags & F.PKU_PKEY) !== 0) pdeHi |= ((flags & F.PDE_PSE) !== 0 ? 1 : 2) << PKEY_SHIFT_HI;
  out[4] = pde >>> 0;
  out[5] = pdeHi >>> 0;
  let pte = DATA_GPA;
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
  out[6] = pte >>> 0;
  out[7] = pteHi >>> 0;
}

/** The processor state of a case. */
export interface CpuState {
  /** Index of this state (for per-state caches). */
  readonly key: number;
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

const CPU_FLAGS = F.CPU_EFER_NX | F.CPU_CR0_WP | F.CPU_CR4_SMEP | F.CPU_CR4_PKE | F.PKU_AD | F.PKU_WD;
const CPU_STATES = new Map<number, CpuState>();

/** The CPU state of a case's flags (one object per distinct state). */
export function cpuStateOf(flags: number): CpuState {
  const key = flags & CPU_FLAGS;
  let cpu = CPU_STATES.get(key);
  if (cpu === undefined) {
    const pke = (flags & F.CPU_CR4_PKE) !== 0;
    cpu = Object.freeze({
      key,
      nxe: (flags & F.CPU_EFER_NX) !== 0,
      wp: (flags & F.CPU_CR0_WP) !== 0,
      smep: (flags & F.CPU_CR4_SMEP) !== 0,
      smap: false,
      ac: false,
      pke,
      pks: false,
      // Key 2 fully denied (a non-leaf key must not matter), key 1 from the flags, key 0 open. With
      // PKE off PKRU denies every key but 0, which must not matter either.
      pkru: pke ? 0x30 | ((flags & F.PKU_WD) !== 0 ? 8 : 0) | ((flags & F.PKU_AD) !== 0 ? 4 : 0) : 0xfffffffc,
      pkrs: 0,
    });
    CPU_STATES.set(key, cpu);
  }
  return cpu;
}

/** An access: `ACCESS` bits of x86-arch (WRITE 2, USER 4, FETCH 16, IMPLICIT) decoded. */
export interface AccessKind {
  readonly user: boolean;
  readonly write: boolean;
  readonly fetch: boolean;
  readonly implicit: boolean;
}

/** The expected outcome of one access: set by `expectAccess`. */
export class Expected {
  fault = false;
  errorCode = 0;
}

/** Reserved bits of a present entry with MAXPHYADDR 36 (SDM 4.5, Tables 4-14..4-20). */
function reservedEntry(lo: number, hi: number, level: number, nxe: boolean): boolean {
  if ((hi & 0x000f_fff0) !== 0) return true; // bits 51:36
  if (!nxe && (hi & XD_HI) !== 0) return true; // XD without EFER.NXE
  if (level === 4 && (lo & PS) !== 0) return true;
  if (level === 3 && (lo & PS) !== 0 && (lo & 0x3fff_e000) !== 0) return true;
  if (level === 2 && (lo & PS) !== 0 && (lo & 0x001f_e000) !== 0) return true;
  return false;
}

/**
 * Applies one access to `e` (A/D per `policy`) and writes the expected fault and error code into
 * `out` (SDM 4.5 reserved bits, 4.6.1 rights, 4.6.2 keys, 4.7 error code, 4.8 A/D flags).
 */
export function expectAccess(
  e: Entries,
  cpu: CpuState,
  acc: AccessKind,
  policy: AdUpdate,
  out: Expected,
): void {
  const code =
    (acc.write ? EC.W : 0) | (acc.user ? EC.U : 0) | (acc.fetch && (cpu.smep || cpu.nxe) ? EC.I : 0);
  const hardware = policy === AD_UPDATE.HARDWARE;
  let writable = true;
  let user = true;
  let xd = false;
  let leaf = -1;
  let used = 0;
  for (let level = 4; leaf < 0; level--) {
    const i = (4 - level) * 2;
    const lo = e[i]!;
    const hi = e[i + 1]!;
    used++;
    if ((lo & P) === 0) {
      out.fault = true;
      out.errorCode = code;
      return;
    }
    if (reservedEntry(lo, hi, level, cpu.nxe)) {
      out.fault = true;
      out.errorCode = code | EC.P | EC.RSVD;
      return;
    }
    writable &&= (lo & W) !== 0;
    user &&= (lo & U) !== 0;
    xd ||= cpu.nxe && (hi & XD_HI) !== 0;
    if (level === 1 || (level <= 3 && (lo & PS) !== 0)) leaf = i;
    else if (hardware) e[i] = (lo | A) >>> 0; // SDM 4.8: A as the entry is used
  }
  let denied: boolean;
  if (acc.user) denied = !user || (acc.write && !writable) || (acc.fetch && xd);
  else if (acc.fetch) denied = xd || (user && cpu.smep);
  else denied = (user && cpu.smap && (acc.implicit || !cpu.ac)) || (acc.write && !writable && cpu.wp);
  let keyDenied = false;
  if (!acc.fetch && (user ? cpu.pke : cpu.pks)) {
    const key = (e[leaf + 1]! >>> PKEY_SHIFT_HI) & 0xf;
    const rights = ((user ? cpu.pkru : cpu.pkrs) >>> (2 * key)) & 3;
    keyDenied = (rights & 1) !== 0 || ((rights & 2) !== 0 && acc.write && (acc.user || cpu.wp));
  }
  if (denied || keyDenied) {
    out.fault = true;
    out.errorCode = code | EC.P | (keyDenied ? EC.PK : 0);
    return;
  }
  out.fault = false;
  out.errorCode = 0;
  if (policy === AD_UPDATE.AFTER_SUCCESS) for (let i = 0; i < used - 1; i++) e[i * 2] = (e[i * 2]! | A) >>> 0;
  if (policy !== AD_UPDATE.NONE) e[leaf] = (e[leaf]! | A | (acc.write ? D : 0)) >>> 0;
}

/** The physical address an allowed access reaches (4-KiB page or the 2-MiB PSE page). */
export function expectedPa(e: Entries): number {
  return (e[4]! & PS) !== 0 ? DATA_GPA + (LA_LO & 0x1f_ffff) : DATA_GPA + (LA_LO & 0xfff);
}

/** The eight kinds of access a case can make (index = user | write << 1 | fetch << 2). */
export const ACCESS_KINDS: readonly AccessKind[] = Object.freeze(
  Array.from({ length: 8 }, (_, i) =>
    Object.freeze({ user: (i & 1) !== 0, write: (i & 2) !== 0, fetch: (i & 4) !== 0, implicit: false }),
  ),
);

export const SUPERVISOR_READ: AccessKind = ACCESS_KINDS[0]!;

/** The access a case makes (its ACCESS_USER/WRITE/FETCH flags). */
export function accessOfCase(flags: number): AccessKind {
  return ACCESS_KINDS[(flags >>> 22) & 7]!;
}
