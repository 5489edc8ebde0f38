import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeRegister } from "./bit-register";
import {
  decodeEptViolationQualification,
  EPT_VIOLATION,
  EPT_VIOLATION_LAYOUT,
  type EptViolationFields,
  eptViolationQualification,
  summarizeEptViolation,
} from "./ept-violation";

const FULL = { advancedExitInfo: true, modeBasedExecute: true };
const fieldsArbitrary = fc.record({
  read: fc.boolean(),
  write: fc.boolean(),
  fetch: fc.boolean(),
  readable: fc.boolean(),
  writable: fc.boolean(),
  executable: fc.boolean(),
  userExecutable: fc.boolean(),
  glaValid: fc.boolean(),
  finalTranslation: fc.boolean(),
  userLinear: fc.boolean(),
  writableLinear: fc.boolean(),
  executeDisableLinear: fc.boolean(),
  nmiUnblocking: fc.boolean(),
  shadowStack: fc.boolean(),
  supervisorShadowStack: fc.boolean(),
  guestPagingVerification: fc.boolean(),
  asynchronous: fc.boolean(),
});

describe("EPT-violation exit qualification (SDM Table 28-7)", () => {
  it("builds the kvm-unit-tests values", () => {
    // Not present, read of the final translation: RD | GLA | FINAL = 0x181.
    expect(eptViolationQualification({ read: true, glaValid: true, finalTranslation: true }, FULL)).toBe(
      0x181,
    );
    // Guest paging-structure read with EPT A/D: RD | WR | GLA = 0x83.
    expect(eptViolationQualification({ read: true, write: true, glaValid: true }, FULL)).toBe(0x83);
    // Fetch of a read/write page: IF | R | W | GLA | FINAL.
    expect(
      eptViolationQualification(
        { fetch: true, readable: true, writable: true, glaValid: true, finalTranslation: true },
        FULL,
      ),
    ).toBe(0x4 | 0x8 | 0x10 | 0x180);
  });

  it("reports undefined bits as zero", () => {
    const all: EptViolationFields = {
      userExecutable: true,
      finalTranslation: true,
      userLinear: true,
      writableLinear: true,
      executeDisableLinear: true,
    };
    // No GLA: bit 8 and bits 11:9 are not defined.
    expect(eptViolationQualification(all, FULL)).toBe(EPT_VIOLATION.USER_EXECUTABLE);
    // Bit 6 only with mode-based execute control.
    expect(eptViolationQualification(all, { ...FULL, modeBasedExecute: false })).toBe(0);
    // Bits 11:9 only with advanced information and bits 7 and 8.
    const withGla = { ...all, glaValid: true };
    expect(eptViolationQualification(withGla, FULL)).toBe(0xfc0);
    expect(eptViolationQualification(withGla, { ...FULL, advancedExitInfo: false })).toBe(0x1c0);
    expect(eptViolationQualification({ ...withGla, finalTranslation: false }, FULL)).toBe(0xc0);
  });

  it("decodes what it builds (property)", () => {
    fc.assert(
      fc.property(fieldsArbitrary, (fields) => {
        const q = eptViolationQualification(fields, FULL);
        const back = decodeEptViolationQualification(q);
        expect(eptViolationQualification(back, FULL)).toBe(q);
        // Flags that are always defined survive unchanged.
        expect(back.read).toBe(fields.read);
        expect(back.fetch).toBe(fields.fetch);
        expect(back.writable).toBe(fields.writable);
        expect(back.glaValid).toBe(fields.glaValid);
        expect(back.finalTranslation).toBe(fields.glaValid && fields.finalTranslation);
        expect(back.nmiUnblocking).toBe(fields.nmiUnblocking);
        // The layout reads the same bits.
        const decoded = decodeRegister(EPT_VIOLATION_LAYOUT, q).fields;
        expect(decoded.RD).toBe(back.read);
        expect(decoded.FINAL).toBe(back.finalTranslation);
        expect(decoded.XD).toBe(back.executeDisableLinear);
        expect(decoded.ASYNC).toBe(back.asynchronous);
      }),
    );
  });

  it("agrees with its layout on every constant", () => {
    const bit = (name: string) => 1 << EPT_VIOLATION_LAYOUT.fields.find((f) => f.name === name)!.lsb;
    expect(bit("RD")).toBe(EPT_VIOLATION.READ);
    expect(bit("XU")).toBe(EPT_VIOLATION.USER_EXECUTABLE);
    expect(bit("GLA")).toBe(EPT_VIOLATION.GLA_VALID);
    expect(bit("FINAL")).toBe(EPT_VIOLATION.FINAL_TRANSLATION);
    expect(bit("US") | bit("RW") | bit("XD")).toBe(EPT_VIOLATION.ADVANCED_MASK);
    expect(bit("SSS")).toBe(EPT_VIOLATION.SUPERVISOR_SHADOW_STACK);
  });

  it("summarises a qualification", () => {
    expect(summarizeEptViolation(0x181)).toBe(
      "read of a not-present guest-physical address, translating a linear address",
    );
    expect(summarizeEptViolation(0x8b)).toBe(
      "read+write of a read guest-physical address, guest paging-structure access",
    );
    expect(summarizeEptViolation(0x2 | 0x28 | 0x180 | 0x200)).toBe(
      "write of a read/execute guest-physical address, translating a linear address, user read-only page",
    );
    expect(summarizeEptViolation(0x4)).toBe(
      "fetch of a not-present guest-physical address, no linear address",
    );
  });
});
