import { CR0, CR4, EFER } from "@nestvisor/x86-arch";
import { describe, expect, it } from "vitest";
import { type MmuFlags, mmuFlagPreset, mmuFlags } from "./mmu-flags";
import { EPTP12, eptp, L1_REGS, l2State, nestedScenario, roundTrip } from "./testing/nested-scenario";

/**
 * The nested-switch case tables of kvm-mmu.md §6.3 and the per-flag counter tables of §7, run on
 * VcpuMmu with the fake root backend. Counts are Meter diffs (all contexts) and per-context stats.
 */

describe("§6.3 case A: L1 uses EPT for L2 (EPT-on-EPT), today", () => {
  it("cold first entry: guest_mmu and nested_mmu reconfigured, one miss, one shadow-EPT root loaded", () => {
    const { vcpu, meter, backend } = nestedScenario();
    const created = backend.created;
    vcpu.nestedVmEntry(l2State());
    vcpu.reload();
    expect(meter.diff({})).toEqual({
      CONTEXT_INIT: 2,
      // guest_mmu: the EPT flavour (no PKRU loop); nested_mmu: L2's long-mode PKE table.
      PERMISSION_BITMASK_UPDATE: 2,
      PKRU_BITMASK_UPDATE: 1,
      GUEST_RSVD_MASK_RESET: 2,
      SHADOW_ZERO_MASK_RESET: 1,
      PGD_MISS: 1,
      ROOT_LOAD: 1,
    });
    expect(vcpu.guestMmu.stats.snapshot()).toMatchObject({ inits: 1, permissionUpdates: 1, pkruUpdates: 0 });
    expect(vcpu.nestedMmu.stats.snapshot()).toMatchObject({ inits: 1, permissionUpdates: 1, pkruUpdates: 1 });
    expect(backend.created).toBe(created + 1);
    expect(vcpu.mmu).toBe(vcpu.guestMmu);
    expect(vcpu.walkMmu).toBe(vcpu.nestedMmu);
  });

  it("the first exit skips root_mmu's gate and hits its current (direct) root", () => {
    const { vcpu, meter } = nestedScenario();
    vcpu.nestedVmEntry(l2State());
    vcpu.reload();
    const before = meter.snapshot();
    vcpu.nestedVmExit(L1_REGS);
    vcpu.reload();
    expect(meter.diff(before)).toEqual({ PGD_HIT_CURRENT: 1 });
    expect(vcpu.mmu).toBe(vcpu.rootMmu);
    expect(vcpu.walkMmu).toBe(vcpu.rootMmu);
  });

  it("steady state: 0 reconfigurations, 0 drops, 0 loads and 2 current-root hits per round trip", () => {
    const { vcpu, meter } = nestedScenario();
    roundTrip(vcpu, l2State());
    const before = meter.snapshot();
    for (let i = 0; i < 5; i++) roundTrip(vcpu, l2State());
    expect(meter.diff(before)).toEqual({ PGD_HIT_CURRENT: 10 });
  });

  it("several L1 EPTPs share guest_mmu's current root and 3 prev slots", () => {
    const { vcpu, meter } = nestedScenario();
    const eptps = [eptp(0x30_0000), eptp(0x31_0000), eptp(0x32_0000), eptp(0x33_0000)];
    for (const e of eptps) roundTrip(vcpu, { ...l2State(), eptp: e });
    const before = meter.snapshot();
    for (let i = 0; i < 2; i++) for (const e of eptps) roundTrip(vcpu, { ...l2State(), eptp: e });
    // Four keys fit: every entry hits a prev slot, every exit hits root_mmu's current root.
    expect(meter.diff(before)).toEqual({ PGD_HIT_PREV: 8, PGD_HIT_CURRENT: 8 });
    const fifth = eptp(0x34_0000);
    roundTrip(vcpu, { ...l2State(), eptp: fifth });
    expect(meter.diff(before)).toMatchObject({ PGD_MISS: 1, ROOT_DROP: 1, ROOT_LOAD: 1 });
  });
});

