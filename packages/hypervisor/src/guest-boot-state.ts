import { CR0, CR4, EFER } from "@nestvisor/x86-arch";

/** The architectural state a guest starts with (from its workload or a default 64-bit kernel). */
export interface GuestBootState {
  readonly cr0: number;
  readonly cr3: number;
  readonly cr4: number;
  readonly efer: number;
  readonly rip: number;
  /** Current privilege level (the DPL of SS and CS); default 0. */
  readonly cpl?: number;
}

/** A 64-bit kernel with paging, the state a guest hypervisor runs in (long mode, NXE, VMXE). */
export const HYPERVISOR_BOOT_STATE: GuestBootState = Object.freeze({
  cr0: (CR0.PE | CR0.MP | CR0.ET | CR0.NE | CR0.WP | CR0.AM | CR0.PG) >>> 0,
  cr3: 0x9000,
  cr4: CR4.PAE | CR4.PGE | CR4.OSFXSR | CR4.OSXMMEXCPT | CR4.VMXE,
  efer: (EFER.SCE | EFER.LME | EFER.LMA | EFER.NXE) >>> 0,
  rip: 0xffff_8000_0010_0000 % 2 ** 53,
});
