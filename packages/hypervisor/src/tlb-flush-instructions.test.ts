import { CountingMeter } from "@nestvisor/vmx";
import { describe, expect, it } from "vitest";
import { builtinWorkload } from "./builtin-workloads";
import { COST_CATALOGS } from "./cost-catalogs";
import { resolveFlags } from "./kernel-presets";
import { Machine } from "./machine";
import { runWorkload } from "./run-workload";
import { builtinSteadyStateCounts } from "./testing/steady-state-counts";
import { workload } from "./workload-builder";

/**
 * KVM's TLB flushes are instructions (kvm: vmx_flush_tlb_current → ept_sync_context / vpid_sync_context,
 * vmx_flush_tlb_guest): L0 executes INVEPT/INVVPID on the processor, and a guest hypervisor's exit
 * to L0, which emulates them (handle_invept drops the EPT02 roots built from that EPTP).
 * toggle_cr0_wp before v6.4 resets the MMU on each CR0.WP change: a root reload and its flush.
 */
function perIteration(level: 1 | 2, preset: string, flags: Record<string, boolean> = {}) {
  return builtinSteadyStateCounts("toggle_cr0_wp", level, preset, flags);
}

describe("TLB flushes execute INVEPT/INVVPID (kvm: vmx_flush_tlb_current)", () => {
  it("L1 under v5.2: each CR0.WP toggle reloads the root and L0 runs an INVEPT of it", () => {
    const c = perIteration(1, "v5.2");
    expect(c.TLB_FLUSH_CURRENT).toBe(2);
    expect(c.INVEPT).toBe(2);
    expect(c.EMULATED_INVEPT ?? 0).toBe(0);
  });

  it("L2 under v5.2: L1's INVEPT exits to L0, which drops EPT02 and reloads it at the next entry", () => {
    const c = perIteration(2, "v5.2");
    // L1's two flushes are emulated; L0 then flushes the EPT02 root it reloads, natively.
    expect(c.EMULATED_INVEPT).toBe(2);
    expect(c.INVEPT).toBe(2);
    expect(c.PGD_MISS).toBeGreaterThanOrEqual(2);
  });

  it("under v6.12 a CR0.WP toggle flushes nothing at either level", () => {
    for (const level of [1, 2] as const) {
      const c = perIteration(level, "v6.12");
      expect(c.INVEPT ?? 0).toBe(0);
      expect(c.EMULATED_INVEPT ?? 0).toBe(0);
    }
  });

  it("without EPT in L1 the flush is an INVVPID of L2's VPID; L0 runs one on vpid02", () => {
    const c = perIteration(2, "v5.2", { l1Ept: false });
    expect(c.EMULATED_INVVPID).toBeGreaterThan(0);
    expect(c.INVVPID).toBe(c.EMULATED_INVVPID);
  });
});

describe("remote TLB flushes (kvm: kvm_flush_remote_tlbs → KVM_REQ_TLB_FLUSH → vmx_flush_tlb_all)", () => {
  function cpuidMachine(level: 1 | 2, flags: Record<string, boolean> = {}) {
    const meter = new CountingMeter(COST_CATALOGS);
    const machine = new Machine({
      program: builtinWorkload("cpuid", { level, iterations: 2 }),
      config: resolveFlags("v6.12", flags),
      meter,
    });
    return { machine, meter };
  }

  it("at L0: one INVEPT of every EPTP before the next entry", () => {
    const { machine, meter } = cpuidMachine(1);
    const before = meter.snapshot();
    machine.kvms[0]!.store.remoteFlush();
    machine.run();
    const d = meter.diff(before);
    expect(d.TLB_FLUSH_REQUEST).toBe(1);
    expect(d.TLB_FLUSH_ALL).toBe(1);
    expect(d.INVEPT).toBe(1);
  });

  it("in a guest hypervisor with EPT: an INVEPT exit, and L0 frees every EPT02 root (handle_invept, global)", () => {
    const { machine, meter } = cpuidMachine(2);
    const before = meter.snapshot();
    machine.kvms[1]!.store.remoteFlush();
    machine.run();
    const d = meter.diff(before);
    expect(d.TLB_FLUSH_ALL).toBe(1);
    expect(d.EMULATED_INVEPT).toBe(1);
    // The next nested entry finds no EPT02 root: it loads one (and L0 flushes it natively).
    expect(d.ROOT_LOAD).toBeGreaterThanOrEqual(1);
  });

  it("without EPT: an INVVPID of every VPID", () => {
    const { machine, meter } = cpuidMachine(2, { l1Ept: false });
    const before = meter.snapshot();
    machine.kvms[1]!.store.remoteFlush();
    machine.run();
    const d = meter.diff(before);
    expect(d.TLB_FLUSH_ALL).toBe(1);
    expect(d.EMULATED_INVVPID).toBe(1);
  });
});

describe("INVLPG without EPT (kvm: kvm_mmu_invlpg → vmx_flush_tlb_gva)", () => {
  const program = (level: 1 | 2) =>
    workload("invlpg")
      .setup({ level })
      .loop(4, (b) => b.invlpg(0x1000))
      .build();

  it("at L1 on shadow paging: one INVVPID of the address per INVLPG", () => {
    const c = runWorkload({ program: program(1), config: resolveFlags("v6.12", { ept: false }) }).counts;
    expect(c.EXIT_HANDLER_INVLPG).toBe(4);
    expect(c.INVVPID).toBe(4);
  });

  it("in L1 shadow-paging L2: L1's INVVPID of the address exits, L0 invalidates it in vpid02 (handle_invvpid)", () => {
    const c = runWorkload({ program: program(2), config: resolveFlags("v6.12", { l1Ept: false }) }).counts;
    // L2's INVLPGs go to L1 (INVLPG exiting without EPT); each of L1's INVVPIDs is emulated by L0.
    expect(c.EMULATED_INVVPID).toBeGreaterThanOrEqual(4);
    expect(c.INVVPID).toBe(c.EMULATED_INVVPID);
  });

  it("with EPT, INVLPG does not exit", () => {
    const c = runWorkload({ program: program(1), config: resolveFlags("v6.12", {}) }).counts;
    expect(c.EXIT_HANDLER_INVLPG ?? 0).toBe(0);
  });
});
