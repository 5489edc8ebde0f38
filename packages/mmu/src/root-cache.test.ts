import { CountingMeter } from "@nestvisor/vmx";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { INVALID_PGD, KVM_MMU_ROOT, kvmMmuRootPrevious, MMU_CONTEXT_KIND, MmuContext } from "./mmu-context";
import { MMU_EVENTS } from "./mmu-events";
import { type MmuFlags, mmuFlags } from "./mmu-flags";
import { PAGE_ROLE } from "./page-role";
import { INVALID_ROOT } from "./root-backend";
import {
  isRootUsable,
  kvmMmuFreeGuestModeRoots,
  kvmMmuFreeObsoleteRoots,
  kvmMmuFreeRoots,
  kvmMmuLoad,
  kvmMmuNewPgd,
  kvmMmuReload,
  PGD_LOOKUP,
  type RootCacheEnv,
  rootsMatchingEptp,
} from "./root-cache";
import { FakeRootBackend } from "./testing/fake-root-backend";

/** An indirect 64-bit shadow role (kvm-mmu.md §2.9: L1 shadow root) and the TDP root role. */
const SHADOW = 0x00003704;
const TDP = 0x00003784;
const TDP_L2 = 0x00023784;

function setup(overrides: Partial<MmuFlags> = {}, role = SHADOW) {
  const backend = new FakeRootBackend();
  const meter = new CountingMeter([MMU_EVENTS]);
  const env: RootCacheEnv = { backend, meter, flags: mmuFlags(overrides) };
  const ctx = new MmuContext(MMU_CONTEXT_KIND.ROOT_MMU);
  ctx.cpuRoleBase = (role & ~PAGE_ROLE.DIRECT & ~PAGE_ROLE.LEVEL_MASK) | 4;
  ctx.rootRole = role;
  return { backend, meter, env, ctx };
}

/** Switches to `pgd` and loads a root on a miss, as kvm_mmu_new_pgd + kvm_mmu_reload do. */
function switchTo(ctx: MmuContext, pgd: number, env: RootCacheEnv): boolean {
  const hit = kvmMmuNewPgd(ctx, pgd, ctx.rootRole, env);
  kvmMmuReload(ctx, pgd, env);
  return hit;
}

/** The pgds of the valid slots, current first (null for an invalid slot). */
function keys(ctx: MmuContext): (number | null)[] {
  const out: (number | null)[] = [ctx.rootHpa === INVALID_ROOT ? null : ctx.rootPgd];
  for (let i = 0; i < 3; i++) out.push(ctx.prevHpa[i] === INVALID_ROOT ? null : ctx.prevPgd[i]!);
  return out;
}

/** Fills the cache as `C | A B D` (C current, then A, B, D most recent first). */
function fill(ctx: MmuContext, env: RootCacheEnv, order: number[]): void {
  for (const pgd of [...order].reverse()) switchTo(ctx, pgd, env);
}

const A = 0xa000;
const B = 0xb000;
const C = 0xc000;
const D = 0xd000;
const E = 0xe000;

describe("cached_root_find_and_keep_current (kvm-mmu.md §3.3)", () => {
  it("a hit at prev[1] rotates C | A B D into B | C A D", () => {
    const { ctx, env, meter } = setup();
    fill(ctx, env, [C, A, B, D]);
    expect(keys(ctx)).toEqual([C, A, B, D]);
    const before = meter.snapshot();
    expect(kvmMmuNewPgd(ctx, B, SHADOW, env)).toBe(true);
    expect(keys(ctx)).toEqual([B, C, A, D]);
    expect(ctx.stats.hitPrev[1]).toBe(1);
    expect(meter.diff(before)).toEqual({ PGD_HIT_PREV: 1 });
  });

  it("a usable current root is a hit and nothing moves", () => {
    const { ctx, env, meter } = setup();
    fill(ctx, env, [C, A, B, D]);
    const before = meter.snapshot();
    expect(kvmMmuNewPgd(ctx, C, SHADOW, env)).toBe(true);
    expect(keys(ctx)).toEqual([C, A, B, D]);
    expect(meter.diff(before)).toEqual({ PGD_HIT_CURRENT: 1 });
  });

  it("a miss leaves invalid | C A B and drops D's reference", () => {
    const { ctx, env, meter, backend } = setup();
    fill(ctx, env, [C, A, B, D]);
    const dHpa = ctx.prevHpa[2]!;
    const before = meter.snapshot();
    expect(kvmMmuNewPgd(ctx, E, SHADOW, env)).toBe(false);
    expect(keys(ctx)).toEqual([null, C, A, B]);
    expect(ctx.rootPgd).toBe(0);
    expect(backend.refCount(dHpa)).toBe(0);
    expect(meter.diff(before)).toEqual({ PGD_MISS: 1, ROOT_DROP: 1 });
  });
});

