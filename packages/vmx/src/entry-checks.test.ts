import {
  CR0,
  CR4,
  cpuFeatures,
  DenseMemory,
  EFER,
  MSR,
  type PhysicalMemory,
  RFLAGS,
} from "@nestvisor/x86-arch";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  controlsAllowed,
  EPT_VPID_CAP_LO,
  KVM_DEFAULT_VMX_CAPABILITIES,
  kvmNestedVmxCapabilities,
  MODERN_NESTED_HOST,
  nestedVmxHost,
  type VmxCapabilities,
} from "./capability-msrs";
import {
  CPU_BASED_CTLS,
  PIN_BASED_CTLS,
  SECONDARY_EXEC_CTLS,
  VM_ENTRY_CTLS,
  VM_EXIT_CTLS,
  vmxMiscMaxMsrListEntries,
} from "./controls";
import {
  DEFAULT_L0_HOST_FACTS,
  DEFAULT_L1_VCPU_FACTS,
  EntryCheckContext,
  type L0HostFacts,
  type L1VcpuFacts,
  l0HostFacts,
  l1VcpuFacts,
  type MsrWriter,
  type NestedEntryInput,
  type Vmcs12Reader,
} from "./entry-check-context";
import { ENTRY_CHECK_RULES, ENTRY_CHECK_STAGE, type EntryCheckRule } from "./entry-check-rules";
import {
  checkNestedVmEntry,
  checkNestedVmEntryAll,
  ENTRY_CHECK_OK,
  type EntryCheckFailure,
  type EntryCheckOutcome,
  type EntryCheckResult,
  entryCheckOutcome,
  entryFailureExitReason,
  formatEntryCheckFailure,
  NestedEntryChecker,
} from "./entry-checks";
import { baselineFixture, EntryFixture, FIXTURE_GPA } from "./testing/entry-fixture";
import { asGenericReader } from "./testing/generic-reader";
import { VMCS12_REVISION } from "./vmcs12-layout";

const P = PIN_BASED_CTLS;
const C = CPU_BASED_CTLS;
const S2 = SECONDARY_EXEC_CTLS;
const X = VM_EXIT_CTLS;
const N = VM_ENTRY_CTLS;

const MAXPHY = 46;
const VMFAIL7: EntryCheckOutcome = { kind: "vmfail", error: 7 };
const VMFAIL8: EntryCheckOutcome = { kind: "vmfail", error: 8 };
const exit33 = (qualification = 0): EntryCheckOutcome => ({
  kind: "entry-failure",
  exitReason: 33,
  qualification,
});
const exit34 = (qualification: number): EntryCheckOutcome => ({
  kind: "entry-failure",
  exitReason: 34,
  qualification,
});

/** Rules some test saw as the first failure; the last test checks every rule is among them. */
const exercised = new Set<string>();

function expectFailure(f: EntryFixture, ruleId: string, outcome: EntryCheckOutcome): void {
  const result = f.check();
  expect(result.ok ? "ok" : result.rule.id).toBe(ruleId);
  if (!result.ok) {
    expect(result.outcome).toEqual(outcome);
    exercised.add(result.rule.id);
  }
}

/** For a check another rule always shadows in KVM's order: it shows in the full report. */
function expectAmongFailures(f: EntryFixture, ruleId: string): void {
  expect(f.checkAll().map((x) => x.rule.id)).toContain(ruleId);
  exercised.add(ruleId);
}

function expectOk(f: EntryFixture): void {
  const result = f.check();
  expect(result.ok ? "ok" : result.rule.id).toBe("ok");
}

/** kvm-unit-tests' "valid" for control tests: no VMfail (the entry reached the guest-state checks). */
function expectNoVmfail(f: EntryFixture): void {
  const result = f.check();
  expect(result.ok || result.outcome.kind === "entry-failure").toBe(true);
}

const NONCANONICAL = 0xaaaaaaaaaaaaaaaan;
const EVENT = { VALID: 0x80000000, DELIVER_CODE: 0x800 } as const;
const inject = (type: number, vector: number, deliverCode = false): number =>
  (EVENT.VALID | (type << 8) | vector | (deliverCode ? EVENT.DELIVER_CODE : 0)) >>> 0;

/** Caps from a host that also has MPX (BNDCFGS controls). */
const MPX_CAPS = kvmNestedVmxCapabilities(
  nestedVmxHost({
    vmentryCtrl: MODERN_NESTED_HOST.vmentryCtrl | N.VM_ENTRY_LOAD_BNDCFGS,
    vmexitCtrl: MODERN_NESTED_HOST.vmexitCtrl | X.VM_EXIT_CLEAR_BNDCFGS,
  }),
);

function withSecondaryAllowed(bits: number): VmxCapabilities {
  const caps = KVM_DEFAULT_VMX_CAPABILITIES;
  return {
    ...caps,
    procbasedCtls2: { lo: caps.procbasedCtls2.lo, hi: (caps.procbasedCtls2.hi | bits) >>> 0 },
  };
}

describe("baseline (kvm-unit-tests init_vmcs, vmx-tests §0)", () => {
  it("passes every check", () => {
    const f = baselineFixture();
    expect(f.check()).toBe(ENTRY_CHECK_OK);
    expect(f.checkAll()).toEqual([]);
  });

  it("fails on guest state only when RFLAGS = 0 (the controls-valid trick)", () => {
    const f = baselineFixture().set("GUEST_RFLAGS", 0);
    expectFailure(f, "guest.rflags.reserved", exit33());
    const result = f.check();
    if (!result.ok) expect(entryFailureExitReason(result.outcome)).toBe(0x80000021);
  });
});

describe("vmx-tests §5.1: reserved control bits", () => {
  const classes = [
    { name: "pin", field: "PIN_BASED_VM_EXEC_CONTROL", msr: KVM_DEFAULT_VMX_CAPABILITIES.truePinbasedCtls },
    { name: "proc", field: "CPU_BASED_VM_EXEC_CONTROL", msr: KVM_DEFAULT_VMX_CAPABILITIES.trueProcbasedCtls },
    { name: "proc2", field: "SECONDARY_VM_EXEC_CONTROL", msr: KVM_DEFAULT_VMX_CAPABILITIES.procbasedCtls2 },
  ] as const;
  for (const cls of classes) {
    it(`${cls.name}: allowed-0 with one bit cleared is valid iff the bit is not required`, () => {
      for (let bit = 0; bit < 32; bit++) {
        const mask = 2 ** bit;
        const f = baselineFixture();
        if (cls.name === "proc2") f.secondary(0);
        const value = (cls.msr.lo & ~mask) >>> 0;
        f.set(cls.field, cls.name === "proc" ? value | C.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS : value);
        if ((cls.msr.lo & mask) !== 0) expectFailure(f, `controls.${cls.name}.reserved`, VMFAIL7);
        else expectOk(f);
      }
    });
    it(`${cls.name}: a bit outside allowed-1 fails`, () => {
      for (let bit = 0; bit < 32; bit++) {
        const mask = 2 ** bit;
        if ((cls.msr.hi & mask) !== 0) continue;
        const f = baselineFixture();
        if (cls.name === "proc2") f.secondary(0);
        f.setBits(cls.field, mask);
        expectFailure(f, `controls.${cls.name}.reserved`, VMFAIL7);
      }
    });
  }

  it("secondary controls are ignored while not activated (0xffffffff is valid)", () => {
    expectOk(baselineFixture().set("SECONDARY_VM_EXEC_CONTROL", 0xffffffff));
  });

  it("VM-exit and VM-entry controls outside the TRUE MSRs fail", () => {
    expectFailure(
      baselineFixture().setBits("VM_EXIT_CONTROLS", X.VM_EXIT_CLEAR_BNDCFGS),
      "controls.exit.reserved",
      VMFAIL7,
    );
    expectFailure(baselineFixture().clearBits("VM_EXIT_CONTROLS", 1 << 0), "controls.exit.reserved", VMFAIL7);
    expectFailure(
      baselineFixture().setBits("VM_ENTRY_CONTROLS", N.VM_ENTRY_SMM),
      "controls.entry.reserved",
      VMFAIL7,
    );
  });
});

/** Values kvm-unit-tests' test_vmcs_addr_reference writes: 1 << i, 0xfff, 0x1000, 2^MAXPHY − 4096, −1. */
function addressValues(): bigint[] {
  const values: bigint[] = [];
  for (let i = 0n; i < 64n; i++) values.push(1n << i);
  values.push(0xfffn, 0x1000n, (1n << BigInt(MAXPHY)) - 4096n, 0xffffffffffffffffn);
  return values;
}

function addressSweep(
  title: string,
  enable: (f: EntryFixture) => EntryFixture,
  field: string,
  alignment: bigint,
  ruleId: string,
): void {
  it(`${title}: valid iff ${alignment}-byte aligned and below 2^MAXPHYADDR`, () => {
    for (const value of addressValues()) {
      const f = enable(baselineFixture()).set(field, value);
      if (value % alignment === 0n && value < 1n << BigInt(MAXPHY)) expectOk(f);
      else expectFailure(f, ruleId, VMFAIL7);
    }
  });
}

const tprShadow = (f: EntryFixture): EntryFixture =>
  f
    .setBits("CPU_BASED_VM_EXEC_CONTROL", C.CPU_BASED_TPR_SHADOW)
    .set("VIRTUAL_APIC_PAGE_ADDR", FIXTURE_GPA.VIRTUAL_APIC);

const postedInterrupts = (f: EntryFixture): EntryFixture =>
  tprShadow(f)
    .secondary(S2.SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY)
    .setBits("PIN_BASED_VM_EXEC_CONTROL", P.PIN_BASED_POSTED_INTR)
    .setBits("VM_EXIT_CONTROLS", X.VM_EXIT_ACK_INTR_ON_EXIT)
    .set("POSTED_INTR_NV", 0xf2)
    .set("POSTED_INTR_DESC_ADDR", FIXTURE_GPA.POSTED_INTR_DESC);

