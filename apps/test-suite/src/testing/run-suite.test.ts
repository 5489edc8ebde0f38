import { describe, expect, it } from "vitest";
import { KVM_MODEL } from "../kvm-model";
import type { Suite } from "../suite";
import { modelWith, runSuite, verdicts } from "./run-suite";

const TOY: Suite = {
  name: "toy",
  description: "",
  groups: (ctx) => [
    {
      id: "toy/flags",
      description: "",
      cases: 1,
      run: (rec) => rec.check(ctx.flags.controlsShadow, () => "controlsShadow off"),
    },
  ],
};

describe("test helpers", () => {
  it("runSuite applies the preset and flags; verdicts summarises", () => {
    expect(verdicts(runSuite(TOY, /toy/))).toEqual(["toy/flags PASS"]);
    expect(verdicts(runSuite(TOY, /toy/, { preset: "none" }))).toEqual(["toy/flags FAIL"]);
    expect(verdicts(runSuite(TOY, /toy/, { preset: "none", flags: { controlsShadow: true } }))).toEqual([
      "toy/flags PASS",
    ]);
  });

  it("modelWith keeps the other hooks", () => {
    const m = modelWith("x", { vcpuMmu: KVM_MODEL.hooks!.vcpuMmu! });
    expect(m.name).toBe("x");
    expect(m.hooks?.pageWalker).toBe(KVM_MODEL.hooks?.pageWalker);
  });
});
