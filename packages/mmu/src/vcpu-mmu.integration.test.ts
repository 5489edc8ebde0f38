import { CR0, CR4, EPT_ACCESS, EPT_MEMORY_TYPE, EPTE_LO, PAGE_SIZE } from "@nestvisor/x86-arch";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MMU_FLAG_PRESETS, type MmuFlags, mmuFlags } from "./mmu-flags";
import { SHADOW_FAULT } from "./shadow-fault";
import { TDP_MAP_RESULT } from "./tdp-mmu";
import { GuestEptBuilder } from "./testing/guest-ept-builder";
import { L1_REGS, L2_CR3 } from "./testing/nested-scenario";
import { type RealVcpuFixture, realVcpuFixture } from "./testing/real-vcpu-fixture";
import { INVEPT_TYPE } from "./vcpu-mmu";

/**
 * The cross-component check of `VcpuMmu` on the real backends: root_mmu's direct roots from the
 * TDP MMU, guest_mmu's shadow-EPT roots from the shadow MMU, one `ShadowRootBackend` serving both.
 * Random sequences of nested entries and exits, EPT12 writes (emulated: `trackedWrite`), EPTP
 * switches (VMFUNC while L2 runs, vmcs12 writes while L1 runs) among three EPT12 trees, L1 CR0/CR4
 * writes, INVEPT, L2 accesses (EPT violations handled by `ShadowEptMmu` on guest_mmu's current
 * root) and L1 accesses (TDP faults on root_mmu's current root) — with the audit of every valid
 * root slot (current and previous, both contexts) after every step, for all 64 combinations of the
 * six context/backend flags.
 *
 * With `splitGuestMmu` off there is one context (guest_mmu is root_mmu): its root cache holds TDP
 * and shadow-EPT roots side by side, and the one backend builds either kind from the role, as the
 * code does (kvm before v4.20 re-targeted the single context each way). The audit picks the
 * reference per slot from the root page's role: direct → memslots, indirect → the EPT12 named by
 * the slot's pgd. `unloadOnExit` (only read with the split off) is drawn at random;
 * `keepRootsOnWpOnlyChange` follows `keepRootsOnRoleChange`.
 */

const SIX_FLAGS = [
  "splitGuestMmu",
  "skipUnchangedMmuInit",
  "keepRootsOnRoleChange",
  "preserveTdpRoots",
  "fastSwitchIgnoresCr3ForDirect",
  "reuseCurrentRoot",
] as const;

const WB = EPT_MEMORY_TYPE.WB << EPTE_LO.MEMORY_TYPE_SHIFT;
/** L2 GPAs mapped by 4-KiB EPT12 leaves in every tree. */
const L2_PAGES = [0x1000, 0x2000, 0x3000, 0x20_0000, 0x4000_0000, 0x4000_1000];
/** An L2 GPA mapped by a 2-MiB EPT12 leaf. */
const L2_LARGE = 0x60_0000;
/** Where the three EPT12 trees live in L1 memory. */
const TREE_BASES = [0x80_0000, 0x90_0000, 0xa0_0000];

type Op =
  | { kind: "nest" }
  | { kind: "ept12Leaf"; tree: number; page: number; target: number; rwx: number }
  | { kind: "eptp"; tree: number }
  | { kind: "cr0"; bit: number }
  | { kind: "cr4"; bit: number }
  | { kind: "invept"; global: boolean; tree: number }
  | { kind: "l2Access"; page: number; large: boolean; access: number; offset: number }
  | { kind: "l1Access"; target: number; write: boolean };

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ kind: "nest" as const }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("ept12Leaf" as const),
      tree: fc.nat(2),
      page: fc.nat(L2_PAGES.length - 1),
      target: fc.nat(40),
      rwx: fc.constantFrom(0, 1, 3, 4, 5, 7),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("eptp" as const), tree: fc.nat(2) }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("cr0" as const), bit: fc.constantFrom(CR0.WP) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("cr4" as const),
      bit: fc.constantFrom(CR4.SMEP, CR4.PGE, CR4.SMAP, CR4.PKE),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("invept" as const), global: fc.boolean(), tree: fc.nat(2) }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant("l2Access" as const),
      page: fc.nat(L2_PAGES.length - 1),
      large: fc.boolean(),
      access: fc.constantFrom(EPT_ACCESS.READ, EPT_ACCESS.WRITE, EPT_ACCESS.FETCH),
      offset: fc.nat(0x1f_ffff),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant("l1Access" as const), target: fc.nat(63), write: fc.boolean() }),
  },
);

