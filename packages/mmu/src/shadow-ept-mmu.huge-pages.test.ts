import {
  createEptContext,
  EPT_ACCESS,
  EPT_VIOLATION,
  MODERN_EPT_CAPABILITIES,
  PAGE_SIZE,
} from "@nestvisor/x86-arch";
import { describe, expect, it } from "vitest";
import { maxMappingLevel } from "./huge-page-level";
import { SHADOW_FAULT } from "./shadow-fault";
import { GuestEptBuilder } from "./testing/guest-ept-builder";
import { nestedEptFixture } from "./testing/nested-ept-fixture";
import { auditShadowEpt } from "./testing/shadow-audit";

const MIB2 = 0x20_0000;
/** An L2 2-MiB region and the L1 2-MiB region its EPT12 leaf maps (no EPT12 table lives there). */
const L2_REGION = 0x20_0000;
const L1_REGION = 0x60_0000;

function setup(hugePages: boolean) {
  const f = nestedEptFixture({ hugePages, l1Pages: 0x1000, tablePages: 256 });
  f.builder.map(L2_REGION, L1_REGION, { leafLevel: 2 });
  return { f };
}

describe("shadow EPT over a host that backs L1 with 2-MiB pages (kvm: kvm_mmu_hugepage_adjust in FNAME(fetch))", () => {
  it("maps an EPT12 2-MiB leaf with one EPT02 2-MiB leaf: one fault for the whole range", () => {
    const { f } = setup(true);
    expect(f.l2Access(L2_REGION + 0x1234, EPT_ACCESS.READ).faults).toBe(1);
    for (const offset of [0, 0x8_0000, MIB2 - PAGE_SIZE]) {
      const r = f.l2Access(L2_REGION + offset, EPT_ACCESS.WRITE);
      expect(r.faults).toBe(0);
      expect(r.hpa).toBe(f.l1Host + L1_REGION + offset);
    }
    expect(auditShadowEpt(f.shadow, f.state.root, f.ctx12).problems).toEqual([]);
  });

  it("with 4-KiB host pages, shadows the same leaf with direct 4-KiB leaves: a fault per page", () => {
    const { f } = setup(false);
    expect(f.l2Access(L2_REGION, EPT_ACCESS.READ).faults).toBe(1);
    expect(f.l2Access(L2_REGION + PAGE_SIZE, EPT_ACCESS.READ).faults).toBe(1);
    expect(auditShadowEpt(f.shadow, f.state.root, f.ctx12).problems).toEqual([]);
  });

  it("maps 4-KiB leaves where the L1 range holds a shadowed gfn (kvm_mmu_gfn_disallow_lpage)", () => {
    const { f } = setup(true);
    // The EPT12 tables sit in L1's range at ept12Base: a region mapped onto it is not huge-mappable.
    const tables = f.ept12Base - (f.ept12Base % MIB2);
    f.builder.map(0x40_0000, tables, { leafLevel: 2 });
    expect(f.l2Access(0x40_0000, EPT_ACCESS.READ).faults).toBe(1);
    expect(maxMappingLevel(f.memslots, f.store, 0, tables / PAGE_SIZE)).toBe(1);
    expect(f.l2Access(0x40_0000 + PAGE_SIZE, EPT_ACCESS.READ).faults).toBe(1);
    expect(auditShadowEpt(f.shadow, f.state.root, f.ctx12).problems).toEqual([]);
  });

  it("write-protects a 2-MiB leaf whose range gains a shadowed gfn, and drops it for 4-KiB leaves on the next write", () => {
    const { f } = setup(true);
    expect(f.l2Access(L2_REGION, EPT_ACCESS.WRITE).faults).toBe(1);
    // A second EPT12 tree whose tables L1 keeps inside L1_REGION: shadowing it (another EPTP) puts
    // shadowed gfns in the range of the 2-MiB leaf (account_shadowed → rmap_write_protect).
    const other = new GuestEptBuilder(f.shadow.guestMemory, L1_REGION + 0x10_0000, 4);
    other.map(0, 0x70_0000);
    const otherCtx = createEptContext(
      { eptpLo: other.eptp(false).lo, eptpHi: other.eptp(false).hi },
      MODERN_EPT_CAPABILITIES,
      46,
    );
    const otherRoot = f.backend.allocShadowRoot(f.role, other.eptp(false).value);
    const readFault = EPT_VIOLATION.READ | EPT_VIOLATION.GLA_VALID | EPT_VIOLATION.FINAL_TRANSLATION;
    expect(f.ept.fault(otherRoot, otherCtx, 0, readFault).outcome).toBe(SHADOW_FAULT.FIXED);
    expect(maxMappingLevel(f.memslots, f.store, 0, L1_REGION / PAGE_SIZE)).toBe(1);
    // Reads still go through the (now read-only) 2-MiB leaf; a write faults and gets a 4-KiB leaf.
    expect(f.l2Access(L2_REGION + PAGE_SIZE, EPT_ACCESS.READ).faults).toBe(0);
    expect(f.l2Access(L2_REGION + PAGE_SIZE, EPT_ACCESS.WRITE).faults).toBe(1);
    expect(f.l2Access(L2_REGION + 2 * PAGE_SIZE, EPT_ACCESS.READ).faults).toBe(1);
    expect(auditShadowEpt(f.shadow, f.state.root, f.ctx12).problems).toEqual([]);
    f.backend.putRoot(otherRoot);
  });

  it("the audit checks every 4-KiB page of a 2-MiB leaf: a writable leaf over a tracked gfn of its range is reported", () => {
    const { f } = setup(true);
    expect(f.l2Access(L2_REGION, EPT_ACCESS.WRITE).faults).toBe(1);
    expect(auditShadowEpt(f.shadow, f.state.root, f.ctx12).problems).toEqual([]);
    // Track a gfn in the middle of the range behind the MMU's back (no write protection).
    f.store.trackGfn(L1_REGION / PAGE_SIZE + 7);
    expect(auditShadowEpt(f.shadow, f.state.root, f.ctx12).problems).toEqual([
      `L2 GPA 0x${(L2_REGION + 7 * PAGE_SIZE).toString(16)}: EPT02 writable over a write-protected (shadowed, sync) table`,
    ]);
  });
});
