import { MMU_EVENTS } from "@nestvisor/mmu";
import {
  CountingMeter,
  EXIT_REASON,
  GUEST_ACTIVITY,
  VM_ENTRY_CTLS,
  VM_EXIT_CTLS,
  VMX_EVENTS,
} from "@nestvisor/vmx";
import { DR7_RESET, EFER, IA32_PAT_RESET } from "@nestvisor/x86-arch";
import { describe, expect, it } from "vitest";
import { builtinWorkload } from "./builtin-workloads";
import { LINUX_PAT } from "./guest-boot-state";
import { HYPERVISOR_EVENTS } from "./hypervisor-events";
import { resolveFlags } from "./kernel-presets";
import { Machine } from "./machine";
import { steadyStateCounts } from "./testing/steady-state-counts";
import { VMCS_FIELD as F } from "./vmcs-field-encodings";
import { workload } from "./workload-builder";

/**
 * The vCPU-state part of sync_vmcs02_to_vmcs12 (kvm-nested.ts #syncVcpuStateToVmcs12) and the
 * debug/PAT controls a KVM guest hypervisor sets in its VMCS (kvm: setup_vmcs_config): a machine
 * stopped in L2, vmcs12 changed behind L1's back, then L0 reflects an exit to L1.
 */
function stoppedInL2(preset: string, flags: Record<string, boolean> = {}) {
  const meter = new CountingMeter([VMX_EVENTS, MMU_EVENTS, HYPERVISOR_EVENTS]);
  const machine = new Machine({
    program: builtinWorkload("cpuid", { level: 2, iterations: 1 }),
    config: resolveFlags(preset, flags),
    meter,
  });
  const l0 = machine.kvms[0]!;
  expect(l0.nested.guestMode).toBe(true);
  return {
    machine,
    l0,
    vmcs12: l0.nested.state.cachedVmcs12,
    vmcs02: machine.hardware.processor.current!,
    meter,
  };
}

type Stopped = ReturnType<typeof stoppedInL2>;

function reflectCpuid(s: Stopped): void {
  s.l0.regs.reset();
  s.l0.nested.nestedVmexit(EXIT_REASON.CPUID, 0, 0, 0);
}

