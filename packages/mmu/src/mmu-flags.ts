/**
 * The MMU optimization flags of DESIGN.md §4 and kvm-mmu.md §7: one flag per change the seed
 * series made, each with the kernel behaviour before it as its baseline. Flags change *which work
 * happens* (contexts reconfigured, roots dropped and reloaded, cache hits); they never change what
 * a guest sees. Plain data: presets are frozen objects, and `mmuFlags` validates user input.
 */
export interface MmuFlags {
  /**
   * (a) seed 000, Vitaly Kuznetsov 2018 (v4.20): separate `root_mmu` and `guest_mmu`, with
   * `vcpu.arch.mmu` a pointer. Off: one context is re-targeted as shadow EPT on every nested entry
   * and back to TDP on every exit, and L1's and L2's roots share its root cache.
   */
  readonly splitGuestMmu: boolean;
  /**
   * (a) seed 000: the "is reconfiguration needed?" gates of kvm-mmu.md §4.2 (kvm: the role
   * compares at the top of init_kvm_tdp_mmu, shadow_mmu_init_context, kvm_init_shadow_ept_mmu and
   * init_kvm_nested_mmu). Off: every init call rebuilds the permission table, PKRU mask and
   * reserved-bit masks.
   */
  readonly skipUnchangedMmuInit: boolean;
  /**
   * Sub-flag of (a) = off, after the 14c07ad89f4d commit message: every nested VM exit resets the
   * single context (unloads all its roots). Ignored while `splitGuestMmu` is on.
   */
  readonly unloadOnExit: boolean;
  /**
   * Lai Jiangshan 2021 (v5.16; a91a7c709600, 552617382c19 and 509bfe3d9796, KVM pull for v5.16):
   * CR4.PGE is no longer in KVM_MMU_CR4_ROLE_BITS, so kvm_post_set_cr4 resets the MMU only for a
   * role bit; otherwise any CR4.PCIDE change unloads every root (KVM_REQ_MMU_RELOAD, served by
   * kvm_mmu_unload) and a PGE toggle only requests a guest TLB flush. Off (up to v5.15): PGE is in
   * the mask, so a PGE toggle resets the MMU; CR4.PCIDE 1→0 resets it too and 0→1 does nothing.
   * Not one of the seeds: a baseline fix that the v5.17 preset needs. Ignored while
   * `keepRootsOnRoleChange` is on (v5.18 rewrote kvm_post_set_cr4 on top of it).
   */
  readonly keepRootsOnPgeChange: boolean;
  /**
   * (b) seed 001, Paolo Bonzini 2022 (v5.18): the new PGD is looked up *after* the context is
   * initialised, with the context's own root role, and an invalid current root does not take a
   * cache slot (kvm: cached_root_find_without_current). Off (before v5.18): the fast switch runs
   * before kvm_init_mmu with a role computed from vCPU state (kvm_mmu_calc_root_page_role), only
   * when the old guest and shadow root levels are both ≥ 4, an invalid current root is rotated into
   * prev[0], and only EFER.NX changes reset the MMU. The same release (82518a181e6c "flush TLB
   * separately from MMU reset") made the CR0/CR4 TLB-flush requests independent of the reset and
   * limited the CR4.PCIDE unload to 0→1 under shadow paging; off, kvm_post_set_cr4 behaves as
   * `keepRootsOnPgeChange` says and kvm_post_set_cr0 makes no flush request.
   */
  readonly keepRootsOnRoleChange: boolean;
  /**
   * Sub-flag of (b), Mathias Krause 2023 (v6.4, commits 01b31714bd90 and e40bcf9f3a18): a CR0
   * write that changes only WP re-initialises the MMU without unloading it under TDP, and does
   * nothing with CR0.PG = 0. Off (v5.18–v6.3): WP is an ordinary role bit and resets the MMU.
   * Ignored while `keepRootsOnRoleChange` is off.
   */
  readonly keepRootsOnWpOnlyChange: boolean;
  /**
   * Sub-flag of (b), the part of seed 001 that did not land (v2 patch 18, Paolo Bonzini 2022, "do
   * not unload MMU roots on all role changes"; kvm-mmu.md §4.4, §7.2): kvm_mmu_reset_context becomes
   * kvm_init_mmu plus a reload of the current PGD with the new root role, so a role change finds the
   * root of the other role in the cache instead of dropping every root. A full unload remains only
   * where a TLB flush is architecturally required or the role does not capture the change: CR0.PG
   * 1→0, a CPUID change, CR4.SMEP 0→1 — for every caller of the reset, KVM_SET_SREGS and the late
   * VM-fail unwind included. On only in the `all` preset. Ignored while `keepRootsOnRoleChange` is off.
   */
  readonly keepRootsOnAllRoleChanges: boolean;
  /**
   * (c1) seed 002, Sean Christopherson 2020 (v5.7): a direct (TDP) root matches on its role alone
   * and records pgd 0. Off: the guest CR3 is compared even for direct roots, which record the CR3
   * they were loaded with.
   */
  readonly fastSwitchIgnoresCr3ForDirect: boolean;
  /**
   * (c2) seeds 002/004, Sean Christopherson 2020 (v5.7): the current root is compared first and
   * reused without rotating the cache. Off: the cache is a pure victim cache; the current root is
   * always pushed to prev[0] and never compared.
   */
  readonly reuseCurrentRoot: boolean;
  /**
   * TDP MMU roots live until explicitly invalidated (kvm: edbdb43fc96b, v6.4). Read by the TDP MMU
   * backend, not by the contexts: off, dropping the last vCPU reference destroys a TDP root's tree.
   */
  readonly preserveTdpRoots: boolean;
}

