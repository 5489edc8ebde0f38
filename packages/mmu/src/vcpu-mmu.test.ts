import { CR0, CR4, EFER } from "@nestvisor/x86-arch";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MMU_FLAVOUR } from "./mmu-context";
import { mmuFlagPreset } from "./mmu-flags";
import { describeMmuRequests, MMU_REQUEST } from "./mmu-request";
import { PAGE_ROLE } from "./page-role";
import { INVALID_ROOT } from "./root-backend";
import { FakeRootBackend } from "./testing/fake-root-backend";
import { EPTP12, GUEST_CR0, L1_REGS, l2State, nestedScenario, roundTrip } from "./testing/nested-scenario";
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

  it("reports PAE paging from its CR0, CR4 and EFER (kvm: is_pae_paging)", () => {
    const vcpu = new VcpuMmu({ backend: new FakeRootBackend() });
    vcpu.loadControlRegisters(CR0.PG | CR0.PE, CR4.PAE, 0);
    expect(vcpu.paePaging).toBe(true);
    vcpu.loadControlRegisters(CR0.PG | CR0.PE, CR4.PAE, EFER.LMA | EFER.LME);
    expect(vcpu.paePaging).toBe(false);
    vcpu.loadControlRegisters(CR0.PE, CR4.PAE, 0);
    expect(vcpu.paePaging).toBe(false);
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
  it("compares with the guest-owned bits the VMCS holds (cacheGuestOwnedCr0, kvm_read_cr0_bits)", () => {
    const { vcpu, meter } = nestedScenario();
    // The guest cleared WP without an exit; then an exiting write changes only AM.
    const guestCr0 = (L1_REGS.cr0 & ~CR0.WP) >>> 0;
    vcpu.cacheGuestOwnedCr0(guestCr0, CR0.WP | CR0.TS);
    expect(vcpu.cr0).toBe(guestCr0);
    expect(meter.diff({})).toEqual({});
    vcpu.setCr0((guestCr0 ^ CR0.AM) >>> 0);
    expect(meter.diff({})).toEqual({});
    // Bits the guest does not own keep the stored value.
    vcpu.cacheGuestOwnedCr0(0, CR0.WP | CR0.TS);
    expect((vcpu.cr0 & CR0.PG) >>> 0).toBe(CR0.PG >>> 0);
  });

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
  it("a role bit resets; a PGE toggle only requests a guest TLB flush since v5.16, and reset before", () => {
    const today = nestedScenario();
    today.vcpu.setCr4(L1_REGS.cr4 & ~CR4.PGE);
    expect(today.meter.diff({})).toEqual({ TLB_FLUSH_REQUEST: 1 });
    expect(describeMmuRequests(today.vcpu.requests)).toEqual(["TLB_FLUSH_GUEST"]);
    today.vcpu.setCr4(L1_REGS.cr4 & ~CR4.SMAP);
    expect(today.meter.diff({})).toMatchObject({ MMU_RESET_CONTEXT: 1 });

    const v516 = nestedScenario(mmuFlagPreset("v5.16"));
    v516.vcpu.setCr4(L1_REGS.cr4 & ~CR4.PGE);
    expect(v516.meter.diff({})).toEqual({ TLB_FLUSH_REQUEST: 1 });
    expect(v516.vcpu.requests).toBe(MMU_REQUEST.TLB_FLUSH_GUEST);

    const old = nestedScenario(mmuFlagPreset("v5.7"));
    old.vcpu.setCr4(L1_REGS.cr4 & ~CR4.PGE);
    expect(old.meter.diff({})).toMatchObject({ MMU_RESET_CONTEXT: 1, ROOT_DROP: 1 });
    expect(old.meter.diff({}).TLB_FLUSH_REQUEST).toBeUndefined();
  });

  it("PCIDE 0→1 unloads without TDP only; v5.16–v5.17 unloaded on any PCIDE change; up to v5.15 only 1→0 reset", () => {
    const tdp = nestedScenario();
    tdp.vcpu.setCr4(L1_REGS.cr4 | CR4.PCIDE);
    expect(tdp.meter.diff({})).toEqual({});

    const shadow = nestedScenario(undefined, { tdpEnabled: false });
    shadow.vcpu.setCr4(L1_REGS.cr4 | CR4.PCIDE);
    expect(shadow.meter.diff({})).toEqual({ MMU_UNLOAD: 1, ROOT_DROP: 1 });
    shadow.vcpu.reload();
    const before = shadow.meter.snapshot();
    shadow.vcpu.setCr4(L1_REGS.cr4); // 1→0: a guest TLB flush, the roots stay
    expect(shadow.meter.diff(before)).toEqual({ TLB_FLUSH_REQUEST: 1 });
    expect(shadow.vcpu.requests).toBe(MMU_REQUEST.TLB_FLUSH_GUEST);

    for (const tdpEnabled of [true, false]) {
      const v516 = nestedScenario(mmuFlagPreset("v5.16"), { tdpEnabled });
      v516.vcpu.setCr4(L1_REGS.cr4 | CR4.PCIDE);
      expect(v516.meter.diff({})).toEqual({ MMU_UNLOAD: 1, ROOT_DROP: 1 });
      v516.vcpu.reload();
      v516.vcpu.setCr4(L1_REGS.cr4);
      expect(v516.meter.diff({})).toMatchObject({ MMU_UNLOAD: 2, ROOT_DROP: 2 });
      expect(v516.meter.diff({}).MMU_RESET_CONTEXT).toBeUndefined();
    }

    const old = nestedScenario(mmuFlagPreset("v5.7"));
    old.vcpu.setCr4(L1_REGS.cr4 | CR4.PCIDE);
    expect(old.meter.diff({})).toEqual({});
    old.vcpu.setCr4(L1_REGS.cr4);
    expect(old.meter.diff({})).toMatchObject({ MMU_RESET_CONTEXT: 1, MMU_UNLOAD: 1, ROOT_DROP: 1 });
  });

  it("requests a current-context flush for a PAE change or SMEP 0→1, unless a guest flush is due (v5.18+)", () => {
    const cases: [number, number][] = [
      [L1_REGS.cr4 & ~CR4.SMEP, 0],
      [L1_REGS.cr4, MMU_REQUEST.TLB_FLUSH_CURRENT], // SMEP 0→1 from the line above
      [L1_REGS.cr4 & ~CR4.SMAP, 0],
      [(L1_REGS.cr4 & ~CR4.PAE & ~CR4.SMAP) >>> 0, MMU_REQUEST.TLB_FLUSH_CURRENT],
      [(L1_REGS.cr4 & ~CR4.SMAP & ~CR4.PGE) >>> 0, MMU_REQUEST.TLB_FLUSH_GUEST], // PAE and PGE: guest only
    ];
    const { vcpu } = nestedScenario();
    for (const [cr4, request] of cases) {
      vcpu.requests = 0;
      vcpu.setCr4(cr4);
      expect(describeMmuRequests(vcpu.requests)).toEqual(describeMmuRequests(request));
    }
    const old = nestedScenario(mmuFlagPreset("v5.16"));
    old.vcpu.setCr4(L1_REGS.cr4 & ~CR4.SMEP);
    old.vcpu.setCr4(L1_REGS.cr4);
    expect(old.vcpu.requests).toBe(0);
  });
});

