import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DenseMemory } from "./dense-memory";
import { type EptCapabilities, eptCapabilities, MODERN_EPT_CAPABILITIES } from "./ept-capabilities";
import { createEptContext } from "./ept-context";
import { EPT_MISCONFIG, EPTE_HI, EPTE_LO } from "./ept-entry";
import { encodeEptPointer } from "./ept-pointer";
import { EPT_VIOLATION } from "./ept-violation";
import { EPT_ACCESS, EPT_OUTCOME, EptWalker } from "./ept-walk";
import { AD_UPDATE, type AdUpdate } from "./page-walk";
import { SparseMemory } from "./sparse-memory";
import {
  EPT_MBEC_TABLE,
  EPT_PERMISSION_TABLE,
  FETCH,
  FINAL,
  GLA,
  PERM_RD,
  PERM_WR,
  RD,
  WR,
  XU,
} from "./testing/ept-outcome-tables";
import { EPT_LEAF_RWX_WB, EptTableBuilder } from "./testing/ept-table-builder";
import { WalkTrace } from "./walk-result";

/** The kvm-unit-tests data page: GPA 2^39 (its own PML4E), 4-KiB mapped unless made huge. */
const DATA_GPA = 2 ** 39;
const DATA_HPA = 0x40000000; // 1-GiB aligned, so every leaf size can map it

type Op = "read" | "write" | "exec" | "userExec";
const OPS: readonly Op[] = ["read", "write", "exec"];

function setup(
  opts: {
    levels?: 4 | 5;
    caps?: EptCapabilities;
    mbec?: boolean;
    ad?: boolean;
    sss?: boolean;
    adUpdate?: AdUpdate;
    hugeLevel?: 1 | 2 | 3;
  } = {},
) {
  const host = new DenseMemory(4 * 1024 * 1024);
  const tables = new EptTableBuilder(host, 0x100000, opts.levels ?? 4);
  // Every level grants everything (with MBEC, user-execute too) until a test twiddles one.
  const allXu = opts.mbec ? XU : 0;
  tables.map(DATA_GPA, DATA_HPA, {
    leafLevel: opts.hugeLevel ?? 1,
    upperLo: EPTE_LO.XWR | allXu,
    leafLo: EPT_LEAF_RWX_WB | allXu,
  });
  const eptp = tables.eptp({ accessedDirty: opts.ad ?? false, supervisorShadowStack: opts.sss ?? false });
  const ctx = createEptContext(
    { eptpLo: eptp.lo, eptpHi: eptp.hi, modeBasedExecute: opts.mbec ?? false },
    opts.caps ?? MODERN_EPT_CAPABILITIES,
    46,
  );
  const walker = new EptWalker(host, opts.adUpdate === undefined ? {} : { adUpdate: opts.adUpdate });
  const run = (op: Op, gpa = DATA_GPA) => {
    if (op === "read") return walker.walk(ctx, gpa, EPT_ACCESS.READ, FINAL);
    if (op === "write") return walker.walk(ctx, gpa, EPT_ACCESS.WRITE, FINAL);
    const user = op === "userExec" ? EPT_VIOLATION.USER_LINEAR : 0;
    return walker.walk(ctx, gpa + 8, EPT_ACCESS.FETCH, FINAL | user);
  };
  /** The outcome of an op as "ok", "misconfig" or the qualification without bits 11:9, as the tests mask it. */
  const outcome = (op: Op): "ok" | "misconfig" | number => {
    if (run(op)) return "ok";
    if (walker.result.outcome === EPT_OUTCOME.MISCONFIG) return "misconfig";
    return walker.result.qualification & ~EPT_VIOLATION.ADVANCED_MASK;
  };
  /** Replaces bits 2:0 and 10 of the entry at `level` with `perms`, returning a restore function. */
  const twiddle = (level: number, perms: number, setLo = 0, setHi = 0) => {
    const { lo, hi } = tables.entry(DATA_GPA, level);
    tables.setEntry(DATA_GPA, level, ((lo & ~(EPTE_LO.XWR | XU)) | perms | setLo) >>> 0, (hi | setHi) >>> 0);
    return () => tables.setEntry(DATA_GPA, level, lo, hi);
  };
  return { host, tables, ctx, walker, run, outcome, twiddle };
}