describe("vmx-tests §5.2: control dependencies (VMfailValid 7)", () => {
  it("5.2.1 CR3-target count above IA32_VMX_MISC[24:16] (0 under KVM)", () => {
    expectOk(baselineFixture().set("CR3_TARGET_COUNT", 0));
    for (const count of [1, 0x7fffffff, 0x80000000, 0xffffffff]) {
      expectFailure(baselineFixture().set("CR3_TARGET_COUNT", count), "controls.cr3-target-count", VMFAIL7);
    }
  });

  const ioBitmaps = (f: EntryFixture) =>
    f
      .setBits("CPU_BASED_VM_EXEC_CONTROL", C.CPU_BASED_USE_IO_BITMAPS)
      .set("IO_BITMAP_A", FIXTURE_GPA.IO_BITMAP_A)
      .set("IO_BITMAP_B", FIXTURE_GPA.IO_BITMAP_B);
  addressSweep("5.2.3 I/O bitmap A", ioBitmaps, "IO_BITMAP_A", 4096n, "controls.io-bitmaps.address");
  addressSweep("5.2.3 I/O bitmap B", ioBitmaps, "IO_BITMAP_B", 4096n, "controls.io-bitmaps.address");
  it("5.2.3 with use-I/O-bitmaps clear every address is valid", () => {
    for (const value of addressValues()) expectOk(baselineFixture().set("IO_BITMAP_A", value));
  });
  addressSweep(
    "5.2.4 MSR bitmap",
    (f) => f.setBits("CPU_BASED_VM_EXEC_CONTROL", C.CPU_BASED_USE_MSR_BITMAPS),
    "MSR_BITMAP",
    4096n,
    "controls.msr-bitmap.address",
  );
  addressSweep(
    "5.2.5 virtual-APIC address (CR8 load/store exiting on)",
    (f) =>
      tprShadow(f).setBits(
        "CPU_BASED_VM_EXEC_CONTROL",
        C.CPU_BASED_CR8_LOAD_EXITING | C.CPU_BASED_CR8_STORE_EXITING,
      ),
    "VIRTUAL_APIC_PAGE_ADDR",
    4096n,
    "controls.virtual-apic.address",
  );
  addressSweep(
    "5.2.6 APIC-access address",
    (f) => f.secondary(S2.SECONDARY_EXEC_VIRTUALIZE_APIC_ACCESSES),
    "APIC_ACCESS_ADDR",
    4096n,
    "controls.apic-access.address",
  );

  it("5.2.7 APIC virtualization without use TPR shadow", () => {
    const bits = [
      S2.SECONDARY_EXEC_VIRTUALIZE_X2APIC_MODE,
      S2.SECONDARY_EXEC_APIC_REGISTER_VIRT,
      S2.SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY,
    ];
    for (let combo = 1; combo < 8; combo++) {
      const secondary = bits.reduce((acc, b, i) => ((combo >> i) & 1 ? acc | b : acc), 0);
      expectFailure(baselineFixture().secondary(secondary), "controls.apicv.needs-tpr-shadow", VMFAIL7);
      expectOk(tprShadow(baselineFixture()).secondary(secondary));
    }
  });

  it("5.2.8 virtualize x2APIC mode together with virtualize APIC accesses", () => {
    const x2 = S2.SECONDARY_EXEC_VIRTUALIZE_X2APIC_MODE;
    const access = S2.SECONDARY_EXEC_VIRTUALIZE_APIC_ACCESSES;
    const base = () => tprShadow(baselineFixture()).set("APIC_ACCESS_ADDR", FIXTURE_GPA.APIC_ACCESS);
    expectFailure(base().secondary(x2 | access), "controls.apicv.x2apic-and-apic-access", VMFAIL7);
    expectOk(base().secondary(x2));
    expectOk(base().secondary(access));
    expectOk(base().secondary(0));
  });

  it("5.2.9 virtual-interrupt delivery without external-interrupt exiting", () => {
    const f = tprShadow(baselineFixture())
      .secondary(S2.SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY)
      .clearBits("PIN_BASED_VM_EXEC_CONTROL", P.PIN_BASED_EXT_INTR_MASK);
    expectFailure(f, "controls.apicv.vid-needs-ext-intr-exiting", VMFAIL7);
  });

  it("5.2.10 posted interrupts need VID and acknowledge-interrupt-on-exit", () => {
    expectOk(postedInterrupts(baselineFixture()));
    expectFailure(
      postedInterrupts(baselineFixture()).clearBits(
        "SECONDARY_VM_EXEC_CONTROL",
        S2.SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY,
      ),
      "controls.posted-intr.needs-vid",
      VMFAIL7,
    );
    expectFailure(
      postedInterrupts(baselineFixture()).clearBits("VM_EXIT_CONTROLS", X.VM_EXIT_ACK_INTR_ON_EXIT),
      "controls.posted-intr.needs-ack-intr",
      VMFAIL7,
    );
  });

  it("5.2.11 posted-interrupt notification vector bits 15:8", () => {
    for (let i = 0; i < 16; i++) {
      const f = postedInterrupts(baselineFixture()).set("POSTED_INTR_NV", 1 << i);
      if (i < 8) expectOk(f);
      else expectFailure(f, "controls.posted-intr.vector", VMFAIL7);
    }
  });

  it("5.2.12 posted-interrupt descriptor address", () => {
    for (const bad of [1, 2, 4, 8, 0x10, 0x20, 0x0f, 0xf0, 0xff]) {
      expectFailure(
        postedInterrupts(baselineFixture()).set("POSTED_INTR_DESC_ADDR", FIXTURE_GPA.POSTED_INTR_DESC + bad),
        "controls.posted-intr.descriptor",
        VMFAIL7,
      );
    }
    for (const good of [0, 0x8000, 0xc000])
      expectOk(postedInterrupts(baselineFixture()).set("POSTED_INTR_DESC_ADDR", good));
  });
  addressSweep(
    "5.2.12 posted-interrupt descriptor sweep",
    postedInterrupts,
    "POSTED_INTR_DESC_ADDR",
    64n,
    "controls.posted-intr.descriptor",
  );

  it("5.2.13 enable VPID with VPID 0", () => {
    expectFailure(
      baselineFixture().secondary(S2.SECONDARY_EXEC_ENABLE_VPID).set("VIRTUAL_PROCESSOR_ID", 0),
      "controls.vpid.nonzero",
      VMFAIL7,
    );
    for (let i = 0; i < 16; i++) {
      expectOk(
        baselineFixture()
          .secondary(S2.SECONDARY_EXEC_ENABLE_VPID)
          .set("VIRTUAL_PROCESSOR_ID", 1 << i),
      );
    }
    expectOk(baselineFixture().set("VIRTUAL_PROCESSOR_ID", 0));
  });

  it("5.2.14 TPR threshold bits 31:4 with use TPR shadow and no VID (late hardware VM-Fail)", () => {
    for (const value of [0x10, 0x100, 0x1000, 2 ** 31, 0xffffffff, 0x7fffffff]) {
      expectFailure(
        tprShadow(baselineFixture()).set("TPR_THRESHOLD", value),
        "controls.tpr-threshold.reserved",
        VMFAIL7,
      );
    }
    // With virtual-interrupt delivery the threshold is not checked.
    expectOk(
      tprShadow(baselineFixture())
        .secondary(S2.SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY)
        .set("TPR_THRESHOLD", 0xffffffff),
    );
  });

  it("5.2.15 TPR threshold above VTPR[7:4]", () => {
    for (let threshold = 0; threshold < 16; threshold++) {
      for (const vtpr of [0x00, 0x50, 0xf0]) {
        const f = tprShadow(baselineFixture()).set("TPR_THRESHOLD", threshold);
        f.memory.write8(FIXTURE_GPA.VIRTUAL_APIC + 0x80, vtpr);
        if (threshold > vtpr >> 4) expectFailure(f, "controls.tpr-threshold.vtpr", VMFAIL7);
        else expectOk(f);
      }
    }
    // Secondary controls off: their VID / APIC-access bits are ignored, so the rule applies.
    const f = tprShadow(baselineFixture())
      .set("TPR_THRESHOLD", 5)
      .set("SECONDARY_VM_EXEC_CONTROL", S2.SECONDARY_EXEC_VIRTUALIZE_APIC_ACCESSES);
    expectFailure(f, "controls.tpr-threshold.vtpr", VMFAIL7);
    // With APIC-access virtualization active it does not.
    expectOk(
      tprShadow(baselineFixture())
        .set("TPR_THRESHOLD", 5)
        .set("APIC_ACCESS_ADDR", FIXTURE_GPA.APIC_ACCESS)
        .secondary(S2.SECONDARY_EXEC_VIRTUALIZE_APIC_ACCESSES),
    );
  });

  it("5.2.16 virtual NMIs without NMI exiting", () => {
    expectFailure(
      baselineFixture().clearBits("PIN_BASED_VM_EXEC_CONTROL", P.PIN_BASED_NMI_EXITING),
      "controls.nmi.virtual-nmis-need-nmi-exiting",
      VMFAIL7,
    );
  });

  it("5.2.17 NMI-window exiting without virtual NMIs; other combinations valid", () => {
    const nmi = P.PIN_BASED_NMI_EXITING;
    const vnmi = P.PIN_BASED_VIRTUAL_NMIS;
    const window = C.CPU_BASED_NMI_WINDOW_EXITING;
    for (let combo = 0; combo < 8; combo++) {
      const f = baselineFixture().clearBits("PIN_BASED_VM_EXEC_CONTROL", nmi | vnmi);
      if (combo & 1) f.setBits("PIN_BASED_VM_EXEC_CONTROL", nmi);
      if (combo & 2) f.setBits("PIN_BASED_VM_EXEC_CONTROL", vnmi);
      if (combo & 4) f.setBits("CPU_BASED_VM_EXEC_CONTROL", window);
      if ((combo & 2) !== 0 && (combo & 1) === 0)
        expectFailure(f, "controls.nmi.virtual-nmis-need-nmi-exiting", VMFAIL7);
      else if ((combo & 4) !== 0 && (combo & 2) === 0)
        expectFailure(f, "controls.nmi.window-needs-virtual-nmis", VMFAIL7);
      else expectOk(f);
    }
  });

  it("5.2.18 EPTP memory type: only WB is offered by KVM", () => {
    for (let type = 0; type < 8; type++) {
      const f = baselineFixture()
        .ept()
        .set("EPT_POINTER", FIXTURE_GPA.EPT_PML4 | (3 << 3) | type);
      if (type === 6) expectOk(f);
      else expectFailure(f, "controls.eptp.memory-type", VMFAIL7);
    }
    // UC is accepted when advertised.
    const caps = {
      ...KVM_DEFAULT_VMX_CAPABILITIES,
      eptVpidCap: {
        ...KVM_DEFAULT_VMX_CAPABILITIES.eptVpidCap,
        lo: KVM_DEFAULT_VMX_CAPABILITIES.eptVpidCap.lo | EPT_VPID_CAP_LO.VMX_EPTP_UC_BIT,
      },
    };
    expectOk(
      baselineFixture(caps)
        .ept()
        .set("EPT_POINTER", FIXTURE_GPA.EPT_PML4 | (3 << 3)),
    );
  });

  it("5.2.19 EPTP page-walk length: 4 or 5 levels", () => {
    for (let field = 0; field < 8; field++) {
      const f = baselineFixture()
        .ept()
        .set("EPT_POINTER", FIXTURE_GPA.EPT_PML4 | (field << 3) | 6);
      if (field === 3 || field === 4) expectOk(f);
      else expectFailure(f, "controls.eptp.walk-length", VMFAIL7);
    }
  });

  it("5.2.20 EPTP A/D bit only when EPT A/D is offered", () => {
    const ad = FIXTURE_GPA.EPT_PML4 | (3 << 3) | 6 | 0x40;
    expectOk(baselineFixture().ept().set("EPT_POINTER", ad));
    const noAd = kvmNestedVmxCapabilities(nestedVmxHost({ enableEptAdBits: false }));
    expectFailure(
      baselineFixture(noAd).ept().set("EPT_POINTER", ad),
      "controls.eptp.accessed-dirty",
      VMFAIL7,
    );
  });

  it("5.2.21 EPTP bits 11:7", () => {
    for (let v = 1; v < 32; v++) {
      const f = baselineFixture()
        .ept()
        .set("EPT_POINTER", FIXTURE_GPA.EPT_PML4 | (3 << 3) | 6 | (v << 7));
      expectFailure(f, "controls.eptp.reserved", VMFAIL7);
    }
  });

  it("5.2.22 EPTP bits MAXPHYADDR..63", () => {
    for (let j = MAXPHY; j < 64; j++) {
      const f = baselineFixture()
        .ept()
        .set("EPT_POINTER", BigInt(FIXTURE_GPA.EPT_PML4 | (3 << 3) | 6) | (1n << BigInt(j)));
      expectFailure(f, "controls.eptp.reserved", VMFAIL7);
    }
  });

  it("5.2.23 unrestricted guest without EPT", () => {
    expectFailure(
      baselineFixture().secondary(S2.SECONDARY_EXEC_UNRESTRICTED_GUEST),
      "controls.unrestricted-guest.needs-ept",
      VMFAIL7,
    );
  });

  it("5.2.24 mode-based execute control without EPT (caps that offer it)", () => {
    const caps = withSecondaryAllowed(S2.SECONDARY_EXEC_MODE_BASED_EPT_EXEC);
    expectFailure(
      baselineFixture(caps).secondary(S2.SECONDARY_EXEC_MODE_BASED_EPT_EXEC),
      "controls.mode-based-ept.needs-ept",
      VMFAIL7,
    );
    expectOk(baselineFixture(caps).ept().secondary(S2.SECONDARY_EXEC_MODE_BASED_EPT_EXEC));
    // KVM 6.12 does not offer it: the reserved-bit rule fires first.
    expectFailure(
      baselineFixture().secondary(S2.SECONDARY_EXEC_MODE_BASED_EPT_EXEC),
      "controls.proc2.reserved",
      VMFAIL7,
    );
  });

  it("5.2.25 PML without EPT", () => {
    expectFailure(
      baselineFixture().secondary(S2.SECONDARY_EXEC_ENABLE_PML).set("PML_ADDRESS", FIXTURE_GPA.PML),
      "controls.pml.needs-ept",
      VMFAIL7,
    );
  });
  addressSweep(
    "5.2.25 PML address",
    (f) => f.ept().secondary(S2.SECONDARY_EXEC_ENABLE_PML),
    "PML_ADDRESS",
    4096n,
    "controls.pml.address",
  );

  it("5.2.26 save VMX-preemption timer without activating it", () => {
    expectFailure(
      baselineFixture().setBits("VM_EXIT_CONTROLS", X.VM_EXIT_SAVE_VMX_PREEMPTION_TIMER),
      "controls.preemption-timer.save-needs-activate",
      VMFAIL7,
    );
    expectOk(
      baselineFixture()
        .setBits("VM_EXIT_CONTROLS", X.VM_EXIT_SAVE_VMX_PREEMPTION_TIMER)
        .setBits("PIN_BASED_VM_EXEC_CONTROL", P.PIN_BASED_VMX_PREEMPTION_TIMER),
    );
  });

  const msrListCases = (countField: string, addrField: string, ruleId: string, loads: boolean) => {
    const accept = (f: EntryFixture) => (loads ? expectNoVmfail(f) : expectOk(f));
    it(`${ruleId}: bits 3:0 of the address`, () => {
      for (let i = 0; i < 4; i++) {
        expectFailure(
          baselineFixture()
            .set(countField, 1)
            .set(addrField, FIXTURE_GPA.MSR_LIST | (1 << i)),
          ruleId,
          VMFAIL7,
        );
      }
    });
    it(`${ruleId}: 1 << i for i = 4..63 valid iff below MAXPHYADDR`, () => {
      for (let i = 4n; i < 64n; i++) {
        const f = baselineFixture()
          .set(countField, 1)
          .set(addrField, 1n << i);
        if (i < BigInt(MAXPHY)) accept(f);
        else expectFailure(f, ruleId, VMFAIL7);
      }
    });
    it(`${ruleId}: the last byte of the list must be a legal address`, () => {
      const top = 1n << BigInt(MAXPHY);
      expectFailure(
        baselineFixture()
          .set(countField, 2)
          .set(addrField, top - 16n),
        ruleId,
        VMFAIL7,
      );
      accept(
        baselineFixture()
          .set(countField, 2)
          .set(addrField, top - 32n),
      );
      accept(
        baselineFixture()
          .set(countField, 2)
          .set(addrField, top - 48n),
      );
      expectFailure(
        baselineFixture()
          .set(countField, 0x10000)
          .set(addrField, top - 0x80000n),
        ruleId,
        VMFAIL7,
      );
    });
  };
  describe("5.2.27 VM-exit MSR-store address", () => {
    msrListCases("VM_EXIT_MSR_STORE_COUNT", "VM_EXIT_MSR_STORE_ADDR", "controls.exit.msr-store-list", false);
  });
  describe("VM-exit MSR-load address (same rule, SDM 27.2.1.2)", () => {
    msrListCases("VM_EXIT_MSR_LOAD_COUNT", "VM_EXIT_MSR_LOAD_ADDR", "controls.exit.msr-load-list", false);
  });
  describe("5.2.28 VM-entry MSR-load address", () => {
    msrListCases("VM_ENTRY_MSR_LOAD_COUNT", "VM_ENTRY_MSR_LOAD_ADDR", "controls.entry.msr-load-list", true);
  });

  describe("5.2.29–5.2.39 event injection", () => {
    const withInjection = (info: number, extra?: (f: EntryFixture) => void) => {
      const f = baselineFixture().set("VM_ENTRY_INTR_INFO_FIELD", info);
      extra?.(f);
      return f;
    };
    it("5.2.29 type 1 (reserved) fails; an external interrupt, vector 0, is valid", () => {
      expectFailure(withInjection(inject(1, 0)), "controls.event-injection.type", VMFAIL7);
      expectOk(withInjection(inject(0, 0), (f) => f.set("GUEST_RFLAGS", RFLAGS.FIXED1 | RFLAGS.IF)));
    });
    it("5.2.30 type 7 (other event) with a vector", () => {
      expectFailure(withInjection(inject(7, 1)), "controls.event-injection.vector", VMFAIL7);
      expectOk(withInjection(inject(7, 0)));
    });
    it("type 7 needs MTF to be offered", () => {
      const caps = {
        ...KVM_DEFAULT_VMX_CAPABILITIES,
        trueProcbasedCtls: {
          ...KVM_DEFAULT_VMX_CAPABILITIES.trueProcbasedCtls,
          hi: (KVM_DEFAULT_VMX_CAPABILITIES.trueProcbasedCtls.hi & ~C.CPU_BASED_MONITOR_TRAP_FLAG) >>> 0,
        },
      };
      const f = baselineFixture(caps).set("VM_ENTRY_INTR_INFO_FIELD", inject(7, 0));
      expectFailure(f, "controls.event-injection.type", VMFAIL7);
    });
    it("5.2.31 NMI with a vector other than 2", () => {
      expectFailure(withInjection(inject(2, 3)), "controls.event-injection.vector", VMFAIL7);
      expectOk(withInjection(inject(2, 2)));
    });
    it("5.2.32 hardware exception with vector above 31", () => {
      expectFailure(withInjection(inject(3, 32)), "controls.event-injection.vector", VMFAIL7);
    });
    it("5.2.33 #GP without error code, CR0.PE = 0, unrestricted guest off", () => {
      const f = withInjection(inject(3, 13), (x) => x.clearBits("GUEST_CR0", CR0.PE | CR0.PG));
      expectFailure(f, "controls.event-injection.deliver-error-code", VMFAIL7);
    });
    it("5.2.34 #GP with error code, CR0.PE = 0, unrestricted guest on", () => {
      const f = baselineFixture()
        .unrestricted()
        .set("VM_ENTRY_INTR_INFO_FIELD", inject(3, 13, true))
        .clearBits("GUEST_CR0", CR0.PE | CR0.PG);
      expectFailure(f, "controls.event-injection.deliver-error-code", VMFAIL7);
    });
    it("5.2.35 deliver-error-code with any type but hardware exception", () => {
      for (let type = 0; type < 8; type++) {
        if (type === 1 || type === 3) continue;
        const f = withInjection(inject(type, type === 2 ? 2 : 0, true), (x) =>
          x.set("VM_ENTRY_INSTRUCTION_LEN", 1),
        );
        expectFailure(f, "controls.event-injection.deliver-error-code", VMFAIL7);
      }
      expectFailure(
        withInjection(inject(3, 13, false)),
        "controls.event-injection.deliver-error-code",
        VMFAIL7,
      );
    });
    it("5.2.36 error code exactly for #DF, #TS, #NP, #SS, #GP, #PF, #AC (KVM 6.12: not #CP)", () => {
      const withCode = new Set([8, 10, 11, 12, 13, 14, 17]);
      for (let vector = 0; vector < 32; vector++) {
        expectOk(withInjection(inject(3, vector, withCode.has(vector))));
        expectFailure(
          withInjection(inject(3, vector, !withCode.has(vector))),
          "controls.event-injection.deliver-error-code",
          VMFAIL7,
        );
      }
    });
    it("5.2.37 interruption-information bits 30:12", () => {
      for (let bit = 12; bit <= 30; bit++) {
        expectFailure(
          withInjection((inject(2, 2) | (1 << bit)) >>> 0),
          "controls.event-injection.reserved",
          VMFAIL7,
        );
      }
    });
    it("5.2.38 error code bits 31:16", () => {
      const f = withInjection(inject(3, 13, true), (x) => x.set("VM_ENTRY_EXCEPTION_ERROR_CODE", 0x10000));
      expectFailure(f, "controls.event-injection.error-code", VMFAIL7);
      expectOk(withInjection(inject(3, 13, true), (x) => x.set("VM_ENTRY_EXCEPTION_ERROR_CODE", 0xffff)));
    });
    it("5.2.39 software interrupt/exception instruction length", () => {
      for (const type of [4, 5, 6]) {
        for (const length of [0, 16, 0xffffffff]) {
          const f = withInjection(inject(type, 3), (x) => x.set("VM_ENTRY_INSTRUCTION_LEN", length));
          expectFailure(f, "controls.event-injection.instruction-length", VMFAIL7);
        }
        expectOk(withInjection(inject(type, 3), (x) => x.set("VM_ENTRY_INSTRUCTION_LEN", 15)));
      }
    });
  });

  it("VMCS shadowing needs legal VMREAD/VMWRITE bitmaps", () => {
    const shadow = (f: EntryFixture) =>
      f
        .secondary(S2.SECONDARY_EXEC_SHADOW_VMCS)
        .set("VMREAD_BITMAP", FIXTURE_GPA.VMREAD_BITMAP)
        .set("VMWRITE_BITMAP", FIXTURE_GPA.VMWRITE_BITMAP);
    expectOk(shadow(baselineFixture()));
    expectFailure(
      shadow(baselineFixture()).set("VMWRITE_BITMAP", 0x123),
      "controls.shadow-vmcs.bitmaps",
      VMFAIL7,
    );
  });

  it("VM functions: only EPTP switching, which needs EPT and a legal EPTP list", () => {
    const vmfunc = (f: EntryFixture) =>
      f
        .secondary(S2.SECONDARY_EXEC_ENABLE_VMFUNC)
        .set("VM_FUNCTION_CONTROL", 1)
        .set("EPTP_LIST_ADDRESS", FIXTURE_GPA.EPTP_LIST);
    expectOk(vmfunc(baselineFixture().ept()));
    expectFailure(
      vmfunc(baselineFixture().ept()).set("VM_FUNCTION_CONTROL", 2),
      "controls.vmfunc.reserved",
      VMFAIL7,
    );
    expectFailure(vmfunc(baselineFixture()), "controls.vmfunc.eptp-switching-needs-ept", VMFAIL7);
    expectFailure(
      vmfunc(baselineFixture().ept()).set("EPTP_LIST_ADDRESS", 0x10),
      "controls.vmfunc.eptp-list-address",
      VMFAIL7,
    );
  });

  it("an unbacked virtual-APIC page fails late unless CR8 exits let KVM drop the TPR shadow", () => {
    const unbacked = 0x40000000;
    expectFailure(
      tprShadow(baselineFixture()).set("VIRTUAL_APIC_PAGE_ADDR", unbacked),
      "controls.virtual-apic.backed",
      VMFAIL7,
    );
    expectOk(
      tprShadow(baselineFixture())
        .set("VIRTUAL_APIC_PAGE_ADDR", unbacked)
        .set("TPR_THRESHOLD", 0xffffffff)
        .setBits("CPU_BASED_VM_EXEC_CONTROL", C.CPU_BASED_CR8_LOAD_EXITING | C.CPU_BASED_CR8_STORE_EXITING),
    );
  });

  it("a zero TSC multiplier with TSC scaling is accepted (no such check in SDM 27.2.1.1 or in KVM)", () => {
    // kvm: prepare_vmcs02 gives vmcs02 L1's ratio × vmcs12's (kvm_calc_nested_tsc_multiplier), i.e. 0,
    // and the CPU's VM-execution control checks say nothing about the multiplier's value.
    expectOk(baselineFixture().secondary(S2.SECONDARY_EXEC_TSC_SCALING).set("TSC_MULTIPLIER", 0));
    expect(ENTRY_CHECK_RULES.some((r) => r.id.startsWith("controls.tsc-multiplier"))).toBe(false);
  });
});

