import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { batchResult, parseScenario, runScenario, ScenarioError } from "./walk-scenario";

/**
 * Oracle: a 4-level walk written directly from SDM 4.5–4.7 with BigInt, for 4-KiB pages, CR4.SMEP,
 * SMAP and PKE off, EFER.NXE on. Accessed flags are set on each non-leaf entry as it is used, the
 * leaf's accessed (and, for a write, dirty) flag only when the access is allowed.
 */
function oracle(
  memory: Map<bigint, bigint>,
  cr3: bigint,
  va: bigint,
  access: { write: boolean; fetch: boolean; user: boolean },
  wp: boolean,
) {
  const writes: [bigint, bigint][] = [];
  let table = cr3 & 0x000ffffffffff000n;
  let writable = true;
  let user = true;
  let xd = false;
  const code = (present: boolean) =>
    (present ? 1n : 0n) | (access.write ? 2n : 0n) | (access.user ? 4n : 0n) | (access.fetch ? 16n : 0n);
  for (let level = 4; level >= 1; level--) {
    const index = (va >> BigInt(12 + 9 * (level - 1))) & 0x1ffn;
    const address = table + index * 8n;
    const entry = memory.get(address) ?? 0n;
    if ((entry & 1n) === 0n) return { fault: true, errorCode: code(false), pa: null, writes };
    writable &&= (entry & 2n) !== 0n;
    user &&= (entry & 4n) !== 0n;
    xd ||= entry >> 63n === 1n;
    if (level > 1) {
      if ((entry & 0x20n) === 0n) {
        memory.set(address, entry | 0x20n);
        writes.push([address, entry | 0x20n]);
      }
      table = entry & 0x000ffffffffff000n;
      continue;
    }
    const denied =
      (access.user && !user) || (access.write && !writable && (access.user || wp)) || (access.fetch && xd);
    if (denied) return { fault: true, errorCode: code(true), pa: null, writes };
    const wanted = access.write ? 0x60n : 0x20n;
    if ((entry & wanted) !== wanted) {
      memory.set(address, entry | wanted);
      writes.push([address, entry | wanted]);
    }
    return { fault: false, errorCode: 0n, pa: (entry & 0x00003ffffffff000n) | (va & 0xfffn), writes };
  }
  throw new Error("unreachable");
}

const hex = (v: bigint) => `0x${v.toString(16)}`;

describe("parseScenario", () => {
  it("takes hex strings or numbers and fills defaults", () => {
    const s = parseScenario({
      cpu: { cr3: 4096, cpl: 3 },
      memory: [["0x1000", 0x2003]],
      va: "0x10",
      access: {},
    });
    expect(s).toMatchObject({ cr3: 4096, cpl: 3, user: true, write: false, maxPhysAddr: 46 });
    expect(s.memory).toEqual([[0x1000n, 0x2003n]]);
  });

  it("names the field at fault", () => {
    expect(() => parseScenario({ cpu: { cr3: "0x1000", cr9: 1 }, va: 0 })).toThrow(/cpu\.cr9: unknown field/);
    expect(() => parseScenario({ cpu: {}, va: 0 })).toThrow(/cpu\.cr3: missing/);
    expect(() => parseScenario({ cpu: { cr3: 0 }, va: "zz" })).toThrow(
      /va: expected a number or a "0x…" string/,
    );
    expect(() => parseScenario({ cpu: { cr3: 0 }, memory: [["0x1001", 1]], va: 0 })).toThrow(
      /memory\[0\]\[0\]: address 0x1001 is not 4-byte aligned/,
    );
    expect(() => parseScenario({ cpu: { cr3: 0 }, va: 0, access: { write: "yes" } })).toThrow(
      /access\.write: expected true or false/,
    );
    expect(() => parseScenario({ cpu: { cr3: 0 }, va: 0, access: { write: true, fetch: true } })).toThrow(
      ScenarioError,
    );
    expect(() => parseScenario([])).toThrow(/a scenario is a JSON object/);
  });
});

