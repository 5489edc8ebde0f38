import type { Memslots, ShadowPageStore } from "@nestvisor/mmu";
import {
  EXIT_REASON,
  type HardwareVmcs,
  VMX_INSTRUCTION_INFO as INFO,
  INVALID_VMCS_POINTER,
  type Meter,
  SECONDARY_EXEC_CTLS,
  VMCS12_REVISION,
  VMX_MISC,
  VMX_OUTCOME,
  VMX_RESULT,
  VmcsProcessor,
  type VmxCapabilities,
  type VmxResult,
} from "@nestvisor/vmx";
import { MSR, PFERR, type PhysicalMemory, readWords, writeWords } from "@nestvisor/x86-arch";
import { GPR, type GuestContext } from "./guest-context";
import type { HardwareVmxCpu } from "./hardware-vmx-cpu";
import type { GuestVmcsAccess } from "./model-policies";
import { vmcsInterceptsMsr } from "./msr-bitmap";
import { VMCS_FIELD as F } from "./vmcs-field-encodings";
import type { ExitSink, VmxCpu } from "./vmx-cpu";

const TWO_32 = 4294967296;
/** Instruction lengths of the modelled VMX instructions (register forms; SDM Vol. 2 encodings). */
const VMX_INSTRUCTION_LENGTH = 3;
/** VMX instruction information for VMREAD/VMWRITE with register operands: Reg1 = RAX, Reg2 = RDX, bit 10 set. */
const REGISTER_FORM = (GPR.RAX << INFO.REG1_SHIFT) | INFO.REGISTER_OPERAND | (GPR.RDX << INFO.REG2_SHIFT);
/**
 * A memory operand in a stack slot: base RSP plus a displacement, 64-bit address size, SS segment
 * (SDM 28.2.5). KVM's own VMX instructions take their pointer or descriptor from a local variable
 * ("m" operands of vmcs_load, vmcs_clear, __invept, __invvpid), which the compiler places on the
 * stack. The model passes the slot's content in RAX: its guest hypervisors have no memory of their
 * own, through their own page tables, from which L0 would read it.
 */
const MEMORY_ON_STACK =
  (2 << INFO.ADDRESS_SIZE_SHIFT) |
  (2 << INFO.SEGMENT_SHIFT) |
  INFO.INDEX_INVALID |
  (GPR.RSP << INFO.BASE_SHIFT);
/** INVEPT/INVVPID: the type in Reg2 = RDX; the descriptor (modelled as its EPTP or VPID) in RAX. */
const TYPE_IN_RDX = (GPR.RDX << INFO.REG2_SHIFT) | MEMORY_ON_STACK;
/** RDMSR is 0F 32 (SDM Vol. 2B). */
const RDMSR_LENGTH = 2;
/**
 * The length of the store a guest hypervisor writes a page-table entry with (a MOV with a REX prefix
 * and a memory operand). VM_EXIT_INSTRUCTION_LEN is undefined for EPT violations and #PF (SDM 28.2.5),
 * so the parent learns it by decoding the instruction (x86_decode_insn).
 */
export const TRACKED_WRITE_LENGTH = 4;

/**
 * The guest hypervisor can use VMCS shadowing on the CPU its parent offers (kvm: cpu_has_vmx_shadow_vmcs,
 * read by the guest kernel from the capability MSRs it sees): the secondary control SHADOW_VMCS may be
 * 1 and IA32_VMX_MISC reports VMWRITE to any field. KVM 6.12 offers both to every L1 whatever the
 * host has (kvm: nested_vmx_setup_secondary_ctls "can emulate VMCS shadowing", nested_vmx_setup_misc_data).
 */
export function offersVmcsShadowing(caps: VmxCapabilities): boolean {
  return (
    (caps.procbasedCtls2.hi & SECONDARY_EXEC_CTLS.SECONDARY_EXEC_SHADOW_VMCS) !== 0 &&
    (caps.misc.lo & VMX_MISC.VMX_MISC_VMWRITE_SHADOW_RO_FIELDS) !== 0
  );
}

/** Options of a `NestedVmxCpu`. */
export interface NestedVmxCpuOptions {
  /**
   * The parent offers VMCS shadowing (see `offersVmcsShadowing`): the guest hypervisor's processor
   * reports the capability, so its KVM may use a shadow VMCS for its own guest hypervisor; L0 then
   * emulates the shadowing from its cached shadow vmcs12. Default false.
   */
  readonly vmcsShadowing?: boolean;
}