describe("vmx-tests §6: host-state area (VMfailValid 8)", () => {
  it("6.1–6.2 HOST_CR0 fixed bits", () => {
    for (const bit of [CR0.PE, CR0.NE, CR0.PG]) {
      expectFailure(baselineFixture().clearBits("HOST_CR0", bit), "host.cr0.fixed", VMFAIL8);
    }
    for (let bit = 32n; bit < 64n; bit++) {
      const f = baselineFixture();
      f.set("HOST_CR0", f.get("HOST_CR0") | (1n << bit));
      expectFailure(f, "host.cr0.fixed", VMFAIL8);
    }
    expectOk(baselineFixture().clearBits("HOST_CR0", CR0.WP | CR0.AM | CR0.MP));
  });

  it("6.3 HOST_CR4 fixed bits and CPUID-reserved bits", () => {
    expectFailure(baselineFixture().clearBits("HOST_CR4", CR4.VMXE), "host.cr4.valid", VMFAIL8);
    const fixed1 = KVM_DEFAULT_VMX_CAPABILITIES.cr4Fixed1.lo;
    for (let bit = 0; bit < 32; bit++) {
      const mask = 2 ** bit;
      if ((fixed1 & mask) !== 0) continue;
      expectFailure(baselineFixture().setBits("HOST_CR4", mask), "host.cr4.valid", VMFAIL8);
    }
    // Allowed by FIXED1 but not by L1's CPUID.
    const f = baselineFixture().setBits("HOST_CR4", CR4.PKE);
    f.vcpu = l1VcpuFacts({ cr4ReservedLo: f.vcpu.cr4ReservedLo | CR4.PKE });
    expectFailure(f, "host.cr4.valid", VMFAIL8);
  });

  it("6.4 HOST_CR3 bits MAXPHYADDR..63 (LAM bits 61/62 allowed with LAM)", () => {
    for (let i = BigInt(MAXPHY); i < 64n; i++) {
      const f = baselineFixture().set("HOST_CR3", BigInt(FIXTURE_GPA.HOST_CR3) | (1n << i));
      expectFailure(f, "host.cr3.reserved", VMFAIL8);
      if (i === 61n || i === 62n) {
        f.vcpu = l1VcpuFacts({ lam: true });
        expectOk(f);
      }
    }
  });

  it("6.5 HOST_SYSENTER_ESP/EIP non-canonical", () => {
    expectFailure(
      baselineFixture().set("HOST_IA32_SYSENTER_ESP", NONCANONICAL),
      "host.sysenter.canonical",
      VMFAIL8,
    );
    expectFailure(
      baselineFixture().set("HOST_IA32_SYSENTER_EIP", NONCANONICAL),
      "host.sysenter.canonical",
      VMFAIL8,
    );
  });

  it("6.6 load IA32_EFER = 0: reserved EFER bits are ignored", () => {
    const f = baselineFixture()
      .clearBits("VM_EXIT_CONTROLS", X.VM_EXIT_LOAD_IA32_EFER)
      .set("HOST_IA32_EFER", 0xfffff0fen);
    expectOk(f);
  });

  it("6.7 load IA32_EFER = 1 with a reserved bit", () => {
    for (const bit of [1, 2, 7, 9, 12, 13, 14, 15, 20, 31]) {
      expectFailure(baselineFixture().setBits("HOST_IA32_EFER", 1 << bit), "host.efer.reserved", VMFAIL8);
    }
    const f = baselineFixture();
    f.set("HOST_IA32_EFER", f.get("HOST_IA32_EFER") | (1n << 40n));
    expectFailure(f, "host.efer.reserved", VMFAIL8);
    // NXE is reserved when L1's CPUID has no NX.
    const noNx = baselineFixture();
    noNx.vcpu = l1VcpuFacts({ cpu: { ...noNx.vcpu.cpu, nx: false } });
    noNx.clearBits("GUEST_IA32_EFER", EFER.NXE);
    expectFailure(noNx, "host.efer.reserved", VMFAIL8);
  });

  it("6.8–6.9 EFER.LMA/LME must equal host address-space size only when EFER is loaded", () => {
    expectFailure(baselineFixture().clearBits("HOST_IA32_EFER", EFER.LMA), "host.efer.long-mode", VMFAIL8);
    expectFailure(baselineFixture().clearBits("HOST_IA32_EFER", EFER.LME), "host.efer.long-mode", VMFAIL8);
    for (const bits of [0, EFER.LMA, EFER.LME, EFER.LMA | EFER.LME]) {
      const f = baselineFixture()
        .clearBits("VM_EXIT_CONTROLS", X.VM_EXIT_LOAD_IA32_EFER)
        .clearBits("HOST_IA32_EFER", EFER.LMA | EFER.LME)
        .setBits("HOST_IA32_EFER", bits);
      expectOk(f);
    }
  });

  it("6.10–6.11 host PAT entries", () => {
    for (let byte = 0; byte < 8; byte++) {
      for (const value of [0, 1, 2, 3, 4, 5, 6, 7, 8, 16, 32, 64, 128]) {
        const pat = BigInt(value) << BigInt(byte * 8);
        const bad = value === 2 || value === 3 || value >= 8;
        expectOk(
          baselineFixture().clearBits("VM_EXIT_CONTROLS", X.VM_EXIT_LOAD_IA32_PAT).set("HOST_IA32_PAT", pat),
        );
        const f = baselineFixture().set("HOST_IA32_PAT", pat);
        if (bad) expectFailure(f, "host.pat.valid", VMFAIL8);
        else expectOk(f);
      }
    }
  });

  it("6.12 host selectors with RPL or TI set", () => {
    for (const s of ["CS", "SS", "DS", "ES", "FS", "GS", "TR"]) {
      for (const bits of [1, 4]) {
        expectFailure(
          baselineFixture().setBits(`HOST_${s}_SELECTOR`, bits),
          "host.selectors.rpl-ti",
          VMFAIL8,
        );
      }
    }
  });

  it("6.13 host CS or TR selector 0", () => {
    expectFailure(baselineFixture().set("HOST_CS_SELECTOR", 0), "host.selectors.cs-nonzero", VMFAIL8);
    expectFailure(baselineFixture().set("HOST_TR_SELECTOR", 0), "host.selectors.tr-nonzero", VMFAIL8);
    for (let bit = 3; bit < 16; bit += 2) {
      expectOk(baselineFixture().set("HOST_CS_SELECTOR", 1 << bit));
      expectOk(baselineFixture().set("HOST_TR_SELECTOR", 1 << bit));
    }
  });

  it("6.14 host SS selector 0 is valid with a 64-bit host", () => {
    expectOk(baselineFixture().set("HOST_SS_SELECTOR", 0));
  });

  it("6.15 host FS/GS/TR/GDTR/IDTR bases non-canonical", () => {
    for (const s of ["FS", "GS", "TR", "GDTR", "IDTR"]) {
      expectFailure(baselineFixture().set(`HOST_${s}_BASE`, NONCANONICAL), "host.bases.canonical", VMFAIL8);
    }
  });

  it("6.16 64-bit host with IA-32e guest, and with CR4.PCIDE", () => {
    expectOk(baselineFixture());
    expectOk(baselineFixture().setBits("HOST_CR4", CR4.PCIDE));
  });

  it("6.17 64-bit host with CR4.PAE clear", () => {
    expectFailure(baselineFixture().clearBits("HOST_CR4", CR4.PAE), "host.ia32e.cr4-pae", VMFAIL8);
  });

  it("6.18 host RIP non-canonical", () => {
    expectFailure(baselineFixture().set("HOST_RIP", NONCANONICAL), "host.rip.canonical", VMFAIL8);
  });

  it("6.19–6.20 host IA32_PERF_GLOBAL_CTRL", () => {
    const load = (f: EntryFixture) => f.setBits("VM_EXIT_CONTROLS", X.VM_EXIT_LOAD_IA32_PERF_GLOBAL_CTRL);
    for (let bit = 0n; bit < 64n; bit++) {
      expectOk(baselineFixture().set("HOST_IA32_PERF_GLOBAL_CTRL", 1n << bit));
      const valid = bit < 8n || (bit >= 32n && bit < 35n);
      const f = load(baselineFixture()).set("HOST_IA32_PERF_GLOBAL_CTRL", 1n << bit);
      if (valid) expectOk(f);
      else expectFailure(f, "host.perf-global-ctrl.valid", VMFAIL8);
    }
  });

  it("6.21 LA57 host, 4-level L1: bases and SYSENTER use 57 bits, host RIP 48", () => {
    const la57Canonical = 0xff55555555000000n;
    const f = baselineFixture();
    for (const name of [
      "HOST_IA32_SYSENTER_ESP",
      "HOST_IA32_SYSENTER_EIP",
      "HOST_FS_BASE",
      "HOST_GS_BASE",
      "HOST_GDTR_BASE",
      "HOST_IDTR_BASE",
      "HOST_TR_BASE",
    ]) {
      f.set(name, la57Canonical);
    }
    expectOk(f);
    f.host = l0HostFacts({ la57: false });
    expectFailure(f, "host.sysenter.canonical", VMFAIL8);
    expectFailure(baselineFixture().set("HOST_RIP", la57Canonical), "host.rip.canonical", VMFAIL8);
    const la57L1 = baselineFixture().set("HOST_RIP", la57Canonical);
    la57L1.vcpu = l1VcpuFacts({ cr4: la57L1.vcpu.cr4 | CR4.LA57 });
    expectOk(la57L1);
  });

  it("host CR4.CET needs host CR0.WP", () => {
    expectFailure(
      baselineFixture().setBits("HOST_CR4", CR4.CET).clearBits("HOST_CR0", CR0.WP),
      "host.cr4.cet-needs-wp",
      VMFAIL8,
    );
    expectOk(baselineFixture().setBits("HOST_CR4", CR4.CET));
  });

  it("address-space size: the exit control must match L1's EFER.LMA", () => {
    const f = baselineFixture();
    f.vcpu = l1VcpuFacts({ efer: EFER.SCE | EFER.NXE });
    expectFailure(f, "address-space.host-size-matches-lma", VMFAIL8);
    expectFailure(
      baselineFixture().clearBits("VM_EXIT_CONTROLS", X.VM_EXIT_HOST_ADDR_SPACE_SIZE),
      "address-space.host-size-matches-lma",
      VMFAIL8,
    );
  });

  describe("32-bit L1 host (host address-space size 0)", () => {
    const host32 = () => {
      const f = baselineFixture()
        .clearBits("VM_EXIT_CONTROLS", X.VM_EXIT_HOST_ADDR_SPACE_SIZE | X.VM_EXIT_LOAD_IA32_EFER)
        .clearBits("HOST_CR4", CR4.PCIDE)
        .set("HOST_RIP", 0x81000000)
        .guest32(true);
      f.vcpu = l1VcpuFacts({ efer: EFER.SCE | EFER.NXE });
      return f;
    };
    it("is valid with a 32-bit guest", () => expectOk(host32()));
    it("rejects an IA-32e guest, CR4.PCIDE, RIP above 4 GiB and SS = 0", () => {
      expectFailure(
        host32().setBits("VM_ENTRY_CONTROLS", N.VM_ENTRY_IA32E_MODE),
        "host.non-ia32e.no-ia32e-guest",
        VMFAIL8,
      );
      expectFailure(host32().setBits("HOST_CR4", CR4.PCIDE), "host.non-ia32e.cr4-pcide", VMFAIL8);
      expectFailure(host32().set("HOST_RIP", 0x100000000), "host.non-ia32e.rip-high", VMFAIL8);
      expectFailure(host32().set("HOST_SS_SELECTOR", 0), "host.selectors.ss-nonzero", VMFAIL8);
    });
  });
});