describe("cached_root_find_without_current (kvm-mmu.md §3.4, v5.18)", () => {
  it("with an invalid current root, a hit at prev[1] gives B | A D invalid", () => {
    const { ctx, env } = setup();
    fill(ctx, env, [C, A, B, D]);
    kvmMmuFreeRoots(ctx, KVM_MMU_ROOT.CURRENT, env);
    expect(keys(ctx)).toEqual([null, A, B, D]);
    expect(kvmMmuNewPgd(ctx, B, SHADOW, env)).toBe(true);
    expect(keys(ctx)).toEqual([B, A, D, null]);
    expect(ctx.stats.hitPrev[1]).toBe(1);
  });

  it("a miss changes nothing", () => {
    const { ctx, env, meter } = setup();
    fill(ctx, env, [C, A, B, D]);
    kvmMmuFreeRoots(ctx, KVM_MMU_ROOT.CURRENT, env);
    const before = meter.snapshot();
    expect(kvmMmuNewPgd(ctx, E, SHADOW, env)).toBe(false);
    expect(keys(ctx)).toEqual([null, A, B, D]);
    expect(meter.diff(before)).toEqual({ PGD_MISS: 1 });
  });

  it("before v5.18 the invalid current root is rotated into prev[0] and takes a slot", () => {
    const { ctx, env, meter } = setup({ keepRootsOnRoleChange: false });
    fill(ctx, env, [C, A, B, D]);
    kvmMmuFreeRoots(ctx, KVM_MMU_ROOT.CURRENT, env);
    expect(kvmMmuNewPgd(ctx, B, SHADOW, env)).toBe(true);
    expect(keys(ctx)).toEqual([B, null, A, D]);
    const before = meter.snapshot();
    expect(kvmMmuNewPgd(ctx, E, SHADOW, env)).toBe(false); // D is the LRU entry and goes
    expect(keys(ctx)).toEqual([null, B, null, A]);
    expect(meter.diff(before)).toEqual({ PGD_MISS: 1, ROOT_DROP: 1 });
  });
});

describe("victim cache without reuseCurrentRoot (c2 off, kvm-mmu.md §3.11, seed 004)", () => {
  it("the current root is never compared: the first same-key switch misses and takes a duplicate reference", () => {
    const { ctx, env, backend } = setup({ reuseCurrentRoot: false });
    switchTo(ctx, C, env);
    const cHpa = ctx.rootHpa;
    expect(switchTo(ctx, C, env)).toBe(false);
    // The reload found the same page: prev[0] and current now hold two references to it.
    expect(ctx.rootHpa).toBe(cHpa);
    expect(ctx.prevHpa[0]).toBe(cHpa);
    expect(backend.refCount(cHpa)).toBe(2);
    expect(backend.created).toBe(1);
    // From now on the duplicate in prev[0] serves every same-key switch.
    expect(switchTo(ctx, C, env)).toBe(true);
    expect(ctx.stats.hitPrev[0]).toBe(1);
    expect(ctx.stats.hitCurrent).toBe(0);
  });
});

