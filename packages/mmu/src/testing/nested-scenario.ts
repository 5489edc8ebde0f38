import { CountingMeter } from "@nestvisor/vmx";
import { CR0, CR4, EFER, EPT_MEMORY_TYPE, encodeEptPointer } from "@nestvisor/x86-arch";
import { MMU_EVENTS } from "../mmu-events";
import { DEFAULT_MMU_FLAGS, type MmuFlags } from "../mmu-flags";
import { type MmuRegisters, type NestedEntryState, VcpuMmu, type VcpuMmuOptions } from "../vcpu-mmu";
import { FakeRootBackend, type FakeRootBackendOptions } from "./fake-root-backend";

/**
 * Test data for the nested-switch scenarios of kvm-mmu.md §6.3 and §7: a 64-bit L1 and L2 with
 * WP, NX, SMEP, SMAP and PKE (the worked role of §2.9), L1's EPTP for L2, and a driver for
 * L1 → L2 → L1 round trips that reloads roots where vcpu_enter_guest would.
 */

/** CR0 of a 64-bit guest kernel: PE, MP, ET, NE, WP, AM, PG. */
export const GUEST_CR0 = (CR0.PE | CR0.MP | CR0.ET | CR0.NE | CR0.WP | CR0.AM | CR0.PG) >>> 0;
/** CR4 with PAE and every MMU feature of §2.9's example, plus PGE and OSFXSR (not role bits). */
export const GUEST_CR4 = (CR4.PAE | CR4.PGE | CR4.OSFXSR | CR4.SMEP | CR4.SMAP | CR4.PKE) >>> 0;
export const GUEST_EFER = (EFER.SCE | EFER.LME | EFER.LMA | EFER.NXE) >>> 0;

export const L1_CR3 = 0x0010_0000;
export const L2_CR3 = 0x0020_0000;

/** L1's state (also what vmcs12's host-state area loads on every nested exit). */
export const L1_REGS: MmuRegisters = Object.freeze({
  cr0: GUEST_CR0,
  cr3: L1_CR3,
  cr4: GUEST_CR4,
  efer: GUEST_EFER,
});

/** L1's EPT pointer for L2: WB, 4-level, A/D on, EPT12's PML4 at 0x300000. */
export function eptp(root = 0x0030_0000, accessedDirty = true): number {
  const { lo, hi } = encodeEptPointer({
    memoryType: EPT_MEMORY_TYPE.WB,
    walkLength: 4,
    accessedDirty,
    supervisorShadowStack: false,
    root,
  });
  return hi * 0x1_0000_0000 + lo;
}

export const EPTP12 = eptp();

/** L2 entered with EPT12 (case A) or without (cases B and C). */
export function l2State(cr3 = L2_CR3, withEpt = true): NestedEntryState {
  const regs = { cr0: GUEST_CR0, cr3, cr4: GUEST_CR4, efer: GUEST_EFER };
  return withEpt ? { ...regs, eptp: EPTP12 } : regs;
}

export interface NestedScenario {
  readonly vcpu: VcpuMmu;
  readonly backend: FakeRootBackend;
  readonly meter: CountingMeter;
}

/**
 * A vCPU with a fake backend and a counting meter, running L1 with its root loaded (the state
 * "cache initially empty except the loaded L1 root" of §7.3). Counts and pending requests start
 * from zero after that unless `countSetup`.
 */
export function nestedScenario(
  flags: MmuFlags = DEFAULT_MMU_FLAGS,
  options: Partial<VcpuMmuOptions> & {
    readonly backendOptions?: FakeRootBackendOptions;
    readonly countSetup?: boolean;
  } = {},
): NestedScenario {
  const backend = new FakeRootBackend(options.backendOptions);
  const meter = new CountingMeter([MMU_EVENTS]);
  const vcpu = new VcpuMmu({ ...options, backend, meter, flags });
  vcpu.setSregs(L1_REGS);
  vcpu.reload();
  if (!options.countSetup) {
    meter.reset();
    vcpu.requests = 0; // the setup's KVM_SET_SREGS flush request, as if served by the first entry
    for (const ctx of [vcpu.rootMmu, vcpu.guestMmu, vcpu.nestedMmu]) ctx.stats.reset();
  }
  return { vcpu, backend, meter };
}

/** One L1 → L2 → L1 round trip, with the root reloads that precede each VM entry. */
export function roundTrip(vcpu: VcpuMmu, l2: NestedEntryState, host: MmuRegisters = L1_REGS): void {
  vcpu.nestedVmEntry(l2);
  vcpu.reload();
  vcpu.nestedVmExit(host);
  vcpu.reload();
}
