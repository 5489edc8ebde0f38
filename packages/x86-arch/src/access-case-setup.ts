import { ACCESS } from "./access";
import { ACCESS_CASE_FLAG } from "./access-case-space";
import { type CpuFeatures, cpuFeatures } from "./cpu-features";
import { CR0 } from "./cr0";
import { CR4 } from "./cr4";
import { EFER } from "./efer";
import { createPagingContext, type PagingContext } from "./paging-context";
import { PTE_HI, PTE_LO } from "./paging-entry";
import { RFLAGS } from "./rflags";

/**
 * What an access.c case (see `ACCESS_CASE_FLAG`) sets up: the guest-physical layout of its
 * tables, the four entries of its linear address, the processor state and the access. The facts
 * (which entry carries which bit, key 1 on the leaf and key 2 on a non-leaf PDE, PKRU 0x30 plus
 * key 1's rights, PKRU 0xfffffffc with CR4.PKE off, the data page at 32 MiB, an address in the
 * 0xffff_9234_xxxx_xxxx region, MAXPHYADDR low enough that bits 36 and 51 are reserved) come from
 * kvm-unit-tests `x86/access.c`; the code and the rest of the layout are ours.
 */

const LA_HI = 0xffff9234;
const LA_LO = 0x0012_3abc;
const PML5 = 0x14000;
const PML4 = 0x10000;
const PDPT = 0x11000;
const PD = 0x12000;
const PT = 0x13000;

/**
 * Where a case lives: IA-32e paging with its tables at fixed guest-physical addresses (with
 * 5-level paging a PML5 sits above the same PML4), one linear address, one data page. The data
 * page at 32 MiB, the 0xffff_9234_xxxx_xxxx address and a MAXPHYADDR that leaves bits 36 and 51
 * reserved follow kvm-unit-tests `x86/access.c`; the table addresses are ours.
 */
export const ACCESS_CASE_LAYOUT = {
  /** MAXPHYADDR of the guest: 36, so bits 36 and 51 of an entry are both reserved (SDM 4.5). */
  MAXPHYADDR: 36,
  /** High word of the case's linear address 0xffff_9234_0012_3abc. */
  LA_HI,
  /** Low word of the case's linear address. */
  LA_LO,
  /** The PML5 (5-level paging: CR3 points here and its one entry at the PML4). */
  PML5,
  /** The PML4 (CR3 with 4-level paging). */
  PML4,
  /** The page-directory-pointer table. */
  PDPT,
  /** The page directory. */
  PD,
  /** The page table (unused when the PDE maps a 2-MiB page). */
  PT,
  /** The data page: 32 MiB, 2-MiB aligned so that a PS PDE can map it too. */
  DATA: 0x200_0000,
  /** Guest memory the layout needs: the 2-MiB data region ends at 34 MiB. */
  MEMORY_BYTES: 0x220_0000,
  /** Address of the PML5E that maps the case's linear address. */
  PML5E: PML5 + ((LA_HI >>> 16) & 0x1ff) * 8,
  /** Address of its PML4E. */
  PML4E: PML4 + ((LA_HI >>> 7) & 0x1ff) * 8,
  /** Address of its PDPTE. */
  PDPTE: PDPT + (((LA_LO >>> 30) | ((LA_HI & 0x7f) << 2)) & 0x1ff) * 8,
  /** Address of its PDE. */
  PDE: PD + ((LA_LO >>> 21) & 0x1ff) * 8,
  /** Address of its PTE. */
  PTE: PT + ((LA_LO >>> 12) & 0x1ff) * 8,
} as const;

const L = ACCESS_CASE_LAYOUT;

/**
 * Guest-physical address of each of the four entries, root first (PML4E, PDPTE, PDE, PTE). Read
 * in every case's hot loop, so left unfrozen (freezing it made the access suite about 25% slower
 * under V8); treat it as read-only.
 */
export const ACCESS_CASE_ENTRY_GPAS: readonly number[] = [L.PML4E, L.PDPTE, L.PDE, L.PTE];
/** Names of the four entries, root first. */
export const ACCESS_CASE_ENTRY_NAMES: readonly string[] = Object.freeze(["PML4E", "PDPTE", "PDE", "PTE"]);

/** CPUID of a case's guest: every paging feature, MAXPHYADDR 36. */
export const ACCESS_CASE_FEATURES: CpuFeatures = cpuFeatures({ maxPhysAddr: L.MAXPHYADDR });

