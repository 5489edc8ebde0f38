import {
  ACCESS,
  ACCESS_CASE_ENTRY_NAMES,
  ACCESS_CASE_FLAG,
  type AccessCaseCpu,
  type AccessCaseEntries,
  AccessCaseExpectation,
  type AdUpdate,
  accessCaseAccess,
  accessCaseCpu,
  accessCaseExpectedPa,
  buildAccessCaseEntries,
  expectAccessCase,
  newAccessCaseEntries,
} from "@nestvisor/x86-arch";
import { hex } from "../case-recorder";

/**
 * Where the access cases (the x86-arch `access-case-*` modules: kvm-unit-tests x86/access.c's case
 * space) run: a guest whose four page-table entries the case writes, and which makes accesses the
 * way the processor (and, under a hypervisor, the processor plus L0) would. A target reports the
 * guest-visible result: a #PF with its error code, or the guest-physical address reached.
 */
export interface AccessTarget {
  /** How the guest's A/D flags are set (what the expected outcome assumes). */
  readonly policy: AdUpdate;
  /** Writes the case's entries into the guest's page tables, as a guest kernel would. */
  store(entries: AccessCaseEntries): void;
  /** Reads the guest's four entries back. */
  load(out: AccessCaseEntries): void;
  /**
   * One access (`ACCESS` bits) in `cpu`'s state; true when it completes (`pa` set), false on a
   * guest #PF (`errorCode`).
   */
  access(cpu: AccessCaseCpu, access: number): boolean;
  /** Guest-physical address of the last completed access. */
  readonly pa: number;
  /** Error code of the last guest #PF. */
  readonly errorCode: number;
  /** Set when something other than a guest #PF stopped the access (a hypervisor outcome); else null. */
  readonly problem: string | null;
}

function describeAccess(access: number): string {
  const kind = (access & ACCESS.FETCH) !== 0 ? "fetch" : (access & ACCESS.WRITE) !== 0 ? "write" : "read";
  const who =
    (access & ACCESS.IMPLICIT) !== 0 ? "implicit " : (access & ACCESS.USER) !== 0 ? "user " : "supervisor ";
  return `${who}${kind}`;
}

/** Scratch state of a case runner (nothing is allocated per case). */
export class AccessCaseRunner {
  readonly target: AccessTarget;
  readonly model = newAccessCaseEntries();
  readonly seen = newAccessCaseEntries();
  readonly expected = new AccessCaseExpectation();

  constructor(target: AccessTarget) {
    this.target = target;
  }

  /** One access compared with the expected outcome; null when they agree, else what differs. */
  check(cpu: AccessCaseCpu, acc: number): string | null {
    const t = this.target;
    const ok = t.access(cpu, acc);
    if (t.problem !== null) return `${describeAccess(acc)}: ${t.problem}`;
    const e = this.expected;
    expectAccessCase(this.model, cpu, acc, t.policy, e);
    if (ok === e.fault) {
      return ok
        ? `${describeAccess(acc)} completed, expected #PF with error code ${hex(e.errorCode)}`
        : `${describeAccess(acc)} took #PF with error code ${hex(t.errorCode)}, expected no fault`;
    }
    if (!ok && t.errorCode !== e.errorCode) {
      return `${describeAccess(acc)}: #PF error code ${hex(t.errorCode)}, expected ${hex(e.errorCode)}`;
    }
    if (ok && t.pa !== accessCaseExpectedPa(this.model)) {
      return `${describeAccess(acc)} reached ${hex(t.pa)}, expected ${hex(accessCaseExpectedPa(this.model))}`;
    }
    const seen = this.seen;
    t.load(seen);
    const model = this.model;
    for (let i = 0; i < 8; i += 2) {
      if (seen[i] !== model[i] || seen[i + 1] !== model[i + 1]) {
        return (
          `after a ${describeAccess(acc)} the ${ACCESS_CASE_ENTRY_NAMES[i / 2]} is ${hex(seen[i + 1]!)}_${hex(seen[i]!).slice(2).padStart(8, "0")}, ` +
          `expected ${hex(model[i + 1]!)}_${hex(model[i]!).slice(2).padStart(8, "0")} (accessed/dirty flags, SDM 4.8)`
        );
      }
    }
    return null;
  }

  /** One case of the access.c space: the entries, an optional supervisor read, the access. */
  runCase(flags: number): string | null {
    buildAccessCaseEntries(flags, this.model);
    this.target.store(this.model);
    const cpu = accessCaseCpu(flags);
    if ((flags & ACCESS_CASE_FLAG.ACCESS_TWICE) !== 0) {
      const first = this.check(cpu, ACCESS.READ);
      if (first !== null) return `first read: ${first}`;
    }
    return this.check(cpu, accessCaseAccess(flags));
  }
}
