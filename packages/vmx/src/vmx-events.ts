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
});
