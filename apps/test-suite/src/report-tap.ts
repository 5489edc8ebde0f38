import { type GroupResult, type RunReport, VERDICT } from "./runner";

/** A YAML double-quoted scalar (TAP 14 diagnostics are YAML). */
function yamlString(text: string): string {
  return JSON.stringify(text);
}

/** A TAP description may not contain "#" unescaped (it starts a directive). */
function description(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/#/g, "\\#");
}

function testPoint(g: GroupResult, n: number): string[] {
  const name = description(g.id);
  switch (g.verdict) {
    case VERDICT.PASS:
      return [`ok ${n} - ${name} # ${g.cases} cases`];
    case VERDICT.SKIP:
      return [`ok ${n} - ${name} # SKIP ${description(g.reason ?? "")}`];
    case VERDICT.XPASS:
      // A passing TODO is not a failure in TAP; the exit status still counts it (kvm-unit-tests' XPASS).
      return [`ok ${n} - ${name} # TODO expected to fail: ${description(g.reason ?? "")}`];
    case VERDICT.XFAIL:
    case VERDICT.FAIL: {
      const head =
        g.verdict === VERDICT.XFAIL
          ? `not ok ${n} - ${name} # TODO ${description(g.reason ?? "")}`
          : `not ok ${n} - ${name}`;
      const lines = [
        head,
        "  ---",
        `  message: ${yamlString(g.messages[0] ?? "failed")}`,
        `  cases: ${g.cases}`,
        `  failures: ${g.failures}`,
      ];
      if (g.messages.length > 1) {
        lines.push("  messages:");
        for (const m of g.messages) lines.push(`    - ${yamlString(m)}`);
      }
      lines.push(`  duration_ms: ${Math.round(g.ms)}`, "  ...");
      return lines;
    }
  }
}

/** The report as TAP version 14: one test point per case group. */
export function formatTap(report: RunReport): string {
  const lines = ["TAP version 14", `1..${report.groups.length}`];
  lines.push(
    `# model ${report.model}, preset ${report.preset}${report.full ? ", full" : ""}, seed ${report.seed}`,
  );
  report.groups.forEach((g, i) => {
    lines.push(...testPoint(g, i + 1));
  });
  const t = report.totals;
  lines.push(
    `# SUMMARY: ${t.tests} tests, ${t.unexpectedFailures} unexpected failures, ${t.expectedFailures} expected failures, ${t.skippedTests} skipped`,
  );
  return `${lines.join("\n")}\n`;
}
