import { CountingMeter } from "@nestvisor/vmx";
import { describe, expect, it } from "vitest";
import { builtinWorkload } from "./builtin-workloads";
import { COST_CATALOGS } from "./cost-catalogs";
import { resolveFlags } from "./kernel-presets";
import { Machine } from "./machine";
import { DOORBELL_ADDRESS, InKernelIoapic, IOAPIC_BASE, VMM_REGISTERS_BASE } from "./mmio-devices";
import { runWorkload } from "./run-workload";
import { workloadView } from "./testing/short-runs";
import { workload } from "./workload-builder";

/**
 * MMIO: a guest's loads and stores to guest-physical addresses without a memslot, completed by its
 * own KVM (kvm: kvm_handle_noslot_fault, make_mmio_spte, handle_ept_misconfig,
 * handle_mmio_page_fault, x86_emulate_instruction, the KVM_MMIO_BUS / KVM_FAST_MMIO_BUS devices and
 * KVM_EXIT_MMIO).
 */

type Flags = Record<string, boolean>;

/** Event counts of `iterations` iterations of a built-in, after the first's warm-up faults. */
function perIteration(name: string, level: 1 | 2 | 3, flags: Flags = {}, iterations = 8) {
  const run = (n: number) =>
    runWorkload({
      program: builtinWorkload(name, { level, iterations: n }),
      config: resolveFlags("v6.12", flags),
    }).counts;
  const once = run(1);
  const more = run(1 + iterations);
  return (event: string) => ((more[event] ?? 0) - (once[event] ?? 0)) / iterations;
}

const devicePages = (executable: boolean) =>
  [VMM_REGISTERS_BASE, DOORBELL_ADDRESS, IOAPIC_BASE].map((gpa) => ({ gva: gpa, gpa, pages: 1, executable }));

/** A level-`level` program over the device pages; returns the machine after running it. */
function runSteps(
  level: 1 | 2,
  flags: Flags,
  steps: (b: ReturnType<typeof workload>) => ReturnType<typeof workload>,
  executable = false,
): Machine {
  const base = workload("mmio-steps").setup({
    level,
    paging: "4-level",
    memory: "16MiB",
    cpl: 0,
    addressSpaces: [
      { name: "kernel", mappings: [{ gva: 0x10_0000, pages: 16 }, ...devicePages(executable)] },
    ],
  });
  const m = new Machine({
    program: steps(base).build(),
    config: resolveFlags("v6.12", flags),
    meter: new CountingMeter(COST_CATALOGS),
  });
  m.run();
  return m;
}

describe("MMIO under EPT (L1)", () => {
  it("first access: an EPT violation caches an MMIO SPTE; then every access is an EPT misconfiguration", () => {
    const once = runWorkload({
      program: builtinWorkload("mmio_from_kernel", { level: 1, iterations: 1 }),
      config: resolveFlags("v6.12", {}),
    }).counts;
    expect(once.INSTRUCTION_EMULATION).toBe(1);
    expect(once.EXIT_HANDLER_EPT_MISCONFIG ?? 0).toBe(0);
    const per = perIteration("mmio_from_kernel", 1);
    expect(per("EXIT_HANDLER_EPT_MISCONFIG")).toBe(1);
    expect(per("EXIT_HANDLER_EPT_VIOLATION")).toBe(0);
    expect(per("HARDWARE_VM_EXIT")).toBe(1);
    // The vCPU's MMIO cache holds the page: no walk for the MMIO SPTE (kvm: mmio_info_in_cache).
    expect(per("MMIO_SPTE_WALK")).toBe(0);
    expect(per("INSTRUCTION_EMULATION")).toBe(1);
    expect(per("MMIO_KERNEL")).toBe(1);
    expect(per("MMIO_USERSPACE")).toBe(0);
  });

  it("a store to the eventfd doorbell takes the fast MMIO bus: no emulation, no decode on bare metal", () => {
    const per = perIteration("mmio_to_eventfd", 1);
    expect(per("EXIT_HANDLER_EPT_MISCONFIG")).toBe(1);
    expect(per("INSTRUCTION_EMULATION")).toBe(0);
    expect(per("INSTRUCTION_SKIP_DECODE")).toBe(0);
    expect(per("MMIO_KERNEL")).toBe(0);
  });

  it("a load from the VMM's device exits to userspace", () => {
    const per = perIteration("mmio_from_qemu", 1);
    expect(per("INSTRUCTION_EMULATION")).toBe(1);
    expect(per("MMIO_USERSPACE")).toBe(1);
  });

  it("the legacy MMU caches MMIO SPTEs too", () => {
    const per = perIteration("mmio_from_kernel", 1, { tdpMmu: false });
    expect(per("EXIT_HANDLER_EPT_MISCONFIG")).toBe(1);
    expect(per("EXIT_HANDLER_EPT_VIOLATION")).toBe(0);
  });
});

