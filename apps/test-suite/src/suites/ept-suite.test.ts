import {
  EPT_OUTCOME,
  type EptContext,
  EptWalker,
  type EptWalkerOptions,
  type PhysicalMemory,
} from "@nestvisor/x86-arch";
import { describe, expect, it } from "vitest";
import { modelWith, runSuite, verdicts } from "../testing/run-suite";
import { EPT_SUITE } from "./ept-suite";

/** An EPT walker that reports misconfigurations as not-present violations. */
class NoMisconfig extends EptWalker {
  override walk(ctx: EptContext, gpa: number, access: number, linear = 0): boolean {
    const ok = super.walk(ctx, gpa, access, linear);
    if (this.result.outcome === EPT_OUTCOME.MISCONFIG) {
      this.result.outcome = EPT_OUTCOME.VIOLATION;
      this.result.qualification = access | linear;
    }
    return ok;
  }
}

describe("ept suite (vmx-tests.md §8)", () => {
  it("passes on the project's model", () => {
    expect(verdicts(runSuite(EPT_SUITE, /^ept\//))).toEqual([
      "ept/access-rights PASS",
      "ept/reserved-bits PASS",
      "ept/paddr PASS",
      "ept/nested-access-rights PASS",
      "ept/nested-reserved-bits PASS",
    ]);
  });

  it("a walker without misconfigurations fails on -W- and on reserved bits", () => {
    const model = modelWith("no-misconfig", {
      eptWalker: (m: PhysicalMemory, o: EptWalkerOptions) => new NoMisconfig(m, o),
    });
    const groups = runSuite(EPT_SUITE, /^ept\/(access-rights|reserved-bits)$/, { model });
    expect(verdicts(groups)).toEqual(["ept/access-rights FAIL", "ept/reserved-bits FAIL"]);
    expect(groups[0]!.messages[0]).toMatch(
      /^level 4 -W-, read: an EPT violation \(exit 48\) with qualification 0x181, expected an EPT misconfiguration \(exit 49\)$/,
    );
  });
});