/**
 * The four entries of a case as eight 32-bit words, root first:
 * [PML4E lo, PML4E hi, PDPTE lo, PDPTE hi, PDE lo, PDE hi, PTE lo, PTE hi].
 */
export type AccessCaseEntries = Uint32Array;

export function newAccessCaseEntries(): AccessCaseEntries {
  return new Uint32Array(8);
}

const P = PTE_LO.PRESENT;
const W = PTE_LO.WRITABLE;
const U = PTE_LO.USER;
const A = PTE_LO.ACCESSED;
const D = PTE_LO.DIRTY;
const PS = PTE_LO.PAGE_SIZE;
const XD = PTE_HI.XD;
const KEY = PTE_HI.PKEY_SHIFT;
/** Entry bits 51, 36 and 13 as bits of the high and low words. */
const BIT51_HI = 1 << 19;
const BIT36_HI = 1 << 4;
const BIT13_LO = 1 << 13;
const F = ACCESS_CASE_FLAG;

/**
 * Writes a case's entries into `out`. The PML4E is P|W|U and the PDPTE P|U (plus W unless
 * PDPTE_NO_WRITABLE), both pointing at the next table with A clear; the PDE points at the page
 * table, or with PDE_PSE maps the 2-MiB data region; the PTE maps the data page. Nothing is
 * allocated.
 */
export function buildAccessCaseEntries(flags: number, out: AccessCaseEntries): void {
  out[0] = (L.PDPT | P | W | U) >>> 0;
  out[1] = 0;
  out[2] = (L.PD | P | U | ((flags & F.PDPTE_NO_WRITABLE) !== 0 ? 0 : W)) >>> 0;
  out[3] = 0;
  const large = (flags & F.PDE_PSE) !== 0;
  let pde = large ? L.DATA | PS : L.PT;
  if ((flags & F.PDE_PRESENT) !== 0) pde |= P;
  if ((flags & F.PDE_WRITABLE) !== 0) pde |= W;
  if ((flags & F.PDE_USER) !== 0) pde |= U;
  if ((flags & F.PDE_ACCESSED) !== 0) pde |= A;
  if ((flags & F.PDE_DIRTY) !== 0) pde |= D;
  if ((flags & F.PDE_BIT13) !== 0) pde |= BIT13_LO;
  let pdeHi = 0;
  if ((flags & F.PDE_NX) !== 0) pdeHi |= XD;
  if ((flags & F.PDE_BIT51) !== 0) pdeHi |= BIT51_HI;
  if ((flags & F.PDE_BIT36) !== 0) pdeHi |= BIT36_HI;
  // Key 1 on the leaf; a PDE that points at a page table carries key 2, which must be ignored
  // (SDM 4.6.2: only the leaf's key counts).
  if ((flags & F.PKU_PKEY) !== 0) pdeHi |= (large ? 1 : 2) << KEY;
  out[4] = pde >>> 0;
  out[5] = pdeHi >>> 0;
  let pte = L.DATA;
  if ((flags & F.PTE_PRESENT) !== 0) pte |= P;
  if ((flags & F.PTE_WRITABLE) !== 0) pte |= W;
  if ((flags & F.PTE_USER) !== 0) pte |= U;
  if ((flags & F.PTE_ACCESSED) !== 0) pte |= A;
  if ((flags & F.PTE_DIRTY) !== 0) pte |= D;
  let pteHi = 0;
  if ((flags & F.PTE_NX) !== 0) pteHi |= XD;
  if ((flags & F.PTE_BIT51) !== 0) pteHi |= BIT51_HI;
  if ((flags & F.PTE_BIT36) !== 0) pteHi |= BIT36_HI;
  if ((flags & F.PKU_PKEY) !== 0) pteHi |= 1 << KEY;
  out[6] = pte >>> 0;
  out[7] = pteHi >>> 0;
}

/** The one page of the smap.c- and pku.c/pks.c-style scenarios. */
export interface ScenarioPage {
  readonly user: boolean;
  readonly writable: boolean;
  /** Protection key of the PTE (0..15). */
  readonly pkey: number;
}

/**
 * Writes the entries of a scenario (kvm-unit-tests smap.c, pku.c, pks.c exercise one page whose
 * rights and key vary): PML4E, PDPTE and PDE are P|W|U with A clear, and the PTE maps the data
 * page with the page's R/W, U/S and key.
 */