describe("EptWalker: translation", () => {
  it("translates a 4-KiB page through four levels and reports what it read", () => {
    const { walker, ctx, tables } = setup();
    const trace = new WalkTrace();
    expect(walker.walk(ctx, DATA_GPA + 0x123, EPT_ACCESS.READ, 0, trace)).toBe(true);
    const r = walker.result;
    expect(r.hpa).toBe(DATA_HPA + 0x123);
    expect(r.pageSize).toBe(4096);
    expect(r.level).toBe(1);
    expect(r.permissions).toBe(EPTE_LO.XWR);
    expect(r.memoryType).toBe(6);
    expect(r.entryReads).toBe(4);
    expect(r.entryWrites).toBe(0);
    expect(trace.entries().map((e) => e.level)).toEqual([4, 3, 2, 1]);
    expect(trace.entries()[3]!.address).toBe(tables.entryAddress(DATA_GPA, 1));
  });

  it("maps 2-MiB and 1-GiB pages with the offset below the page size", () => {
    for (const [hugeLevel, size] of [
      [2, 2 * 1024 * 1024],
      [3, 1024 * 1024 * 1024],
    ] as const) {
      const { walker, ctx } = setup({ hugeLevel });
      expect(walker.walk(ctx, DATA_GPA + 0x1f_f123, EPT_ACCESS.WRITE, 0)).toBe(true);
      expect(walker.result.hpa).toBe(DATA_HPA + 0x1f_f123);
      expect(walker.result.pageSize).toBe(size);
      expect(walker.result.level).toBe(hugeLevel);
      expect(walker.result.entryReads).toBe(5 - hugeLevel);
    }
  });

  it("walks five levels with EPTP page-walk length 5, indexing GPA bits 51:48", () => {
    const host = new DenseMemory(2 * 1024 * 1024);
    const tables = new EptTableBuilder(host, 0x10000, 5);
    const gpa = 0x000f_1234_5678_9000;
    tables.map(gpa, 0x3_0000_0000);
    const eptp = tables.eptp();
    const ctx = createEptContext({ eptpLo: eptp.lo, eptpHi: eptp.hi }, MODERN_EPT_CAPABILITIES, 52);
    const walker = new EptWalker(host);
    expect(walker.walk(ctx, gpa + 0xabc, EPT_ACCESS.READ, 0)).toBe(true);
    expect(walker.result.hpa).toBe(0x3_0000_0abc);
    expect(walker.result.entryReads).toBe(5);
    // A different PML5 index is a different, unmapped, region.
    expect(walker.walk(ctx, gpa - 2 ** 48, EPT_ACCESS.READ, 0)).toBe(false);
    expect(walker.result.level).toBe(5);
  });

  it("reports the effective permissions as the AND over the levels", () => {
    const { walker, ctx, twiddle } = setup();
    twiddle(3, 0x5);
    twiddle(1, 0x3);
    expect(walker.walk(ctx, DATA_GPA, EPT_ACCESS.READ, 0)).toBe(true);
    expect(walker.result.permissions).toBe(0x1);
  });
});

