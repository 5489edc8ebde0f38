import { CountingMeter, CPU_BASED_CTLS, SECONDARY_EXEC_CTLS as S2, Vmcs12 } from "@nestvisor/vmx";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { COST_CATALOGS } from "./cost-catalogs";
import { resolveFlags } from "./kernel-presets";
import { vmcs02Secondary } from "./kvm-nested";
import { Machine } from "./machine";
import { VMCS_FIELD as F, vmcsFieldEncoding } from "./vmcs-field-encodings";
import { workload } from "./workload-builder";

/**
 * vmx_set_cr0's guest-state check (kvm: vmx_emulation_required → vmx_guest_state_valid →
 * __vmx_guest_state_valid) and the unrestricted-guest control of vmcs02 it depends on
 * (kvm: is_unrestricted_guest, prepare_vmcs02_early).
 */

const SEGMENT_FIELD_NAMES = ["ES", "CS", "SS", "DS", "FS", "GS", "TR", "LDTR"].flatMap((seg) =>
  ["SELECTOR", "BASE", "LIMIT", "AR_BYTES"].map((field) => `GUEST_${seg}_${field}`),
);
const SEGMENT_FIELDS = new Set(SEGMENT_FIELD_NAMES.map(vmcsFieldEncoding));

/** Segment-field VMREADs L0 makes while `level`'s guest writes CR0 `writes` times under `flags`. */
function segmentReads(level: 1 | 2, flags: Record<string, boolean>, writes: number) {
  const m = new Machine({
    program: workload("cr0-writes")
      .setup({ level })
      .loop(writes, (b) => b.movToCr0(0x80050033).movToCr0(0x80040033))
      .build(),
    config: resolveFlags("v6.12", flags),
    meter: new CountingMeter(COST_CATALOGS),
  });
  const p = m.kvms[0]!.processor;
  const vmread = p.vmread.bind(p);
  let reads = 0;
  p.vmread = (encoding: number) => {
    if (SEGMENT_FIELDS.has(encoding)) reads++;
    return vmread(encoding);
  };
  m.run();
  return { reads, meter: m.meter as CountingMeter };
}

describe("vmx_set_cr0's guest-state check", () => {
  it("reads no segment with unrestricted guest (EPT)", () => {
    expect(segmentReads(1, {}, 3).reads).toBe(0);
  });

  it("reads all eight segments (32 fields) once per CR0 write without it (ept=off)", () => {
    // Each write that exits (the first equals the boot CR0, so it does not) reads them again: the
    // segment cache is reset per exit.
    const { reads, meter } = segmentReads(1, { ept: false }, 3);
    expect(meter.byName("EXIT_HANDLER_CR_ACCESS")).toBe(5);
    expect(reads).toBe(5 * 32);
  });

  it("in a guest hypervisor without EPT, its 30 non-shadowed segment reads per CR0 write are exits to L0", () => {
    const run = (flags: Record<string, boolean>) => {
      const m = new Machine({
        program: workload("cr0-writes")
          .setup({ level: 2 })
          .loop(2, (b) => b.movToCr0(0x80050033).movToCr0(0x80040033))
          .build(),
        config: resolveFlags("v6.12", flags),
        meter: new CountingMeter(COST_CATALOGS),
      });
      const meter = m.meter as CountingMeter;
      const before = meter.snapshot();
      m.run();
      return meter.diff(before);
    };
    // With EPT, CR0.WP is L2's own bit: the writes do not exit.
    expect(run({}).HARDWARE_VM_EXIT ?? 0).toBe(0);
    // Without, L1 owns WP: 3 of the 4 writes change it (the first equals the boot CR0) and are
    // reflected to L1, whose vmx_set_cr0 reads 32 segment fields; CS and SS AR bytes are shadow
    // fields, the other 30 exit and are emulated by L0.
    const d = run({ l1Ept: false });
    expect(d.NESTED_EXIT_REFLECTED).toBe(3);
    expect(d.EMULATED_VMREAD).toBe(3 * 30);
  });
});

describe("vmcs02's secondary controls (prepare_vmcs02_early)", () => {
  const vmcs12With = (activate: boolean, secondary: number) => {
    const v = new Vmcs12();
    v.write(F.CPU_BASED_VM_EXEC_CONTROL, activate ? CPU_BASED_CTLS.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS : 0);
    v.write(F.SECONDARY_VM_EXEC_CONTROL, secondary >>> 0);
    return v;
  };

  it("never PML or VMCS shadowing, unrestricted guest only from vmcs12, vmcs12's bits when it activates them", () => {
    fc.assert(
      fc.property(
        fc.nat({ max: 0xffffffff }),
        fc.nat({ max: 0xffffffff }),
        fc.boolean(),
        (s01, s12, activate) => {
          const s02 = vmcs02Secondary(s01, vmcs12With(activate, s12));
          const from12 = activate ? s12 : 0;
          expect(s02 & (S2.SECONDARY_EXEC_ENABLE_PML | S2.SECONDARY_EXEC_SHADOW_VMCS)).toBe(0);
          expect((s02 & S2.SECONDARY_EXEC_UNRESTRICTED_GUEST) !== 0).toBe(
            (from12 & S2.SECONDARY_EXEC_UNRESTRICTED_GUEST) !== 0,
          );
          const kept = ~(S2.SECONDARY_EXEC_ENABLE_PML | S2.SECONDARY_EXEC_SHADOW_VMCS);
          expect((s02 & from12 & kept) >>> 0).toBe((from12 & kept) >>> 0);
          // vmcs01's EPT and VPID stay; its APIC virtualization does not (vmcs12's alone).
          expect(s02 & S2.SECONDARY_EXEC_ENABLE_EPT).toBe((s01 | from12) & S2.SECONDARY_EXEC_ENABLE_EPT);
          expect(s02 & S2.SECONDARY_EXEC_APIC_REGISTER_VIRT).toBe(
            from12 & S2.SECONDARY_EXEC_APIC_REGISTER_VIRT,
          );
        },
      ),
    );
  });
});
