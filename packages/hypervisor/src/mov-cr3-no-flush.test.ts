import { CountingMeter } from "@nestvisor/vmx";
import { CR4, PAGING_MODE } from "@nestvisor/x86-arch";
import { describe, expect, it } from "vitest";
import { BUILTIN_LAYOUT } from "./builtin-workloads";
import { COST_CATALOGS } from "./cost-catalogs";
import { resolveFlags } from "./kernel-presets";
import { Machine } from "./machine";
import { workload } from "./workload-builder";
import { defaultControlRegisters } from "./workload-compiler";

/**
 * MOV to CR3 with bit 63 set after the guest turned CR4.PCIDE off (a program that never sets PCIDE
 * is refused when it is loaded): bit 63 is then a reserved bit, and the guest gets
 * #GP(0) with CR3 unchanged — from the processor when the MOV does not exit (EPT), from KVM's
 * kvm_set_cr3 → kvm_complete_insn_gp when it does (shadow paging), the same either way.
 */
const CR4_BOOT = defaultControlRegisters(PAGING_MODE.LEVEL4).cr4;

function run(level: 1 | 2, flags: Record<string, boolean>, pcidOff = true) {
  const L = BUILTIN_LAYOUT;
  const space = (name: string, frame: number) => ({
    name,
    mappings: [{ gva: L.USER_BASE, gpa: L.HIGH_BASE + frame * 4096, pages: 1, executable: false }],
  });
  const program = workload("cr3-no-flush-without-pcid")
    .setup({
      level,
      paging: "4-level",
      memory: "32MiB",
      cpl: 0,
      cr4: CR4_BOOT | CR4.PCIDE,
      addressSpaces: [space("a", 0), space("b", 1)],
      initialAddressSpace: "a",
    })
    // PCIDs on at boot, off from here: the no-flush bit below is then a reserved bit.
    .movToCr4(pcidOff ? CR4_BOOT : CR4_BOOT | CR4.PCIDE)
    .write(L.USER_BASE, { size: 8, value: 0xa })
    .movToCr3({ space: "b" })
    .write(L.USER_BASE, { size: 8, value: 0xb })
    .movToCr3({ space: "a" }, { noFlush: true })
    .read(L.USER_BASE, { size: 8 })
    .build();
  const m = new Machine({
    program,
    config: resolveFlags("v6.12", flags),
    meter: new CountingMeter(COST_CATALOGS),
  });
  m.run();
  return m.executor.observations;
}

describe("MOV to CR3 with the no-flush bit and CR4.PCIDE = 0", () => {
  const reference = run(1, {});
  it("is a #GP(0) that leaves CR3 as it was; with PCIDs still on, the same MOV switches to space a", () => {
    expect(reference.guestFaults).toBe(1);
    const legal = run(1, {}, false);
    expect(legal.guestFaults).toBe(0);
    expect(legal.digest).not.toBe(reference.digest);
  });

  it.each([
    ["L1 on shadow paging (KVM injects it)", 1, { ept: false }],
    ["L2 with nested EPT (the processor raises it)", 2, {}],
    ["L2 with L1 on shadow paging (L1's KVM injects it)", 2, { l1Ept: false }],
  ] as const)("%s: the same", (_name, level, flags) => {
    const o = run(level, flags);
    expect(o.guestFaults).toBe(1);
    expect(o.digest).toBe(reference.digest);
  });
});
