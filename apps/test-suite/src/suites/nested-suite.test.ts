import { describe, expect, it } from "vitest";
import { KVM_MODEL } from "../kvm-model";
import type { ModelFactory } from "../model";
import { runSuite, verdicts } from "../testing/run-suite";
import { NESTED_SUITE } from "./nested-suite";

describe("nested suite", () => {
  for (const preset of ["none", "v5.3", "v6.12", "all"]) {
    it(`passes on the project's model under ${preset}`, () => {
      expect(verdicts(runSuite(NESTED_SUITE, /^nested\//, { preset }))).toEqual([
        "nested/vmcs12-after-exit PASS",
        "nested/machine-exits PASS",
      ]);
    });
  }

  it("skips the machine group for a model whose machines expose no levels", () => {
    const model: ModelFactory = {
      name: "opaque",
      createMachine: (o) => {
        const m = KVM_MODEL.createMachine(o);
        return { level: m.level, run: () => m.run(), snapshot: () => m.snapshot() };
      },
    };
    const [g] = runSuite(NESTED_SUITE, /machine-exits/, { model });
    expect(g!.verdict).toBe("SKIP");
    expect(g!.reason).toMatch(/ModelMachine.levels/);
  });
});