/**
 * The VMX instructions a guest hypervisor executes, as its parent presents them (DESIGN.md §3, the
 * nested `VmxCpu`): a `VmcsProcessor` whose instructions are VM exits to the parent — each one a
 * hardware VM exit of the running context, handled by L0 and, when the context runs under a
 * hypervisor that is itself a guest, reflected to it — except VMREAD/VMWRITE that the hardware serves
 * from a shadow VMCS (SDM 25.10). Operands travel in the context's registers as the instruction
 * information field describes them. The VMCS objects this processor creates are handles: their
 * contents live in the parent's vmcs12 (and shadow VMCS), never in the handle.
 *
 * A `GuestVmcsAccess` policy (`useVmcsAccess`) serves VMREAD/VMWRITE of the current VMCS first, with
 * no exit (e.g. as memory accesses to an enlightened VMCS); what it declines takes the path above.
 */
export class NestedVmcsProcessor extends VmcsProcessor {
  readonly #cpu: NestedVmxCpu;
  #current: HardwareVmcs | null = null;
  #access: GuestVmcsAccess | null = null;

  constructor(cpu: NestedVmxCpu, meter: Meter, vmcsShadowing = false) {
    // KVM offers VMWRITE to any field (IA32_VMX_MISC bit 29) and emulates VMCS shadowing: L0 serves
    // the VMREAD/VMWRITE its guest's guest executes from the cached shadow vmcs12 (kvm:
    // nested_vmx_exit_handled_vmcs_access, get_shadow_vmcs12). The hardware never shadows for it.
    super({ meter, revisionId: VMCS12_REVISION, vmwriteAnyField: true, vmcsShadowing });
    this.#cpu = cpu;
  }

  override get current(): HardwareVmcs | null {
    return this.#current;
  }

  /** The VMCS access policy of this guest hypervisor (null: VMX instructions only). */
  get vmcsAccess(): GuestVmcsAccess | null {
    return this.#access;
  }

  /** Installs (or, with null, removes) the policy that serves VMREAD/VMWRITE without exits. */
  useVmcsAccess(access: GuestVmcsAccess | null): void {
    this.#access = access;
  }

  override get currentPointer(): number {
    return this.#current === null ? INVALID_VMCS_POINTER : this.#current.address;
  }

  override vmxon(address: number): VmxResult {
    return this.#cpu.trap(EXIT_REASON.VMON, MEMORY_ON_STACK, address, 0);
  }

  override vmxoff(): VmxResult {
    return this.#cpu.trap(EXIT_REASON.VMOFF, 0, 0, 0);
  }

  override vmptrld(address: number): VmxResult {
    const result = this.#cpu.trap(EXIT_REASON.VMPTRLD, MEMORY_ON_STACK, address, 0);
    if (result === VMX_RESULT.SUCCEED) {
      const vmcs = this.vmcsAt(address);
      if (vmcs === undefined) throw new Error(`VMPTRLD of 0x${address.toString(16)}: no VMCS handle there`);
      this.#current = vmcs;
    }
    return result;
  }

