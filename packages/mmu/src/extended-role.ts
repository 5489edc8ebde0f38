/**
 * `union kvm_mmu_extended_role` (kvm: kvm_host.h; kvm-mmu.md §1.2): MMU-configuration state that
 * matters for software walks and permission checks but not for whether a shadow page can be
 * reused. With the page role it forms the 64-bit `kvm_cpu_role` (base = low word, ext = high
 * word, §1.3), which the model carries as two numbers.
 */
export const EXT_ROLE = {
  /** Always 1 in a computed role; cleared by kvm_mmu_after_set_cpuid so the next compare fails. */
  VALID: 1 << 0,
  /** Shadow EPT only: L1 was offered execute-only EPT. */
  EXECONLY: 1 << 1,
  CR4_PSE: 1 << 2,
  /** CR4.PKE && EFER.LMA. */
  CR4_PKE: 1 << 3,
  CR4_SMAP: 1 << 4,
  CR4_SMEP: 1 << 5,
  /** CR4.LA57 && EFER.LMA. */
  CR4_LA57: 1 << 6,
  EFER_LMA: 1 << 7,
} as const;

export interface ExtendedRoleFields {
  readonly valid: boolean;
  readonly execonly: boolean;
  readonly cr4_pse: boolean;
  readonly cr4_pke: boolean;
  readonly cr4_smap: boolean;
  readonly cr4_smep: boolean;
  readonly cr4_la57: boolean;
  readonly efer_lma: boolean;
}

const NAMES = [
  "valid",
  "execonly",
  "cr4_pse",
  "cr4_pke",
  "cr4_smap",
  "cr4_smep",
  "cr4_la57",
  "efer_lma",
] as const;

export function decodeExtendedRole(word: number): ExtendedRoleFields {
  const out: Record<string, boolean> = {};
  NAMES.forEach((name, bit) => {
    out[name] = ((word >>> bit) & 1) === 1;
  });
  return out as unknown as ExtendedRoleFields;
}

export function encodeExtendedRole(fields: ExtendedRoleFields): number {
  let w = 0;
  NAMES.forEach((name, bit) => {
    if (fields[name]) w |= 1 << bit;
  });
  return w >>> 0;
}
