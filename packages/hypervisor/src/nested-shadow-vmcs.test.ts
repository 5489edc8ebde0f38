import { MMU_EVENTS } from "@nestvisor/mmu";
import { CountingMeter, EXIT_REASON, VMX_EVENTS, Vmcs12 } from "@nestvisor/vmx";
import { describe, expect, it } from "vitest";
import { builtinWorkload } from "./builtin-workloads";
import type { KvmConfig } from "./hypervisor-config";
import { HYPERVISOR_EVENTS } from "./hypervisor-events";
import { resolveFlags } from "./kernel-presets";
import { KVM_PAGE } from "./kvm";
import { Machine } from "./machine";
import { offersVmcsShadowing } from "./nested-vmx-cpu";
import { runWorkload } from "./run-workload";
import { steadyStateCounts } from "./testing/steady-state-counts";
import { VMCS_FIELD as F } from "./vmcs-field-encodings";

/**
 * VMCS shadowing that L0 emulates for L1 (kvm: nested_vmx_exit_handled_vmcs_access, handle_vmread /
 * handle_vmwrite on get_shadow_vmcs12, nested_cache_shadow_vmcs12, nested_flush_cached_shadow_vmcs12):
 * in a 3-level stack L1's KVM gives L2 (a KVM) a shadow VMCS, and L0 serves L2's VMREAD/VMWRITE of the
 * fields L1's bitmaps let through without reflecting them to L1.
 */

// Each guest hypervisor's per-entry DEBUGCTL read (hostDebugctlPerEntry) is one more RDMSR exit per
// entry, reflected or not; the exact counts below are of VMCS shadowing alone, so it is off here.
const V612 = resolveFlags("v6.12", { hostDebugctlPerEntry: false });
const NO_SHADOW = resolveFlags("v6.12", { shadowVmcs: false, hostDebugctlPerEntry: false });

function machine(iterations: number, config: KvmConfig, innerConfig: KvmConfig, meter: CountingMeter) {
  return new Machine({
    program: builtinWorkload("cpuid", { level: 3, iterations }),
    config,
    innerConfig,
    meter,
  });
}

/** Steady-state counts of one L3 CPUID round trip: (run of 30) − (run of 10), divided by 20. */
function perRoundTrip(config: KvmConfig, innerConfig: KvmConfig, prepare?: (m: Machine) => void) {
  return steadyStateCounts((iterations, meter) => {
    const m = machine(iterations, config, innerConfig, meter);
    prepare?.(m);
    return m;
  });
}

/** Sets (or clears) the bit of `encoding` in a bitmap page of L1's memory (SDM 25.6.15). */
function setBitmapBit(m: Machine, page: number, encoding: number, set: boolean): void {
  const memory = m.kvms[0]!.guestMemory();
  const address = page + (encoding >>> 3);
  const byte = memory.read8(address);
  const mask = 1 << (encoding & 7);
  memory.write8(address, set ? byte | mask : byte & ~mask);
}

