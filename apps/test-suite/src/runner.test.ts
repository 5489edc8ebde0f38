import { resolveFlags } from "@nestvisor/hypervisor";
import { describe, expect, it } from "vitest";
import { KVM_MODEL } from "./kvm-model";
import { exitCodeOf, runGroup, runSuites, selectGroups, suiteContext, totalsOf, VERDICT } from "./runner";
import type { CaseGroup, Suite } from "./suite";

function group(id: string, body: CaseGroup["run"], extra: Partial<CaseGroup> = {}): CaseGroup {
  return { id, description: id, cases: 2, run: body, ...extra };
}

const passTwo: CaseGroup["run"] = (rec) => rec.pass(2);
const failOne: CaseGroup["run"] = (rec) => {
  rec.pass();
  rec.fail("the cause");
};

const SUITE: Suite = {
  name: "toy",
  description: "toy suite",
  groups: () => [
    group("toy/pass", passTwo),
    group("toy/fail", failOne),
    group("toy/xfail", failOne, { xfail: "known deviation" }),
    group("toy/xpass", passTwo, { xfail: "known deviation" }),
    group("toy/skip", passTwo, { skip: "not modelled" }),
    group("toy/runtime-skip", (rec) => rec.skip("no levels")),
    group("toy/throws", () => {
      throw new RangeError("bad state");
    }),
  ],
};

describe("runner", () => {
  const options = { model: KVM_MODEL, suites: [SUITE] };

  it("gives each group kvm-unit-tests' verdict", () => {
    const report = runSuites(options);
    const verdicts = Object.fromEntries(report.groups.map((g) => [g.id, g.verdict]));
    expect(verdicts).toEqual({
      "toy/pass": VERDICT.PASS,
      "toy/fail": VERDICT.FAIL,
      "toy/xfail": VERDICT.XFAIL,
      "toy/xpass": VERDICT.XPASS,
      "toy/skip": VERDICT.SKIP,
      "toy/runtime-skip": VERDICT.SKIP,
      "toy/throws": VERDICT.FAIL,
    });
    const thrown = report.groups.find((g) => g.id === "toy/throws")!;
    expect(thrown.messages[0]).toMatch(/^aborted: RangeError: bad state/);
    expect(report.groups.find((g) => g.id === "toy/skip")!.reason).toBe("not modelled");
  });

  it("sums the totals: FAIL cases and XPASS groups are unexpected, XFAIL cases expected", () => {
    const report = runSuites(options);
    expect(report.totals).toEqual({
      groups: 7,
      tests: 2 + 2 + 2 + 2 + 0 + 0 + 1,
      unexpectedFailures: 1 + 1 + 1,
      expectedFailures: 1,
      skippedGroups: 2,
      skippedTests: 4,
      failedGroups: 3,
    });
    expect(exitCodeOf(report)).toBe(1);
  });

  it("exits 0 only when nothing failed", () => {
    const ok = runSuites({ ...options, filter: /toy\/(pass|xfail|skip)$/ });
    expect(ok.groups.map((g) => g.id)).toEqual(["toy/pass", "toy/xfail", "toy/skip"]);
    expect(exitCodeOf(ok)).toBe(0);
    expect(totalsOf([])).toMatchObject({ groups: 0, failedGroups: 0 });
  });

  it("reports progress before and after every group", () => {
    const events: string[] = [];
    runSuites({
      ...options,
      filter: /toy\/pass/,
      onProgress: (e) => events.push(`${e.kind} ${e.index}/${e.total}`),
    });
    expect(events).toEqual(["start 0/1", "end 0/1"]);
  });

  it("refuses a group whose id is not under its suite's name", () => {
    const bad: Suite = { name: "a", description: "", groups: () => [group("b/x", passTwo)] };
    expect(() => selectGroups({ model: KVM_MODEL, suites: [bad] })).toThrow(/must be named "a\/…"/);
  });

  it("builds the context from the preset and flag overrides", () => {
    const ctx = suiteContext({
      model: KVM_MODEL,
      suites: [],
      preset: "none",
      flags: { controlsShadow: true },
    });
    expect(ctx.flags.controlsShadow).toBe(true);
    expect(ctx.flags.readOnlyShadowFields).toBe(false);
    expect(ctx.full).toBe(false);
    expect(() => suiteContext({ model: KVM_MODEL, suites: [], preset: "v9.9" })).toThrow(
      /no preset models that kernel/,
    );
  });

  it("takes a model's own baseline (a ModelSpec's preset and flags) instead of preset and flags", () => {
    const config = resolveFlags("v5.3", { shadowVmcs: false });
    const model = { ...KVM_MODEL, name: "fixed", baseline: { preset: "v5.3", config } };
    const ctx = suiteContext({ model, suites: [], preset: "all", flags: { controlsShadow: true } });
    expect(ctx.preset).toBe("v5.3");
    expect(ctx.flags).toBe(config);
  });

  it("times each group and leaves a failing group's planned count visible", () => {
    const result = runGroup(group("toy/fail", failOne), suiteContext(options));
    expect(result.ms).toBeGreaterThanOrEqual(0);
    expect(result.planned).toBe(2);
    expect(result.failures).toBe(1);
  });
});
