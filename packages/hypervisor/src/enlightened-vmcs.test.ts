import { CountingMeter, fieldByName, LAUNCH_STATE, VMX_EVENTS, Vmcs12, vmcs12Layout } from "@nestvisor/vmx";
import { DenseMemory } from "@nestvisor/x86-arch";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { builtinWorkload } from "./builtin-workloads";
import {
  EnlightenedVmcsAccess,
  EnlightenedVmcsSync,
  EVMCS_ALWAYS_COPIED,
  EVMCS_CLEAN,
  EVMCS_CLEAN_ALL,
  EVMCS_CLEAN_FIELDS_OFFSET,
  EVMCS_GROUP_FIELDS,
  EVMCS_WHOLE_MASK_FIELDS,
  EVMCS_WRITE_BACK_FIELDS,
  enlightenedVmcsPolicies,
  evmcsCopyGroup,
  evmcsDirtyMask,
} from "./enlightened-vmcs";
import { createModel } from "./hypervisor-model";
import { hasNestedEntryHooks } from "./model-policies";

const enc = (name: string): number => {
  const f = fieldByName(name);
  if (f === undefined) throw new Error(name);
  return f.encoding;
};
const layout = vmcs12Layout();
const GPA = 0x3000;

function access() {
  const memory = new DenseMemory(0x10000);
  const meter = new CountingMeter();
  return { memory, meter, access: new EnlightenedVmcsAccess({ level: 1, memory, meter }) };
}

describe("eVMCS clean-field groups", () => {
  it("name vmcs12 fields, each in one group at most", () => {
    const seen = new Set<string>();
    for (const names of Object.values(EVMCS_GROUP_FIELDS)) {
      for (const name of names ?? []) {
        expect(seen.has(name), name).toBe(false);
        seen.add(name);
      }
    }
    for (const name of [
      ...seen,
      ...EVMCS_ALWAYS_COPIED,
      ...EVMCS_WHOLE_MASK_FIELDS,
      ...EVMCS_WRITE_BACK_FIELDS,
    ]) {
      expect(new Vmcs12().offsetOf(enc(name)), name).toBeGreaterThan(0);
    }
    for (const name of EVMCS_ALWAYS_COPIED) expect(seen.has(name)).toBe(false);
  });

  it("give every stored field a group to be copied with", () => {
    for (const f of layout.fields) expect(evmcsCopyGroup(f.encoding), f.name).toBeGreaterThanOrEqual(0);
    expect(evmcsCopyGroup(0x7ffe)).toBe(-1);
  });

  it("a write dirties its group, the whole mask for KVM's ALL fields, nothing for RIP", () => {
    expect(evmcsDirtyMask(enc("GUEST_RIP"))).toBe(0);
    expect(evmcsDirtyMask(enc("GUEST_RSP"))).toBe(EVMCS_CLEAN.GUEST_BASIC);
    expect(evmcsDirtyMask(enc("GUEST_ES_SELECTOR"))).toBe(EVMCS_CLEAN.GUEST_GRP2);
    expect(evmcsDirtyMask(enc("EPT_POINTER"))).toBe(EVMCS_CLEAN.CONTROL_XLAT);
    // The _HIGH half of a 64-bit field belongs to the same group.
    expect(evmcsDirtyMask(enc("EPT_POINTER") + 1)).toBe(EVMCS_CLEAN.CONTROL_XLAT);
    expect(evmcsDirtyMask(enc("PAGE_FAULT_ERROR_CODE_MASK"))).toBe(EVMCS_CLEAN_ALL);
    expect(evmcsDirtyMask(enc("EOI_EXIT_BITMAP0"))).toBe(EVMCS_CLEAN.OTHER);
    expect(evmcsDirtyMask(0x7ffe)).toBe(-1);
  });
});

describe("EnlightenedVmcsAccess", () => {
  it("VMWRITE then VMREAD of the page matches vmcs12's width rules, and clears the field's clean bits", () => {
    const fields = layout.fields;
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: fields.length - 1 }),
        fc.nat({ max: 0xffffffff }),
        fc.nat({ max: 0xffffffff }),
        (index, lo, hi) => {
          const field = fields[index]!;
          const { memory, access: a } = access();
          memory.write32(GPA + EVMCS_CLEAN_FIELDS_OFFSET, EVMCS_CLEAN_ALL);
          const oracle = new Vmcs12();
          oracle.write(field.encoding, lo, hi);
          expect(a.write(GPA, field.encoding, lo, hi)).toBe(true);
          const expected = oracle.read(field.encoding);
          expect(a.read(GPA, field.encoding)).toBe(expected);
          expect(a.hi).toBe(oracle.hi);
          const dirty = evmcsDirtyMask(field.encoding);
          expect(memory.read32(GPA + EVMCS_CLEAN_FIELDS_OFFSET)).toBe((EVMCS_CLEAN_ALL & ~dirty) >>> 0);
        },
      ),
    );
  });

  it("counts memory accesses and declines encodings vmcs12 does not store", () => {
    const { meter, access: a } = access();
    a.write(GPA, enc("GUEST_RSP"), 0x1000, 0);
    a.write(GPA, enc("GUEST_RIP"), 0x2000, 0);
    expect(a.read(GPA, enc("GUEST_RSP"))).toBe(0x1000);
    // Field store ×2, mask store ×1 (RIP has no clean bit); mask load ×1, field load ×1.
    expect(meter.counts[VMX_EVENTS.VMCS12_WRITE]).toBe(3);
    expect(meter.counts[VMX_EVENTS.VMCS12_READ]).toBe(2);
    expect(a.read(GPA, 0x7ffe)).toBe(-1);
    expect(a.write(GPA, 0x7ffe, 1, 0)).toBe(false);
  });
});

