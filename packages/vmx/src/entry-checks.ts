import { EntryCheckContext, type NestedEntryInput } from "./entry-check-context";
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
}

/**
 * A reusable checker: one context, no allocation on an entry that passes. The VM-entry MSR-load
 * rule calls `input.writeMsr` for each entry it accepts, in list order (as KVM writes them).
 */
export class NestedEntryChecker {
  readonly rules: readonly EntryCheckRule[];
  readonly #context = new EntryCheckContext();

  constructor(options: NestedEntryCheckerOptions = {}) {
    this.rules =
      options.includeHardware === false
        ? Object.freeze(ENTRY_CHECK_RULES.filter((r) => r.stage !== ENTRY_CHECK_STAGE.HARDWARE))
        : ENTRY_CHECK_RULES;
  }

  /** KVM's result: the first failing check in KVM's order, or `ENTRY_CHECK_OK`. */
  check(input: NestedEntryInput): EntryCheckResult {
    const ctx = this.#context.reset(input);
    const rules = this.rules;
    for (let i = 0; i < rules.length; i++) {
      const rule = rules[i]!;
      const detail = rule.test(ctx);
      if (detail !== 0) return { ok: false, rule, outcome: entryCheckOutcome(rule, detail) };
    }
    return ENTRY_CHECK_OK;
  }

  /** Every failing check, in KVM's order (for a report; KVM itself stops at the first). */
  checkAll(input: NestedEntryInput): EntryCheckFailure[] {
    const ctx = this.#context.reset(input);
    const failures: EntryCheckFailure[] = [];
    for (const rule of this.rules) {
      const detail = rule.test(ctx);
      if (detail !== 0) failures.push({ ok: false, rule, outcome: entryCheckOutcome(rule, detail) });
    }
    return failures;
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
