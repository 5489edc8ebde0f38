import { isLastSpte, isShadowPresentSpte, MMU_EVENTS, SPTES_PER_PAGE, spteAddress } from "@nestvisor/mmu";
import { CountingMeter, VMX_EVENTS } from "@nestvisor/vmx";
import { CR0 } from "@nestvisor/x86-arch";
import { describe, expect, it } from "vitest";
import { builtinWorkload, BUILTIN_LAYOUT as L } from "./builtin-workloads";
import { HYPERVISOR_EVENTS } from "./hypervisor-events";
import { type KernelPresetName, resolveFlags } from "./kernel-presets";
import type { Kvm } from "./kvm";
import { Machine } from "./machine";
import { runWorkload } from "./run-workload";
import { workload } from "./workload-builder";

/** Every present non-leaf entry under `kvm`'s TDP roots points at a live page of its store. */
function danglingTables(kvm: Kvm): number {
  const store = kvm.store;
  const memory = store.allocator.memory;
  let dangling = 0;
  const visit = (table: number, level: number): void => {
    for (let i = 0; i < SPTES_PER_PAGE; i++) {
      const lo = memory.read32(table + i * 8);
      if (!isShadowPresentSpte(lo) || isLastSpte(lo, level)) continue;
      const child = spteAddress(lo, memory.read32(table + i * 8 + 4));
      if (store.idOfHostPage(child) < 0) dangling++;
      else visit(child, level - 1);
    }
  };
  for (const root of kvm.tdp?.roots() ?? []) visit(root, store.level(store.idOfHostPage(root)));
  return dangling;
}