describe("EptWalker: kvm-unit-tests ept_access_test_* outcomes (vmx-tests.md §8)", () => {
  for (const row of EPT_PERMISSION_TABLE) {
    it(`${row.name}: at every level, and as a 2-MiB / 1-GiB leaf`, () => {
      const caps = eptCapabilities({ executeOnly: row.executeOnly });
      const cases: { level: number; hugeLevel: 1 | 2 | 3 }[] = [
        { level: 1, hugeLevel: 1 },
        { level: 2, hugeLevel: 1 },
        { level: 3, hugeLevel: 1 },
        { level: 4, hugeLevel: 1 },
        { level: 2, hugeLevel: 2 },
        { level: 3, hugeLevel: 3 },
      ];
      for (const { level, hugeLevel } of cases) {
        const { outcome, twiddle, walker } = setup({ caps, hugeLevel });
        const restore = twiddle(level, row.perms);
        OPS.forEach((op, i) => {
          expect(outcome(op), `${op} at level ${level} (leaf ${hugeLevel})`).toBe(row.expect[i]);
          // Not-present and misconfigured entries stop the walk where they are; rights are
          // checked at the leaf.
          const stop = row.perms === 0 || row.expect[i] === "misconfig" ? level : hugeLevel;
          if (outcome(op) !== "ok") expect(walker.result.level).toBe(stop);
        });
        // Each violation is then fixed and the access retried successfully.
        restore();
        for (const op of OPS) expect(outcome(op)).toBe("ok");
      }
    });
  }
});

describe("EptWalker: mode-based execute control (bit 10 = user-execute)", () => {
  for (const row of EPT_MBEC_TABLE) {
    it(`${row.name} (perms 0x${row.perms.toString(16)}) at every level`, () => {
      for (const level of [1, 2, 3, 4]) {
        const { outcome, twiddle } = setup({ mbec: true });
        twiddle(level, row.perms);
        (["read", "write", "exec", "userExec"] as const).forEach((op, i) => {
          expect(outcome(op), `${op} at level ${level}`).toBe(row.expect[i]);
        });
      }
    });
  }

  it("makes an entry with only bit 10 present (reserved bits then count)", () => {
    const { outcome, twiddle } = setup({ mbec: true });
    twiddle(2, XU, 0, 1 << 14); // bit 46: beyond MAXPHYADDR
    expect(outcome("userExec")).toBe("misconfig");
  });

  it("ignores bit 10 without mode-based execute control", () => {
    const { outcome, twiddle } = setup();
    twiddle(1, XU);
    expect(outcome("exec")).toBe(FETCH | FINAL);
    expect(outcome("userExec")).toBe(FETCH | FINAL);
    twiddle(1, 0x7 | XU);
    expect(outcome("userExec")).toBe("ok");
    twiddle(1, 0x3 | XU);
    expect(outcome("userExec")).toBe(FETCH | PERM_RD | PERM_WR | FINAL);
  });
});

