import type { PhysicalMemory } from "@nestvisor/x86-arch";
import type { VmxCapabilities } from "./capability-msrs";
import {
  ENTRY_CHECK_SLOT_COUNT,
  EntryCheckContext,
  type L0HostFacts,
  type L1VcpuFacts,
  type MsrWriter,
  type NestedEntryInput,
  type Vmcs12Reader,
} from "./entry-check-context";
import { EntryCheckDependencies } from "./entry-check-dependencies";
import {
  ENTRY_CHECK_CATEGORY,
  ENTRY_CHECK_RULES,
  ENTRY_CHECK_STAGE,
  type EntryCheckRule,
} from "./entry-check-rules";
import { EXIT_REASON, VMX_EXIT_REASONS_FAILED_VMENTRY } from "./exit-reason";
import { VM_INSTRUCTION_ERROR } from "./vm-instruction-error";

/**
 * Runs the nested VM-entry consistency checks of `entry-check-rules.ts` in KVM 6.12's order
 * (kvm-vmx.md §5.8, §9): nested_vmx_run checks the controls (VMfailValid 7), the address-space
 * size and the host state (VMfailValid 8); nested_vmx_enter_non_root_mode then checks the guest
 * state (VM exit 33), prepares vmcs02 (exit 33, qualification 0 or 2) and loads the VM-entry
 * MSR-load list (exit 34); last, the CPU checks vmcs02 (late VMfailValid 7 or exit 33).
 *
 * Not modelled here: the pre-checks of nested_vmx_run (no current VMCS, shadow-VMCS header,
 * MOV-SS blocking, launch state — they belong to VMLAUNCH/VMRESUME emulation), the KVM internal
 * error for an APIC-access page without a memslot, and nested_early_check=1.
 */

/** What L1 sees when a check fails. */
export type EntryCheckOutcome =
  | { readonly kind: "vmfail"; readonly error: 7 | 8 }
  | { readonly kind: "entry-failure"; readonly exitReason: 33 | 34; readonly qualification: number };

/** A failed check: the rule and what L1 sees. */
export interface EntryCheckFailure {
  readonly ok: false;
  readonly rule: EntryCheckRule;
  readonly outcome: EntryCheckOutcome;
}

export type EntryCheckResult = { readonly ok: true } | EntryCheckFailure;

/** The shared result of an entry that passes every check. */
export const ENTRY_CHECK_OK: { readonly ok: true } = Object.freeze({ ok: true });

const VMFAIL_CONTROL: EntryCheckOutcome = Object.freeze({
  kind: "vmfail",
  error: VM_INSTRUCTION_ERROR.ENTRY_INVALID_CONTROL_FIELD,
});
const VMFAIL_HOST: EntryCheckOutcome = Object.freeze({
  kind: "vmfail",
  error: VM_INSTRUCTION_ERROR.ENTRY_INVALID_HOST_STATE_FIELD,
});

/**
 * The outcome of `rule` failing with `detail` (its test's non-zero result): VMfailValid 7 or 8,
 * or a VM-entry-failure exit (33 with the rule's qualification, 34 with the entry index).
 */
export function entryCheckOutcome(rule: EntryCheckRule, detail: number): EntryCheckOutcome {
  switch (rule.category) {
    case ENTRY_CHECK_CATEGORY.CONTROLS:
      return VMFAIL_CONTROL;
    case ENTRY_CHECK_CATEGORY.ADDRESS_SPACE_SIZE:
    case ENTRY_CHECK_CATEGORY.HOST_STATE:
      return VMFAIL_HOST;
    case ENTRY_CHECK_CATEGORY.GUEST_STATE:
      return {
        kind: "entry-failure",
        exitReason: EXIT_REASON.INVALID_STATE,
        qualification: rule.qualification,
      };
    case ENTRY_CHECK_CATEGORY.MSR_LOAD:
      return { kind: "entry-failure", exitReason: EXIT_REASON.MSR_LOAD_FAIL, qualification: detail };
  }
}

/** The value L1 reads from VM_EXIT_REASON after an entry failure: bit 31 set (SDM 27.8). */
export function entryFailureExitReason(outcome: EntryCheckOutcome): number | undefined {
  if (outcome.kind !== "entry-failure") return undefined;
  return (outcome.exitReason | VMX_EXIT_REASONS_FAILED_VMENTRY) >>> 0;
}

/** One line for a report, e.g. "controls.pin.reserved → VMfailValid(7): pin-based controls …". */
export function formatEntryCheckFailure(failure: EntryCheckFailure): string {
  const o = failure.outcome;
  const what =
    o.kind === "vmfail"
      ? `VMfailValid(${o.error})`
      : `VM exit 0x${entryFailureExitReason(o)!.toString(16)} qualification ${o.qualification}`;
  return `${failure.rule.id} → ${what}: ${failure.rule.description} [kvm: ${failure.rule.kvm}; ${failure.rule.sdm}]`;
}

export interface NestedEntryCheckerOptions {
  /**
   * Also run the checks the CPU makes on vmcs02 (stage "hardware-vmcs02"). Default true; a model
   * that runs vmcs02 through its own hardware checks turns this off.
   */
  readonly includeHardware?: boolean;
  /**
   * Re-run only the rules whose inputs changed since the last entry, when that entry passed every
   * check and used the same input objects (default true). The result is the same either way; false
   * evaluates every rule on every entry.
   */
  readonly incremental?: boolean;
}