  override vmclear(address: number): VmxResult {
    const result = this.#cpu.trap(EXIT_REASON.VMCLEAR, MEMORY_ON_STACK, address, 0);
    if (result === VMX_RESULT.SUCCEED && this.#current?.address === address) this.#current = null;
    return result;
  }

  override vmptrst(): number {
    return this.currentPointer;
  }

  override vmread(encoding: number): number {
    const access = this.#access;
    const current = this.#current;
    if (access !== null && current !== null) {
      const lo = access.read(current.address, encoding);
      if (lo >= 0) {
        this.hi = access.hi;
        this.status = VMX_RESULT.SUCCEED;
        return lo;
      }
    }
    const cpu = this.#cpu;
    const hw = cpu.hardware;
    if (hw.running === cpu.context && hw.shadowVmread(encoding)) {
      this.hi = hw.shadowHi;
      this.status = VMX_RESULT.SUCCEED;
      return hw.shadowLo;
    }
    const ctx = cpu.context;
    ctx.setGpr(GPR.RDX, encoding, 0);
    const result = cpu.trap(EXIT_REASON.VMREAD, REGISTER_FORM, -1, 0);
    this.status = result;
    if (result !== VMX_RESULT.SUCCEED) {
      this.hi = 0;
      return -1;
    }
    this.hi = ctx.gprHi[GPR.RAX]!;
    return ctx.gprLo[GPR.RAX]!;
  }

  override vmwrite(encoding: number, lo: number, hi = 0): VmxResult {
    const access = this.#access;
    const current = this.#current;
    if (access !== null && current !== null && access.write(current.address, encoding, lo >>> 0, hi >>> 0)) {
      return VMX_RESULT.SUCCEED;
    }
    const cpu = this.#cpu;
    const hw = cpu.hardware;
    if (hw.running === cpu.context && hw.shadowVmwrite(encoding, lo >>> 0, hi >>> 0))
      return VMX_RESULT.SUCCEED;
    const ctx = cpu.context;
    ctx.setGpr(GPR.RDX, encoding, 0);
    ctx.setGpr(GPR.RAX, lo, hi);
    return cpu.trap(EXIT_REASON.VMWRITE, REGISTER_FORM, -1, 0);
  }

  override vmentryChecks(): VmxResult {
    throw new Error("a guest hypervisor enters its guest with VmxCpu.enterGuest");
  }

  /** The guest hypervisor's record of which VMCS is current changes only through its instructions. */
  noteCurrent(vmcs: HardwareVmcs | null): void {
    this.#current = vmcs;
  }
}

/** What the parent KVM exposes for write tracking of the guest hypervisor's page tables. */
export interface ParentMemoryView {
  readonly memory: PhysicalMemory;
  readonly memslots: Memslots;
  readonly store: ShadowPageStore;
  /**
   * The parent runs this guest hypervisor on EPT (the default), else on shadow paging, where a write
   * to a page the parent write-protects is a #PF rather than an EPT violation.
   */
  readonly usesEpt?: boolean;
}

/**
 * The `VmxCpu` a KVM offers its guest hypervisor. `context` is the vCPU the guest hypervisor runs in
 * (as its parent's guest); `hardware` is the physical CPU every exit goes through.
 */
export class NestedVmxCpu implements VmxCpu {
  readonly hostLevel: number;
  readonly hardware: HardwareVmxCpu;
  readonly context: GuestContext;
  readonly processor: NestedVmcsProcessor;
  readonly memory: PhysicalMemory;
  readonly #parentUsesEpt: boolean;
  #sink: ExitSink | null = null;
  readonly #guests = new Map<HardwareVmcs, GuestContext>();

  constructor(
    hardware: HardwareVmxCpu,
    context: GuestContext,
    parent: ParentMemoryView,
    meter: Meter,
    options: NestedVmxCpuOptions = {},
  ) {
    this.hostLevel = context.level;
    this.hardware = hardware;
    this.context = context;
    this.processor = new NestedVmcsProcessor(this, meter, options.vmcsShadowing ?? false);
    this.memory = new TrackedGuestMemory(this, parent);
    this.#parentUsesEpt = parent.usesEpt ?? true;
  }

  attach(sink: ExitSink): void {
    this.#sink = sink;
    this.context.hypervisor = sink;
  }

  bindGuest(vmcs: HardwareVmcs, guest: GuestContext): void {
    this.#guests.set(vmcs, guest);
  }

  guestOf(vmcs: HardwareVmcs): GuestContext | undefined {
    return this.#guests.get(vmcs);
  }

  /** VMLAUNCH/VMRESUME: an exit to the parent, which performs the nested VM entry. */
  enterGuest(launch: boolean): VmxResult {
    const outcome = this.trap(launch ? EXIT_REASON.VMLAUNCH : EXIT_REASON.VMRESUME, 0, -1, 0, true);
    // The checks passed and the nested entry ran (its guest runs, or an entry-failure exit is pending).
    return outcome === VMX_OUTCOME.ENTER_NON_ROOT ? VMX_RESULT.SUCCEED : outcome;
  }

  invept(type: number, eptp: number): VmxResult {
    this.context.setGpr(GPR.RDX, type, 0);
    return this.trap(EXIT_REASON.INVEPT, TYPE_IN_RDX, eptp, 0);
  }

  /** The descriptor's linear address (its second quadword) travels in RCX. */
  invvpid(type: number, vpid: number, linear = 0): VmxResult {
    this.context.setGpr(GPR.RDX, type, 0);
    this.context.setGpr(GPR.RCX, linear >>> 0, Math.floor(linear / TWO_32));
    return this.trap(EXIT_REASON.INVVPID, TYPE_IN_RDX, vpid, 0);
  }