describe("runScenario", () => {
  it("agrees with an SDM oracle on random 4-level walks (fault, error code, address, A/D writes)", () => {
    const entry = fc.record({
      present: fc.integer({ min: 0, max: 9 }).map((n) => n > 0),
      rw: fc.boolean(),
      us: fc.boolean(),
      accessed: fc.boolean(),
      dirty: fc.boolean(),
      xd: fc.integer({ min: 0, max: 4 }).map((n) => n === 0),
    });
    fc.assert(
      fc.property(
        fc.array(entry, { minLength: 4, maxLength: 4 }),
        fc.bigInt({ min: 0n, max: (1n << 34n) - 1n }),
        fc.bigInt({ min: 0n, max: (1n << 47n) - 1n }),
        fc
          .record({ write: fc.boolean(), fetch: fc.boolean(), user: fc.boolean() })
          .filter((a) => !(a.write && a.fetch)),
        fc.boolean(),
        (entries, frame, va, access, wp) => {
          const memory = new Map<bigint, bigint>();
          const cr3 = 0x10000n;
          let table = cr3;
          entries.forEach((e, i) => {
            const level = 4 - i;
            const next = level > 1 ? 0x11000n + BigInt(i) * 0x1000n : frame << 12n;
            let value = next;
            if (e.present) value |= 1n;
            if (e.rw) value |= 2n;
            if (e.us) value |= 4n;
            if (e.accessed) value |= 0x20n;
            if (e.dirty && level === 1) value |= 0x40n;
            if (e.xd) value |= 1n << 63n;
            const index = (va >> BigInt(12 + 9 * (level - 1))) & 0x1ffn;
            memory.set(table + index * 8n, value);
            table = next;
          });
          const scenario = {
            cpu: {
              cr0: hex(wp ? 0x80010011n : 0x80000011n),
              cr3: hex(cr3),
              cr4: "0x20",
              efer: "0xd00",
              cpl: access.user ? 3 : 0,
            },
            memory: [...memory].map(([a, v]) => [hex(a), hex(v)]),
            va: hex(va),
            access: { write: access.write, fetch: access.fetch, user: access.user },
          };
          const got = batchResult(runScenario(parseScenario(scenario)));
          const want = oracle(new Map(memory), cr3, va, access, wp);
          expect(got).toEqual({
            fault: want.fault,
            errorCode: hex(want.errorCode),
            pa: want.pa === null ? null : hex(want.pa),
            writes: want.writes.map(([a, v]) => [hex(a), hex(v)]),
          });
        },
      ),
      { numRuns: 300 },
    );
  });

  it("reports every entry read, the page size and the effective rights", () => {
    const outcome = runScenario(
      parseScenario({
        cpu: { cr3: "0x1000" },
        memory: [
          ["0x1000", "0x2007"],
          ["0x2000", "0x3007"],
          ["0x3000", "0x400087"],
        ],
        va: "0x1234",
        access: { write: true },
      }),
    );
    expect(outcome.mode).toBe("4-level");
    expect(outcome.entries.map((e) => e.level)).toEqual([4, 3, 2]);
    expect(outcome.pageSize).toBe(2 * 1024 * 1024);
    expect(outcome.pa).toBe(0x401234n);
    expect(outcome.pageAccess).toBe(7);
  });

  it("walks PAE paging through the PDPTE registers and 32-bit paging with 4-byte entries", () => {
    const pae = runScenario(
      parseScenario({
        cpu: { cr0: "0x80000011", cr3: "0x1000", cr4: "0x20", efer: "0" },
        memory: [
          ["0x1000", "0x2001"],
          ["0x2000", "0x3003"],
          ["0x3008", "0x5003"],
        ],
        va: "0x1000",
        access: {},
      }),
    );
    expect(pae).toMatchObject({ mode: "PAE", fault: false, pa: 0x5000n });
    expect(pae.entries[0]!.address).toBeNull();
    const bit32 = runScenario(
      parseScenario({
        cpu: { cr0: "0x80000011", cr3: "0x1000", cr4: "0", efer: "0" },
        memory: [
          ["0x1000", "0x2003"],
          ["0x2004", "0x7003"],
        ],
        va: "0x1000",
        access: {},
      }),
    );
    expect(bit32).toMatchObject({ mode: "32-bit", entryBytes: 4, pa: 0x7000n });
    expect(bit32.writes).toEqual([
      [0x1000n, 0x2023n],
      [0x2004n, 0x7023n],
    ]);
  });

  it("refuses non-canonical addresses and bad PDPTEs instead of faulting", () => {
    expect(() => runScenario(parseScenario({ cpu: { cr3: "0x1000" }, va: "0x800000000000" }))).toThrow(
      /not canonical/,
    );
    expect(() =>
      runScenario(
        parseScenario({
          cpu: { cr0: "0x80000011", cr3: "0x1000", cr4: "0x20", efer: "0" },
          memory: [["0x1000", "0x2007"]],
          va: 0,
        }),
      ),
    ).toThrow(/PDPTE 0 at CR3 has a reserved bit set/);
  });
});
