import type { RootCachePolicy } from "@nestvisor/mmu";
import type { ShadowVmcsSync, ShadowVmcsSyncOptions, Vmcs12 } from "@nestvisor/vmx";

/** What an exit-reflection policy is asked (kvm: nested_vmx_reflect_vmexit). */
export interface ExitReflectionQuery {
  /** Basic exit reason of the exit of L2. */
  readonly reason: number;
  /** The level of the KVM that decides (0 for L0). */
  readonly level: number;
  /** vmcs12 as that KVM holds it (the guest hypervisor's controls, bitmaps and masks). */
  readonly vmcs12: Vmcs12;
  /** What KVM decides: true = the guest hypervisor wants the exit (nested_vmx_l1_wants_exit). */
  readonly kvmDecision: boolean;
}

/**
 * Who handles an exit of L2: true reflects it to L1 (a nested VM exit), false lets L0 handle it and
 * resume L2. KVM's decision is the default; a policy that returns false for an exit L1 asked for
 * breaks L1 (it never sees the exit), which the conformance suite detects.
 */
export type ExitReflectionPolicy = (query: ExitReflectionQuery) => boolean;

/**
 * Builds the vmcs12 ↔ shadow VMCS ↔ vmcs02 synchronisation of a KVM whose guest is a hypervisor.
 * The default is the vmx layer's `ShadowVmcsSync` with the seed-003 flags as options; a policy may
 * return a subclass that syncs other fields, at other times (e.g. an enlightened-VMCS-style one).
 */
export type NestedSyncFactory = (options: ShadowVmcsSyncOptions) => ShadowVmcsSync;

/**
 * The policies a hypervisor engineer varies (issue: composable models), each defaulting to today's
 * KVM behaviour. The flags and presets select inside these defaults; a policy given here replaces
 * the default at every level of the machine.
 */
export interface ModelPolicies {
  /** Root cache of every MMU context (size, lookup, replacement); default `KVM_ROOT_CACHE`. */
  readonly rootCache?: RootCachePolicy;
  /** vmcs12 ↔ shadow ↔ vmcs02 sync; default `ShadowVmcsSync` configured by the flags. */
  readonly nestedSync?: NestedSyncFactory;
  /** Exit reflection; default KVM's decision. */
  readonly reflection?: ExitReflectionPolicy;
}
