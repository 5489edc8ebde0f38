import { MMU_FLAG_INFO, MMU_FLAG_NAMES, type MmuFlagName, type MmuFlags } from "@nestvisor/mmu";
import { didYouMeanSuffix } from "./name-suggestion";

/**
 * Every switch of the hypervisor model in one flat, frozen object (DESIGN.md §4):
 *
 * - the six seed-003 VMX optimizations (flags A–F of kvm-vmx.md §10, all landed in v5.3);
 * - the MMU optimizations of `@nestvisor/mmu` (`MmuFlags`, kvm-mmu.md §7), reused as they are;
 * - kernel behaviours that are neither optimizations nor configuration: later kernels do other work
 *   for their own reasons (e.g. a bug fix), and the work shows in nested costs;
 * - four configuration switches (EPT in L0 and in L1, hardware VMCS shadowing, the TDP MMU).
 *
 * Optimization flags change *which work happens* (VMREADs, VMWRITEs, MMU reconfigurations, roots
 * dropped and reloaded); they never change what a guest sees. The one documented exception is
 * flag A's AR-bytes mask on intercepted VMWRITEs (see `readOnlyShadowFields`). Switches change the
 * configuration being modelled, so they may change exits a guest causes, never its results.
 *
 * Names given by users (files, CLI `name=on`) are validated here; mistakes throw `FlagError`.
 */

/** The seed-003 VMX optimizations (kvm-vmx.md §10); each `true` is the v5.3-and-later behaviour. */
export interface VmxFlags {
  /**
   * Flag A. Read-only shadow fields are intercepted for VMWRITE and no longer copied back to vmcs12
   * on every nested entry; GUEST_CS/SS_AR_BYTES become read-only shadow fields whose vmcs02 writes
   * move to the rare path. Off (v5.2): with VMWRITE-to-any exposed the VMWRITE bitmap is the VMREAD
   * bitmap and copy_shadow_to_vmcs12 copies RW + RO. Its patch also added the 0x1f0ff mask on
   * intercepted AR-bytes VMWRITEs, which an L1 writing reserved AR bits can observe.
   * Feeds `ShadowVmcsSync.readOnlyShadowFields` and `maskArBytesOnVmwrite` in @nestvisor/vmx.
   */
  readonly readOnlyShadowFields: boolean;
  /**
   * Flag B. The shadow-field copy arrays carry each field's vmcs12 offset. Off: every copied field
   * costs a runtime encoding→offset lookup (kvm v5.2: vmcs_field_to_offset).
   * Feeds `ShadowVmcsSync.precomputedShadowOffsets`.
   */
  readonly precomputedShadowOffsets: boolean;
  /**
   * Flag C. The 35 rarely used guest fields are read from vmcs02 only when needed
   * (kvm: sync_vmcs02_to_vmcs12_rare). Off: every nested VM exit reads them all.
   * Feeds `ShadowVmcsSync.lazyRareGuestSync`.
   */
  readonly lazyRareGuestSync: boolean;
  /**
   * Flag D. Switching between vmcs01 and vmcs02 only loads the VMCS and copies the cached host state
   * (kvm: vmx_vcpu_load_vmcs + vmx_sync_vmcs_host_state). Off: a full vCPU put + load per switch
   * (host segment and MSR state restored, DEBUGCTL/PKRU re-read, host state re-saved next entry).
   */
  readonly noVcpuPutOnVmcsSwitch: boolean;
  /**
   * Flag E. The nested-entry VMWRITE trims (PML index and ENCLS bitmap once per vmcs02, no
   * speculative APIC page addresses, PDPTRs only with nested EPT and PAE paging) and the exit-side
   * read trims (SYSENTER/PAT/DEBUGCTL kept current in vmcs12). Off: all written/read every time.
   * Feeds `ShadowVmcsSync.entryVmwriteTrims` (the exit-side part).
   */
  readonly nestedEntryWriteTrims: boolean;
  /**
   * Flag F. Per-VMCS software copies of the five major controls; a control VMWRITE only when the
   * value changes, no re-read on VMCS switch, pin controls shadow-RW for L1. Off: five control
   * VMWRITEs per nested entry (each forcing the full hardware consistency check) and two control
   * VMREADs per VMCS switch. Feeds `ControlsShadow.perVmcsShadow` and
   * `ShadowVmcsSync.controlsShadow`.
   */
  readonly controlsShadow: boolean;
}

