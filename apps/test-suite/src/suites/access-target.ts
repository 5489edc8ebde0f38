import {
  ACCESS,
  type AdUpdate,
  CR0,
  CR4,
  cpuFeatures,
  createPagingContext,
  EFER,
  type PagingContext,
} from "@nestvisor/x86-arch";
import { hex } from "../case-recorder";
import {
  ACCESS_MAXPHYADDR,
  type AccessKind,
  accessOfCase,
  type CpuState,
  cpuStateOf,
  ENTRY_NAMES,
  type Entries,
  Expected,
  entriesFor,
  expectAccess,
  expectedPa,
  newEntries,
  PML4_GPA,
  PML5_GPA,
  SUPERVISOR_READ,
} from "./access-cases";

/** The guest's CPUID for the case space: MAXPHYADDR 36, so bits 36 and 51 are both reserved. */
export const ACCESS_FEATURES = cpuFeatures({ maxPhysAddr: ACCESS_MAXPHYADDR });

/**
 * Where the access cases run: a guest whose four page-table entries the case writes, and which makes
 * accesses the way the processor (and, under a hypervisor, the processor plus L0) would. A target
 * reports the guest-visible result: a #PF with its error code, or the guest-physical address reached.
 */
export interface AccessTarget {
  /** How the guest's A/D flags are set (what the expected outcome assumes). */
  readonly policy: AdUpdate;
  /** Writes the case's entries into the guest's page tables, as a guest kernel would. */
  store(entries: Entries): void;
  /** Reads the guest's four entries back. */
  load(out: Entries): void;
  /** One access in `cpu`'s state; true when it completes (`pa` set), false on a guest #PF (`errorCode`). */
  access(cpu: CpuState, acc: AccessKind): boolean;
  /** Guest-physical address of the last completed access. */
  readonly pa: number;
  /** Error code of the last guest #PF. */
  readonly errorCode: number;
  /** Set when something other than a guest #PF stopped the access (a hypervisor outcome); else null. */
  readonly problem: string | null;
}

/** The guest registers of a CPU state (64-bit paging, 4 or 5 levels, tables at the fixed GPAs). */
export function guestPagingContext(cpu: CpuState, levels: 4 | 5): PagingContext {
  return createPagingContext(
    {
      cr0: CR0.PG | CR0.PE | (cpu.wp ? CR0.WP : 0),
      cr3: levels === 5 ? PML5_GPA : PML4_GPA,
      cr4:
        CR4.PAE |
        (levels === 5 ? CR4.LA57 : 0) |
        (cpu.smep ? CR4.SMEP : 0) |
        (cpu.smap ? CR4.SMAP : 0) |
        (cpu.pke ? CR4.PKE : 0) |
        (cpu.pks ? CR4.PKS : 0),
      efer: EFER.LME | EFER.LMA | (cpu.nxe ? EFER.NXE : 0),
      rflags: 2 | (cpu.ac ? 1 << 18 : 0),
      pkru: cpu.pkru,
      pkrs: cpu.pkrs,
    },
    ACCESS_FEATURES,
  );
}

/** `ACCESS` bits of an access kind. */
export function accessBits(acc: AccessKind): number {
  return (
    (acc.write ? ACCESS.WRITE : 0) |
    (acc.fetch ? ACCESS.FETCH : 0) |
    (acc.user ? ACCESS.USER : 0) |
    (acc.implicit ? ACCESS.IMPLICIT : 0)
  );
}

function describeAccess(acc: AccessKind): string {
  const kind = acc.fetch ? "fetch" : acc.write ? "write" : "read";
  return `${acc.implicit ? "implicit " : acc.user ? "user " : "supervisor "}${kind}`;
}

/** Scratch state of a case runner (nothing is allocated per case). */
export class AccessCaseRunner {
  readonly target: AccessTarget;
  readonly model = newEntries();
  readonly seen = newEntries();
  readonly expected = new Expected();

  constructor(target: AccessTarget) {
    this.target = target;
  }

  /** One access compared with the expected outcome; null when they agree, else what differs. */
  check(cpu: CpuState, acc: AccessKind): string | null {
    const t = this.target;
    const ok = t.access(cpu, acc);
    if (t.problem !== null) return `${describeAccess(acc)}: ${t.problem}`;
    const e = this.expected;
    expectAccess(this.model, cpu, acc, t.policy, e);
    if (ok === e.fault) {
      return ok
        ? `${describeAccess(acc)} completed, expected #PF with error code ${hex(e.errorCode)}`
        : `${describeAccess(acc)} took #PF with error code ${hex(t.errorCode)}, expected no fault`;
    }
    if (!ok && t.errorCode !== e.errorCode) {
      return `${describeAccess(acc)}: #PF error code ${hex(t.errorCode)}, expected ${hex(e.errorCode)}`;
    }
    if (ok && t.pa !== expectedPa(this.model)) {
      return `${describeAccess(acc)} reached ${hex(t.pa)}, expected ${hex(expectedPa(this.model))}`;
    }
    const seen = this.seen;
    t.load(seen);
    const model = this.model;
    for (let i = 0; i < 8; i += 2) {
      if (seen[i] !== model[i] || seen[i + 1] !== model[i + 1]) {
        return (
          `after a ${describeAccess(acc)} the ${ENTRY_NAMES[i / 2]} is ${hex(seen[i + 1]!)}_${hex(seen[i]!).slice(2).padStart(8, "0")}, ` +
          `expected ${hex(model[i + 1]!)}_${hex(model[i]!).slice(2).padStart(8, "0")} (accessed/dirty flags, SDM 4.8)`
        );
      }
    }
    return null;
  }

  /** One case of the access.c space: the entries, an optional supervisor read, the access. */
  runCase(flags: number): string | null {
    entriesFor(flags, this.model);
    this.target.store(this.model);
    const cpu = cpuStateOf(flags);
    if ((flags & (1 << 25)) !== 0) {
      const first = this.check(cpu, SUPERVISOR_READ);
      if (first !== null) return `first read: ${first}`;
    }
    return this.check(cpu, accessOfCase(flags));
  }
}
