import { describe, expect, it } from "vitest";
import { fieldByName } from "./field-catalog";
import { FIELD_WIDTH, isReadOnlyField } from "./field-encoding";
import {
  FULL_SHADOW_HOST,
  hostHasShadowField,
  isVmcs12ExtField,
  RARE_GUEST_SYNC_FIELDS,
  SHADOW_FIELDS_RO,
  SHADOW_FIELDS_RO_V5_2,
  SHADOW_FIELDS_RW,
  SHADOW_FIELDS_RW_V5_2,
  shadowFieldByName,
  shadowFieldLists,
  shadowFieldSet,
  VMCS12_EXT_FIELDS,
} from "./shadow-fields";
import { vmcs12FieldOffset } from "./vmcs12-layout";

const namesOf = (list: readonly { name: string }[]) => list.map((f) => f.name);

describe("shadow field lists (kvm: vmcs_shadow_fields.h)", () => {
  it("6.12 RO list: 12 entries in file order", () => {
    expect(namesOf(SHADOW_FIELDS_RO)).toEqual([
      "VM_EXIT_REASON",
      "VM_EXIT_INTR_INFO",
      "VM_EXIT_INSTRUCTION_LEN",
      "IDT_VECTORING_INFO_FIELD",
      "IDT_VECTORING_ERROR_CODE",
      "VM_EXIT_INTR_ERROR_CODE",
      "GUEST_CS_AR_BYTES",
      "GUEST_SS_AR_BYTES",
      "EXIT_QUALIFICATION",
      "GUEST_LINEAR_ADDRESS",
      "GUEST_PHYSICAL_ADDRESS",
      "GUEST_PHYSICAL_ADDRESS_HIGH",
    ]);
  });

  it("6.12 RW list: 24 entries in file order", () => {
    expect(namesOf(SHADOW_FIELDS_RW)).toEqual([
      "GUEST_INTR_STATUS",
      "GUEST_PML_INDEX",
      "HOST_FS_SELECTOR",
      "HOST_GS_SELECTOR",
      "CPU_BASED_VM_EXEC_CONTROL",
      "PIN_BASED_VM_EXEC_CONTROL",
      "EXCEPTION_BITMAP",
      "VM_ENTRY_EXCEPTION_ERROR_CODE",
      "VM_ENTRY_INTR_INFO_FIELD",
      "VM_ENTRY_INSTRUCTION_LEN",
      "TPR_THRESHOLD",
      "GUEST_INTERRUPTIBILITY_INFO",
      "VMX_PREEMPTION_TIMER_VALUE",
      "GUEST_RIP",
      "GUEST_RSP",
      "GUEST_CR0",
      "GUEST_CR3",
      "GUEST_CR4",
      "GUEST_RFLAGS",
      "CR0_GUEST_HOST_MASK",
      "CR0_READ_SHADOW",
      "CR4_READ_SHADOW",
      "HOST_FS_BASE",
      "HOST_GS_BASE",
    ]);
  });

  it("v5.2 lists: exit information only in RO (10); CS/SS AR bytes RW, pin controls absent (25)", () => {
    expect(SHADOW_FIELDS_RO_V5_2).toHaveLength(10);
    expect(namesOf(SHADOW_FIELDS_RO_V5_2)).not.toContain("GUEST_CS_AR_BYTES");
    for (const f of SHADOW_FIELDS_RO_V5_2) expect(isReadOnlyField(f.encoding), f.name).toBe(true);
    const rw = namesOf(SHADOW_FIELDS_RW_V5_2);
    expect(rw).toHaveLength(25);
    expect(rw).not.toContain("PIN_BASED_VM_EXEC_CONTROL");
    // kvm v5.2: ... TPR_THRESHOLD, GUEST_CS_AR_BYTES, GUEST_SS_AR_BYTES, GUEST_INTERRUPTIBILITY_INFO ...
    expect(rw.slice(9, 13)).toEqual([
      "TPR_THRESHOLD",
      "GUEST_CS_AR_BYTES",
      "GUEST_SS_AR_BYTES",
      "GUEST_INTERRUPTIBILITY_INFO",
    ]);
  });

  it("composes the intermediate states: flag A alone → 23 RW; flag F alone → 26 RW", () => {
    expect(shadowFieldLists({ readOnlyShadowFields: true, controlsShadow: false }).rw).toHaveLength(23);
    expect(shadowFieldLists({ readOnlyShadowFields: false, controlsShadow: true }).rw).toHaveLength(26);
    expect(shadowFieldLists({ readOnlyShadowFields: true, controlsShadow: true }).rw).toBe(SHADOW_FIELDS_RW);
  });

  it("records each entry's vmcs12 offset, the same in both vmcs12 eras", () => {
    for (const f of [
      ...SHADOW_FIELDS_RO,
      ...SHADOW_FIELDS_RW,
      ...SHADOW_FIELDS_RW_V5_2,
      ...VMCS12_EXT_FIELDS,
    ]) {
      expect(f.offset, f.name).toBe(vmcs12FieldOffset(f.encoding, "v6.12"));
      expect(f.offset, f.name).toBe(vmcs12FieldOffset(f.encoding, "v5.3"));
    }
    // Reference kvm-vmx.md §2.2.
    expect(shadowFieldByName("GUEST_RIP").offset).toBe(544);
    expect(shadowFieldByName("GUEST_PHYSICAL_ADDRESS").offset).toBe(168);
    expect(shadowFieldByName("GUEST_PHYSICAL_ADDRESS_HIGH").offset).toBe(172);
    expect(shadowFieldByName("GUEST_PHYSICAL_ADDRESS_HIGH").width).toBe(FIELD_WIDTH.U32);
    expect(shadowFieldByName("HOST_GS_SELECTOR").offset).toBe(992);
  });

  it("keeps KVM's init invariants: 64-bit entries followed by their _HIGH, no AR bytes RW, no overlap", () => {
    for (const lists of [
      shadowFieldLists({ readOnlyShadowFields: true, controlsShadow: true }),
      shadowFieldLists({ readOnlyShadowFields: false, controlsShadow: false }),
    ]) {
      for (const list of [lists.ro, lists.rw]) {
        list.forEach((f, i) => {
          // kvm: init_vmcs_shadow_fields "Missing field from shadow_read_*_field".
          if (f.width === FIELD_WIDTH.U64) expect(list[i + 1]?.encoding, f.name).toBe(f.encoding + 1);
        });
      }
      const ro = new Set(lists.ro.map((f) => f.encoding));
      for (const f of lists.rw) expect(ro.has(f.encoding), f.name).toBe(false);
    }
    // kvm ≥ v5.3: WARN_ONCE if an AR_BYTES field is RW (vmcs12_write_any does not mask them).
    for (const f of SHADOW_FIELDS_RW) expect(f.name).not.toMatch(/_AR_BYTES$/);
    // Header rule: fields KVM writes while emulating VMX instructions are never shadowed.
    const all = [...SHADOW_FIELDS_RO, ...SHADOW_FIELDS_RW].map((f) => f.name);
    expect(all).not.toContain("VM_INSTRUCTION_ERROR");
  });
});

