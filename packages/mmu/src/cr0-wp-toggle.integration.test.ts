import type { CountingMeter } from "@nestvisor/vmx";
import { CR0, PAGE_SIZE } from "@nestvisor/x86-arch";
import { describe, expect, it } from "vitest";
import { AUDIT_FORMAT, assertAuditClean, auditTables } from "./audit";
import { MMU_FLAG_PRESETS, type MmuFlags, mmuFlags } from "./mmu-flags";
import { TDP_MAP_RESULT } from "./tdp-mmu";
import { tdpReference } from "./tdp-reference";
import { L1_REGS } from "./testing/nested-scenario";
import { realVcpuFixture } from "./testing/real-vcpu-fixture";

/**
 * kvm-mmu.md §7.2, flag (b), on the real TDP MMU: L1 runs under TDP with a populated root, then
 * toggles CR0.WP ten times; after each toggle the vCPU reloads its root (vcpu_enter_guest) and L1
 * touches the same pages again. Per toggle, from the counting meter: root slots dropped and
 * loaded, TDP roots allocated and destroyed, table pages zapped and allocated, permission tables
 * rebuilt — for the three kernels of (b) (before v5.18, v5.18–v6.3, v6.4+) × `preserveTdpRoots`.
 * Set NESTVISOR_PRINT_TABLES=1 to print the table.
 */

const EVENTS = [
  "ROOT_DROP",
  "ROOT_LOAD",
  "ROOT_ALLOC",
  "ROOT_DESTROY",
  "SHADOW_PAGE_ZAP",
  "SHADOW_PAGE_ALLOC",
  "PERMISSION_BITMASK_UPDATE",
] as const;
type Row = Record<(typeof EVENTS)[number], number>;

/** 16 pages in each of two 2-MiB regions: one PDPT, one PD and two PTs below the root. */
const PAGES = [
  ...Array.from({ length: 16 }, (_, i) => 0x40_0000 + i * PAGE_SIZE),
  ...Array.from({ length: 16 }, (_, i) => 0x60_0000 + i * PAGE_SIZE),
];
/** Table pages of the populated tree, the root included. */
const TREE_PAGES = 5;
const TOGGLES = 10;

const KERNELS = {
  "b off (before v5.18)": { keepRootsOnRoleChange: false, keepRootsOnWpOnlyChange: false },
  "b on, WP sub-flag off (v5.18-v6.3)": { keepRootsOnRoleChange: true, keepRootsOnWpOnlyChange: false },
  "b on (v6.4+)": { keepRootsOnRoleChange: true, keepRootsOnWpOnlyChange: true },
} as const;
type Kernel = keyof typeof KERNELS;

function row(meter: CountingMeter, before: Readonly<Record<string, number>>): Row {
  const d = meter.diff(before);
  const out = {} as Row;
  for (const e of EVENTS) out[e] = d[e] ?? 0;
  return out;
}

function toggles(flags: MmuFlags): Row[] {
  const f = realVcpuFixture({ flags, tablePages: 64, l1Pages: 0x1000 });
  const touch = () => {
    for (const gpa of PAGES) {
      const r = f.l1Fault(gpa, true);
      expect([TDP_MAP_RESULT.FIXED, TDP_MAP_RESULT.SPURIOUS]).toContain(r);
    }
  };
  touch();
  const audit = () =>
    assertAuditClean(
      auditTables({
        memory: f.memory,
        format: AUDIT_FORMAT.EPT,
        reference: tdpReference(f.memslots),
        store: f.store,
        root: f.vcpu.rootMmu.rootHpa,
      }),
    );
  expect(audit().leaves).toBe(PAGES.length);
  const rows: Row[] = [];
  for (let i = 0; i < TOGGLES; i++) {
    const before = f.meter.snapshot();
    f.vcpu.setCr0(i % 2 === 0 ? L1_REGS.cr0 & ~CR0.WP : L1_REGS.cr0);
    f.vcpu.reload();
    touch();
    rows.push(row(f.meter, before));
    expect(audit().leaves).toBe(PAGES.length);
  }
  return rows;
}

const zero: Row = {
  ROOT_DROP: 0,
  ROOT_LOAD: 0,
  ROOT_ALLOC: 0,
  ROOT_DESTROY: 0,
  SHADOW_PAGE_ZAP: 0,
  SHADOW_PAGE_ALLOC: 0,
  PERMISSION_BITMASK_UPDATE: 0,
};

/** The expected per-toggle row of each configuration. */
function expected(kernel: Kernel, preserveTdpRoots: boolean): Row {
  // Every configuration re-initialises root_mmu for the new cpu role: one permission table.
  const base = { ...zero, PERMISSION_BITMASK_UPDATE: 1 };
  // v6.4 (01b31714bd90): kvm_init_mmu only; the TDP root stays loaded and populated.
  if (kernel === "b on (v6.4+)") return base;
  // Otherwise kvm_mmu_reset_context: the current root is dropped and a root loaded again.
  if (preserveTdpRoots) return { ...base, ROOT_DROP: 1, ROOT_LOAD: 1 }; // found again on the TDP MMU's list
  // Before edbdb43fc96b the last reference destroys the tree; the refaults rebuild it.
  return {
    ...base,
    ROOT_DROP: 1,
    ROOT_LOAD: 1,
    ROOT_ALLOC: 1,
    ROOT_DESTROY: 1,
    SHADOW_PAGE_ZAP: TREE_PAGES,
    SHADOW_PAGE_ALLOC: TREE_PAGES,
  };
}

describe("CR0.WP toggles in L1 under the real TDP MMU (integration)", () => {
  const table: string[] = [];
  for (const kernel of Object.keys(KERNELS) as Kernel[]) {
    for (const preserveTdpRoots of [true, false]) {
      it(`${kernel}, preserveTdpRoots ${preserveTdpRoots ? "on" : "off"}`, () => {
        const flags = mmuFlags({ ...KERNELS[kernel], preserveTdpRoots }, MMU_FLAG_PRESETS.today);
        const rows = toggles(flags);
        const want = expected(kernel, preserveTdpRoots);
        for (const [i, r] of rows.entries()) {
          expect(r, `toggle ${i + 1}`).toEqual(want);
          table.push(
            `${kernel.padEnd(36)} preserve=${preserveTdpRoots ? 1 : 0} #${String(i + 1).padStart(2)} ` +
              EVENTS.map((e) => `${e}=${r[e]}`).join(" "),
          );
        }
        if (process.env.NESTVISOR_PRINT_TABLES) console.log(table.splice(0).join("\n"));
      });
    }
  }
});
