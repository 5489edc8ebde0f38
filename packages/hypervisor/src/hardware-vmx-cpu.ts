import {
  bitmapIntercepts,
  CPU_BASED_CTLS,
  type HardwareVmcs,
  type Meter,
  meterTable,
  SECONDARY_EXEC_CTLS,
  VM_ENTRY_CTLS,
  VM_EXIT_CTLS,
  VMX_EVENTS,
  VMX_RESULT,
  type VmcsProcessor,
  type VmcsShadowingBitmaps,
  type VmxResult,
} from "@nestvisor/vmx";
import { CR0, EFER, eferInMode, eptTagOf, INVEPT_TYPE, type PhysicalMemory, Tlb } from "@nestvisor/x86-arch";
import { HYPERVISOR_BOOT_STATE } from "./guest-boot-state";
import { GUEST_KIND, type GuestContext } from "./guest-context";
import { HYPERVISOR_EVENTS } from "./hypervisor-events";
import type { Tracer } from "./tracer";
import { TransitionLedger } from "./transition-ledger";
import { VMCS_FIELD as F } from "./vmcs-field-encodings";
import type { ExitSink, VmxCpu } from "./vmx-cpu";

const EV_EXIT = HYPERVISOR_EVENTS.HARDWARE_VM_EXIT;
const EV_ENTRY = HYPERVISOR_EVENTS.HARDWARE_VM_ENTRY;
const EV_VMREAD = VMX_EVENTS.VMREAD;
const EV_VMWRITE = VMX_EVENTS.VMWRITE;
const SHADOW_VMCS = SECONDARY_EXEC_CTLS.SECONDARY_EXEC_SHADOW_VMCS;
const TWO_32 = 4294967296;

/** The exit information a VM exit stores (SDM 28.2); the runtime fills it before `vmExit`. */
export class ExitInformation {
  reason = 0;
  qualificationLo = 0;
  qualificationHi = 0;
  instructionLength = 0;
  instructionInfo = 0;
  linearLo = 0;
  linearHi = 0;
  /** Guest-physical address (EPT violations and misconfigurations), a number below 2^53. */
  gpa = 0;
  interruptionInfo = 0;
  errorCode = 0;

  reset(reason: number): this {
    this.reason = reason;
    this.qualificationLo = 0;
    this.qualificationHi = 0;
    this.instructionLength = 0;
    this.instructionInfo = 0;
    this.linearLo = 0;
    this.linearHi = 0;
    this.gpa = 0;
    this.interruptionInfo = 0;
    this.errorCode = 0;
    return this;
  }
}

/** SDM 27.3.2.1: IA32_EFER after a VM entry on `vmcs`, the processor's EFER being `current`. */
function eferAtVmEntry(vmcs: HardwareVmcs, current: number): number {
  const entry = vmcs.read(F.VM_ENTRY_CONTROLS);
  if ((entry & VM_ENTRY_CTLS.VM_ENTRY_LOAD_IA32_EFER) !== 0) return vmcs.read(F.GUEST_IA32_EFER);
  const ia32e = (entry & VM_ENTRY_CTLS.VM_ENTRY_IA32E_MODE) !== 0;
  // LMA follows "IA-32e mode guest"; LME too, but only when the guest's CR0 enables paging.
  if ((vmcs.read(F.GUEST_CR0) & CR0.PG) !== 0) return eferInMode(current, ia32e);
  return (ia32e ? current | EFER.LMA : current & ~EFER.LMA) >>> 0;
}

/** SDM 28.5.1: IA32_EFER after a VM exit from `vmcs`, the processor's EFER being `current`. */
function eferAtVmExit(vmcs: HardwareVmcs, current: number): number {
  const exit = vmcs.read(F.VM_EXIT_CONTROLS);
  if ((exit & VM_EXIT_CTLS.VM_EXIT_LOAD_IA32_EFER) !== 0) return vmcs.read(F.HOST_IA32_EFER);
  return eferInMode(current, (exit & VM_EXIT_CTLS.VM_EXIT_HOST_ADDR_SPACE_SIZE) !== 0);
}

/** A VMCS's secondary controls, or 0 when "activate secondary controls" is 0 (SDM 25.6.2). */
export function activeSecondaryControls(vmcs: HardwareVmcs): number {
  return (vmcs.read(F.CPU_BASED_VM_EXEC_CONTROL) & CPU_BASED_CTLS.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS) !== 0
    ? vmcs.read(F.SECONDARY_VM_EXEC_CONTROL)
    : 0;
}

