/**
 * `union kvm_mmu_page_role` (kvm: arch/x86/include/asm/kvm_host.h; kvm-mmu.md §1.1): the 32-bit
 * word that identifies a shadow/TDP page-table page. Two pages for the same gfn are
 * interchangeable only if their role words are equal, so the model keeps roles as numbers and
 * compares whole words, as KVM does. GCC allocates x86 bitfields from the least significant bit.
 */
export const PAGE_ROLE = {
  /** Bits 3:0: page-table level of the page (root 2–5, children count down to 1). */
  LEVEL_MASK: 0xf,
  /** Bit 4: the guest uses 4-byte (32-bit, non-PAE) PTEs (older kernels: !gpte_is_8_bytes). */
  HAS_4_BYTE_GPTE: 1 << 4,
  /** Bits 6:5: which quarter/half of a 4-byte guest table this 8-byte page shadows. */
  QUADRANT_SHIFT: 5,
  QUADRANT_MASK: 0x3 << 5,
  /** Bit 7: maps guest-physical memory directly (TDP, paging off, split huge page). */
  DIRECT: 1 << 7,
  /** Bits 10:8: ACC_* rights inherited from upper guest levels (ACC_ALL for roots). */
  ACCESS_SHIFT: 8,
  ACCESS_MASK: 0x7 << 8,
  /** Bit 11: zapped while still referenced as a root. */
  INVALID: 1 << 11,
  /** Bit 12: EFER.NX (older kernels: nxe). */
  EFER_NX: 1 << 12,
  /** Bit 13: CR0.WP. */
  CR0_WP: 1 << 13,
  /** Bit 14: CR4.SMEP && !CR0.WP. */
  SMEP_ANDNOT_WP: 1 << 14,
  /** Bit 15: CR4.SMAP && !CR0.WP. */
  SMAP_ANDNOT_WP: 1 << 15,
  /** Bit 16: accessed/dirty bits not used (TDP: host EPT A/D off; shadow EPT: L1's EPTP A/D off). */
  AD_DISABLED: 1 << 16,
  /** Bit 17: L2 is running (is_guest_mode). */
  GUEST_MODE: 1 << 17,
  /** Bit 18: 5-level NPT root over a 4-level L1 NPT (kvm_init_shadow_npt_mmu). */
  PASSTHROUGH: 1 << 18,
  /** Bits 31:24: SMM address space. */
  SMM_SHIFT: 24,
  SMM_MASK: 0xff << 24,
} as const;

/** KVM's ACC_* rights (kvm: ACC_EXEC_MASK, ACC_WRITE_MASK, ACC_USER_MASK, ACC_ALL). */
export const ACC = {
  EXEC: 1,
  WRITE: 2,
  USER: 4,
  ALL: 7,
} as const;

/** The named fields of a page role, as KVM's tracepoints and `struct` spell them. */
export interface PageRoleFields {
  readonly level: number;
  readonly has_4_byte_gpte: boolean;
  readonly quadrant: number;
  readonly direct: boolean;
  readonly access: number;
  readonly invalid: boolean;
  readonly efer_nx: boolean;
  readonly cr0_wp: boolean;
  readonly smep_andnot_wp: boolean;
  readonly smap_andnot_wp: boolean;
  readonly ad_disabled: boolean;
  readonly guest_mode: boolean;
  readonly passthrough: boolean;
  readonly smm: number;
}

