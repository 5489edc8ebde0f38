import { CR0, CR4, EFER } from "@nestvisor/x86-arch";
import { describe, expect, it } from "vitest";
import { MMU_FLAVOUR } from "./mmu-context";
import { mmuFlagPreset } from "./mmu-flags";
import { PAGE_ROLE } from "./page-role";
import { FakeRootBackend } from "./testing/fake-root-backend";
import { EPTP12, L1_REGS, l2State, nestedScenario, roundTrip } from "./testing/nested-scenario";
import { INVEPT_TYPE, VcpuMmu } from "./vcpu-mmu";

describe("VcpuMmu construction (kvm: kvm_mmu_create)", () => {
  it("starts with mmu = walk_mmu = root_mmu and no roots", () => {
    const v = new VcpuMmu({ backend: new FakeRootBackend() });
    expect(v.mmu).toBe(v.rootMmu);
    expect(v.walkMmu).toBe(v.rootMmu);
    expect(v.guestMmu).not.toBe(v.rootMmu);
    expect(v.mmuIsNested).toBe(false);
    expect(v.rootContexts).toHaveLength(2);
    expect(v.rootMmu.validRootCount()).toBe(0);
  });

  it("picks the TDP level from the host's maximum and the guest's MAXPHYADDR", () => {
    const b = new FakeRootBackend();
    expect(new VcpuMmu({ backend: b, host: { maxTdpLevel: 5 } }).tdpLevel).toBe(4);
    expect(new VcpuMmu({ backend: b, host: { maxTdpLevel: 5 }, guest: { maxPhysAddr: 52 } }).tdpLevel).toBe(
      5,
    );
  });

  it("KVM_SET_SREGS resets only when CR0, CR3, CR4 or EFER change (kvm: mmu_reset_needed)", () => {
    const { vcpu, meter } = nestedScenario();
    vcpu.setSregs(L1_REGS);
    expect(meter.diff({})).toEqual({});
    vcpu.setSregs({ ...L1_REGS, cr3: 0x77_0000 });
    expect(meter.diff({})).toMatchObject({ MMU_RESET_CONTEXT: 1, MMU_UNLOAD: 1, ROOT_DROP: 1 });
    expect(vcpu.cr3).toBe(0x77_0000);
    vcpu.reload();
    vcpu.setSregs({ ...L1_REGS, cr3: 0x77_0000, cr4: L1_REGS.cr4 & ~CR4.SMEP });
    expect(meter.diff({})).toMatchObject({
      MMU_RESET_CONTEXT: 2,
      MMU_UNLOAD: 2,
      ROOT_DROP: 2,
      CONTEXT_INIT: 1,
    });
  });
});

describe("kvm_post_set_cr0", () => {
  it("a non-role bit (TS) does nothing; PG resets", () => {
    const { vcpu, meter } = nestedScenario();
    vcpu.setCr0(L1_REGS.cr0 | CR0.TS);
    expect(meter.diff({})).toEqual({});
    vcpu.setCr0(L1_REGS.cr0 & ~CR0.PG);
    expect(meter.diff({})).toMatchObject({ MMU_RESET_CONTEXT: 1 });
  });

  it("the WP exemption needs the change to be exactly WP (kvm compares the whole XOR)", () => {
    const { vcpu, meter } = nestedScenario();
    vcpu.setCr0(L1_REGS.cr0 & ~CR0.WP);
    expect(meter.diff({})).toMatchObject({ CONTEXT_INIT: 1 });
    expect(meter.diff({}).MMU_RESET_CONTEXT).toBeUndefined();
    const before = meter.snapshot();
    vcpu.setCr0((L1_REGS.cr0 | CR0.TS) >>> 0); // WP and TS change together
    expect(meter.diff(before)).toMatchObject({ MMU_RESET_CONTEXT: 1 });
  });

  it("without TDP the WP exemption does not apply", () => {
    const { vcpu, meter } = nestedScenario(undefined, { tdpEnabled: false });
    vcpu.setCr0(L1_REGS.cr0 & ~CR0.WP);
    expect(meter.diff({})).toMatchObject({ MMU_RESET_CONTEXT: 1, ROOT_DROP: 1 });
    expect(vcpu.rootMmu.rootRole).toBe(0xd704);
  });
});