describe("EptWalker: reserved and ignored bits (ept_access_test_reserved_bits / _ignored_bits)", () => {
  it("misconfigures any address bit MAXPHYADDR..51 in a present entry at any level", () => {
    for (const level of [1, 2, 3, 4]) {
      for (let bit = 46; bit <= 51; bit++) {
        const { outcome, twiddle } = setup();
        twiddle(level, 0x7, 0, 1 << (bit - 32));
        for (const op of OPS) expect(outcome(op), `bit ${bit} at level ${level}`).toBe("misconfig");
        // The same bit in a non-present entry is ignored: a plain violation.
        twiddle(level, 0, 0, 1 << (bit - 32));
        expect(outcome("read")).toBe(RD | FINAL);
      }
    }
  });

  it("misconfigures bits 6:3 in non-leaf PDPTE/PDE and bits 7:3 in a PML4E", () => {
    for (const [level, bits] of [
      [2, [3, 4, 5, 6]],
      [3, [3, 4, 5, 6]],
      [4, [3, 4, 5, 6, 7]],
    ] as const) {
      for (const bit of bits) {
        const { outcome, twiddle } = setup();
        twiddle(level, 0x7, 1 << bit);
        for (const op of OPS) expect(outcome(op), `bit ${bit} at level ${level}`).toBe("misconfig");
      }
    }
  });

  it("misconfigures bits 20:12 of a 2-MiB leaf and 29:12 of a 1-GiB leaf", () => {
    for (const [hugeLevel, top] of [
      [2, 20],
      [3, 29],
    ] as const) {
      for (let bit = 12; bit <= top; bit++) {
        const { outcome, twiddle } = setup({ hugeLevel });
        twiddle(hugeLevel, 0x7, 1 << bit);
        expect(outcome("read"), `bit ${bit} of a level-${hugeLevel} leaf`).toBe("misconfig");
      }
    }
  });

  it("misconfigures a large leaf whose page size the processor does not support", () => {
    expect(setup({ hugeLevel: 3, caps: eptCapabilities({ pages1G: false }) }).outcome("read")).toBe(
      "misconfig",
    );
    expect(setup({ hugeLevel: 2, caps: eptCapabilities({ pages2M: false }) }).outcome("read")).toBe(
      "misconfig",
    );
    expect(setup({ hugeLevel: 2, caps: eptCapabilities({ pages1G: false }) }).outcome("read")).toBe("ok");
  });

  it("misconfigures memory types 2, 3 and 7 in a leaf", () => {
    for (const hugeLevel of [1, 2, 3] as const) {
      for (let type = 0; type < 8; type++) {
        const { outcome, tables } = setup({ hugeLevel });
        const { lo, hi } = tables.entry(DATA_GPA, hugeLevel);
        tables.setEntry(DATA_GPA, hugeLevel, (lo & ~EPTE_LO.MEMORY_TYPE_MASK) | (type << 3), hi);
        const bad = type === 2 || type === 3 || type === 7;
        expect(outcome("read")).toBe(bad ? "misconfig" : "ok");
      }
    }
  });

  it("names the misconfiguration and the level where it was found", () => {
    const { walker, twiddle, run } = setup({ caps: eptCapabilities({ executeOnly: false }) });
    twiddle(3, 0x2);
    run("read");
    expect(walker.result.misconfig).toBe(EPT_MISCONFIG.WRITE_WITHOUT_READ);
    expect(walker.result.level).toBe(3);
    twiddle(3, 0x4);
    run("read");
    expect(walker.result.misconfig).toBe(EPT_MISCONFIG.EXECUTE_ONLY);
    twiddle(3, 0x7, 1 << 5);
    run("read");
    expect(walker.result.misconfig).toBe(EPT_MISCONFIG.RESERVED_BIT);
  });

  it("takes a misconfiguration lower down over a permission violation higher up", () => {
    const { outcome, twiddle } = setup();
    twiddle(4, 0x1);
    twiddle(1, 0x7, 0, 1 << 15);
    expect(outcome("write")).toBe("misconfig");
  });

  it("ignores bits 8, 9, 10 (no MBEC), 11 and 52..63 at every level, with EPT A/D off and on", () => {
    const ignored = [8, 9, 10, 11, ...Array.from({ length: 12 }, (_, i) => 52 + i)];
    for (const ad of [false, true]) {
      for (const [level, hugeLevel] of [
        [1, 1],
        [2, 1],
        [3, 1],
        [4, 1],
        [2, 2],
        [3, 3],
      ] as const) {
        for (const bit of ignored) {
          for (const perms of [0x7, 0x1]) {
            const { outcome, twiddle } = setup({ ad, hugeLevel });
            const before = OPS.map((op) => outcome(op));
            twiddle(level, perms);
            const expected = OPS.map((op) => outcome(op));
            twiddle(level, perms, bit < 32 ? 1 << bit : 0, bit >= 32 ? (1 << (bit - 32)) >>> 0 : 0);
            expect(
              OPS.map((op) => outcome(op)),
              `bit ${bit} at level ${level}`,
            ).toEqual(expected);
            expect(before).toEqual(["ok", "ok", "ok"]);
          }
        }
      }
    }
  });

  it("ignores bit 7 of an EPT PTE", () => {
    const { outcome, twiddle } = setup();
    twiddle(1, 0x7, EPTE_LO.LARGE_PAGE);
    expect(outcome("read")).toBe("ok");
  });
});

