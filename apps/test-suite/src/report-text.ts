import { type GroupResult, type RunReport, VERDICT } from "./runner";

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

/**
 * One group in kvm-unit-tests' words (run_tests.sh prints `PASS name (N tests)`, `FAIL name (N tests,
 * M unexpected failures)`, `SKIP name (reason)`), then the first failure messages indented.
 */
export function formatGroupLine(g: GroupResult): string {
  switch (g.verdict) {
    case VERDICT.PASS:
      return `PASS ${g.id} (${plural(g.cases, "test")})`;
    case VERDICT.FAIL:
      return `FAIL ${g.id} (${plural(g.cases, "test")}, ${plural(g.failures, "unexpected failure")})`;
    case VERDICT.XFAIL:
      return `XFAIL ${g.id} (${plural(g.cases, "test")}, ${plural(g.failures, "expected failure")}: ${g.reason})`;
    case VERDICT.XPASS:
      return `XPASS ${g.id} (${plural(g.cases, "test")}; expected to fail: ${g.reason})`;
    case VERDICT.SKIP:
      return `SKIP ${g.id} (${g.reason})`;
  }
}

/** Per-suite lines: groups, case counts, failures and time. */
export function formatSuiteCounts(report: RunReport): string[] {
  const bySuite = new Map<string, GroupResult[]>();
  for (const g of report.groups) {
    const list = bySuite.get(g.suite) ?? [];
    list.push(g);
    bySuite.set(g.suite, list);
  }
  const lines: string[] = [];
  for (const [suite, groups] of bySuite) {
    const tests = groups.reduce((n, g) => n + g.cases, 0);
    const failed = groups.filter((g) => g.verdict === VERDICT.FAIL || g.verdict === VERDICT.XPASS).length;
    const skipped = groups.filter((g) => g.verdict === VERDICT.SKIP).length;
    const ms = groups.reduce((n, g) => n + g.ms, 0);
    const extra = [failed > 0 ? `${failed} failed` : "", skipped > 0 ? `${skipped} skipped` : ""]
      .filter((s) => s !== "")
      .join(", ");
    lines.push(
      `  ${suite.padEnd(13)} ${plural(groups.length, "group").padEnd(10)} ${String(tests).padStart(10)} tests  ${seconds(ms).padStart(8)}${extra === "" ? "" : `  (${extra})`}`,
    );
  }
  return lines;
}

/** kvm-unit-tests' closing line: `SUMMARY: N tests, M unexpected failures, K expected failures, S skipped`. */
export function formatSummary(report: RunReport): string {
  const t = report.totals;
  return (
    `SUMMARY: ${t.tests} tests, ${t.unexpectedFailures} unexpected failures, ` +
    `${t.expectedFailures} expected failures, ${t.skippedTests} skipped`
  );
}

/** The whole report as text (stdout of the default output). */
export function formatTextReport(report: RunReport): string {
  const lines: string[] = [];
  lines.push(
    `nestvisor-test-suite: model ${report.model}, preset ${report.preset}${report.full ? ", full" : ""}, seed ${report.seed}`,
  );
  for (const g of report.groups) {
    lines.push(formatGroupLine(g));
    if (g.verdict === VERDICT.FAIL || g.verdict === VERDICT.XFAIL) {
      for (const m of g.messages) lines.push(`    ${g.verdict === VERDICT.FAIL ? "FAIL" : "XFAIL"}: ${m}`);
      if (g.failures > g.messages.length) lines.push(`    … and ${g.failures - g.messages.length} more`);
    }
  }
  lines.push("case counts per suite:");
  lines.push(...formatSuiteCounts(report));
  lines.push(formatSummary(report));
  lines.push(`${report.totals.failedGroups === 0 ? "PASS" : "FAIL"} in ${seconds(report.ms)}`);
  return `${lines.join("\n")}\n`;
}
