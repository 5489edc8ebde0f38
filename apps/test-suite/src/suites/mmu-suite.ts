import {
  decodePageRole,
  INVALID_ROOT,
  KVM_ROOT_CACHE,
  MMU_EVENTS,
  MMU_FLAG_NAMES,
  type MmuContext,
  type MmuFlagName,
  type MmuFlags,
  type MmuRegisters,
  mmuFlags,
  type NestedEntryState,
  NO_SHADOW_PAGE,
  PAGE_ROLE,
  type RootCachePolicy,
  type VcpuMmu,
} from "@nestvisor/mmu";
import { CountingMeter, type MeterSnapshot } from "@nestvisor/vmx";
import { CR0, CR4, EFER, EPT_MEMORY_TYPE, encodeEptPointer } from "@nestvisor/x86-arch";
import { hex } from "../case-recorder";
import type { ModelParts } from "../model-parts";
import { Prng } from "../prng";
import type { CaseGroup, Suite, SuiteContext } from "../suite";
import { SuiteRootBackend } from "./suite-root-backend";

/**
 * kvm-mmu.md §6.3 and §7: the root cache and the MMU roles per flag, on the model's `VcpuMmu` (its
 * `vcpuMmu` hook) with the model's root-cache policy (`ModelPolicies.rootCache`) over the suite's
 * own root backend. Registers are a 64-bit L1 and L2 with WP, NX, SMEP, SMAP and PKE (the worked role
 * of kvm-mmu.md §2.9). The counts are KVM's lookup and LRU replacement (kvm: fast_pgd_switch); the
 * cases that fill the cache are sized to the policy's number of previous roots, so a larger cache
 * is checked for the same behaviour, not for KVM's 3 slots.
 */

const GUEST_CR0 = (CR0.PE | CR0.MP | CR0.ET | CR0.NE | CR0.WP | CR0.AM | CR0.PG) >>> 0;
const GUEST_CR4 = (CR4.PAE | CR4.PGE | CR4.OSFXSR | CR4.SMEP | CR4.SMAP | CR4.PKE) >>> 0;
const GUEST_EFER = (EFER.SCE | EFER.LME | EFER.LMA | EFER.NXE) >>> 0;
const L1_REGS: MmuRegisters = Object.freeze({
  cr0: GUEST_CR0,
  cr3: 0x10_0000,
  cr4: GUEST_CR4,
  efer: GUEST_EFER,
});

function eptp(root: number, accessedDirty = true): number {
  const { lo, hi } = encodeEptPointer({
    memoryType: EPT_MEMORY_TYPE.WB,
    walkLength: 4,
    accessedDirty,
    supervisorShadowStack: false,
    root,
  });
  return hi * 2 ** 32 + lo;
}
const EPTP12 = eptp(0x30_0000);

function l2State(cr3: number, withEpt: boolean, ept = EPTP12): NestedEntryState {
  const regs = { cr0: GUEST_CR0, cr3, cr4: GUEST_CR4, efer: GUEST_EFER };
  return withEpt ? { ...regs, eptp: ept } : regs;
}

interface Scenario {
  readonly vcpu: VcpuMmu;
  readonly backend: SuiteRootBackend;
  readonly meter: CountingMeter;
}

/** The root cache the model's MMU contexts use (its policy, else KVM's). */
export function rootCacheOf(ctx: SuiteContext): RootCachePolicy {
  return ctx.model.policies?.rootCache ?? KVM_ROOT_CACHE;
}

/** A vCPU running L1 with its root loaded; counts start after that unless `countSetup`. */
function scenario(
  parts: ModelParts,
  rootCache: RootCachePolicy,
  flags: MmuFlags,
  tdpEnabled = true,
  countSetup = false,
): Scenario {
  const backend = new SuiteRootBackend();
  const meter = new CountingMeter([MMU_EVENTS]);
  const vcpu = parts.vcpuMmu({
    backend,
    meter,
    flags,
    tdpEnabled,
    ...(rootCache === KVM_ROOT_CACHE ? {} : { rootCache }),
  });
  vcpu.setSregs(L1_REGS);
  vcpu.reload();
  if (!countSetup) {
    meter.reset();
    for (const ctx of [vcpu.rootMmu, vcpu.guestMmu, vcpu.nestedMmu]) ctx.stats.reset();
  }
  return { vcpu, backend, meter };
}