describe("§6.3 case B: L1 does not use EPT for L2; L0 uses TDP", () => {
  it("first entry misses (L1's root rotates into prev[0]); the exit hits it there", () => {
    const { vcpu, meter } = nestedScenario();
    vcpu.nestedVmEntry(l2State(undefined, false));
    vcpu.reload();
    expect(meter.diff({})).toMatchObject({ CONTEXT_INIT: 1, PGD_MISS: 1, ROOT_LOAD: 1 });
    expect(meter.diff({}).ROOT_DROP).toBeUndefined();
    const before = meter.snapshot();
    vcpu.nestedVmExit(L1_REGS);
    vcpu.reload();
    expect(meter.diff(before)).toMatchObject({ CONTEXT_INIT: 1, PGD_HIT_PREV: 1 });
  });

  it("steady state: 2 reconfigurations (+PKRU), 0 drops, 0 loads, 2 prev[0] hits per round trip, L2 CR3 ignored", () => {
    const { vcpu, meter } = nestedScenario();
    roundTrip(vcpu, l2State(undefined, false));
    const before = meter.snapshot();
    const hitPrev0 = vcpu.rootMmu.stats.hitPrev[0]!;
    for (let i = 0; i < 4; i++) roundTrip(vcpu, l2State(0x40_0000 + i * 0x1000, false));
    expect(meter.diff(before)).toEqual({
      CONTEXT_INIT: 8,
      PERMISSION_BITMASK_UPDATE: 8,
      PKRU_BITMASK_UPDATE: 8,
      GUEST_RSVD_MASK_RESET: 8,
      SHADOW_ZERO_MASK_RESET: 8,
      PGD_HIT_PREV: 8,
    });
    expect(vcpu.rootMmu.stats.hitPrev[0]! - hitPrev0).toBe(8);
  });
});

describe("§6.3 case C: shadow paging (enable_ept=0)", () => {
  const shadow = { tdpEnabled: false } as const;

  it("every switch reconfigures root_mmu; the CR3s are compared and hit prev[0] once warm", () => {
    const { vcpu, meter } = nestedScenario(undefined, shadow);
    roundTrip(vcpu, l2State(undefined, false));
    const before = meter.snapshot();
    for (let i = 0; i < 3; i++) roundTrip(vcpu, l2State(undefined, false));
    expect(meter.diff(before)).toEqual({
      CONTEXT_INIT: 6,
      PERMISSION_BITMASK_UPDATE: 6,
      PKRU_BITMASK_UPDATE: 6,
      GUEST_RSVD_MASK_RESET: 6,
      SHADOW_ZERO_MASK_RESET: 6,
      PGD_HIT_PREV: 6,
    });
  });

  it("L1's and L2's shadow roots share the 3 prev slots: 3 L2 CR3s fit, 4 thrash", () => {
    const fits = nestedScenario(undefined, shadow);
    const three = [0x40_0000, 0x41_0000, 0x42_0000];
    for (const cr3 of three) roundTrip(fits.vcpu, l2State(cr3, false));
    const before = fits.meter.snapshot();
    for (const cr3 of three) roundTrip(fits.vcpu, l2State(cr3, false));
    expect(fits.meter.diff(before)).toMatchObject({ PGD_HIT_PREV: 6 });
    expect(fits.meter.diff(before).PGD_MISS).toBeUndefined();

    const thrash = nestedScenario(undefined, shadow);
    const four = [...three, 0x43_0000];
    for (const cr3 of four) roundTrip(thrash.vcpu, l2State(cr3, false));
    const b2 = thrash.meter.snapshot();
    for (const cr3 of four) roundTrip(thrash.vcpu, l2State(cr3, false));
    expect(thrash.meter.diff(b2)).toMatchObject({ PGD_MISS: 4, ROOT_DROP: 4, ROOT_LOAD: 4, PGD_HIT_PREV: 4 });
  });

  it("INVVPID in L1 frees L2's cached shadow roots (guest_mode) and keeps L1's current root", () => {
    const { vcpu, meter } = nestedScenario(undefined, shadow);
    roundTrip(vcpu, l2State(0x40_0000, false));
    roundTrip(vcpu, l2State(0x41_0000, false));
    const l1Root = vcpu.rootMmu.rootHpa;
    const before = meter.snapshot();
    vcpu.handleInvvpidShadowPaging();
    expect(meter.diff(before)).toEqual({ ROOT_DROP: 2 });
    expect(vcpu.rootMmu.rootHpa).toBe(l1Root);
  });

  it("a 32-bit L2 under a 64-bit L1: the exit finds L1's root only with flag b (v5.18, 5499ea73e7db)", () => {
    const l2Pae32 = { cr0: L1_REGS.cr0, cr3: 0x50_0000, cr4: 0, efer: 0 };
    const perRoundTrip = (flags: MmuFlags) => {
      const { vcpu, meter } = nestedScenario(flags, shadow);
      roundTrip(vcpu, l2Pae32);
      roundTrip(vcpu, l2Pae32);
      const before = meter.snapshot();
      for (let i = 0; i < 4; i++) roundTrip(vcpu, l2Pae32);
      return meter.diff(before);
    };
    // Today: the PAE root is special (never cached) and reloaded on each entry; the exit frees it
    // and hits L1's root via cached_root_find_without_current.
    expect(perRoundTrip(mmuFlagPreset("today"))).toMatchObject({
      PGD_MISS: 4,
      PGD_HIT_PREV: 4,
      ROOT_LOAD: 4,
      ROOT_DROP: 4,
    });
    // v5.7: no lookup from a PAE context, so every exit misses and reloads L1's root too.
    const old = perRoundTrip(mmuFlagPreset("v5.7"));
    expect(old).toMatchObject({ PGD_MISS: 8, ROOT_LOAD: 8 });
    expect(old.PGD_HIT_PREV).toBeUndefined();
  });
});

