import {
  HostPageAllocator,
  Memslots,
  SHADOW_FAULT,
  SHADOW_FAULT_NAMES,
  ShadowMmu,
  ShadowPageStore,
  ShadowRootBackend,
  SPTE_FORMAT,
  shadowEptRoleBase,
} from "@nestvisor/mmu";
import { NOOP_METER } from "@nestvisor/vmx";
import {
  AD_UPDATE,
  CR0,
  CR4,
  createEptContext,
  createPagingContext,
  DenseMemory,
  EFER,
  EPT_ACCESS,
  EPT_MEMORY_TYPE,
  EPT_OUTCOME,
  type EptContext,
  EptStage2Translator,
  EptWalker,
  encodeEptPointer,
  FAULT_STAGE,
  MODERN_CPU,
  MODERN_EPT_CAPABILITIES,
  type PhysicalMemory,
} from "@nestvisor/x86-arch";
import { hex } from "../case-recorder";
import type { ModelParts } from "../model-parts";
import type { CaseGroup, Suite } from "../suite";
import { type EptEntrySpec, expectEptWalk, FINAL_LINEAR, QUALIFICATION_COMPARED } from "./ept-oracle";

const MAXPHY = 46;
const WB = EPT_MEMORY_TYPE.WB << 3;
const TWO_32 = 4294967296;
/** The test GPA: PML4 index 1 (GPA 2^39, a separate PML4E as kvm-unit-tests uses), PD 2, PT 3. */
const TEST_GPA = 2 ** 39 + 0x40_3000;
const OPS = [
  ["read", EPT_ACCESS.READ],
  ["write", EPT_ACCESS.WRITE],
  ["fetch", EPT_ACCESS.FETCH],
] as const;

/** What is done to the entry under test. */
interface Shape {
  /** Level of the entry under test (1 = PTE … 4 = PML4E). */
  readonly level: 1 | 2 | 3 | 4;
  /** Levels 2–3: the entry maps a 2-MiB / 1-GiB page. */
  readonly huge: boolean;
  /** Bits 2:0 of the entry under test. */
  readonly xwr: number;
  /** Extra bits set in the entry under test (low word, high word). */
  readonly setLo: number;
  readonly setHi: number;
}

function describeShape(s: Shape): string {
  const perms = `${s.xwr & 1 ? "R" : "-"}${s.xwr & 2 ? "W" : "-"}${s.xwr & 4 ? "X" : "-"}`;
  const extra = s.setLo !== 0 || s.setHi !== 0 ? ` +bits ${hex(s.setHi * TWO_32 + s.setLo)}` : "";
  return `level ${s.level}${s.huge ? (s.level === 2 ? " (2 MiB)" : " (1 GiB)") : ""} ${perms}${extra}`;
}

/** Writes a 4-level EPT mapping TEST_GPA to `target` with `shape` applied; returns the entries walked. */
function buildEpt(memory: PhysicalMemory, base: number, target: number, s: Shape): EptEntrySpec[] {
  const tables = [base, base + 0x1000, base + 0x2000, base + 0x3000];
  const index = [
    Math.floor(TEST_GPA / 2 ** 39) % 512,
    Math.floor(TEST_GPA / 2 ** 30) % 512,
    Math.floor(TEST_GPA / 2 ** 21) % 512,
    Math.floor(TEST_GPA / 2 ** 12) % 512,
  ];
  const leafLevel = s.huge ? s.level : 1;
  const entries: EptEntrySpec[] = [];
  for (let level = 4; level >= leafLevel; level--) {
    const i = 4 - level;
    let lo: number;
    let hi = 0;
    if (level === leafLevel) {
      const size = level === 1 ? 0x1000 : level === 2 ? 0x20_0000 : 0x4000_0000;
      const frame = Math.floor(target / size) * size;
      lo = ((frame % TWO_32) | WB | 7 | (level > 1 ? 0x80 : 0)) >>> 0;
      hi = Math.floor(frame / TWO_32);
    } else {
      lo = (tables[i + 1]! | 7) >>> 0;
    }
    if (level === s.level) {
      // A memory type (bits 5:3 of a leaf) replaces the leaf's WB type.
      if (level === leafLevel && (s.setLo & 0x38) !== 0) lo = (lo & ~0x38) >>> 0;
      lo = ((lo & ~7) | s.xwr | s.setLo) >>> 0;
      hi = (hi | s.setHi) >>> 0;
    }
    memory.write64(tables[i]! + index[i]! * 8, lo, hi);
    entries.push({ lo, hi });
  }
  return entries;
}