export type VmxFlagName = keyof VmxFlags;

/**
 * Kernel behaviours that changed the work of a VM transition without being an optimization: each
 * `true` is what Linux 6.12.117 (the kernel the model follows) does, `false` what the kernels before
 * the change did. Presets set them by kernel; `none` and `all` keep today's.
 */
export interface KernelBehaviours {
  /**
   * vcpu_enter_guest reads the host's IA32_DEBUGCTL before every VM entry (kvm: get_debugctlmsr,
   * 189ecdb3e112, upstream v6.14, in 6.12.y as a stable backport). Off: read once per vcpu_load
   * (kvm v5.2: vmx_vcpu_load; v6.14-rc: kvm_arch_vcpu_load). In a guest hypervisor the read is an
   * RDMSR its parent intercepts: one more exit to L0 for every entry into L2.
   */
  readonly hostDebugctlPerEntry: boolean;
}

export type KernelBehaviourName = keyof KernelBehaviours;

/**
 * Configuration switches: which machine is modelled, not which kernel. Presets keep them at their
 * defaults — all on except `hugePages` (4-KiB host pages, the baseline of every published figure)
 * — except `tdpMmu`, which did not exist or was not the default before v5.15.
 */
export interface HypervisorSwitches {
  /**
   * L0 uses EPT for its guests (kvm: kvm_intel.ept / enable_ept). Off: L0 shadow-pages L1, and L2
   * on top of whatever L1 does.
   */
  readonly ept: boolean;
  /**
   * L1 enables EPT for L2 in vmcs12 (the L1 hypervisor uses EPT). Off: L1 shadow-pages L2 itself.
   * Ignored while `ept` is off: KVM offers nested EPT only when it uses EPT itself
   * (kvm: nested_vmx_setup_ctls_msrs).
   */
  readonly l1Ept: boolean;
  /**
   * L0 gives L1 hardware VMCS shadowing (kvm: kvm_intel.enable_shadow_vmcs). Off: every VMREAD and
   * VMWRITE of L1 exits to L0 and is emulated; flags A and B then have nothing to act on.
   */
  readonly shadowVmcs: boolean;
  /**
   * Direct (TDP) roots come from the TDP MMU (kvm: kvm.tdp_mmu). Off: the legacy shadow-page MMU
   * (hashed shadow pages with rmaps) builds them. Ignored while `ept` is off
   * (kvm: the TDP MMU requires tdp_enabled).
   */
  readonly tdpMmu: boolean;
  /**
   * Every level's host backs its guests' memory with 2-MiB pages (transparent huge pages or
   * hugetlbfs): L0's EPT, a guest hypervisor's EPT, shadow EPT and shadow page tables map a 2-MiB
   * leaf where the guest's own mapping, the memslot's alignment and the shadowed gfns allow (kvm:
   * kvm_mmu_hugepage_adjust, kvm_mmu_max_mapping_level). Off (default): 4-KiB host pages.
   */
  readonly hugePages: boolean;
}

export type HypervisorSwitchName = keyof HypervisorSwitches;

/** One flat flag set: VMX optimizations, MMU optimizations, kernel behaviours, configuration switches. */
export type HypervisorFlags = VmxFlags & MmuFlags & KernelBehaviours & HypervisorSwitches;

export type HypervisorFlagName = keyof HypervisorFlags;

export type HypervisorFlagKind = "vmx" | "mmu" | "kernel" | "switch";

/** What each flag is, for `--help` output, reports and the docs. */
export interface HypervisorFlagInfo {
  readonly name: HypervisorFlagName;
  readonly kind: HypervisorFlagKind;
  /** Seed document(s) the change comes from, or "—" for configuration switches. */
  readonly seed: string;
  /** Kernel release that first had the behaviour the flag turns on (approximate where noted). */
  readonly since: string;
  /** Commit id(s) and/or patch titles of the change, as far as the references name them. */
  readonly commitOrSeries: string;
  readonly summary: string;
  /** The behaviour with the flag off. */
  readonly baseline: string;
}

