import { CountingMeter } from "@nestvisor/vmx";
import { CR0, CR4, EFER } from "@nestvisor/x86-arch";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { cpuRoleBase, cpuRoleExt } from "./cpu-role";
import { MMU_CONTEXT_KIND, MMU_FLAVOUR, MmuContext } from "./mmu-context";
import { MMU_EVENTS } from "./mmu-events";
import { type MmuFlags, mmuFlags } from "./mmu-flags";
import {
  initNestedMmu,
  initShadowEptMmu,
  initShadowMmu,
  initTdpMmu,
  type MmuInitEnv,
  refreshPassthroughBits,
  resetGuestPagingMetadata,
} from "./mmu-init";
import { PAGE_ROLE } from "./page-role";
import { updatePermissionBitmask, updatePkruBitmask } from "./permission-bitmask";
import {
  createRsvdBitsValidate,
  PG_LEVEL,
  resetGuestRsvdsBitsMask,
  resetRsvdsBitsMaskEpt,
} from "./reserved-bits";
import { FakeRootBackend } from "./testing/fake-root-backend";
import { EPTP12 } from "./testing/nested-scenario";
import { DEFAULT_GUEST_CPU, DEFAULT_HOST_MMU } from "./vcpu-mmu";

function env(overrides: Partial<MmuFlags> = {}): MmuInitEnv & { meter: CountingMeter } {
  return {
    backend: new FakeRootBackend(),
    meter: new CountingMeter([MMU_EVENTS]),
    flags: mmuFlags(overrides),
    guest: DEFAULT_GUEST_CPU,
    host: DEFAULT_HOST_MMU,
    tdpLevel: 4,
  };
}

const CR0_ON = CR0.PG | CR0.WP | CR0.PE;
const CR4_ON = CR4.PAE | CR4.SMEP | CR4.SMAP | CR4.PKE;
const EFER_ON = EFER.LME | EFER.LMA | EFER.NXE;
const roles = (cr0 = CR0_ON, cr4 = CR4_ON, efer = EFER_ON, guestMode = false) =>
  [cpuRoleBase(cr0, cr4, efer, false, guestMode), cpuRoleExt(cr0, cr4, efer)] as const;

