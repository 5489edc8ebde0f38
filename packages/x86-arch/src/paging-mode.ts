import { CR0 } from "./cr0";
import { CR4 } from "./cr4";
import { EFER } from "./efer";

/** Paging modes (SDM Vol. 3A 4.1.1, Table 4-1). */
export const PAGING_MODE = {
  NONE: 0,
  BIT32: 1,
  PAE: 2,
  LEVEL4: 3,
  LEVEL5: 4,
} as const;
export type PagingMode = (typeof PAGING_MODE)[keyof typeof PAGING_MODE];

export const PAGING_MODE_NAMES: Readonly<Record<PagingMode, string>> = {
  [PAGING_MODE.NONE]: "none",
  [PAGING_MODE.BIT32]: "32-bit",
  [PAGING_MODE.PAE]: "PAE",
  [PAGING_MODE.LEVEL4]: "4-level",
  [PAGING_MODE.LEVEL5]: "5-level",
};

/** Number of paging-structure levels walked in each mode (PAE's PDPTEs are registers, not a walked level). */
export const PAGING_LEVELS: Readonly<Record<PagingMode, number>> = {
  [PAGING_MODE.NONE]: 0,
  [PAGING_MODE.BIT32]: 2,
  [PAGING_MODE.PAE]: 3,
  [PAGING_MODE.LEVEL4]: 4,
  [PAGING_MODE.LEVEL5]: 5,
};

/**
 * The paging mode selected by CR0.PG, CR4.PAE, IA32_EFER.LME/LMA and CR4.LA57 (SDM 4.1.1).
 * IA-32e mode is active when EFER.LMA is set, or when EFER.LME is set with CR0.PG (LMA is how the
 * processor reports exactly that).
 */
export function pagingModeOf(cr0: number, cr4: number, efer: number): PagingMode {
  if ((cr0 & CR0.PG) === 0) return PAGING_MODE.NONE;
  if ((cr4 & CR4.PAE) === 0) return PAGING_MODE.BIT32;
  const longMode = (efer & EFER.LMA) !== 0 || (efer & EFER.LME) !== 0;
  if (!longMode) return PAGING_MODE.PAE;
  return (cr4 & CR4.LA57) !== 0 ? PAGING_MODE.LEVEL5 : PAGING_MODE.LEVEL4;
}