/** Unpacks a role word into its fields. */
export function decodePageRole(word: number): PageRoleFields {
  const w = word >>> 0;
  return {
    level: w & PAGE_ROLE.LEVEL_MASK,
    has_4_byte_gpte: (w & PAGE_ROLE.HAS_4_BYTE_GPTE) !== 0,
    quadrant: (w & PAGE_ROLE.QUADRANT_MASK) >>> PAGE_ROLE.QUADRANT_SHIFT,
    direct: (w & PAGE_ROLE.DIRECT) !== 0,
    access: (w & PAGE_ROLE.ACCESS_MASK) >>> PAGE_ROLE.ACCESS_SHIFT,
    invalid: (w & PAGE_ROLE.INVALID) !== 0,
    efer_nx: (w & PAGE_ROLE.EFER_NX) !== 0,
    cr0_wp: (w & PAGE_ROLE.CR0_WP) !== 0,
    smep_andnot_wp: (w & PAGE_ROLE.SMEP_ANDNOT_WP) !== 0,
    smap_andnot_wp: (w & PAGE_ROLE.SMAP_ANDNOT_WP) !== 0,
    ad_disabled: (w & PAGE_ROLE.AD_DISABLED) !== 0,
    guest_mode: (w & PAGE_ROLE.GUEST_MODE) !== 0,
    passthrough: (w & PAGE_ROLE.PASSTHROUGH) !== 0,
    smm: (w & PAGE_ROLE.SMM_MASK) >>> PAGE_ROLE.SMM_SHIFT,
  };
}

/** Packs fields into a role word; every field is range-checked. */
export function encodePageRole(fields: PageRoleFields): number {
  const check = (name: string, value: number, limit: number) => {
    if (!Number.isInteger(value) || value < 0 || value >= limit) {
      throw new RangeError(`page role field ${name} = ${value} is outside [0, ${limit})`);
    }
  };
  check("level", fields.level, 16);
  check("quadrant", fields.quadrant, 4);
  check("access", fields.access, 8);
  check("smm", fields.smm, 256);
  let w =
    fields.level | (fields.quadrant << PAGE_ROLE.QUADRANT_SHIFT) | (fields.access << PAGE_ROLE.ACCESS_SHIFT);
  if (fields.has_4_byte_gpte) w |= PAGE_ROLE.HAS_4_BYTE_GPTE;
  if (fields.direct) w |= PAGE_ROLE.DIRECT;
  if (fields.invalid) w |= PAGE_ROLE.INVALID;
  if (fields.efer_nx) w |= PAGE_ROLE.EFER_NX;
  if (fields.cr0_wp) w |= PAGE_ROLE.CR0_WP;
  if (fields.smep_andnot_wp) w |= PAGE_ROLE.SMEP_ANDNOT_WP;
  if (fields.smap_andnot_wp) w |= PAGE_ROLE.SMAP_ANDNOT_WP;
  if (fields.ad_disabled) w |= PAGE_ROLE.AD_DISABLED;
  if (fields.guest_mode) w |= PAGE_ROLE.GUEST_MODE;
  if (fields.passthrough) w |= PAGE_ROLE.PASSTHROUGH;
  return (w | (fields.smm << PAGE_ROLE.SMM_SHIFT)) >>> 0;
}

/** Level of a role word. */
export function roleLevel(word: number): number {
  return word & PAGE_ROLE.LEVEL_MASK;
}

/**
 * The role of a child page (kvm: kvm_mmu_child_role): the parent's role one level down, with the
 * given access and direct bit and passthrough cleared; for 4-byte guest PTEs at the PT level the
 * quadrant is the low bit of the parent entry's index.
 */
export function childRole(parent: number, access: number, direct: boolean, parentIndex: number): number {
  let w = parent & ~(PAGE_ROLE.LEVEL_MASK | PAGE_ROLE.ACCESS_MASK | PAGE_ROLE.DIRECT | PAGE_ROLE.PASSTHROUGH);
  const level = roleLevel(parent) - 1;
  w |= level | (access << PAGE_ROLE.ACCESS_SHIFT);
  if (direct) w |= PAGE_ROLE.DIRECT;
  if ((parent & PAGE_ROLE.HAS_4_BYTE_GPTE) !== 0 && level === 1) {
    w = (w & ~PAGE_ROLE.QUADRANT_MASK) | ((parentIndex & 1) << PAGE_ROLE.QUADRANT_SHIFT);
  }
  return w >>> 0;
}