function roundTrip(vcpu: VcpuMmu, l2: NestedEntryState): void {
  vcpu.nestedVmEntry(l2);
  vcpu.reload();
  vcpu.nestedVmExit(L1_REGS);
  vcpu.reload();
}

function showCounts(counts: Readonly<Record<string, number>>): string {
  const keys = Object.keys(counts).sort();
  return keys.length === 0 ? "{}" : `{ ${keys.map((k) => `${k}: ${counts[k]}`).join(", ")} }`;
}

function sameCounts(got: MeterSnapshot, want: Readonly<Record<string, number>>): boolean {
  const keys = new Set([...Object.keys(got), ...Object.keys(want)]);
  for (const k of keys) if ((got[k] ?? 0) !== (want[k] ?? 0)) return false;
  return true;
}

/** The MMU flags of the run with some set (the configuration switches are the hypervisor's). */
function flagsWith(ctx: SuiteContext, overrides: Partial<MmuFlags>): MmuFlags {
  const base: Partial<Record<MmuFlagName, boolean>> = {};
  for (const name of MMU_FLAG_NAMES) base[name] = ctx.flags[name];
  return mmuFlags({ ...base, ...overrides });
}

interface CountCase {
  readonly name: string;
  readonly flags: Partial<MmuFlags>;
  readonly tdpEnabled?: boolean;
  /** Runs the steps and returns what was counted, compared with `want`. */
  run(s: Scenario): MeterSnapshot | { hits: number; misses: number; drops: number; loads: number };
  readonly want: Readonly<Record<string, number>>;
  readonly countSetup?: boolean;
  /** The case needs at least this many previous roots (its roots must fit in the cache). */
  readonly minPrevRoots?: number;
}

const TODAY: Partial<MmuFlags> = {
  splitGuestMmu: true,
  skipUnchangedMmuInit: true,
  unloadOnExit: false,
  keepRootsOnRoleChange: true,
  keepRootsOnWpOnlyChange: true,
  fastSwitchIgnoresCr3ForDirect: true,
  reuseCurrentRoot: true,
};

function measured(s: Scenario, warm: () => void, steps: () => void): MeterSnapshot {
  warm();
  const before = s.meter.snapshot();
  steps();
  return s.meter.diff(before);
}

/** L2 CR3s that overflow a cache with `prev` previous roots (L1's root takes a slot too): 4 for KVM. */
function thrashingCr3s(prev: number): number[] {
  return Array.from({ length: prev + 1 }, (_, i) => 0x40_0000 + i * 0x1_0000);
}

/**
 * §6.3 and §7.1: what one nested round trip costs the MMU, per case and per flag (a), with `prev`
 * previous roots per context (KVM: 3).
 */