describe("kvm_set_cr0", () => {
  it("forces CR0.ET on and drops reserved bits", () => {
    const { vcpu, meter } = nestedScenario();
    vcpu.setCr0((L1_REGS.cr0 & ~CR0.ET) | (1 << 6) | (1 << 17));
    expect(vcpu.cr0).toBe(L1_REGS.cr0);
    expect(meter.diff({})).toEqual({});
  });

  it("sets EFER.LMA when paging turns on with EFER.LME, clears it when paging turns off (kvm: enter/exit_lmode)", () => {
    const { vcpu } = nestedScenario();
    const pagingOff = (L1_REGS.cr0 & ~CR0.PG) >>> 0;
    vcpu.setCr0(pagingOff);
    expect(vcpu.efer & EFER.LMA).toBe(0);
    expect(vcpu.rootMmu.cpuRoleBase & PAGE_ROLE.LEVEL_MASK).toBe(0);
    vcpu.setCr0(L1_REGS.cr0);
    expect(vcpu.efer).toBe(L1_REGS.efer);
    expect(vcpu.rootMmu.cpuRoleBase & PAGE_ROLE.LEVEL_MASK).toBe(4);
    // Without LME, paging is 32-bit or PAE and LMA stays clear.
    vcpu.setCr0(pagingOff);
    vcpu.setEfer(L1_REGS.efer & ~EFER.LME);
    vcpu.setCr0(L1_REGS.cr0);
    expect(vcpu.efer & EFER.LMA).toBe(0);
    expect(vcpu.rootMmu.cpuRoleBase & PAGE_ROLE.LEVEL_MASK).toBe(3);
  });

  it("requests a guest TLB flush when paging turns off, since v5.18", () => {
    const today = nestedScenario();
    today.vcpu.setCr0(L1_REGS.cr0 & ~CR0.PG);
    expect(today.vcpu.checkRequest(MMU_REQUEST.TLB_FLUSH_GUEST)).toBe(true);
    expect(today.vcpu.checkRequest(MMU_REQUEST.TLB_FLUSH_GUEST)).toBe(false);
    today.vcpu.setCr0(L1_REGS.cr0);
    expect(today.vcpu.requests).toBe(0);
    expect(today.meter.diff({}).TLB_FLUSH_REQUEST).toBe(1);
    const old = nestedScenario(mmuFlagPreset("v5.16"));
    old.vcpu.setCr0(L1_REGS.cr0 & ~CR0.PG);
    expect(old.vcpu.requests).toBe(0);
  });
});

