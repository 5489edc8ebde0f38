// @ts-check
// A nestvisor model module (`nestvisor compare --model examples/enlightened-vmcs/model.mjs`): every
// KVM offers its guest hypervisor a Hyper-V-style enlightened VMCS, and every guest hypervisor uses
// it instead of VMREAD/VMWRITE. See README.md.
import { enlightenedVmcsPolicies } from "@nestvisor/hypervisor";

/**
 * Two policies replace KVM's defaults: `vmcsAccess` (the guest hypervisor's VMREAD/VMWRITE become
 * loads and stores to its VMCS page, clearing clean-field bits) and `nestedSync` (L0 copies dirty
 * field groups at nested entry and writes guest state and exit information back after a nested
 * exit, instead of using a hardware shadow VMCS).
 * @type {import("@nestvisor/hypervisor").ModelSpec}
 */
const model = {
  name: "kvm-evmcs",
  policies: enlightenedVmcsPolicies(),
};

export default model;