function roundTripCases(prev: number): CountCase[] {
  const thrash = thrashingCr3s(prev);
  const A = (cr3 = 0x20_0000) => l2State(cr3, true);
  const B = (cr3 = 0x20_0000) => l2State(cr3, false);
  return [
    {
      name: "§6.3 case A cold first entry: guest_mmu and nested_mmu reconfigured, one miss, one load",
      flags: TODAY,
      run: (s) =>
        measured(
          s,
          () => undefined,
          () => {
            s.vcpu.nestedVmEntry(A());
            s.vcpu.reload();
          },
        ),
      want: {
        CONTEXT_INIT: 2,
        PERMISSION_BITMASK_UPDATE: 2,
        PKRU_BITMASK_UPDATE: 1,
        GUEST_RSVD_MASK_RESET: 2,
        SHADOW_ZERO_MASK_RESET: 1,
        PGD_MISS: 1,
        ROOT_LOAD: 1,
      },
    },
    {
      name: "§6.3 case A steady state: 0 reconfigurations, 0 drops, 0 loads, 2 current-root hits per round trip",
      flags: TODAY,
      run: (s) =>
        measured(
          s,
          () => roundTrip(s.vcpu, A()),
          () => {
            for (let i = 0; i < 5; i++) roundTrip(s.vcpu, A());
          },
        ),
      want: { PGD_HIT_CURRENT: 10 },
    },
    {
      name: "§6.3 case B steady state: 2 reconfigurations and 2 prev[0] hits per round trip, L2 CR3 ignored",
      flags: TODAY,
      run: (s) =>
        measured(
          s,
          () => roundTrip(s.vcpu, B()),
          () => {
            for (let i = 0; i < 4; i++) roundTrip(s.vcpu, B(0x40_0000 + i * 0x1000));
          },
        ),
      want: {
        CONTEXT_INIT: 8,
        PERMISSION_BITMASK_UPDATE: 8,
        PKRU_BITMASK_UPDATE: 8,
        GUEST_RSVD_MASK_RESET: 8,
        SHADOW_ZERO_MASK_RESET: 8,
        PGD_HIT_PREV: 8,
      },
    },
    {
      name: "§6.3 case C (shadow paging) steady state: every switch reconfigures; CR3s hit prev[0]",
      flags: TODAY,
      tdpEnabled: false,
      run: (s) =>
        measured(
          s,
          () => roundTrip(s.vcpu, B()),
          () => {
            for (let i = 0; i < 3; i++) roundTrip(s.vcpu, B());
          },
        ),
      want: {
        CONTEXT_INIT: 6,
        PERMISSION_BITMASK_UPDATE: 6,
        PKRU_BITMASK_UPDATE: 6,
        GUEST_RSVD_MASK_RESET: 6,
        SHADOW_ZERO_MASK_RESET: 6,
        PGD_HIT_PREV: 6,
      },
    },
    {
      name: `§6.3 case C: L1's and L2's shadow roots share ${prev} prev slots — ${prev + 1} L2 CR3s thrash`,
      flags: TODAY,
      tdpEnabled: false,
      run: (s) => {
        const d = measured(
          s,
          () => {
            for (const cr3 of thrash) roundTrip(s.vcpu, B(cr3));
          },
          () => {
            for (const cr3 of thrash) roundTrip(s.vcpu, B(cr3));
          },
        );
        return {
          PGD_MISS: d.PGD_MISS ?? 0,
          ROOT_DROP: d.ROOT_DROP ?? 0,
          ROOT_LOAD: d.ROOT_LOAD ?? 0,
          PGD_HIT_PREV: d.PGD_HIT_PREV ?? 0,
        };
      },
      want: { PGD_MISS: prev + 1, ROOT_DROP: prev + 1, ROOT_LOAD: prev + 1, PGD_HIT_PREV: prev + 1 },
    },
    {
      name: "§6.3 INVEPT global frees all of guest_mmu and nothing of root_mmu",
      flags: TODAY,
      minPrevRoots: 2,
      run: (s) =>
        measured(
          s,
          () => {
            for (const e of [eptp(0x30_0000), eptp(0x31_0000), eptp(0x32_0000)])
              roundTrip(s.vcpu, l2State(0x20_0000, true, e));
          },
          () => s.vcpu.handleInvept(2, 0),
        ),
      want: { ROOT_DROP: 3 },
    },
    {
      name: "§6.3 INVEPT single-context frees the slots with the same EPT12 root, whatever the A/D bit",
      flags: TODAY,
      minPrevRoots: 3,
      run: (s) =>
        measured(
          s,
          () => {
            for (const e of [eptp(0x30_0000), eptp(0x31_0000), eptp(0x30_0000, false), eptp(0x32_0000)]) {
              roundTrip(s.vcpu, l2State(0x20_0000, true, e));
            }
          },
          () => s.vcpu.handleInvept(1, EPTP12),
        ),
      want: { ROOT_DROP: 2 },
    },
    {
      name: "§7.2 b on: a CR0.WP-only toggle of L1 under TDP keeps every root (0 drops, 0 loads)",
      flags: TODAY,
      run: (s) => {
        const d = measured(
          s,
          () => undefined,
          () => {
            for (let i = 0; i < 4; i++) {
              s.vcpu.setCr0(s.vcpu.cr0 ^ CR0.WP);
              s.vcpu.reload();
            }
          },
        );
        return { ROOT_DROP: d.ROOT_DROP ?? 0, ROOT_LOAD: d.ROOT_LOAD ?? 0, MMU_UNLOAD: d.MMU_UNLOAD ?? 0 };
      },
      want: { ROOT_DROP: 0, ROOT_LOAD: 0, MMU_UNLOAD: 0 },
    },
    {
      name: "§7.2 b off: every CR0.WP toggle of L1 resets the MMU (unload, then one load)",
      flags: { ...TODAY, keepRootsOnRoleChange: false, keepRootsOnWpOnlyChange: false },
      run: (s) => {
        const d = measured(
          s,
          () => undefined,
          () => {
            for (let i = 0; i < 4; i++) {
              s.vcpu.setCr0(s.vcpu.cr0 ^ CR0.WP);
              s.vcpu.reload();
            }
          },
        );
        return { ROOT_LOAD: d.ROOT_LOAD ?? 0, MMU_UNLOAD: d.MMU_UNLOAD ?? 0 };
      },
      want: { ROOT_LOAD: 4, MMU_UNLOAD: 4 },
    },
  ];
}