/** A user-input error about flags or presets: unknown names, values that are not on/off. */
export class FlagError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FlagError";
  }
}

/** The merged 2019 re-post that carried all three seed-003 series into v5.3 (kvm-vmx.md §0). */
const VMX_SERIES = 'Paolo Bonzini, "[PATCH 00/43] VMX optimizations" (2019-06-13, merged for v5.3)';

const VMX_FLAG_INFO: readonly HypervisorFlagInfo[] = [
  {
    name: "readOnlyShadowFields",
    kind: "vmx",
    seed: "003",
    since: "v5.3",
    commitOrSeries:
      '"KVM: nVMX: Intercept VMWRITEs to read-only shadow VMCS fields", ' +
      '"KVM: nVMX: Intercept VMWRITEs to GUEST_{CS,SS}_AR_BYTES" ' +
      `(Sean Christopherson, "KVM: nVMX: Optimize VMCS data copying"; ${VMX_SERIES} 07–08/43)`,
    summary: "RO shadow fields intercepted for VMWRITE and not copied back; CS/SS AR bytes read-only",
    baseline: "VMWRITE bitmap = VMREAD bitmap; RW + RO fields (34) read back on every nested entry",
  },
  {
    name: "precomputedShadowOffsets",
    kind: "vmx",
    seed: "003",
    since: "v5.3",
    commitOrSeries: `"KVM: nVMX: Track vmcs12 offsets for shadowed VMCS fields" (${VMX_SERIES} 09/43)`,
    summary: "shadow-field copy tables carry precomputed vmcs12 offsets",
    baseline: "runtime vmcs12 offset lookup for every copied field, both directions",
  },
  {
    name: "lazyRareGuestSync",
    kind: "vmx",
    seed: "003",
    since: "v5.3",
    commitOrSeries:
      '"KVM: nVMX: Lift sync_vmcs12() out of prepare_vmcs12()", ' +
      '"KVM: nVMX: Use descriptive names for VMCS sync functions and flags", ' +
      '"KVM: nVMX: Add helpers to identify shadowed VMCS fields", ' +
      `"KVM: nVMX: Sync rarely accessed guest fields only when needed" (${VMX_SERIES} 10–13/43)`,
    summary: "35 rarely used guest fields read from vmcs02 only when L1 or KVM needs them",
    baseline: "every nested VM exit reads all guest fields from vmcs02 (52 unconditional VMREADs)",
  },
  {
    name: "noVcpuPutOnVmcsSwitch",
    kind: "vmx",
    seed: "003",
    since: "v5.3",
    commitOrSeries:
      `"KVM: nVMX: Don't "put" vCPU or host state when switching VMCS", ` +
      `"KVM: nVMX: Don't reread VMCS-agnostic state when switching VMCS" (Sean Christopherson, "KVM: nVMX: Optimize nested VM-Entry"; ${VMX_SERIES})`,
    summary: "vmcs01 ↔ vmcs02 switch loads the VMCS and copies cached host state only",
    baseline: "full vCPU put + load (host segment/MSR state reload) on every VMCS switch",
  },
  {
    name: "nestedEntryWriteTrims",
    kind: "vmx",
    seed: "003",
    since: "v5.3",
    commitOrSeries:
      'the rest of "KVM: nVMX: Optimize nested VM-Entry" (Sean Christopherson): ' +
      '"Write ENCLS-exiting bitmap once per vmcs02", "Don\'t rewrite GUEST_PML_INDEX during nested VM-Entry", ' +
      '"Don\'t speculatively write virtual-APIC page address", "Don\'t speculatively write APIC-access page address", ' +
      '"Update vmcs12 for MSR_IA32_CR_PAT / SYSENTER MSRs / MSR_IA32_DEBUGCTLMSR when it\'s written", ' +
      `"Copy PDPTRs to/from vmcs12 only when necessary" (${VMX_SERIES})`,
    summary: "nested-entry VMWRITE trims (PML index, APIC pages, ENCLS bitmap, PDPTRs) and MSRs kept current",
    baseline:
      "those fields written on every nested entry; PDPTRs and SYSENTER/PAT/DEBUGCTL read on every exit",
  },
  {
    name: "controlsShadow",
    kind: "vmx",
    seed: "003",
    since: "v5.3",
    commitOrSeries:
      'Sean Christopherson, "KVM: VMX: Reduce VMWRITEs to VMCS controls" (e.g. "KVM: nVMX: Shadow VMCS controls ' +
      'on a per-VMCS basis", "KVM: VMX: Leave preemption timer running when it\'s disabled") + Paolo Bonzini, ' +
      `"KVM: nVMX: shadow pin based execution controls" (${VMX_SERIES} 31–43/43)`,
    summary: "per-VMCS control shadows: VMWRITE only on change, no re-read on switch; pin controls shadow-RW",
    baseline: "5 control VMWRITEs per nested entry (full consistency check), 2 control VMREADs per switch",
  },
];

