import { DenseMemory, readWords, writeWords } from "@nestvisor/x86-arch";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MemslotMemory } from "./memslot-memory";
import { Memslots } from "./memslots";

function setup() {
  const host = new DenseMemory(0x40_0000);
  const memslots = new Memslots();
  // gfns 0..15 at host 0x10_0000; gfns 16..31 (read-only) at host 0x30_0000.
  memslots.add({ baseGfn: 0, npages: 16, hostBase: 0x10_0000 });
  memslots.add({ baseGfn: 16, npages: 16, hostBase: 0x30_0000, readOnly: true });
  return { host, memslots, guest: new MemslotMemory(host, memslots) };
}

describe("MemslotMemory (kvm: the memory KVM's software walks read)", () => {
  it("translates through the memslots", () => {
    const { host, guest } = setup();
    guest.write64(0x3008, 0x1234_5678, 0x9abc);
    expect(host.read32(0x10_3008)).toBe(0x1234_5678);
    expect(host.read32(0x10_300c)).toBe(0x9abc);
    expect(guest.read64(0x3008)).toBe(0x9abc * 2 ** 32 + 0x1234_5678);
    expect(guest.translate(0x10_123)).toBe(0x30_0123);
    expect(guest.translate(0x20_0000)).toBe(-1);
  });

  it("reads zeros where no slot is and drops writes there and to read-only slots", () => {
    const { host, guest } = setup();
    host.write32(0x30_0010, 0xdead_beef);
    expect(guest.read32(0x10_010)).toBe(0xdead_beef);
    guest.write32(0x10_010, 1);
    expect(host.read32(0x30_0010)).toBe(0xdead_beef);
    expect(guest.read32(0x40_0000)).toBe(0);
    guest.write64(0x40_0000, 1, 2);
    expect(guest.read64(0x40_0000)).toBe(0);
    expect(() => guest.read8(2 ** 52)).toThrow(RangeError);
  });

  it("splits accesses that cross into another page", () => {
    const { host, guest } = setup();
    // gfn 15 ends at host 0x10_ffff; gfn 16 is the read-only slot at host 0x30_0000.
    host.write32(0x10_fffc, 0x4433_2211);
    host.write32(0x30_0000, 0x8877_6655);
    expect(guest.read32(0xfffe)).toBe(0x6655_4433);
    expect(guest.read16(0xffff)).toBe(0x5544);
    guest.write32(0xeffe, 0xaabb_ccdd);
    expect(guest.read16(0xeffe)).toBe(0xccdd);
    expect(guest.read16(0xf000)).toBe(0xaabb);
  });

  it("agrees with the host for any access inside one writable slot", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 16 * 4096 - 8 }),
        fc.integer({ min: 0, max: 0xffffffff }),
        (gpa, value) => {
          const { host, guest } = setup();
          guest.write32(gpa, value);
          expect(guest.read32(gpa)).toBe(value >>> 0);
          expect(guest.readBytes(gpa, 4)).toEqual(host.readBytes(0x10_0000 + gpa, 4));
        },
      ),
      { numRuns: 50 },
    );
  });
});

describe("MemslotMemory word copies (readWords / writeWords)", () => {
  // Runs from gfn 14 to gfn 33 cover a writable slot, the read-only slot and memory with no slot.
  const run = fc.record({
    word: fc.integer({ min: (14 * 4096) / 4, max: (33 * 4096) / 4 }),
    count: fc.integer({ min: 0, max: 2600 }),
    seed: fc.integer({ min: 0, max: 0xffffffff }),
  });

  it("read what read32 reads and write what write32 writes, word for word", () => {
    fc.assert(
      fc.property(run, ({ word, count, seed }) => {
        const a = setup();
        const b = setup();
        for (let i = 0x10_0000; i < 0x40_0000; i += 0x1000) {
          a.host.write32(i + 4, (seed ^ i) >>> 0);
          b.host.write32(i + 4, (seed ^ i) >>> 0);
        }
        const gpa = word * 4;
        const read = new Uint32Array(count);
        readWords(a.guest, gpa, read);
        for (let i = 0; i < count; i++) expect(read[i]).toBe(a.guest.read32(gpa + i * 4));
        const source = Uint32Array.from({ length: count }, (_, i) => (seed + i * 0x9e3779b9) >>> 0);
        writeWords(a.guest, gpa, source);
        for (let i = 0; i < count; i++) b.guest.write32(gpa + i * 4, source[i]!);
        // Both slots' host ranges hold the same bytes (Buffer.compare: a 4-MiB toEqual is slow).
        for (const base of [0x10_0000, 0x30_0000]) {
          const same = Buffer.compare(a.host.readBytes(base, 0x1_0000), b.host.readBytes(base, 0x1_0000));
          expect(same).toBe(0);
        }
      }),
      { numRuns: 60 },
    );
  });
});
