import type * as hypervisorModule from "@nestvisor/hypervisor";
import type {
  GuestStateSnapshot,
  HypervisorFlags,
  KvmConfig,
  ModelPolicies,
  ModelSpec,
  WorkloadProgram,
} from "@nestvisor/hypervisor";
import type * as mmuModule from "@nestvisor/mmu";
import type {
  Memslots,
  ShadowEptMmu,
  ShadowMmu,
  ShadowPageStore,
  ShadowPagingMmu,
  TdpMmu,
  TdpMmuOptions,
  VcpuMmu,
  VcpuMmuOptions,
} from "@nestvisor/mmu";
import type * as vmxModule from "@nestvisor/vmx";
import type {
  EntryCheckResult,
  NestedEntryCheckerOptions,
  NestedEntryInput,
  NestedVmxState,
  ShadowVmcsSync,
  ShadowVmcsSyncOptions,
  VmxInstructionEmulator,
  VmxInstructionEmulatorOptions,
} from "@nestvisor/vmx";
import type * as x86Module from "@nestvisor/x86-arch";
import type {
  EptContext,
  EptWalker,
  EptWalkerOptions,
  PageWalker,
  PageWalkerOptions,
  PhysicalMemory,
} from "@nestvisor/x86-arch";

/**
 * The model a conformance run checks (issue 7): a factory that builds machines for workloads, plus
 * optional factories for the components the finer-grained suites drive directly. A user who composes
 * another hypervisor model from the packages (a different MMU, another sync policy, a new flag)
 * exports one of these from a module and runs `nestvisor-test-suite --model ./my-model.mjs`.
 *
 * Every hook is optional: a suite that needs a hook the model leaves out uses the packages' own
 * component (what the project's KVM model uses). A suite that needs something a model cannot give
 * (e.g. `ModelMachine.levels` for the audit) reports SKIP.
 */
export interface ModelFactory {
  /** Shown in reports ("kvm", "my-fast-mmu", …). */
  readonly name: string;
  /** One line for `--list` and the report header. */
  readonly description?: string;
  /** Builds and boots a machine that will run `program` (the workload's first instruction is next). */
  createMachine(options: ModelMachineOptions): ModelMachine;
  /** Component factories the access, vmx, shadow-vmcs, ept, mmu and nested suites use. */
  readonly hooks?: ModelHooks;
  /**
   * The hypervisor policies (`ModelPolicies` of `@nestvisor/hypervisor`) the component suites apply
   * where they assemble parts themselves: `rootCache` to every `VcpuMmu` of the mmu suite, `nestedSync`
   * (and, for an enlightened guest hypervisor, `vmcsAccess`) to the VMX world of the vmx, vmx-checks,
   * shadow-vmcs and nested suites. `createMachine` must apply them to its machines itself (a ModelSpec
   * module's factory builds them with `createModel`). Default: none (KVM's behaviour).
   */
  readonly policies?: ModelPolicies;
  /**
   * The configuration the model fixes, used as every suite's baseline instead of `--preset`/`--flag`
   * (a ModelSpec module: its preset and flags over the command line's, see `specModelFactory`).
   */
  readonly baseline?: ModelBaseline;
}

/** A model's own preset and flags (L0's; the guest hypervisors' may differ). */
export interface ModelBaseline {
  readonly preset: string;
  readonly config: HypervisorFlags;
}

/** What a machine is built for: a compiled workload and the flags of each level. */
export interface ModelMachineOptions {
  readonly program: WorkloadProgram;
  /** L0's configuration (a complete `HypervisorFlags` set from `resolveFlags`). */
  readonly config: KvmConfig;
  /** The guest hypervisors' configuration when it differs from L0's (default: `config`). */
  readonly innerConfig?: KvmConfig;
}

/** A booted machine as the differential, nested and audit suites use it. */
export interface ModelMachine {
  /** The level the workload runs at (1 = a guest of L0, 2 = nested, …). */
  readonly level: number;
  /** Runs the workload to its end. */
  run(): void;
  /** What a guest can observe (DESIGN.md §2.3); equal snapshots make an optimization legal. */
  snapshot(): GuestStateSnapshot;
  /**
   * Each hypervisor level, L0 first, for the suites that look inside (audit: its tables; nested:
   * vmcs12 as L1 reads it). A model that does not expose them gets SKIP for those groups.
   */
  readonly levels?: readonly ModelLevel[];
}