describe("MMIO in a nested guest (L2)", () => {
  it("with nested EPT: L0 finds L1's MMIO SPTE in EPT12 and gives L1 the misconfiguration", () => {
    const per = perIteration("mmio_from_kernel", 2);
    expect(per("NESTED_EPT_FAULT_INJECTED")).toBe(1);
    expect(per("EXIT_HANDLER_EPT_MISCONFIG")).toBe(1);
    expect(per("INSTRUCTION_EMULATION")).toBe(1);
  });

  it("L1's fast MMIO path decodes the instruction: KVM as a guest does not trust the exit's length", () => {
    const per = perIteration("mmio_to_eventfd", 2);
    expect(per("INSTRUCTION_SKIP_DECODE")).toBe(1);
    expect(per("INSTRUCTION_EMULATION")).toBe(0);
  });

  it("with L1 on shadow paging: reserved-bit #PFs reflected to L1", () => {
    const per = perIteration("mmio_from_kernel", 2, { l1Ept: false });
    expect(per("NESTED_EXIT_REFLECTED")).toBe(1);
    expect(per("EXIT_HANDLER_EXCEPTION")).toBe(1);
    expect(per("INSTRUCTION_EMULATION")).toBe(1);
  });
});

describe("MMIO on shadow paging (L1, ept=off)", () => {
  it("accesses are #PF exits with PFEC.RSVD, served from the MMIO cache by GVA", () => {
    const per = perIteration("mmio_from_kernel", 1, { ept: false });
    expect(per("EXIT_HANDLER_EXCEPTION")).toBe(1);
    expect(per("MMIO_SPTE_WALK")).toBe(0);
    expect(per("INSTRUCTION_EMULATION")).toBe(1);
  });

  it("no fast path without EPT: the doorbell store is emulated and taken by the ioeventfd on KVM_MMIO_BUS", () => {
    const per = perIteration("mmio_to_eventfd", 1, { ept: false });
    expect(per("INSTRUCTION_EMULATION")).toBe(1);
    expect(per("MMIO_KERNEL")).toBe(1);
  });

  it("INVLPG of the device page forgets the cached GVA: the next fault walks to the MMIO SPTE", () => {
    const m = runSteps(1, { ept: false }, (b) =>
      b
        .read(IOAPIC_BASE, { size: 4 })
        .read(IOAPIC_BASE, { size: 4 })
        .invlpg(IOAPIC_BASE)
        .read(IOAPIC_BASE, { size: 4 }),
    );
    const meter = m.meter as CountingMeter;
    expect(meter.byName("MMIO_SPTE_WALK")).toBe(1);
    expect(meter.byName("INSTRUCTION_EMULATION")).toBe(3);
  });
});

