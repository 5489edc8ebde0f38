import { CountingMeter, VMX_RESULT } from "@nestvisor/vmx";
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
// while a guest runs, its own invalidations applied, entries kept across VM exits and entries (every
// VMCS the model's KVM builds enables VPID), and dropped by the INVEPT/INVVPID that KVM executes.

const DATA = BUILTIN_LAYOUT.KERNEL_DATA;
const RODATA = BUILTIN_LAYOUT.KERNEL_RODATA;
const CR0_PAGED = defaultControlRegisters(PAGING_MODE.LEVEL4).cr0;

/**
 * A kernel-mode workload over the data pages: the warm-up writes each page once (the EPT or shadow
 * faults), a CPUID exit, and a CR3 reload that drops the warm-up's (non-global) entries; then `body`.
 */
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
    .movToCr3({ reload: true })
    .iteration("body")
    .loop(1, body)
    .build();
}

interface Run {
  readonly stats: TlbStats;
  readonly guestFaults: number;
  /** The workload's digest of everything it read (WorkloadObservations.digest). */
  readonly digest: number;
}

/**
 * Runs `prog`; with `dropFlushes`, the processor ignores every INVEPT and INVVPID L0 executes (a
 * hypervisor that forgets its flushes), to show which guest-visible results depend on them.
 */
function run(
  prog: WorkloadProgram,
  preset = "v6.12",
  flags: Record<string, string | boolean> = {},
  dropFlushes = false,
): Run {
  const m = new Machine({
    program: prog,
    config: resolveFlags(preset, flags),
    meter: new CountingMeter(COST_CATALOGS),
  });
  if (dropFlushes) {
    m.hardware.invept = () => VMX_RESULT.SUCCEED;
    m.hardware.invvpid = () => VMX_RESULT.SUCCEED;
  }
  m.hardware.tlb.clearStats();
  m.run();
  return {
    stats: m.hardware.tlb.stats(),
    guestFaults: m.executor.observations.guestFaults,
    digest: m.executor.observations.digest,
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

  it("keeps the entries across a VM exit and entry (VPID tags them)", () => {
    const r = runBody((b) => b.read(DATA, { size: 8 }).cpuid(0).read(DATA, { size: 8 }));
    const once = runBody(read(DATA));
    expect(hits(r.stats)).toBe(hits(once.stats) + 1);
    expect(misses(r.stats)).toBe(misses(once.stats));
    expect(r.stats.invalidations.vmTransition.entries).toBe(0);
    expect(r.stats.invalidations.eviction.entries).toBe(0);
  });

  it("drops the page on INVLPG and keeps the others (when INVLPG exits, through KVM's INVVPID)", () => {
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
      // kvm: handle_invlpg → kvm_mmu_invlpg → flush_tlb_gva (vpid_sync_vcpu_addr). At L2 that is
      // L1's INVVPID, which L0 emulates with an INVVPID of vpid02 (handle_invvpid).
      expect(r.stats.invalidations.invlpg.operations).toBe(0);
      expect(r.stats.invalidations.invvpidIndividualAddress).toEqual({ operations: 1, entries: 1 });
    } else {
      expect(r.stats.invalidations.invlpg).toEqual({ operations: 1, entries: 1 });
    }
    expect(misses(r.stats)).toBe(misses(base.stats) + 1);
    expect(hits(r.stats)).toBe(hits(base.stats) + 1);
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

describe("the processor's TLB needs the flushes KVM makes", () => {
  // Processes at the same GVA with different frames (each writes its number there every turn): the
  // MOV to CR3 exits under shadow paging, and only KVM's flush (kvm_invalidate_pcid →
  // KVM_REQ_TLB_FLUSH_CURRENT → INVVPID; at L2, L1's INVVPID emulated by L0 on vpid02) keeps the
  // next process from reading through the previous one's cached translation.
  const CASES: [string, 1 | 2, Record<string, boolean>][] = [
    ["L1 on shadow paging", 1, { ept: false }],
    ["L2 with L1 on shadow paging", 2, { l1Ept: false }],
  ];
  it.each(CASES)("%s: without them the guest reads another process's page", (_name, level, flags) => {
    const prog = () =>
      builtinWorkload("cr3_switch", { level, processes: 2, pages: 1, iterations: 3, compute: 0 });
    const withEpt = run(prog());
    const faithful = run(prog(), "v6.12", flags);
    const forgetful = run(prog(), "v6.12", flags, true);
    expect(faithful.digest).toBe(withEpt.digest);
    expect(faithful.stats.invalidations.invvpidSingleContext.entries).toBeGreaterThan(0);
    expect(forgetful.digest).not.toBe(withEpt.digest);
  });

  it("keeps each PCID's entries apart under shadow paging (the active PCID is in GUEST_CR3)", () => {
    // kvm: vmx_load_mmu_pgd ORs kvm_get_active_pcid into the shadow root; no-flush switches keep
    // every process's entries, and each process still reads its own page.
    const params = { level: 1, processes: 2, pages: 2, iterations: 3, compute: 0, pcid: true };
    const withEpt = run(builtinWorkload("cr3_switch", params));
    const shadow = run(builtinWorkload("cr3_switch", params), "v6.12", { ept: false });
    expect(shadow.digest).toBe(withEpt.digest);
    expect(shadow.stats.hits.linear).toBeGreaterThan(0);
    // The one flush is kvm_mmu_load's (flush_tlb_current) for the first root; the switches flush nothing.
    expect(shadow.stats.invalidations.invvpidSingleContext.operations).toBe(1);
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
