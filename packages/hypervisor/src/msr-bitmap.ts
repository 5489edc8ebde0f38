import { CPU_BASED_CTLS, type HardwareVmcs } from "@nestvisor/vmx";
import type { PhysicalMemory } from "@nestvisor/x86-arch";
import { VMCS_FIELD as F } from "./vmcs-field-encodings";

/**
 * The 4-KiB MSR bitmap of VMX (SDM 25.6.9): read bitmap for MSRs 0–1FFFH at offset 0, for
 * C0000000H–C0001FFFH at 1024, write bitmaps at 2048 and 3072. A set bit intercepts the access; an
 * MSR outside both ranges always exits.
 */
function bitOffset(index: number, write: boolean): number {
  const msr = index >>> 0;
  let base: number;
  if (msr <= 0x1fff) base = 0;
  else if (msr >= 0xc000_0000 && msr <= 0xc000_1fff) base = 1024;
  else return -1;
  return (base + (write ? 2048 : 0)) * 8 + (msr & 0x1fff);
}

/** Whether the bitmap at `address` intercepts RDMSR (or WRMSR with `write`) of `index` (SDM 26.1.3). */
export function msrBitmapIntercepts(
  memory: PhysicalMemory,
  address: number,
  index: number,
  write: boolean,
): boolean {
  const bit = bitOffset(index, write);
  if (bit < 0) return true;
  return ((memory.read8(address + (bit >>> 3)) >>> (bit & 7)) & 1) !== 0;
}

/**
 * Whether RDMSR (WRMSR with `write`) of `index` in the guest `vmcs` runs exits (SDM 26.1.3): always
 * without "use MSR bitmaps", else as the VMCS's bitmap in `memory` says. Reads the VMCS directly,
 * as the processor does (no VMREAD).
 */
export function vmcsInterceptsMsr(
  vmcs: HardwareVmcs,
  memory: PhysicalMemory,
  index: number,
  write: boolean,
): boolean {
  if ((vmcs.read(F.CPU_BASED_VM_EXEC_CONTROL) & CPU_BASED_CTLS.CPU_BASED_USE_MSR_BITMAPS) === 0) return true;
  const bitmap = vmcs.read(F.MSR_BITMAP) + vmcs.hi * 4294967296;
  return msrBitmapIntercepts(memory, bitmap, index, write);
}

/**
 * Writes KVM's MSR bitmap: every MSR intercepted except `passthrough`, for reads and writes (kvm:
 * vmx_create_vcpu fills the bitmap with ones, then vmx_disable_intercept_for_msr).
 */
export function writeMsrBitmap(
  memory: PhysicalMemory,
  address: number,
  passthrough: readonly number[],
): void {
  for (let i = 0; i < 4096; i += 4) memory.write32(address + i, 0xffffffff);
  for (const index of passthrough) {
    for (const write of [false, true]) {
      const bit = bitOffset(index, write);
      if (bit < 0) continue;
      const at = address + (bit >>> 3);
      memory.write8(at, memory.read8(at) & ~(1 << (bit & 7)));
    }
  }
}

/**
 * Merges chosen bits of two MSR bitmaps into a third (kvm: nested_vmx_prepare_msr_bitmap's
 * nested_vmx_set_intercept_for_msr per MSR and access type): each chosen bit is set in the target
 * when either source intercepts, the target's other bits are kept. Precomputes the bytes the bits
 * fall in, so one merge reads and writes each byte once, and reads each bitmap in its own pass: a
 * memory backend keeps its last page at hand, and two bitmaps of one memory read alternately would
 * look a page up on every byte.
 */
export class MsrBitmapMerge {
  readonly #offsets: Uint16Array;
  readonly #masks: Uint8Array;
  /** The merged bytes (a's, then a's | b's), reused by every merge. */
  readonly #merged: Uint8Array;

  /** `accesses`: [MSR index, merge reads, merge writes] for each merged MSR. */
  constructor(accesses: readonly (readonly [number, boolean, boolean])[]) {
    const masks = new Map<number, number>();
    for (const [index, read, write] of accesses) {
      for (const w of [false, true]) {
        if (!(w ? write : read)) continue;
        const bit = bitOffset(index, w);
        if (bit < 0) throw new RangeError(`MSR 0x${index.toString(16)} has no bit in an MSR bitmap`);
        masks.set(bit >>> 3, (masks.get(bit >>> 3) ?? 0) | (1 << (bit & 7)));
      }
    }
    const offsets = [...masks.keys()].sort((a, b) => a - b);
    this.#offsets = Uint16Array.from(offsets);
    this.#masks = Uint8Array.from(offsets, (o) => masks.get(o)!);
    this.#merged = new Uint8Array(offsets.length);
  }

  /** target[bits] = a[bits] | b[bits], each bitmap a 4-KiB page at its address in its memory. */
  merge(
    a: PhysicalMemory,
    aAddress: number,
    b: PhysicalMemory,
    bAddress: number,
    target: PhysicalMemory,
    targetAddress: number,
  ): void {
    const offsets = this.#offsets;
    const masks = this.#masks;
    const merged = this.#merged;
    const n = offsets.length;
    for (let i = 0; i < n; i++) merged[i] = a.read8(aAddress + offsets[i]!);
    for (let i = 0; i < n; i++) merged[i] = (merged[i]! | b.read8(bAddress + offsets[i]!)) & masks[i]!;
    for (let i = 0; i < n; i++) {
      const at = targetAddress + offsets[i]!;
      target.write8(at, (target.read8(at) & ~masks[i]!) | merged[i]!);
    }
  }
}