export type MmuFlagName = keyof MmuFlags;

/** What each flag is, for `--help` output and reports. */
export interface MmuFlagInfo {
  readonly name: MmuFlagName;
  /** Seed document(s) the change comes from. */
  readonly seed: string;
  /** Kernel release that first had the behaviour the flag turns on (approximate, kvm-mmu.md §7.4). */
  readonly since: string;
  readonly summary: string;
  /** The behaviour with the flag off. */
  readonly baseline: string;
}

export const MMU_FLAG_INFO: readonly MmuFlagInfo[] = Object.freeze([
  {
    name: "splitGuestMmu",
    seed: "000",
    since: "v4.20",
    summary: "separate root_mmu / guest_mmu contexts; vcpu.arch.mmu is a pointer",
    baseline: "one context re-targeted as shadow EPT on every nested entry and back on every exit",
  },
  {
    name: "skipUnchangedMmuInit",
    seed: "000",
    since: "v4.20",
    summary: "skip MMU reconfiguration when the computed roles are unchanged",
    baseline: "permission table, PKRU mask and reserved-bit masks rebuilt on every init call",
  },
  {
    name: "unloadOnExit",
    seed: "000",
    since: "(pre-v4.20 variant)",
    summary: "with splitGuestMmu off: reset (unload) the single context on every nested exit",
    baseline: "no unload on exit; the exit reconfigures the context and looks up L1's root",
  },
  {
    name: "keepRootsOnPgeChange",
    seed: "— (Lai Jiangshan 2021)",
    since: "v5.16",
    summary: "a CR4.PGE toggle only requests a guest TLB flush; any CR4.PCIDE change unloads the roots",
    baseline: "PGE is an MMU role bit (a toggle resets the MMU); CR4.PCIDE 1→0 resets, 0→1 does nothing",
  },
  {
    name: "keepRootsOnRoleChange",
    seed: "001",
    since: "v5.18",
    summary: "look up the new PGD after init with the context's root role; find_without_current",
    baseline: "fast switch before init with a computed role, only for 64-bit levels; PGE is a role bit",
  },
  {
    name: "keepRootsOnWpOnlyChange",
    seed: "001",
    since: "v6.4",
    summary: "a CR0.WP-only change re-initialises without unloading under TDP (nothing with PG=0)",
    baseline: "a CR0.WP change resets the MMU and frees every root",
  },
  {
    name: "keepRootsOnAllRoleChanges",
    seed: "001 (v2 patch 18, not merged)",
    since: "(unmerged)",
    summary: "a role change re-initialises and reloads the PGD with the new role; unload only when required",
    baseline: "kvm_mmu_reset_context unloads every root on any role change",
  },
  {
    name: "fastSwitchIgnoresCr3ForDirect",
    seed: "002",
    since: "v5.7",
    summary: "direct (TDP) roots match on role only and record pgd 0",
    baseline: "the guest CR3 is compared even for direct roots",
  },
  {
    name: "reuseCurrentRoot",
    seed: "002/004",
    since: "v5.7",
    summary: "compare the current root first and keep it on a hit",
    baseline: "victim cache: the current root is pushed to prev[0] and never compared",
  },
  {
    name: "preserveTdpRoots",
    seed: "001 (follow-up)",
    since: "v6.4",
    summary: "TDP MMU roots persist until invalidated (TDP MMU backend)",
    baseline: "dropping the last reference to a TDP MMU root destroys its page tables",
  },
]);

/** Every flag name, in declaration order. */
export const MMU_FLAG_NAMES: readonly MmuFlagName[] = Object.freeze(MMU_FLAG_INFO.map((f) => f.name));

