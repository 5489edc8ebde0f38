import { AD_UPDATE } from "@nestvisor/x86-arch";
import { describe, expect, it } from "vitest";
import {
  ACCESS_KINDS,
  accessCaseSpace,
  cpuStateOf,
  describeCase,
  EC,
  Expected,
  entriesFor,
  expectAccess,
  ACCESS_FLAG as F,
  forEachCase,
  isLegalCase,
  newEntries,
  sliceSize,
} from "./access-cases";

describe("the access.c case space", () => {
  it("has 885 legal constrained combinations and 57,999,360 cases, and no PKU flags in the shadow-paging space", () => {
    const all = accessCaseSpace(true);
    expect(all.constrained.length).toBe(885);
    expect(all.free.length).toBe(2 ** 16);
    expect(all.total).toBe(57_999_360);
    const noPku = accessCaseSpace(false);
    expect(noPku.free.length).toBe(2 ** 15);
    expect(noPku.total).toBe(noPku.constrained.length * 2 ** 15);
    for (const c of noPku.constrained) expect(c & (F.PKU_AD | F.PKU_WD | F.CPU_CR4_PKE)).toBe(0);
  });

  it("applies the legality rules", () => {
    expect(isLegalCase(F.ACCESS_WRITE | F.ACCESS_FETCH)).toBe(false);
    expect(isLegalCase(F.PKU_AD)).toBe(false);
    expect(isLegalCase(F.PKU_AD | F.CPU_CR4_PKE)).toBe(true);
    expect(isLegalCase(F.PDE_BIT13)).toBe(false);
    expect(isLegalCase(F.PDE_BIT13 | F.PDE_PSE)).toBe(true);
    expect(isLegalCase(F.PTE_BIT51 | F.PDE_BIT36)).toBe(false);
    expect(isLegalCase(F.PTE_NX | F.PDE_NX)).toBe(false);
    expect(isLegalCase(F.PTE_NX | F.PDE_NX | F.CPU_EFER_NX)).toBe(true);
  });

  it("slices partition the space: their sizes add up and forEachCase visits exactly that many", () => {
    const space = accessCaseSpace(true);
    let sum = 0;
    for (let s = 0; s < 4096; s++) sum += sliceSize(space, 4096, s);
    expect(sum).toBe(space.total);
    for (const s of [0, 7, 4095]) {
      const seen = new Set<number>();
      const n = forEachCase(space, 4096, s, (flags) => seen.add(flags));
      expect(n).toBe(sliceSize(space, 4096, s));
      expect(seen.size).toBe(n);
    }
  });

  it("describes a case by its flags", () => {
    expect(describeCase(F.PTE_PRESENT | F.ACCESS_USER)).toBe("pte_present access_user");
    expect(describeCase(0)).toBe("(no flags)");
  });
});

describe("the expected outcome (SDM 4.5–4.8)", () => {
  const run = (
    flags: number,
    kind = 0,
    policy: (typeof AD_UPDATE)[keyof typeof AD_UPDATE] = AD_UPDATE.HARDWARE,
  ) => {
    const e = newEntries();
    entriesFor(flags, e);
    const out = new Expected();
    expectAccess(e, cpuStateOf(flags), ACCESS_KINDS[kind]!, policy, out);
    return { out, e };
  };
  const present = F.PDE_PRESENT | F.PTE_PRESENT | F.PDE_WRITABLE | F.PDE_USER | F.PTE_USER;

  it("a not-present PTE faults with the access bits only; upper A bits are set by hardware, not by KVM's policy", () => {
    const hw = run(F.PDE_PRESENT, 0);
    expect(hw.out).toMatchObject({ fault: true, errorCode: 0 });
    expect(hw.e[4]! & 0x20).toBe(0x20);
    const kvm = run(F.PDE_PRESENT, 0, AD_UPDATE.AFTER_SUCCESS);
    expect(kvm.e[4]! & 0x20).toBe(0);
  });

  it("a supervisor write to a read-only page faults with CR0.WP, passes without", () => {
    expect(run(present | F.CPU_CR0_WP, 2).out).toMatchObject({ fault: true, errorCode: EC.P | EC.W });
    expect(run(present, 2).out.fault).toBe(false);
  });

  it("a reserved bit faults with RSVD; a user fetch of an NX page with I/D; SMEP stops a supervisor fetch of a user page", () => {
    expect(run(present | F.PTE_BIT51, 1).out.errorCode).toBe(EC.P | EC.RSVD | EC.U);
    expect(run(present | F.PTE_NX | F.CPU_EFER_NX, 5).out.errorCode).toBe(EC.P | EC.U | EC.I);
    expect(run(present | F.CPU_CR4_SMEP, 4).out.errorCode).toBe(EC.P | EC.I);
  });

  it("a write sets A and D on the leaf", () => {
    const { out, e } = run(present | F.PTE_WRITABLE, 2);
    expect(out.fault).toBe(false);
    expect(e[6]! & 0x60).toBe(0x60);
  });
});