describe("§7.1 flag (a): one context re-targeted each way vs root_mmu/guest_mmu", () => {
  const steady = (flags: MmuFlags) => {
    const { vcpu, meter } = nestedScenario(flags);
    roundTrip(vcpu, l2State());
    roundTrip(vcpu, l2State());
    const before = meter.snapshot();
    roundTrip(vcpu, l2State());
    return meter.diff(before);
  };

  it("a off (preset none): 3 reconfigurations, 3 permission tables, 2 PKRU loops, 2 lookups in one shared cache", () => {
    expect(steady(mmuFlagPreset("none"))).toEqual({
      CONTEXT_INIT: 3,
      PERMISSION_BITMASK_UPDATE: 3,
      PKRU_BITMASK_UPDATE: 2,
      GUEST_RSVD_MASK_RESET: 3,
      SHADOW_ZERO_MASK_RESET: 2,
      PGD_HIT_PREV: 2,
    });
  });

  it("a off with unloadOnExit: the exit drops the single context's roots and both directions reload", () => {
    const d = steady(mmuFlags({ unloadOnExit: true }, mmuFlagPreset("none")));
    expect(d).toMatchObject({
      MMU_RESET_CONTEXT: 1,
      MMU_UNLOAD: 1,
      ROOT_DROP: 2,
      ROOT_LOAD: 2,
      PGD_MISS: 1,
      CONTEXT_INIT: 3,
    });
  });

  it("a on (today): 0 / 0 / 0, 0 dropped, 0 loads, 2 hits", () => {
    expect(steady(mmuFlagPreset("today"))).toEqual({ PGD_HIT_CURRENT: 2 });
  });

  it("the split alone, without the gates, still reconfigures all three contexts", () => {
    const d = steady(mmuFlags({ skipUnchangedMmuInit: false }));
    expect(d).toMatchObject({ CONTEXT_INIT: 3, PERMISSION_BITMASK_UPDATE: 3, PKRU_BITMASK_UPDATE: 2 });
  });

  it("with splitGuestMmu off there is one context for L1 and L2", () => {
    const { vcpu } = nestedScenario(mmuFlagPreset("none"));
    expect(vcpu.guestMmu).toBe(vcpu.rootMmu);
    vcpu.nestedVmEntry(l2State());
    expect(vcpu.mmu).toBe(vcpu.rootMmu);
    expect(vcpu.walkMmu).toBe(vcpu.nestedMmu);
  });
});

