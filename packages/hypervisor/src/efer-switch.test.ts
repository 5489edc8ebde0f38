import { MMU_EVENTS } from "@nestvisor/mmu";
import { CountingMeter, VM_ENTRY_CTLS, VM_EXIT_CTLS, VMX_EVENTS } from "@nestvisor/vmx";
import { EFER } from "@nestvisor/x86-arch";
import { describe, expect, it } from "vitest";
import { HYPERVISOR_BOOT_STATE } from "./guest-boot-state";
import { HYPERVISOR_EVENTS } from "./hypervisor-events";
import { resolveFlags } from "./kernel-presets";
import { Machine } from "./machine";
import { VMCS_FIELD as F } from "./vmcs-field-encodings";
import { workload } from "./workload-builder";

/**
 * EFER across VM transitions (kvm: vmx_set_efer → update_transition_efer; SDM 27.3.2.1, 28.5.1):
 * KVM switches EFER through the VMCS ("load IA32_EFER" on entry and exit, GUEST_IA32_EFER) only
 * when the guest's differs from the host's; otherwise the processor keeps its EFER and sets LMA
 * (and, with paging, LME) from "IA-32e mode guest".
 */
function machineFor(level: 1 | 2, paging: "4-level" | "32-bit", flags: Record<string, boolean> = {}) {
  const meter = new CountingMeter([VMX_EVENTS, MMU_EVENTS, HYPERVISOR_EVENTS]);
  const program = workload("efer")
    .setup({ level, paging, addressSpaces: [{ name: "a", mappings: [{ gva: 0x100000, pages: 4 }] }] })
    .loop(3, (b) => b.cpuid(0))
    .build();
  return new Machine({ program, config: resolveFlags("v6.12", flags), meter });
}

const LOAD_ENTRY = VM_ENTRY_CTLS.VM_ENTRY_LOAD_IA32_EFER;
const LOAD_EXIT = VM_EXIT_CTLS.VM_EXIT_LOAD_IA32_EFER;
const HOST = HYPERVISOR_BOOT_STATE.efer;

describe("EFER switching at VM entry and exit", () => {
  it("a 64-bit guest with the host's EFER: no switch, the CPU derives LMA/LME from IA-32e mode", () => {
    for (const level of [1, 2] as const) {
      const m = machineFor(level, "4-level");
      const running = m.hardware.runningVmcs!;
      expect(running.read(F.VM_ENTRY_CONTROLS) & LOAD_ENTRY).toBe(0);
      expect(running.read(F.VM_EXIT_CONTROLS) & LOAD_EXIT).toBe(0);
      expect(running.read(F.VM_ENTRY_CONTROLS) & VM_ENTRY_CTLS.VM_ENTRY_IA32E_MODE).not.toBe(0);
      expect(m.hardware.guestEfer).toBe(HOST);
    }
  });

  it("a 32-bit guest: its EFER is switched through the VMCS, and the host's comes back at the exit", () => {
    for (const level of [1, 2] as const) {
      const m = machineFor(level, "32-bit");
      const running = m.hardware.runningVmcs!;
      expect(running.read(F.VM_ENTRY_CONTROLS) & LOAD_ENTRY).toBe(LOAD_ENTRY);
      expect(running.read(F.VM_EXIT_CONTROLS) & LOAD_EXIT).toBe(LOAD_EXIT);
      expect(running.read(F.VM_ENTRY_CONTROLS) & VM_ENTRY_CTLS.VM_ENTRY_IA32E_MODE).toBe(0);
      expect(m.hardware.guestEfer & EFER.LMA).toBe(0);
      expect(m.hardware.guestEfer).toBe(running.read(F.GUEST_IA32_EFER));
      m.run();
      expect(m.hardware.rootEfer).toBe(HOST);
    }
  });

  it("without EPT KVM runs the guest with NX on (update_transition_efer), so a guest without NX is switched", () => {
    const m = machineFor(1, "32-bit", { ept: false });
    expect(m.hardware.guestEfer & EFER.NXE).toBe(EFER.NXE);
    expect(m.kvms[0]!.transitionEfer(0)).toBe(EFER.NXE);
    expect(m.kvms[0]!.transitionEfer(EFER.LME)).toBe(EFER.NXE);
  });
});