describe("EptWalker: qualification details", () => {
  it("reports advanced linear-address bits only for final translations and with the capability", () => {
    const linear = FINAL | EPT_VIOLATION.USER_LINEAR | EPT_VIOLATION.EXECUTE_DISABLE_LINEAR;
    const { walker, ctx, twiddle } = setup();
    twiddle(1, 0x1);
    walker.walk(ctx, DATA_GPA, EPT_ACCESS.WRITE, linear);
    expect(walker.result.qualification).toBe(WR | PERM_RD | linear);
    walker.walk(ctx, DATA_GPA, EPT_ACCESS.WRITE, GLA | EPT_VIOLATION.ADVANCED_MASK);
    expect(walker.result.qualification).toBe(WR | PERM_RD | GLA);
    walker.walk(ctx, DATA_GPA, EPT_ACCESS.WRITE, 0);
    expect(walker.result.qualification).toBe(WR | PERM_RD);

    const noAdvanced = setup({ caps: eptCapabilities({ advancedExitInfo: false }) });
    noAdvanced.twiddle(1, 0x1);
    noAdvanced.walker.walk(noAdvanced.ctx, DATA_GPA, EPT_ACCESS.WRITE, linear);
    expect(noAdvanced.walker.result.qualification).toBe(WR | PERM_RD | FINAL);
  });

  it("reports the leaf's supervisor-shadow-stack bit (14) with EPTP bit 7, once the walk reaches the leaf", () => {
    const { walker, ctx, twiddle } = setup({ sss: true });
    twiddle(1, 0x1, 0, EPTE_HI.SUPERVISOR_SHADOW_STACK);
    walker.walk(ctx, DATA_GPA, EPT_ACCESS.WRITE, FINAL);
    expect(walker.result.qualification).toBe(WR | PERM_RD | FINAL | EPT_VIOLATION.SUPERVISOR_SHADOW_STACK);
    twiddle(2, 0);
    walker.walk(ctx, DATA_GPA, EPT_ACCESS.WRITE, FINAL);
    expect(walker.result.qualification).toBe(WR | FINAL);

    const off = setup();
    off.twiddle(1, 0x1, 0, EPTE_HI.SUPERVISOR_SHADOW_STACK);
    off.walker.walk(off.ctx, DATA_GPA, EPT_ACCESS.WRITE, FINAL);
    expect(off.walker.result.qualification).toBe(WR | PERM_RD | FINAL);
  });
});

