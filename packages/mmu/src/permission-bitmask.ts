import { ACCESS, PFERR, RFLAGS } from "@nestvisor/x86-arch";
import { EXT_ROLE } from "./extended-role";
import { ACC, PAGE_ROLE } from "./page-role";

/**
 * KVM's per-context permission tables (kvm: `struct kvm_mmu` fields `permissions[16]` and
 * `pkru_mask`; kvm-mmu.md §5.2–§5.5). They turn the per-access permission check of a guest walk
 * into two table lookups:
 *
 * - `permissions[i]`: the byte index `i` is #PF error-code bits 4:1 (W = index bit 0, U = bit 1,
 *   R = bit 2, F = bit 3); bit `a` of the byte is set when an access of that kind faults on a page
 *   whose effective rights in ACC form are `a`. The R slot never comes from a real error code: it
 *   carries "SMAP is overridden for this access" (RFLAGS.AC set on an explicit access).
 * - `pkru_mask`: 16 two-bit fields, the one for an even error-code value `p` at bit `p`; in this
 *   index the R slot stands for "the page is a user page". Field bit 0 = PKRU.AD applies, bit 1 =
 *   PKRU.WD applies.
 *
 * These functions are pure. The MMU-context code counts PERMISSION_BITMASK_UPDATE,
 * PKRU_BITMASK_UPDATE (only when `pkruLoopRuns`) when it calls them.
 */

/** Size of `permissions[]` (kvm: ARRAY_SIZE(mmu->permissions)). */
export const PERMISSIONS_SIZE = 16;

/**
 * Byte masks over the 8 ACC values: bit `a` set iff ACC value `a` grants the right
 * (kvm: BYTE_MASK(ACC_EXEC_MASK), BYTE_MASK(ACC_WRITE_MASK), BYTE_MASK(ACC_USER_MASK)).
 */
export const ACC_BYTE_MASK = {
  EXEC: 0xaa,
  WRITE: 0xcc,
  USER: 0xf0,
} as const;

/**
 * Fills `out[0..15]` for a CPU role (kvm: update_permission_bitmask). Reads only
 * `ext.cr4_smep`, `ext.cr4_smap`, `base.cr0_wp` and `base.efer_nx`. With `ept` (the shadow-EPT
 * context) only the plain W/U/F rules apply, where U means "read" and ACC_USER means "readable".
 */
export function updatePermissionBitmask(
  out: Uint8Array,
  roleBase: number,
  roleExt: number,
  ept: boolean,
): void {
  if (out.length < PERMISSIONS_SIZE) {
    throw new RangeError(`permissions table needs ${PERMISSIONS_SIZE} bytes, got ${out.length}`);
  }
  const smep = (roleExt & EXT_ROLE.CR4_SMEP) !== 0;
  const smap = (roleExt & EXT_ROLE.CR4_SMAP) !== 0;
  const wp = (roleBase & PAGE_ROLE.CR0_WP) !== 0;
  const nx = (roleBase & PAGE_ROLE.EFER_NX) !== 0;
  const notExec = ~ACC_BYTE_MASK.EXEC & 0xff;
  const notWrite = ~ACC_BYTE_MASK.WRITE & 0xff;
  const notUser = ~ACC_BYTE_MASK.USER & 0xff;

  for (let byte = 0; byte < PERMISSIONS_SIZE; byte++) {
    const pfec = byte << 1;
    const write = (pfec & PFERR.WRITE) !== 0;
    const user = (pfec & PFERR.USER) !== 0;
    const fetch = (pfec & PFERR.FETCH) !== 0;
    const smapOverridden = (pfec & PFERR.RSVD) !== 0;

    // Writes fault on read-only pages, user accesses on supervisor pages, fetches on XD pages.
    let writeFaults = write ? notWrite : 0;
    const userFaults = user ? notUser : 0;
    let fetchFaults = fetch ? notExec : 0;
    let smepFaults = 0;
    let smapFaults = 0;

    if (!ept) {
      // Supervisor-mode accesses to user pages (the SMEP/SMAP victims).
      const supervisorOnUser = user ? 0 : ACC_BYTE_MASK.USER;
      // SDM 4.6.1: without EFER.NX there is no execute-disable (a set bit 63 is reserved instead).
      if (!nx) fetchFaults = 0;
      // SDM 4.6.1: with CR0.WP=0 supervisor writes ignore R/W.
      if (!wp && !user) writeFaults = 0;
      // SDM 4.6.1: SMEP forbids supervisor fetches from user pages.
      if (smep && fetch) smepFaults = supervisorOnUser;
      // SDM 4.6.1: SMAP forbids supervisor data accesses to user pages unless overridden (the R
      // slot, filled per access by permissionFault).
      if (smap && !fetch && !smapOverridden) smapFaults = supervisorOnUser;
    }
    out[byte] = fetchFaults | userFaults | writeFaults | smepFaults | smapFaults;
  }
}