describe("init_kvm_tdp_mmu and its gate (kvm-mmu.md §2.2, §4.2)", () => {
  it("reconfigures once, then skips while both roles are unchanged", () => {
    const e = env();
    const ctx = new MmuContext(MMU_CONTEXT_KIND.ROOT_MMU);
    const [b, x] = roles();
    expect(initTdpMmu(ctx, b, x, e)).toBe(true);
    expect(ctx).toMatchObject({ cpuRoleBase: b, cpuRoleExt: x, rootRole: 0x3784, flavour: MMU_FLAVOUR.TDP });
    expect(initTdpMmu(ctx, b, x, e)).toBe(false);
    expect(e.meter.diff({})).toEqual({
      CONTEXT_INIT: 1,
      PERMISSION_BITMASK_UPDATE: 1,
      PKRU_BITMASK_UPDATE: 1,
      GUEST_RSVD_MASK_RESET: 1,
      SHADOW_ZERO_MASK_RESET: 1,
    });
  });

  it("fills the permission table, PKRU mask and guest reserved masks from the cpu role", () => {
    const e = env();
    const ctx = new MmuContext(MMU_CONTEXT_KIND.ROOT_MMU);
    const [b, x] = roles(CR0.PG | CR0.PE);
    initTdpMmu(ctx, b, x, e);
    const perms = new Uint8Array(16);
    updatePermissionBitmask(perms, b, x, false);
    expect([...ctx.permissions]).toEqual([...perms]);
    expect(ctx.pkruMask).toBe(updatePkruBitmask(b, x));
    expect(ctx.pkruMask).toBe(0x0000d500); // kvm-mmu.md §5.5 with WP=0
    const rsvd = createRsvdBitsValidate();
    resetGuestRsvdsBitsMask(rsvd, b, x, 46, true, false);
    expect(ctx.guestRsvdCheck).toEqual(rsvd);
  });

  it("a CR0.WP change fails the gate through the cpu role although the root role stays 0x3784", () => {
    const e = env();
    const ctx = new MmuContext(MMU_CONTEXT_KIND.ROOT_MMU);
    initTdpMmu(ctx, ...roles(), e);
    expect(initTdpMmu(ctx, ...roles(CR0.PG | CR0.PE), e)).toBe(true);
    expect(ctx.rootRole).toBe(0x3784);
  });

  it("without skipUnchangedMmuInit every call reconfigures", () => {
    const e = env({ skipUnchangedMmuInit: false });
    const ctx = new MmuContext(MMU_CONTEXT_KIND.ROOT_MMU);
    for (let i = 0; i < 3; i++) expect(initTdpMmu(ctx, ...roles(), e)).toBe(true);
    expect(ctx.stats.inits).toBe(3);
  });

  it("counts the PKRU loop only with CR4.PKE in long mode", () => {
    const e = env();
    const ctx = new MmuContext(MMU_CONTEXT_KIND.ROOT_MMU);
    initTdpMmu(ctx, ...roles(CR0_ON, CR4.PAE), e);
    initTdpMmu(ctx, ...roles(CR0_ON, CR4.PAE | CR4.PKE, EFER.NXE), e); // PAE, not long mode
    expect(ctx.stats).toMatchObject({ inits: 2, permissionUpdates: 2, pkruUpdates: 0 });
    expect(ctx.pkruMask).toBe(0);
  });

  it("with CR0.PG=0 the metadata is not touched (kvm: reset_guest_paging_metadata returns at once)", () => {
    const e = env();
    const ctx = new MmuContext(MMU_CONTEXT_KIND.ROOT_MMU);
    initTdpMmu(ctx, ...roles(), e);
    const perms = [...ctx.permissions];
    initTdpMmu(ctx, ...roles(CR0.PE), e);
    expect(ctx.stats).toMatchObject({
      inits: 2,
      permissionUpdates: 1,
      guestRsvdResets: 1,
      shadowZeroResets: 2,
    });
    expect([...ctx.permissions]).toEqual(perms);
  });
});

describe("shadow paging (kvm: kvm_init_shadow_mmu, shadow_mmu_init_context)", () => {
  it("uses the shadow root role and the same two-word gate", () => {
    const e = env();
    const ctx = new MmuContext(MMU_CONTEXT_KIND.ROOT_MMU);
    expect(initShadowMmu(ctx, ...roles(), e)).toBe(true);
    expect(ctx.rootRole).toBe(0x3704);
    expect(ctx.flavour).toBe(MMU_FLAVOUR.SHADOW);
    expect(initShadowMmu(ctx, ...roles(), e)).toBe(false);
    expect(initShadowMmu(ctx, ...roles(CR0.PG | CR0.PE), e)).toBe(true);
    expect(ctx.rootRole).toBe(0xd704);
  });
});