/** The VMCS enables VPID (SDM 3C 28.1). */
function vpidEnabled(vmcs: HardwareVmcs): boolean {
  return (activeSecondaryControls(vmcs) & SECONDARY_EXEC_CTLS.SECONDARY_EXEC_ENABLE_VPID) !== 0;
}

/**
 * The physical processor (DESIGN.md §3): VMX root operation through a `VmcsProcessor`, VM entries
 * and exits with their guest-state load and save, VMCS shadowing for VMREAD/VMWRITE that a guest
 * hypervisor executes in VMX non-root operation (SDM 25.10, 26.1.3 and 31.3 VMREAD/VMWRITE), and the
 * trampoline that runs a guest hypervisor's exit handler when an exit was delivered to it.
 *
 * Guest state moved at entry and exit: RIP, RFLAGS, CR0, CR3, CR4, EFER (SDM 27.3.2, 28.3.1). The
 * TLB is `tlb` (see there). Not
 * modelled: the hardware's own guest-state and host-state checks (SDM 27.3.1, 27.2.2: every VMCS the
 * model enters was prepared by KVM code that checks what KVM checks; kvm-vmx.md §9 is enforced on
 * vmcs12), interrupt and NMI delivery, the preemption timer.
 */
export class HardwareVmxCpu implements VmxCpu {
  readonly hostLevel = 0;
  readonly processor: VmcsProcessor;
  readonly memory: PhysicalMemory;
  readonly meter: Meter;
  readonly ledger: TransitionLedger;
  /** The exit being delivered; filled by whoever causes the exit. */
  readonly exitInfo = new ExitInformation();
  /**
   * The processor's TLB (SDM Vol. 3A 4.10, Vol. 3C 28.3): the workload executor caches the
   * translations of a guest's accesses in it and applies the guest's own invalidations (MOV to CR0/
   * CR3/CR4, INVLPG, page faults). Entries outlive VM transitions as the tags allow: a VM entry or
   * exit drops only VPID 0000H's linear and combined mappings, when the VMCS does not enable VPID
   * (SDM 3C 28.3.3.1). Everything else is dropped only by the invalidations L0 executes — INVEPT,
   * INVVPID — so a flush KVM would make and the model does not shows up as a stale translation the
   * guest can see (the differential and audit checks compare guest-visible state).
   */
  readonly tlb = new Tlb();
  /** The context running in VMX non-root operation, or null while L0 runs. */
  running: GuestContext | null = null;
  /** The VMCS `running` runs on. */
  runningVmcs: HardwareVmcs | null = null;
  /**
   * IA32_EFER of the running guest, as the last VM entry loaded it (SDM 27.3.2.1): from
   * GUEST_IA32_EFER with "load IA32_EFER", else the processor's EFER with LMA (and, with paging,
   * LME) following "IA-32e mode guest". The guest cannot change it without a VM exit (KVM intercepts
   * WRMSR to EFER).
   */
  guestEfer = 0;
  /** IA32_EFER in VMX root operation (L0's); VM exits reload it (SDM 28.5.1). */
  rootEfer: number = HYPERVISOR_BOOT_STATE.efer;
  /**
   * IA32_DEBUGCTL in VMX root operation. Linux boots with it clear (no LBR or BTF user in the
   * model's host), and every VM exit clears it (SDM 28.5.1); KVM would write its snapshot back after
   * the exit only when that snapshot is non-zero (kvm: vmx_vcpu_run, update_debugctlmsr).
   */
  rootDebugctl = 0;

  #sink: ExitSink | null = null;
  readonly #guests = new Map<HardwareVmcs, GuestContext>();
  readonly #bitmaps = new Map<HardwareVmcs, VmcsShadowingBitmaps>();
  readonly #counts: Float64Array | null;

  constructor(processor: VmcsProcessor, memory: PhysicalMemory, tracer: Tracer) {
    this.processor = processor;
    this.memory = memory;
    this.meter = processor.meter;
    this.ledger = new TransitionLedger(processor.meter, tracer);
    this.#counts = meterTable(this.meter);
  }

  attach(sink: ExitSink): void {
    this.#sink = sink;
  }

  bindGuest(vmcs: HardwareVmcs, guest: GuestContext): void {
    this.#guests.set(vmcs, guest);
  }

  guestOf(vmcs: HardwareVmcs): GuestContext | undefined {
    return this.#guests.get(vmcs);
  }

