import { CountingMeter } from "@nestvisor/vmx";
import { CR0, PAGING_MODE, type TlbStats } from "@nestvisor/x86-arch";
import { describe, expect, it } from "vitest";
import { BUILTIN_LAYOUT, builtinWorkload } from "./builtin-workloads";
import { COST_CATALOGS } from "./cost-catalogs";
import { resolveFlags } from "./kernel-presets";
import { Machine } from "./machine";
import { type StepsBuilder, workload } from "./workload-builder";
import { defaultControlRegisters } from "./workload-compiler";
import type { WorkloadProgram } from "./workload-ops";

// The processor's TLB as the workload executor uses it (HardwareVmxCpu.tlb): translations cached
// while a guest runs, its own invalidations applied, everything evicted at each VM exit.

const DATA = BUILTIN_LAYOUT.KERNEL_DATA;
const RODATA = BUILTIN_LAYOUT.KERNEL_RODATA;
const CR0_PAGED = defaultControlRegisters(PAGING_MODE.LEVEL4).cr0;

/** A kernel-mode workload over the data pages: `warm` touches each page once (the EPT or shadow faults), then `body`. */
function program(level: 1 | 2, body: (b: StepsBuilder) => unknown): WorkloadProgram {
  return workload("tlb")
    .setup({
      level,
      paging: "4-level",
      memory: "16MiB",
      cpl: 0,
      addressSpaces: [
        {
          name: "kernel",
          mappings: [
            { gva: RODATA, pages: 4, writable: false, executable: false },
            { gva: DATA, pages: 4, executable: false },
          ],
        },
      ],
    })
    .loop(4, (b) => b.write(DATA, { size: 8, value: 7, stride: 4096 }))
    .cpuid(0)
    .iteration("body")
    .loop(1, body)
    .build();
}

interface Run {
  readonly stats: TlbStats;
  readonly guestFaults: number;
}

function run(prog: WorkloadProgram, preset = "v6.12", flags: Record<string, string | boolean> = {}): Run {
  const m = new Machine({
    program: prog,
    config: resolveFlags(preset, flags),
    meter: new CountingMeter(COST_CATALOGS),
  });
  m.hardware.tlb.clearStats();
  m.run();
  return {
    stats: m.hardware.tlb.stats(),
    guestFaults: m.executor.observations.guestFaults,
  };
}

const hits = (s: TlbStats) => s.hits.linear + s.hits.combined;
const misses = (s: TlbStats) => s.misses.linear + s.misses.combined;

/** Name, level, flags, and whether INVLPG exits (KVM intercepts it on shadow paging). */
const CONFIGS: [string, 1 | 2, Record<string, boolean>, boolean][] = [
  ["L1 with EPT (combined mappings)", 1, {}, false],
  ["L1 on shadow paging (linear mappings)", 1, { ept: false }, true],
  ["L2 on EPT02 (combined mappings)", 2, {}, false],
  ["L2 with L1 on shadow paging", 2, { l1Ept: false }, true],
];

describe.each(CONFIGS)("the processor's TLB: %s", (_name, level, flags, invlpgExits) => {
  /** Runs `body` after the warm-up, under v6.12 with this configuration's flags. */
  const runBody = (body: (b: StepsBuilder) => unknown): Run => run(program(level, body), "v6.12", flags);
  const read = (gva: number) => (b: StepsBuilder) => b.read(gva, { size: 8 });

  it("serves a repeated access from the TLB instead of walking", () => {
    const twice = runBody((b) => b.read(DATA, { size: 8 }).read(DATA, { size: 8 }));
    const once = runBody(read(DATA));
    expect(hits(twice.stats) - hits(once.stats)).toBe(1);
    expect(misses(twice.stats)).toBe(misses(once.stats));
  });

  it("evicts everything at a VM exit", () => {
    const r = runBody((b) => b.read(DATA, { size: 8 }).cpuid(0).read(DATA, { size: 8 }));
    const once = runBody(read(DATA));
    expect(hits(r.stats)).toBe(hits(once.stats));
    expect(misses(r.stats)).toBe(misses(once.stats) + 1);
    expect(r.stats.invalidations.eviction.entries).toBeGreaterThan(0);
  });

  it("drops the page on INVLPG and keeps the others (or evicts all when INVLPG exits)", () => {
    const r = runBody((b) =>
      b
        .read(DATA, { size: 8 })
        .read(DATA + 4096, { size: 8 })
        .invlpg(DATA)
        .read(DATA, { size: 8 })
        .read(DATA + 4096, { size: 8 }),
    );
    const base = runBody((b) => b.read(DATA, { size: 8 }).read(DATA + 4096, { size: 8 }));
    if (invlpgExits) {
      // The INVLPG exit evicts both pages: both later reads walk.
      expect(r.stats.invalidations.invlpg.operations).toBe(0);
      expect(misses(r.stats)).toBe(misses(base.stats) + 2);
      expect(hits(r.stats)).toBe(hits(base.stats));
    } else {
      expect(r.stats.invalidations.invlpg).toEqual({ operations: 1, entries: 1 });
      expect(misses(r.stats)).toBe(misses(base.stats) + 1);
      expect(hits(r.stats)).toBe(hits(base.stats) + 1);
    }
  });

  it("walks again for a write through a clean entry, then serves writes from the dirty one", () => {
    const page = DATA + 8192;
    const r = runBody((b) =>
      b.read(page, { size: 8 }).write(page, { size: 8, value: 1 }).write(page, { size: 8, value: 2 }),
    );
    const base = runBody(read(page));
    expect(misses(r.stats)).toBe(misses(base.stats) + 1);
    expect(hits(r.stats)).toBe(hits(base.stats) + 1);
  });
});

describe("the processor's TLB and the guest's control registers", () => {
  it("drops non-global entries on MOV to CR3 without PCIDs and keeps them with PCID no-flush switches", () => {
    const params = { level: 1, processes: 2, pages: 2, iterations: 3, compute: 0 };
    const flush = run(builtinWorkload("cr3_switch", { ...params, pcid: false }));
    const keep = run(builtinWorkload("cr3_switch", { ...params, pcid: true }));
    expect(hits(flush.stats)).toBe(0);
    expect(flush.stats.invalidations.movCr3.entries).toBeGreaterThan(0);
    expect(keep.stats.invalidations.movCr3.entries).toBe(0);
    expect(hits(keep.stats)).toBeGreaterThan(0);
  });

  it("checks a cached entry's rights against today's CR0.WP (a write allowed with WP clear faults once WP is set)", () => {
    // v6.12 with EPT: CR0.WP is guest-owned, so the toggles run without exits and the entry that
    // the WP-clear write cached is still in the TLB when WP is set again.
    const body = (write: boolean) => (b: StepsBuilder) => {
      b.movToCr0((CR0_PAGED & ~CR0.WP) >>> 0);
      if (write) b.write(RODATA, { size: 8, value: 1 });
      b.movToCr0(CR0_PAGED);
      b.write(RODATA, { size: 8, value: 2 });
    };
    const cached = run(program(1, body(true)));
    const cold = run(program(1, body(false)));
    expect(cached.guestFaults).toBe(1);
    expect(cold.guestFaults).toBe(1);
    // The WP-clear write came through; the WP-set write did not (the fault leaves memory as it was).
    expect(cached.stats.invalidations.pageFault.operations).toBe(1);
  });
});
