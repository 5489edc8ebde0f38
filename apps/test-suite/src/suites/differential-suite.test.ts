import { COST_CATALOGS, guestStateSnapshot, Machine } from "@nestvisor/hypervisor";
import { CountingMeter, VMX_RESULT } from "@nestvisor/vmx";
import { describe, expect, it } from "vitest";
import { KVM_MODEL } from "../kvm-model";
import type { ModelFactory } from "../model";
import { runSuite, verdicts } from "../testing/run-suite";
import { DIFFERENTIAL_SUITE } from "./differential-suite";

describe("differential suite", () => {
  it("has one group per built-in workload and passes on the project's model", () => {
    const groups = runSuite(DIFFERENTIAL_SUITE, /^differential\/(cpuid|toggle_cr0_wp)$/);
    expect(verdicts(groups)).toEqual(["differential/cpuid PASS", "differential/toggle_cr0_wp PASS"]);
    // L1: 4 presets + 3 flags at L0; L2: each also everywhere.
    expect(groups[0]!.cases).toBe(7 + 14);
  });

  it("catches a model whose guest-visible state depends on a flag", () => {
    const leaky: ModelFactory = {
      name: "leaky",
      createMachine: (o) => {
        const m = KVM_MODEL.createMachine(o);
        return {
          level: m.level,
          run: () => m.run(),
          snapshot: () => {
            const s = m.snapshot();
            return o.config.controlsShadow ? s : { ...s, readDigest: (s.readDigest ^ 1) >>> 0 };
          },
        };
      },
    };
    const [g] = runSuite(DIFFERENTIAL_SUITE, /^differential\/cpuid$/, { model: leaky });
    expect(g!.verdict).toBe("FAIL");
    expect(g!.messages[0]).toMatch(
      /^L1, preset none at L0: snapshot\.readDigest: \d+ instead of \d+ \(a guest can tell; DESIGN\.md §2\.3\)$/,
    );
  });

  it("random address-space programs see the same state with EPT and on shadow paging, at L1 and L2, on 4-KiB and 2-MiB host pages", () => {
    const [g] = runSuite(DIFFERENTIAL_SUITE, /^differential\/paging-method$/);
    expect(g!.verdict).toBe("PASS");
    expect(g!.cases).toBe(24);
  });

  it("catches a hypervisor that skips its TLB flushes (a process reads through another's translation)", () => {
    const forgetful: ModelFactory = {
      name: "forgetful",
      createMachine: (o) => {
        const m = new Machine({
          program: o.program,
          config: o.config,
          ...(o.innerConfig === undefined ? {} : { innerConfig: o.innerConfig }),
          meter: new CountingMeter(COST_CATALOGS),
        });
        // The processor ignores INVVPID: shadow paging's flushes (kvm_invalidate_pcid, INVLPG's
        // flush_tlb_gva, handle_invvpid for L1) do nothing; EPT needs none of them here.
        m.hardware.invvpid = () => VMX_RESULT.SUCCEED;
        return { level: m.level, run: () => m.run(), snapshot: () => guestStateSnapshot(m) };
      },
    };
    const [g] = runSuite(DIFFERENTIAL_SUITE, /^differential\/paging-method$/, { model: forgetful });
    expect(g!.verdict).toBe("FAIL");
    expect(g!.messages[0]).toMatch(
      /^program \d+ \(\d+ steps(, PCIDs)?\) at L[12], (ept|l1Ept)=off( hugePages=on)?: snapshot\.(readDigest|memoryDigest): \d+ instead of \d+ \(the guest can tell how its memory is translated\)$/,
    );
  });

  it("skips what the runtime does not model (ept=off)", () => {
    const groups = runSuite(DIFFERENTIAL_SUITE, /^differential\/cpuid$/, { flags: { ept: false } });
    expect(groups[0]!.verdict).toBe("SKIP");
  });
});