describe("vmx-tests §7: guest-state area (VM exit 33)", () => {
  it("7.1 guest SYSENTER_ESP/EIP non-canonical", () => {
    expectFailure(
      baselineFixture().set("GUEST_SYSENTER_ESP", NONCANONICAL),
      "guest.sysenter.canonical",
      exit33(),
    );
    expectFailure(
      baselineFixture().set("GUEST_SYSENTER_EIP", NONCANONICAL),
      "guest.sysenter.canonical",
      exit33(),
    );
  });

  it("7.2–7.3 guest DR7 high bits only with load debug controls", () => {
    for (let bit = 0n; bit < 64n; bit++) {
      expectOk(baselineFixture().set("GUEST_DR7", 1n << bit));
      const f = baselineFixture()
        .setBits("VM_ENTRY_CONTROLS", N.VM_ENTRY_LOAD_DEBUG_CONTROLS)
        .set("GUEST_DR7", 1n << bit);
      if (bit < 32n) expectOk(f);
      else expectFailure(f, "guest.dr7.reserved", exit33());
    }
  });

  it("guest IA32_DEBUGCTL with load debug controls (FREEZE_IN_SMM quirk, BTF/LBR tolerated)", () => {
    const load = () => baselineFixture().setBits("VM_ENTRY_CONTROLS", N.VM_ENTRY_LOAD_DEBUG_CONTROLS);
    expectFailure(load().set("GUEST_IA32_DEBUGCTL", 1 << 6), "guest.debugctl.valid", exit33());
    expectOk(load().set("GUEST_IA32_DEBUGCTL", 1 << 14));
    const noQuirk = load().set("GUEST_IA32_DEBUGCTL", 1 << 14);
    noQuirk.vcpu = l1VcpuFacts({ freezeInSmmQuirk: false });
    expectFailure(noQuirk, "guest.debugctl.valid", exit33());
    const noLbr = load().set("GUEST_IA32_DEBUGCTL", 3);
    noLbr.vcpu = l1VcpuFacts({ debugctlSupported: 0 });
    expectOk(noLbr);
  });

  it("7.4–7.5 guest PAT entries", () => {
    for (let byte = 0; byte < 8; byte++) {
      for (const value of [0, 1, 2, 3, 4, 5, 6, 7, 8, 128]) {
        const pat = BigInt(value) << BigInt(byte * 8);
        expectOk(baselineFixture().set("GUEST_IA32_PAT", pat));
        const f = baselineFixture()
          .setBits("VM_ENTRY_CONTROLS", N.VM_ENTRY_LOAD_IA32_PAT)
          .set("GUEST_IA32_PAT", pat);
        if (value === 2 || value === 3 || value >= 8) expectFailure(f, "guest.pat.valid", exit33());
        else expectOk(f);
      }
    }
  });

  it("7.6–7.7 guest EFER reserved bits only with load IA32_EFER", () => {
    const reserved = EFER.SCE | EFER.LME | EFER.LMA | EFER.NXE | (1 << 2) | (1 << 13);
    expectOk(
      baselineFixture()
        .clearBits("VM_ENTRY_CONTROLS", N.VM_ENTRY_LOAD_IA32_EFER)
        .set("GUEST_IA32_EFER", reserved),
    );
    expectFailure(baselineFixture().setBits("GUEST_IA32_EFER", 1 << 2), "guest.efer.reserved", exit33());
  });

  it("7.8 guest EFER.LMA / LME against IA-32e mode guest", () => {
    expectFailure(baselineFixture().clearBits("GUEST_IA32_EFER", EFER.LMA), "guest.efer.lma", exit33());
    expectFailure(baselineFixture().clearBits("GUEST_IA32_EFER", EFER.LME), "guest.efer.lme", exit33());
    expectFailure(
      baselineFixture().guest32(true).setBits("GUEST_IA32_EFER", EFER.LMA),
      "guest.efer.lma",
      exit33(),
    );
  });

  it("7.9 guest IA32_PERF_GLOBAL_CTRL with a bit outside the vPMU", () => {
    const load = () => baselineFixture().setBits("VM_ENTRY_CONTROLS", N.VM_ENTRY_LOAD_IA32_PERF_GLOBAL_CTRL);
    expectOk(load().set("GUEST_IA32_PERF_GLOBAL_CTRL", 0x7000000ffn));
    expectFailure(
      load().set("GUEST_IA32_PERF_GLOBAL_CTRL", 1n << 8n),
      "guest.perf-global-ctrl.valid",
      exit33(),
    );
  });

  it("7.10 guest BNDCFGS with load BNDCFGS (MPX host)", () => {
    const load = () => baselineFixture(MPX_CAPS).setBits("VM_ENTRY_CONTROLS", N.VM_ENTRY_LOAD_BNDCFGS);
    expectOk(baselineFixture(MPX_CAPS).set("GUEST_BNDCFGS", NONCANONICAL));
    expectOk(baselineFixture(MPX_CAPS).set("GUEST_BNDCFGS", 0xffc));
    expectFailure(load().set("GUEST_BNDCFGS", NONCANONICAL), "guest.bndcfgs.canonical", exit33());
    expectFailure(load().set("GUEST_BNDCFGS", 0xffc), "guest.bndcfgs.reserved", exit33());
    expectOk(load().set("GUEST_BNDCFGS", 0xffff800000001003n));
    // Without MPX KVM does not offer the control at all.
    expectFailure(
      baselineFixture().setBits("VM_ENTRY_CONTROLS", N.VM_ENTRY_LOAD_BNDCFGS),
      "controls.entry.reserved",
      VMFAIL7,
    );
  });

  it("7.11 guest TR selector with TI set (KVM's software check without unrestricted guest)", () => {
    expectFailure(
      baselineFixture().setBits("GUEST_TR_SELECTOR", 4),
      "guest.segments.kvm-emulation",
      exit33(),
    );
    expectFailure(
      baselineFixture().unrestricted().setBits("GUEST_TR_SELECTOR", 4),
      "guest.selectors.tr-ti",
      exit33(),
    );
  });

  it("7.12 LDTR TI: ignored when unusable", () => {
    const unusable = (f: EntryFixture) => f.setBits("GUEST_LDTR_AR_BYTES", 0x10000);
    expectOk(unusable(baselineFixture()).set("GUEST_LDTR_SELECTOR", 4));
    expectOk(unusable(baselineFixture()).set("GUEST_LDTR_SELECTOR", 0));
    expectFailure(baselineFixture().set("GUEST_LDTR_SELECTOR", 4), "guest.segments.kvm-emulation", exit33());
    expectFailure(
      baselineFixture().unrestricted().set("GUEST_LDTR_SELECTOR", 4),
      "guest.selectors.ldtr-ti",
      exit33(),
    );
  });

  it("7.13 SS.RPL ≠ CS.RPL without unrestricted guest (SS usable or not)", () => {
    expectFailure(baselineFixture().set("GUEST_SS_SELECTOR", 0x13), "guest.segments.kvm-emulation", exit33());
    expectFailure(
      baselineFixture().set("GUEST_SS_SELECTOR", 0x13).setBits("GUEST_SS_AR_BYTES", 0x10000),
      "guest.segments.kvm-emulation",
      exit33(),
    );
    // The CPU's own SS.RPL check on vmcs02 is shadowed by KVM's (same exit); the report lists both.
    expectAmongFailures(baselineFixture().set("GUEST_SS_SELECTOR", 0x13), "guest.selectors.ss-rpl");
  });

  describe("virtual-8086 guest without unrestricted guest (KVM's rmode_segment_valid, then the CPU)", () => {
    const v86 = (ar: number, csAr = ar) => {
      const f = baselineFixture().guest32(false).setBits("GUEST_RFLAGS", RFLAGS.VM);
      for (const seg of ["CS", "SS", "DS", "ES", "FS", "GS"]) {
        f.set(`GUEST_${seg}_SELECTOR`, 0x100)
          .set(`GUEST_${seg}_BASE`, 0x1000)
          .set(`GUEST_${seg}_LIMIT`, 0xffff);
        f.set(`GUEST_${seg}_AR_BYTES`, seg === "CS" ? csAr : ar);
      }
      return f;
    };
    const softwareOnly = (f: EntryFixture) =>
      new NestedEntryChecker({ includeHardware: false }).check(f.input());

    it("0xf3 everywhere passes both", () => {
      expectOk(v86(0xf3));
    });

    it("KVM forces DPL to 3 (and CS's type to 3) before comparing with 0xf3; the CPU compares the raw field", () => {
      // DPL 0 data segments, and a code-segment CS: KVM's check passes, the CPU's v86 rule fails.
      for (const [ar, csAr] of [
        [0x93, 0x93],
        [0xb3, 0xd3],
        [0xf3, 0xfb],
        [0xf3, 0x9b],
      ] as const) {
        expect(softwareOnly(v86(ar, csAr))).toBe(ENTRY_CHECK_OK);
        expectFailure(v86(ar, csAr), "guest.v86.segments", exit33());
      }
      // ...so a later KVM failure wins: the MSR-load list (exit 34) before the CPU's check.
      expectFailure(v86(0x93).entryMsrList([[MSR.IA32_FS_BASE, 0, 0]]), "msr-load.entries", exit34(1));
    });

    it("KVM still checks the type of SS..GS, S, the G/D/L/AVL bits, usability, base and limit", () => {
      for (const [ar, csAr] of [
        [0xf1, 0xf3], // SS..GS type 1
        [0xe3, 0xf3], // S clear
        [0x80f3, 0xf3], // G
        [0x40f3, 0xf3], // D/B
        [0x10f3, 0xf3], // AVL
        [0xf3, 0x100f3], // CS unusable
        [0xf3, 0xe3], // CS with S clear
      ] as const) {
        expectFailure(v86(ar, csAr), "guest.segments.kvm-emulation", exit33());
      }
      expectFailure(v86(0xf3).set("GUEST_FS_LIMIT", 0xfffe), "guest.segments.kvm-emulation", exit33());
      expectFailure(v86(0xf3).set("GUEST_GS_BASE", 0x1010), "guest.segments.kvm-emulation", exit33());
      // P is not KVM's (present = usable): the CPU rejects a not-present segment.
      expect(softwareOnly(v86(0x73))).toBe(ENTRY_CHECK_OK);
      expectFailure(v86(0x73), "guest.v86.segments", exit33());
    });
  });

  it("7.14 SS.RPL ≠ CS.RPL is valid with unrestricted guest", () => {
    expectOk(baselineFixture().unrestricted().set("GUEST_SS_SELECTOR", 0x13));
  });

  it("7.15 guest TR, FS, GS base non-canonical", () => {
    for (const s of ["TR", "FS", "GS"]) {
      expectFailure(
        baselineFixture().set(`GUEST_${s}_BASE`, NONCANONICAL),
        "guest.bases.tr-fs-gs-canonical",
        exit33(),
      );
    }
  });

  it("7.16 guest LDTR base non-canonical: fails only if usable", () => {
    expectFailure(
      baselineFixture().set("GUEST_LDTR_BASE", NONCANONICAL),
      "guest.bases.ldtr-canonical",
      exit33(),
    );
    expectOk(baselineFixture().set("GUEST_LDTR_BASE", NONCANONICAL).setBits("GUEST_LDTR_AR_BYTES", 0x10000));
  });

  it("7.17 guest CS base bits 63:32", () => {
    for (let bit = 32n; bit < 64n; bit += 4n) {
      expectFailure(baselineFixture().set("GUEST_CS_BASE", 1n << bit), "guest.bases.cs-high", exit33());
    }
  });

  it("7.18 guest SS/DS/ES base bits 63:32: fail if usable", () => {
    for (const s of ["SS", "DS", "ES"]) {
      for (let bit = 32n; bit < 64n; bit += 4n) {
        expectFailure(
          baselineFixture().set(`GUEST_${s}_BASE`, 1n << bit),
          "guest.bases.ss-ds-es-high",
          exit33(),
        );
        expectOk(
          baselineFixture()
            .set(`GUEST_${s}_BASE`, 1n << bit)
            .setBits(`GUEST_${s}_AR_BYTES`, 0x10000),
        );
      }
    }
  });

  it("7.19 guest GDTR/IDTR base non-canonical", () => {
    expectFailure(
      baselineFixture().set("GUEST_GDTR_BASE", NONCANONICAL),
      "guest.gdtr-idtr.base-canonical",
      exit33(),
    );
    expectFailure(
      baselineFixture().set("GUEST_IDTR_BASE", NONCANONICAL),
      "guest.gdtr-idtr.base-canonical",
      exit33(),
    );
  });

  it("7.20 guest GDTR/IDTR limit bits 31:16", () => {
    for (let bit = 16; bit < 32; bit++) {
      expectFailure(baselineFixture().set("GUEST_GDTR_LIMIT", 2 ** bit), "guest.gdtr-idtr.limit", exit33());
      expectFailure(baselineFixture().set("GUEST_IDTR_LIMIT", 2 ** bit), "guest.gdtr-idtr.limit", exit33());
    }
  });

  describe("7.21–7.22 32-bit PAE guest", () => {
    const pae = (ept: boolean) => {
      const f = baselineFixture().guest32(true).set("GUEST_CR3", FIXTURE_GPA.PDPT);
      // Four present PDPTEs pointing at page directories.
      for (let i = 0; i < 4; i++) f.memory.write64(FIXTURE_GPA.PDPT + i * 8, 0x40001 + i * 0x1000, 0);
      if (ept) {
        f.ept().set("GUEST_CR3", 0x01234560);
        for (let i = 0; i < 4; i++) f.set(`GUEST_PDPTR${i}`, 0x40001 + i * 0x1000);
      }
      return f;
    };
    it("is valid (memory PDPTEs and VMCS PDPTE fields)", () => {
      expectOk(pae(false));
      expectOk(pae(true));
    });
    it("7.21 CR3 bits 4:0 are ignored; bits MAXPHYADDR..63 fail with qualification 0", () => {
      for (let bit = 0; bit < 5; bit++) expectOk(pae(false).set("GUEST_CR3", FIXTURE_GPA.PDPT | (1 << bit)));
      for (let bit = BigInt(MAXPHY); bit < 64n; bit++) {
        expectFailure(
          pae(false).set("GUEST_CR3", BigInt(FIXTURE_GPA.PDPT) | (1n << bit)),
          "guest.cr3.reserved",
          exit33(0),
        );
      }
    });
    it("7.22 reserved PDPTE bits fail with qualification 2 (from memory without EPT)", () => {
      for (let i = 0; i < 4; i++) {
        for (const bit of [52, 55, 62, 63, 1, 2, 5, 8, MAXPHY]) {
          const f = pae(false);
          const pa = FIXTURE_GPA.PDPT + i * 8;
          if (bit < 32) f.memory.write32(pa, f.memory.read32(pa) | (1 << bit));
          else f.memory.write32(pa + 4, (1 << (bit - 32)) >>> 0);
          expectFailure(f, "guest.pdptes.load", exit33(2));
        }
        for (const bit of [9, 10, 11]) {
          const f = pae(false);
          const pa = FIXTURE_GPA.PDPT + i * 8;
          f.memory.write32(pa, f.memory.read32(pa) | (1 << bit));
          expectOk(f);
        }
      }
      // A not-present PDPTE may hold anything; an unbacked PDPT fails.
      const notPresent = pae(false);
      notPresent.memory.write64(FIXTURE_GPA.PDPT, 0xffe, 0xffffffff);
      expectOk(notPresent);
      expectFailure(pae(false).set("GUEST_CR3", 0x40000000), "guest.pdptes.load", exit33(2));
    });
    it("7.22 reserved PDPTE bits fail with qualification 2 (VMCS fields with EPT)", () => {
      for (let i = 0; i < 4; i++) {
        for (const bit of [52n, 62n, 63n, 1n, 5n, BigInt(MAXPHY)]) {
          const f = pae(true);
          f.set(`GUEST_PDPTR${i}`, f.get(`GUEST_PDPTR${i}`) | (1n << bit));
          expectFailure(f, "guest.pdptes.fields", exit33(2));
        }
        const f = pae(true);
        f.set(`GUEST_PDPTR${i}`, f.get(`GUEST_PDPTR${i}`) | 0xe00n);
        expectOk(f);
      }
    });
  });

  it("7.23 32-bit non-PAE guest: CR3 low bits ignored, bits above MAXPHYADDR fail", () => {
    const f = () => baselineFixture().guest32(false);
    expectOk(f());
    for (const bit of [0, 1, 2, 5, 6, 7, 8, 9, 10, 11]) expectOk(f().setBits("GUEST_CR3", 1 << bit));
    for (let bit = BigInt(MAXPHY); bit < 64n; bit++) {
      const g = f();
      g.set("GUEST_CR3", g.get("GUEST_CR3") | (1n << bit));
      expectFailure(g, "guest.cr3.reserved", exit33());
    }
  });

  it("7.24 unrestricted guest with CR0.PG = 0, IA-32e off, EFER.LMA = 0", () => {
    const f = baselineFixture().unrestricted().guest32(false).clearBits("GUEST_CR0", CR0.PG);
    expectOk(f);
    expectOk(
      baselineFixture()
        .unrestricted()
        .guest32(false)
        .clearBits("GUEST_CR0", CR0.PG | CR0.PE),
    );
  });

  it("7.25 MSR-load list with MSR_FS_BASE as entry 1: exit 34, qualification 1", () => {
    expectFailure(baselineFixture().entryMsrList([[MSR.IA32_FS_BASE, 0, 0]]), "msr-load.entries", exit34(1));
  });

  it("7.26 MSR-load list at an unbacked address: exit 34", () => {
    expectFailure(
      baselineFixture().set("VM_ENTRY_MSR_LOAD_COUNT", 1).set("VM_ENTRY_MSR_LOAD_ADDR", 0x13370000),
      "msr-load.entries",
      exit34(1),
    );
  });

  it("7.27 MSR-load count = max + 1: exit 34 with qualification max + 1", () => {
    const max = vmxMiscMaxMsrListEntries(KVM_DEFAULT_VMX_CAPABILITIES.misc.lo);
    expect(max).toBe(512);
    const entries = Array.from({ length: max + 1 }, () => [MSR.IA32_TIME_STAMP_COUNTER, 0, 0] as const);
    expectFailure(baselineFixture().entryMsrList(entries), "msr-load.entries", exit34(max + 1));
  });

  it("7.28 MSR-load count = max, all IA32_TSC: valid, every entry written in order", () => {
    const entries = Array.from({ length: 512 }, (_, i) => [MSR.IA32_TIME_STAMP_COUNTER, 0, i] as const);
    const f = baselineFixture().entryMsrList(entries);
    const written: number[] = [];
    f.writeMsr = (index, lo) => {
      expect(index).toBe(MSR.IA32_TIME_STAMP_COUNTER);
      written.push(lo);
      return true;
    };
    expectOk(f);
    expect(written).toEqual(entries.map((e) => e[2]));
  });

  it("MSR-load: GS_BASE, SMM_MONITOR_CTL, microcode MSRs, x2APIC MSRs, reserved bits, refused WRMSR", () => {
    const ok = [MSR.IA32_KERNEL_GS_BASE, 0, 0] as const;
    for (const index of [MSR.IA32_GS_BASE, MSR.IA32_SMM_MONITOR_CTL, 0x79, 0x8b, 0x808, 0x8ff]) {
      expectFailure(baselineFixture().entryMsrList([ok, [index, 0, 0]]), "msr-load.entries", exit34(2));
    }
    const x2apicOff = baselineFixture().entryMsrList([[0x808, 0, 0]]);
    x2apicOff.vcpu = l1VcpuFacts({ x2apicEnabled: false });
    expectOk(x2apicOff);
    expectFailure(
      baselineFixture().entryMsrList([ok, ok, [MSR.IA32_LSTAR, 1, 0]]),
      "msr-load.entries",
      exit34(3),
    );
    const refused = baselineFixture().entryMsrList([ok, [MSR.IA32_LSTAR, 0, 0]]);
    refused.writeMsr = (index) => index !== MSR.IA32_LSTAR;
    expectFailure(refused, "msr-load.entries", exit34(2));
  });

  it("7.30-adjacent: guest CR4.CET needs CR0.WP (KVM 6.12.y)", () => {
    expectFailure(
      baselineFixture().setBits("GUEST_CR4", CR4.CET).clearBits("GUEST_CR0", CR0.WP),
      "guest.cr4.cet-needs-wp",
      exit33(),
    );
  });
});

