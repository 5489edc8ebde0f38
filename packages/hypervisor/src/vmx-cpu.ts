import type { HardwareVmcs, VmcsProcessor, VmxResult } from "@nestvisor/vmx";
import type { PhysicalMemory } from "@nestvisor/x86-arch";
import type { GuestContext } from "./guest-context";

/** The hypervisor code that handles VM exits of the guests it runs (kvm: vmx_handle_exit and the run loop). */
export interface ExitSink {
  /** A guest of this hypervisor exited to it; its exit information is in the current VMCS. */
  onVmExit(): void;
}

/**
 * The processor as a hypervisor sees it (DESIGN.md §3). L0 gets the physical CPU; a hypervisor at
 * level n ≥ 1 gets the CPU its parent emulates, on which every VMX instruction may be a VM exit to the
 * parent. The same KVM model runs on either, which is what lets a third level run with no new code.
 */
export interface VmxCpu {
  /** The level of the hypervisor that uses this CPU (0 for the physical CPU). */
  readonly hostLevel: number;
  /** VMXON/VMPTRLD/VMCLEAR/VMREAD/VMWRITE in VMX root operation of this hypervisor. */
  readonly processor: VmcsProcessor;
  /** This hypervisor's physical memory (host memory for L0, guest-physical memory otherwise). */
  readonly memory: PhysicalMemory;
  /** Registers the hypervisor that receives the exits of the guests it runs on this CPU. */
  attach(sink: ExitSink): void;
  /** Binds the guest that a VMCS of this hypervisor runs. */
  bindGuest(vmcs: HardwareVmcs, guest: GuestContext): void;
  /** The guest a VMCS runs, or undefined. */
  guestOf(vmcs: HardwareVmcs): GuestContext | undefined;
  /**
   * VMLAUNCH (`launch`) or VMRESUME of the current VMCS. VMsucceed (0) means the guest now runs;
   * its next VM exit reaches the attached sink. Otherwise the VMfail result.
   */
  enterGuest(launch: boolean): VmxResult;
  /** INVEPT (type 1 single-context with `eptp`, 2 global) executed by this hypervisor. */
  invept(type: number, eptp: number): VmxResult;
  /**
   * INVVPID executed by this hypervisor: type 0 (the linear address `linear` of `vpid`), 1
   * (single-context), 2 (all-context); `linear` is below 2^53.
   */
  invvpid(type: number, vpid: number, linear?: number): VmxResult;
  /**
   * RDMSR of IA32_DEBUGCTL executed by this hypervisor (kvm: get_debugctlmsr): the value, below
   * 2^32 (DEBUGCTL's defined bits are 0–15). A guest hypervisor's read exits to its parent when the
   * MSR bitmap of the VMCS it runs on intercepts it.
   */
  readDebugctl(): number;
}
