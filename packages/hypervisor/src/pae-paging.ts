import { CR0, CR4 } from "@nestvisor/x86-arch";

/**
 * The CR0 and CR4 bits whose change by MOV to CR0/CR4 reloads the PDPTEs when PAE paging follows
 * (SDM 4.4.1; kvm: X86_CR0_PDPTR_BITS, X86_CR4_PDPTR_BITS).
 */
export const CR0_PDPTR_BITS = (CR0.CD | CR0.NW | CR0.PG) >>> 0;
export const CR4_PDPTR_BITS = (CR4.PGE | CR4.PSE | CR4.PAE | CR4.SMEP) >>> 0;
