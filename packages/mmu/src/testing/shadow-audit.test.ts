import { EPT_ACCESS, EPTE_LO, PTE_LO } from "@nestvisor/x86-arch";
import { describe, expect, it } from "vitest";
import { X86_SPTE_LO } from "../shadow-spte";
import { nestedEptFixture } from "./nested-ept-fixture";
import { auditShadowEpt, auditShadowPaging, shadowLeaves } from "./shadow-audit";
import { shadowPagingFixture } from "./shadow-paging-fixture";

describe("shadow audits (test oracles)", () => {
  it("catch an EPT02 leaf that no longer matches EPT12 or grants too much", () => {
    const f = nestedEptFixture();
    f.builder.map(0x1000, 0x40_0000);
    f.builder.map(0x2000, 0x41_0000);
    f.l2Access(0x1000, EPT_ACCESS.READ);
    f.l2Access(0x2000, EPT_ACCESS.READ);
    expect(auditShadowEpt(f.shadow, f.state.root, f.ctx12)).toEqual({ leaves: 2, problems: [] });
    // L1 changes EPT12 behind L0's back (no tracked write): the leaves are now wrong.
    f.shadow.guestMemory.write64(f.builder.entryAddress(0x1000, 1), 0, 0);
    f.shadow.guestMemory.write64(
      f.builder.entryAddress(0x2000, 1),
      (0x42_0000 | EPTE_LO.READ | (6 << 3)) >>> 0,
      0,
    );
    const { problems } = auditShadowEpt(f.shadow, f.state.root, f.ctx12);
    expect(problems).toHaveLength(4);
    expect(problems[0]).toMatch(/stale leaf/);
    expect(problems[1]).toMatch(/EPT02 gives/);
    expect(problems[2]).toMatch(/R\/X/);
    expect(problems[3]).toMatch(/writable, EPT12 is not/);
  });

  it("catch a shadow-paging leaf writable over a shadowed table or a clean page", () => {
    const f = shadowPagingFixture("level4");
    f.builder.map(0x40_0000, 0x10_0000);
    f.guestAccess(0x40_0000, 0, 4);
    const [leaf] = shadowLeaves(f.shadow, f.state.root);
    expect(leaf).toBeDefined();
    expect(auditShadowPaging(f.shadow, f.state.root, f.regs()).problems).toEqual([]);
    const pte = f.builder.entryAddress(0x40_0000, 1);
    const at = (() => {
      // The SPTE of the leaf: find it through the tables.
      let table = f.state.root;
      for (let level = 4; level > 1; level--) {
        const e = table + (Math.floor(0x40_0000 / 2 ** (12 + 9 * (level - 1))) % 512) * 8;
        table = (f.memory.read32(e) & 0xfffff000) >>> 0;
      }
      return table + (Math.floor(0x40_0000 / 4096) % 512) * 8;
    })();
    f.memory.write32(at, (f.memory.read32(at) | X86_SPTE_LO.WRITABLE) >>> 0);
    expect(auditShadowPaging(f.shadow, f.state.root, f.regs()).problems).toEqual([
      "GVA 0x400000: SPTE writable while the guest leaf is clean",
    ]);
    f.shadow.guestMemory.write32(pte, (f.shadow.guestMemory.read32(pte) | PTE_LO.DIRTY) >>> 0);
    expect(auditShadowPaging(f.shadow, f.state.root, f.regs()).problems).toEqual([]);
    f.shadow.store.trackGfn(0x100);
    expect(auditShadowPaging(f.shadow, f.state.root, f.regs()).problems).toEqual([
      "GVA 0x400000: SPTE writable over a write-protected (shadowed, sync) table",
    ]);
  });
});
