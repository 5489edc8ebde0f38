import { MMU_FLAG_PRESETS, type MmuFlags } from "@nestvisor/mmu";
import {
  FlagError,
  type FlagOverrides,
  HYPERVISOR_SWITCH_DEFAULTS,
  type HypervisorFlagName,
  type HypervisorFlags,
  KERNEL_BEHAVIOUR_DEFAULTS,
  type KernelBehaviours,
  VMX_FLAG_NAMES,
  type VmxFlags,
  withFlags,
} from "./hypervisor-flags";
import { didYouMeanSuffix } from "./name-suggestion";

/**
 * Named flag sets for historical kernels (DESIGN.md §4): the optimization flags as each release had
 * them (kvm-vmx.md §10 for the VMX part, kvm-mmu.md §7.4 for the MMU part), so a run can be
 * repeated "as v5.2" or "as today".
 *
 * Switches are configuration, not history: every preset runs the same machine (EPT in L0 and L1,
 * VMCS shadowing), so two presets differ in what the kernel does, not in what is asked of it. The
 * exception is `tdpMmu`: the TDP MMU first appeared in v5.10, disabled by default, and became the
 * default with 71ba3f3189c7 "KVM: x86: enable TDP MMU by default" (KVM pull for v5.15, "new MMU now
 * the default"), so the presets up to v5.7 turn it off and v5.17 onwards leave it on. `none` is not
 * a kernel but the ablation baseline: every optimization off on today's configuration, so `none`
 * against `v6.12` or `all` isolates the optimizations alone.
 *
 * Kernel behaviours (`KernelBehaviours`) follow the kernel: off up to v5.17, on from v6.12 (the
 * model follows 6.12.117, which has them by stable backport); `none` and `all` keep today's, so
 * that they too differ from `v6.12` in optimizations only.
 *
 * The MMU part of each preset is the `@nestvisor/mmu` preset for the same kernel, or for the range
 * of kvm-mmu.md §7.4 that contains it (v4.20–v5.6 → `v4.20`, v5.7–v5.15 → `v5.7`, v5.16–v5.17 → `v5.16`);
 * v4.19 is `none`.
 * Those version boundaries are approximate (§7.4 takes them from commit and merge context).
 */

/** One flag a preset turns on or off relative to the preset before it. */
export interface FlagChange {
  readonly flag: HypervisorFlagName;
  readonly commitOrSeries: string;
  readonly note: string;
}

export interface KernelPreset {
  readonly name: KernelPresetName;
  /** The kernel release modelled, or a description for the synthetic `none` and `all`. */
  readonly kernel: string;
  readonly description: string;
  readonly flags: HypervisorFlags;
  /** Exactly the flags that differ from the previous preset in `KERNEL_PRESET_NAMES` order. */
  readonly changes: readonly FlagChange[];
}

/** Oldest first; each preset's `changes` are relative to the one before it. */
export const KERNEL_PRESET_NAMES = Object.freeze([
  "none",
  "v4.19",
  "v4.20",
  "v5.2",
  "v5.3",
  "v5.6",
  "v5.7",
  "v5.17",
  "v6.12",
  "all",
] as const);

export type KernelPresetName = (typeof KERNEL_PRESET_NAMES)[number];

/** Today's upstream. */
export const DEFAULT_PRESET_NAME: KernelPresetName = "v6.12";

function vmxAll(on: boolean): VmxFlags {
  const out: Partial<Record<keyof VmxFlags, boolean>> = {};
  for (const name of VMX_FLAG_NAMES) out[name] = on;
  return out as VmxFlags;
}

/** The kernel behaviours of every preset kernel up to v5.17 (each changed in v6.14 or later). */
const KERNEL_BEHAVIOURS_BEFORE_V6_14: KernelBehaviours = Object.freeze({ hostDebugctlPerEntry: false });

/**
 * A preset's flags: the VMX flags all on or off, the MMU flags, the kernel behaviours of a kernel
 * before (`today` false) or with today's, and the switches at their defaults except `tdpMmu`.
 */
