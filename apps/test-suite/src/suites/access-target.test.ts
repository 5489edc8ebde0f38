import { ACCESS_CASE_LAYOUT, AD_UPDATE, ACCESS_CASE_FLAG as F } from "@nestvisor/x86-arch";
import { describe, expect, it } from "vitest";
import { DEFAULT_PARTS } from "../model-parts";
import { AccessCaseRunner } from "./access-target";
import { ShadowPagingAccessTarget } from "./shadow-paging-access-target";
import { shadowEptStage2, TwoDimensionalAccessTarget, tdpStage2 } from "./two-dimensional-access-target";
import { WalkerAccessTarget } from "./walker-access-target";

const LA = { lo: ACCESS_CASE_LAYOUT.LA_LO, hi: ACCESS_CASE_LAYOUT.LA_HI };
const OK_CASE =
  F.PDE_PRESENT |
  F.PDE_WRITABLE |
  F.PTE_PRESENT |
  F.PTE_WRITABLE |
  F.ACCESS_WRITE |
  F.CPU_EFER_NX |
  F.CPU_CR0_WP;
const FAULT_CASE = F.PDE_PRESENT | F.PTE_PRESENT | F.ACCESS_WRITE | F.ACCESS_USER | F.CPU_CR0_WP;

describe("access targets", () => {
  it("each target agrees with the expected outcome on an allowed write and a user fault", () => {
    const targets = [
      new WalkerAccessTarget(DEFAULT_PARTS, AD_UPDATE.HARDWARE, 4, LA),
      new WalkerAccessTarget(DEFAULT_PARTS, AD_UPDATE.HARDWARE, 5, LA),
      new ShadowPagingAccessTarget(DEFAULT_PARTS),
      new TwoDimensionalAccessTarget(tdpStage2(DEFAULT_PARTS)),
      new TwoDimensionalAccessTarget(shadowEptStage2(DEFAULT_PARTS, true)),
    ];
    for (const t of targets) {
      const r = new AccessCaseRunner(t);
      expect(r.runCase(OK_CASE)).toBeNull();
      expect(r.runCase(FAULT_CASE)).toBeNull();
      expect(r.runCase(OK_CASE | F.ACCESS_TWICE)).toBeNull();
    }
  });

  it("the hypervisor targets really take faults (shadow #PFs, EPT violations) and fix them", () => {
    const shadow = new ShadowPagingAccessTarget(DEFAULT_PARTS);
    new AccessCaseRunner(shadow).runCase(OK_CASE);
    expect(shadow.faults).toBeGreaterThan(0);
    const nested = new TwoDimensionalAccessTarget(shadowEptStage2(DEFAULT_PARTS, true));
    new AccessCaseRunner(nested).runCase(OK_CASE);
    expect(nested.faults).toBeGreaterThan(0);
  });

  it("reports a difference in the A/D flags as one", () => {
    const t = new WalkerAccessTarget(DEFAULT_PARTS, AD_UPDATE.NONE, 4, LA);
    // The expected outcome assumes NONE too; tell the runner it should have been HARDWARE.
    const r = new AccessCaseRunner({
      ...t,
      policy: AD_UPDATE.HARDWARE,
      store: (e) => t.store(e),
      load: (e) => t.load(e),
      access: (c, a) => t.access(c, a),
      get pa() {
        return t.pa;
      },
      get errorCode() {
        return t.errorCode;
      },
      problem: null,
    });
    expect(r.runCase(OK_CASE)).toMatch(/the PML4E is .*, expected .* \(accessed\/dirty flags, SDM 4\.8\)/);
  });
});