function eptContextAt(root: number, accessedDirty: boolean): EptContext {
  const eptp = encodeEptPointer({
    memoryType: EPT_MEMORY_TYPE.WB,
    walkLength: 4,
    accessedDirty,
    supervisorShadowStack: false,
    root,
  });
  return createEptContext({ eptpLo: eptp.lo, eptpHi: eptp.hi }, MODERN_EPT_CAPABILITIES, MAXPHY);
}

const ORACLE = { executeOnly: MODERN_EPT_CAPABILITIES.executeOnly, maxPhysAddr: MAXPHY };

function describeOutcome(outcome: number, qualification: number): string {
  if (outcome === EPT_OUTCOME.OK) return "no exit";
  if (outcome === EPT_OUTCOME.MISCONFIG) return "an EPT misconfiguration (exit 49)";
  return `an EPT violation (exit 48) with qualification ${hex(qualification & QUALIFICATION_COMPARED)}`;
}

/** The shapes of kvm-unit-tests' ept_access_test_*: every permission at every level, huge or not. */
function permissionShapes(): Shape[] {
  const shapes: Shape[] = [];
  for (const [level, huge] of [
    [4, false],
    [3, false],
    [3, true],
    [2, false],
    [2, true],
    [1, false],
  ] as const) {
    for (let xwr = 0; xwr < 8; xwr++) shapes.push({ level, huge, xwr, setLo: 0, setHi: 0 });
  }
  return shapes;
}

/** Reserved bits (ept_access_test_reserved_bits) and ignored bits (ept_access_test_ignored_bits). */
function bitShapes(): Shape[] {
  const shapes: Shape[] = [];
  for (const [level, huge] of [
    [4, false],
    [3, false],
    [3, true],
    [2, false],
    [2, true],
    [1, false],
  ] as const) {
    for (let bit = MAXPHY; bit < 52; bit++) {
      for (const xwr of [7, 0]) shapes.push({ level, huge, xwr, setLo: 0, setHi: 2 ** (bit - 32) });
    }
    const low: number[] = [];
    if (level === 1 || huge) {
      for (let type = 0; type < 8; type++) if (type !== 6) low.push(type << 3); // memory types (6 is the baseline WB)
    } else {
      for (let bit = 3; bit <= (level === 4 ? 7 : 6); bit++) low.push(1 << bit);
    }
    if (huge)
      for (let bit = 12; bit <= (level === 2 ? 20 : 29); bit += level === 2 ? 1 : 3) low.push(1 << bit);
    for (const bit of [8, 9, 10, 11]) low.push(1 << bit);
    for (const lo of low) shapes.push({ level, huge, xwr: 7, setLo: lo, setHi: 0 });
    for (const bit of [52, 55, 58, 62, 63])
      shapes.push({ level, huge, xwr: 7, setLo: 0, setHi: 2 ** (bit - 32) });
  }
  return shapes;
}

