import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MEMSLOT_CHANGE, type MemslotChange, Memslots } from "./memslots";

describe("Memslots", () => {
  it("translates a gfn to the slot's host page and reports misses", () => {
    const slots = new Memslots();
    const id = slots.add({ baseGfn: 0x100, npages: 0x10, hostBase: 0x40_0000 });
    expect(id).toBe(0);
    expect(slots.gfnToHpa(0x100)).toBe(0x40_0000);
    expect(slots.gfnToHpa(0x10f)).toBe(0x40_f000);
    expect(slots.gfnToHpa(0x110)).toBe(-1);
    expect(slots.gfnToHpa(0xff)).toBe(-1);
    const index = slots.lookup(0x105);
    expect(slots.idAt(index)).toBe(0);
    expect(slots.baseGfnAt(index)).toBe(0x100);
    expect(slots.npagesAt(index)).toBe(0x10);
    expect(slots.hostBaseAt(index)).toBe(0x40_0000);
    expect(slots.readOnlyAt(index)).toBe(false);
  });

  it("keeps slots sorted by base gfn and numbers them with the smallest free id", () => {
    const slots = new Memslots();
    slots.add({ baseGfn: 0x1000, npages: 1, hostBase: 0 });
    slots.add({ baseGfn: 0x10, npages: 1, hostBase: 0x1000, readOnly: true });
    slots.add({ id: 7, baseGfn: 0x500, npages: 2, hostBase: 0x2000 });
    expect(slots.list().map((s) => [s.id, s.baseGfn])).toEqual([
      [1, 0x10],
      [7, 0x500],
      [0, 0x1000],
    ]);
    expect(slots.get(1)?.readOnly).toBe(true);
    slots.delete(1);
    expect(slots.add({ baseGfn: 0x20, npages: 1, hostBase: 0 })).toBe(1);
    expect(slots.count).toBe(3);
  });

  it("rejects overlaps, duplicate ids and malformed ranges (kvm: -EEXIST, -EINVAL)", () => {
    const slots = new Memslots();
    slots.add({ id: 3, baseGfn: 0x100, npages: 0x100, hostBase: 0 });
    expect(() => slots.add({ baseGfn: 0x1ff, npages: 1, hostBase: 0 })).toThrow(/overlap memslot 3/);
    expect(() => slots.add({ baseGfn: 0xf0, npages: 0x11, hostBase: 0 })).toThrow(/overlap/);
    expect(() => slots.add({ id: 3, baseGfn: 0x1000, npages: 1, hostBase: 0 })).toThrow(/already exists/);
    expect(() => slots.add({ baseGfn: 0x1000, npages: 0, hostBase: 0 })).toThrow(/not positive/);
    expect(() => slots.add({ baseGfn: 2 ** 40 - 1, npages: 2, hostBase: 0 })).toThrow(/52-bit/);
    expect(() => slots.add({ baseGfn: 0x1000, npages: 1, hostBase: 0x123 })).toThrow(/aligned/);
    expect(() => slots.add({ id: 0x10000, baseGfn: 0x1000, npages: 1, hostBase: 0 })).toThrow(/outside/);
    expect(() => slots.delete(9)).toThrow(/no memslot 9/);
    expect(slots.count).toBe(1);
  });

  it("moves a slot, keeping its backing, and refuses a move onto another slot", () => {
    const slots = new Memslots();
    const a = slots.add({ baseGfn: 0x100, npages: 4, hostBase: 0x8000 });
    slots.add({ baseGfn: 0x200, npages: 4, hostBase: 0x10000 });
    expect(() => slots.move(a, 0x1fe)).toThrow(/overlap/);
    slots.move(a, 0x300);
    expect(slots.gfnToHpa(0x100)).toBe(-1);
    expect(slots.gfnToHpa(0x302)).toBe(0xa000);
    expect(slots.list().map((s) => s.baseGfn)).toEqual([0x200, 0x300]);
  });

  it("tells listeners about every change, and bumps the generation", () => {
    const slots = new Memslots();
    const seen: MemslotChange[] = [];
    const stop = slots.onChange((change) => seen.push(change));
    const id = slots.add({ baseGfn: 0x10, npages: 1, hostBase: 0 });
    slots.move(id, 0x20);
    slots.delete(id);
    stop();
    slots.add({ baseGfn: 0x10, npages: 1, hostBase: 0 });
    expect(seen.map((c) => c.kind)).toEqual([
      MEMSLOT_CHANGE.CREATE,
      MEMSLOT_CHANGE.MOVE,
      MEMSLOT_CHANGE.DELETE,
    ]);
    expect(seen[1]?.old.baseGfn).toBe(0x10);
    expect(seen[1]?.current?.baseGfn).toBe(0x20);
    expect(seen[2]?.current).toBeNull();
    expect(slots.generation).toBe(4);
  });

  it("does not let a stale last-hit cache answer after a delete", () => {
    const slots = new Memslots();
    const id = slots.add({ baseGfn: 0x100, npages: 0x10, hostBase: 0x1000 });
    expect(slots.gfnToHpa(0x101)).toBe(0x2000);
    slots.delete(id);
    expect(slots.gfnToHpa(0x101)).toBe(-1);
  });

  it("agrees with a linear scan for random slot sets and lookups", () => {
    const layout = fc.array(
      fc.record({ gap: fc.integer({ min: 0, max: 64 }), npages: fc.integer({ min: 1, max: 64 }) }),
      {
        maxLength: 20,
      },
    );
    fc.assert(
      fc.property(
        layout,
        fc.array(fc.integer({ min: 0, max: 3000 }), { maxLength: 50 }),
        fc.integer(),
        (parts, gfns, seed) => {
          const slots = new Memslots();
          const oracle: { base: number; npages: number; host: number }[] = [];
          let next = 0;
          parts.forEach((part, i) => {
            const base = next + part.gap;
            const host = (((seed >>> 0) % 1000) + i * 100) * 4096;
            oracle.push({ base, npages: part.npages, host });
            next = base + part.npages;
          });
          // Insert in a shuffled order so sorting is exercised.
          [...oracle].reverse().forEach((s) => {
            slots.add({ baseGfn: s.base, npages: s.npages, hostBase: s.host });
          });
          for (const gfn of gfns) {
            const hit = oracle.find((s) => gfn >= s.base && gfn < s.base + s.npages);
            expect(slots.gfnToHpa(gfn)).toBe(hit === undefined ? -1 : hit.host + (gfn - hit.base) * 4096);
          }
        },
      ),
    );
  });
});