describe("kvm_post_set_cr4", () => {
  it("a role bit resets; PGE does not since v5.18 but did before", () => {
    const today = nestedScenario();
    today.vcpu.setCr4(L1_REGS.cr4 & ~CR4.PGE);
    expect(today.meter.diff({})).toEqual({});
    today.vcpu.setCr4(L1_REGS.cr4 & ~CR4.SMAP);
    expect(today.meter.diff({})).toMatchObject({ MMU_RESET_CONTEXT: 1 });

    const old = nestedScenario(mmuFlagPreset("v5.7"));
    old.vcpu.setCr4(L1_REGS.cr4 & ~CR4.PGE);
    expect(old.meter.diff({})).toMatchObject({ MMU_RESET_CONTEXT: 1, ROOT_DROP: 1 });
  });

  it("PCIDE 0→1 unloads without TDP only; before v5.18 any PCIDE change unloaded", () => {
    const tdp = nestedScenario();
    tdp.vcpu.setCr4(L1_REGS.cr4 | CR4.PCIDE);
    expect(tdp.meter.diff({})).toEqual({});

    const shadow = nestedScenario(undefined, { tdpEnabled: false });
    shadow.vcpu.setCr4(L1_REGS.cr4 | CR4.PCIDE);
    expect(shadow.meter.diff({})).toEqual({ MMU_UNLOAD: 1, ROOT_DROP: 1 });
    shadow.vcpu.reload();
    const before = shadow.meter.snapshot();
    shadow.vcpu.setCr4(L1_REGS.cr4);
    expect(shadow.meter.diff(before)).toEqual({});

    const old = nestedScenario(mmuFlagPreset("v5.7"));
    old.vcpu.setCr4(L1_REGS.cr4 | CR4.PCIDE);
    expect(old.meter.diff({})).toEqual({ MMU_UNLOAD: 1, ROOT_DROP: 1 });
  });
});

describe("set_efer", () => {
  it("resets for NX; for LME only since v5.18", () => {
    const today = nestedScenario();
    today.vcpu.setEfer(L1_REGS.efer & ~EFER.LME);
    expect(today.meter.diff({})).toMatchObject({ MMU_RESET_CONTEXT: 1 });
    const old = nestedScenario(mmuFlagPreset("v5.7"));
    old.vcpu.setEfer(L1_REGS.efer & ~EFER.LME);
    expect(old.meter.diff({})).toEqual({});
    old.vcpu.setEfer(L1_REGS.efer & ~EFER.NXE);
    expect(old.meter.diff({})).toMatchObject({ MMU_RESET_CONTEXT: 1 });
  });
});

describe("kvm_set_cr3 and SMM", () => {
  it("a new CR3 switches the PGD (a current-root hit under TDP); the same CR3 does nothing", () => {
    const { vcpu, meter } = nestedScenario();
    vcpu.setCr3(L1_REGS.cr3);
    expect(meter.diff({})).toEqual({});
    vcpu.setCr3(0x55_0000);
    expect(meter.diff({})).toEqual({ PGD_HIT_CURRENT: 1 });
    expect(vcpu.cr3).toBe(0x55_0000);
  });

  it("under shadow paging a new CR3 misses, then the old one is found in prev[0]", () => {
    const { vcpu, meter } = nestedScenario(undefined, { tdpEnabled: false });
    vcpu.setCr3(0x55_0000);
    vcpu.reload();
    vcpu.setCr3(L1_REGS.cr3);
    expect(meter.diff({})).toEqual({ PGD_MISS: 1, ROOT_LOAD: 1, PGD_HIT_PREV: 1 });
  });

  it("entering SMM resets the MMU into the SMM address space", () => {
    const { vcpu, meter } = nestedScenario();
    vcpu.setSmm(true);
    expect(meter.diff({})).toMatchObject({ MMU_RESET_CONTEXT: 1 });
    expect(vcpu.rootMmu.rootRole >>> PAGE_ROLE.SMM_SHIFT).toBe(1);
    vcpu.setSmm(true);
    expect(meter.diff({}).MMU_RESET_CONTEXT).toBe(1);
  });
});

