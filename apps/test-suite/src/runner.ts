import { type FlagOverrides, formatFlags, resolveFlags } from "@nestvisor/hypervisor";
import { CaseRecorder } from "./case-recorder";
import type { ModelFactory } from "./model";
import { modelParts } from "./model-parts";
import type { CaseGroup, Suite, SuiteContext } from "./suite";

/** kvm-unit-tests' words for a group's outcome, plus XPASS (an expected failure that passed). */
export const VERDICT = {
  PASS: "PASS",
  FAIL: "FAIL",
  XFAIL: "XFAIL",
  XPASS: "XPASS",
  SKIP: "SKIP",
} as const;
export type Verdict = (typeof VERDICT)[keyof typeof VERDICT];

export interface GroupResult {
  readonly id: string;
  readonly suite: string;
  readonly description: string;
  readonly verdict: Verdict;
  /** Cases run (0 for SKIP). */
  readonly cases: number;
  /** Cases the group plans (its `--list` count). */
  readonly planned: number;
  readonly failures: number;
  /** The first failure messages. */
  readonly messages: readonly string[];
  /** SKIP: why; XFAIL/XPASS: the deviation the group is expected to show. */
  readonly reason: string | null;
  readonly ms: number;
}

export interface RunOptions {
  readonly model: ModelFactory;
  readonly suites: readonly Suite[];
  /** Kernel preset (default today's); a model's `baseline` replaces it and `flags`. */
  readonly preset?: string;
  /** `--flag` overrides on top of the preset. */
  readonly flags?: FlagOverrides;
  /** Only groups whose id matches. */
  readonly filter?: RegExp;
  readonly full?: boolean;
  readonly seed?: number;
  /** Called before and after each group (the CLI prints progress on stderr). */
  readonly onProgress?: (event: ProgressEvent) => void;
}

export type ProgressEvent =
  | { readonly kind: "start"; readonly index: number; readonly total: number; readonly group: CaseGroup }
  | { readonly kind: "end"; readonly index: number; readonly total: number; readonly result: GroupResult };

export interface RunReport {
  readonly model: string;
  readonly preset: string;
  /** Every flag as name=on/off. */
  readonly flags: string;
  readonly full: boolean;
  readonly seed: number;
  readonly groups: readonly GroupResult[];
  readonly totals: RunTotals;
  readonly ms: number;
}

export interface RunTotals {
  readonly groups: number;
  /** Cases run. */
  readonly tests: number;
  /** Failed cases in FAIL groups, plus one per XPASS group. */
  readonly unexpectedFailures: number;
  /** Failed cases in XFAIL groups. */
  readonly expectedFailures: number;
  /** Groups skipped, and their planned cases. */
  readonly skippedGroups: number;
  readonly skippedTests: number;
  readonly failedGroups: number;
}

export const DEFAULT_SEED = 0x6e657374; // "nest"

/** The context a run's groups share. */
export function suiteContext(options: RunOptions): SuiteContext {
  // A model with its own baseline (a ModelSpec module) was assembled over --preset/--flag already.
  const baseline = options.model.baseline;
  const preset = baseline?.preset ?? options.preset ?? "v6.12";
  return {
    model: options.model,
    parts: modelParts(options.model),
    flags: baseline?.config ?? resolveFlags(preset, options.flags ?? {}),
    preset,
    full: options.full ?? false,
    seed: options.seed ?? DEFAULT_SEED,
  };
}

/** The groups a run would execute, in order (for `--list` and the run itself). */
export function selectGroups(
  options: RunOptions,
  context: SuiteContext = suiteContext(options),
): CaseGroup[] {
  const out: CaseGroup[] = [];
  for (const suite of options.suites) {
    for (const group of suite.groups(context)) {
      if (!group.id.startsWith(`${suite.name}/`)) {
        throw new Error(`group "${group.id}" of suite "${suite.name}" must be named "${suite.name}/…"`);
      }
      if (options.filter === undefined || options.filter.test(group.id)) out.push(group);
    }
  }
  return out;
}

function verdictOf(group: CaseGroup, rec: CaseRecorder): Verdict {
  if (rec.skipReason !== null) return VERDICT.SKIP;
  if (group.xfail !== undefined) return rec.failed > 0 ? VERDICT.XFAIL : VERDICT.XPASS;
  return rec.failed > 0 ? VERDICT.FAIL : VERDICT.PASS;
}

/** Runs one group; an exception is one more failure, with its message. */
export function runGroup(group: CaseGroup, context: SuiteContext): GroupResult {
  const suite = group.id.slice(0, group.id.indexOf("/"));
  const start = performance.now();
  const rec = new CaseRecorder();
  if (group.skip !== undefined) rec.skip(group.skip);
  else {
    try {
      group.run(rec, context);
    } catch (error) {
      rec.fail(`aborted: ${describeError(error)}`);
    }
  }
  const verdict = verdictOf(group, rec);
  return {
    id: group.id,
    suite,
    description: group.description,
    verdict,
    cases: verdict === VERDICT.SKIP ? 0 : rec.count,
    planned: group.cases,
    failures: verdict === VERDICT.SKIP ? 0 : rec.failed,
    messages: rec.messages,
    reason: verdict === VERDICT.SKIP ? rec.skipReason : (group.xfail ?? null),
    ms: performance.now() - start,
  };
}

function describeError(error: unknown): string {
  if (error instanceof Error) {
    const frame = error.stack?.split("\n").find((line) => line.trim().startsWith("at "));
    return `${error.name}: ${error.message}${frame === undefined ? "" : ` (${frame.trim()})`}`;
  }
  return String(error);
}

/** Sums a run's results. */
export function totalsOf(groups: readonly GroupResult[]): RunTotals {
  let tests = 0;
  let unexpected = 0;
  let expected = 0;
  let skippedGroups = 0;
  let skippedTests = 0;
  let failedGroups = 0;
  for (const g of groups) {
    tests += g.cases;
    switch (g.verdict) {
      case VERDICT.FAIL:
        unexpected += g.failures;
        failedGroups++;
        break;
      case VERDICT.XPASS:
        unexpected += 1;
        failedGroups++;
        break;
      case VERDICT.XFAIL:
        expected += g.failures;
        break;
      case VERDICT.SKIP:
        skippedGroups++;
        skippedTests += g.planned;
        break;
    }
  }
  return {
    groups: groups.length,
    tests,
    unexpectedFailures: unexpected,
    expectedFailures: expected,
    skippedGroups,
    skippedTests,
    failedGroups,
  };
}

/** Runs every selected group against the model and reports. */
export function runSuites(options: RunOptions): RunReport {
  const start = performance.now();
  const context = suiteContext(options);
  const groups = selectGroups(options, context);
  const results: GroupResult[] = [];
  groups.forEach((group, index) => {
    options.onProgress?.({ kind: "start", index, total: groups.length, group });
    const result = runGroup(group, context);
    results.push(result);
    options.onProgress?.({ kind: "end", index, total: groups.length, result });
  });
  return {
    model: options.model.name,
    preset: context.preset,
    flags: formatFlags(context.flags),
    full: context.full,
    seed: context.seed,
    groups: results,
    totals: totalsOf(results),
    ms: performance.now() - start,
  };
}

/** Exit status of a run: 0 only when nothing failed (FAIL or XPASS). */
export function exitCodeOf(report: RunReport): number {
  return report.totals.failedGroups === 0 ? 0 : 1;
}