/**
 * Where each MMU flag's change comes from (kvm-mmu.md §3.11, §4.4, §6.4, §7); the rest of each
 * entry is `MMU_FLAG_INFO`'s, unchanged.
 */
const MMU_FLAG_COMMITS: Readonly<Record<MmuFlagName, string>> = {
  splitGuestMmu:
    '14c07ad89f4d "x86/kvm/mmu: introduce guest_mmu" and "x86/kvm/mmu: make vcpu->mmu a pointer to the current MMU" ' +
    '(Vitaly Kuznetsov, "x86/kvm/nVMX: optimize MMU switch between L1 and L2", 2018)',
  skipUnchangedMmuInit:
    '"x86/kvm/mmu: check if tdp/shadow MMU reconfiguration is needed", "x86/kvm/mmu: check if MMU reconfiguration ' +
    'is needed in init_kvm_nested_mmu()" (Vitaly Kuznetsov, same series)',
  unloadOnExit:
    "no commit: a pre-v4.20 variant reconstructed from the 14c07ad89f4d message (kvm_mmu_reset_context in " +
    "nested_vmx_load_cr3); ad7dc69aeb23 describes the last pre-split code without the unload",
  keepRootsOnRoleChange:
    'Paolo Bonzini, "KVM: MMU: do not unload MMU roots on all role changes" (2022), the parts merged for v5.18: ' +
    '3cffc89d9d07 "load new PGD after the shadow MMU is initialized", d2e5f3334169 "Always use current mmu\'s role ' +
    'when loading new PGD", 5499ea73e7db "look for a cached PGD when going from 32-bit to 64-bit"',
  keepRootsOnWpOnlyChange:
    'Mathias Krause (2023, v6.4): 01b31714bd90 "KVM: x86: Do not unload MMU roots when only toggling CR0.WP with ' +
    'TDP enabled", e40bcf9f3a18 "KVM: x86: Ignore CR0.WP toggles in non-paging mode"',
  keepRootsOnPgeChange:
    "Lai Jiangshan (2021, KVM pull for v5.16): a91a7c709600 \"KVM: X86: Don't reset mmu context when toggling " +
    'X86_CR4_PGE", 552617382c19 "… when X86_CR4_PCIDE 1->0", 509bfe3d9796 "KVM: X86: Cache CR3 in prev_roots ' +
    'when PCID is disabled"',
  keepRootsOnAllRoleChanges:
    'Paolo Bonzini, "KVM: x86: do not unload MMU roots on all role changes", v2 patch 18 of the series ' +
    '"KVM: MMU: do not unload MMU roots on all role changes" (Feb 2022, not merged; ' +
    "kvm-mmu.md §4.4)",
  fastSwitchIgnoresCr3ForDirect:
    '"KVM: x86/mmu: Ignore guest CR3 on fast root switch for direct MMU" (Sean Christopherson, ' +
    '"KVM: x86/mmu: Fast CR3 switch improvements" 1/2, Feb 2020)',
  reuseCurrentRoot:
    '"KVM: x86/mmu: Reuse the current root if possible for fast switch" (Sean Christopherson, ' +
    '"KVM: x86/mmu: Fast CR3 switch improvements" 2/2, Feb 2020)',
  preserveTdpRoots:
    'edbdb43fc96b "KVM: x86: Preserve TDP MMU roots until they are explicitly invalidated" (2023)',
};