describe("is_root_usable", () => {
  it("compares the whole pgd for indirect roots, PCID bits included", () => {
    const { ctx, env, backend } = setup();
    switchTo(ctx, 0x5000 | 0x3, env); // CR3 with PCID 3
    expect(isRootUsable(backend, ctx.rootHpa, ctx.rootPgd, 0x5003, SHADOW, true)).toBe(true);
    expect(isRootUsable(backend, ctx.rootHpa, ctx.rootPgd, 0x5000, SHADOW, true)).toBe(false);
  });

  it("ignores the pgd of direct roots only with c1", () => {
    const { ctx, env, backend } = setup({}, TDP);
    switchTo(ctx, 0x5000, env);
    expect(ctx.rootPgd).toBe(0); // kvm: "root.pgd is ignored for direct MMUs"
    expect(isRootUsable(backend, ctx.rootHpa, ctx.rootPgd, 0x7000, TDP, true)).toBe(true);
    expect(isRootUsable(backend, ctx.rootHpa, ctx.rootPgd, 0x7000, TDP, false)).toBe(false);
  });

  it("without c1, a direct root records and compares the CR3 it was loaded with", () => {
    const { ctx, env } = setup({ fastSwitchIgnoresCr3ForDirect: false }, TDP);
    switchTo(ctx, 0x5000, env);
    expect(ctx.rootPgd).toBe(0x5000);
    expect(kvmMmuNewPgd(ctx, 0x7000, TDP, env)).toBe(false);
  });

  it("rejects a different role word, a zapped (invalid) root and a special root", () => {
    const { ctx, env, backend } = setup();
    switchTo(ctx, A, env);
    expect(isRootUsable(backend, ctx.rootHpa, A, A, SHADOW | PAGE_ROLE.GUEST_MODE, true)).toBe(false);
    backend.zap(ctx.rootHpa);
    expect(isRootUsable(backend, ctx.rootHpa, A, A, SHADOW, true)).toBe(false);
    expect(isRootUsable(backend, INVALID_ROOT, A, A, SHADOW, true)).toBe(false);
    const pae = backend.allocShadowRoot(0x00003703, A);
    expect(isRootUsable(backend, pae, A, A, 0x00003703, true)).toBe(false);
  });
});

describe("fast_pgd_switch special cases", () => {
  it("frees a special (PAE) current root before looking (v5.18: 5499ea73e7db)", () => {
    const { ctx, env, meter } = setup();
    fill(ctx, env, [C, A]);
    kvmMmuFreeRoots(ctx, KVM_MMU_ROOT.CURRENT, env);
    // A 32-bit guest's PAE root becomes current (kvm: pae_root, no shadow page behind it).
    ctx.rootRole = 0x00003703;
    kvmMmuLoad(ctx, B, env);
    ctx.rootRole = SHADOW;
    expect(keys(ctx)).toEqual([B, A, null, null]);
    const before = meter.snapshot();
    expect(kvmMmuNewPgd(ctx, A, SHADOW, env)).toBe(true);
    expect(keys(ctx)).toEqual([A, null, null, null]);
    expect(meter.diff(before)).toEqual({ ROOT_DROP: 1, PGD_HIT_PREV: 1 });
  });

  it("before v5.18 there is no lookup unless the old guest and shadow levels are both ≥ 4", () => {
    const { ctx, env, meter } = setup({ keepRootsOnRoleChange: false });
    fill(ctx, env, [C, A]);
    ctx.cpuRoleBase = 0x00003703; // the context was last set up for a PAE guest
    const before = meter.snapshot();
    expect(kvmMmuNewPgd(ctx, A, SHADOW, env)).toBe(false);
    expect(keys(ctx)).toEqual([null, A, null, null]);
    expect(meter.diff(before)).toEqual({ PGD_MISS: 1, ROOT_DROP: 1 });
  });
});