describe("MMIO devices", () => {
  it("the IOAPIC answers through IOREGSEL/IOWIN: version 0x11 with 24 pins", () => {
    for (const flags of [{}, { ept: false }]) {
      const m = runSteps(1, flags, (b) =>
        b.write(IOAPIC_BASE, { size: 4, value: 1 }).read(IOAPIC_BASE + 0x10, { size: 4 }),
      );
      expect(m.executor.context.loadedLo).toBe(0x17_0011);
      expect(m.kvms[0]!.mmio.ioapic.ioregsel).toBe(1);
    }
  });

  it("a redirection entry keeps its read-only bits, and reads back", () => {
    const ioapic = new InKernelIoapic();
    ioapic.write(IOAPIC_BASE, 4, 0x10);
    expect(ioapic.read(IOAPIC_BASE + 0x10, 4)).toBe(0x1_0000); // masked at reset
    ioapic.write(IOAPIC_BASE + 0x10, 4, 0x0000_d031); // vector 0x31, level-triggered, remote IRR, status
    expect(ioapic.read(IOAPIC_BASE + 0x10, 4)).toBe(0x0000_8031);
    ioapic.write(IOAPIC_BASE, 4, 0x11);
    ioapic.write(IOAPIC_BASE + 0x10, 4, 0xff00_0000);
    expect(ioapic.read(IOAPIC_BASE + 0x10, 4)).toBe(0xff00_0000);
    ioapic.write(IOAPIC_BASE, 4, 0x60); // past the 24 entries
    expect(ioapic.read(IOAPIC_BASE + 0x10, 4)).toBe(0xffff_ffff);
    // Narrower loads take the register's low bytes (kvm: ioapic_mmio_read copies `len` bytes).
    expect(ioapic.read(IOAPIC_BASE + 0x10, 1)).toBe(0xff);
  });

  it("the VMM's register page reads back what was stored, at L1 and at L2", () => {
    for (const [level, flags] of [
      [1, {}],
      [2, {}],
      [2, { l1Ept: false }],
    ] as const) {
      const m = runSteps(level, flags, (b) =>
        b
          .write(VMM_REGISTERS_BASE + 8, { size: 8, value: 0x1122_3344_5566_7788n })
          .read(VMM_REGISTERS_BASE + 12, { size: 4 }),
      );
      expect(m.executor.context.loadedLo).toBe(0x1122_3344);
      expect(m.kvms[level - 1]!.mmio.vmm.registers[8]).toBe(0x88);
    }
  });

  it("a load from the doorbell: the fast path signals the eventfd and leaves the destination; emulation reads the VMM's 0", () => {
    const steps = (b: ReturnType<typeof workload>) =>
      b
        .write(VMM_REGISTERS_BASE, { size: 4, value: 7 })
        .read(VMM_REGISTERS_BASE, { size: 4 })
        .read(DOORBELL_ADDRESS, { size: 4 });
    const fast = runSteps(1, {}, (b) => steps(b).read(DOORBELL_ADDRESS, { size: 4 }));
    // The first doorbell load is the EPT violation that emulates it (0 from the VMM); the second
    // goes through the fast bus and keeps the 0.
    expect(fast.kvms[0]!.mmio.doorbellSignals).toBe(1);
    const slow = runSteps(1, { ept: false }, (b) => steps(b).read(DOORBELL_ADDRESS, { size: 4 }));
    expect(slow.kvms[0]!.mmio.doorbellSignals).toBe(0);
  });

  it("an instruction fetch from MMIO is refused as not modelled", () => {
    expect(() => runSteps(1, {}, (b) => b.fetch(IOAPIC_BASE), true)).toThrow(
      /instruction fetch from MMIO .* not modelled/,
    );
    // Mapped without execute rights, the fetch is the guest's own #PF (SDM 4.6): no MMIO at all.
    expect(runSteps(1, {}, (b) => b.fetch(IOAPIC_BASE)).executor.observations.guestFaults).toBe(1);
  });
});

describe("MMIO built-ins: the same guest-visible state everywhere", () => {
  it.each(["mmio_from_kernel", "mmio_to_eventfd", "mmio_from_qemu"])("%s", (name) => {
    const view = (level: 1 | 2 | 3, flags: Flags) =>
      workloadView(
        runWorkload({
          program: builtinWorkload(name, { level, iterations: 3 }),
          config: resolveFlags("v6.12", flags),
        }).snapshot,
      );
    const reference = view(1, {});
    for (const flags of [{ ept: false }, { tdpMmu: false }, { hugePages: true }])
      expect(view(1, flags)).toEqual(reference);
    const nested = view(2, {});
    for (const flags of [{ l1Ept: false }, { tdpMmu: false }, { shadowVmcs: false }])
      expect(view(2, flags)).toEqual(nested);
    expect(nested.readDigest).toBe(reference.readDigest);
    expect(nested.deviceDigest).toBe(reference.deviceDigest);
  });
});
