import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { fieldByName } from "./field-catalog";
import {
  SHADOW_FIELDS_RO,
  SHADOW_FIELDS_RO_V5_2,
  SHADOW_FIELDS_RW,
  SHADOW_FIELDS_RW_V5_2,
  shadowFieldSet,
} from "./shadow-fields";
import { bitmapIntercepts, VMCS_SHADOWING_BITMAP_SIZE, VmcsShadowingBitmaps } from "./vmcs-shadowing-bitmaps";

const MODERN = { readOnlyShadowFields: true, controlsShadow: true } as const;
const V5_2 = { readOnlyShadowFields: false, controlsShadow: false } as const;

function zeroBits(bitmap: Uint8Array): number {
  let n = 0;
  for (const byte of bitmap) for (let b = 0; b < 8; b++) if ((byte & (1 << b)) === 0) n++;
  return n;
}

describe("VMCS shadowing bitmaps (SDM 25.6.15; kvm: init_vmcs_shadow_fields)", () => {
  it("are 4-KiB pages", () => {
    const bitmaps = VmcsShadowingBitmaps.forKvm(MODERN);
    expect(bitmaps.vmreadBitmap).toHaveLength(VMCS_SHADOWING_BITMAP_SIZE);
    expect(bitmaps.vmwriteBitmap).toHaveLength(VMCS_SHADOWING_BITMAP_SIZE);
  });

  it("6.12: every RO field readable but not writable, every RW field both, everything else intercepted", () => {
    const bitmaps = VmcsShadowingBitmaps.forKvm(MODERN);
    const ro = new Set(SHADOW_FIELDS_RO.map((f) => f.encoding));
    const rw = new Set(SHADOW_FIELDS_RW.map((f) => f.encoding));
    for (let e = 0; e < 0x8000; e++) {
      expect(bitmaps.interceptsVmread(e), e.toString(16)).toBe(!ro.has(e) && !rw.has(e));
      expect(bitmaps.interceptsVmwrite(e), e.toString(16)).toBe(!rw.has(e));
    }
    expect(zeroBits(bitmaps.vmreadBitmap)).toBe(36);
    expect(zeroBits(bitmaps.vmwriteBitmap)).toBe(24);
    expect(bitmaps.activeVmwriteBitmap).toBe(bitmaps.vmwriteBitmap);
  });

  it("bit n is bit n mod 8 of byte n / 8", () => {
    const bitmaps = VmcsShadowingBitmaps.forKvm(MODERN);
    const rip = fieldByName("GUEST_RIP")!.encoding; // 0x681e
    expect(rip).toBe(0x681e);
    // Byte 0xd03 covers 0x6818–0x681f: GUEST_RSP (0x681c, bit 4) and GUEST_RIP (0x681e, bit 6) are RW.
    expect(bitmaps.vmwriteBitmap[0xd03]).toBe(0xff & ~(1 << 4) & ~(1 << 6));
    expect(bitmaps.vmreadBitmap[0xd03]).toBe(0xaf);
  });

  it("intercepts every encoding with a bit set above 14, whatever the bitmap says (SDM 26.1.3)", () => {
    const bitmaps = VmcsShadowingBitmaps.forKvm(MODERN);
    const rip = fieldByName("GUEST_RIP")!.encoding;
    expect(bitmaps.interceptsVmread(rip)).toBe(false);
    expect(bitmaps.interceptsVmread(rip | 0x8000)).toBe(true);
    expect(bitmaps.interceptsVmwrite(rip | 0x10000)).toBe(true);
    expect(bitmaps.interceptsVmwrite(rip, 1)).toBe(true);
    expect(bitmaps.interceptsVmread(-1)).toBe(true);
    fc.assert(
      fc.property(fc.integer({ min: 0x8000, max: 0xffffffff }), (e) => {
        expect(bitmaps.interceptsVmread(e)).toBe(true);
        expect(bitmaps.interceptsVmwrite(e)).toBe(true);
      }),
    );
    const open = new Uint8Array(VMCS_SHADOWING_BITMAP_SIZE); // an L1 bitmap exposing everything
    expect(bitmapIntercepts(open, 0x7fff)).toBe(false);
    expect(bitmapIntercepts(open, 0x8000)).toBe(true);
    expect(bitmapIntercepts(open, 1.5)).toBe(true);
  });

  it("v5.2 with VMWRITE-to-any offered: vmcs01's VMWRITE bitmap is the VMREAD bitmap (RO fields writable)", () => {
    const bitmaps = VmcsShadowingBitmaps.forKvm(V5_2);
    expect(bitmaps.activeVmwriteBitmap).toBe(bitmaps.vmreadBitmap);
    for (const f of [...SHADOW_FIELDS_RO_V5_2, ...SHADOW_FIELDS_RW_V5_2]) {
      expect(bitmaps.interceptsVmread(f.encoding), f.name).toBe(false);
      expect(bitmaps.interceptsVmwrite(f.encoding), f.name).toBe(false);
    }
    // CS/SS AR bytes are RW, pin controls intercepted.
    expect(bitmaps.interceptsVmwrite(fieldByName("GUEST_CS_AR_BYTES")!.encoding)).toBe(false);
    expect(bitmaps.interceptsVmwrite(fieldByName("PIN_BASED_VM_EXEC_CONTROL")!.encoding)).toBe(true);
    // The separate page is still built (kvm: vmx_vmwrite_bitmap), with RW fields only.
    expect(zeroBits(bitmaps.vmwriteBitmap)).toBe(25);
  });

  it("v5.2 when L1's VMX_MISC bit 29 is cleared: the separate VMWRITE bitmap intercepts RO fields", () => {
    const bitmaps = VmcsShadowingBitmaps.forKvm({ ...V5_2, l1VmwriteAnyField: false });
    expect(bitmaps.activeVmwriteBitmap).toBe(bitmaps.vmwriteBitmap);
    for (const f of SHADOW_FIELDS_RO_V5_2) expect(bitmaps.interceptsVmwrite(f.encoding), f.name).toBe(true);
  });

  it("leaves fields the host lacks intercepted both ways", () => {
    const host = { pml: false, preemptionTimer: true, apicv: true };
    const bitmaps = VmcsShadowingBitmaps.forKvm(MODERN, shadowFieldSet(MODERN, host));
    const pml = fieldByName("GUEST_PML_INDEX")!.encoding;
    expect(bitmaps.interceptsVmread(pml)).toBe(true);
    expect(bitmaps.interceptsVmwrite(pml)).toBe(true);
    expect(zeroBits(bitmaps.vmreadBitmap)).toBe(35);
    expect(zeroBits(bitmaps.vmwriteBitmap)).toBe(23);
  });
});