const KERNEL_BEHAVIOUR_INFO: readonly HypervisorFlagInfo[] = [
  {
    name: "hostDebugctlPerEntry",
    kind: "kernel",
    seed: "—",
    since: "v6.14 (6.12.y by stable backport)",
    commitOrSeries:
      '189ecdb3e112 "KVM: x86: Snapshot the host\'s DEBUGCTL after disabling IRQs" (Sean Christopherson, ' +
      'after fb71c7959356 "KVM: x86: Snapshot the host\'s DEBUGCTL in common x86"; both Cc: stable)',
    summary:
      "the host's DEBUGCTL is read before every VM entry; a guest hypervisor's read is an intercepted RDMSR",
    baseline: "the host's DEBUGCTL is read on vcpu_load only (not on a plain VM entry)",
  },
];

const SWITCH_INFO: readonly HypervisorFlagInfo[] = [
  {
    name: "ept",
    kind: "switch",
    seed: "—",
    since: "v2.6.26 (approximate)",
    commitOrSeries: "kvm_intel module parameter `ept` (kvm: enable_ept)",
    summary: "L0 runs its guests with EPT (two-dimensional paging)",
    baseline: "L0 shadow-pages L1 (and L2 on top of L1's choice)",
  },
  {
    name: "l1Ept",
    kind: "switch",
    seed: "—",
    since: "v3.12 (approximate; nested EPT)",
    commitOrSeries: "vmcs12 secondary control 'enable EPT', offered to L1 only when L0 uses EPT",
    summary: "L1 uses EPT for L2; L0 shadows it with guest_mmu (shadow EPT)",
    baseline: "L1 shadow-pages L2; L0 runs L2 on a TDP root of root_mmu",
  },
  {
    name: "shadowVmcs",
    kind: "switch",
    seed: "—",
    since: "v3.10 (approximate)",
    commitOrSeries: "kvm_intel module parameter `enable_shadow_vmcs`",
    summary:
      "L1's VMREAD/VMWRITE of shadowed fields run without exits (hardware VMCS shadowing); a guest hypervisor " +
      "with it on shadows its own guest hypervisor's, which L0 emulates on the cached shadow vmcs12",
    baseline: "every L1 VMREAD and VMWRITE exits to L0 and is emulated",
  },
  {
    name: "tdpMmu",
    kind: "switch",
    seed: "—",
    since: "v5.10 (off by default); default since v5.15",
    commitOrSeries:
      "Ben Gardon's TDP MMU (merged for v5.10, disabled by default); 71ba3f3189c7 \"KVM: x86: enable TDP MMU by " +
      'default" (v5.15); module parameter `kvm.tdp_mmu`',
    summary: "direct roots are TDP MMU roots",
    baseline: "direct roots are legacy shadow pages (hash + rmap)",
  },
  {
    name: "hugePages",
    kind: "switch",
    seed: "—",
    since: "v2.6.38 (approximate; transparent huge pages; hugetlbfs earlier)",
    commitOrSeries:
      "guest memory backed by THP or hugetlbfs (kvm: kvm_mmu_hugepage_adjust, host_pfn_mapping_level); " +
      "cloud-hypervisor#6060: huge pages cut nested first-touch exits",
    summary:
      "the host backs guest memory with 2 MiB pages: EPT, shadow-EPT and shadow leaves are 2 MiB where the guest " +
      "mapping, the memslot and the shadowed gfns allow",
    baseline: "4 KiB host pages: every leaf is 4 KiB",
  },
];

