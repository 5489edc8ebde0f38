import { field, flag, type RegisterLayout } from "./bit-register";

/**
 * Bits of a paging-structure entry (SDM Vol. 3A 4.3–4.5, Tables 4-4 … 4-20). Entries are held as a
 * low and a high 32-bit word; `PTE_LO` masks apply to the low word, `PTE_HI` to the high word.
 */
export const PTE_LO = {
  PRESENT: 1 << 0,
  WRITABLE: 1 << 1,
  USER: 1 << 2,
  PWT: 1 << 3,
  PCD: 1 << 4,
  ACCESSED: 1 << 5,
  DIRTY: 1 << 6,
  /** Page size in a PDE/PDPTE (a leaf above level 1); PAT in a 4-KiB PTE. */
  PAGE_SIZE: 1 << 7,
  PAT_4K: 1 << 7,
  GLOBAL: 1 << 8,
  /** PAT of a 2-MiB, 4-MiB or 1-GiB page. */
  PAT_LARGE: 1 << 12,
  /** Address bits 31:12 of a 4-KiB frame or next table. */
  ADDRESS: 0xfffff000,
} as const;

export const PTE_HI = {
  /** Execute-disable, bit 63 (with EFER.NXE; reserved otherwise). */
  XD: 0x80000000,
  /** Protection key, bits 62:59 of a leaf in IA-32e paging. */
  PKEY_SHIFT: 27,
  PKEY_MASK: 0xf,
  /** Address bits 51:32. */
  ADDRESS: 0x000fffff,
} as const;

/** Page sizes in bytes. */
export const PAGE_4K = 4096;
export const PAGE_2M = 2 * 1024 * 1024;
export const PAGE_4M = 4 * 1024 * 1024;
export const PAGE_1G = 1024 * 1024 * 1024;

/** Layout of a 64-bit (PAE / IA-32e) paging entry, for display. */
export const PTE64_LAYOUT: RegisterLayout = {
  name: "paging-structure entry (PAE/IA-32e)",
  width: 64,
  source: "SDM Vol. 3A 4.4-4.5, Tables 4-8 to 4-20",
  fields: [
    flag("P", 0, "present"),
    flag("R/W", 1, "writes allowed (AND over all levels)"),
    flag("U/S", 2, "user-mode accesses allowed (AND over all levels)"),
    flag("PWT", 3, "page-level write-through"),
    flag("PCD", 4, "page-level cache disable"),
    flag("A", 5, "accessed: set by the processor when the entry is used"),
    flag("D", 6, "dirty: set on a write through a leaf entry"),
    flag("PS/PAT", 7, "page size in a PDE/PDPTE (a leaf); PAT bit in a 4-KiB PTE"),
    flag("G", 8, "global: translation survives CR3 writes (with CR4.PGE)"),
    field(
      "ADDR",
      12,
      40,
      "physical frame of the page or next table, bits 51:12 (PAT is bit 12 of a large leaf)",
    ),
    field("PKEY", 59, 4, "protection key of a leaf (CR4.PKE/PKS)"),
    flag("XD", 63, "execute-disable (with EFER.NXE)"),
  ],
};

/** Layout of a 32-bit paging entry, for display. */
export const PTE32_LAYOUT: RegisterLayout = {
  name: "paging-structure entry (32-bit)",
  width: 32,
  source: "SDM Vol. 3A 4.3, Tables 4-4 to 4-6",
  fields: [
    flag("P", 0, "present"),
    flag("R/W", 1, "writes allowed"),
    flag("U/S", 2, "user-mode accesses allowed"),
    flag("PWT", 3, "page-level write-through"),
    flag("PCD", 4, "page-level cache disable"),
    flag("A", 5, "accessed"),
    flag("D", 6, "dirty (leaf)"),
    flag("PS/PAT", 7, "4-MiB page in a PDE (with CR4.PSE); PAT in a PTE"),
    flag("G", 8, "global (leaf, with CR4.PGE)"),
    field("ADDR", 12, 20, "physical frame, bits 31:12"),
  ],
};

/** Physical address (bits 51:12) held in an entry, limited to MAXPHYADDR by the caller's mask. */
export function entryFrameAddress(lo: number, hi: number): number {
  return (hi & PTE_HI.ADDRESS) * 4294967296 + ((lo & PTE_LO.ADDRESS) >>> 0);
}

/** Protection key of a leaf entry (bits 62:59). */
export function entryProtectionKey(hi: number): number {
  return (hi >>> PTE_HI.PKEY_SHIFT) & PTE_HI.PKEY_MASK;
}