describe("§7.2 flag (b): a CR0.WP toggle in L1 under TDP", () => {
  const toggles = (flags: MmuFlags, pg = true, n = 10) => {
    const { vcpu, meter, backend } = nestedScenario(flags);
    roundTrip(vcpu, l2State()); // guest_mmu holds a shadow-EPT root, as after real nesting
    const before = meter.snapshot();
    const base = pg ? L1_REGS.cr0 : L1_REGS.cr0 & ~CR0.PG;
    if (!pg) {
      vcpu.setCr0(base);
      vcpu.reload();
    }
    const afterPg = meter.snapshot();
    for (let i = 0; i < n; i++) {
      vcpu.setCr0(i % 2 === 0 ? base & ~CR0.WP : base);
      vcpu.reload();
    }
    return { d: meter.diff(pg ? before : afterPg), backend };
  };

  it("b on (v6.4+): kvm_init_mmu only — 1 reconfiguration, 1 permission table (+PKRU), 0 dropped, 0 loads", () => {
    expect(toggles(mmuFlagPreset("today")).d).toEqual({
      CONTEXT_INIT: 10,
      PERMISSION_BITMASK_UPDATE: 10,
      PKRU_BITMASK_UPDATE: 10,
      GUEST_RSVD_MASK_RESET: 10,
      SHADOW_ZERO_MASK_RESET: 10,
    });
  });

  it("b on with CR0.PG=0: nothing at all (e40bcf9f3a18)", () => {
    expect(toggles(mmuFlagPreset("today"), false).d).toEqual({});
  });

  it("b off (v5.7): every toggle resets — roots of root_mmu and guest_mmu dropped, 1 load", () => {
    const { d } = toggles(mmuFlagPreset("v5.7"));
    // First toggle: root_mmu's and guest_mmu's current roots; then root_mmu's reloaded root each time.
    expect(d).toEqual({
      MMU_RESET_CONTEXT: 10,
      MMU_UNLOAD: 10,
      ROOT_DROP: 11,
      ROOT_LOAD: 10,
      CONTEXT_INIT: 10,
      PERMISSION_BITMASK_UPDATE: 10,
      PKRU_BITMASK_UPDATE: 10,
      GUEST_RSVD_MASK_RESET: 10,
      SHADOW_ZERO_MASK_RESET: 10,
    });
  });

  it("v5.18–v6.3 (b without the WP exemption) still unloads on WP toggles", () => {
    expect(toggles(mmuFlagPreset("v5.18")).d).toMatchObject({
      MMU_RESET_CONTEXT: 10,
      ROOT_DROP: 11,
      ROOT_LOAD: 10,
    });
  });

  it("with a pre-v6.4 TDP MMU backend each b-off toggle also rebuilds the TDP root; a legacy-like one finds it again", () => {
    const rebuilt = nestedScenario(mmuFlagPreset("v5.7"), { backendOptions: { destroyOnLastPut: true } });
    const kept = nestedScenario(mmuFlagPreset("v5.7"));
    for (const s of [rebuilt, kept]) {
      for (let i = 0; i < 10; i++) {
        s.vcpu.setCr0(i % 2 === 0 ? L1_REGS.cr0 & ~CR0.WP : L1_REGS.cr0);
        s.vcpu.reload();
      }
    }
    expect(rebuilt.backend.destroyed).toBe(10);
    expect(kept.backend.destroyed).toBe(0);
    expect(kept.backend.created).toBe(1);
  });

  it("under shadow paging a WP toggle resets even with b (the roles differ); the roots are found again", () => {
    const { vcpu, meter, backend } = nestedScenario(mmuFlagPreset("today"), { tdpEnabled: false });
    for (let i = 0; i < 4; i++) {
      vcpu.setCr0(i % 2 === 0 ? L1_REGS.cr0 & ~CR0.WP : L1_REGS.cr0);
      vcpu.reload();
    }
    expect(meter.diff({})).toMatchObject({ MMU_RESET_CONTEXT: 4, ROOT_DROP: 4, ROOT_LOAD: 4 });
    expect(backend.created).toBe(2); // one shadow root per WP value
  });
});