function presetFlags(mmu: MmuFlags, vmxOn: boolean, tdpMmu: boolean, today: boolean): HypervisorFlags {
  const behaviours = today ? KERNEL_BEHAVIOUR_DEFAULTS : KERNEL_BEHAVIOURS_BEFORE_V6_14;
  return withFlags({ ...vmxAll(vmxOn), ...mmu, ...behaviours, ...HYPERVISOR_SWITCH_DEFAULTS }, { tdpMmu });
}

const SEED_003 = 'seed 003, merged as Paolo Bonzini\'s "[PATCH 00/43] VMX optimizations" (2019)';
const SEED_000 = 'seed 000, Vitaly Kuznetsov, "x86/kvm/nVMX: optimize MMU switch between L1 and L2" (2018)';
const SEED_002 =
  'seeds 002/004, Sean Christopherson, "KVM: x86/mmu: Fast CR3 switch improvements" (Feb 2020)';

function seed003(flag: keyof VmxFlags, note: string): FlagChange {
  return { flag, commitOrSeries: SEED_003, note };
}

interface PresetSpec {
  readonly kernel: string;
  readonly description: string;
  readonly flags: HypervisorFlags;
  readonly changes: readonly FlagChange[];
}

const V5_2 = presetFlags(MMU_FLAG_PRESETS["v4.20"], false, false, false);
const V5_3 = presetFlags(MMU_FLAG_PRESETS["v4.20"], true, false, false);
const V6_12 = presetFlags(MMU_FLAG_PRESETS["v6.12"], true, true, true);