describe("shadowFieldSet (kvm: init_vmcs_shadow_fields on a 64-bit host)", () => {
  it("6.12 with every feature: 11 RO and 24 RW copied; 36 readable, 24 writable", () => {
    const set = shadowFieldSet({ readOnlyShadowFields: true, controlsShadow: true });
    expect(set.roCopy).toHaveLength(11);
    expect(set.rwCopy).toHaveLength(24);
    expect(set.roCopy.some((f) => f.high)).toBe(false);
    expect(set.vmreadExposed).toHaveLength(36);
    expect(set.vmwriteExposed).toHaveLength(24);
  });

  it("v5.2: 9 RO and 25 RW copied", () => {
    const set = shadowFieldSet({ readOnlyShadowFields: false, controlsShadow: false });
    expect(set.roCopy).toHaveLength(9);
    expect(set.rwCopy).toHaveLength(25);
  });

  it("drops RW fields the host lacks from copies and bitmaps, but not from the membership test", () => {
    const host = { pml: false, preemptionTimer: false, apicv: false };
    const set = shadowFieldSet({ readOnlyShadowFields: true, controlsShadow: true }, host);
    expect(set.rwCopy).toHaveLength(21);
    for (const name of ["GUEST_PML_INDEX", "VMX_PREEMPTION_TIMER_VALUE", "GUEST_INTR_STATUS"]) {
      const e = fieldByName(name)!.encoding;
      expect(hostHasShadowField(e, host), name).toBe(false);
      expect(hostHasShadowField(e, FULL_SHADOW_HOST), name).toBe(true);
      expect(set.vmreadExposed, name).not.toContain(e);
      expect(set.vmwriteExposed, name).not.toContain(e);
      // kvm: is_shadow_field_rw is generated from the header, so writes still do not dirty vmcs12.
      expect(set.isRw(e), name).toBe(true);
    }
    const onlyPml = shadowFieldSet(
      { readOnlyShadowFields: true, controlsShadow: true },
      { pml: false, preemptionTimer: true, apicv: true },
    );
    expect(namesOf(onlyPml.rwCopy)).not.toContain("GUEST_PML_INDEX");
    expect(onlyPml.rwCopy).toHaveLength(23);
  });

  it("answers membership like is_shadow_field_rw/ro, _HIGH entries included", () => {
    const set = shadowFieldSet({ readOnlyShadowFields: true, controlsShadow: true });
    const e = (name: string) => fieldByName(name)!.encoding;
    expect(set.isRo(e("GUEST_PHYSICAL_ADDRESS_HIGH"))).toBe(true);
    expect(set.isRo(e("GUEST_CS_AR_BYTES"))).toBe(true);
    expect(set.isRw(e("GUEST_CS_AR_BYTES"))).toBe(false);
    expect(set.isRw(e("PIN_BASED_VM_EXEC_CONTROL"))).toBe(true);
    expect(set.isRw(e("GUEST_ES_SELECTOR")) || set.isRo(e("GUEST_ES_SELECTOR"))).toBe(false);
    expect(set.isRw(0x8000 | e("GUEST_RIP"))).toBe(false);
    expect(set.isRw(-1)).toBe(false);
    const old = shadowFieldSet({ readOnlyShadowFields: false, controlsShadow: false });
    expect(old.isRw(e("GUEST_CS_AR_BYTES"))).toBe(true);
    expect(old.isRw(e("PIN_BASED_VM_EXEC_CONTROL"))).toBe(false);
  });
});

