import { CountingMeter, VMX_EVENTS } from "@nestvisor/vmx";
import { DEBUGCTL, MSR } from "@nestvisor/x86-arch";
import { describe, expect, it } from "vitest";
import { builtinWorkload } from "./builtin-workloads";
import { HYPERVISOR_EVENTS } from "./hypervisor-events";
import { resolveFlags } from "./kernel-presets";
import { Machine } from "./machine";
import { msrBitmapIntercepts } from "./msr-bitmap";
import { runWorkload } from "./run-workload";
import { VMCS_FIELD as F } from "./vmcs-field-encodings";
import { workload } from "./workload-builder";

/**
 * The host DEBUGCTL snapshot before every VM entry (kvm: vcpu_enter_guest → get_debugctlmsr,
 * 189ecdb3e112), and KVM's IA32_DEBUGCTL emulation for its guest (vmx_get_msr / vmx_set_msr).
 */

const V612 = resolveFlags("v6.12", {});
const WITHOUT = resolveFlags("v6.12", { hostDebugctlPerEntry: false });

function cpuidMachine(level: number, config = V612) {
  const meter = new CountingMeter([VMX_EVENTS, HYPERVISOR_EVENTS]);
  const machine = new Machine({ program: builtinWorkload("cpuid", { level, iterations: 4 }), config, meter });
  return { machine, meter };
}

describe("host DEBUGCTL read before every entry (hostDebugctlPerEntry)", () => {
  it("is a native RDMSR at L0: one per entry, no exit", () => {
    const on = cpuidMachine(1);
    on.machine.run();
    const off = cpuidMachine(1, WITHOUT);
    off.machine.run();
    const entries = on.meter.get(HYPERVISOR_EVENTS.HARDWARE_VM_ENTRY);
    expect(on.meter.get(HYPERVISOR_EVENTS.RDMSR_DEBUGCTL)).toBe(entries);
    expect(on.meter.get(HYPERVISOR_EVENTS.HARDWARE_VM_EXIT)).toBe(
      off.meter.get(HYPERVISOR_EVENTS.HARDWARE_VM_EXIT),
    );
    expect(off.meter.get(HYPERVISOR_EVENTS.RDMSR_DEBUGCTL)).toBe(0);
  });

  it("is an RDMSR exit of L1 that L0's MSR handler serves, once per entry into L2", () => {
    const on = cpuidMachine(2);
    on.machine.run();
    const off = cpuidMachine(2, WITHOUT);
    off.machine.run();
    const l1Entries = off.meter.get(HYPERVISOR_EVENTS.NESTED_VM_ENTRY);
    // One more exit per entry L1 makes into L2, each handled by L0's MSR handler.
    expect(
      on.meter.get(HYPERVISOR_EVENTS.HARDWARE_VM_EXIT) - off.meter.get(HYPERVISOR_EVENTS.HARDWARE_VM_EXIT),
    ).toBe(l1Entries);
    expect(on.meter.get(HYPERVISOR_EVENTS.EXIT_HANDLER_MSR)).toBe(l1Entries);
    expect(off.meter.get(HYPERVISOR_EVENTS.EXIT_HANDLER_MSR)).toBe(0);
    expect(on.meter.get(HYPERVISOR_EVENTS.NESTED_EXIT_HANDLED_BY_L0)).toBe(0);
    expect(on.machine.kvms[1]!.hostDebugctl).toBe(0);
  });

  it("does not exit when L0's MSR bitmap lets DEBUGCTL reads through (SDM 26.1.3)", () => {
    const { machine, meter } = cpuidMachine(2);
    const l0 = machine.kvms[0]!;
    const bitmap = l0.vmcs01.read(F.MSR_BITMAP) + l0.vmcs01.hi * 2 ** 32;
    const memory = machine.hardware.memory;
    expect(msrBitmapIntercepts(memory, bitmap, MSR.IA32_DEBUGCTL, false)).toBe(true);
    // Read bitmap for low MSRs at offset 0: byte 1D9H >> 3, bit 1D9H & 7.
    const at = bitmap + (MSR.IA32_DEBUGCTL >>> 3);
    memory.write8(at, memory.read8(at) & ~(1 << (MSR.IA32_DEBUGCTL & 7)));
    // Building the machine already entered L2 once, with the bit still set.
    const before = meter.get(HYPERVISOR_EVENTS.EXIT_HANDLER_MSR);
    machine.run();
    expect(meter.get(HYPERVISOR_EVENTS.EXIT_HANDLER_MSR)).toBe(before);
    expect(meter.get(HYPERVISOR_EVENTS.NESTED_VM_ENTRY)).toBeGreaterThan(4);
    expect(machine.kvms[1]!.hostDebugctl).toBe(0);
  });
});

describe("IA32_DEBUGCTL emulated for the guest (vmx_get_msr / vmx_set_msr)", () => {
  const program = (level: 1 | 2, value: number) =>
    workload("debugctl").setup({ level }).wrmsr(MSR.IA32_DEBUGCTL, value).rdmsr(MSR.IA32_DEBUGCTL).build();

  it.each<1 | 2>([1, 2])(
    "drops LBR and BTF, which the guest is not offered, and reads 0 back (level %i)",
    (level) => {
      const zero = runWorkload({ program: program(level, 0), config: V612 });
      const r = runWorkload({ program: program(level, DEBUGCTL.LBR | DEBUGCTL.BTF), config: V612 });
      expect(r.snapshot.readDigest).toBe(zero.snapshot.readDigest);
      expect(r.snapshot.gprs).toEqual(zero.snapshot.gprs);
      expect(zero.counts.EXIT_HANDLER_MSR).toBeGreaterThanOrEqual(2);
    },
  );

  it("refuses a bit KVM answers with #GP, naming the MSR", () => {
    expect(() => runWorkload({ program: program(1, DEBUGCTL.FREEZE_IN_SMM), config: V612 })).toThrow(
      /WRMSR IA32_DEBUGCTL 0x4000 .*#GP/,
    );
  });
});
