import { describe, expect, it } from "vitest";
import { eptCapabilities, MODERN_EPT_CAPABILITIES } from "./ept-capabilities";
import { createEptContext } from "./ept-context";
import { encodeEptPointer } from "./ept-pointer";

const eptp = (walkLength: number, accessedDirty = false) =>
  encodeEptPointer({ memoryType: 6, walkLength, accessedDirty, supervisorShadowStack: false, root: 0x5000 });

describe("createEptContext", () => {
  it("derives the walk length, root, switches and masks from the EPTP and capabilities", () => {
    const { lo, hi } = eptp(5, true);
    const ctx = createEptContext(
      { eptpLo: lo, eptpHi: hi, modeBasedExecute: true },
      MODERN_EPT_CAPABILITIES,
      46,
    );
    expect(ctx.levels).toBe(5);
    expect(ctx.root).toBe(0x5000);
    expect(ctx.accessedDirty).toBe(true);
    expect(ctx.modeBasedExecute).toBe(true);
    expect(ctx.executeOnly).toBe(true);
    expect(ctx.advancedExitInfo).toBe(true);
    expect(ctx.reservedLo[4 * 2]).toBe(0xf8);
    expect(ctx.reservedHi[2]).toBe(0x000fc000);
    expect(Object.isFrozen(ctx)).toBe(true);
  });

  it("defaults mode-based execute control to off", () => {
    const { lo, hi } = eptp(4);
    expect(createEptContext({ eptpLo: lo, eptpHi: hi }, MODERN_EPT_CAPABILITIES, 46).modeBasedExecute).toBe(
      false,
    );
  });

  it("refuses an EPTP that VM entry would reject", () => {
    const { lo, hi } = eptp(5);
    expect(() =>
      createEptContext({ eptpLo: lo, eptpHi: hi }, eptCapabilities({ walkLength5: false }), 46),
    ).toThrow(/walk length 5/);
    const ad = eptp(4, true);
    expect(() =>
      createEptContext({ eptpLo: ad.lo, eptpHi: ad.hi }, eptCapabilities({ accessedDirty: false }), 46),
    ).toThrow(/bit 6/);
  });
});
