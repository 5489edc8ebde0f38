// @ts-check
// A nestvisor model module (`nestvisor compare --model examples/dvh-virtual-passthrough/model.mjs`):
// DVH-style virtual-passthrough I/O, where L0 completes a nested guest's port I/O itself instead of
// reflecting the exit to the guest hypervisor. See README.md.
import { EXIT_REASON } from "@nestvisor/vmx";

/**
 * L0 keeps every I/O-instruction exit of a nested guest (the I/O devices are L0's virtual hardware,
 * assigned through L1: Lim and Nieh, "Optimizing Nested Virtualization Performance Using Direct
 * Virtual Hardware", ASPLOS 2020). Every other exit goes where KVM sends it.
 * @type {import("@nestvisor/hypervisor").ExitReflectionPolicy}
 */
export const virtualPassthrough = (query) =>
  query.level === 0 && query.reason === EXIT_REASON.IO_INSTRUCTION ? false : query.kvmDecision;

/** @type {import("@nestvisor/hypervisor").ModelSpec} */
const model = {
  name: "kvm-dvh-io",
  policies: { reflection: virtualPassthrough },
};

export default model;
