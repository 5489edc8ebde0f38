import { flag, type RegisterLayout } from "./bit-register";

/**
 * IA32_DEBUGCTL (MSR 1D9H) bits: SDM Vol. 3B, "IA32_DEBUGCTL MSR" (last branch recording and
 * branch trace store), Vol. 4 Table 2-2; bit 2 from "Bus Lock Detection" (Vol. 3A), bit 15 from
 * "Debugging RTM". The names are those of Linux's DEBUGCTLMSR_* constants. Bits 5:3, 13 and
 * 63:16 are reserved.
 */
export const DEBUGCTL = {
  /** Last branch record stack on. */
  LBR: 1 << 0,
  /** Single-step on branches (TF then traps on taken branches). */
  BTF: 1 << 1,
  /** #DB after an instruction that acquired a bus lock. */
  BUS_LOCK_DETECT: 1 << 2,
  /** Branch trace messages sent. */
  TR: 1 << 6,
  /** Branch trace store on. */
  BTS: 1 << 7,
  BTINT: 1 << 8,
  BTS_OFF_OS: 1 << 9,
  BTS_OFF_USR: 1 << 10,
  FREEZE_LBRS_ON_PMI: 1 << 11,
  FREEZE_PERFMON_ON_PMI: 1 << 12,
  /** Performance counters and LBRs stop while the processor is in SMM. */
  FREEZE_IN_SMM: 1 << 14,
  /** Advanced debugging of RTM regions (with DR7.RTM). */
  RTM_DEBUG: 1 << 15,
} as const;

/** IA32_DEBUGCTL layout for decoding and display. */
export const DEBUGCTL_LAYOUT: RegisterLayout = {
  name: "IA32_DEBUGCTL",
  width: 64,
  source: 'SDM Vol. 3B "IA32_DEBUGCTL MSR"; Vol. 4 Table 2-2 (MSR 1D9H)',
  fields: [
    flag("LBR", 0, "last branch record stack on"),
    flag("BTF", 1, "single-step on branches"),
    flag("BUS_LOCK_DETECT", 2, "#DB after a bus lock"),
    flag("TR", 6, "branch trace messages on"),
    flag("BTS", 7, "branch trace store on"),
    flag("BTINT", 8, "interrupt when the BTS buffer is full"),
    flag("BTS_OFF_OS", 9, "no branch trace store at CPL 0"),
    flag("BTS_OFF_USR", 10, "no branch trace store above CPL 0"),
    flag("FREEZE_LBRS_ON_PMI", 11, "LBR stack frozen on a PMI"),
    flag("FREEZE_PERFMON_ON_PMI", 12, "performance counters frozen on a PMI"),
    flag("FREEZE_IN_SMM", 14, "counters and LBRs frozen while in SMM (SDM: FREEZE_WHILE_SMM)"),
    flag("RTM_DEBUG", 15, "advanced debugging of RTM regions"),
  ],
};
