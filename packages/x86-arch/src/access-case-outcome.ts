import { ACCESS } from "./access";
import { ACCESS_CASE_LAYOUT, type AccessCaseCpu, type AccessCaseEntries } from "./access-case-setup";
import { PFERR } from "./page-fault";
import { AD_UPDATE, type AdUpdate } from "./page-walk";
import { PTE_HI, PTE_LO } from "./paging-entry";

/** The expected outcome of one access, as `expectAccessCase` writes it. */
export class AccessCaseExpectation {
  /** The access takes a #PF. */
  fault = false;
  /** Its error code (0 when there is no fault). */
  errorCode = 0;
}

const P = PTE_LO.PRESENT;
const W = PTE_LO.WRITABLE;
const U = PTE_LO.USER;
const A = PTE_LO.ACCESSED;
const D = PTE_LO.DIRTY;
const PS = PTE_LO.PAGE_SIZE;
const XD = PTE_HI.XD;
/** Bits 51:36 of an entry, in its high word: reserved with MAXPHYADDR 36. */
const RESERVED_ADDRESS_HI = 0x000f_fff0;

/** A present entry at `level` has a reserved bit set (SDM 4.5, Tables 4-15 to 4-20; MAXPHYADDR 36). */
function reservedBitSet(lo: number, hi: number, level: number, nxe: boolean): boolean {
  if ((hi & RESERVED_ADDRESS_HI) !== 0) return true;
  if (!nxe && (hi & XD) !== 0) return true; // XD without EFER.NXE
  if (level === 4 && (lo & PS) !== 0) return true; // PS in a PML4E
  if (level === 3 && (lo & PS) !== 0 && (lo & 0x3fff_e000) !== 0) return true; // 1-GiB page: bits 29:13
  if (level === 2 && (lo & PS) !== 0 && (lo & 0x001f_e000) !== 0) return true; // 2-MiB page: bits 20:13
  return false;
}

/**
 * The expected outcome of one access over a case's four entries (`buildAccessCaseEntries`, or
 * `buildScenarioEntries`), written from the SDM: 4.5 reserved bits, 4.6.1 access rights, 4.6.2
 * protection keys, 4.7 the #PF error code, 4.8 accessed and dirty flags. kvm-unit-tests
 * `x86/access.c` computes the same for its cases (`ac_emulate_access`); this one is our own and
 * also covers SMAP, PKS, implicit accesses and the three `AD_UPDATE` policies.
 *
 * Applies one access (`ACCESS` bits; IMPLICIT marks an implicit supervisor access and goes
 * without USER) to `entries` as the processor would under `policy`, and writes whether it faults
 * and with which error code into `out`. `entries` is updated in place with the A/D flags the
 * access leaves (with HARDWARE, A of every non-leaf entry used, even when the walk then faults;
 * with AFTER_SUCCESS, A everywhere only when the access is allowed; D on the leaf for an allowed
 * write; nothing with NONE). The walk goes PML4E → PDPTE → PDE (→ PTE) and stops at the first
 * entry that is not present or has a reserved bit set. Nothing is allocated.
 */
export function expectAccessCase(
  entries: AccessCaseEntries,
  cpu: AccessCaseCpu,
  access: number,
  policy: AdUpdate,
  out: AccessCaseExpectation,
): void {
  const isUser = (access & ACCESS.USER) !== 0;
  const isWrite = (access & ACCESS.WRITE) !== 0;
  const isFetch = (access & ACCESS.FETCH) !== 0;
  const isImplicit = (access & ACCESS.IMPLICIT) !== 0;
  // SDM 4.7: W/R and U/S describe the access; I/D is reported for a fetch only with SMEP or NXE.
  const code =
    (isWrite ? PFERR.WRITE : 0) |
    (isUser ? PFERR.USER : 0) |
    (isFetch && (cpu.smep || cpu.nxe) ? PFERR.FETCH : 0);
  const hardware = policy === AD_UPDATE.HARDWARE;
  let writable = true;
  let user = true;
  let xd = false;
  let leaf = -1;
  let used = 0;
  for (let level = 4; leaf < 0; level--) {
    const i = (4 - level) * 2;
    const lo = entries[i]!;
    const hi = entries[i + 1]!;
    used++;
    if ((lo & P) === 0) {
      out.fault = true;
      out.errorCode = code;
      return;
    }
    if (reservedBitSet(lo, hi, level, cpu.nxe)) {
      out.fault = true;
      out.errorCode = code | PFERR.PRESENT | PFERR.RSVD;
      return;
    }
    // SDM 4.6.1: rights are the AND (R/W, U/S) or OR (XD) over every level of the walk.
    writable &&= (lo & W) !== 0;
    user &&= (lo & U) !== 0;
    xd ||= cpu.nxe && (hi & XD) !== 0;
    if (level === 1 || (level <= 3 && (lo & PS) !== 0)) leaf = i;
    else if (hardware) entries[i] = (lo | A) >>> 0; // SDM 4.8: A as soon as the entry is used
  }

  // SDM 4.6.1: user accesses need U/S (and R/W for writes, no XD for fetches) on every level;
  // supervisor fetches may not use XD pages nor, with SMEP, user pages; supervisor data accesses
  // to user pages are stopped by SMAP unless RFLAGS.AC allows an explicit one; supervisor writes
  // to read-only pages are stopped by CR0.WP.
  let denied: boolean;
  if (isUser) denied = !user || (isWrite && !writable) || (isFetch && xd);
  else if (isFetch) denied = xd || (user && cpu.smep);
  else denied = (user && cpu.smap && (isImplicit || !cpu.ac)) || (isWrite && !writable && cpu.wp);
  // SDM 4.6.2: data accesses only; PKRU for user pages (CR4.PKE), IA32_PKRS for supervisor pages
  // (CR4.PKS); WD stops user writes, and supervisor writes only with CR0.WP.
  let keyDenied = false;
  if (!isFetch && (user ? cpu.pke : cpu.pks)) {
    const key = (entries[leaf + 1]! >>> PTE_HI.PKEY_SHIFT) & PTE_HI.PKEY_MASK;
    const rights = ((user ? cpu.pkru : cpu.pkrs) >>> (2 * key)) & 3;
    keyDenied = (rights & 1) !== 0 || ((rights & 2) !== 0 && isWrite && (isUser || cpu.wp));
  }
  if (denied || keyDenied) {
    out.fault = true;
    out.errorCode = code | PFERR.PRESENT | (keyDenied ? PFERR.PK : 0);
    return;
  }
  out.fault = false;
  out.errorCode = 0;
  if (policy === AD_UPDATE.AFTER_SUCCESS) {
    for (let i = 0; i < used - 1; i++) entries[i * 2] = (entries[i * 2]! | A) >>> 0;
  }
  if (policy !== AD_UPDATE.NONE) entries[leaf] = (entries[leaf]! | A | (isWrite ? D : 0)) >>> 0;
}

/** The guest-physical address an allowed access reaches: in the 4-KiB data page, or the 2-MiB one with PDE.PS. */
export function accessCaseExpectedPa(entries: AccessCaseEntries): number {
  const L = ACCESS_CASE_LAYOUT;
  return (entries[4]! & PS) !== 0 ? L.DATA + (L.LA_LO & 0x1f_ffff) : L.DATA + (L.LA_LO & 0xfff);
}