/**
 * What the audit and nested suites read of one hypervisor level. The project's `Kvm` has exactly
 * these members; another model can expose an adapter.
 */
export interface ModelLevel {
  readonly name: string;
  /** This level's physical memory, where its page tables (TDP, shadow, EPT02) live. */
  readonly cpu: { readonly memory: PhysicalMemory };
  readonly store: ShadowPageStore;
  readonly memslots: Memslots;
  readonly mmu: VcpuMmu;
  /** The guest's physical memory as this level reads it (through the memslots). */
  guestMemory(): PhysicalMemory;
  /** The walk context of an EPT pointer of the guest hypervisor (for shadow-EPT references). */
  ept12Context(eptp: number): EptContext;
  /** Nested VMX state of this level's vCPU (its guest's vmcs12). */
  readonly nested: { readonly state: NestedVmxState };
}

/** A VM-entry checker: what the vmx and vmx-checks suites give VMLAUNCH/VMRESUME to consult. */
export interface EntryChecker {
  check(input: NestedEntryInput): EntryCheckResult;
}

/**
 * Component factories. Each receives exactly what the project's KVM model passes the packages'
 * class, so the defaults are `new PageWalker(memory, options)`, `new VcpuMmu(options)`, … and a
 * replacement is usually a subclass.
 */
export interface ModelHooks {
  /** The guest page walker (access suite: the access.c/smap/pku case space). */
  pageWalker?(memory: PhysicalMemory, options: PageWalkerOptions): PageWalker;
  /** The EPT walker (ept suite: §8 of vmx-tests.md). */
  eptWalker?(memory: PhysicalMemory, options: EptWalkerOptions): EptWalker;
  /** A vCPU's MMU contexts and root cache (mmu suite). */
  vcpuMmu?(options: VcpuMmuOptions): VcpuMmu;
  /** Shadow paging of a guest's page tables (access suite, shadow-paging group). */
  shadowPagingMmu?(shadow: ShadowMmu): ShadowPagingMmu;
  /** Shadow EPT (EPT02 from EPT12) for L2 (access and ept suites). */
  shadowEptMmu?(shadow: ShadowMmu): ShadowEptMmu;
  /** The TDP MMU for direct roots (access suite, tdp group). */
  tdpMmu?(options: TdpMmuOptions): TdpMmu;
  /** vmcs12 ↔ shadow VMCS ↔ vmcs02 synchronisation (shadow-vmcs and nested suites). */
  shadowVmcsSync?(options: ShadowVmcsSyncOptions): ShadowVmcsSync;
  /** The nested VM-entry checks (vmx and vmx-checks suites). */
  entryChecker?(options: NestedEntryCheckerOptions): EntryChecker;
  /** L0's emulation of L1's VMX instructions (vmx, vmx-checks, shadow-vmcs suites). */
  vmxInstructionEmulator?(options: VmxInstructionEmulatorOptions): VmxInstructionEmulator;
}

/**
 * The packages a model module may compose from, passed to a module that exports a function (see
 * `loadModel`): using these instead of importing the packages itself keeps one copy of each class
 * in the process, and the module needs no dependencies of its own.
 */
export interface ModelKit {
  readonly x86: typeof x86Module;
  readonly vmx: typeof vmxModule;
  readonly mmu: typeof mmuModule;
  readonly hypervisor: typeof hypervisorModule;
  /** The project's KVM model, to start from (`{ ...kit.defaultModel, name, hooks: { … } }`). */
  readonly defaultModel: ModelFactory;
}

/**
 * What a function exported by a `--model` module receives: the kit, which is also the base
 * `ModelSpec` of the run (`preset` and `flags` from `--preset`/`--flag`). A function of the kit
 * returns a `ModelFactory`; a function of the base spec (the `nestvisor --model` format) returns a
 * `ModelSpec`, and may spread its argument into it (the kit's members are dropped).
 */
export type ModelModuleArgument = ModelKit & Pick<ModelSpec, "preset" | "flags">;

/**
 * What a `--model` module exports as `default` (or `model`): a model factory, a hypervisor
 * `ModelSpec` (what `nestvisor --model` takes, assembled with `createModel`), or a function of the
 * kit and base spec returning either (possibly async).
 */
export type ModelModuleExport =
  | ModelFactory
  | ModelSpec
  | ((argument: ModelModuleArgument) => ModelFactory | ModelSpec | Promise<ModelFactory | ModelSpec>);