const SPECS: Readonly<Record<KernelPresetName, PresetSpec>> = {
  none: {
    kernel: "(synthetic baseline)",
    description:
      "Every optimization flag off on today's configuration (EPT, nested EPT, VMCS shadowing, TDP MMU): " +
      "the ablation baseline; no kernel had exactly this",
    flags: presetFlags(MMU_FLAG_PRESETS.none, false, true, true),
    changes: [],
  },
  "v4.19": {
    kernel: "v4.19",
    description:
      "Before Vitaly's MMU split: one MMU context re-targeted on every nested switch, full re-init each time, " +
      "victim-cache root switching; no seed-003 VMX work; legacy MMU for direct roots",
    flags: presetFlags(MMU_FLAG_PRESETS.none, false, false, false),
    changes: [
      {
        flag: "hostDebugctlPerEntry",
        commitOrSeries: "— (kernel behaviour of the era)",
        note: "the host's DEBUGCTL is read on vcpu_load (vmx_vcpu_load), not before every entry",
      },
      {
        flag: "tdpMmu",
        commitOrSeries: "— (configuration of the era)",
        note: "the TDP MMU does not exist before v5.10; direct roots are legacy shadow pages",
      },
    ],
  },
  "v4.20": {
    kernel: "v4.20",
    description: "Seed 000 landed: separate root_mmu/guest_mmu and the 'reconfiguration needed?' gates",
    flags: presetFlags(MMU_FLAG_PRESETS["v4.20"], false, false, false),
    changes: [
      {
        flag: "splitGuestMmu",
        commitOrSeries: `${SEED_000}; 14c07ad89f4d "x86/kvm/mmu: introduce guest_mmu"`,
        note: "L1's TDP context and L2's shadow-EPT context are separate; vcpu.arch.mmu becomes a pointer",
      },
      {
        flag: "skipUnchangedMmuInit",
        commitOrSeries: SEED_000,
        note: "MMU init returns early when the computed roles are unchanged (about 1000 cycles per nested exit)",
      },
    ],
  },
  "v5.2": {
    kernel: "v5.2",
    description: "The last kernel before seed 003: the v5.2 nested VMX code that the 2019 diffs start from",
    flags: V5_2,
    changes: [],
  },
  "v5.3": {
    kernel: "v5.3",
    description: "Seed 003 landed: flags A–F (VMCS data copying, nested VM-Entry, VMCS controls) all on",
    flags: V5_3,
    changes: [
      seed003("readOnlyShadowFields", 'flag A, "KVM: nVMX: Optimize VMCS data copying" (patches 07–08/43)'),
      seed003("precomputedShadowOffsets", 'flag B, "KVM: nVMX: Optimize VMCS data copying" (patch 09/43)'),
      seed003("lazyRareGuestSync", 'flag C, "KVM: nVMX: Optimize VMCS data copying" (patches 10–13/43)'),
      seed003("noVcpuPutOnVmcsSwitch", 'flag D, "KVM: nVMX: Optimize nested VM-Entry"'),
      seed003("nestedEntryWriteTrims", 'flag E, the rest of "KVM: nVMX: Optimize nested VM-Entry"'),
      seed003(
        "controlsShadow",
        'flag F, "KVM: VMX: Reduce VMWRITEs to VMCS controls" (31–42/43) + "KVM: nVMX: shadow pin based execution controls" (43/43)',
      ),
    ],
  },
  "v5.6": {
    kernel: "v5.6",
    description:
      "The last kernel before seed 002: victim-cache root switching that compares CR3 for direct roots",
    flags: V5_3,
    changes: [],
  },
  "v5.7": {
    kernel: "v5.7",
    description: "Seeds 002/004 landed: direct roots match on role only; the current root is reused",
    flags: presetFlags(MMU_FLAG_PRESETS["v5.7"], true, false, false),
    changes: [
      {
        flag: "fastSwitchIgnoresCr3ForDirect",
        commitOrSeries: `${SEED_002}, 1/2 "Ignore guest CR3 on fast root switch for direct MMU"`,
        note: "flag c1: direct roots record pgd 0 and match on their role",
      },
      {
        flag: "reuseCurrentRoot",
        commitOrSeries: `${SEED_002}, 2/2 "Reuse the current root if possible for fast switch"`,
        note: "flag c2: the current root is compared first and kept on a hit",
      },
    ],
  },
  "v5.17": {
    kernel: "v5.17",
    description:
      "The last kernel before seed 001 (v5.18): the TDP MMU is the default, role changes still unload",
    flags: presetFlags(MMU_FLAG_PRESETS["v5.16"], true, true, false),
    changes: [
      {
        flag: "keepRootsOnPgeChange",
        commitOrSeries:
          "Lai Jiangshan, a91a7c709600 and 552617382c19 \"KVM: X86: Don't reset mmu context when toggling " +
          'X86_CR4_PGE / X86_CR4_PCIDE 1->0" (v5.16)',
        note: "PGE leaves the role bits: a PGE toggle only flushes the guest TLB; a PCIDE change unloads, not resets",
      },
      {
        flag: "tdpMmu",
        commitOrSeries: '71ba3f3189c7 "KVM: x86: enable TDP MMU by default" (v5.15)',
        note:
          "configuration, not an optimization flag: direct roots become TDP MMU roots, destroyed with their last " +
          "reference until v6.4 (v5.15 stable later reverted the default)",
      },
    ],
  },
  "v6.12": {
    kernel: "v6.12",
    description: "Today's upstream: seeds 000–004 as merged, plus the 2023 CR0.WP and TDP-root fixes",
    flags: V6_12,
    changes: [
      {
        flag: "keepRootsOnRoleChange",
        commitOrSeries:
          'seed 001, Paolo Bonzini, "KVM: MMU: do not unload MMU roots on all role changes" (merged parts, v5.18)',
        note: "PGD looked up after init with the context's root role; find_without_current; reset still unloads",
      },
      {
        flag: "keepRootsOnWpOnlyChange",
        commitOrSeries: "Mathias Krause, 01b31714bd90 and e40bcf9f3a18 (v6.4)",
        note: "a CR0.WP-only change re-initialises without unloading under TDP, and does nothing with PG=0",
      },
      {
        flag: "preserveTdpRoots",
        commitOrSeries:
          'edbdb43fc96b "KVM: x86: Preserve TDP MMU roots until they are explicitly invalidated" (v6.4)',
        note: "TDP MMU roots survive losing their last vCPU reference",
      },
      {
        flag: "hostDebugctlPerEntry",
        commitOrSeries:
          '189ecdb3e112 "KVM: x86: Snapshot the host\'s DEBUGCTL after disabling IRQs" (v6.14; 6.12.y stable ' +
          "backport, in the 6.12.117 the model follows)",
        note:
          "kernel behaviour, not an optimization: vcpu_enter_guest reads DEBUGCTL before every entry, an " +
          "intercepted RDMSR (one more exit to L0) when the kernel is a guest hypervisor",
      },
    ],
  },
  // "All" means upstream plus the proposals that did not land: kvm-mmu.md §4.4/§7.2 describes seed
  // 001's v2 patch 18, which is `keepRootsOnAllRoleChanges`.
  all: {
    kernel: "v6.12 + unmerged proposals",
    description:
      "Every optimization on (unloadOnExit off): v6.12 plus seed 001 v2 patch 18, role changes without unload",
    flags: presetFlags(MMU_FLAG_PRESETS.all, true, true, true),
    changes: [
      {
        flag: "keepRootsOnAllRoleChanges",
        commitOrSeries:
          'seed 001 v2 patch 18, Paolo Bonzini, "KVM: x86: do not unload MMU roots on all role changes" (not merged)',
        note:
          "kvm_mmu_reset_context = kvm_init_mmu + reload of the current PGD with the new role; unload only for " +
          "CR0.PG 1→0, CPUID changes and CR4.SMEP 0→1",
      },
    ],
  },
};