/**
 * §7.3: 10 round trips, one vCPU, only L1's root loaded at the start (kvm-mmu.md's table, for
 * `prev` = 3 previous roots). The cycling row uses `prev + 1` L2 CR3s: with c1 off each is its own
 * direct root, so every entry misses and the 11 roots loaded overflow the `prev + 1` slots.
 */
function rootCacheTableCases(prev: number): CountCase[] {
  const cycle = thrashingCr3s(prev).length;
  const overflow = Math.max(0, 11 - cycle);
  const combos = [
    ["c1 off, c2 off", false, false],
    ["c1 on, c2 off", true, false],
    ["c1 on, c2 on", true, true],
  ] as const;
  const scenarios = [
    [
      "case A, guest_mmu (same EPTP every entry)",
      true,
      () => 0x40_0000,
      "guest",
      [
        [8, 2, 0, 2],
        [8, 2, 0, 2],
        [9, 1, 0, 1],
      ],
    ],
    [
      "case A, root_mmu (same host CR3 every exit)",
      true,
      () => 0x40_0000,
      "root",
      [
        [9, 1, 0, 2],
        [9, 1, 0, 2],
        [10, 0, 0, 1],
      ],
    ],
    [
      "case B, root_mmu, L2 CR3 constant",
      false,
      () => 0x40_0000,
      "root",
      [
        [19, 1, 0, 2],
        [19, 1, 0, 2],
        [19, 1, 0, 2],
      ],
    ],
    [
      `case B, root_mmu, L2 cycles through ${cycle} CR3s`,
      false,
      (i: number) => 0x40_0000 + (i % cycle) * 0x1000,
      "root",
      [
        [10, 10, overflow, 11],
        [19, 1, 0, 2],
        [19, 1, 0, 2],
      ],
    ],
  ] as const;
  const cases: CountCase[] = [];
  for (const keepRoots of [true, false]) {
    for (const [sname, withEpt, cr3, which, table] of scenarios) {
      combos.forEach(([cname, c1, c2], i) => {
        const [hits, misses, drops, loads] = table[i]!;
        cases.push({
          name: `§7.3 ${sname}, ${cname}, flag b ${keepRoots ? "on" : "off"}`,
          flags: {
            ...TODAY,
            fastSwitchIgnoresCr3ForDirect: c1,
            reuseCurrentRoot: c2,
            keepRootsOnRoleChange: keepRoots,
            keepRootsOnWpOnlyChange: keepRoots,
          },
          countSetup: true,
          run: (s) => {
            for (let r = 0; r < 10; r++) roundTrip(s.vcpu, l2State(cr3(r), withEpt));
            const stats = (which === "guest" ? s.vcpu.guestMmu : s.vcpu.rootMmu).stats;
            // Every previous slot's hits (MmuStats.hits sums KVM's three slots only).
            let hits = stats.hitCurrent;
            for (const n of stats.hitPrev) hits += n;
            return { hits, misses: stats.misses, drops: stats.drops, loads: stats.loads };
          },
          want: { hits, misses, drops, loads },
        });
      });
    }
  }
  return cases;
}