  /** Where the VMREAD/VMWRITE bitmaps of a VMCS that enables shadowing live (its VMREAD_BITMAP/VMWRITE_BITMAP). */
  setShadowingBitmaps(vmcs: HardwareVmcs, bitmaps: VmcsShadowingBitmaps): void {
    this.#bitmaps.set(vmcs, bitmaps);
    this.#lookupVmcs = null;
  }

  /** VMLAUNCH/VMRESUME by L0 (SDM 27): basic checks, the cached-VMCS rule of seed 003, guest-state load. */
  enterGuest(launch: boolean): VmxResult {
    const p = this.processor;
    const result = p.vmentryChecks(launch);
    if (result !== VMX_RESULT.SUCCEED) return result;
    const vmcs = p.current!;
    const guest = this.#guests.get(vmcs);
    if (guest === undefined) throw new Error(`VM entry on ${vmcs.describe()}, which runs no guest`);
    p.noteVmEntry(vmcs);
    p.completeVmEntry();
    this.guestEfer = eferAtVmEntry(vmcs, this.rootEfer);
    this.tlb.vmTransition(vpidEnabled(vmcs));
    this.#tally(EV_ENTRY, 1);
    this.running = guest;
    this.runningVmcs = vmcs;
    this.ledger.enter(guest);
    return VMX_RESULT.SUCCEED;
  }

  /**
   * INVEPT by L0 (SDM 3C 28.3.3.1, 31.3 INVEPT): the guest-physical and combined mappings of the
   * EPTP's EP4TA (single-context) or of every EP4TA (all-context). L0's operands are valid by
   * construction (KVM checks the type against the capabilities first).
   */
  invept(type: number, eptp: number): VmxResult {
    this.#tally(VMX_EVENTS.INVEPT, 1);
    this.tlb.invept(
      type,
      type === INVEPT_TYPE.SINGLE_CONTEXT ? eptTagOf(eptp >>> 0, Math.floor(eptp / TWO_32)) : 0,
    );
    return VMX_RESULT.SUCCEED;
  }

  /** INVVPID by L0 (SDM 3C 28.3.3.1, 31.3 INVVPID): linear and combined mappings of the VPID(s). */
  invvpid(type: number, vpid: number, linear = 0): VmxResult {
    this.#tally(VMX_EVENTS.INVVPID, 1);
    this.tlb.invvpid(type, vpid, linear >>> 0, Math.floor(linear / TWO_32));
    return VMX_RESULT.SUCCEED;
  }

  /** RDMSR IA32_DEBUGCTL by L0: a native MSR read. */
  readDebugctl(): number {
    this.#tally(HYPERVISOR_EVENTS.RDMSR_DEBUGCTL, 1);
    return this.rootDebugctl;
  }

  /**
   * The running guest causes a VM exit described by `exitInfo` (SDM 28): exit information stored in
   * its VMCS, L0 takes over and handles it; returns when L0 has entered a guest again.
   */
  vmExit(): void {
    const guest = this.running;
    const vmcs = this.runningVmcs;
    if (guest === null || vmcs === null) throw new Error("a VM exit while no guest runs");
    const info = this.exitInfo;
    vmcs.write(F.VM_EXIT_REASON, info.reason);
    vmcs.write(F.EXIT_QUALIFICATION, info.qualificationLo, info.qualificationHi);
    vmcs.write(F.VM_EXIT_INSTRUCTION_LEN, info.instructionLength);
    vmcs.write(F.VMX_INSTRUCTION_INFO, info.instructionInfo);
    vmcs.write(F.GUEST_LINEAR_ADDRESS, info.linearLo, info.linearHi);
    vmcs.write(F.GUEST_PHYSICAL_ADDRESS, info.gpa >>> 0, Math.floor(info.gpa / 4294967296));
    vmcs.write(F.VM_EXIT_INTR_INFO, info.interruptionInfo);
    vmcs.write(F.VM_EXIT_INTR_ERROR_CODE, info.errorCode);
    vmcs.write(F.IDT_VECTORING_INFO_FIELD, 0);
    this.#tally(EV_EXIT, 1);
    this.rootEfer = eferAtVmExit(vmcs, this.rootEfer);
    this.rootDebugctl = 0;
    this.tlb.vmTransition(vpidEnabled(vmcs));
    this.running = null;
    this.runningVmcs = null;
    this.ledger.exit(guest, info.reason);
    const sink = this.#sink;
    if (sink === null) throw new Error("no hypervisor attached to the hardware CPU");
    // SDM 28.5: the host state of the VMCS is loaded, i.e. L0's VM-exit handler runs.
    const current = this.processor.current;
    if (current !== vmcs) throw new Error("L0 lost its current VMCS across a VM exit");
    sink.onVmExit();
  }