describe("kvm_mmu_free_roots", () => {
  it("frees exactly the selected slots; a freed prev slot keeps its pgd", () => {
    const { ctx, env, meter, backend } = setup();
    fill(ctx, env, [C, A, B, D]);
    const before = meter.snapshot();
    kvmMmuFreeRoots(ctx, kvmMmuRootPrevious(0) | kvmMmuRootPrevious(2), env);
    expect(keys(ctx)).toEqual([C, null, B, null]);
    expect(ctx.prevPgd[0]).toBe(A);
    expect(meter.diff(before)).toEqual({ ROOT_DROP: 2 });
    kvmMmuFreeRoots(ctx, KVM_MMU_ROOT.ALL, env);
    expect(keys(ctx)).toEqual([null, null, null, null]);
    expect(ctx.rootPgd).toBe(0);
    expect(ctx.stats.drops).toBe(4);
    expect(backend.puts).toBe(4);
    // Nothing valid left: no drop, no put.
    kvmMmuFreeRoots(ctx, KVM_MMU_ROOT.ALL, env);
    expect(backend.puts).toBe(4);
  });

  it("rejects bits outside KVM_MMU_ROOTS_ALL", () => {
    const { ctx, env } = setup();
    expect(() => kvmMmuFreeRoots(ctx, 0x10, env)).toThrow(/0x10/);
  });

  it("frees obsolete roots and guest-mode prev roots", () => {
    const { ctx, env, backend } = setup();
    fill(ctx, env, [C, A]);
    backend.obsoleteAll();
    kvmMmuFreeObsoleteRoots(ctx, env);
    expect(keys(ctx)).toEqual([null, null, null, null]);

    const s = setup({}, SHADOW);
    fill(s.ctx, s.env, [C, A]);
    // Put an L2 (guest_mode) root in prev[1].
    s.ctx.prevHpa[1] = s.backend.allocShadowRoot(SHADOW | PAGE_ROLE.GUEST_MODE, B);
    s.ctx.prevPgd[1] = B;
    kvmMmuFreeGuestModeRoots(s.ctx, s.env);
    expect(keys(s.ctx)).toEqual([C, A, null, null]);
    s.ctx.rootRole = SHADOW | PAGE_ROLE.GUEST_MODE;
    expect(() => kvmMmuFreeGuestModeRoots(s.ctx, s.env)).toThrow(/guest-mode/);
  });

  it("INVEPT single-context matches EPTP bits 51:12 only", () => {
    const { ctx, env } = setup({}, 0x00020704);
    const eptp = (root: number, flags: number) => root + flags;
    fill(ctx, env, [eptp(0x5000, 0x5e), eptp(0x6000, 0x5e), eptp(0x5000, 0x1e)]);
    expect(rootsMatchingEptp(ctx, eptp(0x5000, 0x06))).toBe(KVM_MMU_ROOT.CURRENT | kvmMmuRootPrevious(1));
    expect(rootsMatchingEptp(ctx, eptp(0x2_0000_5000, 0x5e))).toBe(0);
  });
});

describe("kvm_mmu_load", () => {
  it("allocates direct roots by role and shadow roots by role and guest table", () => {
    const { ctx, env, backend } = setup({}, TDP);
    kvmMmuLoad(ctx, 0x5000, env);
    const first = ctx.rootHpa;
    kvmMmuFreeRoots(ctx, KVM_MMU_ROOT.CURRENT, env);
    kvmMmuLoad(ctx, 0x9000, env);
    expect(ctx.rootHpa).toBe(first); // same role: the same page (an SP-hash or TDP-root-list hit)
    expect(backend.created).toBe(1);
    ctx.rootRole = TDP_L2;
    kvmMmuFreeRoots(ctx, KVM_MMU_ROOT.CURRENT, env);
    kvmMmuLoad(ctx, 0x9000, env);
    expect(ctx.rootHpa).not.toBe(first);
    expect(ctx.stats.loads).toBe(3);
  });

  it("refuses to load over a valid root or into nested_mmu", () => {
    const { ctx, env } = setup();
    kvmMmuLoad(ctx, A, env);
    expect(() => kvmMmuLoad(ctx, A, env)).toThrow(/valid current root/);
    expect(kvmMmuReload(ctx, A, env)).toBe(false);
    expect(() => kvmMmuLoad(new MmuContext(MMU_CONTEXT_KIND.NESTED_MMU), A, env)).toThrow(/nested_mmu/);
  });
});