interface World {
  readonly f: RealVcpuFixture;
  readonly trees: GuestEptBuilder[];
  readonly eptps: number[];
  /** vmcs12's EPT pointer for the next entry. */
  next: number;
  /** L1's control registers (also vmcs12's host state). */
  l1: { cr0: number; cr3: number; cr4: number; efer: number };
  /** L2 pages' EPT12 leaf entries, per tree. */
  readonly leaves: number[][];
  readonly ept12Targets: number[];
  readonly l1Targets: number[];
}

function world(flags: MmuFlags, accessedDirty: readonly boolean[]): World {
  const f = realVcpuFixture({ flags, tablePages: 384, l1Pages: 0xc00 });
  const trees = TREE_BASES.map((base) => new GuestEptBuilder(f.l1Memory, base, 4));
  for (const [t, tree] of trees.entries()) {
    for (const [i, gpa] of L2_PAGES.entries()) tree.map(gpa, 0x40_0000 + (i + 8 * t) * PAGE_SIZE);
    tree.map(L2_LARGE, 0x20_0000 * (t + 1), { leafLevel: 2 });
  }
  const eptps = trees.map((tree, t) => tree.eptp(accessedDirty[t] ?? true).value);
  const leaves = trees.map((tree) => L2_PAGES.map((gpa) => tree.entryAddress(gpa, 1)));
  const ept12Targets = [
    ...Array.from({ length: 24 }, (_, i) => 0x40_0000 + i * PAGE_SIZE),
    ...Array.from({ length: 4 }, (_, i) => (f.roGfn + i) * PAGE_SIZE),
    trees[0]!.entryAddress(0x1000, 1) & ~0xfff, // an EPT12 table page (write-tracked once shadowed)
    trees[1]!.root, // another tree's root table
    0x7000_0000, // no memslot
  ];
  const l1Targets = [
    ...Array.from({ length: 40 }, (_, i) => 0x40_0000 + i * PAGE_SIZE),
    ...TREE_BASES.flatMap((b) => [b, b + PAGE_SIZE, b + 2 * PAGE_SIZE]),
    ...Array.from({ length: 8 }, (_, i) => (f.roGfn + i) * PAGE_SIZE),
    0x7000_0000,
  ];
  return { f, trees, eptps, next: eptps[0]!, l1: { ...L1_REGS }, leaves, ept12Targets, l1Targets };
}

/**
 * Every EPT12 table page L0 shadows (write-tracked) is read-only in EPT01 — in root_mmu's current
 * root, whether L1 touched it before or after it became shadowed (kvm: make_spte refuses W for a
 * tracked gfn; kvm_mmu_slot_gfn_write_protect reaches the TDP MMU). Returns the pages checked.
 */
function checkEpt12WriteProtected(w: World): number {
  let checked = 0;
  for (const tree of w.trees) {
    for (let gpa = tree.root; gpa < tree.nextFree; gpa += PAGE_SIZE) {
      if (!w.f.store.isGfnTracked(gpa / PAGE_SIZE)) continue;
      expect(w.f.ept01Allows(gpa, EPT_ACCESS.WRITE)).toBe(false);
      checked++;
    }
  }
  return checked;
}

function exitToL1(w: World): void {
  if (!w.f.vcpu.guestMode) return;
  w.f.vcpu.nestedVmExit(w.l1);
  w.f.vcpu.reload();
}

function enterL2(w: World): void {
  if (w.f.vcpu.guestMode) return;
  w.f.vcpu.nestedVmEntry({
    cr0: L1_REGS.cr0,
    cr3: L2_CR3,
    cr4: L1_REGS.cr4,
    efer: L1_REGS.efer,
    eptp: w.next,
  });
  w.f.vcpu.reload();
}