describe("kvm_init_shadow_ept_mmu (kvm-mmu.md §2.4)", () => {
  it("reconfigures for a new EPT role only, and always switches the PGD after the gate", () => {
    const e = env();
    const ctx = new MmuContext(MMU_CONTEXT_KIND.GUEST_MMU);
    expect(initShadowEptMmu(ctx, EPTP12, true, PG_LEVEL.SIZE_1G, e)).toBe(true);
    expect(ctx).toMatchObject({ cpuRoleBase: 0x20704, cpuRoleExt: 3, rootRole: 0x20704, pkruMask: 0 });
    expect(ctx.guestPgdIsEptp).toBe(true);
    expect(e.meter.diff({})).toEqual({
      CONTEXT_INIT: 1,
      PERMISSION_BITMASK_UPDATE: 1,
      GUEST_RSVD_MASK_RESET: 1,
      SHADOW_ZERO_MASK_RESET: 1,
      PGD_MISS: 1,
    });
    const perms = new Uint8Array(16);
    updatePermissionBitmask(perms, 0x20704, 3, true);
    expect([...ctx.permissions]).toEqual([...perms]);
    const rsvd = createRsvdBitsValidate();
    resetRsvdsBitsMaskEpt(rsvd, 46, true, PG_LEVEL.SIZE_1G);
    expect(ctx.guestRsvdCheck).toEqual(rsvd);
    // Same EPTP role: no reconfiguration, but another PGD lookup.
    expect(initShadowEptMmu(ctx, EPTP12, true, PG_LEVEL.SIZE_1G, e)).toBe(false);
    expect(e.meter.diff({}).PGD_MISS).toBe(2);
    // A/D off in the EPTP changes the role.
    expect(initShadowEptMmu(ctx, EPTP12 & ~0x40, true, PG_LEVEL.SIZE_1G, e)).toBe(true);
    expect(ctx.cpuRoleBase & PAGE_ROLE.AD_DISABLED).toBe(PAGE_ROLE.AD_DISABLED);
  });

  it("without flag b the PGD switch runs before the gate, with the old context's levels", () => {
    const e = env({ keepRootsOnRoleChange: false });
    const ctx = new MmuContext(MMU_CONTEXT_KIND.GUEST_MMU);
    // Fresh context: levels 0, so no lookup — a plain miss, then the reconfiguration.
    initShadowEptMmu(ctx, EPTP12, true, PG_LEVEL.SIZE_1G, e);
    expect(ctx.stats.misses).toBe(1);
    ctx.rootHpa = e.backend.allocShadowRoot(ctx.rootRole, EPTP12);
    ctx.rootPgd = EPTP12;
    // Configured now (levels 4/4): the same EPTP hits the current root before the gate skips.
    initShadowEptMmu(ctx, EPTP12, true, PG_LEVEL.SIZE_1G, e);
    expect(ctx.stats.hitCurrent).toBe(1);
    expect(ctx.stats.inits).toBe(1);
  });
});

describe("init_kvm_nested_mmu (kvm-mmu.md §2.6)", () => {
  it("gates on the cpu role only and never touches the root role", () => {
    const e = env();
    const ctx = new MmuContext(MMU_CONTEXT_KIND.NESTED_MMU);
    expect(initNestedMmu(ctx, ...roles(undefined, undefined, undefined, true), e)).toBe(true);
    expect(ctx.rootRole).toBe(0);
    expect(ctx.flavour).toBe(MMU_FLAVOUR.NESTED_WALK);
    expect(initNestedMmu(ctx, ...roles(undefined, undefined, undefined, true), e)).toBe(false);
    expect(e.meter.diff({})).toEqual({
      CONTEXT_INIT: 1,
      PERMISSION_BITMASK_UPDATE: 1,
      PKRU_BITMASK_UPDATE: 1,
      GUEST_RSVD_MASK_RESET: 1,
    });
  });
});

describe("lazy CR0.WP refresh (kvm: __kvm_mmu_refresh_passthrough_bits)", () => {
  it("updates only cr0_wp and rebuilds the tables when the live bit differs", () => {
    const e = env();
    const ctx = new MmuContext(MMU_CONTEXT_KIND.ROOT_MMU);
    initTdpMmu(ctx, ...roles(), e);
    expect(refreshPassthroughBits(ctx, true, e)).toBe(false);
    expect(refreshPassthroughBits(ctx, false, e)).toBe(true);
    expect(ctx.cpuRoleBase & PAGE_ROLE.CR0_WP).toBe(0);
    // smep_andnot_wp / smap_andnot_wp are not recomputed.
    expect(ctx.cpuRoleBase & (PAGE_ROLE.SMEP_ANDNOT_WP | PAGE_ROLE.SMAP_ANDNOT_WP)).toBe(0);
    expect(ctx.stats).toMatchObject({ inits: 1, permissionUpdates: 2, pkruUpdates: 2 });
    const perms = new Uint8Array(16);
    updatePermissionBitmask(perms, ctx.cpuRoleBase, ctx.cpuRoleExt, false);
    expect([...ctx.permissions]).toEqual([...perms]);
  });

  it("resetGuestPagingMetadata does nothing for a context with paging off", () => {
    const e = env();
    const ctx = new MmuContext(MMU_CONTEXT_KIND.ROOT_MMU);
    resetGuestPagingMetadata(ctx, e);
    expect(e.meter.diff({})).toEqual({});
  });
});