function walkerGroup(id: string, description: string, shapes: readonly Shape[]): CaseGroup {
  return {
    id,
    description,
    cases: shapes.length * OPS.length,
    run(rec, ctx) {
      const memory = new DenseMemory(0x10_0000);
      const walker = ctx.parts.eptWalker(memory, { adUpdate: AD_UPDATE.NONE });
      const eptCtx = eptContextAt(0x1000, false);
      for (const shape of shapes) {
        for (let a = 0x1000; a < 0x5000; a += 8) memory.write64(a, 0, 0);
        const entries = buildEpt(memory, 0x1000, 0x20_0000, shape);
        for (const [name, access] of OPS) {
          const ok = walker.walk(eptCtx, TEST_GPA, access, FINAL_LINEAR);
          const r = walker.result;
          const want = expectEptWalk(entries, 4, access, FINAL_LINEAR, ORACLE);
          const same =
            r.outcome === want.outcome &&
            (want.outcome !== EPT_OUTCOME.VIOLATION ||
              (r.qualification & QUALIFICATION_COMPARED) === (want.qualification & QUALIFICATION_COMPARED)) &&
            ok === (want.outcome === EPT_OUTCOME.OK);
          if (same) rec.pass();
          else {
            rec.fail(
              `${describeShape(shape)}, ${name}: ${describeOutcome(r.outcome, r.qualification)}, expected ${describeOutcome(want.outcome, want.qualification)}`,
            );
          }
        }
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Through shadow EPT: L1's EPT12 has the entry under test; L2's access is reflected to L1.

const L1_BYTES = 0x80_0000;
const EPT12_BASE = 0x1_0000;
const POOL = 0x10_0000;
const POOL_PAGES = 256;

function nestedEptWorld(parts: ModelParts) {
  const l1Host = POOL + POOL_PAGES * 4096;
  const host = new DenseMemory(l1Host + L1_BYTES);
  const allocator = new HostPageAllocator(host, { base: POOL, pages: POOL_PAGES, zeroed: true });
  const memslots = new Memslots();
  memslots.add({ id: 0, baseGfn: 0, npages: L1_BYTES / 4096, hostBase: l1Host });
  const store = new ShadowPageStore({ allocator, meter: NOOP_METER, memslots });
  const shadow = new ShadowMmu({ store, memslots, format: SPTE_FORMAT.EPT, meter: NOOP_METER });
  const ept = parts.shadowEptMmu(shadow);
  const backend = new ShadowRootBackend({ shadow });
  return { host, l1Host, shadow, ept, backend };
}

function nestedGroup(id: string, description: string, shapes: readonly Shape[]): CaseGroup {
  return {
    id,
    description,
    cases: shapes.length * OPS.length,
    run(rec, ctx) {
      for (const shape of shapes) {
        for (const [name, access] of OPS) {
          const w = nestedEptWorld(ctx.parts);
          const l1 = w.shadow.guestMemory;
          // Targets in L1 memory: a 4-KiB page, a 2-MiB page, the first GiB (TEST_GPA's offset fits).
          const target = shape.huge ? (shape.level === 2 ? 0x40_0000 : 0) : 0x20_0000;
          const entries = buildEpt(l1, EPT12_BASE, target, shape);
          const eptp12 = EPT12_BASE | EPT_MEMORY_TYPE.WB | (3 << 3);
          const ctx12 = createEptContext({ eptpLo: eptp12, eptpHi: 0 }, MODERN_EPT_CAPABILITIES, MAXPHY);
          const role = shadowEptRoleBase(4, false);
          const root = w.backend.allocShadowRoot(role, eptp12);
          const hardware = new EptWalker(w.host, { adUpdate: AD_UPDATE.NONE });
          const ctx02 = eptContextAt(root, false);
          const want = expectEptWalk(entries, 4, access, FINAL_LINEAR, ORACLE);
          let seen = "";
          for (let faults = 0; faults < 6 && seen === ""; faults++) {
            if (hardware.walk(ctx02, TEST_GPA, access, FINAL_LINEAR)) {
              const offset = TEST_GPA % (shape.huge ? (shape.level === 2 ? 0x20_0000 : 0x4000_0000) : 0x1000);
              const hpa = w.l1Host + target + offset;
              seen =
                hardware.result.hpa === hpa
                  ? "ok"
                  : `reached host ${hex(hardware.result.hpa)}, expected ${hex(hpa)}`;
              break;
            }
            const r = w.ept.fault(root, ctx12, TEST_GPA, hardware.result.qualification);
            if (r.outcome === SHADOW_FAULT.FIXED || r.outcome === SHADOW_FAULT.SPURIOUS) continue;
            if (r.outcome === SHADOW_FAULT.INJECT_EPT_VIOLATION) {
              seen =
                r.gpa === TEST_GPA
                  ? `violation:${r.qualification & QUALIFICATION_COMPARED}`
                  : `violation at GPA ${hex(r.gpa)}`;
            } else if (r.outcome === SHADOW_FAULT.INJECT_EPT_MISCONFIG) seen = "misconfig";
            else seen = `shadow-EPT outcome ${SHADOW_FAULT_NAMES[r.outcome] ?? r.outcome}`;
          }
          const expected =
            want.outcome === EPT_OUTCOME.OK
              ? "ok"
              : want.outcome === EPT_OUTCOME.MISCONFIG
                ? "misconfig"
                : `violation:${want.qualification & QUALIFICATION_COMPARED}`;
          if (seen === expected) rec.pass();
          else
            rec.fail(
              `${describeShape(shape)}, L2 ${name}: L1 saw ${describe(seen)}, expected ${describe(expected)}`,
            );
        }
      }
    },
  };
}

function describe(code: string): string {
  if (code === "ok") return "no exit (the access completed)";
  if (code === "misconfig") return "an EPT misconfiguration (exit 49)";
  if (code.startsWith("violation:"))
    return `an EPT violation (exit 48) with qualification ${hex(Number(code.slice(10)))}`;
  return code;
}

// ---------------------------------------------------------------------------------------------
// Guest paging-structure accesses (ept_access_test_paddr_*): the EPT leaf of the guest's PT page.

const G = { PML4: 0x1_0000, PDPT: 0x1_1000, PD: 0x1_2000, PT: 0x1_3000, DATA: 0x20_0000 } as const;
const GVA = 0x40_0000 + 0x123;
const EPT_BASE = 0x30_0000;
const GUEST_BYTES = 0x40_0000;

interface PaddrCase {
  readonly perms: number;
  readonly accessedDirty: boolean;
  /** Guest PTE A and D preset. */
  readonly a: boolean;
  readonly d: boolean;
}

function paddrExpectation(c: PaddrCase, write: boolean): { ok: boolean; qualification: number } {
  const gla = 0x80;
  if ((c.perms & 1) === 0) return { ok: false, qualification: 1 | (c.accessedDirty ? 2 : 0) | gla };
  const permBits = (c.perms & 7) << 3;
  const writable = (c.perms & 2) !== 0;
  // With EPT A/D, guest paging-structure accesses are writes (SDM 29.3.5); without, only A/D updates are.
  const needsWrite = c.accessedDirty || !c.a || (write && !c.d);
  if (needsWrite && !writable) return { ok: false, qualification: 3 | permBits | gla };
  return { ok: true, qualification: 0 };
}

function paddrGroup(): CaseGroup {
  const cases: PaddrCase[] = [];
  for (const perms of [0, 1, 5, 3, 7]) {
    for (const accessedDirty of [false, true]) {
      for (const [a, d] of [
        [false, false],
        [true, false],
        [true, true],
      ] as const) {
        cases.push({ perms, accessedDirty, a, d });
      }
    }
  }
  return {
    id: "ept/paddr",
    description:
      "guest paging-structure accesses through a restricted EPT entry, EPT A/D on and off (§8 paddr)",
    cases: cases.length * OPS.length,
    run(rec, ctx) {
      for (const c of cases) {
        for (const [name, access] of OPS) {
          const memory = new DenseMemory(EPT_BASE + 0x10_0000);
          // EPT: identity, 4-KiB leaves for the first 2 MiB (so the PT page has its own leaf), 2 MiB after.
          memory.write64(EPT_BASE, (EPT_BASE + 0x1000) | 7, 0);
          memory.write64(EPT_BASE + 0x1000, (EPT_BASE + 0x2000) | 7, 0);
          memory.write64(EPT_BASE + 0x2000, (EPT_BASE + 0x3000) | 7, 0);
          for (let i = 1; i * 0x20_0000 < GUEST_BYTES; i++)
            memory.write64(EPT_BASE + 0x2000 + 8 * i, (i * 0x20_0000) | WB | 0x80 | 7, 0);
          for (let i = 0; i < 512; i++) {
            const perms = i * 0x1000 === G.PT ? c.perms : 7;
            memory.write64(EPT_BASE + 0x3000 + 8 * i, (i * 0x1000) | WB | perms, 0);
          }
          // Guest tables (supervisor, writable, executable), the PTE with A/D preset.
          memory.write64(G.PML4, G.PDPT | 3, 0);
          memory.write64(G.PDPT, G.PD | 3, 0);
          memory.write64(G.PD + 8 * 2, G.PT | 3, 0);
          memory.write64(G.PT + 0, G.DATA | 3 | (c.a ? 0x20 : 0) | (c.d ? 0x40 : 0), 0);
          // The upper guest entries already have A set (their pages are RWX anyway).
          for (const at of [G.PML4, G.PDPT, G.PD + 16]) memory.write32(at, memory.read32(at) | 0x20);
          const eptWalker = ctx.parts.eptWalker(memory, { adUpdate: AD_UPDATE.HARDWARE });
          const stage2 = new EptStage2Translator(eptWalker, eptContextAt(EPT_BASE, c.accessedDirty));
          const walker = ctx.parts.pageWalker(memory, { adUpdate: AD_UPDATE.HARDWARE, stage2 });
          stage2.attach(walker.result);
          const guest = createPagingContext(
            {
              cr0: CR0.PE | CR0.PG | CR0.WP,
              cr3: G.PML4,
              cr4: CR4.PAE,
              efer: EFER.LME | EFER.LMA | EFER.NXE,
            },
            MODERN_CPU,
          );
          stage2.fault.reset();
          const ok = walker.walk(
            guest,
            GVA,
            0,
            access === EPT_ACCESS.WRITE ? 2 : access === EPT_ACCESS.FETCH ? 16 : 0,
          );
          const want = paddrExpectation(c, access === EPT_ACCESS.WRITE);
          const label = `PT page EPT perms ${c.perms.toString(2).padStart(3, "0")} (XWR), EPT A/D ${c.accessedDirty ? "on" : "off"}, PTE A=${+c.a} D=${+c.d}, ${name}`;
          if (want.ok) {
            if (!ok) {
              rec.fail(
                `${label}: faulted (stage ${walker.result.stage}, qualification ${hex(stage2.fault.qualification)}), expected the access to complete`,
              );
              continue;
            }
            const pte = memory.read32(G.PT);
            const wantA = 0x20 | (access === EPT_ACCESS.WRITE || c.d ? 0x40 : 0);
            if ((pte & 0x60) !== wantA) {
              rec.fail(`${label}: guest PTE A/D ${hex(pte & 0x60)}, expected ${hex(wantA)}`);
              continue;
            }
            if (c.accessedDirty && (c.perms & 2) !== 0) {
              const leaf = memory.read32(EPT_BASE + 0x3000 + 8 * (G.PT / 0x1000));
              const upper = [EPT_BASE, EPT_BASE + 0x1000, EPT_BASE + 0x2000].map((at) => memory.read32(at));
              if ((leaf & 0x300) !== 0x300 || upper.some((e) => (e & 0x300) !== 0x100)) {
                rec.fail(
                  `${label}: EPT A/D of the PT page's path ${upper.map((e) => hex(e & 0x300)).join(", ")}, leaf ${hex(leaf & 0x300)}; expected A on every level and D on the leaf only`,
                );
                continue;
              }
            }
            rec.pass();
          } else if (ok || walker.result.stage !== FAULT_STAGE.STAGE2_PAGING_STRUCTURE) {
            rec.fail(
              `${label}: ${ok ? "completed" : `stopped at stage ${walker.result.stage}`}, expected an EPT violation on the guest paging structure with qualification ${hex(want.qualification)}`,
            );
          } else {
            const q = stage2.fault.qualification & QUALIFICATION_COMPARED;
            if (q === want.qualification) rec.pass();
            else
              rec.fail(
                `${label}: EPT violation qualification ${hex(q)}, expected ${hex(want.qualification)}`,
              );
          }
        }
      }
    },
  };
}

/** The `ept` suite: kvm-unit-tests ept_access_test_* (vmx-tests.md §8). */
export const EPT_SUITE: Suite = {
  name: "ept",
  description:
    "kvm-unit-tests x86/vmx_tests.c ept_access_test_*: EPT permissions, reserved and ignored bits, guest paging-structure accesses (vmx-tests.md §8)",
  groups() {
    return [
      walkerGroup(
        "ept/access-rights",
        "every permission at every level on the model's EPT walker (§8 table)",
        permissionShapes(),
      ),
      walkerGroup(
        "ept/reserved-bits",
        "reserved, memory-type and ignored bits on the model's EPT walker (§8)",
        bitShapes(),
      ),
      paddrGroup(),
      nestedGroup(
        "ept/nested-access-rights",
        "the permission table in L1's EPT12, seen by L1 through the model's shadow EPT",
        permissionShapes(),
      ),
      nestedGroup(
        "ept/nested-reserved-bits",
        "reserved and ignored bits in L1's EPT12, seen by L1 through the model's shadow EPT",
        bitShapes(),
      ),
    ];
  },
};
