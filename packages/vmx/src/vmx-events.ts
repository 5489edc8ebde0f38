/**
 * The events the vmx layer counts on a `Meter` (ids 0x100–0x1ff, see `meter.ts`). Append only: an
 * event's id is its position in the list plus 0x100.
 *
 * Hardware instructions are counted where the processor model executes them (`VmcsProcessor`),
 * once per execution whether it succeeds or fails. KVM's in-memory work on vmcs12 (which costs no
 * VMX instruction) is counted as VMCS12_READ / VMCS12_WRITE by the code that does it.
 */

import { defineEventCatalog } from "./meter";

export const VMX_EVENTS = defineEventCatalog("vmx", 0x100, [
  "VMXON",
  "VMXOFF",
  "VMCLEAR",
  "VMPTRLD",
  "VMPTRST",
  "VMREAD",
  "VMWRITE",
  "VMLAUNCH",
  "VMRESUME",
  "INVEPT",
  "INVVPID",
  "VMCS_FULL_CONSISTENCY_CHECK",
  "CONTROL_SHADOW_WRITE_SKIPPED",
  "SHADOW_FIELD_OFFSET_LOOKUP",
  "VMCS12_READ",
  "VMCS12_WRITE",
  "EMULATED_VMXON",
  "EMULATED_VMXOFF",
  "EMULATED_VMCLEAR",
  "EMULATED_VMPTRLD",
  "EMULATED_VMPTRST",
  "EMULATED_VMREAD",
  "EMULATED_VMWRITE",
  "EMULATED_VMLAUNCH",
  "EMULATED_VMRESUME",
  "EMULATED_INVEPT",
  "EMULATED_INVVPID",
  "VMCS12_IMAGE_LOAD",
  "VMCS12_IMAGE_FLUSH",
  "VMCS02_RARE_SYNC",
  "RARE_FIELD_VMREAD_DEFERRED",
]);

export type VmxEventName = (typeof VMX_EVENTS.names)[number];

/** One line per event, for reports and `--explain`. */
export const VMX_EVENT_DESCRIPTIONS: Readonly<Record<VmxEventName, string>> = Object.freeze({
  VMXON: "VMXON executed (enter VMX root operation)",
  VMXOFF: "VMXOFF executed (leave VMX operation)",
  VMCLEAR: "VMCLEAR executed: VMCS state flushed to its region, launch state cleared",
  VMPTRLD: "VMPTRLD executed: a VMCS made current",
  VMPTRST: "VMPTRST executed: current-VMCS pointer stored",
  VMREAD: "VMREAD executed by hardware on the current VMCS",
  VMWRITE: "VMWRITE executed by hardware on the current VMCS",
  VMLAUNCH: "VMLAUNCH executed",
  VMRESUME: "VMRESUME executed",
  INVEPT: "INVEPT executed",
  INVVPID: "INVVPID executed",
  VMCS_FULL_CONSISTENCY_CHECK:
    "VM entry that ran every consistency check because a major control field was written since the " +
    "VMCS's previous VM entry (seed 003: pin, primary/secondary exec, VM-entry, VM-exit controls)",
  CONTROL_SHADOW_WRITE_SKIPPED:
    "control VMWRITE avoided because KVM's controls shadow already held the value (kvm: *_controls_set)",
  SHADOW_FIELD_OFFSET_LOOKUP:
    "runtime vmcs12 offset lookup for a shadow-VMCS field copy (kvm before v5.3: vmcs_field_to_offset)",
  VMCS12_READ: "KVM software read of a vmcs12 field (memory, no VMX instruction)",
  VMCS12_WRITE: "KVM software write of a vmcs12 field (memory, no VMX instruction)",
  EMULATED_VMXON: "L1's VMXON emulated by L0 (kvm: handle_vmxon), counted whatever its outcome",
  EMULATED_VMXOFF: "L1's VMXOFF emulated by L0 (kvm: handle_vmxoff), counted whatever its outcome",
  EMULATED_VMCLEAR: "L1's VMCLEAR emulated by L0 (kvm: handle_vmclear), counted whatever its outcome",
  EMULATED_VMPTRLD: "L1's VMPTRLD emulated by L0 (kvm: handle_vmptrld), counted whatever its outcome",
  EMULATED_VMPTRST: "L1's VMPTRST emulated by L0 (kvm: handle_vmptrst), counted whatever its outcome",
  EMULATED_VMREAD:
    "intercepted VMREAD (from L1, or from L2 against L1's shadow vmcs12) emulated by L0 (kvm: handle_vmread)",
  EMULATED_VMWRITE:
    "intercepted VMWRITE (from L1, or from L2 against L1's shadow vmcs12) emulated by L0 (kvm: handle_vmwrite)",
  EMULATED_VMLAUNCH:
    "L1's VMLAUNCH taken by L0 (kvm: handle_vmlaunch -> nested_vmx_run), counted whatever its outcome",
  EMULATED_VMRESUME:
    "L1's VMRESUME taken by L0 (kvm: handle_vmresume -> nested_vmx_run), counted whatever its outcome",
  EMULATED_INVEPT: "L1's INVEPT emulated by L0 (kvm: handle_invept), counted whatever its outcome",
  EMULATED_INVVPID: "L1's INVVPID emulated by L0 (kvm: handle_invvpid), counted whatever its outcome",
  VMCS12_IMAGE_LOAD:
    "4-KiB vmcs12 image copied from L1's memory into KVM's cache (kvm: handle_vmptrld; the shadow vmcs12 in nested_cache_shadow_vmcs12)",
  VMCS12_IMAGE_FLUSH:
    "4-KiB cached vmcs12 written back to L1's memory (kvm: nested_release_vmcs12; the shadow vmcs12 in nested_flush_cached_shadow_vmcs12)",
  VMCS02_RARE_SYNC:
    "lazy sync of the rarely used guest fields from vmcs02 into vmcs12, on L1's demand (kvm ≥ v5.3: " +
    "copy_vmcs02_to_vmcs12_rare; VMPTRLD vmcs02, 35 VMREADs, VMPTRLD vmcs01)",
  RARE_FIELD_VMREAD_DEFERRED:
    "vmcs02 VMREAD of a rarely used guest field not done at a nested VM exit but left to a lazy sync " +
    "(seed 003 flag C; kvm ≥ v5.3: need_sync_vmcs02_to_vmcs12_rare)",
});