describe("gates after kvm_mmu_after_set_cpuid (MmuContext.invalidateRoles)", () => {
  const cr0Arb = fc.subarray([CR0.PG, CR0.WP, CR0.PE]).map((bits) => bits.reduce((a, b) => a | b, 0) >>> 0);
  const cr4Arb = fc
    .subarray([CR4.PAE, CR4.PSE, CR4.SMEP, CR4.SMAP, CR4.PKE, CR4.LA57])
    .map((bits) => bits.reduce((a, b) => a | b, 0) >>> 0);
  const eferArb = fc
    .subarray([EFER.LME, EFER.LMA, EFER.NXE])
    .map((bits) => bits.reduce((a, b) => a | b, 0) >>> 0);
  const regsArb = fc.tuple(cr0Arb, cr4Arb, eferArb, fc.boolean(), fc.boolean());
  const INITS = [initTdpMmu, initShadowMmu, initNestedMmu] as const;

  it("every gate fails once, whatever the old and new registers, and ends with a fresh init's roles", () => {
    fc.assert(
      fc.property(regsArb, regsArb, fc.nat(INITS.length - 1), (a, b, which) => {
        const init = INITS[which]!;
        const roleA = [cpuRoleBase(a[0], a[1], a[2], a[3], a[4]), cpuRoleExt(a[0], a[1], a[2])] as const;
        const roleB = [cpuRoleBase(b[0], b[1], b[2], b[3], b[4]), cpuRoleExt(b[0], b[1], b[2])] as const;
        const e = env();
        const ctx = new MmuContext(MMU_CONTEXT_KIND.ROOT_MMU);
        init(ctx, ...roleA, e);
        ctx.invalidateRoles();
        expect(init(ctx, ...roleB, e)).toBe(true);
        const fresh = new MmuContext(MMU_CONTEXT_KIND.ROOT_MMU);
        init(fresh, ...roleB, env());
        expect([ctx.cpuRoleBase, ctx.cpuRoleExt]).toEqual([fresh.cpuRoleBase, fresh.cpuRoleExt]);
        // init_kvm_nested_mmu never computes a root role: nested_mmu keeps the invalid one.
        if (init !== initNestedMmu) expect(ctx.rootRole).toBe(fresh.rootRole);
        else expect(ctx.rootRole & PAGE_ROLE.INVALID).toBe(PAGE_ROLE.INVALID);
        // And the gate holds again right after.
        expect(init(ctx, ...roleB, e)).toBe(false);
      }),
    );
  });

  it("the shadow-EPT gate fails once too (its cpu role lost ext.valid)", () => {
    const e = env();
    const ctx = new MmuContext(MMU_CONTEXT_KIND.GUEST_MMU);
    initShadowEptMmu(ctx, EPTP12, true, PG_LEVEL.SIZE_1G, e);
    ctx.invalidateRoles();
    expect(initShadowEptMmu(ctx, EPTP12, true, PG_LEVEL.SIZE_1G, e)).toBe(true);
    expect(ctx.rootRole & PAGE_ROLE.INVALID).toBe(0);
    expect(initShadowEptMmu(ctx, EPTP12, true, PG_LEVEL.SIZE_1G, e)).toBe(false);
  });
});
