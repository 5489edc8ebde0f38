import { describe, expect, it } from "vitest";
import { modelWith, runSuite, verdicts } from "../testing/run-suite";
import { VMX_CHECKS_SUITE } from "./vmx-checks-suite";

const GROUPS = [
  "control-bits",
  "cr3-targets",
  "addresses",
  "apic-virtualization",
  "misc-controls",
  "eptp",
  "msr-lists",
  "event-injection",
  "host-state",
  "guest-state",
];

describe("vmx-checks suite (vmx-tests.md §5–7)", () => {
  for (const preset of ["none", "v6.12"]) {
    it(`passes on the project's model under ${preset}`, () => {
      const groups = runSuite(VMX_CHECKS_SUITE, /^vmx-checks\//, { preset });
      expect(verdicts(groups)).toEqual(GROUPS.map((g) => `vmx-checks/${g} PASS`));
      expect(groups.reduce((n, g) => n + g.cases, 0)).toBeGreaterThan(1500);
    });
  }

  it("a checker that accepts everything fails with what L1 saw, what it should have seen", () => {
    const model = modelWith("accept-all", { entryChecker: () => ({ check: () => ({ ok: true }) }) });
    const groups = runSuite(VMX_CHECKS_SUITE, /^vmx-checks\/(host-state|guest-state)$/, { model });
    expect(verdicts(groups)).toEqual(["vmx-checks/host-state FAIL", "vmx-checks/guest-state FAIL"]);
    expect(groups[0]!.messages[0]).toMatch(
      /^6\.1–6\.3 HOST_CR0 bit \d+ at its illegal value: L1 saw the guest running, expected VMfailValid\(8\)$/,
    );
    expect(groups[1]!.messages.join("\n")).toMatch(
      /non-canonical: L1 saw the guest running, expected an entry-failure exit 33 with qualification 0/,
    );
  });
});