describe("§7.3 flag (c): 10 round trips, one vCPU, only L1's root loaded at the start", () => {
  const COMBOS = {
    "c1 off, c2 off": { fastSwitchIgnoresCr3ForDirect: false, reuseCurrentRoot: false },
    "c1 on, c2 off": { fastSwitchIgnoresCr3ForDirect: true, reuseCurrentRoot: false },
    "c1 on, c2 on": { fastSwitchIgnoresCr3ForDirect: true, reuseCurrentRoot: true },
  } as const;

  /** Runs a scenario and returns the hits/misses/drops/loads of one context. */
  const run = (
    combo: keyof typeof COMBOS,
    keepRoots: boolean,
    epTwelve: boolean,
    l2Cr3: (i: number) => number,
    which: "guest_mmu" | "root_mmu",
  ) => {
    const flags = mmuFlags({ ...COMBOS[combo], keepRootsOnRoleChange: keepRoots });
    const { vcpu } = nestedScenario(flags, { countSetup: true });
    for (let i = 0; i < 10; i++) roundTrip(vcpu, l2State(l2Cr3(i), epTwelve));
    const s = (which === "guest_mmu" ? vcpu.guestMmu : vcpu.rootMmu).stats;
    return { hits: s.hits, misses: s.misses, drops: s.drops, loads: s.loads };
  };

  const constant = () => 0x40_0000;
  const fourCr3s = (i: number) => 0x40_0000 + (i % 4) * 0x1000;

  for (const keepRoots of [true, false]) {
    describe(keepRoots ? "with flag b (v5.18+ lookup)" : "without flag b (pre-v5.18 lookup)", () => {
      it("case A, guest_mmu (same EPTP every entry): 8/2/2, same, 9/1/1", () => {
        expect(run("c1 off, c2 off", keepRoots, true, constant, "guest_mmu")).toEqual({
          hits: 8,
          misses: 2,
          drops: 0,
          loads: 2,
        });
        expect(run("c1 on, c2 off", keepRoots, true, constant, "guest_mmu")).toEqual({
          hits: 8,
          misses: 2,
          drops: 0,
          loads: 2,
        });
        expect(run("c1 on, c2 on", keepRoots, true, constant, "guest_mmu")).toEqual({
          hits: 9,
          misses: 1,
          drops: 0,
          loads: 1,
        });
      });

      it("case A, root_mmu (same host CR3 every exit): 9/1/2, same, 10/0/1", () => {
        expect(run("c1 off, c2 off", keepRoots, true, constant, "root_mmu")).toEqual({
          hits: 9,
          misses: 1,
          drops: 0,
          loads: 2,
        });
        expect(run("c1 on, c2 off", keepRoots, true, constant, "root_mmu")).toEqual({
          hits: 9,
          misses: 1,
          drops: 0,
          loads: 2,
        });
        expect(run("c1 on, c2 on", keepRoots, true, constant, "root_mmu")).toEqual({
          hits: 10,
          misses: 0,
          drops: 0,
          loads: 1,
        });
      });

      it("case B, root_mmu, L2 CR3 constant: 19 hits, 1 miss, 2 loads for every combination", () => {
        for (const combo of Object.keys(COMBOS) as (keyof typeof COMBOS)[]) {
          expect(run(combo, keepRoots, false, constant, "root_mmu")).toEqual({
            hits: 19,
            misses: 1,
            drops: 0,
            loads: 2,
          });
        }
      });

      it("case B, root_mmu, L2 cycles through 4 CR3s: 10/10/7 drops/11 loads without c1, 19/1/2 with it", () => {
        expect(run("c1 off, c2 off", keepRoots, false, fourCr3s, "root_mmu")).toEqual({
          hits: 10,
          misses: 10,
          drops: 7,
          loads: 11,
        });
        expect(run("c1 on, c2 off", keepRoots, false, fourCr3s, "root_mmu")).toEqual({
          hits: 19,
          misses: 1,
          drops: 0,
          loads: 2,
        });
        expect(run("c1 on, c2 on", keepRoots, false, fourCr3s, "root_mmu")).toEqual({
          hits: 19,
          misses: 1,
          drops: 0,
          loads: 2,
        });
      });
    });
  }
});

