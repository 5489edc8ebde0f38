import { MMU_EVENTS, mmuFlags, VcpuMmu } from "@nestvisor/mmu";
import { CountingMeter } from "@nestvisor/vmx";
import { CR0, CR4, EFER } from "@nestvisor/x86-arch";
import { describe, expect, it } from "vitest";
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
    expect(g!.cases).toBe(16 * 400);
    expect(g!.description).toMatch(/16 flag configurations/);
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
