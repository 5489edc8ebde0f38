import type { PhysicalMemory } from "@nestvisor/x86-arch";

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

/** Sets (`intercept`) or clears the bit of RDMSR (or WRMSR with `write`) of `index`; no-op outside the ranges. */
export function setMsrIntercept(
  memory: PhysicalMemory,
  address: number,
  index: number,
  write: boolean,
  intercept: boolean,
): void {
  const bit = bitOffset(index, write);
  if (bit < 0) return;
  const at = address + (bit >>> 3);
  const mask = 1 << (bit & 7);
  const byte = memory.read8(at);
  memory.write8(at, intercept ? byte | mask : byte & ~mask);
}
