import {
  CPU_BASED_CTLS,
  formatEntryCheckFailure,
  formatVmxOutcome,
  SECONDARY_EXEC_CTLS,
  VMX_OUTCOME,
  type VmxCapabilities,
} from "@nestvisor/vmx";
import type { CaseGroup } from "../suite";
import { loadBaseline } from "./vmcs12-baseline";
import { L1, type VmxWorld, worldFor } from "./vmx-world";

/**
 * What L1 must see from VMLAUNCH (vmx-tests.md §0):
 * - "passes": the control and host-state checks pass — the entry happens, or fails later with an
 *   entry-failure exit (33/34), which kvm-unit-tests counts as "passed the checks under test";
 * - "enters": the guest runs (every check passes);
 * - vmfail: VMfailValid with one of the errors (6.7 accepts 7 or 8);
 * - exit: a VM-entry-failure exit with that basic reason and qualification.
 */
export type EntryExpectation =
  | "passes"
  | "enters"
  | { readonly vmfail: readonly number[] }
  | { readonly exit: 33 | 34; readonly qualification: number };

export const FAIL_CONTROLS: EntryExpectation = { vmfail: [7] };
export const FAIL_HOST: EntryExpectation = { vmfail: [8] };
export const FAIL_GUEST: EntryExpectation = { exit: 33, qualification: 0 };

/** A vmcs12 under construction: L1's VMWRITEs on top of the baseline. */
export class EntrySetup {
  readonly world: VmxWorld;

  constructor(world: VmxWorld) {
    this.world = world;
  }

  get caps(): VmxCapabilities {
    return this.world.emulator.capabilities;
  }

  set(name: string, value: bigint | number): this {
    const r = this.world.write(name, value);
    if (r !== 0) throw new Error(`set-up VMWRITE of ${name} failed with ${formatVmxOutcome(r)}`);
    return this;
  }

  get(name: string): bigint {
    const v = this.world.read(name);
    if (v === undefined) throw new Error(`set-up VMREAD of ${name} failed`);
    return v;
  }

  /** Sets and clears bits of a 32-bit field. */
  bits(name: string, set: number, clear = 0): this {
    return this.set(name, ((Number(this.get(name)) | set) & ~clear) >>> 0);
  }

  /** Activates secondary controls and sets `bits` in them. */
  secondary(set: number, clear = 0): this {
    this.bits("CPU_BASED_VM_EXEC_CONTROL", CPU_BASED_CTLS.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS);
    return this.bits("SECONDARY_VM_EXEC_CONTROL", set, clear);
  }

  /** "Use TPR shadow" with a valid virtual-APIC page. */
  tprShadow(): this {
    this.set("VIRTUAL_APIC_PAGE_ADDR", L1.VIRTUAL_APIC);
    this.set("TPR_THRESHOLD", 0);
    return this.bits("CPU_BASED_VM_EXEC_CONTROL", CPU_BASED_CTLS.CPU_BASED_TPR_SHADOW);
  }

  /** EPT with a valid WB 4-level EPTP. */
  ept(): this {
    this.set("EPT_POINTER", L1.EPT_PML4 | (3 << 3) | 6);
    return this.secondary(SECONDARY_EXEC_CTLS.SECONDARY_EXEC_ENABLE_EPT);
  }
}

/** One VM-entry check case: a change to the baseline and what L1 must see. */
export interface EntryCase {
  readonly name: string;
  /** Returns "skip" when the capabilities make the case meaningless (it then counts as passed). */
  setup(s: EntrySetup): undefined | "skip";
  readonly expect: EntryExpectation | ((s: EntrySetup) => EntryExpectation);
}

export function entryCase(
  name: string,
  expect: EntryExpectation | ((s: EntrySetup) => EntryExpectation),
  setup: (s: EntrySetup) => undefined | "skip" | EntrySetup,
): EntryCase {
  return {
    name,
    expect,
    setup: (s) => {
      const r = setup(s);
      return r === "skip" ? "skip" : undefined;
    },
  };
}

function describeExpectation(e: EntryExpectation): string {
  if (e === "passes") return "the control and host-state checks to pass";
  if (e === "enters") return "the guest to run";
  if ("vmfail" in e) return `VMfailValid(${e.vmfail.join(" or ")})`;
  return `an entry-failure exit ${e.exit} with qualification ${e.qualification}`;
}

/** Runs one case on a fresh world with the baseline loaded; null when L1 sees what it should. */
export function runEntryCase(world: VmxWorld, c: EntryCase): string | null {
  loadBaseline(world);
  const s = new EntrySetup(world);
  if (c.setup(s) === "skip") return null;
  const expect = typeof c.expect === "function" ? c.expect(s) : c.expect;
  const outcome = world.vmlaunch();
  const entry = world.lastEntry;
  const check = world.lastCheck;
  const rule = check !== null && !check.ok ? ` [${formatEntryCheckFailure(check)}]` : "";
  let seen: string;
  if (outcome !== VMX_OUTCOME.ENTER_NON_ROOT) {
    if (typeof expect === "object" && "vmfail" in expect && expect.vmfail.includes(outcome)) return null;
    seen = formatVmxOutcome(outcome);
  } else if (entry?.kind === "entry-failure") {
    const basic = entry.exitReason & 0xffff;
    if (expect === "passes") return null;
    if (
      typeof expect === "object" &&
      "exit" in expect &&
      expect.exit === basic &&
      expect.qualification === entry.qualification
    )
      return null;
    seen = `an entry-failure exit ${basic} with qualification ${entry.qualification}`;
  } else {
    if (expect === "passes" || expect === "enters") return null;
    seen = "the guest running";
  }
  return `L1 saw ${seen}, expected ${describeExpectation(expect)}${rule}`;
}

/** A group of entry-check cases. */
export function entryGroup(id: string, description: string, cases: readonly EntryCase[]): CaseGroup {
  return {
    id,
    description,
    cases: cases.length,
    run(rec, ctx) {
      for (const c of cases) {
        let failure: string | null;
        try {
          failure = runEntryCase(worldFor(ctx), c);
        } catch (error) {
          failure = `threw ${(error as Error).message}`;
        }
        if (failure === null) rec.pass();
        else rec.fail(`${c.name}: ${failure}`);
      }
    },
  };
}