describe("kvm_mmu_after_set_cpuid", () => {
  it("invalidates every context's roles so all gates fail, then resets", () => {
    const { vcpu, meter } = nestedScenario();
    roundTrip(vcpu, l2State());
    const before = meter.snapshot();
    vcpu.afterSetCpuid();
    expect(vcpu.guestMmu.rootRole).toBe(0);
    expect(vcpu.guestMmu.cpuRoleExt & 1).toBe(0);
    expect(meter.diff(before)).toMatchObject({ MMU_RESET_CONTEXT: 1, ROOT_DROP: 2, CONTEXT_INIT: 1 });
    // The next nested entry reconfigures guest_mmu and nested_mmu although nothing else changed.
    const b2 = meter.snapshot();
    vcpu.reload();
    roundTrip(vcpu, l2State());
    expect(meter.diff(b2)).toMatchObject({ CONTEXT_INIT: 2 });
  });
});

describe("nested helpers", () => {
  it("nested_ept_init_mmu_context refuses to run twice (KVM WARNs)", () => {
    const { vcpu } = nestedScenario();
    vcpu.nestedVmEntry(l2State());
    expect(() => vcpu.nestedEptInitMmuContext(EPTP12)).toThrow(/already nested_mmu/);
  });

  it("the late VM-fail path resets instead of switching the PGD", () => {
    const { vcpu, meter } = nestedScenario();
    vcpu.nestedVmEntry(l2State());
    vcpu.reload();
    const before = meter.snapshot();
    vcpu.nestedVmxRestoreHostState(L1_REGS);
    expect(meter.diff(before)).toMatchObject({ MMU_RESET_CONTEXT: 1, ROOT_DROP: 2 });
    expect(vcpu.mmu).toBe(vcpu.rootMmu);
    expect(vcpu.guestMode).toBe(false);
  });

  it("VMFUNC EPTP switching (nested_ept_new_eptp) re-targets guest_mmu in place", () => {
    const { vcpu, meter } = nestedScenario();
    roundTrip(vcpu, l2State());
    vcpu.nestedVmEntry(l2State());
    vcpu.reload();
    const before = meter.snapshot();
    vcpu.nestedEptNewEptp(EPTP12 + 0x10_0000);
    vcpu.reload();
    expect(meter.diff(before)).toEqual({ PGD_MISS: 1, ROOT_LOAD: 1 });
    expect(vcpu.guestMmu.rootPgd).toBe(EPTP12 + 0x10_0000);
  });

  it("INVEPT with the split off searches the single context", () => {
    const { vcpu, meter } = nestedScenario(mmuFlagPreset("none"));
    roundTrip(vcpu, l2State());
    const before = meter.snapshot();
    vcpu.handleInvept(INVEPT_TYPE.SINGLE_CONTEXT, EPTP12);
    expect(meter.diff(before)).toEqual({ ROOT_DROP: 1 });
    vcpu.freeNested();
    expect(meter.diff(before)).toEqual({ ROOT_DROP: 1 });
  });

  it("the lazy WP refresh applies to root_mmu and nested_mmu, never to guest_mmu or without TDP", () => {
    const { vcpu } = nestedScenario();
    vcpu.nestedVmEntry(l2State());
    vcpu.cr0 &= ~CR0.WP; // L2 toggles guest-owned CR0.WP: no exit, no post-set handler
    expect(vcpu.refreshPassthroughBits(vcpu.guestMmu)).toBe(false);
    expect(vcpu.refreshPassthroughBits()).toBe(true);
    expect(vcpu.nestedMmu.cpuRoleBase & PAGE_ROLE.CR0_WP).toBe(0);
    expect(vcpu.guestMmu.flavour).toBe(MMU_FLAVOUR.SHADOW_EPT);
    const shadow = nestedScenario(undefined, { tdpEnabled: false });
    shadow.vcpu.cr0 &= ~CR0.WP;
    expect(shadow.vcpu.refreshPassthroughBits()).toBe(false);
  });

  it("obsolete roots are freed from both root contexts", () => {
    const { vcpu, meter, backend } = nestedScenario();
    roundTrip(vcpu, l2State());
    backend.obsoleteAll();
    const before = meter.snapshot();
    vcpu.freeObsoleteRoots();
    expect(meter.diff(before)).toEqual({ ROOT_DROP: 2 });
    expect(vcpu.reload()).toBe(true);
  });
});