/**
 * A list model of the cache: [current, prev0, prev1, prev2] of keys (null = invalid). Hits move
 * the key to the front keeping the others' order; a miss with a valid current pushes it to prev[0]
 * and drops the last entry; with `withoutCurrent` an invalid current is searched around.
 */
function modelSwitch(
  list: (number | null)[],
  key: number,
  checkCurrent: boolean,
  withoutCurrent: boolean,
): { list: (number | null)[]; hit: number; dropped: boolean } {
  if (list[0] === null && withoutCurrent) {
    const j = list.slice(1).indexOf(key);
    if (j < 0) return { list: [...list], hit: PGD_LOOKUP.MISS, dropped: false };
    const rest = list.slice(1).filter((_, i) => i !== j);
    return { list: [key, ...rest, null], hit: 1 + j, dropped: false };
  }
  if (checkCurrent && list[0] === key) return { list: [...list], hit: PGD_LOOKUP.CURRENT, dropped: false };
  const j = list.slice(1).indexOf(key);
  if (j >= 0) {
    const rest = list.slice(1).filter((_, i) => i !== j);
    return { list: [key, list[0]!, ...rest], hit: 1 + j, dropped: false };
  }
  return { list: [null, list[0]!, list[1]!, list[2]!], hit: PGD_LOOKUP.MISS, dropped: list[3] !== null };
}

describe("root cache vs a list model (property)", () => {
  const flagCombos: Partial<MmuFlags>[] = [
    {},
    { reuseCurrentRoot: false },
    { keepRootsOnRoleChange: false },
    { keepRootsOnRoleChange: false, reuseCurrentRoot: false },
  ];
  for (const combo of flagCombos) {
    it(`matches for ${JSON.stringify(combo)}`, () => {
      const op = fc.oneof(
        fc.record({ kind: fc.constant("switch" as const), key: fc.integer({ min: 1, max: 6 }) }),
        fc.record({ kind: fc.constant("free" as const), mask: fc.integer({ min: 0, max: 15 }) }),
      );
      fc.assert(
        fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
          const { ctx, env, backend } = setup(combo);
          const checkCurrent = env.flags.reuseCurrentRoot;
          const withoutCurrent = env.flags.keepRootsOnRoleChange;
          let list: (number | null)[] = [null, null, null, null];
          let drops = 0;
          for (const o of ops) {
            if (o.kind === "free") {
              list = list.map((k, i) => {
                if (((o.mask >> i) & 1) === 0 || k === null) return k;
                drops++;
                return null;
              });
              kvmMmuFreeRoots(ctx, o.mask, env);
            } else {
              const pgd = o.key * 0x1000;
              const m = modelSwitch(list, pgd, checkCurrent, withoutCurrent);
              if (m.dropped) drops++;
              const hit = kvmMmuNewPgd(ctx, pgd, SHADOW, env);
              expect(hit).toBe(m.hit !== PGD_LOOKUP.MISS);
              list = m.list;
              if (!hit) {
                kvmMmuReload(ctx, pgd, env);
                list[0] = pgd;
              }
            }
            expect(keys(ctx)).toEqual(list);
            expect(ctx.stats.drops).toBe(drops);
            // Every valid slot holds one reference; nothing else does.
            const slots = [ctx.rootHpa, ...ctx.prevHpa].filter((h) => h !== INVALID_ROOT);
            for (const h of new Set(slots))
              expect(backend.refCount(h)).toBe(slots.filter((x) => x === h).length);
          }
          expect(ctx.prevPgd.every((p) => p === INVALID_PGD || p % 0x1000 === 0)).toBe(true);
        }),
      );
    });
  }
});