/**
 * Whether `updatePkruBitmask` runs its 16-iteration loop for this role (kvm: update_pkru_bitmask
 * returns 0 at once unless `ext.cr4_pke`, i.e. CR4.PKE && EFER.LMA). The context code counts
 * PKRU_BITMASK_UPDATE only when this holds.
 */
export function pkruLoopRuns(roleExt: number): boolean {
  return (roleExt & EXT_ROLE.CR4_PKE) !== 0;
}

/**
 * The `pkru_mask` of a CPU role (kvm: update_pkru_bitmask; SDM 4.6.2): for each even error-code
 * value `p` (with R meaning "user page"), AD applies to non-fetch accesses to user pages, and WD
 * additionally needs a write that is user-mode or done with CR0.WP=1. Returns 0 without looping
 * when protection keys are off. The shadow-EPT context never calls this: its mask is simply 0.
 */
export function updatePkruBitmask(roleBase: number, roleExt: number): number {
  if (!pkruLoopRuns(roleExt)) return 0;
  const wp = (roleBase & PAGE_ROLE.CR0_WP) !== 0;
  let mask = 0;
  for (let bit = 0; bit < PERMISSIONS_SIZE; bit++) {
    const pfec = bit << 1;
    const fetch = (pfec & PFERR.FETCH) !== 0;
    const user = (pfec & PFERR.USER) !== 0;
    const write = (pfec & PFERR.WRITE) !== 0;
    const userPage = (pfec & PFERR.RSVD) !== 0;
    const checkKey = !fetch && userPage;
    const checkWrite = checkKey && write && (user || wp);
    const field = (checkKey ? 1 : 0) | (checkWrite ? 2 : 0);
    mask |= field << pfec;
  }
  return mask >>> 0;
}

/** The error-code bits permissionFault indexes with: P, W, U, R, F (bits 4:0). */
const PFEC_INDEX_BITS = PFERR.PRESENT | PFERR.WRITE | PFERR.USER | PFERR.RSVD | PFERR.FETCH;

/**
 * Decides an access against the tables (kvm: permission_fault in arch/x86/kvm/mmu.h). Returns 0
 * when the access is allowed, else the error-code bits: PRESENT, plus PK when a protection key
 * forbade it.
 *
 * - `pteAccess`: the walk's effective rights in ACC form (0–7); `pteKey`: the leaf's key (0–15;
 *   0 for 32-bit and EPT walks).
 * - `pfec`: the access in #PF error-code form (W, U, F; x86-arch `ACCESS` values fit as-is).
 *   KVM's PFERR_IMPLICIT_ACCESS (bit 48 of its 64-bit `access`) is carried here as
 *   `ACCESS.IMPLICIT` (bit 8): an implicit supervisor access whose SMAP check RFLAGS.AC cannot
 *   lift. Only bits 4:0 index the table; like KVM, callers must leave R and PK clear.
 * - `rflags`: only AC (bit 18) is read; `pkru`: the PKRU register.
 *
 * The lazy CR0.WP refresh KVM does first (kvm: kvm_mmu_refresh_passthrough_bits) belongs to the
 * caller, which must rebuild the tables before calling this. No allocation.
 */
export function permissionFault(
  permissions: Uint8Array,
  pkruMask: number,
  pteAccess: number,
  pteKey: number,
  pfec: number,
  rflags: number,
  pkru: number,
): number {
  const code = pfec & PFEC_INDEX_BITS;
  // SMAP is lifted for explicit supervisor accesses with RFLAGS.AC=1 (SDM 4.6.1); KVM puts that
  // fact in the R slot of the index.
  const notSmap = (rflags & RFLAGS.AC) !== 0 && (pfec & ACCESS.IMPLICIT) === 0;
  const index = (code | (notSmap ? PFERR.RSVD : 0)) >>> 1;
  let fault = ((permissions[index] ?? 0) >>> pteAccess) & 1;
  let errorCode: number = PFERR.PRESENT;

  if (pkruMask !== 0) {
    // SDM 4.6.2: the key's AD/WD pair, masked by which of them applies to this access and page.
    let keyBits = (pkru >>> (pteKey * 2)) & 3;
    const offset = (code & ~PFERR.PRESENT) | ((pteAccess & ACC.USER) !== 0 ? PFERR.RSVD : 0);
    keyBits &= pkruMask >>> offset;
    if (keyBits !== 0) {
      errorCode |= PFERR.PK;
      fault = 1;
    }
  }
  return fault === 0 ? 0 : errorCode;
}
