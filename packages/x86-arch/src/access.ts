/**
 * How an access is described to the walkers. The bits line up with the #PF error code (W = bit 1,
 * U = bit 2, I/D = bit 4) so that a fault's error code is the access plus what went wrong, as in
 * KVM's `pfec`. IMPLICIT marks an implicit supervisor access (GDT/IDT/TSS reads, even at CPL 3):
 * it is a supervisor access that RFLAGS.AC cannot exempt from SMAP (SDM 4.6.1).
 */
export const ACCESS = {
  READ: 0,
  WRITE: 1 << 1,
  /** User-mode access: an explicit access at CPL 3. */
  USER: 1 << 2,
  FETCH: 1 << 4,
  IMPLICIT: 1 << 8,
} as const;

export type AccessKind = "read" | "write" | "fetch";

/**
 * Builds an access from its kind, the CPL and whether it is an implicit supervisor access
 * (SDM 4.6: accesses at CPL 3 are user-mode unless implicit; CPL 0–2 are supervisor-mode).
 */
export function accessOf(kind: AccessKind, cpl: 0 | 1 | 2 | 3, implicitSupervisor = false): number {
  if (implicitSupervisor && kind === "fetch")
    throw new RangeError("an instruction fetch is never an implicit supervisor access");
  let access = kind === "write" ? ACCESS.WRITE : kind === "fetch" ? ACCESS.FETCH : ACCESS.READ;
  if (implicitSupervisor) access |= ACCESS.IMPLICIT;
  else if (cpl === 3) access |= ACCESS.USER;
  return access;
}

/**
 * Effective permissions of a translation, in KVM's ACC form (kvm: ACC_EXEC_MASK, ACC_WRITE_MASK,
 * ACC_USER_MASK): the AND of R/W and U/S over all levels, and execute unless some level had XD.
 */
export const PAGE_ACCESS = {
  EXEC: 1,
  WRITE: 2,
  USER: 4,
  ALL: 7,
} as const;