function step(w: World, o: Op): void {
  const { f } = w;
  const vcpu = f.vcpu;
  switch (o.kind) {
    case "nest":
      if (vcpu.guestMode) exitToL1(w);
      else enterL2(w);
      return;
    case "ept12Leaf": {
      // L1 writes its EPT12 (from L1 or L2 — where it runs does not matter to L0): L0 emulates it.
      const at = w.leaves[o.tree]![o.page]!;
      const target = w.ept12Targets[o.target % w.ept12Targets.length]!;
      f.l1Memory.write64(at, o.rwx === 0 ? 0 : (target | o.rwx | WB) >>> 0, 0);
      f.shadow.trackedWrite(at, 8);
      return;
    }
    case "eptp": {
      const eptp = w.eptps[o.tree]!;
      w.next = eptp;
      // VMFUNC EPTP switching while L2 runs (kvm: nested_vmx_eptp_switching → nested_ept_new_eptp).
      if (vcpu.guestMode && vcpu.eptp12 !== eptp) {
        vcpu.nestedEptNewEptp(eptp);
        vcpu.reload();
      }
      return;
    }
    case "cr0":
      exitToL1(w);
      w.l1.cr0 = (w.l1.cr0 ^ o.bit) >>> 0;
      vcpu.setCr0(w.l1.cr0);
      vcpu.reload();
      return;
    case "cr4":
      exitToL1(w);
      w.l1.cr4 = (w.l1.cr4 ^ o.bit) >>> 0;
      vcpu.setCr4(w.l1.cr4);
      vcpu.reload();
      return;
    case "invept":
      exitToL1(w);
      vcpu.handleInvept(o.global ? INVEPT_TYPE.GLOBAL : INVEPT_TYPE.SINGLE_CONTEXT, w.eptps[o.tree]!);
      vcpu.reload();
      return;
    case "l2Access": {
      enterL2(w);
      const gpa = o.large ? L2_LARGE + o.offset : L2_PAGES[o.page]! + (o.offset & 0xfff);
      const outcome = f.l2Access(gpa, o.access);
      expect([
        SHADOW_FAULT.FIXED,
        SHADOW_FAULT.INJECT_EPT_VIOLATION,
        SHADOW_FAULT.INJECT_EPT_MISCONFIG,
        SHADOW_FAULT.EMULATE_MMIO,
        SHADOW_FAULT.EMULATE_READ_ONLY,
        SHADOW_FAULT.EMULATE_WRITE_PROTECTED,
      ]).toContain(outcome);
      return;
    }
    case "l1Access": {
      exitToL1(w);
      const gpa = w.l1Targets[o.target % w.l1Targets.length]!;
      const r = f.l1Fault(gpa, o.write);
      expect(r).not.toBe(TDP_MAP_RESULT.RETRY);
      if (f.store.isGfnTracked(Math.floor(gpa / PAGE_SIZE))) {
        // A write to a shadowed EPT12 page: mapped read-only, then emulated (kvm: page_fault_handle_page_track).
        if (o.write && r !== TDP_MAP_RESULT.FIXED) expect(r).toBe(TDP_MAP_RESULT.EMULATE_WRITE_PROTECTED);
        if (o.write) expect(f.l1Fault(gpa, true)).toBe(TDP_MAP_RESULT.EMULATE_WRITE_PROTECTED);
      }
      if (r === TDP_MAP_RESULT.FIXED || r === TDP_MAP_RESULT.SPURIOUS) {
        expect(f.ept01Allows(gpa, EPT_ACCESS.READ)).toBe(true);
      }
      return;
    }
  }
}

/** Every combination of the six flags, on top of today's values for the others. */
function combinations(): MmuFlags[] {
  const out: MmuFlags[] = [];
  for (let mask = 0; mask < 1 << SIX_FLAGS.length; mask++) {
    const o: Record<string, boolean> = {};
    for (const [i, name] of SIX_FLAGS.entries()) o[name] = (mask & (1 << i)) !== 0;
    o.keepRootsOnWpOnlyChange = o.keepRootsOnRoleChange!;
    o.unloadOnExit = false;
    out.push(mmuFlags(o, MMU_FLAG_PRESETS.today));
  }
  return out;
}

const label = (flags: MmuFlags) => SIX_FLAGS.map((n) => (flags[n] ? 1 : 0)).join("");

describe("VcpuMmu on the real backends (integration): the audit stays clean after every step", () => {
  const counts: {
    flags: string;
    runs: number;
    steps: number;
    roots: number;
    leaves: number;
    tracked: number;
  }[] = [];
  for (const [mask, flags] of combinations().entries()) {
    it(`flags ${label(flags)} (${SIX_FLAGS.join("/")})`, () => {
      let runs = 0;
      let steps = 0;
      let roots = 0;
      let leaves = 0;
      let tracked = 0;
      fc.assert(
        fc.property(
          fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }),
          fc.boolean(),
          fc.array(op, { minLength: 20, maxLength: 40 }),
          (ad, unloadOnExit, ops) => {
            const w = world(flags.splitGuestMmu ? flags : mmuFlags({ unloadOnExit }, flags), ad);
            runs++;
            w.f.auditAll();
            for (const o of ops) {
              step(w, o);
              w.f.auditAll();
              if (!w.f.vcpu.guestMode || w.f.vcpu.guestMmu !== w.f.vcpu.rootMmu) {
                tracked += checkEpt12WriteProtected(w);
              }
              steps++;
            }
            roots += w.f.totals.roots;
            leaves += w.f.totals.leaves;
          },
        ),
        { numRuns: 8, seed: 0x7c90 + mask },
      );
      counts.push({ flags: label(flags), runs, steps, roots, leaves, tracked });
      if (process.env.NESTVISOR_PRINT_TABLES) console.log(JSON.stringify(counts[counts.length - 1]));
      expect(runs).toBeGreaterThan(0);
      expect(roots).toBeGreaterThan(steps);
      expect(leaves).toBeGreaterThan(0);
    });
  }
});