describe("keepRootsOnAllRoleChanges (seed 001 v2 patch 18, unmerged; kvm-mmu.md §4.4, §7.2)", () => {
  const PATCH_18 = mmuFlagPreset("all");
  const shadowPaging = (flags = PATCH_18) => nestedScenario(flags, { tdpEnabled: false });

  it("a shadow-paging CR0.WP toggle re-initialises and finds the other role's root once warm", () => {
    const { vcpu, meter } = shadowPaging();
    const wpOn = vcpu.rootMmu.rootRole;
    vcpu.setCr0(L1_REGS.cr0 & ~CR0.WP);
    vcpu.reload();
    // First toggle: a new role, so a miss and one load; the old root stays cached.
    expect(meter.diff({})).toMatchObject({ MMU_RESET_CONTEXT: 1, PGD_MISS: 1, ROOT_LOAD: 1 });
    expect(meter.diff({}).MMU_UNLOAD).toBeUndefined();
    const wpOff = vcpu.rootMmu.rootRole;
    expect(wpOff).not.toBe(wpOn);
    const warm = meter.snapshot();
    for (let i = 0; i < 10; i++) {
      vcpu.setCr0(i % 2 === 0 ? L1_REGS.cr0 : L1_REGS.cr0 & ~CR0.WP);
      vcpu.reload();
    }
    expect(meter.diff(warm)).toMatchObject({ MMU_RESET_CONTEXT: 10, PGD_HIT_PREV: 10 });
    const d = meter.diff(warm);
    expect(d.MMU_UNLOAD ?? 0).toBe(0);
    expect(d.ROOT_LOAD ?? 0).toBe(0);
    expect(d.ROOT_DROP ?? 0).toBe(0);
    expect(vcpu.rootMmu.rootRole).toBe(wpOff); // ten toggles from WP off: back to WP off
  });

  it("upstream (flag off) unloads on every such toggle", () => {
    const { vcpu, meter } = shadowPaging(mmuFlagPreset("v6.12"));
    for (let i = 0; i < 10; i++) {
      vcpu.setCr0(i % 2 === 0 ? L1_REGS.cr0 & ~CR0.WP : L1_REGS.cr0);
      vcpu.reload();
    }
    expect(meter.diff({})).toMatchObject({ MMU_RESET_CONTEXT: 10, MMU_UNLOAD: 10, ROOT_LOAD: 10 });
  });

  it("keeps the unload where the patch keeps it: CR0.PG 1→0, CR4.SMEP 0→1, CPUID", () => {
    const pg = shadowPaging();
    pg.vcpu.setCr0(L1_REGS.cr0 & ~CR0.PG);
    expect(pg.meter.diff({})).toMatchObject({ MMU_RESET_CONTEXT: 1, MMU_UNLOAD: 1 });
    pg.vcpu.reload();
    const before = pg.meter.snapshot();
    pg.vcpu.setCr0(L1_REGS.cr0); // PG 0→1: the role captures it
    expect(pg.meter.diff(before).MMU_UNLOAD ?? 0).toBe(0);

    const smep = shadowPaging();
    smep.vcpu.setCr4(L1_REGS.cr4 & ~CR4.SMEP); // 1→0: no unload
    smep.vcpu.reload();
    expect(smep.meter.diff({}).MMU_UNLOAD ?? 0).toBe(0);
    smep.vcpu.setCr4(L1_REGS.cr4); // 0→1: unload
    expect(smep.meter.diff({})).toMatchObject({ MMU_UNLOAD: 1 });

    const cpuid = shadowPaging();
    cpuid.vcpu.afterSetCpuid();
    expect(cpuid.meter.diff({})).toMatchObject({ MMU_UNLOAD: 1 });
  });

  it("EFER.NX and SMM changes keep the roots", () => {
    const { vcpu, meter } = shadowPaging();
    vcpu.setEfer(L1_REGS.efer & ~EFER.NXE);
    vcpu.reload();
    vcpu.setSmm(true);
    vcpu.reload();
    vcpu.setSmm(false);
    vcpu.setEfer(L1_REGS.efer);
    vcpu.reload();
    const d = meter.diff({});
    expect(d.MMU_RESET_CONTEXT).toBe(4);
    expect(d.MMU_UNLOAD ?? 0).toBe(0);
    // Back to the starting role: the original root came back out of the cache.
    expect(d.PGD_HIT_PREV).toBeGreaterThanOrEqual(1);
  });

  it("is ignored while keepRootsOnRoleChange is off", () => {
    const { vcpu, meter } = shadowPaging({ ...PATCH_18, keepRootsOnRoleChange: false });
    vcpu.setCr0(L1_REGS.cr0 & ~CR0.WP);
    expect(meter.diff({})).toMatchObject({ MMU_RESET_CONTEXT: 1, MMU_UNLOAD: 1 });
  });
});