describe("guest-state checks KVM makes beyond vmx-tests §7", () => {
  it("CR0 fixed bits; PE/PG free only with unrestricted guest", () => {
    expectFailure(baselineFixture().clearBits("GUEST_CR0", CR0.NE), "guest.cr0.fixed", exit33());
    expectFailure(
      baselineFixture().guest32(false).clearBits("GUEST_CR0", CR0.PG),
      "guest.cr0.fixed",
      exit33(),
    );
    const f = baselineFixture();
    f.set("GUEST_CR0", f.get("GUEST_CR0") | (1n << 40n));
    expectFailure(f, "guest.cr0.fixed", exit33());
  });

  it("CR4 fixed bits", () => {
    expectFailure(baselineFixture().clearBits("GUEST_CR4", CR4.VMXE), "guest.cr4.valid", exit33());
    expectFailure(baselineFixture().setBits("GUEST_CR4", 1 << 15), "guest.cr4.valid", exit33());
  });

  it("CR0.PG without PE, and IA-32e mode without PAE or PG", () => {
    expectFailure(
      baselineFixture().unrestricted().guest32(false).clearBits("GUEST_CR0", CR0.PE),
      "guest.cr0.pg-needs-pe",
      exit33(),
    );
    expectFailure(baselineFixture().clearBits("GUEST_CR4", CR4.PAE), "guest.ia32e.cr4-pae", exit33());
    expectFailure(
      baselineFixture().unrestricted().clearBits("GUEST_CR0", CR0.PG),
      "guest.ia32e.cr0-pg",
      exit33(),
    );
  });

  it("activity state: active, HLT and wait-for-SIPI only", () => {
    expectOk(baselineFixture().set("GUEST_ACTIVITY_STATE", 1));
    expectOk(baselineFixture().set("GUEST_ACTIVITY_STATE", 3));
    expectFailure(baselineFixture().set("GUEST_ACTIVITY_STATE", 2), "guest.activity-state", exit33());
    expectFailure(baselineFixture().set("GUEST_ACTIVITY_STATE", 4), "guest.activity-state", exit33());
  });

  it("the CPU's HLT checks never see vmcs12's activity state (KVM leaves vmcs02 active)", () => {
    const hlt = () => baselineFixture().set("GUEST_ACTIVITY_STATE", 1);
    // HLT with SS.DPL 3 (a CPL-3 guest): the SDM's rule would fail it on vmcs02, KVM halts the vCPU.
    expectOk(
      hlt()
        .set("GUEST_CS_SELECTOR", 0x2b)
        .set("GUEST_CS_AR_BYTES", 0xa0fb)
        .set("GUEST_SS_SELECTOR", 0x23)
        .set("GUEST_SS_AR_BYTES", 0xc0f3),
    );
    // HLT or wait-for-SIPI with blocking by STI or MOV SS.
    expectOk(hlt().set("GUEST_INTERRUPTIBILITY_INFO", 1).setBits("GUEST_RFLAGS", RFLAGS.IF));
    expectOk(baselineFixture().set("GUEST_ACTIVITY_STATE", 3).set("GUEST_INTERRUPTIBILITY_INFO", 2));
    // HLT with an injected event HLT would block (a #GP): vmcs02 is active, any event is allowed.
    expectOk(hlt().set("VM_ENTRY_INTR_INFO_FIELD", inject(3, 13, true)));
  });

  describe("VMCS link pointer (qualification 4)", () => {
    const shadow = (f: EntryFixture) =>
      f
        .secondary(S2.SECONDARY_EXEC_SHADOW_VMCS)
        .set("VMREAD_BITMAP", FIXTURE_GPA.VMREAD_BITMAP)
        .set("VMWRITE_BITMAP", FIXTURE_GPA.VMWRITE_BITMAP)
        .set("VMCS_LINK_POINTER", FIXTURE_GPA.SHADOW_VMCS);
    const header = (f: EntryFixture, value: number) => {
      f.memory.write32(FIXTURE_GPA.SHADOW_VMCS, value >>> 0);
      return f;
    };
    it("a shadow VMCS with the right revision and indicator is valid", () => {
      expectOk(header(shadow(baselineFixture()), VMCS12_REVISION | 0x80000000));
      expectOk(header(baselineFixture().set("VMCS_LINK_POINTER", FIXTURE_GPA.SHADOW_VMCS), VMCS12_REVISION));
    });
    it("fails for an unaligned or illegal address, unbacked memory, wrong revision or indicator", () => {
      expectFailure(
        baselineFixture().set("VMCS_LINK_POINTER", FIXTURE_GPA.SHADOW_VMCS + 8),
        "guest.vmcs-link.address",
        exit33(4),
      );
      expectFailure(
        baselineFixture().set("VMCS_LINK_POINTER", 1n << 50n),
        "guest.vmcs-link.address",
        exit33(4),
      );
      expectFailure(
        baselineFixture().set("VMCS_LINK_POINTER", 0x40000000),
        "guest.vmcs-link.readable",
        exit33(4),
      );
      expectFailure(
        header(baselineFixture().set("VMCS_LINK_POINTER", FIXTURE_GPA.SHADOW_VMCS), VMCS12_REVISION + 1),
        "guest.vmcs-link.revision",
        exit33(4),
      );
      expectFailure(
        header(shadow(baselineFixture()), VMCS12_REVISION),
        "guest.vmcs-link.shadow-indicator",
        exit33(4),
      );
      expectFailure(
        header(
          baselineFixture().set("VMCS_LINK_POINTER", FIXTURE_GPA.SHADOW_VMCS),
          VMCS12_REVISION | 0x80000000,
        ),
        "guest.vmcs-link.shadow-indicator",
        exit33(4),
      );
    });
  });
});

