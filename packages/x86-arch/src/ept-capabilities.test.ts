import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeRegister } from "./bit-register";
import {
  decodeEptCapabilities,
  EPT_CAP,
  EPT_CAP_MODELLED_LO,
  EPT_VPID_CAP_LAYOUT,
  type EptCapabilities,
  encodeEptCapabilities,
  eptCapabilities,
  MODERN_EPT_CAPABILITIES,
} from "./ept-capabilities";

const capsArbitrary: fc.Arbitrary<EptCapabilities> = fc.record({
  executeOnly: fc.boolean(),
  walkLength4: fc.boolean(),
  walkLength5: fc.boolean(),
  memoryTypeUc: fc.boolean(),
  memoryTypeWb: fc.boolean(),
  pages2M: fc.boolean(),
  pages1G: fc.boolean(),
  accessedDirty: fc.boolean(),
  advancedExitInfo: fc.boolean(),
  supervisorShadowStack: fc.boolean(),
});

describe("EPT capabilities", () => {
  // An example MSR value with XO, PWL4, UC, WB, 2M, 1G, INVEPT, AD, ADV, the INVEPT types and the
  // INVVPID types, but no 5-level walk and no supervisor shadow stack.
  const LO = 0x06734141;
  const HI = 0x00000f01;

  it("decodes the walk-relevant bits of an MSR value and ignores the rest", () => {
    expect(decodeEptCapabilities(LO, HI)).toEqual({
      executeOnly: true,
      walkLength4: true,
      walkLength5: false,
      memoryTypeUc: true,
      memoryTypeWb: true,
      pages2M: true,
      pages1G: true,
      accessedDirty: true,
      advancedExitInfo: true,
      supervisorShadowStack: false,
    });
    expect(encodeEptCapabilities(decodeEptCapabilities(LO, HI))).toEqual({
      lo: LO & EPT_CAP_MODELLED_LO,
      hi: 0,
    });
  });

  it("agrees with its display layout on every modelled bit", () => {
    const fields = decodeRegister(EPT_VPID_CAP_LAYOUT, (BigInt(HI) << 32n) | BigInt(LO)).fields;
    expect(fields.EXECUTE_ONLY).toBe(true);
    expect(fields.PAGE_WALK_5).toBe(false);
    expect(fields.ADVANCED_EXIT_INFO).toBe(true);
    expect(fields.INVEPT).toBe(true);
    expect(fields.INVVPID).toBe(true);
    const byName: Record<string, number> = {
      EXECUTE_ONLY: EPT_CAP.EXECUTE_ONLY,
      PAGE_WALK_4: EPT_CAP.WALK_LENGTH_4,
      PAGE_WALK_5: EPT_CAP.WALK_LENGTH_5,
      EPTP_UC: EPT_CAP.MEMORY_TYPE_UC,
      EPTP_WB: EPT_CAP.MEMORY_TYPE_WB,
      PAGE_2M: EPT_CAP.PAGES_2M,
      PAGE_1G: EPT_CAP.PAGES_1G,
      ACCESSED_DIRTY: EPT_CAP.ACCESSED_DIRTY,
      ADVANCED_EXIT_INFO: EPT_CAP.ADVANCED_EXIT_INFO,
      SUPERVISOR_SHADOW_STACK: EPT_CAP.SUPERVISOR_SHADOW_STACK,
    };
    for (const [name, bit] of Object.entries(byName)) {
      const field = EPT_VPID_CAP_LAYOUT.fields.find((f) => f.name === name);
      expect(field && 1 << field.lsb).toBe(bit);
    }
  });

  it("defaults to a modern CPU with every capability and applies overrides", () => {
    expect(Object.values(MODERN_EPT_CAPABILITIES).every((v) => v === true)).toBe(true);
    const caps = eptCapabilities({ executeOnly: false });
    expect(caps.executeOnly).toBe(false);
    expect(caps.walkLength5).toBe(true);
    expect(Object.isFrozen(caps)).toBe(true);
  });

  it("round-trips capabilities through the MSR encoding (property)", () => {
    fc.assert(
      fc.property(capsArbitrary, (caps) => {
        const { lo, hi } = encodeEptCapabilities(caps);
        expect(hi).toBe(0);
        expect(decodeEptCapabilities(lo, hi)).toEqual(caps);
      }),
    );
  });

  it("round-trips MSR values restricted to the modelled bits (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 0, max: 0xffffffff }),
        (lo, hi) => {
          expect(encodeEptCapabilities(decodeEptCapabilities(lo, hi)).lo).toBe(
            (lo & EPT_CAP_MODELLED_LO) >>> 0,
          );
        },
      ),
    );
  });
});
