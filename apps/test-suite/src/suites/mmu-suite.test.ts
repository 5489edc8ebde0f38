import { createModel } from "@nestvisor/hypervisor";
import { KVM_ROOT_CACHE, kvmRootCacheWithSize, MMU_EVENTS, mmuFlags, VcpuMmu } from "@nestvisor/mmu";
import { CountingMeter } from "@nestvisor/vmx";
import { CR0, CR4, EFER } from "@nestvisor/x86-arch";
import { describe, expect, it } from "vitest";
import { specModelFactory } from "../spec-model";
import { runSuite, verdicts } from "../testing/run-suite";
import { checkActiveRoot, MMU_SUITE } from "./mmu-suite";
import { SuiteRootBackend } from "./suite-root-backend";

describe("mmu suite (kvm-mmu.md §6.3, §7)", () => {
  for (const preset of ["none", "v4.20", "v5.7", "v6.12", "all"]) {
    it(`passes on the project's model under ${preset}`, () => {
      expect(verdicts(runSuite(MMU_SUITE, /^mmu\//, { preset }))).toEqual([
        "mmu/round-trips PASS",
        "mmu/root-cache-table PASS",
        "mmu/root-role-invariant PASS",
      ]);
    });
  }

  it("the invariant group covers the run's flags plus each flag flipped, with TDP and shadow paging", () => {
    const [g] = runSuite(MMU_SUITE, /invariant/);
    expect(g!.cases).toBe(18 * 400); // (the run's flags + 8 flipped) × TDP/shadow paging
    expect(g!.description).toMatch(/18 flag configurations/);
  });
});

describe("mmu suite with the model's root-cache policy", () => {
  const withCache = (prev: number) =>
    specModelFactory(createModel({ policies: { rootCache: kvmRootCacheWithSize(prev) } }), "test");

  it("every VcpuMmu gets the policy, and the cases that fill the cache are sized to it", () => {
    for (const prev of [3, 8, 16]) {
      const groups = runSuite(MMU_SUITE, /^mmu\//, { model: withCache(prev) });
      expect(verdicts(groups), `${prev} previous roots`).toEqual([
        "mmu/round-trips PASS",
        "mmu/root-cache-table PASS",
        "mmu/root-role-invariant PASS",
      ]);
      expect(groups[0]!.cases).toBe(9);
      expect(groups[0]!.description).toContain(`(root cache "kvm-${prev}-prev", ${prev} previous roots)`);
    }
    // KVM's own: the worked numbers of kvm-mmu.md (4 CR3s thrash 3 slots).
    const [g] = runSuite(MMU_SUITE, /^mmu\/round-trips$/, {
      model: specModelFactory(createModel({ policies: { rootCache: KVM_ROOT_CACHE } }), "test"),
    });
    expect(g!.description).not.toMatch(/root cache "/);
  });

  it("a cache too small for a case leaves the case out and says so", () => {
    const [g] = runSuite(MMU_SUITE, /^mmu\/round-trips$/, { model: withCache(1) });
    expect(g!.verdict).toBe("PASS");
    expect(g!.cases).toBe(7);
    expect(g!.description).toMatch(/1 previous roots; 2 cases need more and are not run\)$/);
  });
});

describe("checkActiveRoot", () => {
  const regs = {
    cr0: (CR0.PE | CR0.PG | CR0.WP) >>> 0,
    cr3: 0x10_0000,
    cr4: CR4.PAE,
    efer: EFER.LME | EFER.LMA | EFER.NXE,
  };

  it("accepts the root a correct MMU loads, and names the role difference of a wrong one", () => {
    const backend = new SuiteRootBackend();
    const vcpu = new VcpuMmu({ backend, meter: new CountingMeter([MMU_EVENTS]), flags: mmuFlags({}) });
    vcpu.setSregs(regs);
    vcpu.reload();
    expect(checkActiveRoot(vcpu, backend, "set-up")).toBeNull();
    // Swap in a root of another role behind the context's back.
    const other = backend.allocDirectRoot((vcpu.mmu.rootRole | 0x20000) >>> 0);
    vcpu.mmu.rootHpa = other;
    expect(checkActiveRoot(vcpu, backend, "the swap")).toMatch(
      /after the swap: root_mmu's current root .* \(guest_mode true instead of false\)/,
    );
  });

  it("reports a missing root at VM entry", () => {
    const backend = new SuiteRootBackend();
    const vcpu = new VcpuMmu({ backend, flags: mmuFlags({}) });
    vcpu.setSregs(regs);
    expect(checkActiveRoot(vcpu, backend, "boot")).toMatch(/has no root at VM entry/);
  });
});