describe("a KVM guest hypervisor's VM-entry and VM-exit controls (kvm: setup_vmcs_config)", () => {
  it("save and load debug controls and load IA32_PAT; never save IA32_EFER or IA32_PAT (6.12)", () => {
    const { vmcs12 } = stoppedInL2("v6.12");
    const exit = vmcs12.read(F.VM_EXIT_CONTROLS);
    expect(exit & VM_EXIT_CTLS.VM_EXIT_SAVE_DEBUG_CONTROLS).not.toBe(0);
    expect(exit & VM_EXIT_CTLS.VM_EXIT_LOAD_IA32_PAT).not.toBe(0);
    expect(exit & (VM_EXIT_CTLS.VM_EXIT_SAVE_IA32_EFER | VM_EXIT_CTLS.VM_EXIT_SAVE_IA32_PAT)).toBe(0);
    const entry = vmcs12.read(F.VM_ENTRY_CONTROLS);
    expect(entry & VM_ENTRY_CTLS.VM_ENTRY_LOAD_DEBUG_CONTROLS).not.toBe(0);
    expect(entry & VM_ENTRY_CTLS.VM_ENTRY_LOAD_IA32_PAT).not.toBe(0);
    expect(vmcs12.read(F.GUEST_DR7)).toBe(DR7_RESET);
    // L2 (a test guest) has the power-up PAT; L1's host, a Linux, has the PAT Linux programs.
    expect([vmcs12.read(F.GUEST_IA32_PAT), vmcs12.hi]).toEqual([IA32_PAT_RESET.lo, IA32_PAT_RESET.hi]);
    expect([vmcs12.read(F.HOST_IA32_PAT), vmcs12.hi]).toEqual([LINUX_PAT.lo, LINUX_PAT.hi]);
  });

  it("L1's PAT is Linux's: in L0's vmcs01, and in vmcs02 when vmcs12 does not load a PAT", () => {
    const s = stoppedInL2("v6.12");
    expect([s.l0.vmcs01.read(F.GUEST_IA32_PAT), s.l0.vmcs01.hi]).toEqual([LINUX_PAT.lo, LINUX_PAT.hi]);
    expect([s.l0.vmcs01.read(F.HOST_IA32_PAT), s.l0.vmcs01.hi]).toEqual([LINUX_PAT.lo, LINUX_PAT.hi]);
    // Run the next entry with "load IA32_PAT" cleared in vmcs12: L0 gives L2 L1's PAT.
    const entry = s.vmcs12.read(F.VM_ENTRY_CONTROLS);
    s.vmcs12.write(F.VM_ENTRY_CONTROLS, (entry & ~VM_ENTRY_CTLS.VM_ENTRY_LOAD_IA32_PAT) >>> 0);
    s.machine.run();
    expect(s.l0.nested.guestMode).toBe(true);
    expect([s.vmcs02.read(F.GUEST_IA32_PAT), s.vmcs02.hi]).toEqual([LINUX_PAT.lo, LINUX_PAT.hi]);
  });

  it("L0 runs L2 with vmcs12's DR7 as the register holds it and vmcs12's PAT", () => {
    const s = stoppedInL2("v6.12");
    expect(s.vmcs02.read(F.GUEST_DR7)).toBe(DR7_RESET);
    expect([s.vmcs02.read(F.GUEST_IA32_PAT), s.vmcs02.hi]).toEqual([IA32_PAT_RESET.lo, IA32_PAT_RESET.hi]);
  });
});