describe("set_efer", () => {
  it("keeps the current EFER.LMA whatever the value written", () => {
    const { vcpu, meter } = nestedScenario();
    vcpu.setEfer(L1_REGS.efer & ~EFER.LMA);
    expect(vcpu.efer).toBe(L1_REGS.efer);
    expect(meter.diff({})).toEqual({});
    const off = nestedScenario();
    off.vcpu.setSregs({ ...L1_REGS, cr0: L1_REGS.cr0 & ~CR0.PG, efer: L1_REGS.efer & ~EFER.LMA });
    off.vcpu.setEfer(L1_REGS.efer);
    expect(off.vcpu.efer & EFER.LMA).toBe(0);
  });

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
  it("a new CR3 switches the PGD (a current-root hit under TDP); any flushing write requests a guest flush", () => {
    const { vcpu, meter } = nestedScenario();
    vcpu.setCr3(L1_REGS.cr3);
    expect(meter.diff({})).toEqual({ TLB_FLUSH_REQUEST: 1 });
    expect(vcpu.checkRequest(MMU_REQUEST.TLB_FLUSH_GUEST)).toBe(true);
    vcpu.setCr3(0x55_0000);
    expect(meter.diff({})).toEqual({ PGD_HIT_CURRENT: 1, TLB_FLUSH_REQUEST: 2 });
    expect(vcpu.cr3).toBe(0x55_0000);
    // NOFLUSH is ignored with CR4.PCIDE = 0.
    vcpu.setCr3(0x56_0000, true);
    expect(meter.diff({}).TLB_FLUSH_REQUEST).toBe(3);
  });

  it("under shadow paging a new CR3 misses, then the old one is found in prev[0] (PCIDE = 0 keeps prev roots)", () => {
    const { vcpu, meter } = nestedScenario(undefined, { tdpEnabled: false });
    vcpu.setCr3(0x55_0000);
    vcpu.reload();
    vcpu.setCr3(L1_REGS.cr3);
    expect(meter.diff({})).toEqual({ PGD_MISS: 1, ROOT_LOAD: 1, PGD_HIT_PREV: 1, TLB_FLUSH_REQUEST: 2 });
    expect(describeMmuRequests(vcpu.requests)).toEqual(["TLB_FLUSH_CURRENT", "MMU_SYNC"]);
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
    const guestRole = vcpu.guestMmu.rootRole;
    vcpu.afterSetCpuid();
    // kvm: root_role.invalid = 1 with the other bits kept (guest_mmu is not re-initialised here).
    expect(vcpu.guestMmu.rootRole).toBe((guestRole | PAGE_ROLE.INVALID) >>> 0);
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

describe("KVM_SET_SREGS with PAE paging (kvm: __set_sregs_common)", () => {
  const PAE_REGS = Object.freeze({
    cr0: GUEST_CR0,
    cr3: 0x10_0000,
    cr4: (CR4.PAE | CR4.PGE) >>> 0,
    efer: EFER.NXE,
  });

  it("resets the MMU and requests a guest flush even when no register changed: the PDPTRs are reloaded", () => {
    for (const tdpEnabled of [true, false]) {
      const { vcpu, meter } = nestedScenario(undefined, { tdpEnabled });
      vcpu.setSregs(PAE_REGS);
      vcpu.reload();
      meter.reset();
      vcpu.requests = 0;
      vcpu.setSregs(PAE_REGS);
      expect(meter.diff({})).toMatchObject({
        MMU_RESET_CONTEXT: 1,
        MMU_UNLOAD: 1,
        ROOT_DROP: 1,
        TLB_FLUSH_REQUEST: 1,
      });
      expect(vcpu.requests).toBe(MMU_REQUEST.TLB_FLUSH_GUEST);
    }
  });

  it("does nothing for unchanged registers outside PAE paging (long mode, 32-bit paging, paging off)", () => {
    const others = [
      L1_REGS,
      { ...PAE_REGS, cr4: CR4.PGE },
      { ...PAE_REGS, cr0: (GUEST_CR0 & ~CR0.PG) >>> 0 },
    ];
    for (const regs of others) {
      const { vcpu, meter } = nestedScenario();
      vcpu.setSregs(regs);
      vcpu.reload();
      meter.reset();
      vcpu.requests = 0;
      vcpu.setSregs(regs);
      expect(meter.diff({})).toEqual({});
      expect(vcpu.requests).toBe(0);
    }
  });
});

describe("kvm_set_cr3 → kvm_invalidate_pcid (shadow paging, CR4.PCIDE = 1)", () => {
  const PCID_REGS = Object.freeze({ ...L1_REGS, cr4: (L1_REGS.cr4 | CR4.PCIDE) >>> 0 });
  const A = L1_REGS.cr3;
  const B = 0x20_0000;

  function pcidScenario() {
    const s = nestedScenario(undefined, { tdpEnabled: false });
    s.vcpu.setSregs(PCID_REGS);
    s.vcpu.reload();
    s.meter.reset();
    s.vcpu.requests = 0;
    return s;
  }

  it("flushing switches A→B→A with PCID 0 free the previous root each time: 2 misses, 2 drops", () => {
    const { vcpu, meter } = pcidScenario();
    vcpu.setCr3(B);
    vcpu.reload();
    vcpu.setCr3(A);
    vcpu.reload();
    expect(meter.diff({})).toEqual({ PGD_MISS: 2, ROOT_LOAD: 2, ROOT_DROP: 2, TLB_FLUSH_REQUEST: 2 });
    expect(describeMmuRequests(vcpu.requests)).toEqual(["TLB_FLUSH_CURRENT", "MMU_SYNC"]);
    expect(vcpu.rootMmu.validRootCount()).toBe(1);
  });

  it("with NOFLUSH (bit 63) the old root stays cached and nothing is requested", () => {
    const { vcpu, meter } = pcidScenario();
    vcpu.setCr3(B, true);
    vcpu.reload();
    vcpu.setCr3(A, true);
    expect(meter.diff({})).toEqual({ PGD_MISS: 1, ROOT_LOAD: 1, PGD_HIT_PREV: 1 });
    expect(vcpu.requests).toBe(0);
  });

  it("frees only the previous roots tagged with the new CR3's PCID", () => {
    const { vcpu, meter } = pcidScenario();
    const C = 0x30_0000;
    const D = 0x40_0000;
    const prevPgds = () =>
      vcpu.rootMmu
        .describeRoots()
        .prev.filter((p) => p.hpa !== INVALID_ROOT)
        .map((p) => p.pgd);
    vcpu.setCr3(B + 2, true);
    vcpu.reload();
    vcpu.setCr3(C + 1, true);
    vcpu.reload();
    expect(prevPgds()).toEqual([B + 2, A]);
    // A flushing switch to A|1 rotates C|1 into prev[0], then frees it (PCID 1); PCIDs 2 and 0 stay.
    vcpu.setCr3(A + 1);
    expect(meter.diff({})).toMatchObject({ PGD_MISS: 3, ROOT_DROP: 1 });
    expect(prevPgds()).toEqual([B + 2, A]);
    vcpu.reload();
    // A flushing switch to D|2: the miss evicts A|0 (the LRU slot), then B|2 goes for its PCID.
    const before = meter.snapshot();
    vcpu.setCr3(D + 2);
    expect(meter.diff(before)).toMatchObject({ PGD_MISS: 1, ROOT_DROP: 2 });
    expect(prevPgds()).toEqual([A + 1]);
  });

  it("matches a slot-level model of kvm_mmu_new_pgd + kvm_invalidate_pcid over random CR3 writes", () => {
    // Slot model: the current root and three previous ones as pgds (null = no root), MRU first.
    interface Model {
      cur: number | null;
      prev: (number | null)[];
      cr3: number;
      drops: number;
    }
    const pcidOf = (v: number) => v & 0xfff;
    function modelSetCr3(m: Model, v: number, noFlush: boolean): void {
      if (v !== m.cr3) {
        if (m.cur !== null) {
          // cached_root_find_and_keep_current: the current root is for the old CR3, so rotate.
          let hand: number | null = m.cur;
          let hit = false;
          for (let i = 0; i < 3 && !hit; i++) {
            const p: number | null = m.prev[i]!;
            m.prev[i] = hand;
            hand = p;
            hit = hand === v;
          }
          if (!hit && hand !== null) m.drops++;
          m.cur = hit ? hand : null;
        } else {
          // cached_root_find_without_current.
          const i = m.prev.indexOf(v);
          if (i >= 0) {
            m.cur = v;
            m.prev.splice(i, 1);
            m.prev.push(null);
          }
        }
      }
      m.cr3 = v;
      if (!noFlush) {
        for (let i = 0; i < 3; i++) {
          const p = m.prev[i]!;
          if (p !== null && pcidOf(p) === pcidOf(v)) {
            m.prev[i] = null;
            m.drops++;
          }
        }
      }
    }
    const cr3Arb = fc
      .tuple(fc.constantFrom(0x10_0000, 0x20_0000, 0x30_0000, 0x40_0000, 0x50_0000), fc.nat(2))
      .map(([base, pcid]) => base + pcid);
    const opArb = fc.oneof(
      fc.record({ kind: fc.constant("cr3" as const), value: cr3Arb, noFlush: fc.boolean() }),
      fc.record({ kind: fc.constant("reload" as const) }),
    );
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 40 }), (ops) => {
        const { vcpu, meter } = pcidScenario();
        const m: Model = { cur: A, prev: [null, null, null], cr3: A, drops: 0 };
        for (const op of ops) {
          if (op.kind === "reload") {
            vcpu.reload();
            if (m.cur === null) m.cur = m.cr3;
          } else {
            vcpu.setCr3(op.value, op.noFlush);
            modelSetCr3(m, op.value, op.noFlush);
          }
          const roots = vcpu.rootMmu.describeRoots();
          const pgdOrNull = (s: { pgd: number; hpa: number }) => (s.hpa === INVALID_ROOT ? null : s.pgd);
          expect([pgdOrNull(roots.current), ...roots.prev.map(pgdOrNull)]).toEqual([m.cur, ...m.prev]);
          expect(meter.diff({}).ROOT_DROP ?? 0).toBe(m.drops);
        }
      }),
    );
  });
});