describe("Kvm regressions", () => {
  // L2 toggling CR0.WP made L1 (preserveTdpRoots off) destroy its EPT root; its zapping writes hit
  // EPT12 pages L0 write-tracks while L0's own root (also rebuilt) had no leaf for them. L0's TDP
  // fault returned FIXED for those write faults, so the writes were dropped, L1's tables kept
  // entries to freed pages, and a later zap threw "-1 is not a live shadow page".
  it.each<KernelPresetName>(["v5.2", "v5.7", "v6.12"])(
    "toggle_cr0_wp at level 2 under %s keeps every level's TDP tables consistent",
    (preset) => {
      const meter = new CountingMeter([VMX_EVENTS, MMU_EVENTS, HYPERVISOR_EVENTS]);
      const machine = new Machine({
        program: builtinWorkload("toggle_cr0_wp", { level: 2, iterations: 10 }),
        config: resolveFlags(preset, {}),
        meter,
      });
      machine.run();
      for (const kvm of machine.kvms) expect(danglingTables(kvm)).toBe(0);
    },
  );

  // A nested VM exit loaded L1's host segments as all zeros (CS unusable). With unrestricted guest
  // (EPT in L1) nothing checks them, but with l1Ept=off L0's prepare_vmcs02 checks (vmx_guest_state_valid)
  // refused L1's next entry of its guest hypervisor: "L1: no handler for exit reason 33" at level 3.
  it("runs cpuid at level 3 with l1Ept=off (host segments loaded as load_vmcs12_host_state does)", () => {
    const program = builtinWorkload("cpuid", { level: 3, iterations: 4 });
    const without = runWorkload({ program, config: resolveFlags("v6.12", { l1Ept: false }) });
    const withEpt = runWorkload({ program, config: resolveFlags("v6.12", {}) });
    // What the workload sees is the same (the hypervisors' vmcs12s differ: L1 shadow-pages L2).
    const { vmcs12: _a, ...seenWithout } = without.snapshot;
    const { vmcs12: _b, ...seenWith } = withEpt.snapshot;
    expect(seenWithout).toEqual(seenWith);
    // L1 now runs its guest hypervisor on shadow paging: more exits than with EPT in L1.
    expect(without.counts.HARDWARE_VM_EXIT).toBeGreaterThan(0);
  });

  // Under EPT (v6.4+) CR0.WP is guest-owned: a WP toggle does not exit. The next CR0 exit (here for
  // AM) compared the new value with the MMU's stale copy, saw "WP changed" and reset the MMU. KVM
  // reads the guest-owned bits from the VMCS first (kvm_read_cr0_bits), so an AM-only change costs
  // no MMU work at all.
  it("a CR0 exit after guest-owned WP toggles compares with the VMCS's CR0, not a stale copy", () => {
    const paged = (CR0.PE | CR0.MP | CR0.ET | CR0.NE | CR0.WP | CR0.AM | CR0.PG) >>> 0;
    const program = workload("wp_then_am")
      .setup({
        level: 1,
        paging: "4-level",
        memory: 64 * 1024 * 1024,
        cpl: 0,
        addressSpaces: [{ name: "kernel", mappings: [{ gva: L.KERNEL_DATA, pages: 16, executable: false }] }],
      })
      .loop(5, (b) => {
        b.iteration("t");
        b.movToCr0((paged & ~CR0.WP) >>> 0);
        b.movToCr0((paged & ~CR0.WP & ~CR0.AM) >>> 0);
        b.movToCr0((paged & ~CR0.AM) >>> 0);
        b.movToCr0(paged);
      })
      .build();
    const counts = runWorkload({ program, config: resolveFlags("v6.12", {}) }).counts;
    expect(counts.EXIT_HANDLER_CR_ACCESS).toBe(10);
    expect(counts.MMU_RESET_CONTEXT ?? 0).toBe(0);
    expect(counts.ROOT_LOAD ?? 0).toBe(0);
  });

  // SDM 26.1.1: privilege faults come before VM exits. At CPL 3 HLT, RDMSR/WRMSR, MOV to CR and
  // INVLPG (and IN/OUT with IOPL 0) raise #GP in the guest and never exit.
  it.each<1 | 2>([1, 2])(
    "privileged instructions at CPL 3 fault in the guest instead of exiting (level %i)",
    (level) => {
      const steps = (cpl: 0 | 3) =>
        workload("privileged")
          .setup({ level, cpl })
          .hlt()
          .wrmsr(0x10, 5)
          .rdmsr(0x10)
          .movToCr4(0x6a0)
          .invlpg(0x1000)
          .in(0x70, 1)
          .cpuid(0)
          .build();
      // Without the per-entry DEBUGCTL read, whose RDMSR in L1 is an MSR exit of its own, every MSR
      // exit counted is the guest's.
      const config = resolveFlags("v6.12", { hostDebugctlPerEntry: false });
      const user = runWorkload({ program: steps(3), config });
      const kernel = runWorkload({ program: steps(0), config });
      expect(user.snapshot.guestFaults).toBe(6);
      expect(kernel.snapshot.guestFaults).toBe(0);
      expect(user.counts.EXIT_HANDLER_HLT ?? 0).toBe(0);
      expect(user.counts.EXIT_HANDLER_MSR ?? 0).toBe(0);
      expect(kernel.counts.EXIT_HANDLER_MSR).toBeGreaterThan(0);
      // CPUID exits at any CPL.
      expect(user.counts.EXIT_HANDLER_CPUID).toBe(1);
    },
  );

  // With l1Ept=off L1 shadow-pages L3 through L2's shadow tables (vmcs12's GUEST_CR3). Three bugs hid
  // here: L1 injected the #PF into L3 although L2 intercepts it (kvm: nested_vmx_is_exception_vmexit
  // makes it a nested exit); L2's writes to its shadow tables, which L1 write-protects, were EPT
  // violations to a KVM without EPT; and L1 wrote its guest's CR3 (not its shadow root) to
  // GUEST_CR3 in guest mode and read vmcs02's GUEST_CR3 back into vmcs12 on exit (kvm: only with
  // enable_ept). L3 saw its first touches as page faults.
  it.each(["touch_memory", "cr3_switch", "mixed"])(
    "%s at level 3 sees the same results with l1Ept=off as with EPT",
    (name) => {
      const program = builtinWorkload(
        name,
        name === "touch_memory" ? { level: 3, pages: 4 } : { level: 3, iterations: 2 },
      );
      const without = runWorkload({ program, config: resolveFlags("v6.12", { l1Ept: false }) });
      const withEpt = runWorkload({ program, config: resolveFlags("v6.12", {}) });
      const { vmcs12: _a, ...seenWithout } = without.snapshot;
      const { vmcs12: _b, ...seenWith } = withEpt.snapshot;
      expect(seenWithout).toEqual(seenWith);
      expect(seenWithout.guestFaults).toBe(0);
      // L2's shadow-table writes reach L1 as #PF exits that L1 emulates.
      expect(without.counts.TRACKED_WRITE).toBeGreaterThan(0);
    },
  );
});

describe("port I/O results in RAX (kvm: complete_fast_pio_in)", () => {
  it("a 4-byte IN zero-extends into RAX; a 1-byte IN merges into its low byte", () => {
    for (const level of [1, 2] as const) {
      const rax = (size: 1 | 4) => {
        // VMCALL of an unknown hypercall leaves -KVM_ENOSYS (-1000, all 64 bits) in RAX first.
        const program = workload("in-width").setup({ level }).vmcall(0x7fff).in(0x70, size).build();
        return runWorkload({ program, config: resolveFlags("v6.12", {}) }).snapshot.gprs[0]!;
      };
      expect(rax(4)).toMatch(/^0x0*[0-9a-f]{1,8}$/);
      expect(rax(1)).toMatch(/^0xfffffffffffffc[0-9a-f]{2}$/);
    }
  });
});
