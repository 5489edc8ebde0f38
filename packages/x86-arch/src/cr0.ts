import { flag, type RegisterLayout } from "./bit-register";

/** CR0 bits (SDM Vol. 3A 2.5, "Control Registers"). Numeric constants for hot paths. */
export const CR0 = {
  PE: 1 << 0,
  MP: 1 << 1,
  EM: 1 << 2,
  TS: 1 << 3,
  ET: 1 << 4,
  NE: 1 << 5,
  WP: 1 << 16,
  AM: 1 << 18,
  NW: 1 << 29,
  CD: 1 << 30,
  PG: 2 ** 31,
} as const;

/** CR0 layout for decoding and display (SDM 2.5). */
export const CR0_LAYOUT: RegisterLayout = {
  name: "CR0",
  width: 64,
  source: "SDM Vol. 3A 2.5",
  fields: [
    flag("PE", 0, "Protection Enable: protected mode"),
    flag("MP", 1, "Monitor Coprocessor: WAIT/FWAIT honour TS"),
    flag("EM", 2, "Emulation: no x87 FPU; FPU instructions raise #NM"),
    flag("TS", 3, "Task Switched: next FPU/SSE use raises #NM (lazy state save)"),
    flag("ET", 4, "Extension Type: hard-wired to 1 on modern CPUs"),
    flag("NE", 5, "Numeric Error: native x87 error reporting (#MF)"),
    flag("WP", 16, "Write Protect: supervisor writes honour read-only pages"),
    flag("AM", 18, "Alignment Mask: enables #AC with RFLAGS.AC at CPL 3"),
    flag("NW", 29, "Not Write-through: with CD, caches are not written through"),
    flag("CD", 30, "Cache Disable"),
    flag("PG", 31, "Paging: linear addresses are translated through page tables"),
  ],
};
