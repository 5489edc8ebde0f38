import {
  AD_UPDATE,
  CR0,
  CR4,
  createPagingContext,
  DenseMemory,
  EFER,
  MODERN_CPU,
  PageWalker,
} from "@nestvisor/x86-arch";
import { describe, expect, it } from "vitest";
import { GuestPageTableBuilder } from "./guest-page-table-builder";

const REGS = {
  level4: { cr0: CR0.PE | CR0.PG, cr4: CR4.PAE, efer: EFER.LME | EFER.LMA | EFER.NXE },
  pae: { cr0: CR0.PE | CR0.PG, cr4: CR4.PAE, efer: EFER.NXE },
  bit32: { cr0: CR0.PE | CR0.PG, cr4: CR4.PSE, efer: 0 },
} as const;

describe("GuestPageTableBuilder (test helper)", () => {
  for (const mode of ["level4", "pae", "bit32"] as const) {
    it(`builds ${mode} tables x86-arch's PageWalker translates`, () => {
      const memory = new DenseMemory(0x80_0000);
      const builder = new GuestPageTableBuilder(memory, 0x10_0000, mode);
      builder.map(0xc000_1000, 0x20_0000);
      builder.map(0x40_0000, 0x40_0000, { leafLevel: 2 });
      const ctx = createPagingContext(
        mode === "pae"
          ? { ...REGS[mode], cr3: builder.cr3, pdptes: builder.pdptes() }
          : { ...REGS[mode], cr3: builder.cr3 },
        MODERN_CPU,
      );
      const walker = new PageWalker(memory, { adUpdate: AD_UPDATE.NONE });
      expect(walker.walk(ctx, 0xc000_1234, 0, 0)).toBe(true);
      expect(walker.result.pa).toBe(0x20_0234);
      expect(walker.walk(ctx, 0x40_5678, 0, 0)).toBe(true);
      expect(walker.result.pa).toBe(0x40_5678);
      expect(walker.result.pageSize).toBe(mode === "bit32" ? 0x40_0000 : 0x20_0000);
      expect(builder.entryAddress(0x40_0000, 1)).toBe(-1);
      expect(builder.entryAddress(0xc000_1000, 1)).toBeGreaterThan(0);
      expect(builder.entryBytes).toBe(mode === "bit32" ? 4 : 8);
    });
  }
});