  /**
   * Runs guest hypervisors whose parent delivered them an exit, until the running context is not
   * one of them (a workload, or a hypervisor in the middle of its own code).
   */
  drive(): void {
    for (;;) {
      const guest = this.running;
      if (guest === null) throw new Error("no guest runs after L0 handled an exit");
      if (guest.kind !== GUEST_KIND.HYPERVISOR || !guest.pendingExit) return;
      guest.pendingExit = false;
      guest.hypervisor!.onVmExit();
    }
  }

  /**
   * A guest hypervisor's VMREAD in VMX non-root operation: served from the shadow VMCS when the
   * running VMCS enables VMCS shadowing and the VMREAD bitmap does not intercept the field (SDM
   * 26.1.3, 31.3 VMREAD). Returns the shadow VMCS read (value in `shadowLo`/`shadowHi`), or false when
   * the instruction causes a VM exit instead.
   */
  shadowVmread(encoding: number): boolean {
    const shadow = this.#shadowFor(encoding, false);
    if (shadow === null) return false;
    const lo = shadow.read(encoding);
    this.shadowLo = Math.max(lo, 0);
    this.shadowHi = shadow.hi;
    this.#tally(EV_VMREAD, 1);
    return true;
  }

  /** A guest hypervisor's VMWRITE in non-root operation, as `shadowVmread` (SDM 31.3 VMWRITE). */
  shadowVmwrite(encoding: number, lo: number, hi: number): boolean {
    const shadow = this.#shadowFor(encoding, true);
    if (shadow === null) return false;
    shadow.write(encoding, lo, hi);
    this.#tally(EV_VMWRITE, 1);
    return true;
  }

  /** Value of the last shadow VMREAD. */
  shadowLo = 0;
  shadowHi = 0;

  #shadowFor(encoding: number, write: boolean): HardwareVmcs | null {
    const vmcs = this.runningVmcs;
    if (vmcs === null) return null;
    if ((vmcs.read(F.SECONDARY_VM_EXEC_CONTROL) & SHADOW_VMCS) === 0) return null;
    const linkLo = vmcs.read(F.VMCS_LINK_POINTER);
    const linkHi = vmcs.hi;
    // The bitmaps and the linked region of the last VMCS asked about are kept while its link
    // pointer and the processor's regions are unchanged (a guest hypervisor asks a few times per exit).
    const generation = this.processor.regionGeneration;
    if (
      vmcs !== this.#lookupVmcs ||
      linkLo !== this.#lookupLinkLo ||
      linkHi !== this.#lookupLinkHi ||
      generation !== this.#lookupGeneration
    ) {
      this.#lookupVmcs = vmcs;
      this.#lookupLinkLo = linkLo;
      this.#lookupLinkHi = linkHi;
      this.#lookupGeneration = generation;
      this.#lookupBitmaps = this.#bitmaps.get(vmcs) ?? null;
      const linked =
        linkLo === 0xffffffff && linkHi === 0xffffffff
          ? undefined
          : this.processor.vmcsAt(linkHi * 4294967296 + linkLo);
      this.#lookupLinked = linked ?? null;
    }
    const bitmaps = this.#lookupBitmaps;
    if (bitmaps === null) return null;
    const bitmap = write ? bitmaps.activeVmwriteBitmap : bitmaps.vmreadBitmap;
    if (bitmapIntercepts(bitmap, encoding)) return null;
    // The shadow-VMCS indicator is read each time: it belongs to the region, not to the lookup.
    const linked = this.#lookupLinked;
    return linked?.shadow ? linked : null;
  }

  #lookupVmcs: HardwareVmcs | null = null;
  #lookupLinkLo = 0;
  #lookupLinkHi = 0;
  #lookupGeneration = -1;
  #lookupBitmaps: VmcsShadowingBitmaps | null = null;
  #lookupLinked: HardwareVmcs | null = null;

  #tally(event: number, n: number): void {
    const counts = this.#counts;
    if (counts !== null) counts[event] = counts[event]! + n;
    else this.meter.count(event, n);
  }
}
