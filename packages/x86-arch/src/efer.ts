import { flag, type RegisterLayout } from "./bit-register";

/**
 * IA32_EFER bits (MSR C000_0080H). Intel: SDM Vol. 3A 2.2.1 and Vol. 4 Table 2-2 define SCE, LME,
 * LMA and NXE; the others are AMD-only (AMD APM Vol. 2 3.1.7, "Extended Feature Enable
 * Register"). Numeric constants for hot paths; no bit above 31 is defined.
 */
export const EFER = {
  SCE: 1 << 0,
  LME: 1 << 8,
  LMA: 1 << 10,
  NXE: 1 << 11,
  SVME: 1 << 12,
  LMSLE: 1 << 13,
  FFXSR: 1 << 14,
  TCE: 1 << 15,
  AUTOIBRS: 1 << 21,
} as const;

/**
 * `efer` with LMA and LME both set (`longMode`) or both clear: the EFER a VM exit gives the host
 * without "load IA32_EFER" (SDM 28.5.1, "host address-space size"), and a VM entry with paging
 * gives the guest without it (SDM 27.3.2.1, "IA-32e mode guest"); KVM computes the same for a nested
 * guest (nested_vmx_calc_efer) and on a nested exit (load_vmcs12_host_state).
 */
export function eferInMode(efer: number, longMode: boolean): number {
  return (longMode ? efer | EFER.LMA | EFER.LME : efer & ~(EFER.LMA | EFER.LME)) >>> 0;
}

/** IA32_EFER layout for decoding and display. */
export const EFER_LAYOUT: RegisterLayout = {
  name: "IA32_EFER",
  width: 64,
  source: "SDM Vol. 4 Table 2-2 (MSR C0000080H); AMD APM Vol. 2 3.1.7 for the AMD-only bits",
  fields: [
    flag("SCE", 0, "SYSCALL Enable: SYSCALL/SYSRET in 64-bit mode"),
    flag("LME", 8, "Long Mode Enable: IA-32e mode once CR0.PG is set"),
    flag("LMA", 10, "Long Mode Active: IA-32e mode is active (set by the processor)"),
    flag("NXE", 11, "No-Execute Enable: bit 63 of PAE/IA-32e entries means execute-disable"),
    flag("SVME", 12, "AMD only: Secure Virtual Machine Enable (SVM instructions)"),
    flag("LMSLE", 13, "AMD only: Long Mode Segment Limit Enable (data-segment limits in 64-bit mode)"),
    flag("FFXSR", 14, "AMD only: Fast FXSAVE/FXRSTOR (XMM state skipped at CPL 0 in 64-bit mode)"),
    flag("TCE", 15, "AMD only: Translation Cache Extension (INVLPG keeps unrelated upper-level entries)"),
    flag("AUTOIBRS", 21, "AMD only: Automatic IBRS (indirect-branch restriction for CPL 0)"),
  ],
};
