import { KVM_MODEL } from "../kvm-model";
import type { ModelFactory, ModelHooks } from "../model";
import { type GroupResult, runSuites } from "../runner";
import type { Suite } from "../suite";

/** Test helper: the groups of `suite` whose id matches `filter`, run against a model. */
export function runSuite(
  suite: Suite,
  filter: RegExp,
  options: { model?: ModelFactory; preset?: string; flags?: Record<string, boolean>; full?: boolean } = {},
): readonly GroupResult[] {
  return runSuites({
    model: options.model ?? KVM_MODEL,
    suites: [suite],
    filter,
    ...(options.preset === undefined ? {} : { preset: options.preset }),
    ...(options.flags === undefined ? {} : { flags: options.flags }),
    ...(options.full === undefined ? {} : { full: options.full }),
  }).groups;
}

/** Test helper: the project's model with some hooks replaced. */
export function modelWith(name: string, hooks: ModelHooks): ModelFactory {
  return { ...KVM_MODEL, name, hooks: { ...KVM_MODEL.hooks, ...hooks } };
}

/** "id verdict" lines, for compact assertions. */
export function verdicts(groups: readonly GroupResult[]): string[] {
  return groups.map((g) => `${g.id} ${g.verdict}`);
}
