import type { ExitSink } from "./vmx-cpu";

/** What runs in a guest context: a workload program, or a hypervisor (the KVM model one level up). */
export const GUEST_KIND = { WORKLOAD: 0, HYPERVISOR: 1 } as const;
export type GuestKind = (typeof GUEST_KIND)[keyof typeof GUEST_KIND];

/** General-purpose register numbers as the VMX instruction-information field encodes them (SDM 28.2.5). */
export const GPR = { RAX: 0, RCX: 1, RDX: 2, RBX: 3, RSP: 4, RBP: 5, RSI: 6, RDI: 7 } as const;

/**
 * One virtual processor as the hardware sees it while it runs: its level, what runs in it, and its
 * general-purpose registers. GPRs are not part of any VMCS: every hypervisor on the exit path saves
 * and restores them unchanged (kvm: vcpu->arch.regs, __vmx_vcpu_run), so one register file per
 * context is exactly what the innermost handler reads and writes, at any depth.
 */
export class GuestContext {
  readonly name: string;
  readonly level: number;
  readonly kind: GuestKind;
  /** GPR bits 31:0 and 63:32, indexed by `GPR`. */
  readonly gprLo: Uint32Array = new Uint32Array(16);
  readonly gprHi: Uint32Array = new Uint32Array(16);
  /**
   * A hypervisor context only: its parent delivered a VM exit of its guest (a nested VM exit) and
   * its exit handler has not started yet. The hardware's trampoline runs the handler.
   */
  pendingExit = false;
  /** A hypervisor context only: the outcome of its last VMX instruction that exited (VmxOutcome). */
  vmxOutcome = 0;
  /**
   * A hypervisor context only: its parent emulated its last store to a write-protected page (kvm:
   * the write-tracked path). False after such an exit means the parent unsynced the page and let the
   * store re-execute.
   */
  storeEmulated = false;
  /**
   * A workload context only: the memory operand of the load or store in progress, as KVM's emulator
   * decodes it from the instruction bytes (kvm: x86_decode_insn). The model's workloads have no
   * instruction bytes, so the processor leaves the decoded form here when the access exits:
   * size in bytes (0: the instruction in progress has no data operand, e.g. a fetch), direction,
   * a store's value (bits 31:0 and 63:32) and the instruction's length.
   */
  accessBytes = 0;
  accessWrite = false;
  accessValueLo = 0;
  accessValueHi = 0;
  accessLength = 0;
  /**
   * A workload context only: the value an emulated load delivered (bits 31:0 and 63:32,
   * zero-extended from the access size) — the destination of the workload's load, which the
   * processor folds into the digest like a load from RAM.
   */
  loadedLo = 0;
  loadedHi = 0;
  /** The code that runs in a hypervisor context (its KVM model); null for a workload. */
  hypervisor: ExitSink | null = null;

  constructor(name: string, level: number, kind: GuestKind) {
    if (!Number.isInteger(level) || level < 1 || level > 3)
      throw new RangeError(`guest level ${level} is not 1..3`);
    this.name = name;
    this.level = level;
    this.kind = kind;
  }

  gpr(index: number): number {
    return this.gprHi[index]! * 4294967296 + this.gprLo[index]!;
  }

  setGpr(index: number, lo: number, hi: number): void {
    this.gprLo[index] = lo >>> 0;
    this.gprHi[index] = hi >>> 0;
  }
}