/**
 * A reusable checker: one context, no allocation on an entry that passes. The VM-entry MSR-load
 * rule calls `input.writeMsr` for each entry it accepts, in list order (as KVM writes them).
 *
 * Incremental checking (a simulator speed-up; KVM itself checks everything on every entry): while
 * running the rules the context records which slots each rule read (`EntryCheckDependencies`).
 * When the next entry comes with the same vmcs12, capabilities, facts, memory (same size) and MSR
 * writer objects and the last result was `ENTRY_CHECK_OK`, the checker re-reads those slots,
 * and re-runs, in KVM's order, only the rules that read a changed slot plus the opaque ones (guest
 * memory content, MSR writes). Every other rule passed last time on the same values, so it passes
 * again, and the first failure among the re-run rules is the first failure of a full evaluation.
 * The capability and fact objects are taken as immutable values (their interfaces are read-only):
 * pass new objects to change them.
 */
export class NestedEntryChecker {
  readonly rules: readonly EntryCheckRule[];
  readonly #context = new EntryCheckContext();
  readonly #dependencies: EntryCheckDependencies;
  /** Scratch sets: the slots that changed since the last entry and the rules to re-run. */
  readonly #changed: Uint32Array;
  readonly #rerun: Uint32Array;
  readonly #incremental: boolean;
  /** The last entry passed every rule and `#dependencies` describes every rule's last run. */
  #valid = false;
  /** The last entry's input objects. */
  #vmcs12: Vmcs12Reader | null = null;
  #caps: VmxCapabilities | null = null;
  #vcpu: L1VcpuFacts | null = null;
  #host: L0HostFacts | null = null;
  #memory: PhysicalMemory | null = null;
  #memorySize = -1;
  #writeMsr: MsrWriter | undefined = undefined;

  constructor(options: NestedEntryCheckerOptions = {}) {
    this.rules =
      options.includeHardware === false
        ? Object.freeze(ENTRY_CHECK_RULES.filter((r) => r.stage !== ENTRY_CHECK_STAGE.HARDWARE))
        : ENTRY_CHECK_RULES;
    this.#incremental = options.incremental !== false;
    this.#dependencies = new EntryCheckDependencies(this.rules.length, ENTRY_CHECK_SLOT_COUNT);
    this.#changed = new Uint32Array(this.#dependencies.slotWords);
    this.#rerun = new Uint32Array(this.#dependencies.ruleWords);
    if (this.#incremental) this.#context.track(this.#dependencies);
  }

  /** KVM's result: the first failing check in KVM's order, or `ENTRY_CHECK_OK`. */
  check(input: NestedEntryInput): EntryCheckResult {
    if (this.#valid && this.#sameInput(input)) return this.#checkChanged();
    return this.#checkFull(input);
  }

  /** Every failing check, in KVM's order (for a report; KVM itself stops at the first). */
  checkAll(input: NestedEntryInput): EntryCheckFailure[] {
    this.#valid = false;
    const ctx = this.#context.reset(input);
    const failures: EntryCheckFailure[] = [];
    for (const rule of this.rules) {
      const detail = rule.test(ctx);
      if (detail !== 0) failures.push({ ok: false, rule, outcome: entryCheckOutcome(rule, detail) });
    }
    return failures;
  }

  #sameInput(input: NestedEntryInput): boolean {
    return (
      input.vmcs12 === this.#vmcs12 &&
      input.caps === this.#caps &&
      input.vcpu === this.#vcpu &&
      input.host === this.#host &&
      input.memory === this.#memory &&
      input.memory.size === this.#memorySize &&
      input.writeMsr === this.#writeMsr
    );
  }

  /** Runs every rule in order, recording what each reads. */
  #checkFull(input: NestedEntryInput): EntryCheckResult {
    this.#valid = false;
    const ctx = this.#context.reset(input);
    const rules = this.rules;
    for (let i = 0; i < rules.length; i++) {
      const rule = rules[i]!;
      ctx.enterRule(i);
      const detail = rule.test(ctx);
      if (detail !== 0) return { ok: false, rule, outcome: entryCheckOutcome(rule, detail) };
    }
    if (this.#incremental) {
      this.#vmcs12 = input.vmcs12;
      this.#caps = input.caps;
      this.#vcpu = input.vcpu;
      this.#host = input.host;
      this.#memory = input.memory;
      this.#memorySize = input.memory.size;
      this.#writeMsr = input.writeMsr;
      this.#valid = true;
    }
    return ENTRY_CHECK_OK;
  }

  /** Same input objects as the last entry, which passed: re-runs the rules whose inputs changed. */
  #checkChanged(): EntryCheckResult {
    // Invalid until every rule is known to pass again (a failure or an exception leaves it so).
    this.#valid = false;
    const ctx = this.#context;
    const changed = this.#changed;
    const rerun = this.#rerun;
    ctx.refresh(changed);
    this.#dependencies.affected(changed, rerun);
    const rules = this.rules;
    for (let w = 0; w < rerun.length; w++) {
      let bits = rerun[w]!;
      while (bits !== 0) {
        const low = bits & -bits;
        bits ^= low;
        const i = (w << 5) | (31 - Math.clz32(low));
        const rule = rules[i]!;
        ctx.enterRule(i);
        const detail = rule.test(ctx);
        if (detail !== 0) return { ok: false, rule, outcome: entryCheckOutcome(rule, detail) };
      }
    }
    this.#valid = true;
    return ENTRY_CHECK_OK;
  }
}

const DEFAULT_CHECKER = new NestedEntryChecker();

/** The first failing check of a nested VMLAUNCH/VMRESUME, in KVM 6.12's order, or `{ ok: true }`. */
export function checkNestedVmEntry(input: NestedEntryInput): EntryCheckResult {
  return DEFAULT_CHECKER.check(input);
}

/** Every failing check of a nested VM entry, in KVM's order. */
export function checkNestedVmEntryAll(input: NestedEntryInput): EntryCheckFailure[] {
  return DEFAULT_CHECKER.checkAll(input);
}
