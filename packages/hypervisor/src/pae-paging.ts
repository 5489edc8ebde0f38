import { CR0, CR4, EFER } from "@nestvisor/x86-arch";

/** kvm: is_pae_paging — CR0.PG and CR4.PAE without EFER.LMA: the PDPTE registers are in use. */
export function isPaePaging(cr0: number, cr4: number, efer: number): boolean {
  return (cr0 & CR0.PG) !== 0 && (cr4 & CR4.PAE) !== 0 && (efer & EFER.LMA) === 0;
}

/**
 * The CR0 and CR4 bits whose change by MOV to CR0/CR4 reloads the PDPTEs when PAE paging follows
 * (SDM 4.4.1; kvm: X86_CR0_PDPTR_BITS, X86_CR4_PDPTR_BITS).
 */
export const CR0_PDPTR_BITS = (CR0.CD | CR0.NW | CR0.PG) >>> 0;
export const CR4_PDPTR_BITS = (CR4.PGE | CR4.PSE | CR4.PAE | CR4.SMEP) >>> 0;

/** The table a PAE CR3 names: bits 31:5 (SDM 4.4.1). */
export function pdptAddress(cr3: number): number {
  return (cr3 & 0xffffffe0) >>> 0;
}
