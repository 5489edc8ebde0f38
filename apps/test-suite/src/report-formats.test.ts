import { describe, expect, it } from "vitest";
import { KVM_MODEL } from "./kvm-model";
import { formatJunit, xmlEscape } from "./report-junit";
import { formatTap } from "./report-tap";
import { formatGroupLine, formatSummary, formatTextReport } from "./report-text";
import { type RunReport, runSuites } from "./runner";
import type { Suite } from "./suite";

const SUITE: Suite = {
  name: "toy",
  description: "",
  groups: () => [
    { id: "toy/pass", description: "", cases: 3, run: (rec) => rec.pass(3) },
    {
      id: "toy/fail",
      description: "",
      cases: 2,
      run: (rec) => {
        rec.pass();
        rec.fail('a <bad> "cause" # here');
      },
    },
    { id: "toy/xfail", description: "", cases: 1, xfail: "known", run: (rec) => rec.fail("expected") },
    { id: "toy/skip", description: "", cases: 5, skip: "not modelled", run: () => undefined },
  ],
};

function report(): RunReport {
  return runSuites({ model: KVM_MODEL, suites: [SUITE] });
}

describe("text report (kvm-unit-tests' words)", () => {
  it("prints PASS/FAIL/XFAIL/SKIP per group, the failures, counts per suite and the summary line", () => {
    const text = formatTextReport(report());
    expect(text).toContain("PASS toy/pass (3 tests)");
    expect(text).toContain("FAIL toy/fail (2 tests, 1 unexpected failure)");
    expect(text).toContain('    FAIL: a <bad> "cause" # here');
    expect(text).toContain("XFAIL toy/xfail (1 test, 1 expected failure: known)");
    expect(text).toContain("SKIP toy/skip (not modelled)");
    expect(text).toMatch(/ {2}toy +4 groups +6 tests/);
    expect(text).toContain("SUMMARY: 6 tests, 1 unexpected failures, 1 expected failures, 5 skipped");
    expect(text.trimEnd().split("\n").at(-1)).toMatch(/^FAIL in /);
    expect(formatSummary(report())).toMatch(/^SUMMARY: /);
    expect(formatGroupLine({ ...report().groups[0]!, verdict: "XPASS", reason: "r" })).toBe(
      "XPASS toy/pass (3 tests; expected to fail: r)",
    );
  });
});

describe("TAP 14", () => {
  it("has the version line, the plan, one point per group with SKIP/TODO directives and YAML diagnostics", () => {
    const lines = formatTap(report()).trimEnd().split("\n");
    expect(lines[0]).toBe("TAP version 14");
    expect(lines[1]).toBe("1..4");
    expect(lines).toContain("ok 1 - toy/pass # 3 cases");
    expect(lines).toContain("not ok 2 - toy/fail");
    const i = lines.indexOf("not ok 2 - toy/fail");
    expect(lines[i + 1]).toBe("  ---");
    expect(lines[i + 2]).toBe('  message: "a <bad> \\"cause\\" # here"');
    expect(lines).toContain("  ...");
    expect(lines).toContain("not ok 3 - toy/xfail # TODO known");
    expect(lines).toContain("ok 4 - toy/skip # SKIP not modelled");
    expect(lines.at(-1)).toMatch(/^# SUMMARY: /);
  });
});

describe("JUnit XML", () => {
  it("has one testsuite per suite and one testcase per group, escaped", () => {
    const xml = formatJunit(report());
    expect(xml.startsWith('<?xml version="1.0" encoding="UTF-8"?>')).toBe(true);
    expect(xml).toContain('<testsuites name="nestvisor-test-suite" tests="4" failures="1" skipped="2"');
    expect(xml).toContain('<testsuite name="toy" tests="4" failures="1" errors="0" skipped="2"');
    expect(xml).toMatch(/<testcase classname="toy" name="toy\/pass" time="[\d.]+"\/>/);
    expect(xml).toContain("a &lt;bad&gt; &quot;cause&quot; # here");
    expect(xml).toContain('<skipped message="not modelled"/>');
    expect(xml).toContain("expected failure: known");
    expect(xml.match(/<testcase /g)).toHaveLength(4);
  });

  it("escapes every XML special character and drops control characters", () => {
    expect(xmlEscape(`<&>"'\u0001x`)).toBe("&lt;&amp;&gt;&quot;&apos;x");
  });
});