export function buildScenarioEntries(page: ScenarioPage, out: AccessCaseEntries): void {
  out[0] = (L.PDPT | P | W | U) >>> 0;
  out[1] = 0;
  out[2] = (L.PD | P | W | U) >>> 0;
  out[3] = 0;
  out[4] = (L.PT | P | W | U) >>> 0;
  out[5] = 0;
  out[6] = (L.DATA | P | (page.writable ? W : 0) | (page.user ? U : 0)) >>> 0;
  out[7] = ((page.pkey & PTE_HI.PKEY_MASK) << KEY) >>> 0;
}

/** The processor state an access is made in. */
export interface AccessCaseCpu {
  /**
   * Identifies the state for per-state caches (paging contexts, shadow roots). `accessCaseCpu`
   * uses the case's CPU-state flags, a value below 2^30; states built by hand should use keys
   * outside that range (2^30 and up, or a negative number for a state not worth caching).
   */
  readonly key: number;
  /** EFER.NXE. */
  readonly nxe: boolean;
  /** CR0.WP. */
  readonly wp: boolean;
  /** CR4.SMEP. */
  readonly smep: boolean;
  /** CR4.SMAP. */
  readonly smap: boolean;
  /** RFLAGS.AC. */
  readonly ac: boolean;
  /** CR4.PKE. */
  readonly pke: boolean;
  /** CR4.PKS. */
  readonly pks: boolean;
  /** PKRU. */
  readonly pkru: number;
  /** IA32_PKRS. */
  readonly pkrs: number;
}

/** The flags that decide a case's processor state. */
const CPU_FLAGS = F.CPU_EFER_NX | F.CPU_CR0_WP | F.CPU_CR4_SMEP | F.CPU_CR4_PKE | F.PKU_AD | F.PKU_WD;
const CPU_STATES = new Map<number, AccessCaseCpu>();

/**
 * The processor state of a case: EFER.NXE, CR0.WP, CR4.SMEP and CR4.PKE from its flags, no SMAP
 * or PKS. With PKE, PKRU leaves key 0 open, denies key 2 entirely (the key of a non-leaf PDE,
 * which must not matter) and gives key 1 the case's AD/WD; without, PKRU is 0xfffffffc (every key
 * but 0 denied), which must not matter either. One frozen object per distinct state.
 */
export function accessCaseCpu(flags: number): AccessCaseCpu {
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
      pkru: pke ? 0x30 | ((flags & F.PKU_WD) !== 0 ? 8 : 0) | ((flags & F.PKU_AD) !== 0 ? 4 : 0) : 0xfffffffc,
      pkrs: 0,
    });
    CPU_STATES.set(key, cpu);
  }
  return cpu;
}

/**
 * The paging context of a processor state: IA-32e paging with 4 or 5 levels, CR3 at the layout's
 * PML4 (or PML5), and the guest features `ACCESS_CASE_FEATURES`. With 5 levels the caller writes
 * the PML5E (at `ACCESS_CASE_LAYOUT.PML5E`, pointing at the PML4).
 */
export function accessCasePagingContext(cpu: AccessCaseCpu, levels: 4 | 5): PagingContext {
  return createPagingContext(
    {
      cr0: CR0.PG | CR0.PE | (cpu.wp ? CR0.WP : 0),
      cr3: levels === 5 ? L.PML5 : L.PML4,
      cr4:
        CR4.PAE |
        (levels === 5 ? CR4.LA57 : 0) |
        (cpu.smep ? CR4.SMEP : 0) |
        (cpu.smap ? CR4.SMAP : 0) |
        (cpu.pke ? CR4.PKE : 0) |
        (cpu.pks ? CR4.PKS : 0),
      efer: EFER.LME | EFER.LMA | (cpu.nxe ? EFER.NXE : 0),
      rflags: RFLAGS.FIXED1 | (cpu.ac ? RFLAGS.AC : 0),
      pkru: cpu.pkru,
      pkrs: cpu.pkrs,
    },
    ACCESS_CASE_FEATURES,
  );
}

/**
 * The access a case makes, as `ACCESS` bits (USER, WRITE, FETCH from its ACCESS_* flags). With
 * ACCESS_TWICE a supervisor read (`ACCESS.READ`) of the same address comes first.
 */
export function accessCaseAccess(flags: number): number {
  return (
    ((flags & F.ACCESS_USER) !== 0 ? ACCESS.USER : 0) |
    ((flags & F.ACCESS_WRITE) !== 0 ? ACCESS.WRITE : 0) |
    ((flags & F.ACCESS_FETCH) !== 0 ? ACCESS.FETCH : 0)
  );
}
