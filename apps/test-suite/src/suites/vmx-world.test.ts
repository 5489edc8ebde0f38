import { enlightenedVmcsPolicies, resolveFlags } from "@nestvisor/hypervisor";
import { ShadowVmcsSync, VM_INSTRUCTION_ERROR, VMX_OUTCOME, VMX_RESULT } from "@nestvisor/vmx";
import { describe, expect, it } from "vitest";
import { KVM_MODEL } from "../kvm-model";
import { DEFAULT_PARTS } from "../model-parts";
import { loadBaseline } from "./vmcs12-baseline";
import { enc, GUEST_STATE_FIELDS, L1, VmxWorld, worldPolicies } from "./vmx-world";

const world = (preset = "v6.12", flags = {}) => new VmxWorld(DEFAULT_PARTS, resolveFlags(preset, flags));

describe("VmxWorld", () => {
  it("serves L1's VMREAD/VMWRITE of a shadow-RW field from the shadow VMCS, and others by exits", () => {
    const w = world().enterVmxWithCurrent();
    expect(w.vmwrite(enc("GUEST_RIP"), 0x1234)).toBe(VMX_RESULT.SUCCEED);
    expect(w.servedByShadow).toBe(true);
    expect(w.vmwrite(enc("GUEST_ES_SELECTOR"), 0x10)).toBe(VMX_RESULT.SUCCEED);
    expect(w.servedByShadow).toBe(false);
    expect(w.read("GUEST_RIP")).toBe(0x1234n);
    expect(w.read("GUEST_ES_SELECTOR")).toBe(0x10n);
  });

  it("without shadowing every access exits", () => {
    const w = world("v6.12", { shadowVmcs: false }).enterVmxWithCurrent();
    w.vmwrite(enc("GUEST_RIP"), 1);
    expect(w.servedByShadow).toBe(false);
    expect(w.shadowVmcs).toBeNull();
  });

  it("runs a nested entry and exit: L1 reads the state L2 left and the exit information", () => {
    const w = loadBaseline(world());
    expect(w.vmlaunch()).toBe(VMX_OUTCOME.ENTER_NON_ROOT);
    expect(w.state.guestMode).toBe(true);
    w.exitToL1(10, 0, (p) => {
      p.vmwrite(enc("GUEST_RSP"), 0x5000);
    });
    expect(w.read("VM_EXIT_REASON")).toBe(10n);
    expect(w.read("GUEST_RSP")).toBe(0x5000n);
    expect(() => w.exitToL1(10)).toThrow(/while L1 runs/);
  });

  it("lets L2 access the shadow VMCS L1 linked, and exits when L1's bitmap says so", () => {
    const w = loadBaseline(world());
    w.write("VMREAD_BITMAP", L1.VMREAD_BITMAP);
    w.write("VMWRITE_BITMAP", L1.VMWRITE_BITMAP);
    w.write("CPU_BASED_VM_EXEC_CONTROL", Number(w.read("CPU_BASED_VM_EXEC_CONTROL")) | 0x8000_0000);
    w.write("SECONDARY_VM_EXEC_CONTROL", 1 << 14);
    w.write("VMCS_LINK_POINTER", L1.SHADOW_VMCS);
    w.vmlaunch();
    expect(w.lastEntry).toEqual({ kind: "entered" });
    // Bitmaps are zero (nothing intercepted): L2's VMWRITE lands in the shadow.
    expect(w.l2Access(true, enc("GUEST_RIP"), 0, 0x77)).toBe(VMX_RESULT.SUCCEED);
    expect(w.l2Access(true, 0x8000)).toBe("exit");
    w.exitToL1(18);
    w.vmptrld(L1.SHADOW_VMCS);
    expect(w.read("GUEST_RIP")).toBe(0x77n);
  });

  it("runs L1 and L2 on the runtime's hardware CPU: entries, exits and shadow VMREAD/VMWRITE", () => {
    const w = loadBaseline(world());
    expect(w.hardware.running).toBe(w.l1);
    expect(w.hardware.runningVmcs).toBe(w.vmcs01);
    w.vmlaunch();
    expect(w.hardware.running).toBe(w.l2);
    expect(w.hardware.runningVmcs).toBe(w.vmcs02);
    w.exitToL1(10);
    expect(w.hardware.running).toBe(w.l1);
    // The exit the hardware stored in vmcs02 (SDM 28.2) before L0 handled it.
    expect(w.vmcs02.read(enc("VM_EXIT_REASON"))).toBe(10);
    // An encoding with bits above 14 set is never shadowed (SDM 26.1.3): an exit, and L0 fails it.
    expect(w.vmwrite(enc("GUEST_RIP"), 1, 0, 1)).toBe(VM_INSTRUCTION_ERROR.UNSUPPORTED_VMCS_COMPONENT);
    expect(w.servedByShadow).toBe(false);
  });

  it("with an enlightened-VMCS policy L1's VMREAD/VMWRITE are memory accesses, and L0 keeps vmcs12 coherent", () => {
    const w = loadBaseline(new VmxWorld(DEFAULT_PARTS, resolveFlags(), enlightenedVmcsPolicies()));
    expect(w.vmwrite(enc("GUEST_RSP"), 0x1000)).toBe(VMX_RESULT.SUCCEED);
    expect(w.servedByAccess).toBe(true);
    expect(w.servedByShadow).toBe(false);
    expect(w.vmlaunch()).toBe(VMX_OUTCOME.ENTER_NON_ROOT);
    expect(w.processor.vmread(enc("GUEST_RSP"))).toBe(0x1000);
    w.exitToL1(10, 0, (p) => {
      p.vmwrite(enc("GUEST_RSP"), 0x5000);
    });
    expect(w.read("GUEST_RSP")).toBe(0x5000n);
    expect(w.servedByAccess).toBe(true);
    expect(w.read("VM_EXIT_REASON")).toBe(10n);
    // An encoding the page does not hold takes the ordinary path: an exit, and L0 fails it.
    expect(w.vmread(0x7ffe)).toBe(VM_INSTRUCTION_ERROR.UNSUPPORTED_VMCS_COMPONENT);
    expect(w.servedByAccess).toBe(false);
  });

  it("gives kvm-unit-tests' L1 (no enlightenment) KVM's sync when the model pairs its sync with a VMCS access", () => {
    const evmcs = { ...KVM_MODEL, name: "evmcs", policies: enlightenedVmcsPolicies() };
    expect(worldPolicies(evmcs, false)).toEqual({});
    expect(worldPolicies(evmcs, true)).toEqual(evmcs.policies);
    const nestedSync = (options: ConstructorParameters<typeof ShadowVmcsSync>[0]) =>
      new ShadowVmcsSync(options);
    const syncOnly = { ...KVM_MODEL, name: "sync", policies: { nestedSync } };
    expect(worldPolicies(syncOnly, false)).toEqual({ nestedSync });
    expect(worldPolicies(KVM_MODEL, true)).toEqual({});
  });

  it("copies every guest-state field (and no HIGH alias)", () => {
    expect(GUEST_STATE_FIELDS.length).toBeGreaterThan(50);
    expect(GUEST_STATE_FIELDS).toContain(enc("GUEST_RIP"));
    expect(GUEST_STATE_FIELDS.every((e) => (e & 1) === 0)).toBe(true);
  });
});
