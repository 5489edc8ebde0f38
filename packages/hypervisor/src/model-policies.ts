import type { RootCachePolicy } from "@nestvisor/mmu";
import type { Meter, NestedVmxState, ShadowVmcsSync, ShadowVmcsSyncOptions, Vmcs12 } from "@nestvisor/vmx";
import type { PhysicalMemory } from "@nestvisor/x86-arch";

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

/** What a nested-sync factory may use besides the sync options: the KVM that owns the sync. */
export interface NestedSyncContext {
  /** The level of the KVM whose guest is the hypervisor (0 for L0). */
  readonly level: number;
  /** That KVM's view of its guest's physical memory (where the guest hypervisor's VMCS regions live). */
  readonly guestMemory: PhysicalMemory;
  /** That KVM's nested state for the vCPU (current VMCS pointer, cached vmcs12, guest mode). */
  readonly state: NestedVmxState;
  /** Where the KVM counts its work. */
  readonly meter: Meter;
}

/**
 * Builds the vmcs12 ↔ shadow VMCS ↔ vmcs02 synchronisation of a KVM whose guest is a hypervisor.
 * The default is the vmx layer's `ShadowVmcsSync` with the seed-003 flags as options; a policy may
 * return a subclass that syncs other fields, at other times (e.g. an enlightened-VMCS-style one).
 * The sync may also implement `NestedEntryHooks`.
 */
export type NestedSyncFactory = (
  options: ShadowVmcsSyncOptions,
  context: NestedSyncContext,
) => ShadowVmcsSync;

/**
 * Optional hooks a sync built by a `NestedSyncFactory` may implement to take part in the nested VM
 * entry (KVM's `ShadowVmcsSync` implements none: the rare vmcs02 preparation then runs only for a
 * dirty vmcs12, in full). A sync that keeps vmcs12 in the guest hypervisor's memory (Hyper-V's
 * enlightened VMCS) needs them: KVM then prepares the rare part of vmcs02 on every nested entry and
 * skips the field groups L1 left clean (kvm: prepare_vmcs02_early / prepare_vmcs02_rare with an
 * eVMCS and its hv_clean_fields), and a VMfail must refresh L1's copy (kvm: nested_vmx_fail).
 */
export interface NestedEntryHooks {
  /** prepare_vmcs02_early_rare and prepare_vmcs02_rare run on every nested entry, not only when vmcs12 is dirty. */
  readonly rareEntryEveryTime: boolean;
  /** Whether this entry's rare preparation copies `encoding` from vmcs12 into vmcs02. */
  rareEntryWrites(encoding: number): boolean;
  /** A VMX instruction of the guest hypervisor VMfailed with an error number stored in vmcs12. */
  instructionFailed(): void;
}

/** Whether a nested sync implements `NestedEntryHooks`. */
export function hasNestedEntryHooks(sync: object): sync is NestedEntryHooks {
  const s = sync as Partial<NestedEntryHooks>;
  return typeof s.rareEntryWrites === "function" && typeof s.instructionFailed === "function";
}

/**
 * How a guest hypervisor's VMREAD/VMWRITE of its current VMCS is served without a VM exit (the L1 exit
 * handler's VMCS access pattern). Without one, each is an exit to the parent unless the hardware
 * shadow VMCS serves it. Values follow VMREAD/VMWRITE width rules; nothing may allocate.
 */
export interface GuestVmcsAccess {
  /** High half of the value the last successful `read` returned. */
  readonly hi: number;
  /**
   * VMREAD of `encoding` in the VMCS whose region is at `vmcsGpa` (the guest hypervisor's physical
   * address): the low half (≥ 0), or -1 to take the ordinary path (e.g. an encoding it cannot serve).
   */
  read(vmcsGpa: number, encoding: number): number;
  /** VMWRITE: true when served, false to take the ordinary path. */
  write(vmcsGpa: number, encoding: number, lo: number, hi: number): boolean;
}

/** What a guest-VMCS-access factory gets: the guest hypervisor it serves. */
export interface GuestVmcsAccessContext {
  /** The guest hypervisor's level (1 for L1). */
  readonly level: number;
  /** Its physical memory, as it accesses it. */
  readonly memory: PhysicalMemory;
  /** Where its work is counted (charged to the level that runs). */
  readonly meter: Meter;
}

/**
 * Builds the VMCS access of a guest hypervisor; called once per guest hypervisor, by its parent KVM
 * when the vCPU is created (the parent is the one offering the enlightenment).
 */
export type GuestVmcsAccessFactory = (context: GuestVmcsAccessContext) => GuestVmcsAccess;

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
  /**
   * How each guest hypervisor's VMREAD/VMWRITE reach its VMCS; default: VMX instructions (exits to
   * the parent, or the hardware shadow VMCS). Pair it with a `nestedSync` that keeps the parent's
   * vmcs12 coherent with what the guest hypervisor writes (e.g. `enlightenedVmcsPolicies`).
   */
  readonly vmcsAccess?: GuestVmcsAccessFactory;
  /**
   * Whether last-level shadow-EPT pages may become unsync, as in every KVM the presets name (kvm:
   * mmu_try_to_unsync_pages); default true. False write-tracks every table EPT02 shadows, so each
   * store of a guest hypervisor to its EPT12 leaf tables is an exit and an emulated write: an A/B
   * switch for what unsync saves. Shadow paging (no EPT at that level) never unsyncs in this model.
   */
  readonly unsyncShadowPages?: boolean;
}