describe("guest state the CPU checks on vmcs02 (reflected as exit 33)", () => {
  const ug = () => baselineFixture().unrestricted();
  const v86 = () => {
    const f = ug().guest32(false).setBits("GUEST_RFLAGS", RFLAGS.VM);
    for (const s of ["CS", "SS", "DS", "ES", "FS", "GS"]) {
      f.set(`GUEST_${s}_SELECTOR`, 0x1234).set(`GUEST_${s}_BASE`, 0x12340).set(`GUEST_${s}_LIMIT`, 0xffff);
      f.set(`GUEST_${s}_AR_BYTES`, 0xf3);
    }
    return f;
  };

  it("CR4.PCIDE without IA-32e mode", () => {
    expectFailure(
      baselineFixture().guest32(true).setBits("GUEST_CR4", CR4.PCIDE),
      "guest.cr4.pcide-needs-ia32e",
      exit33(),
    );
  });

  it("RIP: bits 63:32 outside 64-bit mode, canonical inside", () => {
    expectFailure(baselineFixture().guest32(true).set("GUEST_RIP", 0x100000000), "guest.rip", exit33());
    expectFailure(baselineFixture().set("GUEST_RIP", NONCANONICAL), "guest.rip", exit33());
    expectOk(baselineFixture().set("GUEST_RIP", 0xffffffff81000000n));
  });

  it("RFLAGS reserved bits, VM in IA-32e mode, IF for an external-interrupt injection", () => {
    for (const bit of [3, 5, 15, 22, 31]) {
      expectFailure(baselineFixture().setBits("GUEST_RFLAGS", 1 << bit), "guest.rflags.reserved", exit33());
    }
    expectFailure(
      v86()
        .setBits("VM_ENTRY_CONTROLS", N.VM_ENTRY_IA32E_MODE)
        .setBits("GUEST_IA32_EFER", EFER.LMA | EFER.LME)
        .setBits("GUEST_CR4", CR4.PAE),
      "guest.rflags.vm",
      exit33(),
    );
    expectFailure(
      baselineFixture().set("VM_ENTRY_INTR_INFO_FIELD", inject(0, 0x20)),
      "guest.rflags.if-for-ext-int",
      exit33(),
    );
  });

  it("interruptibility state", () => {
    const withState = (state: number, rflags = RFLAGS.FIXED1 | RFLAGS.IF) =>
      baselineFixture().set("GUEST_INTERRUPTIBILITY_INFO", state).set("GUEST_RFLAGS", rflags);
    expectOk(withState(1));
    expectOk(withState(2));
    expectFailure(withState(0x20), "guest.interruptibility.reserved", exit33());
    expectFailure(withState(3), "guest.interruptibility.sti-and-mov-ss", exit33());
    expectFailure(withState(1, RFLAGS.FIXED1), "guest.interruptibility.sti-needs-if", exit33());
    expectFailure(
      withState(2).set("VM_ENTRY_INTR_INFO_FIELD", inject(0, 0x20)),
      "guest.interruptibility.ext-int-injection",
      exit33(),
    );
    expectFailure(
      withState(2).set("VM_ENTRY_INTR_INFO_FIELD", inject(2, 2)),
      "guest.interruptibility.nmi-injection",
      exit33(),
    );
    expectFailure(withState(4), "guest.interruptibility.smi", exit33());
  });

  it("injecting an NMI with blocking by NMI fails when vmcs02 has virtual NMIs (L0's or vmcs12's)", () => {
    const nmiBlocked = () =>
      baselineFixture().set("VM_ENTRY_INTR_INFO_FIELD", inject(2, 2)).set("GUEST_INTERRUPTIBILITY_INFO", 8);
    // The baseline's vmcs12 sets virtual NMIs; L0 uses them too (enable_vnmi).
    expect(Number(nmiBlocked().get("PIN_BASED_VM_EXEC_CONTROL")) & P.PIN_BASED_VIRTUAL_NMIS).not.toBe(0);
    expectFailure(nmiBlocked(), "guest.interruptibility.nmi-injection-virtual-nmi", exit33());
    // Without virtual NMIs in vmcs12, L0's own still put the control in vmcs02.
    const l1WithoutVnmi = () => nmiBlocked().clearBits("PIN_BASED_VM_EXEC_CONTROL", P.PIN_BASED_VIRTUAL_NMIS);
    expectFailure(l1WithoutVnmi(), "guest.interruptibility.nmi-injection-virtual-nmi", exit33());
    const noVnmiHost = l1WithoutVnmi();
    noVnmiHost.host = l0HostFacts({ virtualNmis: false });
    expectOk(noVnmiHost);
    const l1Vnmi = nmiBlocked();
    l1Vnmi.host = l0HostFacts({ virtualNmis: false });
    expectFailure(l1Vnmi, "guest.interruptibility.nmi-injection-virtual-nmi", exit33());
    // Blocking by NMI alone, or with another event type, is fine.
    expectOk(baselineFixture().set("GUEST_INTERRUPTIBILITY_INFO", 8));
    expectOk(nmiBlocked().set("VM_ENTRY_INTR_INFO_FIELD", inject(3, 13, true)));
  });

  it("enclave interruption: no blocking by MOV SS, and only on an SGX host", () => {
    const enclave = (state: number, sgx: boolean) => {
      const f = baselineFixture().set("GUEST_INTERRUPTIBILITY_INFO", state);
      f.host = l0HostFacts({ sgx });
      return f;
    };
    expectOk(enclave(0x10, true));
    expectFailure(enclave(0x10, false), "guest.interruptibility.enclave", exit33());
    expectFailure(enclave(0x12, true), "guest.interruptibility.enclave", exit33());
    expectOk(enclave(0x11, true).setBits("GUEST_RFLAGS", RFLAGS.IF));
  });

  it("pending single step (BS) must match RFLAGS.TF under blocking by STI or MOV SS", () => {
    const BS = 1 << 14;
    const f = (state: number, tf: boolean, bs: boolean) =>
      baselineFixture()
        .set("GUEST_INTERRUPTIBILITY_INFO", state)
        .set("GUEST_RFLAGS", RFLAGS.FIXED1 | RFLAGS.IF | (tf ? RFLAGS.TF : 0))
        .set("GUEST_PENDING_DBG_EXCEPTIONS", bs ? BS : 0);
    for (const state of [1, 2]) {
      expectOk(f(state, false, false));
      expectOk(f(state, true, true));
      expectFailure(f(state, true, false), "guest.pending-debug.single-step", exit33());
      expectFailure(f(state, false, true), "guest.pending-debug.single-step", exit33());
    }
    // Without blocking the pair is free; BTF in vmcs12's DEBUGCTL does not reach vmcs02 (KVM masks it).
    expectOk(f(0, true, false));
    expectOk(f(0, false, true));
    expectFailure(
      f(1, true, false)
        .setBits("VM_ENTRY_CONTROLS", N.VM_ENTRY_LOAD_DEBUG_CONTROLS)
        .set("GUEST_IA32_DEBUGCTL", 2),
      "guest.pending-debug.single-step",
      exit33(),
    );
    // The HLT state does not count: vmcs02 stays active.
    expectOk(f(0, true, false).set("GUEST_ACTIVITY_STATE", 1));
  });

  it("pending debug exceptions reserved bits (bit 16 only with RTM)", () => {
    for (const bit of [4, 11, 13, 15, 17, 31]) {
      expectFailure(
        baselineFixture().set("GUEST_PENDING_DBG_EXCEPTIONS", 1 << bit),
        "guest.pending-debug.reserved",
        exit33(),
      );
    }
    expectOk(baselineFixture().set("GUEST_PENDING_DBG_EXCEPTIONS", 0x400f));
    const rtm = baselineFixture().set("GUEST_PENDING_DBG_EXCEPTIONS", 0x10000);
    expectFailure(rtm, "guest.pending-debug.reserved", exit33());
    rtm.host = l0HostFacts({ rtm: true });
    expectOk(rtm);
  });

  it("virtual-8086 segments", () => {
    expectOk(v86());
    expectFailure(v86().set("GUEST_DS_BASE", 0x12350), "guest.v86.segments", exit33());
    expectFailure(v86().set("GUEST_SS_LIMIT", 0xfffff), "guest.v86.segments", exit33());
    expectFailure(v86().set("GUEST_ES_AR_BYTES", 0xf1), "guest.v86.segments", exit33());
    expectFailure(v86().clearBits("GUEST_CR0", CR0.PE | CR0.PG), "guest.rflags.vm", exit33());
  });

  it("CS access rights", () => {
    expectFailure(ug().set("GUEST_CS_AR_BYTES", 0xa091), "guest.ar.cs", exit33()); // read-only data
    expectOk(ug().set("GUEST_CS_AR_BYTES", 0xa093)); // type 3 is allowed with unrestricted guest (DPL 0)
    expectFailure(ug().set("GUEST_CS_AR_BYTES", 0xa08b), "guest.ar.cs", exit33()); // S clear
    expectFailure(ug().set("GUEST_CS_AR_BYTES", 0xa0bb), "guest.ar.cs", exit33()); // DPL 1 ≠ SS.DPL
    expectFailure(ug().set("GUEST_CS_AR_BYTES", 0xa01b), "guest.ar.cs", exit33()); // not present
    expectFailure(ug().set("GUEST_CS_AR_BYTES", 0xa19b), "guest.ar.cs", exit33()); // bit 8
    expectFailure(ug().set("GUEST_CS_AR_BYTES", 0xe09b), "guest.ar.cs", exit33()); // L and D
    expectFailure(ug().set("GUEST_CS_AR_BYTES", 0x209b), "guest.ar.cs", exit33()); // limit needs G
    expectOk(ug().set("GUEST_CS_AR_BYTES", 0xa09f)); // conforming, DPL 0 ≤ SS.DPL
  });

  it("SS, data segment, TR and LDTR access rights", () => {
    expectFailure(ug().set("GUEST_SS_AR_BYTES", 0xc091), "guest.ar.ss", exit33());
    // SS.DPL must be 0 when CS is type 3 (unrestricted guest).
    expectFailure(
      ug().set("GUEST_SS_AR_BYTES", 0xc0b3).set("GUEST_CS_AR_BYTES", 0xa093),
      "guest.ar.ss",
      exit33(),
    );
    expectOk(ug().set("GUEST_SS_AR_BYTES", 0xc0b3).set("GUEST_CS_AR_BYTES", 0xa0bb));
    expectFailure(ug().set("GUEST_DS_AR_BYTES", 0xc092), "guest.ar.data", exit33()); // not accessed
    expectFailure(ug().set("GUEST_FS_AR_BYTES", 0xc099), "guest.ar.data", exit33()); // execute-only code
    expectFailure(ug().set("GUEST_GS_AR_BYTES", 0x4093), "guest.ar.data", exit33()); // limit needs G
    expectOk(ug().set("GUEST_GS_AR_BYTES", 0x10000));
    expectFailure(ug().set("GUEST_TR_AR_BYTES", 0x83), "guest.ar.tr", exit33()); // 16-bit TSS in IA-32e mode
    expectOk(baselineFixture().guest32(true).set("GUEST_TR_AR_BYTES", 0x83));
    expectFailure(ug().set("GUEST_TR_AR_BYTES", 0x1008b), "guest.ar.tr", exit33()); // unusable
    expectFailure(ug().set("GUEST_LDTR_AR_BYTES", 0x83), "guest.ar.ldtr", exit33());
    expectFailure(ug().set("GUEST_LDTR_AR_BYTES", 0x02), "guest.ar.ldtr", exit33());
  });

  it("KVM's software check ignores P but the CPU does not", () => {
    // Data segment usable but not present: KVM treats present as "usable", the CPU fails it.
    expectFailure(baselineFixture().set("GUEST_DS_AR_BYTES", 0xc013), "guest.ar.data", exit33());
    // Readable non-conforming code in DS with DPL < RPL: KVM skips it, the CPU does not.
    expectFailure(
      baselineFixture().set("GUEST_DS_AR_BYTES", 0xc09b).setBits("GUEST_DS_SELECTOR", 3),
      "guest.ar.data",
      exit33(),
    );
  });
});

describe("KVM's order", () => {
  it("controls before host state before guest state", () => {
    const f = baselineFixture().set("CR3_TARGET_COUNT", 1).set("HOST_CS_SELECTOR", 0).set("GUEST_RFLAGS", 0);
    expectFailure(f, "controls.cr3-target-count", VMFAIL7);
    f.set("CR3_TARGET_COUNT", 0);
    expectFailure(f, "host.selectors.cs-nonzero", VMFAIL8);
    f.set("HOST_CS_SELECTOR", 0x10);
    expectFailure(f, "guest.rflags.reserved", exit33());
    expect(
      f
        .set("CR3_TARGET_COUNT", 1)
        .set("HOST_CS_SELECTOR", 0)
        .checkAll()
        .map((x) => x.rule.id),
    ).toEqual(["controls.cr3-target-count", "host.selectors.cs-nonzero", "guest.rflags.reserved"]);
  });

  it("KVM's segment check (no unrestricted guest) precedes the PDPTE load: qualification 0, not 2", () => {
    const f = baselineFixture().guest32(true).set("GUEST_CR3", 0x40000000).set("GUEST_TR_SELECTOR", 0x1c);
    expectFailure(f, "guest.segments.kvm-emulation", exit33(0));
  });

  it("the MSR-load list is processed before the CPU sees vmcs02 (exit 34 beats a bad RFLAGS)", () => {
    const f = baselineFixture()
      .entryMsrList([[MSR.IA32_FS_BASE, 0, 0]])
      .set("GUEST_RFLAGS", 0);
    expectFailure(f, "msr-load.entries", exit34(1));
  });

  it("a late hardware VM-Fail comes after the MSR-load list", () => {
    const f = tprShadow(baselineFixture()).set("TPR_THRESHOLD", 0x100);
    expectFailure(f, "controls.tpr-threshold.reserved", VMFAIL7);
    expectFailure(f.entryMsrList([[MSR.IA32_GS_BASE, 0, 0]]), "msr-load.entries", exit34(1));
  });

  it("a checker without hardware rules stops at KVM's software checks", () => {
    const checker = new NestedEntryChecker({ includeHardware: false });
    const f = baselineFixture().set("GUEST_RFLAGS", 0);
    expect(checker.check(f.input()).ok).toBe(true);
    expect(checker.rules.length).toBeLessThan(ENTRY_CHECK_RULES.length);
  });
});

describe("reports", () => {
  it("formats a failure with its outcome and sources", () => {
    const [first] = baselineFixture()
      .entryMsrList([[MSR.IA32_FS_BASE, 0, 0]])
      .checkAll();
    expect(first).toBeDefined();
    expect(formatEntryCheckFailure(first!)).toMatch(
      /^msr-load\.entries → VM exit 0x80000022 qualification 1: .* \[kvm: nested_vmx_load_msr; SDM 27\.4 \(26\.4\)\]$/,
    );
    const [vmfail] = baselineFixture().set("CR3_TARGET_COUNT", 9).checkAll();
    expect(formatEntryCheckFailure(vmfail!)).toMatch(/^controls\.cr3-target-count → VMfailValid\(7\): /);
  });
});

