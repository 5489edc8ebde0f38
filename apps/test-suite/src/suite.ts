import type { HypervisorFlags } from "@nestvisor/hypervisor";
import type { CaseRecorder } from "./case-recorder";
import type { ModelFactory } from "./model";
import type { ModelParts } from "./model-parts";

/** What every group runs against: the model, its parts, and the configuration chosen for the run. */
export interface SuiteContext {
  readonly model: ModelFactory;
  readonly parts: ModelParts;
  /** The preset's flags with the `--flag` overrides applied (the baseline of every suite). */
  readonly flags: HypervisorFlags;
  /** The preset name (`--preset`, default today's). */
  readonly preset: string;
  /** `--full`: the exhaustive matrices instead of the fast default's samples. */
  readonly full: boolean;
  /** Seed of every random choice (workloads, samples); same seed, same cases. */
  readonly seed: number;
}

/**
 * One case group: the unit kvm-unit-tests reports as PASS/FAIL/XFAIL/SKIP. Its id is
 * `suite/name`; `cases` is how many cases `run` records (the `--list` count).
 */
export interface CaseGroup {
  readonly id: string;
  readonly description: string;
  readonly cases: number;
  /** A known deviation of the model: the group is expected to fail (XFAIL); passing is XPASS. */
  readonly xfail?: string;
  /** Why the group cannot run in this configuration (reported SKIP without running). */
  readonly skip?: string;
  run(rec: CaseRecorder, ctx: SuiteContext): void;
}

/** A suite: a port of a peer suite's cases, or a property of our own, as case groups. */
export interface Suite {
  readonly name: string;
  readonly description: string;
  groups(ctx: SuiteContext): readonly CaseGroup[];
}
