import { describe, expect, it } from "vitest";
import {
  ENTRY_CHECK_CATEGORY,
  ENTRY_CHECK_RULES,
  ENTRY_CHECK_STAGE,
  type EntryCheckCategory,
  type EntryCheckStage,
  entryCheckRule,
} from "./entry-check-rules";
import { ENTRY_FAIL } from "./exit-qualification";

const STAGE_ORDER: readonly EntryCheckStage[] = Object.values(ENTRY_CHECK_STAGE);

/** Categories each stage may produce. */
const STAGE_CATEGORIES: Readonly<Record<EntryCheckStage, readonly EntryCheckCategory[]>> = {
  [ENTRY_CHECK_STAGE.CONTROLS]: [ENTRY_CHECK_CATEGORY.CONTROLS],
  [ENTRY_CHECK_STAGE.ADDRESS_SPACE_SIZE]: [ENTRY_CHECK_CATEGORY.ADDRESS_SPACE_SIZE],
  [ENTRY_CHECK_STAGE.HOST_STATE]: [ENTRY_CHECK_CATEGORY.HOST_STATE],
  [ENTRY_CHECK_STAGE.GUEST_STATE]: [ENTRY_CHECK_CATEGORY.GUEST_STATE],
  [ENTRY_CHECK_STAGE.PREPARE_VMCS02]: [ENTRY_CHECK_CATEGORY.GUEST_STATE],
  [ENTRY_CHECK_STAGE.LOAD_MSRS]: [ENTRY_CHECK_CATEGORY.MSR_LOAD],
  [ENTRY_CHECK_STAGE.HARDWARE]: [ENTRY_CHECK_CATEGORY.CONTROLS, ENTRY_CHECK_CATEGORY.GUEST_STATE],
};

describe("ENTRY_CHECK_RULES", () => {
  it("has unique, stable kebab-case dotted ids", () => {
    const ids = ENTRY_CHECK_RULES.map((r) => r.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) expect(id).toMatch(/^[a-z0-9]+(-[a-z0-9]+)*(\.[a-z0-9]+(-[a-z0-9]+)*)+$/);
  });

  it("names a KVM function (or the hardware path) and an SDM 27.x section with its 26.x twin", () => {
    for (const rule of ENTRY_CHECK_RULES) {
      expect(rule.kvm.length).toBeGreaterThan(0);
      expect(rule.sdm).toMatch(/^SDM 27\.[234](\.\d+)* \(26\.[234](\.\d+)*\)$/);
      expect(rule.description.length).toBeGreaterThan(10);
      expect(rule.description).not.toContain("\n");
    }
  });

  it("is in KVM's order: stages never go backwards, and every stage has rules", () => {
    const positions = ENTRY_CHECK_RULES.map((r) => STAGE_ORDER.indexOf(r.stage));
    for (let i = 1; i < positions.length; i++)
      expect(positions[i]!).toBeGreaterThanOrEqual(positions[i - 1]!);
    for (const stage of STAGE_ORDER) expect(ENTRY_CHECK_RULES.some((r) => r.stage === stage)).toBe(true);
  });

  it("pairs each stage with the categories it can produce; late VM-Fails come before hardware guest checks", () => {
    for (const rule of ENTRY_CHECK_RULES) expect(STAGE_CATEGORIES[rule.stage]).toContain(rule.category);
    const hardware = ENTRY_CHECK_RULES.filter((r) => r.stage === ENTRY_CHECK_STAGE.HARDWARE);
    const firstGuest = hardware.findIndex((r) => r.category === ENTRY_CHECK_CATEGORY.GUEST_STATE);
    expect(hardware.slice(firstGuest).every((r) => r.category === ENTRY_CHECK_CATEGORY.GUEST_STATE)).toBe(
      true,
    );
  });

  it("gives a non-zero qualification only to PDPTE (2) and VMCS-link-pointer (4) guest-state rules", () => {
    for (const rule of ENTRY_CHECK_RULES) {
      if (rule.category !== ENTRY_CHECK_CATEGORY.GUEST_STATE) expect(rule.qualification).toBe(0);
      else if (rule.id.startsWith("guest.pdptes."))
        expect(rule.qualification).toBe(ENTRY_FAIL.ENTRY_FAIL_PDPTE);
      else if (rule.id.startsWith("guest.vmcs-link."))
        expect(rule.qualification).toBe(ENTRY_FAIL.ENTRY_FAIL_VMCS_LINK_PTR);
      else expect(rule.qualification).toBe(ENTRY_FAIL.ENTRY_FAIL_DEFAULT);
    }
  });

  it("has one MSR-load rule, last of KVM's software checks", () => {
    const msr = ENTRY_CHECK_RULES.filter((r) => r.category === ENTRY_CHECK_CATEGORY.MSR_LOAD);
    expect(msr.map((r) => r.id)).toEqual(["msr-load.entries"]);
    const index = ENTRY_CHECK_RULES.indexOf(msr[0]!);
    expect(ENTRY_CHECK_RULES.slice(index + 1).every((r) => r.stage === ENTRY_CHECK_STAGE.HARDWARE)).toBe(
      true,
    );
  });

  it("follows reference §9: controls C1–C23 first, then A1, then host H1–H11", () => {
    const ids = ENTRY_CHECK_RULES.map((r) => r.id);
    expect(ids.slice(0, 3)).toEqual([
      "controls.pin.reserved",
      "controls.proc.reserved",
      "controls.proc2.reserved",
    ]);
    expect(ids.indexOf("controls.exit.reserved")).toBeGreaterThan(
      ids.indexOf("controls.vmfunc.eptp-list-address"),
    );
    expect(ids.indexOf("controls.entry.reserved")).toBeGreaterThan(
      ids.indexOf("controls.exit.msr-store-list"),
    );
    expect(ids.indexOf("address-space.host-size-matches-lma")).toBe(
      ids.indexOf("controls.entry.msr-load-list") + 1,
    );
    expect(ids.indexOf("host.cr0.fixed")).toBe(ids.indexOf("address-space.host-size-matches-lma") + 1);
    expect(ids.indexOf("guest.cr0.fixed")).toBe(ids.indexOf("host.efer.long-mode") + 1);
  });

  it("looks rules up by id", () => {
    expect(entryCheckRule("controls.vpid.nonzero")?.kvm).toBe("nested_check_vm_execution_controls");
    expect(entryCheckRule("no.such-rule")).toBeUndefined();
  });
});