describe("keepRootsOnAllRoleChanges on the other reset callers", () => {
  it("KVM_SET_SREGS keeps the roots unless PG goes 1→0 or SMEP 0→1", () => {
    const keep = nestedScenario(mmuFlagPreset("all"), { tdpEnabled: false });
    keep.vcpu.setSregs({ ...L1_REGS, cr0: L1_REGS.cr0 & ~CR0.WP });
    expect(keep.meter.diff({})).toMatchObject({ MMU_RESET_CONTEXT: 1 });
    expect(keep.meter.diff({}).MMU_UNLOAD ?? 0).toBe(0);
    const unload = nestedScenario(mmuFlagPreset("all"), { tdpEnabled: false });
    unload.vcpu.setSregs({ ...L1_REGS, cr0: L1_REGS.cr0 & ~CR0.PG });
    expect(unload.meter.diff({})).toMatchObject({ MMU_RESET_CONTEXT: 1, MMU_UNLOAD: 1 });
    const upstream = nestedScenario(mmuFlagPreset("v6.12"), { tdpEnabled: false });
    upstream.vcpu.setSregs({ ...L1_REGS, cr0: L1_REGS.cr0 & ~CR0.WP });
    expect(upstream.meter.diff({})).toMatchObject({ MMU_RESET_CONTEXT: 1, MMU_UNLOAD: 1 });
  });

  it("the late VM-fail unwind keeps the roots back to L1's unchanged registers", () => {
    const { vcpu, meter } = nestedScenario(mmuFlagPreset("all"));
    vcpu.nestedVmEntry(l2State());
    vcpu.reload();
    const before = meter.snapshot();
    vcpu.nestedVmxRestoreHostState(L1_REGS);
    const d = meter.diff(before);
    expect(d.MMU_RESET_CONTEXT).toBe(1);
    expect(d.MMU_UNLOAD ?? 0).toBe(0);
    expect(vcpu.mmu).toBe(vcpu.rootMmu);
  });
});
