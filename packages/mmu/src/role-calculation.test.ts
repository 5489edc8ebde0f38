import { CR0, CR4, EFER, encodeEptPointer } from "@nestvisor/x86-arch";
import { describe, expect, it } from "vitest";
import { cpuRoleBase } from "./cpu-role";
import { PAGE_ROLE } from "./page-role";
import {
  calcRootPageRole,
  eptpAccessedDirty,
  eptpWalkLevel,
  shadowEptRoleBase,
  shadowEptRoleExt,
  shadowNptRootRole,
  shadowRootRole,
  tdpRootLevel,
  tdpRootRole,
} from "./role-calculation";

const hex = (w: number) => `0x${(w >>> 0).toString(16).padStart(8, "0")}`;
const PG_WP = CR0.PG | CR0.WP | CR0.PE;
const L1_CR4 = CR4.PAE | CR4.SMEP | CR4.SMAP | CR4.PKE;
const L1_EFER = EFER.LME | EFER.LMA | EFER.NXE;

describe("root roles of the worked examples (kvm-mmu.md §2.9)", () => {
  const l1 = cpuRoleBase(PG_WP, L1_CR4, L1_EFER, false, false);
  const l1NoWp = cpuRoleBase(CR0.PG | CR0.PE, L1_CR4, L1_EFER, false, false);
  const l2 = cpuRoleBase(PG_WP, L1_CR4, L1_EFER, false, true);
  const pagingOff = cpuRoleBase(CR0.PE, L1_CR4, L1_EFER, false, false);

  it("TDP (4-level, A/D on): 0x00003784, unchanged by CR0.WP and by paging off; 0x00023784 in L2", () => {
    expect(hex(tdpRootRole(l1, 4, true))).toBe("0x00003784");
    expect(hex(tdpRootRole(l1NoWp, 4, true))).toBe("0x00003784");
    expect(hex(tdpRootRole(pagingOff, 4, true))).toBe("0x00003784");
    expect(hex(tdpRootRole(l2, 4, true))).toBe("0x00023784");
  });

  it("TDP with host A/D off sets ad_disabled; SMM is copied", () => {
    expect(tdpRootRole(l1, 4, false) & PAGE_ROLE.AD_DISABLED).toBe(PAGE_ROLE.AD_DISABLED);
    const smm = cpuRoleBase(PG_WP, L1_CR4, L1_EFER, true, false);
    expect(hex(tdpRootRole(smm, 4, true))).toBe("0x01003784");
  });

  it("shadow paging: 0x00003704, 0x0000d704 with WP=0, 0x00001783 with paging off", () => {
    expect(hex(shadowRootRole(l1))).toBe("0x00003704");
    expect(hex(shadowRootRole(l1NoWp))).toBe("0x0000d704");
    expect(hex(shadowRootRole(pagingOff))).toBe("0x00001783");
  });

  it("shadow paging of 32-bit (PSE, NX=0) and PAE guests: 0x00003713 and 0x00003703", () => {
    expect(hex(shadowRootRole(cpuRoleBase(PG_WP, CR4.PSE, 0, false, false)))).toBe("0x00003713");
    expect(hex(shadowRootRole(cpuRoleBase(PG_WP, CR4.PAE, EFER.NXE, false, false)))).toBe("0x00003703");
  });

  it("shadow EPT: 0x00000001_00020704 (A/D on), 0x00000003_00030704 (A/D off, exec-only)", () => {
    expect(hex(shadowEptRoleBase(4, true))).toBe("0x00020704");
    expect(shadowEptRoleExt(false)).toBe(1);
    expect(hex(shadowEptRoleBase(4, false))).toBe("0x00030704");
    expect(shadowEptRoleExt(true)).toBe(3);
  });
});

describe("kvm_mmu_get_tdp_level", () => {
  it("uses 5-level TDP only when the guest needs more than 48 address bits", () => {
    expect(tdpRootLevel(5, 0, 46)).toBe(4);
    expect(tdpRootLevel(5, 0, 48)).toBe(4);
    expect(tdpRootLevel(5, 0, 52)).toBe(5);
    expect(tdpRootLevel(4, 0, 52)).toBe(4);
    expect(tdpRootLevel(5, 4, 52)).toBe(4); // a vendor-forced level wins
  });
});

describe("EPTP decoding for the shadow-EPT role", () => {
  it("reads the walk length (4 unless bits 5:3 say 5) and the A/D bit", () => {
    const e4 = encodeEptPointer({
      memoryType: 6,
      walkLength: 4,
      accessedDirty: true,
      supervisorShadowStack: false,
      root: 0x5000,
    });
    const e5 = encodeEptPointer({
      memoryType: 6,
      walkLength: 5,
      accessedDirty: false,
      supervisorShadowStack: false,
      root: 0x5000,
    });
    expect(eptpWalkLevel(e4.lo)).toBe(4);
    expect(eptpAccessedDirty(e4.lo)).toBe(true);
    expect(eptpWalkLevel(e5.lo)).toBe(5);
    expect(eptpAccessedDirty(e5.lo)).toBe(false);
  });
});

describe("shadow NPT root role (SVM, kvm: kvm_init_shadow_npt_mmu)", () => {
  it("takes the TDP level and sets passthrough for 5-level NPT over a 4-level L1 NPT", () => {
    const l1Npt = cpuRoleBase(PG_WP, CR4.PAE, EFER.LME | EFER.LMA | EFER.NXE, false, true);
    expect(shadowNptRootRole(l1Npt, 4) & PAGE_ROLE.PASSTHROUGH).toBe(0);
    const r5 = shadowNptRootRole(l1Npt, 5);
    expect(r5 & PAGE_ROLE.LEVEL_MASK).toBe(5);
    expect(r5 & PAGE_ROLE.PASSTHROUGH).toBe(PAGE_ROLE.PASSTHROUGH);
  });
});

describe("kvm_mmu_calc_root_page_role (pre-v5.18)", () => {
  it("is the TDP root role under TDP and the shadow root role otherwise", () => {
    const l1 = cpuRoleBase(PG_WP, L1_CR4, L1_EFER, false, false);
    expect(calcRootPageRole(true, l1, 4, true)).toBe(tdpRootRole(l1, 4, true));
    expect(calcRootPageRole(false, l1, 4, true)).toBe(shadowRootRole(l1));
  });
});