describe("VMCS shadowing emulated for a guest hypervisor (3 levels)", () => {
  it("KVM offers the shadow-VMCS control and VMWRITE to any field to every guest hypervisor", () => {
    const meter = new CountingMeter([VMX_EVENTS, MMU_EVENTS, HYPERVISOR_EVENTS]);
    for (const config of [V612, NO_SHADOW]) {
      const m = machine(1, config, config, meter);
      // kvm: nested_vmx_setup_secondary_ctls offers SHADOW_VMCS whatever the host or enable_shadow_vmcs.
      expect(offersVmcsShadowing(m.kvms[0]!.caps)).toBe(true);
      expect(m.kvms[1]!.processor.vmcsShadowing).toBe(true);
      // L1 uses it for L2 only with its own enable_shadow_vmcs; L2's guest is no hypervisor.
      expect(m.kvms[1]!.nested.shadowVmcs !== null).toBe(config.shadowVmcs);
      expect(m.kvms[2]!.nested.shadowVmcs).toBeNull();
    }
  });

  // Counts per L3 CPUID round trip (v6.12 everywhere, without the DEBUGCTL read). Without shadowing in L1, L2's KVM handles the
  // CPUID exit with 9 VMX accesses (8 VMREADs: exit reason, IDT-vectoring info, PML index,
  // instruction length, RIP, interruptibility, RFLAGS, RVI; 1 VMWRITE: RIP), each an exit that L0
  // reflects to L1, whose handler costs 2 more L0 exits (its VMREAD of VMX_INSTRUCTION_INFO, its
  // VMRESUME): 88 hardware exits = 1 (L3's CPUID) + 59 (L1 reflecting it to L2 and taking L2's
  // VMRESUME, whose emulation reads only shadow fields: nested_vmx_run reads no instruction
  // information; its EFER equals L2's, so vmx_set_efer writes no GUEST_IA32_EFER) + 10 (L2's 9
  // accesses and VMRESUME) + 18. Reflections: L0 → L1 11 (CPUID, 9 accesses,
  // VMRESUME) + L1 → L2 1 (CPUID) = 12.
  // With shadowing in L1 all 9 fields are clear in L1's bitmaps: L0 emulates them on the cached
  // shadow vmcs12 (9 exits handled by L0, −18 L1 exits). L1 pays for its shadow VMCS: 2 copies
  // (copy_vmcs12_to_shadow after the reflection, copy_shadow_to_vmcs12 at L2's VMRESUME), each a
  // VMPTRLD of the shadow, a VMCLEAR and a VMPTRLD of vmcs01 (6 exits), plus the 11 read-only fields
  // copy_vmcs12_to_shadow writes, which L0's VMWRITE bitmap intercepts (flag A): +17. 88 − 18 + 17 = 87
  // exits; reflections 1 + 1 + 1 = 3; nested entries and exits at L0 from 11 to 2 (plus L1's one).
  const without = perRoundTrip(V612, NO_SHADOW);
  const withShadow = perRoundTrip(V612, V612);

  it("L1's shadow VMCS: L2's 9 VMREAD/VMWRITEs are L0's, no longer reflected to L1", () => {
    expect(without.HARDWARE_VM_EXIT).toBe(88);
    expect(without.NESTED_EXIT_REFLECTED).toBe(12);
    expect(without.NESTED_EXIT_HANDLED_BY_L0 ?? 0).toBe(0);
    expect(without.NESTED_VM_ENTRY).toBe(12);
    expect(withShadow.HARDWARE_VM_EXIT).toBe(87);
    expect(withShadow.NESTED_EXIT_REFLECTED).toBe(3);
    expect(withShadow.NESTED_EXIT_HANDLED_BY_L0).toBe(9);
    expect(withShadow.NESTED_VM_ENTRY).toBe(3);
    expect(withShadow.NESTED_VM_EXIT).toBe(3);
    // L1's shadow copies: 2 × (VMPTRLD shadow, VMCLEAR shadow, VMPTRLD vmcs01) more L1 instructions.
    expect(withShadow.EMULATED_VMPTRLD! - without.EMULATED_VMPTRLD!).toBe(4);
    expect((withShadow.EMULATED_VMCLEAR ?? 0) - (without.EMULATED_VMCLEAR ?? 0)).toBe(2);
    // The cached shadow vmcs12: read at each of L0's 2 nested entries into L2 (VMRESUME of L1's
    // vmcs01), written back at each nested exit from L2 (1 per round trip; the other exit is L3's).
    // L1's 4 VMPTRLDs of a new VMCS each load an image and flush the previous one.
    expect(withShadow.VMCS12_IMAGE_LOAD! - without.VMCS12_IMAGE_LOAD!).toBe(4 + 1);
    expect(withShadow.VMCS12_IMAGE_FLUSH! - without.VMCS12_IMAGE_FLUSH!).toBe(4 + 1);
    // Far fewer VMCS instructions at L0: 9 nested round trips of prepare_vmcs02/load_vmcs12_host_state gone.
    expect(withShadow.VMWRITE!).toBeLessThan(without.VMWRITE!);
    expect(withShadow.VMREAD!).toBeLessThan(without.VMREAD!);
  });

  it("the shadowVmcs switch on vs off: same guest state, fewer reflected exits with it on", () => {
    const off = perRoundTrip(NO_SHADOW, NO_SHADOW);
    expect(withShadow.NESTED_EXIT_REFLECTED!).toBeLessThan(off.NESTED_EXIT_REFLECTED!);
    expect(off.NESTED_EXIT_REFLECTED).toBe(12);
    expect(off.NESTED_EXIT_HANDLED_BY_L0 ?? 0).toBe(0);
    expect(withShadow.HARDWARE_VM_EXIT!).toBeLessThan(off.HARDWARE_VM_EXIT!);
    const program = builtinWorkload("cpuid", { level: 3, iterations: 6 });
    const on = runWorkload({ program, config: V612 }).snapshot;
    const noShadow = runWorkload({ program, config: NO_SHADOW }).snapshot;
    const l1Only = runWorkload({ program, config: V612, innerConfig: NO_SHADOW }).snapshot;
    expect(on.gprs).toEqual(noShadow.gprs);
    expect(on.readDigest).toBe(noShadow.readDigest);
    expect(on.memoryDigest).toBe(noShadow.memoryDigest);
    expect(on).toEqual(l1Only);
  });

  it("bitmap bit set → L2's VMREAD is reflected to L1; clear → L0 serves it from the shadow vmcs12", () => {
    // Intercept EXIT_REASON in L1's VMREAD bitmap (L1 reads it from vmcs12, which holds the value it
    // copied to the shadow VMCS): 1 access per round trip moves from L0 to L1, costing 2 L1 exits.
    const intercepted = perRoundTrip(V612, V612, (m) => {
      setBitmapBit(m, KVM_PAGE.VMREAD_BITMAP, F.VM_EXIT_REASON, true);
    });
    expect(intercepted.NESTED_EXIT_REFLECTED).toBe(withShadow.NESTED_EXIT_REFLECTED! + 1);
    expect(intercepted.NESTED_EXIT_HANDLED_BY_L0).toBe(withShadow.NESTED_EXIT_HANDLED_BY_L0! - 1);
    expect(intercepted.HARDWARE_VM_EXIT).toBe(withShadow.HARDWARE_VM_EXIT! + 2);
    // Setting the bit only moves the work: the workload ends in the same state.
    const meter = new CountingMeter([VMX_EVENTS, MMU_EVENTS, HYPERVISOR_EVENTS]);
    const m = machine(5, V612, V612, meter);
    setBitmapBit(m, KVM_PAGE.VMREAD_BITMAP, F.VM_EXIT_REASON, true);
    m.run();
    const reference = machine(5, V612, V612, meter);
    reference.run();
    expect(m.executor.context.gprLo).toEqual(reference.executor.context.gprLo);
  });

  it("an encoding above 0x7fff always goes to L1 (kvm: field >> 15); VMWRITE follows L1's VMWRITE bitmap", () => {
    const meter = new CountingMeter([VMX_EVENTS, MMU_EVENTS, HYPERVISOR_EVENTS]);
    const m = machine(1, V612, V612, meter);
    m.run();
    const p2 = m.kvms[2]!.processor;
    const read = p2.vmread.bind(p2);
    const write = p2.vmwrite.bind(p2);
    const outcomes: { reflected: number; handledByL0: number; status: number }[] = [];
    const measure = (access: () => number) => {
      const before = meter.snapshot();
      const status = access();
      const after = meter.snapshot();
      outcomes.push({
        reflected: after.NESTED_EXIT_REFLECTED! - before.NESTED_EXIT_REFLECTED!,
        handledByL0: (after.NESTED_EXIT_HANDLED_BY_L0 ?? 0) - (before.NESTED_EXIT_HANDLED_BY_L0 ?? 0),
        status,
      });
    };
    const exitReasons: number[] = [];
    let armed = true;
    // L2's KVM executes extra VMX accesses before its first VMREAD of the next round trip.
    p2.vmread = (encoding: number) => {
      if (armed) {
        armed = false;
        measure(() => {
          read(0x8000);
          return p2.status;
        });
        measure(() => {
          // Served from the cached shadow vmcs12: the CPUID exit L1 reflected to L2.
          exitReasons.push(read(F.VM_EXIT_REASON));
          return p2.status;
        });
        // A read-only field: intercepted in L1's VMWRITE bitmap (flag A), so L1 writes it through.
        const qualification = read(F.EXIT_QUALIFICATION);
        measure(() => write(F.EXIT_QUALIFICATION, qualification));
        // A shadowed read/write field: L0 writes the cached shadow vmcs12.
        const rflags = read(F.GUEST_RFLAGS);
        measure(() => write(F.GUEST_RFLAGS, rflags));
      }
      return read(encoding);
    };
    m.executor.cursor.reset();
    m.run();
    // 0x8000: reflected; L1 fails it with VMfailValid(12) (no such vmcs12 field).
    expect(outcomes).toEqual([
      { reflected: 1, handledByL0: 0, status: 12 },
      { reflected: 0, handledByL0: 1, status: 0 },
      { reflected: 1, handledByL0: 0, status: 0 },
      { reflected: 0, handledByL0: 1, status: 0 },
    ]);
    expect(exitReasons).toEqual([EXIT_REASON.CPUID]);
  });

  it("L0 writes the cached shadow vmcs12 back to L1's page at the nested exit", () => {
    const meter = new CountingMeter([VMX_EVENTS, MMU_EVENTS, HYPERVISOR_EVENTS]);
    const m = machine(2, V612, V612, meter);
    m.run();
    const l0 = m.kvms[0]!;
    const l1 = m.kvms[1]!;
    const hw = m.hardware;
    const l2 = m.contexts[1]!;
    const seen: { page: number; cache: number; l1Vmcs12: number; after: number }[] = [];
    const original = hw.vmExit.bind(hw);
    hw.vmExit = () => {
      const vmresume = hw.running === l2 && hw.exitInfo.reason === EXIT_REASON.VMRESUME;
      // L0 reflects L2's VMRESUME to L1 (nested exit); L1's handler has not run yet on return.
      original();
      if (!vmresume) return;
      const page = new Vmcs12();
      page.load(l0.guestMemory().readBytes(KVM_PAGE.SHADOW_VMCS, 4096));
      seen.push({
        page: page.read(F.GUEST_RIP),
        cache: l0.nested.state.cachedShadowVmcs12.read(F.GUEST_RIP),
        l1Vmcs12: l1.nested.state.cachedVmcs12.read(F.GUEST_RIP),
        after: -1,
      });
    };
    m.executor.cursor.reset();
    m.run();
    expect(seen.length).toBeGreaterThan(0);
    for (const s of seen) {
      // L2's RIP VMWRITE reached L1's memory through L0's flush, not yet L1's vmcs12.
      expect(s.page).toBe(s.cache);
      expect(s.page).not.toBe(s.l1Vmcs12);
    }
    // L1 pulled it at the VMRESUME (copy_shadow_to_vmcs12): its vmcs12 ends with L2's last RIP.
    expect(l1.nested.state.cachedVmcs12.read(F.GUEST_RIP)).toBe(seen[seen.length - 1]!.page);
  });
});
