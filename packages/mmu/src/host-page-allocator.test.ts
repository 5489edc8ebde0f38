import { DenseMemory, SparseMemory } from "@nestvisor/x86-arch";
import { describe, expect, it } from "vitest";
import { HostPageAllocator } from "./host-page-allocator";

describe("HostPageAllocator", () => {
  it("hands out zeroed pages from its region, lowest first, and counts them", () => {
    const memory = new DenseMemory(64 * 4096);
    memory.write32(0x10_000 + 8, 0xdeadbeef); // garbage in the first page of the region
    const pages = new HostPageAllocator(memory, { base: 0x10_000, pages: 4 });
    const a = pages.alloc();
    const b = pages.alloc();
    expect([a, b]).toEqual([0x10_000, 0x11_000]);
    expect(memory.read32(a + 8)).toBe(0);
    expect(pages.inUse).toBe(2);
    expect(pages.available).toBe(2);
    expect(pages.pageIndex(b)).toBe(1);
    expect(pages.pageAddress(1)).toBe(b);
    expect(pages.isAllocated(b)).toBe(true);
    pages.free(a);
    expect(pages.inUse).toBe(1);
    expect(pages.peakInUse).toBe(2);
    expect(pages.isAllocated(a)).toBe(false);
  });

  it("re-zeroes a freed page unless it was freed as known zero", () => {
    const memory = new DenseMemory(16 * 4096);
    const pages = new HostPageAllocator(memory, { base: 0, pages: 2, zeroed: true });
    const a = pages.alloc();
    expect(pages.zeroings).toBe(0);
    memory.write32(a + 0x40, 7);
    pages.free(a);
    expect(pages.alloc()).toBe(a);
    expect(memory.read32(a + 0x40)).toBe(0);
    expect(pages.zeroings).toBe(1);
    pages.free(a, true);
    pages.alloc();
    expect(pages.zeroings).toBe(1);
    expect(pages.allocations).toBe(3);
  });

  it("throws on exhaustion, double free and foreign addresses", () => {
    const pages = new HostPageAllocator(new SparseMemory(), { base: 0x1_0000_0000, pages: 1 });
    const a = pages.alloc();
    expect(() => pages.alloc()).toThrow(/exhausted/);
    pages.free(a);
    expect(() => pages.free(a)).toThrow(/not an allocated page/);
    expect(() => pages.free(a + 8)).toThrow(/not an allocated page/);
    expect(() => pages.free(0)).toThrow(/not an allocated page/);
    expect(pages.pageIndex(a + 4096)).toBe(-1);
  });

  it("refuses a region that is misaligned or outside memory", () => {
    const memory = new DenseMemory(8 * 4096);
    expect(() => new HostPageAllocator(memory, { base: 0x800, pages: 1 })).toThrow(/aligned/);
    expect(() => new HostPageAllocator(memory, { base: 0, pages: 9 })).toThrow(/exceeds host memory/);
    expect(() => new HostPageAllocator(memory, { base: 0, pages: 0 })).toThrow(/positive/);
  });
});