function freezePreset(name: KernelPresetName, spec: PresetSpec): KernelPreset {
  return Object.freeze({
    name,
    kernel: spec.kernel,
    description: spec.description,
    flags: spec.flags,
    changes: Object.freeze(spec.changes.map((c) => Object.freeze({ ...c }))),
  });
}

/** Every preset by name, frozen. */
export const KERNEL_PRESETS: Readonly<Record<KernelPresetName, KernelPreset>> = Object.freeze(
  Object.fromEntries(KERNEL_PRESET_NAMES.map((name) => [name, freezePreset(name, SPECS[name])])) as Record<
    KernelPresetName,
    KernelPreset
  >,
);

export function isKernelPresetName(name: string): name is KernelPresetName {
  return (KERNEL_PRESET_NAMES as readonly string[]).includes(name);
}

/** The preset called `name`; otherwise a `FlagError` with a suggestion and the list of presets. */
export function kernelPreset(name: string): KernelPreset {
  if (!isKernelPresetName(name)) {
    throw new FlagError(
      `unknown kernel preset "${name}"${presetHint(name)}; known presets: ${KERNEL_PRESET_NAMES.join(", ")}`,
    );
  }
  return KERNEL_PRESETS[name];
}

/**
 * A suggestion for a misspelt preset name. A version without its "v" gets the "v"; another
 * version number gets no edit-distance guess, since "v5.4" is one edit from v5.2, v5.3, v5.6 and
 * v5.7 and the nearest older preset is not always right either (v5.15 already has the TDP MMU).
 */
function presetHint(name: string): string {
  const withV = `v${name}`;
  if (isKernelPresetName(withV)) return ` (did you mean "${withV}"?)`;
  if (/^v?\d+\.\d+/.test(name)) return " (no preset models that kernel)";
  return didYouMeanSuffix(name, KERNEL_PRESET_NAMES);
}

/** The flags of preset `presetName` (default: today's) with `overrides` applied (see `withFlags`). */
export function resolveFlags(
  presetName: string = DEFAULT_PRESET_NAME,
  overrides: FlagOverrides = {},
): HypervisorFlags {
  return withFlags(kernelPreset(presetName).flags, overrides);
}