function mmuInfo(name: MmuFlagName): HypervisorFlagInfo {
  const info = MMU_FLAG_INFO.find((f) => f.name === name);
  if (info === undefined) throw new Error(`MMU_FLAG_INFO has no entry for "${name}"`);
  return {
    name,
    kind: "mmu",
    seed: info.seed,
    since: info.since,
    commitOrSeries: MMU_FLAG_COMMITS[name],
    summary: info.summary,
    baseline: info.baseline,
  };
}

/** Every flag: VMX (A–F), then MMU (in `MMU_FLAG_NAMES` order), then kernel behaviours, then switches. */
export const HYPERVISOR_FLAG_INFO: readonly HypervisorFlagInfo[] = Object.freeze(
  [...VMX_FLAG_INFO, ...MMU_FLAG_NAMES.map(mmuInfo), ...KERNEL_BEHAVIOUR_INFO, ...SWITCH_INFO].map((info) =>
    Object.freeze(info),
  ),
);

/** Every flag name, in `HYPERVISOR_FLAG_INFO` order. */
export const HYPERVISOR_FLAG_NAMES: readonly HypervisorFlagName[] = Object.freeze(
  HYPERVISOR_FLAG_INFO.map((f) => f.name),
);

export const VMX_FLAG_NAMES: readonly VmxFlagName[] = Object.freeze(
  VMX_FLAG_INFO.map((f) => f.name as VmxFlagName),
);

export const KERNEL_BEHAVIOUR_NAMES: readonly KernelBehaviourName[] = Object.freeze(
  KERNEL_BEHAVIOUR_INFO.map((f) => f.name as KernelBehaviourName),
);

export const HYPERVISOR_SWITCH_NAMES: readonly HypervisorSwitchName[] = Object.freeze(
  SWITCH_INFO.map((f) => f.name as HypervisorSwitchName),
);

/**
 * The flags whose `true` is an optimization (less work): every VMX and MMU flag except
 * `unloadOnExit`, a pessimizing sub-flag of the pre-v4.20 baseline. Presets grow monotonically in
 * these; `all` turns every one of them on. Kernel behaviours and switches are not optimizations.
 */
export const OPTIMIZATION_FLAG_NAMES: readonly HypervisorFlagName[] = Object.freeze(
  HYPERVISOR_FLAG_INFO.filter((f) => (f.kind === "vmx" || f.kind === "mmu") && f.name !== "unloadOnExit").map(
    (f) => f.name,
  ),
);

/** Today's kernel behaviours (Linux 6.12.117): what `none`, `v6.12` and `all` run with. */
export const KERNEL_BEHAVIOUR_DEFAULTS: KernelBehaviours = Object.freeze({
  hostDebugctlPerEntry: true,
});

/** The configuration every preset starts from: EPT in L0 and L1, VMCS shadowing, the TDP MMU, 4-KiB host pages. */
export const HYPERVISOR_SWITCH_DEFAULTS: HypervisorSwitches = Object.freeze({
  ept: true,
  l1Ept: true,
  shadowVmcs: true,
  tdpMmu: true,
  hugePages: false,
});

const NAME_SET: ReadonlySet<string> = new Set(HYPERVISOR_FLAG_NAMES);

export function isHypervisorFlagName(name: string): name is HypervisorFlagName {
  return NAME_SET.has(name);
}

function unknownFlag(name: string): FlagError {
  return new FlagError(
    `unknown hypervisor flag "${name}"${didYouMeanSuffix(name, HYPERVISOR_FLAG_NAMES)}; ` +
      `known flags: ${HYPERVISOR_FLAG_NAMES.join(", ")}`,
  );
}

function pick<K extends HypervisorFlagName>(
  flags: HypervisorFlags,
  names: readonly K[],
): Pick<HypervisorFlags, K> {
  const out: Partial<Record<K, boolean>> = {};
  for (const name of names) out[name] = flags[name];
  return Object.freeze(out) as Pick<HypervisorFlags, K>;
}

/** The `MmuFlags` part of `flags` (frozen), for `@nestvisor/mmu`. */
export function mmuFlagsOf(flags: HypervisorFlags): MmuFlags {
  return pick(flags, MMU_FLAG_NAMES);
}

