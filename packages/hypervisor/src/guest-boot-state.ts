import { CR0, CR4, EFER, IA32_PAT_RESET } from "@nestvisor/x86-arch";

/** A 64-bit MSR value as two 32-bit words, the form VMCS fields take. */
export interface MsrWords {
  readonly lo: number;
  readonly hi: number;
}

/**
 * The PAT Linux programs at boot (arch/x86/mm/pat/memtype.c, pat_init): PA0–PA7 = WB, WC, UC-, UC,
 * WB, WP, UC-, WT, i.e. 0407050600070106H. Every KVM runs on a Linux host with this PAT, and a guest
 * hypervisor (a booted Linux) has it too.
 */
export const LINUX_PAT: MsrWords = Object.freeze({ lo: 0x00070106, hi: 0x04070506 });

/** The architectural state a guest starts with (from its workload or a default 64-bit kernel). */
export interface GuestBootState {
  readonly cr0: number;
  readonly cr3: number;
  readonly cr4: number;
  readonly efer: number;
  readonly rip: number;
  /** Current privilege level (the DPL of SS and CS); default 0. */
  readonly cpl?: number;
  /** IA32_PAT; default the power-up value (a guest that has not programmed it). */
  readonly pat?: MsrWords;
}

/** The guest's PAT at boot (kvm: vcpu->arch.pat, MSR_IA32_CR_PAT_DEFAULT after a vCPU reset). */
export function bootPat(boot: GuestBootState): MsrWords {
  return boot.pat ?? IA32_PAT_RESET;
}

/** A 64-bit kernel with paging, the state a guest hypervisor runs in (long mode, NXE, VMXE). */
export const HYPERVISOR_BOOT_STATE: GuestBootState = Object.freeze({
  cr0: (CR0.PE | CR0.MP | CR0.ET | CR0.NE | CR0.WP | CR0.AM | CR0.PG) >>> 0,
  cr3: 0x9000,
  cr4: CR4.PAE | CR4.PGE | CR4.OSFXSR | CR4.OSXMMEXCPT | CR4.VMXE,
  efer: (EFER.SCE | EFER.LME | EFER.LMA | EFER.NXE) >>> 0,
  rip: 0xffff_8000_0010_0000 % 2 ** 53,
  pat: LINUX_PAT,
});