describe("INVEPT and free_nested (kvm: handle_invept, free_nested)", () => {
  const setup = () => {
    const s = nestedScenario();
    const eptps = [eptp(0x30_0000), eptp(0x31_0000), eptp(0x30_0000, false), eptp(0x32_0000)];
    for (const e of eptps) roundTrip(s.vcpu, { ...l2State(), eptp: e });
    return s;
  };

  it("single-context frees guest_mmu's slots whose EPTP has the same bits 51:12, whatever the A/D bit", () => {
    const { vcpu, meter } = setup();
    expect(vcpu.guestMmu.validRootCount()).toBe(4);
    const before = meter.snapshot();
    vcpu.handleInvept(1, EPTP12);
    expect(meter.diff(before)).toEqual({ ROOT_DROP: 2 });
    expect(vcpu.guestMmu.validRootCount()).toBe(2);
    expect(vcpu.rootMmu.hasRoot).toBe(true);
  });

  it("global frees all of guest_mmu and nothing of root_mmu", () => {
    const { vcpu, meter } = setup();
    const before = meter.snapshot();
    vcpu.handleInvept(2, 0);
    expect(meter.diff(before)).toEqual({ ROOT_DROP: 4 });
    expect(vcpu.guestMmu.validRootCount()).toBe(0);
    expect(vcpu.rootMmu.validRootCount()).toBe(1);
  });

  it("the next entry after INVEPT misses and reloads", () => {
    const { vcpu, meter } = setup();
    vcpu.handleInvept(2, 0);
    const before = meter.snapshot();
    roundTrip(vcpu, l2State());
    expect(meter.diff(before)).toEqual({ PGD_MISS: 1, ROOT_LOAD: 1, PGD_HIT_CURRENT: 1 });
  });

  it("free_nested drops every guest_mmu root", () => {
    const { vcpu, meter } = setup();
    const before = meter.snapshot();
    vcpu.freeNested();
    expect(meter.diff(before)).toEqual({ ROOT_DROP: 4 });
  });
});

describe("role changes made by L2 (kvm-mmu.md §6.3, notable side effects)", () => {
  it("an emulated CR4 role-bit change in L2 unloads root_mmu and guest_mmu, then re-initialises nested_mmu", () => {
    const { vcpu, meter } = nestedScenario();
    roundTrip(vcpu, l2State());
    vcpu.nestedVmEntry(l2State());
    vcpu.reload();
    const before = meter.snapshot();
    vcpu.setCr4(vcpu.cr4 & ~CR4.SMAP);
    expect(meter.diff(before)).toMatchObject({
      MMU_RESET_CONTEXT: 1,
      MMU_UNLOAD: 1,
      ROOT_DROP: 2,
      CONTEXT_INIT: 1,
    });
    expect(vcpu.nestedMmu.stats.inits).toBe(2);
    vcpu.reload();
    expect(vcpu.guestMmu.hasRoot).toBe(true);
    // Back in L1, root_mmu's root must be loaded again.
    vcpu.nestedVmExit(L1_REGS);
    expect(vcpu.reload()).toBe(true);
  });

  it("EFER.NX written by L2 resets too; an SCE change does not", () => {
    const { vcpu, meter } = nestedScenario();
    vcpu.nestedVmEntry(l2State());
    const before = meter.snapshot();
    vcpu.setEfer(vcpu.efer & ~EFER.SCE);
    expect(meter.diff(before)).toEqual({});
    vcpu.setEfer(vcpu.efer & ~EFER.NXE);
    expect(meter.diff(before)).toMatchObject({ MMU_RESET_CONTEXT: 1 });
  });
});
