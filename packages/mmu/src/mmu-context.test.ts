import { describe, expect, it } from "vitest";
import {
  INVALID_PGD,
  KVM_MMU_NUM_PREV_ROOTS,
  KVM_MMU_ROOT,
  kvmMmuRootPrevious,
  MMU_CONTEXT_KIND,
  MMU_FLAVOUR,
  MmuContext,
} from "./mmu-context";
import { PAGE_ROLE } from "./page-role";
import { INVALID_ROOT } from "./root-backend";

describe("struct kvm_mmu", () => {
  it("starts like __kvm_mmu_create: no current root (pgd 0), every prev slot KVM_MMU_ROOT_INFO_INVALID", () => {
    const ctx = new MmuContext(MMU_CONTEXT_KIND.GUEST_MMU);
    expect(ctx.kind).toBe("guest_mmu");
    expect(ctx.flavour).toBe(MMU_FLAVOUR.NONE);
    expect(ctx.hasRoot).toBe(false);
    expect(ctx.describeRoots()).toEqual({
      current: { pgd: 0, hpa: INVALID_ROOT },
      prev: Array.from({ length: KVM_MMU_NUM_PREV_ROOTS }, () => ({ pgd: INVALID_PGD, hpa: INVALID_ROOT })),
    });
    expect(ctx.permissions).toHaveLength(16);
    expect(ctx.validRootCount()).toBe(0);
  });

  it("has KVM's root masks: CURRENT = 1, PREVIOUS(i) = 2 << i, ALL = 0xf", () => {
    expect(KVM_MMU_ROOT.CURRENT).toBe(1);
    expect([0, 1, 2].map(kvmMmuRootPrevious)).toEqual([2, 4, 8]);
    expect(KVM_MMU_ROOT.ALL).toBe(KVM_MMU_ROOT.CURRENT | 2 | 4 | 8);
  });

  it("invalidateRoles sets root_role.invalid and clears ext.valid, keeping the rest (kvm_mmu_after_set_cpuid)", () => {
    const ctx = new MmuContext(MMU_CONTEXT_KIND.ROOT_MMU);
    ctx.cpuRoleBase = 0x3704;
    ctx.cpuRoleExt = 0xb9;
    ctx.rootRole = 0x3784;
    ctx.invalidateRoles();
    expect([ctx.cpuRoleBase, ctx.cpuRoleExt, ctx.rootRole]).toEqual([
      0x3704,
      0xb8,
      0x3784 | PAGE_ROLE.INVALID,
    ]);
    ctx.invalidateRoles(); // idempotent (guest_mmu is root_mmu with the split off)
    expect(ctx.rootRole).toBe(0x3784 | PAGE_ROLE.INVALID);
  });

  it("counts valid slots and keeps per-context stats", () => {
    const ctx = new MmuContext(MMU_CONTEXT_KIND.ROOT_MMU);
    ctx.rootHpa = 0x1000;
    ctx.prevHpa[2] = 0x2000;
    expect(ctx.validRootCount()).toBe(2);
    ctx.stats.hitCurrent = 2;
    ctx.stats.hitPrev[1] = 3;
    expect(ctx.stats.hits).toBe(5);
    expect(ctx.stats.snapshot()).toMatchObject({ hitPrev: [0, 3, 0], hits: 5 });
    ctx.stats.reset();
    expect(ctx.stats.snapshot().hits).toBe(0);
  });

  it("sums hits over every slot of a cache of any size", () => {
    for (const size of [1, 2, 3, 8, 16]) {
      const ctx = new MmuContext(MMU_CONTEXT_KIND.ROOT_MMU, size);
      ctx.stats.hitCurrent = 1;
      ctx.stats.hitPrev[size - 1] = 4;
      expect(ctx.stats.hits).toBe(5);
      expect(ctx.stats.snapshot().hitPrev).toHaveLength(size);
    }
  });
});
