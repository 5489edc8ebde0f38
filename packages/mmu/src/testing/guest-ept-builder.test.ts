import {
  AD_UPDATE,
  createEptContext,
  DenseMemory,
  EPTE_LO,
  EptWalker,
  MODERN_EPT_CAPABILITIES,
} from "@nestvisor/x86-arch";
import { describe, expect, it } from "vitest";
import { EPT12_LEAF_RWX, eptIndex, GuestEptBuilder } from "./guest-ept-builder";

describe("GuestEptBuilder (test helper)", () => {
  it("builds EPT tables x86-arch's EptWalker translates, with the requested rights and page sizes", () => {
    const memory = new DenseMemory(0x40_0000);
    const builder = new GuestEptBuilder(memory, 0x10_0000);
    builder.map(0x1000, 0x20_0000, { leafLo: EPTE_LO.READ | (6 << 3) });
    builder.map(0x4000_0000, 0x20_0000, { leafLevel: 2, upperLo: EPTE_LO.READ | EPTE_LO.EXECUTE });
    const eptp = builder.eptp(true);
    expect(eptp.value).toBe(eptp.hi * 2 ** 32 + eptp.lo);
    const ctx = createEptContext({ eptpLo: eptp.lo, eptpHi: eptp.hi }, MODERN_EPT_CAPABILITIES, 46);
    const walker = new EptWalker(memory, { adUpdate: AD_UPDATE.NONE });
    expect(walker.walk(ctx, 0x1234, 0)).toBe(true);
    expect(walker.result.hpa).toBe(0x20_0234);
    expect(walker.result.permissions & 7).toBe(EPTE_LO.READ);
    expect(walker.walk(ctx, 0x4012_3456, 0)).toBe(true);
    expect(walker.result).toMatchObject({ hpa: 0x32_3456, pageSize: 0x20_0000 });
    expect(walker.result.permissions & 7).toBe(EPTE_LO.READ | EPTE_LO.EXECUTE);
    expect(builder.entryAddress(0x1000, 1) % 4096).toBe(eptIndex(0x1000, 1) * 8);
    expect(builder.entryAddress(0x4000_0000, 1)).toBe(-1); // below a 2-MiB leaf
    expect(builder.entryAddress(0x80_0000_0000, 2)).toBe(-1); // no PDPT there
    expect(EPT12_LEAF_RWX & 7).toBe(7);
  });
});