describe("properties", () => {
  const classes = [
    { name: "pin", field: "PIN_BASED_VM_EXEC_CONTROL", msr: KVM_DEFAULT_VMX_CAPABILITIES.truePinbasedCtls },
    { name: "proc", field: "CPU_BASED_VM_EXEC_CONTROL", msr: KVM_DEFAULT_VMX_CAPABILITIES.trueProcbasedCtls },
    { name: "proc2", field: "SECONDARY_VM_EXEC_CONTROL", msr: KVM_DEFAULT_VMX_CAPABILITIES.procbasedCtls2 },
    { name: "exit", field: "VM_EXIT_CONTROLS", msr: KVM_DEFAULT_VMX_CAPABILITIES.trueExitCtls },
    { name: "entry", field: "VM_ENTRY_CONTROLS", msr: KVM_DEFAULT_VMX_CAPABILITIES.trueEntryCtls },
  ] as const;

  it("a single bit flip that the capability MSRs disallow fails with VMfailValid 7 via the reserved-bits rule", () => {
    let disallowed = 0;
    fc.assert(
      fc.property(fc.constantFrom(...classes), fc.integer({ min: 0, max: 31 }), (cls, bit) => {
        // Secondary controls active (and 0) so that a flip of one of them is checked.
        const f = baselineFixture().secondary(0);
        const value = Number(f.get(cls.field)) >>> 0;
        const flipped = (value ^ (2 ** bit)) >>> 0;
        f.set(cls.field, flipped);
        const result = f.check();
        if (controlsAllowed(cls.msr.lo, cls.msr.hi, flipped) !== 0) {
          disallowed++;
          expect(result.ok).toBe(false);
          if (!result.ok) {
            expect(result.rule.id).toBe(`controls.${cls.name}.reserved`);
            expect(result.outcome).toEqual(VMFAIL7);
          }
        } else if (!result.ok) {
          expect(result.rule.id).not.toBe(`controls.${cls.name}.reserved`);
        }
      }),
      { numRuns: 400 },
    );
    expect(disallowed).toBeGreaterThan(0);
  });

  it("the first failure equals the head of the full report, for random field writes", () => {
    const fields = [
      "PIN_BASED_VM_EXEC_CONTROL",
      "CPU_BASED_VM_EXEC_CONTROL",
      "VM_EXIT_CONTROLS",
      "VM_ENTRY_CONTROLS",
      "VM_ENTRY_INTR_INFO_FIELD",
      "HOST_CR0",
      "HOST_CR4",
      "HOST_CS_SELECTOR",
      "HOST_RIP",
      "GUEST_CR0",
      "GUEST_CR4",
      "GUEST_RFLAGS",
      "GUEST_CS_AR_BYTES",
      "GUEST_SS_SELECTOR",
      "GUEST_TR_AR_BYTES",
      "GUEST_ACTIVITY_STATE",
      "GUEST_INTERRUPTIBILITY_INFO",
      "VMCS_LINK_POINTER",
    ];
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom(...fields), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })), {
          minLength: 1,
          maxLength: 3,
        }),
        (writes) => {
          const f = baselineFixture();
          for (const [field, value] of writes) f.set(field, value);
          const first = checkNestedVmEntry(f.input());
          const all = checkNestedVmEntryAll(f.input());
          if (first.ok) expect(all).toEqual([]);
          else expect(all[0]).toEqual(first);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("incremental checking", () => {
  type Rules = readonly EntryCheckRule[];
  const ALL_RULES: Rules = ENTRY_CHECK_RULES;
  const SOFTWARE_RULES: Rules = ENTRY_CHECK_RULES.filter((r) => r.stage !== ENTRY_CHECK_STAGE.HARDWARE);

  /** The oracle: a fresh context and every rule in KVM's order, stopping at the first failure. */
  function fullEvaluation(rules: Rules, input: NestedEntryInput): EntryCheckResult {
    const ctx = new EntryCheckContext().reset(input);
    for (const rule of rules) {
      const detail = rule.test(ctx);
      if (detail !== 0) return { ok: false, rule, outcome: entryCheckOutcome(rule, detail) };
    }
    return ENTRY_CHECK_OK;
  }

  function fullReport(rules: Rules, input: NestedEntryInput): EntryCheckFailure[] {
    const ctx = new EntryCheckContext().reset(input);
    const out: EntryCheckFailure[] = [];
    for (const rule of rules) {
      const detail = rule.test(ctx);
      if (detail !== 0) out.push({ ok: false, rule, outcome: entryCheckOutcome(rule, detail) });
    }
    return out;
  }

  function expectSameResult(actual: EntryCheckResult, expected: EntryCheckResult): void {
    if (expected.ok) {
      expect(actual).toBe(ENTRY_CHECK_OK);
      return;
    }
    expect(actual.ok ? "ok" : actual.rule.id).toBe(expected.rule.id);
    if (!actual.ok) {
      expect(actual.rule).toBe(expected.rule);
      expect(actual.outcome).toEqual(expected.outcome);
    }
  }

  /** An MSR writer that logs every write and refuses MSR 0x1234. */
  function msrLog(): { readonly writes: number[][]; readonly writer: MsrWriter } {
    const writes: number[][] = [];
    return {
      writes,
      writer: (index, lo, hi) => {
        writes.push([index, lo, hi]);
        return index !== 0x1234;
      },
    };
  }

  const shadowVmcs = (f: EntryFixture): EntryFixture =>
    f
      .secondary(S2.SECONDARY_EXEC_SHADOW_VMCS)
      .set("VMREAD_BITMAP", FIXTURE_GPA.VMREAD_BITMAP)
      .set("VMWRITE_BITMAP", FIXTURE_GPA.VMWRITE_BITMAP)
      .set("VMCS_LINK_POINTER", FIXTURE_GPA.SHADOW_VMCS);

  /** What a random scenario starts from: the baseline plus features that make rules read memory. */
  const featuresArb = fc.record({
    tprShadow: fc.boolean(),
    pae: fc.boolean(),
    ept: fc.boolean(),
    unrestricted: fc.boolean(),
    link: fc.constantFrom("none", "plain", "shadow"),
    msrEntries: fc.integer({ min: 0, max: 4 }),
  });
  type Features = typeof featuresArb extends fc.Arbitrary<infer T> ? T : never;

  function build(features: Features): EntryFixture {
    const f = baselineFixture();
    f.memory.write8(FIXTURE_GPA.VIRTUAL_APIC + 0x80, 0x50);
    for (let i = 0; i < 4; i++) f.memory.write64(FIXTURE_GPA.PDPT + i * 8, 0x40001 + i * 0x1000, 0);
    f.memory.write32(
      FIXTURE_GPA.SHADOW_VMCS,
      (VMCS12_REVISION | (features.link === "shadow" ? 0x80000000 : 0)) >>> 0,
    );
    if (features.tprShadow) tprShadow(f).set("TPR_THRESHOLD", 3);
    if (features.pae) f.guest32(true).set("GUEST_CR3", FIXTURE_GPA.PDPT);
    if (features.ept || features.unrestricted) {
      f.ept();
      for (let i = 0; i < 4; i++) f.set(`GUEST_PDPTR${i}`, 0x40001 + i * 0x1000);
    }
    if (features.unrestricted) f.unrestricted();
    if (features.link === "plain") f.set("VMCS_LINK_POINTER", FIXTURE_GPA.SHADOW_VMCS);
    if (features.link === "shadow") shadowVmcs(f);
    if (features.msrEntries > 0) {
      f.entryMsrList(
        Array.from(
          { length: features.msrEntries },
          (_, i) => [MSR.IA32_TIME_STAMP_COUNTER, 0, 1000 + i] as const,
        ),
      );
    }
    return f;
  }

  /** Fields the rules read (controls, addresses, host and guest state), a few they do not, and neighbours. */
  const FIELDS = [
    "PIN_BASED_VM_EXEC_CONTROL",
    "CPU_BASED_VM_EXEC_CONTROL",
    "SECONDARY_VM_EXEC_CONTROL",
    "VM_EXIT_CONTROLS",
    "VM_ENTRY_CONTROLS",
    "CR3_TARGET_COUNT",
    "IO_BITMAP_A",
    "MSR_BITMAP",
    "VIRTUAL_APIC_PAGE_ADDR",
    "APIC_ACCESS_ADDR",
    "POSTED_INTR_NV",
    "VIRTUAL_PROCESSOR_ID",
    "EPT_POINTER",
    "VM_FUNCTION_CONTROL",
    "TPR_THRESHOLD",
    "TSC_MULTIPLIER",
    "VM_EXIT_MSR_LOAD_COUNT",
    "VM_ENTRY_INTR_INFO_FIELD",
    "VM_ENTRY_EXCEPTION_ERROR_CODE",
    "VM_ENTRY_INSTRUCTION_LEN",
    "VM_ENTRY_MSR_LOAD_COUNT",
    "VM_ENTRY_MSR_LOAD_ADDR",
    "HOST_CR0",
    "HOST_CR3",
    "HOST_CR4",
    "HOST_IA32_PAT",
    "HOST_IA32_EFER",
    "HOST_RIP",
    "HOST_CS_SELECTOR",
    "HOST_ES_SELECTOR",
    "HOST_TR_SELECTOR",
    "HOST_FS_BASE",
    "GUEST_CR0",
    "GUEST_CR3",
    "GUEST_CR4",
    "GUEST_DR7",
    "GUEST_IA32_EFER",
    "VMCS_LINK_POINTER",
    "GUEST_ACTIVITY_STATE",
    "GUEST_INTERRUPTIBILITY_INFO",
    "GUEST_PENDING_DBG_EXCEPTIONS",
    "GUEST_RIP",
    "GUEST_RFLAGS",
    "GUEST_CS_SELECTOR",
    "GUEST_CS_AR_BYTES",
    "GUEST_SS_SELECTOR",
    "GUEST_SS_AR_BYTES",
    "GUEST_DS_AR_BYTES",
    "GUEST_TR_AR_BYTES",
    "GUEST_LDTR_AR_BYTES",
    "GUEST_FS_BASE",
    "GUEST_GDTR_LIMIT",
    "GUEST_PDPTR0",
    "GUEST_PDPTR3",
    // Not read by any rule (GUEST_INTR_STATUS shares a word with HOST_ES_SELECTOR).
    "GUEST_RSP",
    "GUEST_INTR_STATUS",
    "EXCEPTION_BITMAP",
  ] as const;
  const CONTROL_FIELDS = FIELDS.slice(0, 5);
  /** (field, bit) of every control bit the default capabilities leave to L1 (allowed-1, not allowed-0). */
  const FLEXIBLE_CONTROL_BITS: readonly (readonly [(typeof FIELDS)[number], number])[] = (
    [
      ["PIN_BASED_VM_EXEC_CONTROL", KVM_DEFAULT_VMX_CAPABILITIES.truePinbasedCtls],
      ["CPU_BASED_VM_EXEC_CONTROL", KVM_DEFAULT_VMX_CAPABILITIES.trueProcbasedCtls],
      ["SECONDARY_VM_EXEC_CONTROL", KVM_DEFAULT_VMX_CAPABILITIES.procbasedCtls2],
      ["VM_EXIT_CONTROLS", KVM_DEFAULT_VMX_CAPABILITIES.trueExitCtls],
      ["VM_ENTRY_CONTROLS", KVM_DEFAULT_VMX_CAPABILITIES.trueEntryCtls],
    ] as const
  ).flatMap(([field, msr]) =>
    Array.from({ length: 32 }, (_, bit) => bit)
      .filter((bit) => ((msr.hi & ~msr.lo) >>> bit) & 1)
      .map((bit) => [field, bit] as const),
  );
  const INTERESTING = [
    0n,
    1n,
    0xffffffffffffffffn,
    BigInt(FIXTURE_GPA.SHADOW_VMCS),
    BigInt(FIXTURE_GPA.MSR_LIST),
    BigInt(FIXTURE_GPA.PDPT),
    BigInt(FIXTURE_GPA.VIRTUAL_APIC),
    0x400000n,
    0xffffffff81000000n,
    NONCANONICAL,
  ];

  const CAPS: readonly VmxCapabilities[] = [
    KVM_DEFAULT_VMX_CAPABILITIES,
    kvmNestedVmxCapabilities(),
    kvmNestedVmxCapabilities(nestedVmxHost({ enableEptAdBits: false })),
    kvmNestedVmxCapabilities(nestedVmxHost({ enableUnrestrictedGuest: false })),
  ];
  const VCPUS: readonly L1VcpuFacts[] = [
    DEFAULT_L1_VCPU_FACTS,
    l1VcpuFacts(),
    l1VcpuFacts({ x2apicEnabled: false }),
    l1VcpuFacts({ cpu: cpuFeatures({ maxPhysAddr: 39 }) }),
    l1VcpuFacts({ efer: EFER.SCE }),
  ];
  const HOSTS: readonly L0HostFacts[] = [
    DEFAULT_L0_HOST_FACTS,
    l0HostFacts(),
    l0HostFacts({ la57: false }),
    l0HostFacts({ unrestrictedGuest: false, rtm: true }),
    l0HostFacts({ virtualNmis: false, sgx: true }),
  ];

  /** Memory the memory-reading rules look at: MSR-load entries, PDPTEs, link-pointer header, VTPR. */
  const MSR_LIST_WORDS = Array.from({ length: 16 }, (_, i) => FIXTURE_GPA.MSR_LIST + i * 4);
  const PDPT_WORDS = Array.from({ length: 8 }, (_, i) => FIXTURE_GPA.PDPT + i * 4);
  const LINK_WORDS = [FIXTURE_GPA.SHADOW_VMCS];
  const VTPR_WORDS = [FIXTURE_GPA.VIRTUAL_APIC + 0x80];
  const MEMORY_REGIONS: readonly (readonly number[])[] = [MSR_LIST_WORDS, PDPT_WORDS, LINK_WORDS, VTPR_WORDS];
  const MEMORY_WORDS = MEMORY_REGIONS.flat();
  const MSR_INDICES = [MSR.IA32_TIME_STAMP_COUNTER, 0x1234, MSR.IA32_FS_BASE, 0x808, 0];

  const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
  const stepArb = fc.oneof(
    {
      weight: 6,
      arbitrary: fc.record({
        kind: fc.constant("flip" as const),
        field: fc.constantFrom(...FIELDS),
        bit: fc.integer({ min: 0, max: 63 }),
      }),
    },
    {
      weight: 3,
      arbitrary: fc.record({
        kind: fc.constant("flip" as const),
        field: fc.constantFrom(...CONTROL_FIELDS),
        bit: fc.integer({ min: 0, max: 31 }),
      }),
    },
    {
      // A control KVM lets L1 choose: the entry often stays valid while the rules' read sets change.
      weight: 5,
      arbitrary: fc
        .constantFrom(...FLEXIBLE_CONTROL_BITS)
        .map(([field, bit]) => ({ kind: "flip" as const, field, bit })),
    },
    {
      weight: 3,
      arbitrary: fc.record({
        kind: fc.constant("set" as const),
        field: fc.constantFrom(...FIELDS),
        value: fc.oneof(u64, fc.constantFrom(...INTERESTING), fc.bigInt({ min: 0n, max: 20n })),
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        kind: fc.constant("restore-field" as const),
        field: fc.constantFrom(...FIELDS),
      }),
    },
    {
      weight: 4,
      arbitrary: fc.record({
        kind: fc.constant("rip" as const),
        rip: fc.integer({ min: 0, max: 0x7fffffff }),
        rsp: fc.integer({ min: 0, max: 0x7fffffff }),
      }),
    },
    {
      weight: 4,
      arbitrary: fc.record({
        kind: fc.constant("memory" as const),
        region: fc.integer({ min: 0, max: 3 }),
        word: fc.nat(),
        value: fc.oneof(
          fc.integer({ min: 0, max: 0xffffffff }),
          fc.constantFrom(...MSR_INDICES),
          fc.constant(VMCS12_REVISION),
          fc.constant((VMCS12_REVISION | 0x80000000) >>> 0),
        ),
        bit: fc.option(fc.integer({ min: 0, max: 31 })),
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        kind: fc.constant("swap" as const),
        caps: fc.integer({ min: 0, max: CAPS.length - 1 }),
        vcpu: fc.integer({ min: 0, max: VCPUS.length - 1 }),
        host: fc.integer({ min: 0, max: HOSTS.length - 1 }),
        memory: fc.integer({ min: 0, max: 4 }),
        writer: fc.integer({ min: 0, max: 3 }),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({ kind: fc.constant("vtpr" as const), value: fc.integer({ min: 0, max: 0xff }) }),
    },
    { weight: 2, arbitrary: fc.constant({ kind: "restore" as const }) },
    { weight: 2, arbitrary: fc.constant({ kind: "again" as const }) },
    { weight: 1, arbitrary: fc.constant({ kind: "other-vmcs12" as const }) },
    { weight: 1, arbitrary: fc.constant({ kind: "report" as const }) },
  );
  type Step = typeof stepArb extends fc.Arbitrary<infer T> ? T : never;

  /** How often each path ran, over all runs (so that the property is known to exercise them). */
  const seen = { incremental: 0, incrementalFailures: 0, memoryOnlyFailures: 0, msrWrites: 0 };

  function scenario(
    rules: Rules,
    hardware: boolean,
    generic: boolean,
    features: Features,
    steps: readonly Step[],
  ): void {
    const f = build(features);
    // The checker reads vmcs12 through the `Vmcs12` fast path, or through any `Vmcs12Reader`.
    const vmcs12 = f.vmcs12;
    const reader: Vmcs12Reader = generic ? asGenericReader(vmcs12) : vmcs12;
    const initial = f.vmcs12.serialize();
    const initialMemory = MEMORY_WORDS.map((pa) => f.memory.read32(pa));
    const active = [
      features.msrEntries > 0 ? MSR_LIST_WORDS : null,
      features.pae && !features.ept && !features.unrestricted ? PDPT_WORDS : null,
      features.link !== "none" ? LINK_WORDS : null,
      features.tprShadow && hardware ? VTPR_WORDS : null,
    ].filter((region) => region !== null);
    const small = new DenseMemory(0x40000);
    small.writeBytes(0, f.memory.readBytes(0, 0x40000));
    const other = baselineFixture();
    const checker = new NestedEntryChecker({ includeHardware: hardware });
    // Each side logs its own WRMSRs; the writer identity seen by the checker changes only on "swap".
    const mine = msrLog();
    const theirs = msrLog();
    const mineAlt = msrLog();
    let caps = 0;
    let vcpu = 0;
    let host = 0;
    let memory = 0;
    let writer = 1;
    let last: EntryCheckResult | null = null;
    let lastKey = "";
    const inputs = (): [NestedEntryInput, NestedEntryInput, string] => {
      const mem = memory === 4 ? small : f.memory;
      const base = {
        vmcs12: reader,
        caps: CAPS[caps]!,
        vcpu: VCPUS[vcpu]!,
        host: HOSTS[host]!,
        memory: mem,
      };
      const key = `${caps}/${vcpu}/${host}/${memory === 4 ? 1 : 0}/${writer}`;
      if (writer === 0) return [base, base, key];
      const w = writer === 2 ? mineAlt.writer : mine.writer;
      return [{ ...base, writeMsr: w }, { ...base, writeMsr: theirs.writer }, key];
    };
    const compare = (memoryOnly: boolean) => {
      const [input, oracleInput, key] = inputs();
      mine.writes.length = 0;
      mineAlt.writes.length = 0;
      theirs.writes.length = 0;
      const incremental = last?.ok === true && key === lastKey;
      const actual = checker.check(input);
      const expected = fullEvaluation(rules, oracleInput);
      expectSameResult(actual, expected);
      expect([...mine.writes, ...mineAlt.writes]).toEqual(theirs.writes);
      if (incremental) {
        seen.incremental++;
        if (!actual.ok) seen.incrementalFailures++;
        if (!actual.ok && memoryOnly) seen.memoryOnlyFailures++;
        seen.msrWrites += theirs.writes.length;
      }
      last = actual;
      lastKey = key;
    };
    compare(false);
    for (const step of steps) {
      let memoryOnly = false;
      switch (step.kind) {
        case "flip": {
          const v = f.get(step.field);
          f.set(step.field, v ^ (1n << BigInt(step.bit)));
          break;
        }
        case "set":
          f.set(step.field, step.value);
          break;
        case "restore-field": {
          const pristine = new EntryFixture();
          pristine.vmcs12.load(initial);
          f.set(step.field, pristine.get(step.field));
          break;
        }
        case "rip":
          f.set("GUEST_RIP", step.rip).set("GUEST_RSP", step.rsp);
          break;
        case "memory": {
          memoryOnly = true;
          // A region some rule of this scenario reads, when there is one.
          const regions = active.length > 0 ? active : MEMORY_REGIONS;
          const region = regions[step.region % regions.length]!;
          const address = region[step.word % region.length]!;
          const current = f.memory.read32(address);
          const value = step.bit === null ? step.value : (current ^ (1 << step.bit)) >>> 0;
          f.memory.write32(address, value);
          small.write32(address, value);
          break;
        }
        case "vtpr":
          memoryOnly = true;
          f.memory.write8(FIXTURE_GPA.VIRTUAL_APIC + 0x80, step.value);
          small.write8(FIXTURE_GPA.VIRTUAL_APIC + 0x80, step.value);
          break;
        case "swap":
          caps = step.caps;
          vcpu = step.vcpu;
          host = step.host;
          memory = step.memory;
          writer = step.writer === 3 ? 1 : step.writer;
          break;
        case "restore":
          f.vmcs12.load(initial);
          MEMORY_WORDS.forEach((pa, i) => {
            f.memory.write32(pa, initialMemory[i]!);
            small.write32(pa, initialMemory[i]!);
          });
          caps = 0;
          vcpu = 0;
          host = 0;
          memory = 0;
          writer = 1;
          break;
        case "again":
          memoryOnly = true;
          break;
        case "other-vmcs12": {
          // The checker is shared with another vCPU's entry in between.
          const input = other.input();
          expectSameResult(checker.check(input), fullEvaluation(rules, input));
          last = null;
          break;
        }
        case "report": {
          const [input, oracleInput] = inputs();
          const report = checker.checkAll(input);
          const expected = fullReport(rules, oracleInput);
          expect(report.map((r) => r.rule)).toEqual(expected.map((r) => r.rule));
          expect(report.map((r) => r.outcome)).toEqual(expected.map((r) => r.outcome));
          last = null;
          break;
        }
      }
      compare(memoryOnly);
    }
  }

  for (const [name, rules, hardware] of [
    ["all rules", ALL_RULES, true],
    ["KVM's software rules (includeHardware: false)", SOFTWARE_RULES, false],
  ] as const) {
    it(`${name}: every check equals a full evaluation, WRMSRs included, over random entry sequences`, () => {
      fc.assert(
        fc.property(
          fc.boolean(),
          featuresArb,
          fc.array(stepArb, { minLength: 1, maxLength: 30 }),
          (generic, features, steps) => {
            scenario(rules, hardware, generic, features, steps);
          },
        ),
        { numRuns: 250 },
      );
    });
  }

  it("the property above exercised incremental checks that fail, also on memory-only changes, and the MSR-load list", () => {
    expect(seen.incremental).toBeGreaterThan(500);
    expect(seen.incrementalFailures).toBeGreaterThan(50);
    expect(seen.memoryOnlyFailures).toBeGreaterThan(5);
    expect(seen.msrWrites).toBeGreaterThan(50);
  });

  it("guest memory content alone (no vmcs12 change): every check equals a full evaluation", () => {
    /** One setup per memory-reading rule, and the memory it reads. */
    const setups = [
      { features: { msrEntries: 4 }, words: MSR_LIST_WORDS },
      { features: { pae: true }, words: PDPT_WORDS },
      { features: { link: "plain" }, words: LINK_WORDS },
      { features: { link: "shadow" }, words: LINK_WORDS },
      { features: { tprShadow: true }, words: VTPR_WORDS },
    ] as const;
    const none: Features = {
      tprShadow: false,
      pae: false,
      ept: false,
      unrestricted: false,
      link: "none",
      msrEntries: 0,
    };
    const caught = new Set<string>();
    fc.assert(
      fc.property(
        fc.constantFrom(...setups),
        fc.array(
          fc.record({
            word: fc.nat(),
            value: fc.oneof(
              fc.integer({ min: 0, max: 0xffffffff }),
              fc.constantFrom(...MSR_INDICES),
              fc.constant((VMCS12_REVISION | 0x80000000) >>> 0),
            ),
            bit: fc.option(fc.integer({ min: 0, max: 31 }), { freq: 2 }),
            restore: fc.boolean(),
          }),
          { minLength: 1, maxLength: 12 },
        ),
        (setup, steps) => {
          const f = build({ ...none, ...setup.features });
          const { writes, writer } = msrLog();
          const theirs = msrLog();
          const checker = new NestedEntryChecker();
          const input = { ...f.input(), writeMsr: writer };
          const oracleInput = { ...input, writeMsr: theirs.writer };
          const pristine = setup.words.map((pa) => f.memory.read32(pa));
          expect(checker.check(input)).toBe(ENTRY_CHECK_OK);
          let last: EntryCheckResult = ENTRY_CHECK_OK;
          for (const step of steps) {
            const i = step.word % setup.words.length;
            const pa = setup.words[i]!;
            if (step.restore) f.memory.write32(pa, pristine[i]!);
            else
              f.memory.write32(
                pa,
                step.bit === null ? step.value : (f.memory.read32(pa) ^ (1 << step.bit)) >>> 0,
              );
            writes.length = 0;
            theirs.writes.length = 0;
            const actual = checker.check(input);
            expectSameResult(actual, fullEvaluation(ALL_RULES, oracleInput));
            expect(writes).toEqual(theirs.writes);
            if (last.ok && !actual.ok) caught.add(actual.rule.id);
            last = actual;
          }
        },
      ),
      { numRuns: 300 },
    );
    // Each rule that reads guest memory caught a change of that memory on the incremental path.
    expect([...caught].sort()).toEqual([
      "controls.tpr-threshold.vtpr",
      "guest.pdptes.load",
      "guest.vmcs-link.revision",
      "guest.vmcs-link.shadow-indicator",
      "msr-load.entries",
    ]);
  });

  /** Capabilities that count how often each member is read (each class is read by its reserved-bits rule). */
  function countingCaps(): { readonly caps: VmxCapabilities; readonly reads: Map<string, number> } {
    const reads = new Map<string, number>();
    const caps = new Proxy(KVM_DEFAULT_VMX_CAPABILITIES, {
      get(target, key, receiver) {
        if (typeof key === "string") reads.set(key, (reads.get(key) ?? 0) + 1);
        return Reflect.get(target, key, receiver);
      },
    });
    return { caps, reads };
  }

  it("re-runs only the rules that read a changed field; an unchanged entry runs no pure rule", () => {
    const f = baselineFixture();
    const { caps, reads } = countingCaps();
    f.caps = caps;
    const checker = new NestedEntryChecker();
    expect(checker.check(f.input())).toBe(ENTRY_CHECK_OK);
    expect(reads.get("truePinbasedCtls")).toBe(1);
    expect(reads.get("trueExitCtls")).toBe(1);
    // Only GUEST_RIP changed: neither control rule runs again.
    f.set("GUEST_RIP", 0x401000);
    expect(checker.check(f.input())).toBe(ENTRY_CHECK_OK);
    expect(reads.get("truePinbasedCtls")).toBe(1);
    expect(reads.get("trueExitCtls")).toBe(1);
    // A pin-based control bit flips (the preemption timer, which KVM offers): its readers run again.
    f.setBits("PIN_BASED_VM_EXEC_CONTROL", P.PIN_BASED_VMX_PREEMPTION_TIMER);
    expect(checker.check(f.input())).toBe(ENTRY_CHECK_OK);
    expect(reads.get("truePinbasedCtls")).toBe(2);
    expect(reads.get("trueExitCtls")).toBe(1);
    // The same contents in a new vCPU-facts object: a full evaluation.
    f.vcpu = l1VcpuFacts();
    expect(checker.check(f.input())).toBe(ENTRY_CHECK_OK);
    expect(reads.get("truePinbasedCtls")).toBe(3);
    expect(reads.get("trueExitCtls")).toBe(2);
  });

  it("a checker with incremental: false evaluates every rule on every entry", () => {
    const f = baselineFixture();
    const { caps, reads } = countingCaps();
    f.caps = caps;
    const checker = new NestedEntryChecker({ incremental: false });
    for (let i = 0; i < 3; i++) expect(checker.check(f.input())).toBe(ENTRY_CHECK_OK);
    expect(reads.get("trueExitCtls")).toBe(3);
  });

  it("after a failure the next entry is evaluated in full", () => {
    const f = baselineFixture();
    const { caps, reads } = countingCaps();
    f.caps = caps;
    const checker = new NestedEntryChecker();
    const input = f.input();
    expect(checker.check(input)).toBe(ENTRY_CHECK_OK);
    f.set("GUEST_ACTIVITY_STATE", 2);
    const failure = checker.check(input);
    expect(failure.ok ? "ok" : failure.rule.id).toBe("guest.activity-state");
    expect(reads.get("trueExitCtls")).toBe(1);
    f.set("GUEST_ACTIVITY_STATE", 0);
    expect(checker.check(input)).toBe(ENTRY_CHECK_OK);
    expect(reads.get("trueExitCtls")).toBe(2);
  });

  it("a rule that reads guest memory runs on every entry: a changed link-pointer header alone fails", () => {
    const f = shadowVmcs(baselineFixture());
    f.memory.write32(FIXTURE_GPA.SHADOW_VMCS, (VMCS12_REVISION | 0x80000000) >>> 0);
    const checker = new NestedEntryChecker();
    const input = f.input();
    expect(checker.check(input)).toBe(ENTRY_CHECK_OK);
    expect(checker.check(input)).toBe(ENTRY_CHECK_OK);
    f.memory.write32(FIXTURE_GPA.SHADOW_VMCS, VMCS12_REVISION);
    const result = checker.check(input);
    expect(result.ok ? "ok" : result.rule.id).toBe("guest.vmcs-link.shadow-indicator");
  });

  it("the VM-entry MSR-load list is written on every entry, also when nothing changed", () => {
    const f = baselineFixture().entryMsrList([
      [MSR.IA32_TIME_STAMP_COUNTER, 0, 7],
      [MSR.IA32_TIME_STAMP_COUNTER, 0, 8],
    ]);
    const { writes, writer } = msrLog();
    f.writeMsr = writer;
    const checker = new NestedEntryChecker({ includeHardware: false });
    const input = f.input();
    for (let i = 0; i < 3; i++) expect(checker.check(input)).toBe(ENTRY_CHECK_OK);
    expect(writes.map((w) => w[1])).toEqual([7, 8, 7, 8, 7, 8]);
    // The list's memory changes alone: the refused MSR is seen at once.
    f.memory.write32(FIXTURE_GPA.MSR_LIST + 16, 0x1234);
    expect(checker.check(input)).toEqual({
      ok: false,
      rule: ENTRY_CHECK_RULES.find((r) => r.id === "msr-load.entries"),
      outcome: exit34(2),
    });
  });

  it("a rule that starts reading a field (a control bit turned on) is re-run when that field changes", () => {
    const f = baselineFixture();
    const checker = new NestedEntryChecker();
    const input = f.input();
    expect(checker.check(input)).toBe(ENTRY_CHECK_OK);
    // Load debug controls: guest.dr7.reserved now reads GUEST_DR7 (0x400, valid).
    f.setBits("VM_ENTRY_CONTROLS", N.VM_ENTRY_LOAD_DEBUG_CONTROLS);
    expect(checker.check(input)).toBe(ENTRY_CHECK_OK);
    f.set("GUEST_DR7", 0x100000400n);
    const result = checker.check(input);
    expect(result.ok ? "ok" : result.rule.id).toBe("guest.dr7.reserved");
  });

  it("memory whose size changes is a new input (isBacked depends on it)", () => {
    const f = baselineFixture().set("VMCS_LINK_POINTER", 0x800000);
    f.memory.write32(0x800000, VMCS12_REVISION);
    let size = f.memory.size;
    const backing = f.memory;
    const resizable: PhysicalMemory = {
      get size() {
        return size;
      },
      read8: (pa) => backing.read8(pa),
      read16: (pa) => backing.read16(pa),
      read32: (pa) => backing.read32(pa),
      read64: (pa) => backing.read64(pa),
      write8: (pa, v) => backing.write8(pa, v),
      write16: (pa, v) => backing.write16(pa, v),
      write32: (pa, v) => backing.write32(pa, v),
      write64: (pa, lo, hi) => backing.write64(pa, lo, hi),
      readBytes: (pa, length) => backing.readBytes(pa, length),
      writeBytes: (pa, bytes) => backing.writeBytes(pa, bytes),
    };
    const input = { ...f.input(), memory: resizable };
    const checker = new NestedEntryChecker();
    expect(checker.check(input)).toBe(ENTRY_CHECK_OK);
    size = 0x100000;
    const result = checker.check(input);
    expect(result.ok ? "ok" : result.rule.id).toBe("guest.vmcs-link.readable");
  });

  it("a memory of another size is a new input", () => {
    const f = baselineFixture().set("VMCS_LINK_POINTER", 0x800000);
    f.memory.write32(0x800000, VMCS12_REVISION);
    const checker = new NestedEntryChecker();
    expect(checker.check(f.input())).toBe(ENTRY_CHECK_OK);
    const smaller = new DenseMemory(0x100000);
    const result = checker.check({ ...f.input(), memory: smaller });
    expect(result.ok ? "ok" : result.rule.id).toBe("guest.vmcs-link.readable");
  });
});

describe("coverage", () => {
  it("every rule was the first failure (or, when shadowed, in the report) of some test above", () => {
    const missing = ENTRY_CHECK_RULES.map((r) => r.id).filter((id) => !exercised.has(id));
    expect(missing).toEqual([]);
  });

  it("checking an entry that passes allocates no result object", () => {
    const f = baselineFixture();
    const input = f.input();
    expect(checkNestedVmEntry(input)).toBe(checkNestedVmEntry(input));
  });
});