describe("sync_vmcs02_to_vmcs12 from vCPU state", () => {
  it("writes the activity state, DR7 and vmcs02's IA-32e mode bit into vmcs12", () => {
    const s = stoppedInL2("v6.12");
    const entry = s.vmcs12.read(F.VM_ENTRY_CONTROLS);
    expect(entry & VM_ENTRY_CTLS.VM_ENTRY_IA32E_MODE).not.toBe(0);
    // What L1 last wrote no longer matches what L2 runs with: the exit brings vmcs12 back in line.
    s.vmcs12.write(F.VM_ENTRY_CONTROLS, (entry & ~VM_ENTRY_CTLS.VM_ENTRY_IA32E_MODE) >>> 0);
    s.vmcs12.write(F.GUEST_ACTIVITY_STATE, GUEST_ACTIVITY.HLT);
    s.vmcs12.write(F.GUEST_DR7, 0xff);
    reflectCpuid(s);
    expect(s.vmcs12.read(F.VM_ENTRY_CONTROLS)).toBe(entry);
    expect(s.vmcs12.read(F.GUEST_ACTIVITY_STATE)).toBe(GUEST_ACTIVITY.ACTIVE);
    expect(s.vmcs12.read(F.GUEST_DR7)).toBe(DR7_RESET);
  });

  it("leaves DR7 alone when vmcs12 does not save debug controls", () => {
    const s = stoppedInL2("v6.12");
    const exit = s.vmcs12.read(F.VM_EXIT_CONTROLS);
    s.vmcs12.write(F.VM_EXIT_CONTROLS, (exit & ~VM_EXIT_CTLS.VM_EXIT_SAVE_DEBUG_CONTROLS) >>> 0);
    s.vmcs12.write(F.GUEST_DR7, 0xff);
    reflectCpuid(s);
    expect(s.vmcs12.read(F.GUEST_DR7)).toBe(0xff);
  });

  it("writes EFER from the vCPU when vmcs12 saves IA32_EFER", () => {
    const s = stoppedInL2("v6.12");
    const exit = s.vmcs12.read(F.VM_EXIT_CONTROLS);
    s.vmcs12.write(F.VM_EXIT_CONTROLS, (exit | VM_EXIT_CTLS.VM_EXIT_SAVE_IA32_EFER) >>> 0);
    s.vmcs12.write(F.GUEST_IA32_EFER, 0);
    const l2Efer = s.l0.mmu.efer;
    expect(l2Efer & EFER.LMA).not.toBe(0);
    reflectCpuid(s);
    expect(s.vmcs12.read(F.GUEST_IA32_EFER)).toBe(l2Efer);
  });

  it("reads DEBUGCTL (and the PAT when saved) back from vmcs02 only without flag E", () => {
    const vmreadsPerExit: number[] = [];
    for (const trims of [false, true]) {
      const s = stoppedInL2("v6.12", { nestedEntryWriteTrims: trims });
      const exit = s.vmcs12.read(F.VM_EXIT_CONTROLS);
      s.vmcs12.write(F.VM_EXIT_CONTROLS, (exit | VM_EXIT_CTLS.VM_EXIT_SAVE_IA32_PAT) >>> 0);
      s.vmcs02.write(F.GUEST_IA32_DEBUGCTL, 1, 0);
      s.vmcs02.write(F.GUEST_IA32_PAT, 0x06060606, 0x06060606);
      const vmreads = s.meter.counts[VMX_EVENTS.VMREAD]!;
      reflectCpuid(s);
      expect(s.vmcs12.read(F.GUEST_IA32_DEBUGCTL)).toBe(trims ? 0 : 1);
      expect(s.vmcs12.read(F.GUEST_IA32_PAT)).toBe(trims ? IA32_PAT_RESET.lo : 0x06060606);
      vmreadsPerExit.push(s.meter.counts[VMX_EVENTS.VMREAD]! - vmreads);
    }
    // Flag E's exit-side trims: SYSENTER_CS/ESP/EIP, PDPTR0–3, DEBUGCTL and (saved) PAT.
    expect(vmreadsPerExit[0]! - vmreadsPerExit[1]!).toBe(3 + 4 + 1 + 1);
  });

  it("the next nested entry loads vmcs12's DR7 as the register holds it, and the exit saves that", () => {
    const s = stoppedInL2("v6.12");
    reflectCpuid(s);
    // Reserved bits 12, 14 and 15 set, bit 10 clear: the vCPU's DR7 becomes 0x4ff.
    s.vmcs12.write(F.GUEST_DR7, 0xd0ff);
    // L0 enters L1, whose handler completes the CPUID and resumes L2.
    s.l0.enterGuest();
    s.machine.hardware.drive();
    expect(s.l0.nested.guestMode).toBe(true);
    expect(s.vmcs02.read(F.GUEST_DR7)).toBe(0x4ff);
    reflectCpuid(s);
    expect(s.vmcs12.read(F.GUEST_DR7)).toBe(0x4ff);
  });

  it("reads L2's PDPTEs back once per exit: with flag E only under PAE paging, before it on every exit", () => {
    const vmreads = (preset: string, paging: "pae" | "4-level") =>
      steadyStateCounts(
        (iterations, meter) =>
          new Machine({
            program: workload("pdpte")
              .setup({
                level: 2,
                paging,
                addressSpaces: [{ name: "a", mappings: [{ gva: 0x100000, pages: 4 }] }],
              })
              .loop(iterations, (b) => b.cpuid(0))
              .build(),
            config: resolveFlags(preset),
            meter,
          }),
      ).VMREAD!;
    // v5.2's sync_vmcs12 reads PDPTR0–3 with EPT whatever the paging mode: not a second time for PAE.
    expect(vmreads("v5.2", "pae")).toBe(vmreads("v5.2", "4-level"));
    // 6.12 reads them only with nested EPT and PAE paging.
    expect(vmreads("v6.12", "pae") - vmreads("v6.12", "4-level")).toBe(4);
  });
});
