import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { loadModel } from "./load-model";
import { DIFFERENTIAL_SUITE, MMU_SUITE, NESTED_SUITE } from "./suites";
import { runSuite, verdicts } from "./testing/run-suite";

const EXAMPLES = resolve(import.meta.dirname, "../../../examples/models");

describe("the deliberately broken example models make the suite fail, pointing at the cause", () => {
  it("a root cache that ignores the role: the mmu suite names is_root_usable and the role bit", async () => {
    const model = await loadModel(`${EXAMPLES}/broken-root-cache.mjs`);
    const groups = runSuite(MMU_SUITE, /^mmu\//, { model });
    expect(verdicts(groups)).toEqual([
      "mmu/round-trips FAIL",
      "mmu/root-cache-table FAIL",
      "mmu/root-role-invariant FAIL",
    ]);
    const invariant = groups.find((g) => g.id === "mmu/root-role-invariant")!;
    expect(invariant.messages[0]).toMatch(
      /after a nested VM entry without EPT12 .*root_mmu's current root 0x[0-9a-f]+ has role 0x[0-9a-f]+ but the context's root role is 0x[0-9a-f]+ \(guest_mode false instead of true\): the root cache handed out a root without comparing its role \(kvm: is_root_usable\)/,
    );
    // The project's model passes the same groups.
    expect(verdicts(runSuite(MMU_SUITE, /^mmu\//))).toEqual([
      "mmu/round-trips PASS",
      "mmu/root-cache-table PASS",
      "mmu/root-role-invariant PASS",
    ]);
  });

  it("a ModelSpec whose root-cache policy matches by PGD only: the mmu suite names is_root_usable", async () => {
    const model = await loadModel(`${EXAMPLES}/broken-root-cache-policy.mjs`);
    expect(model.policies?.rootCache?.name).toBe("role-blind");
    const groups = runSuite(MMU_SUITE, /^mmu\//, { model });
    expect(verdicts(groups)).toEqual([
      "mmu/round-trips FAIL",
      "mmu/root-cache-table FAIL",
      "mmu/root-role-invariant FAIL",
    ]);
    const invariant = groups.find((g) => g.id === "mmu/root-role-invariant")!;
    expect(invariant.messages[0]).toMatch(
      /^the run's flags, TDP, step \d+: after a nested VM entry without EPT12 .*root_mmu's current root 0x[0-9a-f]+ has role 0x[0-9a-f]+ but the context's root role is 0x[0-9a-f]+ \(guest_mode false instead of true\): the root cache handed out a root without comparing its role \(kvm: is_root_usable\)$/,
    );
    // The policy runs in the model's machines too: with L0's guest_mmu and root_mmu one context
    // (splitGuestMmu off), L1 is handed L2's shadow-EPT root after a nested exit.
    // (cr3_switch is one of the two workloads whose variants flip splitGuestMmu, see variantsFor.)
    const [cr3Switch] = runSuite(DIFFERENTIAL_SUITE, /^differential\/cr3_switch$/, { model });
    expect(cr3Switch!.verdict).toBe("FAIL");
    expect(cr3Switch!.messages[0]).toMatch(
      /^L2, splitGuestMmu=off at L0: the machine failed: 0x[0-9a-f]+ is not a TDP MMU root$/,
    );
  });

  it("a lazy sync that forgets a field: the nested suite names the field and copy_vmcs02_to_vmcs12_rare", async () => {
    const model = await loadModel(`${EXAMPLES}/forgetful-rare-sync.mjs`);
    const groups = runSuite(NESTED_SUITE, /^nested\/vmcs12-after-exit$/, { model });
    expect(groups[0]!.verdict).toBe("FAIL");
    expect(groups[0]!.failures).toBe(6); // once per exit kind
    expect(groups[0]!.messages[0]).toBe(
      "after the CPUID exit, L1 read GUEST_ES_SELECTOR = 0x10, expected 0x2b (what L2 left in vmcs02: a rare field the lazy sync must pull when L1 reads it, kvm: copy_vmcs02_to_vmcs12_rare)",
    );
  });

  it("without lazy rare sync (flag C off) the forgetful model has nothing to forget and passes", async () => {
    const model = await loadModel(`${EXAMPLES}/forgetful-rare-sync.mjs`);
    const groups = runSuite(NESTED_SUITE, /^nested\/vmcs12-after-exit$/, {
      model,
      flags: { lazyRareGuestSync: false },
    });
    expect(groups[0]!.verdict).toBe("PASS");
  });
});