describe("rarely synced guest fields (kvm ≥ v5.3: is_vmcs12_ext_field)", () => {
  it("lists 36 ext fields: 8 selectors, 10 limits, 6 AR bytes, 10 bases, pending #DB, BNDCFGS", () => {
    expect(VMCS12_EXT_FIELDS).toHaveLength(36);
    const names = namesOf(VMCS12_EXT_FIELDS);
    expect(names.filter((n) => n.endsWith("_SELECTOR"))).toHaveLength(8);
    expect(names.filter((n) => n.endsWith("_LIMIT"))).toHaveLength(10);
    expect(names.filter((n) => n.endsWith("_AR_BYTES"))).toHaveLength(6);
    expect(names.filter((n) => n.endsWith("_BASE"))).toHaveLength(10);
    expect(names).toContain("GUEST_PENDING_DBG_EXCEPTIONS");
    expect(names).toContain("GUEST_BNDCFGS");
    // CS/SS AR bytes are synced on every exit, never lazily.
    expect(names).not.toContain("GUEST_CS_AR_BYTES");
    expect(names).not.toContain("GUEST_SS_AR_BYTES");
  });

  it("6.12's rare sync reads 35 of them (not BNDCFGS)", () => {
    expect(RARE_GUEST_SYNC_FIELDS).toHaveLength(35);
    expect(namesOf(RARE_GUEST_SYNC_FIELDS)).not.toContain("GUEST_BNDCFGS");
  });

  it("matches exact encodings only", () => {
    const bndcfgs = fieldByName("GUEST_BNDCFGS")!.encoding;
    expect(isVmcs12ExtField(bndcfgs)).toBe(true);
    expect(isVmcs12ExtField(bndcfgs + 1)).toBe(false);
    expect(isVmcs12ExtField(fieldByName("GUEST_TR_BASE")!.encoding)).toBe(true);
    expect(isVmcs12ExtField(fieldByName("GUEST_RIP")!.encoding)).toBe(false);
    expect(isVmcs12ExtField(0x10000 | fieldByName("GUEST_TR_BASE")!.encoding)).toBe(false);
  });
});