function countGroup(
  ctx: SuiteContext,
  id: string,
  description: string,
  all: (prev: number) => readonly CountCase[],
): CaseGroup {
  const rootCache = rootCacheOf(ctx);
  const prev = rootCache.prevRoots;
  const every = all(prev);
  const cases = every.filter((c) => (c.minPrevRoots ?? 0) <= prev);
  const left = every.length - cases.length;
  const note =
    rootCache === KVM_ROOT_CACHE
      ? ""
      : ` (root cache "${rootCache.name}", ${prev} previous roots${left > 0 ? `; ${left} cases need more and are not run` : ""})`;
  return {
    id,
    description: `${description}${note}`,
    cases: cases.length,
    run(rec, c) {
      for (const k of cases) {
        try {
          const s = scenario(
            c.parts,
            rootCacheOf(c),
            flagsWith(c, k.flags),
            k.tdpEnabled ?? true,
            k.countSetup ?? false,
          );
          const got = k.run(s) as Record<string, number>;
          if (sameCounts(got, k.want)) rec.pass();
          else rec.fail(`${k.name}: counted ${showCounts(got)}, expected ${showCounts(k.want)}`);
        } catch (error) {
          rec.fail(`${k.name}: threw ${(error as Error).message}`);
        }
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The root-role invariant under random operation sequences, per flag combination.

/** Flags the invariant group varies (preserveTdpRoots belongs to the TDP MMU backend). */
const VARIED: readonly MmuFlagName[] = [
  "splitGuestMmu",
  "skipUnchangedMmuInit",
  "unloadOnExit",
  "keepRootsOnRoleChange",
  "keepRootsOnWpOnlyChange",
  "keepRootsOnAllRoleChanges",
  "fastSwitchIgnoresCr3ForDirect",
  "reuseCurrentRoot",
];

/** The role bits in which `found` differs from `wanted`, by name ("guest_mode false instead of true"). */
export function roleDifference(found: number, wanted: number): string {
  const a = decodePageRole(found) as unknown as Record<string, unknown>;
  const b = decodePageRole(wanted) as unknown as Record<string, unknown>;
  const diff = Object.keys(a).filter((k) => a[k] !== b[k]);
  return diff.map((k) => `${k} ${String(a[k])} instead of ${String(b[k])}`).join(", ");
}

/**
 * What KVM guarantees at every VM entry (kvm: kvm_mmu_reload, is_root_usable): the context the
 * hardware uses has a current root, the root page's role is the context's root role, and an
 * indirect root shadows the guest table the context's PGD names. Returns null or the violation.
 */
export function checkActiveRoot(vcpu: VcpuMmu, backend: SuiteRootBackend, after: string): string | null {
  const ctx: MmuContext = vcpu.mmu;
  if (ctx.rootHpa === INVALID_ROOT) return `after ${after}: ${ctx.kind} has no root at VM entry`;
  const word = backend.rootRoleWord(ctx.rootHpa);
  if (word === NO_SHADOW_PAGE) return null;
  if (word >>> 0 !== ctx.rootRole >>> 0) {
    return (
      `after ${after}: ${ctx.kind}'s current root ${hex(ctx.rootHpa)} has role ${hex(word)} but the context's root role is ${hex(ctx.rootRole)} ` +
      `(${roleDifference(word, ctx.rootRole)}): the root cache handed out a root without comparing its role (kvm: is_root_usable)`
    );
  }
  if ((word & PAGE_ROLE.DIRECT) === 0) {
    const pgd = vcpu.guestPgd(ctx);
    const gfn = Math.floor(pgd / 0x1000) % 2 ** 40;
    if (backend.gfnOf(ctx.rootHpa) !== gfn) {
      return `after ${after}: ${ctx.kind}'s current root shadows gfn ${hex(backend.gfnOf(ctx.rootHpa))} but the guest's ${ctx.guestPgdIsEptp ? "EPTP" : "CR3"} is ${hex(pgd)} (kvm: is_root_usable compares the PGD)`;
    }
  }
  return null;
}

type Op = (v: VcpuMmu, rng: Prng) => string;

const L1_CR3S = [0x10_0000, 0x11_0000, 0x12_0000];
const L2_CR3S = [0x40_0000, 0x41_0000, 0x42_0000, 0x43_0000, 0x44_0000];
const EPTPS = [eptp(0x30_0000), eptp(0x31_0000), eptp(0x32_0000, false), eptp(0x33_0000)];
const CR4_BITS = [CR4.SMEP, CR4.SMAP, CR4.PKE, CR4.PGE];

function randomOps(tdpEnabled: boolean): Op[] {
  return [
    (v, rng) => {
      if (v.guestMode) {
        v.nestedVmExit({ ...L1_REGS, cr3: L1_CR3S[rng.below(L1_CR3S.length)]! });
        return "a nested VM exit";
      }
      const withEpt = tdpEnabled && rng.below(3) !== 0;
      const cr3 = L2_CR3S[rng.below(L2_CR3S.length)]!;
      const e = EPTPS[rng.below(EPTPS.length)]!;
      v.nestedVmEntry(l2State(cr3, withEpt, e));
      return `a nested VM entry ${withEpt ? `with EPT12 ${hex(e)}` : "without EPT12"} (L2 CR3 ${hex(cr3)})`;
    },
    (v) => {
      v.setCr0(v.cr0 ^ CR0.WP);
      return `a CR0.WP toggle in ${v.guestMode ? "L2" : "L1"}`;
    },
    (v, rng) => {
      const bit = CR4_BITS[rng.below(CR4_BITS.length)]!;
      v.setCr4(v.cr4 ^ bit);
      return `a CR4 ${hex(bit)} toggle in ${v.guestMode ? "L2" : "L1"}`;
    },
    (v) => {
      v.setEfer(v.efer ^ EFER.NXE);
      return `an EFER.NX toggle in ${v.guestMode ? "L2" : "L1"}`;
    },
    (v, rng) => {
      // With nested EPT, L2's MOV to CR3 never reaches L0 (no CR3 exiting, or reflected to L1).
      if (v.guestMode && v.mmuIsNested) return "nothing";
      const cr3 = (v.guestMode ? L2_CR3S : L1_CR3S)[rng.below(3)]!;
      v.setCr3(cr3);
      return `a CR3 switch to ${hex(cr3)} in ${v.guestMode ? "L2" : "L1"}`;
    },
    (v, rng) => {
      if (v.guestMode) return "nothing";
      const global = rng.below(2) === 0;
      v.handleInvept(global ? 2 : 1, EPTPS[rng.below(EPTPS.length)]!);
      return `INVEPT ${global ? "global" : "single-context"}`;
    },
  ];
}

interface InvariantConfig {
  readonly label: string;
  readonly flags: MmuFlags;
  readonly tdpEnabled: boolean;
}

function invariantConfigs(ctx: SuiteContext): InvariantConfig[] {
  const base = flagsWith(ctx, {});
  const out: InvariantConfig[] = [];
  const sets: { label: string; flags: MmuFlags }[] = [];
  if (ctx.full) {
    for (let m = 0; m < 1 << VARIED.length; m++) {
      const o: Partial<Record<MmuFlagName, boolean>> = {};
      VARIED.forEach((name, i) => {
        o[name] = (m & (1 << i)) !== 0;
      });
      sets.push({
        label: VARIED.filter((_, i) => (m & (1 << i)) !== 0).join("+") || "all off",
        flags: mmuFlags({ ...base, ...o }),
      });
    }
  } else {
    sets.push({ label: `the run's flags`, flags: base });
    for (const name of VARIED)
      sets.push({
        label: `${name}=${base[name] ? "off" : "on"}`,
        flags: mmuFlags({ ...base, [name]: !base[name] }),
      });
  }
  for (const s of sets) {
    for (const tdpEnabled of [true, false])
      out.push({ label: `${s.label}, ${tdpEnabled ? "TDP" : "shadow paging"}`, flags: s.flags, tdpEnabled });
  }
  return out;
}

function invariantGroup(ctx: SuiteContext): CaseGroup {
  const configs = invariantConfigs(ctx);
  const steps = ctx.full ? 2000 : 400;
  return {
    id: "mmu/root-role-invariant",
    description: `random nested entries/exits, CR0/CR4/EFER/CR3 writes and INVEPT; the root used at every VM entry has the context's role (${configs.length} flag configurations)`,
    cases: configs.length * steps,
    run(rec, c) {
      configs.forEach((config, index) => {
        const rng = new Prng(c.seed ^ (index * 0x9e3779b1));
        const s = scenario(c.parts, rootCacheOf(c), config.flags, config.tdpEnabled);
        const ops = randomOps(config.tdpEnabled);
        for (let step = 0; step < steps; step++) {
          const op = ops[rng.below(ops.length)]!;
          const what = op(s.vcpu, rng);
          s.vcpu.reload();
          const problem = checkActiveRoot(s.vcpu, s.backend, what);
          if (problem === null) rec.pass();
          else {
            // The state is off the rails after a violation: the rest of this sequence is not run.
            rec.fail(`${config.label}, step ${step}: ${problem}`);
            break;
          }
        }
      });
    },
  };
}

/** The `mmu` suite: root cache and MMU roles per flag (kvm-mmu.md §6.3, §7). */
export const MMU_SUITE: Suite = {
  name: "mmu",
  description:
    "KVM's MMU root cache and roles per flag (kvm-mmu.md §6.3, §7) on the model's VcpuMmu and root-cache policy",
  groups(ctx) {
    return [
      countGroup(
        ctx,
        "mmu/round-trips",
        "per-round-trip MMU work of the nested switch cases and the WP toggle (§6.3, §7.1, §7.2)",
        roundTripCases,
      ),
      countGroup(
        ctx,
        "mmu/root-cache-table",
        "the §7.3 table: hits, misses, drops and loads per fast-switch flag (c1, c2) and flag b",
        rootCacheTableCases,
      ),
      invariantGroup(ctx),
    ];
  },
};