/** The `VmxFlags` part of `flags` (frozen). */
export function vmxFlagsOf(flags: HypervisorFlags): VmxFlags {
  return pick(flags, VMX_FLAG_NAMES);
}

/**
 * Flags to change: a typed partial flag set, or an untyped record from user input (JSON, a CLI)
 * that `withFlags` validates.
 */
export type FlagOverrides = Readonly<Partial<HypervisorFlags>> | Readonly<Record<string, unknown>>;

/**
 * A complete, frozen flag set: `base` with `overrides` applied. `overrides` may come from user
 * input (a JSON file, a CLI): an unknown name throws a `FlagError` with a suggestion and the list
 * of flags; a value that is not a boolean throws a `FlagError` naming the flag.
 */
export function withFlags(base: HypervisorFlags, overrides: FlagOverrides): HypervisorFlags {
  const out: Record<string, boolean> = {};
  for (const name of HYPERVISOR_FLAG_NAMES) out[name] = base[name];
  for (const [name, value] of Object.entries(overrides)) {
    if (!isHypervisorFlagName(name)) throw unknownFlag(name);
    if (typeof value !== "boolean") {
      throw new FlagError(`flag "${name}" must be true or false, not ${describeValue(value)}`);
    }
    out[name] = value;
  }
  return Object.freeze(out) as unknown as HypervisorFlags;
}

function describeValue(value: unknown): string {
  if (value === undefined) return "undefined";
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "function") return "a function";
  return JSON.stringify(value) ?? String(value);
}

const VALUE_WORDS: Readonly<Record<string, boolean>> = {
  on: true,
  true: true,
  "1": true,
  off: false,
  false: false,
  "0": false,
};

export interface FlagAssignment {
  readonly name: HypervisorFlagName;
  readonly value: boolean;
}

/**
 * One `name=value` assignment as typed on a command line; value is on/off, true/false or 1/0 (any
 * case; spaces around name and value are ignored). Throws a `FlagError` quoting the bad text.
 */
export function parseFlagAssignment(text: string): FlagAssignment {
  const eq = text.indexOf("=");
  if (eq < 0) {
    throw new FlagError(`flag assignment "${text}" has no "=": write name=on or name=off`);
  }
  const name = text.slice(0, eq).trim();
  const word = text.slice(eq + 1).trim();
  if (name === "") throw new FlagError(`flag assignment "${text}" has no flag name before "="`);
  if (!isHypervisorFlagName(name)) throw unknownFlag(name);
  const key = word.toLowerCase();
  const value = Object.hasOwn(VALUE_WORDS, key) ? VALUE_WORDS[key] : undefined;
  if (value === undefined) {
    throw new FlagError(
      `flag assignment "${text}": value "${word}" for "${name}" is not one of on, off, true, false, 1, 0`,
    );
  }
  return Object.freeze({ name, value });
}

/**
 * A comma-separated list of assignments (`a=on,b=off`, as `formatFlags` prints) as an overrides
 * object for `withFlags`. Empty items are skipped; a flag assigned twice is an error.
 */
export function parseFlagAssignments(text: string): Readonly<Partial<Record<HypervisorFlagName, boolean>>> {
  const out: Partial<Record<HypervisorFlagName, boolean>> = {};
  for (const item of text.split(",")) {
    if (item.trim() === "") continue;
    const { name, value } = parseFlagAssignment(item);
    if (name in out) throw new FlagError(`flag "${name}" is assigned more than once in "${text}"`);
    out[name] = value;
  }
  return Object.freeze(out);
}

/** The names of the flags on which `a` and `b` differ, in `HYPERVISOR_FLAG_NAMES` order. */
export function diffFlags(a: HypervisorFlags, b: HypervisorFlags): HypervisorFlagName[] {
  return HYPERVISOR_FLAG_NAMES.filter((name) => a[name] !== b[name]);
}

/** Every flag as `name=on` / `name=off`, comma-separated, in `HYPERVISOR_FLAG_NAMES` order. */
export function formatFlags(flags: HypervisorFlags): string {
  return HYPERVISOR_FLAG_NAMES.map((name) => `${name}=${flags[name] ? "on" : "off"}`).join(",");
}