describe("EptWalker: accessed and dirty flags (SDM 29.3.5; eptad tests)", () => {
  const adBits = (tables: EptTableBuilder, level: number) =>
    tables.entry(DATA_GPA, level).lo & (EPTE_LO.ACCESSED | EPTE_LO.DIRTY);

  it("sets A on every level for a read, and D only on the leaf for a write", () => {
    const { run, tables, walker } = setup({ ad: true });
    expect(run("read")).toBe(true);
    for (const level of [4, 3, 2]) expect(adBits(tables, level)).toBe(EPTE_LO.ACCESSED);
    expect(adBits(tables, 1)).toBe(EPTE_LO.ACCESSED);
    expect(walker.result.entryWrites).toBe(4);
    expect(run("write")).toBe(true);
    for (const level of [4, 3, 2]) expect(adBits(tables, level)).toBe(EPTE_LO.ACCESSED);
    expect(adBits(tables, 1)).toBe(EPTE_LO.ACCESSED | EPTE_LO.DIRTY);
    expect(walker.result.entryWrites).toBe(1);
    expect(walker.result.leafLo & EPTE_LO.DIRTY).toBe(EPTE_LO.DIRTY);
    expect(run("write")).toBe(true);
    expect(walker.result.entryWrites).toBe(0);
  });

  it("sets D on a large leaf", () => {
    const { run, tables } = setup({ ad: true, hugeLevel: 2 });
    run("write");
    expect(adBits(tables, 2)).toBe(EPTE_LO.ACCESSED | EPTE_LO.DIRTY);
  });

  it("writes nothing when EPTP bit 6 is clear", () => {
    const { run, tables, host, walker } = setup();
    const before = host.readBytes(0x100000, 5 * 4096);
    run("read");
    run("write");
    expect(walker.result.entryWrites).toBe(0);
    expect(host.readBytes(0x100000, 5 * 4096)).toEqual(before);
    expect(adBits(tables, 1)).toBe(0);
  });

  it("HARDWARE sets A on the upper entries it used even when the leaf denies the access; AFTER_SUCCESS does not", () => {
    for (const adUpdate of [AD_UPDATE.HARDWARE, AD_UPDATE.AFTER_SUCCESS, AD_UPDATE.NONE]) {
      const { run, tables, twiddle } = setup({ ad: true, adUpdate });
      twiddle(1, 0x1);
      expect(run("write")).toBe(false);
      const upper = adUpdate === AD_UPDATE.HARDWARE ? EPTE_LO.ACCESSED : 0;
      for (const level of [4, 3, 2]) expect(adBits(tables, level)).toBe(upper);
      expect(adBits(tables, 1)).toBe(0);
      twiddle(1, 0x3);
      expect(run("write")).toBe(true);
      const done = adUpdate === AD_UPDATE.NONE ? 0 : EPTE_LO.ACCESSED;
      for (const level of [4, 3, 2]) expect(adBits(tables, level)).toBe(done);
      expect(adBits(tables, 1)).toBe(adUpdate === AD_UPDATE.NONE ? 0 : EPTE_LO.ACCESSED | EPTE_LO.DIRTY);
    }
  });

  it("treats guest paging-structure accesses as writes when A/D is enabled", () => {
    const { walker, ctx, tables, twiddle } = setup({ ad: true });
    // A read-only page holding guest page tables: the access needs W, and reports RD|WR.
    twiddle(1, 0x1);
    expect(walker.walk(ctx, DATA_GPA, EPT_ACCESS.READ, GLA)).toBe(false);
    expect(walker.result.qualification).toBe(RD | WR | PERM_RD | GLA);
    twiddle(1, 0x3);
    expect(walker.walk(ctx, DATA_GPA, EPT_ACCESS.READ, GLA)).toBe(true);
    expect(adBits(tables, 1)).toBe(EPTE_LO.ACCESSED | EPTE_LO.DIRTY);
    // Without a linear address (a PDPTE load by MOV to CR3) it stays a read.
    twiddle(1, 0x1);
    expect(walker.walk(ctx, DATA_GPA, EPT_ACCESS.READ, 0)).toBe(true);

    const off = setup();
    off.twiddle(1, 0x1);
    expect(off.walker.walk(off.ctx, DATA_GPA, EPT_ACCESS.READ, GLA)).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
// Property: the walker against a direct BigInt reading of the SDM rules on random entries.

interface OracleConfig {
  root: number;
  levels: 4 | 5;
  mbec: boolean;
  executeOnly: boolean;
  accessedDirty: boolean;
  advanced: boolean;
  pages1G: boolean;
  pages2M: boolean;
  maxPhysAddr: number;
}

type OracleResult =
  | { kind: "ok"; hpa: number; pageSize: number; level: number; permissions: number }
  | { kind: "violation"; qualification: number; level: number }
  | { kind: "misconfig"; level: number };

const bitRange = (from: number, to: number) => ((1n << BigInt(to - from + 1)) - 1n) << BigInt(from);

function oracleWalk(
  read64: (pa: number) => bigint,
  c: OracleConfig,
  gpa: number,
  access: number,
  linear: number,
): OracleResult {
  const g = BigInt(gpa);
  const pageWalkAccess =
    c.accessedDirty && (linear & GLA) !== 0 && (linear & EPT_VIOLATION.FINAL_TRANSLATION) === 0;
  const effective = pageWalkAccess ? access | RD | WR : access;
  let all = { r: 1n, w: 1n, x: 1n, xu: 1n };
  const qualify = (level: number): OracleResult => {
    let q = BigInt(effective & 7) | (all.r << 3n) | (all.w << 4n) | (all.x << 5n);
    if (c.mbec) q |= all.xu << 6n;
    if (linear & GLA) {
      q |= BigInt(linear & FINAL);
      if (c.advanced && linear & EPT_VIOLATION.FINAL_TRANSLATION) q |= BigInt(linear & 0xe00);
    }
    return { kind: "violation", qualification: Number(q), level };
  };
  let table = BigInt(c.root);
  for (let level: number = c.levels; level >= 1; level--) {
    const index = (g >> BigInt(12 + 9 * (level - 1))) & 511n;
    const e = read64(Number(table + index * 8n));
    const bit = (n: number) => (e >> BigInt(n)) & 1n;
    all = { r: all.r & bit(0), w: all.w & bit(1), x: all.x & bit(2), xu: all.xu & bit(10) };
    const present = bit(0) | bit(1) | bit(2) | (c.mbec ? bit(10) : 0n);
    if (present === 0n) return qualify(level);
    if (bit(0) === 0n && bit(1) === 1n) return { kind: "misconfig", level };
    if (bit(0) === 0n && bit(1) === 0n && bit(2) === 1n && !c.executeOnly)
      return { kind: "misconfig", level };
    if (c.maxPhysAddr < 52 && (e & bitRange(c.maxPhysAddr, 51)) !== 0n) return { kind: "misconfig", level };
    const ps = bit(7) === 1n;
    let leaf = level === 1;
    if (level >= 4) {
      if ((e & bitRange(3, 7)) !== 0n) return { kind: "misconfig", level };
    } else if (level >= 2) {
      if (ps) {
        if (!(level === 3 ? c.pages1G : c.pages2M)) return { kind: "misconfig", level };
        if ((e & bitRange(12, level === 3 ? 29 : 20)) !== 0n) return { kind: "misconfig", level };
        leaf = true;
      } else if ((e & bitRange(3, 6)) !== 0n) {
        return { kind: "misconfig", level };
      }
    }
    if (leaf) {
      const type = Number((e >> 3n) & 7n);
      if (type === 2 || type === 3 || type === 7) return { kind: "misconfig", level };
      let denied = false;
      if (effective & RD && all.r === 0n) denied = true;
      if (effective & WR && all.w === 0n) denied = true;
      if (effective & FETCH) {
        const userFetch = c.mbec && (linear & EPT_VIOLATION.USER_LINEAR) !== 0;
        if ((userFetch ? all.xu : all.x) === 0n) denied = true;
      }
      if (denied) return qualify(level);
      const offsetBits = BigInt(12 + 9 * (level - 1));
      const frame = e & bitRange(Number(offsetBits), 51);
      const permissions = Number(all.r | (all.w << 1n) | (all.x << 2n) | (c.mbec ? all.xu << 10n : 0n));
      return {
        kind: "ok",
        hpa: Number(frame | (g & ((1n << offsetBits) - 1n))),
        pageSize: 2 ** Number(offsetBits),
        level,
        permissions,
      };
    }
    table = e & bitRange(12, 51);
  }
  throw new Error("unreachable");
}

/** Mostly well-formed entries, so that walks get through as well as stop at every kind of fault. */
const mostly = <T>(usual: T, other: fc.Arbitrary<T>) =>
  fc.oneof({ arbitrary: fc.constant(usual), weight: 6 }, { arbitrary: other, weight: 1 });
const entryArbitrary = (level: number) =>
  fc.record({
    xwr: mostly(7, fc.integer({ min: 0, max: 7 })),
    xu: fc.boolean(),
    memoryType: mostly(6, fc.integer({ min: 0, max: 7 })),
    large: level === 2 || level === 3 ? fc.boolean() : fc.constant(false),
    noise: mostly<number | null>(null, fc.integer({ min: 3, max: 63 })),
    frame: fc.integer({ min: 0, max: 2 ** 20 - 1 }),
    frameHigh: mostly(0, fc.integer({ min: 0, max: 0xfffff })),
  });

describe("EptWalker vs a BigInt oracle of the SDM rules (property)", () => {
  it("agrees on outcome, qualification, address, size and permissions", () => {
    const gpaArbitrary = fc.bigInt({ min: 0n, max: (1n << 52n) - 1n }).map((g) => Number(g));
    fc.assert(
      fc.property(
        fc.record({
          levels: fc.constantFrom(4 as const, 5 as const),
          mbec: fc.boolean(),
          executeOnly: fc.boolean(),
          accessedDirty: fc.boolean(),
          advanced: fc.boolean(),
          pages1G: mostly(true, fc.boolean()),
          pages2M: mostly(true, fc.boolean()),
          maxPhysAddr: fc.constantFrom(36, 46, 46, 52),
        }),
        fc.tuple(
          entryArbitrary(1),
          entryArbitrary(2),
          entryArbitrary(3),
          entryArbitrary(4),
          entryArbitrary(5),
        ),
        gpaArbitrary,
        fc.constantFrom(RD, WR, FETCH, RD | WR),
        fc.constantFrom(0, GLA, FINAL, FINAL | 0x200, FINAL | 0xe00, FINAL | 0x400),
        (cfg, entries, gpa, access, linear) => {
          const host = new SparseMemory();
          const root = 0x1000;
          // Table for level L at 0x1000 * (levels - L + 1); each non-leaf entry points at the next.
          for (let i = 0; i < cfg.levels; i++) {
            const level = cfg.levels - i;
            const e = entries[level - 1]!;
            const table = root + i * 0x1000;
            const index = Math.floor(gpa / 2 ** (12 + 9 * (level - 1))) % 512;
            let lo = e.xwr | (e.xu ? XU : 0) | (e.memoryType << 3) | (e.large ? EPTE_LO.LARGE_PAGE : 0);
            let hi = 0;
            const leafish = level === 1 || e.large;
            if (!leafish) {
              lo = e.xwr | (e.xu ? XU : 0) | (table + 0x1000);
            } else {
              // A large leaf's frame is aligned to its size (noise may still break that).
              const frame = level === 1 ? e.frame : e.frame & ~((1 << (9 * (level - 1))) - 1);
              lo = (lo | ((frame << 12) >>> 0)) >>> 0;
              hi = e.frameHigh & 0xfffff;
            }
            if (e.noise !== null) {
              if (e.noise < 32) lo = (lo ^ (1 << e.noise)) >>> 0;
              else hi = (hi ^ (1 << (e.noise - 32))) >>> 0;
            }
            host.write64(table + index * 8, lo >>> 0, hi >>> 0);
          }
          const caps = eptCapabilities({
            executeOnly: cfg.executeOnly,
            advancedExitInfo: cfg.advanced,
            pages1G: cfg.pages1G,
            pages2M: cfg.pages2M,
          });
          const eptp = encodeEptPointer({
            memoryType: 6,
            walkLength: cfg.levels,
            accessedDirty: cfg.accessedDirty,
            supervisorShadowStack: false,
            root,
          });
          const ctx = createEptContext(
            { eptpLo: eptp.lo, eptpHi: eptp.hi, modeBasedExecute: cfg.mbec },
            caps,
            cfg.maxPhysAddr,
          );
          const walkerGpa = cfg.levels === 4 ? gpa % 2 ** 48 : gpa;
          const read64 = (pa: number) => (BigInt(host.read32(pa + 4)) << 32n) | BigInt(host.read32(pa));
          const expected = oracleWalk(read64, { ...cfg, root }, walkerGpa, access, linear);
          const walker = new EptWalker(host, { adUpdate: AD_UPDATE.NONE });
          const ok = walker.walk(ctx, walkerGpa, access, linear);
          const r = walker.result;
          if (expected.kind === "ok") {
            expect(ok).toBe(true);
            expect(r.hpa).toBe(expected.hpa);
            expect(r.pageSize).toBe(expected.pageSize);
            expect(r.permissions).toBe(expected.permissions);
          } else if (expected.kind === "violation") {
            expect(r.outcome).toBe(EPT_OUTCOME.VIOLATION);
            expect(r.qualification).toBe(expected.qualification);
          } else {
            expect(r.outcome).toBe(EPT_OUTCOME.MISCONFIG);
          }
          expect(r.level).toBe(expected.level);
        },
      ),
      { numRuns: 3000 },
    );
  });
});