  /**
   * RDMSR IA32_DEBUGCTL in this hypervisor's context. SDM 26.1.3: an exit when the VMCS it runs on
   * does not use MSR bitmaps or its read bitmap has the bit (KVM never passes DEBUGCTL through: it
   * is not in vmx_possible_passthrough_msrs). Otherwise the value VM entry loaded from
   * GUEST_IA32_DEBUGCTL (SDM 27.3.2.1, "load debug controls", which KVM always sets).
   */
  readDebugctl(): number {
    const hw = this.hardware;
    const ctx = this.context;
    const vmcs = hw.runningVmcs;
    if (hw.running !== ctx || vmcs === null) {
      throw new Error(`${ctx.name} executed RDMSR while it was not running`);
    }
    if (!vmcsInterceptsMsr(vmcs, hw.memory, MSR.IA32_DEBUGCTL, false))
      return vmcs.read(F.GUEST_IA32_DEBUGCTL);
    ctx.setGpr(GPR.RCX, MSR.IA32_DEBUGCTL, 0);
    const info = hw.exitInfo.reset(EXIT_REASON.MSR_READ);
    info.instructionLength = RDMSR_LENGTH;
    hw.vmExit();
    hw.drive();
    if (hw.running !== ctx) throw new Error(`${ctx.name}'s RDMSR did not return to it`);
    return ctx.gprLo[GPR.RAX]! + ctx.gprLo[GPR.RDX]! * TWO_32;
  }

  /**
   * Executes an instruction that causes a VM exit of this hypervisor's context: the operand
   * (`operand` ≥ 0: a pointer or descriptor value, put in RAX) and the exit information go to the
   * hardware, which exits to L0; returns when this context runs again (or, for an entry, when its
   * guest does) with the outcome the handler left in the context.
   */
  trap(
    reason: number,
    instructionInfo: number,
    operand: number,
    qualification: number,
    entry = false,
  ): number {
    const hw = this.hardware;
    const ctx = this.context;
    if (hw.running !== ctx) {
      throw new Error(`${ctx.name} executed a VMX instruction while it was not running`);
    }
    if (operand >= 0) ctx.setGpr(GPR.RAX, operand >>> 0, Math.floor(operand / TWO_32));
    ctx.vmxOutcome = 0;
    const info = hw.exitInfo.reset(reason);
    info.instructionLength = VMX_INSTRUCTION_LENGTH;
    info.instructionInfo = instructionInfo;
    info.qualificationLo = qualification;
    hw.vmExit();
    hw.drive();
    if (!entry && hw.running !== ctx) {
      throw new Error(`${ctx.name}'s instruction (exit reason ${reason}) did not return to it`);
    }
    if (this.#sink === null) throw new Error(`${ctx.name} has no hypervisor attached`);
    return ctx.vmxOutcome;
  }

  /**
   * A write to a page its parent write-protects; the parent emulates the write (kvm:
   * page_fault_handle_page_track). Under EPT the protection is in EPT: an EPT-violation exit. Under
   * shadow paging it is in the parent's shadow PTE: a #PF, which the parent intercepts (its exception
   * bitmap has #PF without EPT). The model does not build the guest hypervisor's own page tables, so
   * its kernel addresses are its physical ones: the #PF's linear address is `gpa`. Returns whether
   * the parent emulated the store; false means it made the page writable (it unsynced the shadow
   * pages of a last-level table) and the store re-executes.
   */
  trackedWrite(gpa: number, bytes: number, lo: number, hi: number): boolean {
    const hw = this.hardware;
    const ctx = this.context;
    ctx.storeEmulated = false;
    ctx.setGpr(GPR.RAX, lo, 0);
    ctx.setGpr(GPR.RDX, hi, 0);
    ctx.setGpr(GPR.RCX, bytes, 0);
    if (this.#parentUsesEpt) {
      const info = hw.exitInfo.reset(EXIT_REASON.EPT_VIOLATION);
      info.instructionLength = TRACKED_WRITE_LENGTH;
      // SDM 28.2.1 Table 28-7: a data write (bit 1) to a present, readable, executable entry (bits 3, 5).
      info.qualificationLo = 0x2 | 0x8 | 0x20;
      info.gpa = gpa;
    } else {
      const info = hw.exitInfo.reset(EXIT_REASON.EXCEPTION_NMI);
      info.instructionLength = TRACKED_WRITE_LENGTH;
      // SDM 25.9.2: valid, error code delivered, hardware exception, vector 14; SDM 28.2.1: the
      // qualification of a #PF exit is the linear address. Error code: present | write (SDM 4.7).
      info.interruptionInfo = 0x80000b0e;
      info.errorCode = PFERR.PRESENT | PFERR.WRITE;
      info.qualificationLo = gpa >>> 0;
      info.qualificationHi = Math.floor(gpa / TWO_32);
    }
    hw.vmExit();
    hw.drive();
    return ctx.storeEmulated;
  }
}

/**
 * The guest hypervisor's physical memory: its parent's memslots over the parent's memory. A store
 * to a gfn the parent write-protects (a page table its shadow MMU shadows, e.g. EPT12) is an
 * EPT-violation exit: the parent emulates it for a write-tracked (upper-level) table (kvm:
 * page_fault_handle_page_track), or unsyncs the shadow pages of a last-level table and lets the
 * store re-execute, after which it goes straight to memory. Reads and other writes go straight
 * through: the model does not fault in the guest hypervisor's own pages.
 */
class TrackedGuestMemory implements PhysicalMemory {
  readonly size: number;
  readonly #cpu: NestedVmxCpu;
  readonly #parent: ParentMemoryView;

