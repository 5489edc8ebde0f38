/**
 * The VMREAD and VMWRITE bitmaps that decide which of L1's VMREADs and VMWRITEs the processor
 * serves from the shadow VMCS and which cause a VM exit to L0 (SDM Vol. 3C 25.6.15, "VMCS Shadowing
 * Bitmap Addresses" — 24.6.15 in editions before 2023 — and 26.1.3, "Instructions That Cause VM Exits
 * Conditionally", 25.1.3 before 2023).
 *
 * Each bitmap is 4 KiB = 32 Ki bits, one bit per value of bits 14:0 of the field encoding: bit n is
 * bit (n mod 8) of byte ⌊n / 8⌋. With "VMCS shadowing" set, a VMREAD (VMWRITE) in VMX non-root
 * operation exits when bits 63:15 of the encoding operand (31:15 outside 64-bit mode) are not all 0,
 * or when its bit in the VMREAD (VMWRITE) bitmap is 1; otherwise it accesses the VMCS that the VMCS
 * link pointer references.
 *
 * KVM builds the two pages once (kvm: init_vmcs_shadow_fields): all ones, then the RO entries clear
 * their VMREAD bit and the RW entries the host supports clear both (see `shadow-fields.ts`), and
 * vmcs01's VMREAD-/VMWRITE-bitmap addresses point at them (kvm: nested_vmx_set_vmcs_shadowing_bitmap).
 * Before seed 003 (v5.2) vmcs01's VMWRITE-bitmap address pointed at the VMREAD bitmap whenever L1 was
 * offered "VMWRITE to any supported field" (IA32_VMX_MISC bit 29, the default), so every RO field was
 * writable without an exit; only an L1 with that bit cleared got the separate VMWRITE bitmap (kvm v5.2:
 * nested_vmx_vcpu_setup, vmx_restore_vmx_misc). Flag A made the separate bitmap unconditional.
 */

import { type ShadowFieldListOptions, type ShadowFieldSet, shadowFieldSet } from "./shadow-fields";

/** Bytes in each bitmap (SDM 25.6.15). */
export const VMCS_SHADOWING_BITMAP_SIZE = 4096;

/** Bits 14:0 of an encoding index the bitmaps; any higher bit set means an exit (SDM 26.1.3). */
const ENCODING_SPACE = 0x8000;

/**
 * Whether `bitmap` makes the processor exit on an access to `encoding` (SDM 26.1.3): true when any
 * bit of the 64-bit operand above 14 is set (`encodingHi` holds bits 63:32), else the bitmap bit.
 * Also what KVM consults for L2's accesses against L1's own bitmaps (kvm:
 * nested_vmx_exit_handled_vmcs_access). Allocation-free.
 */
export function bitmapIntercepts(bitmap: Uint8Array, encoding: number, encodingHi = 0): boolean {
  if (encodingHi !== 0 || (encoding & (ENCODING_SPACE - 1)) !== encoding) return true;
  return (bitmap[encoding >>> 3]! & (1 << (encoding & 7))) !== 0;
}

/** Sets every bit (intercept everything). */
function allOnes(): Uint8Array {
  return new Uint8Array(VMCS_SHADOWING_BITMAP_SIZE).fill(0xff);
}

function clearBit(bitmap: Uint8Array, encoding: number): void {
  bitmap[encoding >>> 3] = bitmap[encoding >>> 3]! & ~(1 << (encoding & 7));
}

export interface VmcsShadowingBitmapOptions extends ShadowFieldListOptions {
  /**
   * L1's IA32_VMX_MISC bit 29, "VMWRITE to any supported field" (kvm:
   * nested_cpu_has_vmwrite_any_field); default true. Matters only without flag A.
   */
  readonly l1VmwriteAnyField?: boolean;
}

/** KVM's two bitmap pages and the pair vmcs01 points at. */
export class VmcsShadowingBitmaps {
  /** The field lists and host the pages were built from. */
  readonly fields: ShadowFieldSet;
  /** KVM's VMREAD bitmap (kvm: vmx_vmread_bitmap). */
  readonly vmreadBitmap: Uint8Array;
  /** KVM's VMWRITE bitmap (kvm: vmx_vmwrite_bitmap). */
  readonly vmwriteBitmap: Uint8Array;
  /**
   * The page vmcs01's VMWRITE-bitmap address references: `vmwriteBitmap`, or (v5.2 with
   * VMWRITE-to-any offered to L1) `vmreadBitmap` itself.
   */
  readonly activeVmwriteBitmap: Uint8Array;

  constructor(fields: ShadowFieldSet, options: { readonly vmwriteUsesVmreadBitmap: boolean }) {
    this.fields = fields;
    this.vmreadBitmap = allOnes();
    this.vmwriteBitmap = allOnes();
    // kvm: init_vmcs_shadow_fields.
    for (const e of fields.vmreadExposed) clearBit(this.vmreadBitmap, e);
    for (const e of fields.vmwriteExposed) clearBit(this.vmwriteBitmap, e);
    this.activeVmwriteBitmap = options.vmwriteUsesVmreadBitmap ? this.vmreadBitmap : this.vmwriteBitmap;
  }

  /**
   * The pages KVM builds for a header state and host, and the pointer choice of that era: with flag
   * A the VMWRITE bitmap is always separate; without it, it is the VMREAD bitmap unless L1's
   * VMWRITE-to-any capability is cleared.
   */
  static forKvm(options: VmcsShadowingBitmapOptions, fields?: ShadowFieldSet): VmcsShadowingBitmaps {
    const set = fields ?? shadowFieldSet(options);
    const vmwriteUsesVmreadBitmap = !options.readOnlyShadowFields && (options.l1VmwriteAnyField ?? true);
    return new VmcsShadowingBitmaps(set, { vmwriteUsesVmreadBitmap });
  }

  /** An L1 VMREAD of `encoding` exits to L0 (SDM 26.1.3, with VMCS shadowing on). */
  interceptsVmread(encoding: number, encodingHi = 0): boolean {
    return bitmapIntercepts(this.vmreadBitmap, encoding, encodingHi);
  }

  /** An L1 VMWRITE of `encoding` exits to L0 (SDM 26.1.3, with VMCS shadowing on). */
  interceptsVmwrite(encoding: number, encodingHi = 0): boolean {
    return bitmapIntercepts(this.activeVmwriteBitmap, encoding, encodingHi);
  }
}