describe("enlightened VMCS model", () => {
  const ev = enlightenedVmcsPolicies();

  it("L2 sees the same as with shadow VMCS; L1's VMREAD/VMWRITE never exit; fewer cycles", () => {
    const program = builtinWorkload("cpuid", { level: 2, iterations: 20 });
    const kvm = createModel().run(program);
    const evmcs = createModel({ policies: ev }).run(program);
    expect(evmcs.snapshot).toEqual(kvm.snapshot);
    expect(evmcs.counts.EMULATED_VMREAD ?? 0).toBe(0);
    expect(evmcs.counts.EMULATED_VMWRITE ?? 0).toBe(0);
    // No shadow-VMCS copies (VMCLEAR of the shadow VMCS) and no deferred rare sync.
    expect(evmcs.counts.VMCLEAR ?? 0).toBe(0);
    expect(evmcs.counts.RARE_FIELD_VMREAD_DEFERRED ?? 0).toBe(0);
    expect(kvm.counts.VMCLEAR ?? 0).toBeGreaterThan(0);
    expect(evmcs.counts.PREPARE_VMCS02_RARE).toBe(evmcs.iterations);
    expect(evmcs.cyclesPerIteration).toBeLessThan(kvm.cyclesPerIteration);
  });

  it("keeps guest-visible state at three levels and under the v5.2 preset", () => {
    const three = builtinWorkload("toggle_cr0_wp", { level: 3, iterations: 3 });
    expect(createModel({ policies: ev }).run(three).snapshot).toEqual(createModel().run(three).snapshot);
    const mixed = builtinWorkload("mixed", { level: 2, iterations: 3 });
    expect(createModel({ preset: "v5.2", policies: ev }).run(mixed).snapshot).toEqual(
      createModel({ preset: "v5.2" }).run(mixed).snapshot,
    );
  });

  it("L0's sync skips clean groups at entry and writes the page back after an exit", () => {
    const program = builtinWorkload("cpuid", { level: 2, iterations: 5 });
    const machine = createModel({ policies: ev }).createMachine(program);
    machine.run();
    const kvm = machine.kvms[0]!;
    const sync = kvm.nested.sync;
    expect(sync).toBeInstanceOf(EnlightenedVmcsSync);
    if (!(sync instanceof EnlightenedVmcsSync)) return;
    expect(hasNestedEntryHooks(sync)).toBe(true);
    expect(sync.rareEntryEveryTime).toBe(true);
    // In steady state L1 dirties neither segment state nor SYSENTER/PDPTRs: those groups are skipped.
    expect(sync.entryCleanFields & EVMCS_CLEAN.GUEST_GRP2).not.toBe(0);
    expect(sync.rareEntryWrites(enc("GUEST_ES_SELECTOR"))).toBe(false);
    expect(sync.rareEntryWrites(enc("GUEST_PDPTR0"))).toBe(false);
    expect(sync.rareEntryWrites(enc("CR4_GUEST_HOST_MASK"))).toBe(true);
    expect(sync.isRareField(enc("GUEST_ES_SELECTOR"))).toBe(false);
    // A VMfail makes L0 refresh the page so L1 can read VM_INSTRUCTION_ERROR there.
    const vmcs12 = kvm.nested.state.cachedVmcs12;
    const page = kvm.nested.state.currentVmptr;
    vmcs12.write(enc("VM_INSTRUCTION_ERROR"), 7);
    sync.instructionFailed();
    expect(sync.needVmcs12ToShadowSync).toBe(true);
    expect(sync.syncVmcs12ToShadow(vmcs12)).toBe(true);
    const memory = kvm.guestMemory();
    expect(memory.read32(page + vmcs12.offsetOf(enc("VM_INSTRUCTION_ERROR")))).toBe(7);
    expect(memory.read32(page + EVMCS_CLEAN_FIELDS_OFFSET)).toBe(EVMCS_CLEAN_ALL);
    expect(sync.syncVmcs12ToShadow(vmcs12)).toBe(false);
    // KVM's own sync has no entry hooks.
    const plain = createModel().createMachine(program).kvms[0]!.nested.sync;
    expect(hasNestedEntryHooks(plain)).toBe(false);
  });

  it("VMLAUNCH copies every group; VMRESUME only the dirty ones", () => {
    const program = builtinWorkload("cpuid", { level: 2, iterations: 1 });
    const machine = createModel({ policies: ev }).createMachine(program);
    const kvm = machine.kvms[0]!;
    const sync = kvm.nested.sync as EnlightenedVmcsSync;
    const vmcs12 = kvm.nested.state.cachedVmcs12;
    const page = kvm.nested.state.currentVmptr;
    const memory = kvm.guestMemory();
    const selector = enc("GUEST_FS_SELECTOR");
    const offset = vmcs12.offsetOf(selector);
    // L1 changed a segment selector in its page but left GUEST_GRP2 marked clean: a VMRESUME skips it.
    memory.write16(page + offset, 0x1234);
    memory.write32(page + EVMCS_CLEAN_FIELDS_OFFSET, EVMCS_CLEAN_ALL);
    vmcs12.launchState = LAUNCH_STATE.LAUNCHED;
    sync.copyShadowToVmcs12(vmcs12);
    expect(vmcs12.read(selector)).not.toBe(0x1234);
    // A VMLAUNCH ignores the mask.
    vmcs12.launchState = LAUNCH_STATE.CLEAR;
    sync.copyShadowToVmcs12(vmcs12);
    expect(vmcs12.read(selector)).toBe(0x1234);
    expect(sync.entryCleanFields).toBe(0);
  });
});