  constructor(cpu: NestedVmxCpu, parent: ParentMemoryView) {
    this.#cpu = cpu;
    this.#parent = parent;
    this.size = parent.memory.size;
  }

  #writeProtected(gpa: number): boolean {
    return this.#parent.store.isGfnWriteProtected(Math.floor(gpa / 4096));
  }

  /**
   * The store of `bytes` bytes at `gpa` as the processor executes it: while the page is
   * write-protected it faults to the parent; done once the parent emulated it, else re-executed.
   * Returns whether the store is still to be done (the page became writable).
   */
  #faultingStore(gpa: number, bytes: number, lo: number, hi: number): boolean {
    for (let tries = 0; this.#writeProtected(gpa); tries++) {
      if (tries === 4) throw new Error(`store to 0x${gpa.toString(16)} still write-protected after 4 faults`);
      if (this.#cpu.trackedWrite(gpa, bytes, lo, hi)) return false;
    }
    return true;
  }

  read8(gpa: number): number {
    return this.#parent.memory.read8(gpa);
  }
  read16(gpa: number): number {
    return this.#parent.memory.read16(gpa);
  }
  read32(gpa: number): number {
    return this.#parent.memory.read32(gpa);
  }
  read64(gpa: number): number {
    return this.#parent.memory.read64(gpa);
  }
  write8(gpa: number, value: number): void {
    if (this.#writeProtected(gpa)) throw new Error("byte writes to shadowed page tables are not modelled");
    this.#parent.memory.write8(gpa, value);
  }
  write16(gpa: number, value: number): void {
    if (this.#writeProtected(gpa)) throw new Error("16-bit writes to shadowed page tables are not modelled");
    this.#parent.memory.write16(gpa, value);
  }
  write32(gpa: number, value: number): void {
    if (this.#faultingStore(gpa, 4, value >>> 0, 0)) this.#parent.memory.write32(gpa, value);
  }
  write64(gpa: number, lo: number, hi: number): void {
    if (this.#faultingStore(gpa, 8, lo >>> 0, hi >>> 0)) this.#parent.memory.write64(gpa, lo, hi);
  }
  readWords(gpa: number, target: Uint32Array, offset: number, count: number): void {
    readWords(this.#parent.memory, gpa, target, offset, count);
  }
  /** Page by page: a write-protected page takes the word-by-word path (each store may fault). */
  writeWords(gpa: number, source: Uint32Array, offset: number, count: number): void {
    let done = 0;
    while (done < count) {
      const at = gpa + done * 4;
      const n = Math.min(count - done, (4096 - (at % 4096)) >>> 2);
      if (this.#writeProtected(at)) {
        for (let i = 0; i < n; i++) this.write32(at + i * 4, source[offset + done + i]!);
      } else {
        writeWords(this.#parent.memory, at, source, offset + done, n);
      }
      done += n;
    }
  }
  readBytes(gpa: number, length: number): Uint8Array {
    return this.#parent.memory.readBytes(gpa, length);
  }
  /**
   * Page by page: a write-protected page is stored to as quadwords (each may fault: the first
   * unsyncs a last-level table; a tracked table is emulated until write flooding unshadows it), so
   * a guest hypervisor reusing a shadowed page — zeroing a freed table — is seen by its parent.
   */
  writeBytes(gpa: number, bytes: Uint8Array): void {
    let done = 0;
    while (done < bytes.length) {
      const at = gpa + done;
      const n = Math.min(bytes.length - done, 4096 - (at % 4096));
      const part = bytes.subarray(done, done + n);
      if (!this.#writeProtected(at)) {
        this.#parent.memory.writeBytes(at, part);
      } else if (at % 8 !== 0 || n % 8 !== 0) {
        throw new Error("unaligned byte-string writes to shadowed page tables are not modelled");
      } else {
        const words = new DataView(part.buffer, part.byteOffset, n);
        for (let i = 0; i < n; i += 8)
          this.write64(at + i, words.getUint32(i, true), words.getUint32(i + 4, true));
      }
      done += n;
    }
  }
}
