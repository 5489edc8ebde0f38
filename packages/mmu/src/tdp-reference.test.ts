import { describe, expect, it } from "vitest";
import { ReferenceMapping, ReferenceTable } from "./audit-reference";
import { Memslots } from "./memslots";
import { ACC } from "./page-role";
import { tdpReference } from "./tdp-reference";

describe("tdpReference (GPA → memslot)", () => {
  const memslots = new Memslots();
  memslots.add({ id: 0, baseGfn: 0x100, npages: 0x200, hostBase: 0x4000_0000 });
  memslots.add({ id: 1, baseGfn: 0x400, npages: 0x10, hostBase: 0x8000_0000, readOnly: true });
  const reference = tdpReference(memslots);
  const out = new ReferenceMapping();

  it("maps a slot's gfn to its host page with every right, up to the slot's end", () => {
    expect(reference.translate(0x180000, out)).toBe(true);
    expect(out).toMatchObject({ hpa: 0x4008_0000, gpa: 0x180000, rights: ACC.ALL, altRights: -1 });
    expect(out.span).toBe((0x300 - 0x180) * 4096);
  });

  it("drops W on a read-only slot and maps nothing outside the slots", () => {
    expect(reference.translate(0x40f000, out)).toBe(true);
    expect(out).toMatchObject({ hpa: 0x8000_f000, rights: ACC.USER | ACC.EXEC, span: 4096 });
    expect(reference.translate(0x300000, out)).toBe(false);
    expect(reference.translate(0, out)).toBe(false);
  });

  it("expects direct table pages named by the first gfn they map", () => {
    const table = new ReferenceTable();
    expect(reference.expectedTable?.(0x4000_0000, 2, table)).toBe(true);
    expect(table).toMatchObject({ gfn: 0x40000, direct: true });
  });
});