/** Upstream today (v6.4 … v6.12): every merged optimization on. */
const UPSTREAM: MmuFlags = Object.freeze({
  splitGuestMmu: true,
  skipUnchangedMmuInit: true,
  unloadOnExit: false,
  keepRootsOnPgeChange: true,
  keepRootsOnRoleChange: true,
  keepRootsOnWpOnlyChange: true,
  keepRootsOnAllRoleChanges: false,
  fastSwitchIgnoresCr3ForDirect: true,
  reuseCurrentRoot: true,
  preserveTdpRoots: true,
});

/** Every optimization on, merged or not (`unloadOnExit` is a pessimization, so it stays off). */
const ALL_ON: MmuFlags = Object.freeze({ ...UPSTREAM, keepRootsOnAllRoleChanges: true });

const V5_7: MmuFlags = Object.freeze({
  ...UPSTREAM,
  keepRootsOnPgeChange: false,
  keepRootsOnRoleChange: false,
  keepRootsOnWpOnlyChange: false,
  preserveTdpRoots: false,
});

/** v5.16–v5.17: Lai Jiangshan's CR4.PGE/PCIDE change on top of v5.7. */
const V5_16: MmuFlags = Object.freeze({ ...V5_7, keepRootsOnPgeChange: true });

/**
 * Named flag sets for historical kernels (kvm-mmu.md §7.4; the version boundaries are approximate).
 * `none` is every flag off (roughly pre-v4.20, see §6.4); `v5.7` covers v5.7–v5.15 and `v5.16`
 * covers v5.16–v5.17; `today`, `v6.12` and `v6.4` are upstream now; `all` adds the unmerged seed-001
 * patch 18 (`keepRootsOnAllRoleChanges`).
 */
export const MMU_FLAG_PRESETS = Object.freeze({
  none: Object.freeze({
    splitGuestMmu: false,
    skipUnchangedMmuInit: false,
    unloadOnExit: false,
    keepRootsOnPgeChange: false,
    keepRootsOnRoleChange: false,
    keepRootsOnWpOnlyChange: false,
    keepRootsOnAllRoleChanges: false,
    fastSwitchIgnoresCr3ForDirect: false,
    reuseCurrentRoot: false,
    preserveTdpRoots: false,
  }),
  "v4.20": Object.freeze({ ...V5_7, fastSwitchIgnoresCr3ForDirect: false, reuseCurrentRoot: false }),
  "v5.7": V5_7,
  "v5.16": V5_16,
  "v5.18": Object.freeze({ ...V5_16, keepRootsOnRoleChange: true }),
  "v6.4": UPSTREAM,
  "v6.12": UPSTREAM,
  today: UPSTREAM,
  all: ALL_ON,
} satisfies Record<string, MmuFlags>);

export type MmuFlagPresetName = keyof typeof MMU_FLAG_PRESETS;

/** The defaults: today's upstream behaviour. */
export const DEFAULT_MMU_FLAGS: MmuFlags = MMU_FLAG_PRESETS.today;

/** The preset called `name`; throws a RangeError listing the known presets otherwise. */
export function mmuFlagPreset(name: string): MmuFlags {
  if (!Object.hasOwn(MMU_FLAG_PRESETS, name)) {
    throw new RangeError(
      `unknown MMU flag preset "${name}"; known presets: ${Object.keys(MMU_FLAG_PRESETS).join(", ")}`,
    );
  }
  return MMU_FLAG_PRESETS[name as MmuFlagPresetName];
}

/**
 * A complete, frozen flag set: `base` (default: today's) with `overrides` applied. `overrides` may
 * come from user input (a JSON file, a CLI): an unknown flag name or a non-boolean value throws a
 * TypeError that names it.
 */
export function mmuFlags(
  overrides: Readonly<Record<string, unknown>> = {},
  base: MmuFlags = DEFAULT_MMU_FLAGS,
): MmuFlags {
  const out: Record<string, boolean> = { ...base };
  for (const [name, value] of Object.entries(overrides)) {
    if (!(MMU_FLAG_NAMES as readonly string[]).includes(name)) {
      throw new TypeError(`unknown MMU flag "${name}"; known flags: ${MMU_FLAG_NAMES.join(", ")}`);
    }
    if (typeof value !== "boolean") {
      throw new TypeError(`MMU flag "${name}" must be true or false, not ${JSON.stringify(value)}`);
    }
    out[name] = value;
  }
  return Object.freeze(out) as unknown as MmuFlags;
}

/** The names of the flags on which `a` and `b` differ (for "what does this preset change" output). */
export function diffMmuFlags(a: MmuFlags, b: MmuFlags): MmuFlagName[] {
  return MMU_FLAG_NAMES.filter((name) => a[name] !== b[name]);
}
