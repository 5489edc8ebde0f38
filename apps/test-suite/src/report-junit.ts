import { type GroupResult, type RunReport, VERDICT } from "./runner";

/** Escapes text for XML content and attribute values. */
export function xmlEscape(text: string): string {
  let out = "";
  for (const ch of text) {
    const code = ch.charCodeAt(0);
    // XML 1.0 allows no control characters but tab, line feed and carriage return.
    if (code < 0x20 && code !== 0x9 && code !== 0xa && code !== 0xd) continue;
    if (ch === "&") out += "&amp;";
    else if (ch === "<") out += "&lt;";
    else if (ch === ">") out += "&gt;";
    else if (ch === '"') out += "&quot;";
    else if (ch === "'") out += "&apos;";
    else out += ch;
  }
  return out;
}

function time(ms: number): string {
  return (ms / 1000).toFixed(3);
}

function testcase(g: GroupResult): string[] {
  const open = `    <testcase classname="${xmlEscape(g.suite)}" name="${xmlEscape(g.id)}" time="${time(g.ms)}">`;
  const body: string[] = [];
  const detail = xmlEscape(g.messages.join("\n"));
  switch (g.verdict) {
    case VERDICT.PASS:
      return [`${open.slice(0, -1)}/>`];
    case VERDICT.SKIP:
      body.push(`      <skipped message="${xmlEscape(g.reason ?? "")}"/>`);
      break;
    case VERDICT.XFAIL:
      body.push(
        `      <skipped message="${xmlEscape(`expected failure: ${g.reason ?? ""}`)}">${detail}</skipped>`,
      );
      break;
    case VERDICT.XPASS:
      body.push(
        `      <failure type="XPASS" message="${xmlEscape(`expected to fail but passed: ${g.reason ?? ""}`)}"/>`,
      );
      break;
    case VERDICT.FAIL:
      body.push(
        `      <failure type="FAIL" message="${xmlEscape(`${g.failures} of ${g.cases} cases failed: ${g.messages[0] ?? ""}`)}">${detail}</failure>`,
      );
      break;
  }
  return [open, ...body, "    </testcase>"];
}

/** The report as JUnit XML: one <testsuite> per suite, one <testcase> per case group. */
export function formatJunit(report: RunReport): string {
  const bySuite = new Map<string, GroupResult[]>();
  for (const g of report.groups) {
    const list = bySuite.get(g.suite) ?? [];
    list.push(g);
    bySuite.set(g.suite, list);
  }
  const failures = (gs: readonly GroupResult[]) =>
    gs.filter((g) => g.verdict === VERDICT.FAIL || g.verdict === VERDICT.XPASS).length;
  const skipped = (gs: readonly GroupResult[]) =>
    gs.filter((g) => g.verdict === VERDICT.SKIP || g.verdict === VERDICT.XFAIL).length;
  const lines = ['<?xml version="1.0" encoding="UTF-8"?>'];
  lines.push(
    `<testsuites name="nestvisor-test-suite" tests="${report.groups.length}" failures="${failures(report.groups)}" skipped="${skipped(report.groups)}" time="${time(report.ms)}">`,
  );
  for (const [suite, groups] of bySuite) {
    const ms = groups.reduce((n, g) => n + g.ms, 0);
    lines.push(
      `  <testsuite name="${xmlEscape(suite)}" tests="${groups.length}" failures="${failures(groups)}" errors="0" skipped="${skipped(groups)}" time="${time(ms)}">`,
    );
    lines.push(
      "    <properties>",
      `      <property name="model" value="${xmlEscape(report.model)}"/>`,
      `      <property name="preset" value="${xmlEscape(report.preset)}"/>`,
      `      <property name="cases" value="${groups.reduce((n, g) => n + g.cases, 0)}"/>`,
      "    </properties>",
    );
    for (const g of groups) lines.push(...testcase(g));
    lines.push("  </testsuite>");
  }
  lines.push("</testsuites>");
  return `${lines.join("\n")}\n`;
}
