import { SHADOW_FAULT as FAULT, MMU_REQUEST } from "@nestvisor/mmu";
import {
  CPU_BASED_CTLS,
  type EntryCheckResult,
  EXIT_REASON,
  GUEST_ACTIVITY,
  type HardwareVmcs,
  VMX_INSTRUCTION_INFO as INFO,
  isVmxFault,
  isVmxResultOutcome,
  NestedVmxState,
  PIN_BASED_CTLS,
  rflagsAfterVmxResult,
  SECONDARY_EXEC_CTLS,
  ShadowVmcsSync,
  type ShadowVmcsSyncOptions,
  VM_ENTRY_CTLS,
  VM_EXIT_CTLS,
  VMCS_CONTROL,
  VMCS12_SIZE,
  VMX_EVENTS,
  VMX_EXIT_REASONS_FAILED_VMENTRY,
  VMX_OUTCOME,
  type Vmcs12,
  VmxInstructionContext,
  VmxInstructionEmulator,
} from "@nestvisor/vmx";
import { CR0, DR7_RESET, dr7AsHeld, EFER, eferInMode, isPaePaging } from "@nestvisor/x86-arch";
import { GPR, GUEST_KIND, type GuestContext } from "./guest-context";
import { HostSegmentLoad } from "./host-segment-load";
import { HYPERVISOR_EVENTS as HV } from "./hypervisor-events";
import { KVM_PAGE, type Kvm } from "./kvm";
import { KVM_PHASE } from "./kvm-phases";
import type { SegmentRegister } from "./kvm-vcpu-registers";
import { hasNestedEntryHooks, type NestedEntryHooks } from "./model-policies";
import { MsrBitmapMerge } from "./msr-bitmap";
import { NestedVmxCpu } from "./nested-vmx-cpu";
import { VMCS_FIELD as F, GUEST_PDPTR_FIELDS, vmcsFieldEncoding } from "./vmcs-field-encodings";
import { FixedVmwrites, Vmcs12Copies, Vmcs12Transfers } from "./vmwrite-block";

const TWO_32 = 4294967296;
const VMCS12_READ_EVENT = VMX_EVENTS.VMCS12_READ;
const VMCS12_WRITE_EVENT = VMX_EVENTS.VMCS12_WRITE;
const SHADOW_VMCS = SECONDARY_EXEC_CTLS.SECONDARY_EXEC_SHADOW_VMCS;

/**
 * vmcs12 fields prepare_vmcs02_rare copies into vmcs02 (kvm-vmx.md §7, "prepare_vmcs02_rare"),
 * except GUEST_CS/SS_AR_BYTES (rare only with flag A), GUEST_PDPTR0–3 (added with EPT) and
 * CR4_GUEST_HOST_MASK (written last, merged with L0's: set_cr4_guest_host_mask): 47 here (with the
 * APICv fields this host has), 54 with those — the reference's figure for this host.
 */
const RARE_ENTRY_FIELDS: readonly string[] = Object.freeze([
  ...["ES", "CS", "SS", "DS", "FS", "GS", "LDTR", "TR"].map((s) => `GUEST_${s}_SELECTOR`),
  ...["ES", "CS", "SS", "DS", "FS", "GS", "LDTR", "TR", "GDTR", "IDTR"].map((s) => `GUEST_${s}_LIMIT`),
  ...["ES", "DS", "FS", "GS", "LDTR", "TR"].map((s) => `GUEST_${s}_AR_BYTES`),
  ...["ES", "CS", "SS", "DS", "FS", "GS", "LDTR", "TR", "GDTR", "IDTR"].map((s) => `GUEST_${s}_BASE`),
  "GUEST_SYSENTER_CS",
  "GUEST_PENDING_DBG_EXCEPTIONS",
  "GUEST_SYSENTER_ESP",
  "GUEST_SYSENTER_EIP",
  "PAGE_FAULT_ERROR_CODE_MASK",
  "PAGE_FAULT_ERROR_CODE_MATCH",
  "EOI_EXIT_BITMAP0",
  "EOI_EXIT_BITMAP1",
  "EOI_EXIT_BITMAP2",
  "EOI_EXIT_BITMAP3",
  "VM_EXIT_MSR_STORE_COUNT",
  "VM_EXIT_MSR_LOAD_COUNT",
  "VM_ENTRY_MSR_LOAD_COUNT",
]);

const CS_SS_AR = ["GUEST_CS_AR_BYTES", "GUEST_SS_AR_BYTES"];

/** The VMX capability bits the model offers a guest hypervisor in vmcs12 decisions. */
const UNCOND_IO = CPU_BASED_CTLS.CPU_BASED_UNCOND_IO_EXITING;

/**
 * Nested VMX for one KVM vCPU whose guest is itself a hypervisor (kvm: arch/x86/kvm/vmx/nested.c):
 * the emulation of its VMX instructions (the vmx layer's `VmxInstructionEmulator` with KVM's entry
 * checks), the nested VM entry (prepare_vmcs02 early/rare/normal, VMCS switch, MMU switch), the
 * decision to reflect an exit of L2 to L1 (nested_vmx_reflect_vmexit) and the nested VM exit
 * (sync_vmcs02_to_vmcs12, prepare_vmcs12, load_vmcs12_host_state), with the seed-003 flags deciding
 * how much of that work is done.
 */
/** kvm: the MSRs nested_vmx_prepare_msr_bitmap merges: [index, reads, writes]. */
const MERGED_MSRS = new MsrBitmapMerge([
  [0xc000_0100, true, true], // FS_BASE
  [0xc000_0101, true, true], // GS_BASE
  [0xc000_0102, true, true], // KERNEL_GS_BASE
  [0x48, true, true], // IA32_SPEC_CTRL
  [0x49, false, true], // IA32_PRED_CMD
  [0x10b, false, true], // IA32_FLUSH_CMD
]);

/** kvm: nested_cpu_has_vpid — "enable VPID" among vmcs12's active secondary controls. */
function usesVpid(vmcs12: Vmcs12): boolean {
  return (
    (vmcs12.read(F.CPU_BASED_VM_EXEC_CONTROL) & CPU_BASED_CTLS.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS) !== 0 &&
    (vmcs12.read(F.SECONDARY_VM_EXEC_CONTROL) & SECONDARY_EXEC_CTLS.SECONDARY_EXEC_ENABLE_VPID) !== 0
  );
}

/** TSC_MULTIPLIER's high word for a ratio of 1.0: 1 << 48 (kvm: vmx's 48 fractional bits). */
const TSC_RATIO_ONE_HI = 0x1_0000;

const S2 = SECONDARY_EXEC_CTLS;
/** Secondary controls prepare_vmcs02_early takes from vmcs12 only, never from vmcs01. */
const SECONDARY_FROM_VMCS12_ONLY =
  S2.SECONDARY_EXEC_VIRTUALIZE_APIC_ACCESSES |
  S2.SECONDARY_EXEC_VIRTUALIZE_X2APIC_MODE |
  S2.SECONDARY_EXEC_ENABLE_INVPCID |
  S2.SECONDARY_EXEC_ENABLE_RDTSCP |
  S2.SECONDARY_EXEC_ENABLE_XSAVES |
  S2.SECONDARY_EXEC_ENABLE_USR_WAIT_PAUSE |
  S2.SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY |
  S2.SECONDARY_EXEC_APIC_REGISTER_VIRT |
  S2.SECONDARY_EXEC_ENABLE_VMFUNC |
  S2.SECONDARY_EXEC_DESC;

/**
 * vmcs02's secondary controls (kvm: prepare_vmcs02_early): vmcs01's without the ones taken from
 * vmcs12 only, plus vmcs12's when it activates secondary controls; never PML (emulated for L2) or
 * VMCS shadowing (emulated), and unrestricted guest only when vmcs12 asks for it. Reads vmcs12 in
 * memory, as the caller's other vmcs12 reads do.
 */
export function vmcs02Secondary(secondary01: number, vmcs12: Vmcs12): number {
  let control = secondary01 & ~SECONDARY_FROM_VMCS12_ONLY;
  const secondary12 =
    (vmcs12.read(F.CPU_BASED_VM_EXEC_CONTROL) & CPU_BASED_CTLS.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS) !== 0
      ? vmcs12.read(F.SECONDARY_VM_EXEC_CONTROL)
      : 0;
  control |= secondary12;
  control &= ~(S2.SECONDARY_EXEC_ENABLE_PML | S2.SECONDARY_EXEC_SHADOW_VMCS);
  if ((secondary12 & S2.SECONDARY_EXEC_UNRESTRICTED_GUEST) === 0)
    control &= ~S2.SECONDARY_EXEC_UNRESTRICTED_GUEST;
  return control >>> 0;
}

/**
 * kvm: nested_vmx_is_exception_vmexit — vmcs12's exception bitmap; for a #PF, bit 14 inverted when the
 * error code's low 16 bits masked by PAGE_FAULT_ERROR_CODE_MASK differ from ..._MATCH (SDM 25.2).
 */
function exceptionIntercepted(vmcs12: Vmcs12, vector: number, errorCode: number): boolean {
  const bit = ((vmcs12.read(F.EXCEPTION_BITMAP) >>> vector) & 1) !== 0;
  if (vector !== 14) return bit;
  const masked = (errorCode & 0xffff & vmcs12.read(F.PAGE_FAULT_ERROR_CODE_MASK)) >>> 0;
  return (masked !== vmcs12.read(F.PAGE_FAULT_ERROR_CODE_MATCH) >>> 0) !== bit;
}

export class KvmNested {
  readonly kvm: Kvm;
  readonly state: NestedVmxState;
  readonly vmcs02: HardwareVmcs;
  readonly shadowVmcs: HardwareVmcs | null;
  readonly sync: ShadowVmcsSync;
  readonly emulator: VmxInstructionEmulator;
  readonly ctx = new VmxInstructionContext();
  /** kvm: loaded_vmcs->launched of vmcs02. */
  launched02 = false;
  /** vmcs02 has had prepare_vmcs02_constant_state (kvm: vmx->nested.vmcs02_initialized). */
  #vmcs02Initialized = false;
  /** The last entry-check result (guest-state failures become an entry-failure exit). */
  #checkResult: EntryCheckResult | null = null;
  readonly #rareEntry: readonly number[];
  readonly #csSsAr: readonly number[];
  /** X9: the vmcs01 refresh after a nested VM exit. */
  readonly #vmcs01Refresh: FixedVmwrites;
  /** X13: load_vmcs12_host_state after the control registers — the constant part before the
   * segments, the host segments from vmcs12, and DR7/DEBUGCTL. */
  readonly #hostStateLoad: Vmcs12Transfers;
  readonly #hostDescriptorLimits: FixedVmwrites;
  /** kvm: nested.last_vpid — the vmcs12 VPID of the last nested entry (0 after vCPU creation). */
  #lastVpid12 = 0;
  /**
   * vmcs02's secondary controls as the last prepare_vmcs02_early set them (kvm: the loaded VMCS's
   * controls_shadow.secondary_exec, read by secondary_exec_controls_get without a VMREAD).
   */
  secondary02 = 0;
  readonly #hostSegments = new HostSegmentLoad();
  readonly #hostDebugLoad: FixedVmwrites;
  /** prepare_vmcs02: PAT, TSC offset and multiplier. */
  readonly #entryTsc: FixedVmwrites;
  /** prepare_vmcs02_early: the event-injection fields and the interruptibility state from vmcs12. */
  readonly #entryEventCopies: Vmcs12Copies;
  /** prepare_vmcs02_rare (without per-group hooks), and prepare_vmcs02's DR7, DEBUGCTL and RFLAGS. */
  readonly #rareCopies: Vmcs12Copies;
  /** The vCPU's DR7 while L2 runs (kvm: vcpu->arch.dr7), as prepare_vmcs02 set it. */
  #l2Dr7 = DR7_RESET;
  readonly #l1DebugLoad: FixedVmwrites;
  /** The guest context L2 runs in while this vCPU is in guest mode. */
  #l2: GuestContext | null = null;
  /** The sync's part in the nested entry, when a policy's sync has one (see `NestedEntryHooks`). */
  readonly #entryHooks: NestedEntryHooks | null;

  constructor(kvm: Kvm) {
    this.kvm = kvm;
    const p = kvm.processor;
    const config = kvm.config;
    this.state = new NestedVmxState();
    this.vmcs02 = p.createVmcs(KVM_PAGE.VMCS02, { revision: p.revisionId });
    // kvm: enable_shadow_vmcs, cleared by hardware_setup unless the CPU (for a guest hypervisor, the
    // capabilities its parent offers) has it (cpu_has_vmx_shadow_vmcs); used only for a hypervisor guest.
    const useShadow = config.shadowVmcs && p.vmcsShadowing && kvm.guest.kind === GUEST_KIND.HYPERVISOR;
    this.shadowVmcs = useShadow
      ? p.createVmcs(KVM_PAGE.SHADOW_VMCS, { revision: p.revisionId, shadow: true })
      : null;
    const syncOptions: ShadowVmcsSyncOptions = {
      controls: kvm.controls,
      vmcs01: kvm.vmcs01,
      vmcs02: this.vmcs02,
      shadowVmcs: this.shadowVmcs,
      readOnlyShadowFields: config.readOnlyShadowFields,
      precomputedShadowOffsets: config.precomputedShadowOffsets,
      lazyRareGuestSync: config.lazyRareGuestSync,
      controlsShadow: config.controlsShadow,
      entryVmwriteTrims: config.nestedEntryWriteTrims,
      // kvm: sync_vmcs02_to_vmcs12 reads GUEST_CR3 back only with enable_ept (under shadow paging
      // vmcs02's CR3 is this KVM's shadow root, not L2's).
      ept: kvm.useEpt,
    };
    const guestMemory = kvm.guestMemory();
    const factory = kvm.policies.nestedSync;
    this.sync =
      factory === undefined
        ? new ShadowVmcsSync(syncOptions)
        : factory(syncOptions, { level: kvm.level, guestMemory, state: this.state, meter: kvm.meter });
    this.#entryHooks = hasNestedEntryHooks(this.sync) ? this.sync : null;
    this.emulator = new VmxInstructionEmulator({
      memory: guestMemory,
      sync: this.sync,
      state: this.state,
      meter: kvm.meter,
      maskArBytesOnVmwrite: config.readOnlyShadowFields,
      // kvm: is_noncanonical_invlpg_address checks INVVPID addresses against the host CPU's width.
      host: kvm.l0Facts,
      entryChecks: (vmcs12) => {
        // kvm: nested_vmx_run → nested_vmx_check_controls/_address_space_size/_host_state, and
        // nested_vmx_enter_non_root_mode → nested_vmx_check_guest_state (one base cost for them all).
        kvm.meter.count(HV.NESTED_ENTRY_CHECKS);
        const result = kvm.entryChecker.check({
          vmcs12,
          caps: kvm.caps,
          vcpu: kvm.l1Facts,
          host: kvm.l0Facts,
          memory: guestMemory,
        });
        this.#checkResult = result;
        if (result.ok) return 0;
        return result.outcome.kind === "vmfail" ? result.outcome.error : 0;
      },
    });
    const enc = (name: string) => kvm.fieldEncoding(name);
    this.#rareEntry = RARE_ENTRY_FIELDS.map(enc);
    this.#csSsAr = CS_SS_AR.map(enc);
    const vmcs12 = this.state.cachedVmcs12;
    this.#vmcs01Refresh = new FixedVmwrites([
      [F.VM_EXIT_MSR_LOAD_COUNT, 0],
      [F.VM_ENTRY_MSR_LOAD_COUNT, 0],
      [F.TSC_OFFSET, 0],
      // kvm: TSC_MULTIPLIER whenever the host has TSC scaling (kvm_caps.has_tsc_control); ratio 1.0
      // with VMX's 48 fractional bits (kvm_caps.default_tsc_scaling_ratio = 1 << 48).
      [F.TSC_MULTIPLIER, 0, TSC_RATIO_ONE_HI],
    ]);
    // kvm: load_vmcs12_host_state — SYSENTER MSRs and the IDTR/GDTR bases from vmcs12's host state.
    this.#hostStateLoad = new Vmcs12Transfers(
      (
        [
          ["GUEST_SYSENTER_CS", "HOST_IA32_SYSENTER_CS"],
          ["GUEST_SYSENTER_ESP", "HOST_IA32_SYSENTER_ESP"],
          ["GUEST_SYSENTER_EIP", "HOST_IA32_SYSENTER_EIP"],
          ["GUEST_IDTR_BASE", "HOST_IDTR_BASE"],
          ["GUEST_GDTR_BASE", "HOST_GDTR_BASE"],
        ] as const
      ).map(([target, source]) => [vmcsFieldEncoding(target), vmcsFieldEncoding(source)] as const),
    );
    this.#hostDescriptorLimits = new FixedVmwrites([
      [F.GUEST_IDTR_LIMIT, 0xffff],
      [F.GUEST_GDTR_LIMIT, 0xffff],
    ]);
    // kvm: kvm_set_dr(vcpu, 7, 0x400) and the DEBUGCTL reset after the segments.
    this.#hostDebugLoad = new FixedVmwrites([
      [F.GUEST_DR7, DR7_RESET],
      [F.GUEST_IA32_DEBUGCTL, 0],
    ]);
    // kvm: prepare_vmcs02 — TSC offset and multiplier, after the PAT.
    this.#entryTsc = new FixedVmwrites([
      [F.TSC_OFFSET, 0],
      [F.TSC_MULTIPLIER, 0, TSC_RATIO_ONE_HI],
    ]);
    this.#entryEventCopies = new Vmcs12Copies(
      [
        F.VM_ENTRY_INTR_INFO_FIELD,
        F.VM_ENTRY_EXCEPTION_ERROR_CODE,
        F.VM_ENTRY_INSTRUCTION_LEN,
        F.GUEST_INTERRUPTIBILITY_INFO,
      ],
      vmcs12,
    );
    this.#rareCopies = new Vmcs12Copies(this.#rareEntry, vmcs12);
    // L1's DR7 and DEBUGCTL (the model's L1 keeps the reset DR7 and no DEBUGCTL bits).
    this.#l1DebugLoad = new FixedVmwrites([
      [F.GUEST_DR7, DR7_RESET],
      [F.GUEST_IA32_DEBUGCTL, 0],
    ]);
  }

  /** L2 runs (kvm: is_guest_mode). */
  get guestMode(): boolean {
    return this.state.guestMode;
  }

  /** vmcs12 enables EPT for L2 (kvm: nested_cpu_has_ept). */
  get nestedEpt(): boolean {
    const vmcs12 = this.state.cachedVmcs12;
    return (
      (vmcs12.read(F.CPU_BASED_VM_EXEC_CONTROL) & CPU_BASED_CTLS.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS) !==
        0 && (vmcs12.read(F.SECONDARY_VM_EXEC_CONTROL) & SECONDARY_EXEC_CTLS.SECONDARY_EXEC_ENABLE_EPT) !== 0
    );
  }

  /** The context L2 runs in (only meaningful in guest mode). */
  l2Context(): GuestContext {
    if (this.#l2 === null) throw new Error(`${this.kvm.name}: no L2 context outside guest mode`);
    return this.#l2;
  }

  /**
   * vCPU creation: with shadowing, vmcs01 points at the VMREAD/VMWRITE bitmaps (kvm: init_vmcs). A
   * `vmcsAccess` policy is installed on the guest hypervisor's processor here (the parent offers it).
   */
  createVcpu(): void {
    const kvm = this.kvm;
    const p = kvm.processor;
    const access = kvm.policies.vmcsAccess;
    const guestCpu = kvm.guestCpu;
    if (access !== undefined && guestCpu instanceof NestedVmxCpu) {
      guestCpu.processor.useVmcsAccess(
        access({ level: guestCpu.hostLevel, memory: guestCpu.memory, meter: kvm.meter }),
      );
    }
    // vmcs02's region carries the revision identifier like every VMCS (SDM 25.2).
    kvm.cpu.memory.write32(KVM_PAGE.VMCS02, p.revisionId);
    if (this.shadowVmcs === null) return;
    const memory = kvm.cpu.memory;
    memory.write32(KVM_PAGE.SHADOW_VMCS, (p.revisionId | 0x8000_0000) >>> 0);
    // kvm: init_vmcs_shadowing_bitmaps fills the two pages init_vmcs points vmcs01 at; a parent that
    // emulates shadowing reads them from this memory (kvm: nested_vmx_exit_handled_vmcs_access).
    memory.writeBytes(KVM_PAGE.VMREAD_BITMAP, this.sync.bitmaps.vmreadBitmap);
    memory.writeBytes(KVM_PAGE.VMWRITE_BITMAP, this.sync.bitmaps.activeVmwriteBitmap);
    p.vmwrite(F.VMREAD_BITMAP, KVM_PAGE.VMREAD_BITMAP);
    p.vmwrite(F.VMWRITE_BITMAP, KVM_PAGE.VMWRITE_BITMAP);
    kvm.registerShadowingBitmaps(this.sync.bitmaps);
  }

  /** Before L1 runs: refresh the shadow VMCS if a sync is pending (kvm: nested_sync_vmcs12_to_shadow). */
  syncVmcs12ToShadow(): void {
    if (!this.sync.needVmcs12ToShadowSync) return;
    const kvm = this.kvm;
    kvm.tracePhase(KVM_PHASE.COPY_VMCS12_TO_SHADOW);
    this.sync.syncVmcs12ToShadow(this.state.cachedVmcs12);
    kvm.tracePhase(KVM_PHASE.SWITCH_TO_GUEST);
  }

  // ------------------------------------------------------------------------------------------
  // VMX instructions of the guest hypervisor

  /**
   * An exit for a VMX instruction of L1 (kvm: handle_vmxon … handle_invvpid). Operands come from the
   * exiting context's registers as the VMX instruction-information field names them (SDM 28.2.5).
   * Each handler reads what KVM's does: VMLAUNCH/VMRESUME the interrupt shadow and the CPL, VMXOFF
   * the CPL; the others also the instruction information, and for a memory operand the exit
   * qualification (its displacement), the base and index registers and the segment
   * (get_vmx_mem_address); RFLAGS only when the instruction completes with VMsucceed or VMfail
   * (nested_vmx_succeed/fail). The memory operand (VMXON/VMCLEAR/VMPTRLD pointer, INVEPT/INVVPID
   * descriptor) is the value in RAX: the model's guest hypervisors have no page tables of their own,
   * so KVM's read of the operand through L1's tables (kvm_read_guest_virt, with its GUEST_CR3 read
   * and walk) is not modelled.
   */
  handleVmxInstruction(reason: number): void {
    const kvm = this.kvm;
    const p = kvm.processor;
    const regs = kvm.regs;
    kvm.meter.count(HV.EXIT_HANDLER_VMX_INSTRUCTION);
    const g = kvm.exitingRegisters();
    const ctx = this.ctx;
    ctx.operandFault = 0;
    let info = 0;
    switch (reason) {
      case EXIT_REASON.VMLAUNCH:
      case EXIT_REASON.VMRESUME:
        // kvm: nested_vmx_run reads the interrupt shadow before any check (MOV-SS blocking → VMfail 26).
        ctx.movSsBlocking = (p.vmread(F.GUEST_INTERRUPTIBILITY_INFO) & 2) !== 0;
        // kvm: nested_vmx_check_permission → vmx_get_cpl (SS AR bytes through the segment cache).
        ctx.cpl = regs.readCpl();
        break;
      case EXIT_REASON.VMOFF:
        ctx.cpl = regs.readCpl();
        break;
      case EXIT_REASON.VMREAD:
      case EXIT_REASON.VMWRITE:
        // kvm: handle_vmread/handle_vmwrite read the qualification and information first, then the
        // permission check, then the field register (kvm_register_read).
        regs.readExitQualification();
        info = p.vmread(F.VMX_INSTRUCTION_INFO);
        ctx.cpl = regs.readCpl();
        kvm.is64BitMode();
        if ((info & INFO.REGISTER_OPERAND) === 0) this.#decodeMemoryOperand(info);
        break;
      case EXIT_REASON.INVEPT:
      case EXIT_REASON.INVVPID:
        // kvm: handle_invept/handle_invvpid — permission, information, the type register, then the
        // descriptor's address and its read through L1's tables.
        ctx.cpl = regs.readCpl();
        info = p.vmread(F.VMX_INSTRUCTION_INFO);
        kvm.is64BitMode();
        this.#decodeMemoryOperand(info);
        this.#operandWalk();
        break;
      case EXIT_REASON.VMON: {
        // kvm: handle_vmxon — CR0 and CR4 (kvm_read_cr0/cr4) against the VMX-fixed bits after the CPL.
        ctx.cpl = regs.readCpl();
        kvm.refreshGuestOwnedCr0();
        p.vmread(F.GUEST_CR4);
        info = p.vmread(F.VMX_INSTRUCTION_INFO);
        this.#decodeMemoryOperand(info);
        this.#operandWalk();
        break;
      }
      default:
        // VMCLEAR, VMPTRLD (nested_vmx_check_permission), VMPTRST; then the pointer's address
        // (nested_vmx_get_vmptr → get_vmx_mem_address) and its read through L1's tables.
        ctx.cpl = regs.readCpl();
        info = p.vmread(F.VMX_INSTRUCTION_INFO);
        this.#decodeMemoryOperand(info);
        this.#operandWalk();
        break;
    }
    const reg1 = (info & INFO.REG1_MASK) >>> INFO.REG1_SHIFT;
    const reg2 = (info & INFO.REG2_MASK) >>> INFO.REG2_SHIFT;
    const e = this.emulator;
    const ptrLo = g.gprLo[GPR.RAX]!;
    const ptrHi = g.gprHi[GPR.RAX]!;
    let outcome: number;
    switch (reason) {
      case EXIT_REASON.VMON:
        outcome = e.vmxon(ctx, ptrLo, ptrHi);
        break;
      case EXIT_REASON.VMOFF:
        outcome = e.vmxoff(ctx);
        break;
      case EXIT_REASON.VMCLEAR:
        outcome = e.vmclear(ctx, ptrLo, ptrHi);
        break;
      case EXIT_REASON.VMPTRLD:
        outcome = e.vmptrld(ctx, ptrLo, ptrHi);
        break;
      case EXIT_REASON.VMPTRST:
        outcome = e.vmptrst(ctx);
        if (outcome === 0) g.setGpr(GPR.RAX, e.valueLo, e.valueHi);
        break;
      case EXIT_REASON.VMREAD:
        outcome = e.vmread(ctx, g.gprLo[reg2]!, g.gprHi[reg2]!);
        if (outcome === 0) g.setGpr(reg1, e.valueLo, e.valueHi);
        break;
      case EXIT_REASON.VMWRITE:
        outcome = e.vmwrite(ctx, g.gprLo[reg2]!, g.gprHi[reg2]!, g.gprLo[reg1]!, g.gprHi[reg1]!);
        break;
      case EXIT_REASON.VMLAUNCH:
        outcome = e.vmlaunch(ctx);
        break;
      case EXIT_REASON.VMRESUME:
        outcome = e.vmresume(ctx);
        break;
      case EXIT_REASON.INVEPT:
        outcome = e.invept(ctx, g.gprLo[reg2]!, g.gprHi[reg2]!, ptrLo, ptrHi);
        if (outcome === 0) kvm.invalidateNestedEpt(g.gprLo[reg2]!, ptrHi * TWO_32 + ptrLo);
        break;
      default:
        outcome = e.invvpid(
          ctx,
          g.gprLo[reg2]!,
          g.gprHi[reg2]!,
          ptrLo,
          ptrHi,
          g.gprLo[GPR.RCX]!,
          g.gprHi[GPR.RCX]!,
        );
        if (outcome === 0) {
          kvm.invalidateNestedVpid(g.gprLo[reg2]!, g.gprHi[GPR.RCX]! * TWO_32 + g.gprLo[GPR.RCX]!);
        }
        break;
    }
    g.vmxOutcome = outcome;
    if (outcome === VMX_OUTCOME.ENTER_NON_ROOT) {
      // kvm: nested_vmx_enter_non_root_mode passes L1's RIP to its tracepoint (kvm_rip_read), which
      // is evaluated whether or not the tracepoint is enabled.
      regs.readRip();
      this.#nestedVmEntry();
      return;
    }
    if (isVmxResultOutcome(outcome)) {
      // kvm: nested_vmx_fail — an enlightened VMCS must show L1 the VM-instruction error.
      if (outcome > 0) this.#entryHooks?.instructionFailed();
      // kvm: nested_vmx_succeed/fail → vmx_get_rflags, then vmx_set_rflags with the status flags.
      kvm.setRflags(rflagsAfterVmxResult(regs.readRflags(), outcome));
      kvm.skipInstruction();
      return;
    }
    if (isVmxFault(outcome)) {
      // kvm: kvm_queue_exception → vmx_inject_exception at the next entry (VM_ENTRY_INTR_INFO_FIELD).
      kvm.meter.count(HV.EVENT_INJECTION);
      p.vmwrite(F.VM_ENTRY_INTR_INFO_FIELD, 0x8000_0300 | (-outcome - 0x100));
    }
  }

  /**
   * kvm: get_vmx_mem_address's register and segment reads for a memory operand described by `info`:
   * the displacement (exit qualification), the base and index registers (kvm_register_read:
   * is_64_bit_mode) and the segment (vmx_get_segment: four fields through the segment cache).
   */
  #decodeMemoryOperand(info: number): void {
    const kvm = this.kvm;
    kvm.regs.readExitQualification();
    if ((info & INFO.BASE_INVALID) === 0)
      this.#readOperandRegister((info & INFO.BASE_MASK) >>> INFO.BASE_SHIFT);
    if ((info & INFO.INDEX_INVALID) === 0)
      this.#readOperandRegister((info & INFO.INDEX_MASK) >>> INFO.INDEX_SHIFT);
    kvm.regs.readWholeSegment(((info & INFO.SEGMENT_MASK) >>> INFO.SEGMENT_SHIFT) as SegmentRegister);
  }

  /**
   * kvm: kvm_register_read of an addressing register — RSP lives in the VMCS (kvm_rsp_read through
   * the register cache), the others in KVM's copy; then is_64_bit_mode.
   */
  #readOperandRegister(gpr: number): void {
    const kvm = this.kvm;
    if (gpr === GPR.RSP) kvm.regs.readRsp();
    kvm.is64BitMode();
  }

  /**
   * kvm: the VMCS reads of kvm_read_guest_virt's walk of L1's tables to the memory operand: CR3
   * (kvm_read_cr3, L1's own register under EPT), RFLAGS (permission_fault's SMAP check) and, under
   * EPT, CR0.WP (kvm_mmu_refresh_passthrough_bits; cached when this exit read CR0 already). The walk
   * itself is not modelled: the model's guest hypervisors have no page tables.
   */
  #operandWalk(): void {
    const kvm = this.kvm;
    if (kvm.useEpt) kvm.processor.vmread(F.GUEST_CR3);
    kvm.regs.readRflags();
    if (kvm.useEpt) kvm.refreshGuestOwnedCr0();
  }

  // ------------------------------------------------------------------------------------------
  // Nested VM entry (kvm: nested_vmx_enter_non_root_mode)

  #nestedVmEntry(): void {
    const kvm = this.kvm;
    const config = kvm.config;
    const vmcs12 = this.state.cachedVmcs12;
    const meter = kvm.meter;
    meter.count(HV.NESTED_VM_ENTRY);
    // E4 (on vmcs01): a pending APICv interrupt (kvm: vmx_has_apicv_interrupt), and L1's DEBUGCTL
    // when vmcs12 does not load its own (kvm: vmx_guest_debugctl_read).
    kvm.processor.vmread(F.GUEST_INTR_STATUS);
    if ((vmcs12.read(F.VM_ENTRY_CONTROLS) & VM_ENTRY_CTLS.VM_ENTRY_LOAD_DEBUG_CONTROLS) === 0) {
      kvm.processor.vmread(F.GUEST_IA32_DEBUGCTL);
    }
    // E5: switch to vmcs02.
    this.#switchVmcs(this.vmcs02);
    kvm.tracePhase(KVM_PHASE.PREPARE_VMCS02_EARLY);
    const l1Cpu = kvm.guestCpu;
    const handle = l1Cpu?.processor.vmcsAt(this.state.currentVmptr);
    const l2 = handle === undefined ? undefined : l1Cpu!.guestOf(handle);
    if (l2 === undefined) throw new Error(`${kvm.name}: L1's current VMCS runs no guest the model knows`);
    this.#l2 = l2;
    kvm.cpu.bindGuest(this.vmcs02, l2);
    // E6: prepare_vmcs02_early (+ constant and early-rare state). With an enlightened VMCS the rare
    // parts run on every entry, for the groups L1 dirtied (kvm: dirty_vmcs12 || hv_evmcs).
    const hooks = this.#entryHooks;
    const dirty = this.sync.dirtyVmcs12 || hooks?.rareEntryEveryTime === true;
    if (!this.#vmcs02Initialized) {
      this.#vmcs02Initialized = true;
      meter.count(HV.PREPARE_VMCS02_CONSTANT_STATE);
      // kvm: vmcs02 has its own MSR bitmap, allocated all ones (alloc_loaded_vmcs).
      const memory = kvm.cpu.memory;
      for (let i = 0; i < 4096; i += 4) memory.write32(KVM_PAGE.MSR_BITMAP02 + i, 0xffffffff);
      this.#write(F.MSR_BITMAP, KVM_PAGE.MSR_BITMAP02);
      this.#write(F.VM_FUNCTION_CONTROL, 0);
      this.#write(F.POSTED_INTR_NV, 0);
      this.#write(F.PML_ADDRESS, 0);
      if (config.nestedEntryWriteTrims) {
        this.#write(F.GUEST_PML_INDEX, 511);
        this.#write(F.ENCLS_EXITING_BITMAP, 0xffffffff, 0xffffffff);
      }
      this.#write(F.HOST_CR0, vmcs12Host(kvm, F.HOST_CR0));
      this.#write(F.HOST_CR4, vmcs12Host(kvm, F.HOST_CR4));
      this.#write(F.HOST_RIP, vmcs12Host(kvm, F.HOST_RIP));
      this.#write(F.HOST_CS_SELECTOR, 0x10);
      this.#write(F.HOST_SS_SELECTOR, 0x18);
      this.#write(F.HOST_TR_SELECTOR, 0x40);
      this.#write(F.HOST_IA32_EFER, vmcs12Host(kvm, F.HOST_IA32_EFER));
      kvm.tracePhase(KVM_PHASE.PREPARE_VMCS02_EARLY);
    }
    if (dirty) {
      // kvm: prepare_vmcs02_early_rare — vpid02 when vmcs12 enables VPID; otherwise L2 shares L1's
      // vpid01, as a guest without VPID shares VPID 0 with its host, and the guest TLB flush of each
      // nested transition (nested_vmx_transition_tlb_flush) invalidates that VPID.
      this.#write(F.VMCS_LINK_POINTER, 0xffffffff, 0xffffffff);
      this.#write(F.VIRTUAL_PROCESSOR_ID, usesVpid(vmcs12) ? kvm.vpid02 : kvm.vpid01);
    }
    // Controls: vmcs01's (from the shadow with flag F, else fixed) merged with vmcs12's.
    const c = kvm.controls;
    const pin =
      (kvm.pin01 | (vmcs12.read(F.PIN_BASED_VM_EXEC_CONTROL) & PIN_BASED_CTLS.PIN_BASED_NMI_EXITING)) >>> 0;
    // kvm: prepare_vmcs02_early — L0 always takes L2's port I/O (unconditional I/O exiting, no
    // I/O bitmaps), then decides with L1's bitmaps whether L1 wants it.
    const exec =
      ((kvm.exec01 | vmcs12.read(F.CPU_BASED_VM_EXEC_CONTROL) | UNCOND_IO) &
        ~CPU_BASED_CTLS.CPU_BASED_USE_IO_BITMAPS) >>>
      0;
    const secondary = vmcs02Secondary(kvm.secondary01, vmcs12);
    this.secondary02 = secondary;
    // kvm: prepare_vmcs02_early — vmcs01's entry and exit controls, with vmcs12's entry controls
    // (less "load PERF_GLOBAL_CTRL"); IA-32e mode follows L2's EFER (nested_vmx_calc_efer), and
    // "load IA32_EFER" is set on entry and exit only when L2's EFER differs from the host's.
    const l2Efer = this.#l2Efer(vmcs12);
    const switchEfer = kvm.transitionEfer(l2Efer) !== kvm.hostEfer;
    const entry =
      kvm.entry01Base |
      (vmcs12.read(F.VM_ENTRY_CONTROLS) &
        ~(
          VM_ENTRY_CTLS.VM_ENTRY_LOAD_IA32_PERF_GLOBAL_CTRL |
          VM_ENTRY_CTLS.VM_ENTRY_IA32E_MODE |
          VM_ENTRY_CTLS.VM_ENTRY_LOAD_IA32_EFER
        )) |
      ((l2Efer & EFER.LMA) !== 0 ? VM_ENTRY_CTLS.VM_ENTRY_IA32E_MODE : 0) |
      (switchEfer ? VM_ENTRY_CTLS.VM_ENTRY_LOAD_IA32_EFER : 0);
    const exit = kvm.exit01Base | (switchEfer ? VM_EXIT_CTLS.VM_EXIT_LOAD_IA32_EFER : 0);
    c.init(0, pin);
    // With per-VMCS control shadows prepare_vmcs02_early keeps vmcs02's "use MSR bitmaps" bit, which
    // nested_get_vmcs12_pages then sets or clears; v5.2 wrote what vmcs01 and vmcs12 both ask for.
    const USE_MSR_BITMAPS = CPU_BASED_CTLS.CPU_BASED_USE_MSR_BITMAPS;
    c.init(
      VMCS_CONTROL.EXEC,
      config.controlsShadow
        ? ((exec & ~USE_MSR_BITMAPS) | (c.get(VMCS_CONTROL.EXEC) & USE_MSR_BITMAPS)) >>> 0
        : exec,
    );
    c.init(2, secondary);
    c.init(4, entry >>> 0);
    c.init(5, exit);
    if (!config.nestedEntryWriteTrims) {
      // kvm v5.2: GUEST_PML_INDEX rewritten on every entry (PML host); ENCLS bitmap with ENCLS exiting.
      this.#write(F.GUEST_PML_INDEX, 511);
    }
    // Event injection fields (kvm: prepare_vmcs02_early, nested_run_pending).
    this.#entryEventCopies.run(kvm.processor, vmcs12);
    // E8: nested_get_vmcs12_pages → nested_vmx_prepare_msr_bitmap decides "use MSR bitmaps"
    // (exec_controls_setbit/clearbit; v5.2: vmcs_set_bits/vmcs_clear_bits, a VMREAD and a VMWRITE).
    kvm.tracePhase(KVM_PHASE.GET_VMCS12_PAGES);
    if (this.#prepareMsrBitmap(vmcs12)) c.setbit(VMCS_CONTROL.EXEC, USE_MSR_BITMAPS);
    else c.clearbit(VMCS_CONTROL.EXEC, USE_MSR_BITMAPS);
    // E10: guest-state checks (run by the checker with the others; a failure exits to L1 here).
    const check = this.#checkResult;
    if (check !== null && !check.ok && check.outcome.kind === "entry-failure") {
      this.#entryFailure(check.outcome.exitReason, check.outcome.qualification);
      return;
    }
    // E11: enter_guest_mode.
    this.state.guestMode = true;
    // E12: prepare_vmcs02, which begins with prepare_vmcs02_rare when vmcs12 is dirty.
    kvm.tracePhase(KVM_PHASE.PREPARE_VMCS02);
    if (dirty) {
      meter.count(HV.PREPARE_VMCS02_RARE);
      if (hooks === null) this.#copyAll(vmcs12, this.#rareCopies);
      else for (const field of this.#rareEntry) this.#copyRare(vmcs12, field);
      // kvm: set_cr4_guest_host_mask in guest mode — intercept what L0 intercepts and what L1 does.
      if (hooks === null || hooks.rareEntryWrites(F.CR4_GUEST_HOST_MASK)) {
        const owned = kvm.cr4GuestOwnedBits() & ~vmcs12.read(F.CR4_GUEST_HOST_MASK);
        meter.count(VMCS12_READ_EVENT);
        this.#write(F.CR4_GUEST_HOST_MASK, ~owned >>> 0, 0xffffffff);
      }
      // Flag A moved the CS/SS AR-byte writes here from every entry.
      if (config.readOnlyShadowFields) for (const field of this.#csSsAr) this.#copyRare(vmcs12, field);
      // Group 1 with EPT in L0: PDPTR0–3.
      for (const field of GUEST_PDPTR_FIELDS) this.#copyRare(vmcs12, field);
      this.sync.dirtyVmcs12 = false;
      kvm.tracePhase(KVM_PHASE.PREPARE_VMCS02);
    }
    if (!config.readOnlyShadowFields) {
      // kvm v5.2: GUEST_CS/SS_AR_BYTES were shadow-RW and written on every entry.
      for (const field of this.#csSsAr) this.#copy(vmcs12, field);
    }
    // E13: prepare_vmcs02 body.
    // kvm: prepare_vmcs02 — DR7 and DEBUGCTL from vmcs12 with "load debug controls", else L1's
    // (kvm_set_dr(7, vcpu->arch.dr7), pre_vmenter_debugctl); then RFLAGS (vmx_set_rflags).
    if ((vmcs12.read(F.VM_ENTRY_CONTROLS) & VM_ENTRY_CTLS.VM_ENTRY_LOAD_DEBUG_CONTROLS) !== 0) {
      // kvm_set_dr(vcpu, 7, vmcs12->guest_dr7): the vCPU's DR7 is the value as the register holds it.
      this.#l2Dr7 = dr7AsHeld(vmcs12.read(F.GUEST_DR7));
      this.#write(F.GUEST_DR7, this.#l2Dr7);
      this.#copy(vmcs12, F.GUEST_IA32_DEBUGCTL);
      kvm.meter.count(VMCS12_READ_EVENT);
    } else {
      this.#l2Dr7 = DR7_RESET;
      this.#l1DebugLoad.run(kvm.processor);
    }
    // kvm: vmx_set_rflags(vcpu, vmcs12->guest_rflags).
    kvm.setRflags(vmcs12.read(F.GUEST_RFLAGS));
    kvm.meter.count(VMCS12_READ_EVENT);
    this.#write(F.EXCEPTION_BITMAP, (1 << 18) | vmcs12.read(F.EXCEPTION_BITMAP));
    this.#write(
      F.CR0_GUEST_HOST_MASK,
      ~(kvm.cr0GuestOwnedBits() & ~vmcs12.read(F.CR0_GUEST_HOST_MASK)) >>> 0,
      0xffffffff,
    );
    // kvm: prepare_vmcs02 — vmcs12's PAT with "load IA32_PAT", else L1's (vcpu->arch.pat) when KVM's
    // own VMCSs load the PAT (vmcs_config); the model's L1 keeps the PAT it booted with.
    if ((vmcs12.read(F.VM_ENTRY_CONTROLS) & VM_ENTRY_CTLS.VM_ENTRY_LOAD_IA32_PAT) !== 0) {
      this.#copy(vmcs12, F.GUEST_IA32_PAT);
    } else if ((kvm.entry01Base & VM_ENTRY_CTLS.VM_ENTRY_LOAD_IA32_PAT) !== 0) {
      this.#write(F.GUEST_IA32_PAT, kvm.guestPat.lo, kvm.guestPat.hi);
    }
    this.#entryTsc.run(kvm.processor);
    const cr0 = vmcs12.read(F.GUEST_CR0);
    const cr4 = vmcs12.read(F.GUEST_CR4);
    const cr3 = vmcs12.read(F.GUEST_CR3) + vmcs12.hi * TWO_32;
    const efer = this.#l2Efer(vmcs12);
    const eptp = vmcs12.read(F.EPT_POINTER) + vmcs12.hi * TWO_32;
    const nestedEpt = this.nestedEpt;
    const paePaging = isPaePaging(cr0, cr4, efer);
    // The MMU switch (kvm: nested_ept_init_mmu_context, vmx_set_cr0/cr4/efer, nested_vmx_load_cr3).
    kvm.mmu.nestedVmEntry(nestedEpt ? { cr0, cr3, cr4, efer, eptp } : { cr0, cr3, cr4, efer });
    kvm.tracePhase(KVM_PHASE.PREPARE_VMCS02);
    // kvm: nested_vmx_load_cr3 (reload_pdptrs at VM entry) — without nested EPT, L2's PDPTEs are
    // loaded from L1 memory at its CR3 (the entry checks have vetted them); with nested EPT the CPU
    // does not dereference CR3, and they come from vmcs12 below.
    if (!nestedEpt && paePaging) kvm.loadPdptrs(cr3);
    kvm.loadPgdRequested = true;
    // kvm: nested_read_cr0/cr4 — what L2 reads: L1-owned bits from vmcs12's read shadow, the rest from guest_cr0.
    // kvm: vmx_set_cr0 writes the read shadow and GUEST_CR0, then prepare_vmcs02 writes the read
    // shadow again with nested_read_cr0; vmx_set_cr4 first reads GUEST_CR4 (the cache was reset).
    const readCr0 = this.nestedReadCr(vmcs12, cr0, F.CR0_GUEST_HOST_MASK, F.CR0_READ_SHADOW);
    const readCr4 = this.nestedReadCr(vmcs12, cr4, F.CR4_GUEST_HOST_MASK, F.CR4_READ_SHADOW);
    this.#write(F.CR0_READ_SHADOW, cr0);
    this.#write(F.GUEST_CR0, cr0);
    kvm.regs.markCr0Available();
    kvm.checkGuestStateValid(cr0);
    this.#write(F.CR0_READ_SHADOW, readCr0);
    kvm.processor.vmread(F.GUEST_CR4);
    this.#write(F.CR4_READ_SHADOW, cr4);
    this.#write(F.GUEST_CR4, cr4);
    this.#write(F.CR4_READ_SHADOW, readCr4);
    this.#loadEfer(efer);
    this.#write(F.GUEST_CR3, cr3 >>> 0, Math.floor(cr3 / TWO_32));
    kvm.cr3Dirty = true;
    // PDPTRs again after CR0/CR4/EFER (kvm: prepare_vmcs02): flag E writes them only for a dirty
    // vmcs12 with nested EPT and PAE paging; before it, on every dirty entry (kvm-vmx.md §10 E).
    const pdptrsFromVmcs12 = dirty && (hooks === null || hooks.rareEntryWrites(GUEST_PDPTR_FIELDS[0]!));
    if (pdptrsFromVmcs12 && (!config.nestedEntryWriteTrims || (nestedEpt && paePaging))) {
      for (const field of GUEST_PDPTR_FIELDS) this.#copy(vmcs12, field);
    }
    // kvm: nested_vmx_transition_tlb_flush on entry — a guest TLB flush without VPID in vmcs12, or
    // when vmcs12's VPID differs from the last one entered (last_vpid starts at 0, so the first
    // nested entry flushes).
    if (!usesVpid(vmcs12)) {
      kvm.mmu.makeRequest(MMU_REQUEST.TLB_FLUSH_GUEST);
    } else {
      const vpid12 = vmcs12.read(F.VIRTUAL_PROCESSOR_ID);
      if (vpid12 !== this.#lastVpid12) {
        this.#lastVpid12 = vpid12;
        kvm.mmu.makeRequest(MMU_REQUEST.TLB_FLUSH_GUEST);
      }
    }
    // RSP/RIP go through the register cache (reset by the VMCS switch) and are written at the entry.
    kvm.regs.writeRsp(vmcs12.read(F.GUEST_RSP) + vmcs12.hi * TWO_32);
    kvm.regs.writeRip(vmcs12.read(F.GUEST_RIP) + vmcs12.hi * TWO_32);
    this.state.nestedRunPending = false;
    // E16 (kvm: nested_vmx_run after a successful entry): the shadow VMCS L1 links for L2.
    this.#cacheShadowVmcs12(vmcs12);
  }

  /** kvm: nested_cpu_has_vpid on the cached vmcs12 (L2's TLB entries are tagged with vpid02). */
  l2UsesVpid(): boolean {
    return usesVpid(this.state.cachedVmcs12);
  }

  /** kvm: nested_read_cr0 / nested_read_cr4 (bits 31:0). */
  nestedReadCr(vmcs12: Vmcs12, guest: number, maskField: number, shadowField: number): number {
    const mask = vmcs12.read(maskField);
    return ((guest & ~mask) | (vmcs12.read(shadowField) & mask)) >>> 0;
  }

  /**
   * kvm: handle_set_cr0 / handle_set_cr4 in guest mode — L0 emulates L2's MOV to CR0/CR4 that L1
   * does not intercept: L1-owned bits keep vmcs12's guest value, and the read shadow gets what L2
   * wrote. Returns the value to load.
   */
  l2CrValue(cr: 0 | 4, value: number): number {
    const vmcs12 = this.state.cachedVmcs12;
    const mask = vmcs12.read(cr === 0 ? F.CR0_GUEST_HOST_MASK : F.CR4_GUEST_HOST_MASK);
    const guest = vmcs12.read(cr === 0 ? F.GUEST_CR0 : F.GUEST_CR4);
    return ((value & ~mask) | (guest & mask)) >>> 0;
  }

  // ------------------------------------------------------------------------------------------
  // Exits of L2

  /**
   * kvm: nested_vmx_reflect_vmexit — true when L1 wants the exit (nested_vmx_l1_wants_exit), after
   * which the nested VM exit has been done; false when L0 handles it and resumes L2.
   */
  reflectVmexit(reason: number): boolean {
    const kvm = this.kvm;
    const vmcs12 = this.state.cachedVmcs12;
    kvm.meter.count(VMCS12_READ_EVENT);
    let wants: boolean;
    switch (reason) {
      case EXIT_REASON.EPT_VIOLATION:
      case EXIT_REASON.EPT_MISCONFIG:
        // kvm: nested_vmx_l0_wants_exit — with EPT, L0 always handles EPT exits first.
        return false;
      case EXIT_REASON.CPUID:
      case EXIT_REASON.VMCALL:
      case EXIT_REASON.VMON:
      case EXIT_REASON.VMOFF:
      case EXIT_REASON.VMCLEAR:
      case EXIT_REASON.VMPTRLD:
      case EXIT_REASON.VMPTRST:
      case EXIT_REASON.VMLAUNCH:
      case EXIT_REASON.VMRESUME:
      case EXIT_REASON.INVEPT:
      case EXIT_REASON.INVVPID:
        wants = true;
        break;
      case EXIT_REASON.VMREAD:
        wants = this.#vmcsAccessExits(vmcs12, F.VMREAD_BITMAP);
        break;
      case EXIT_REASON.VMWRITE:
        wants = this.#vmcsAccessExits(vmcs12, F.VMWRITE_BITMAP);
        break;
      case EXIT_REASON.HLT:
        wants = (vmcs12.read(F.CPU_BASED_VM_EXEC_CONTROL) & CPU_BASED_CTLS.CPU_BASED_HLT_EXITING) !== 0;
        break;
      case EXIT_REASON.EXCEPTION_NMI: {
        // kvm: nested_vmx_l0_wants_exit — a #PF is L0's only without EPT; then the exception bitmap
        // of vmcs12, with PFEC mask/match for #PF (nested_vmx_is_exception_vmexit).
        const info = kvm.regs.readIntrInfo();
        const vector = info & 0xff;
        if (vector === 14 && !kvm.useEpt) return false;
        const ec = vector === 14 ? kvm.processor.vmread(F.VM_EXIT_INTR_ERROR_CODE) : 0;
        if (vector === 14) vmcs12.write(F.VM_EXIT_INTR_ERROR_CODE, ec);
        wants = exceptionIntercepted(vmcs12, vector, ec);
        break;
      }
      case EXIT_REASON.IO_INSTRUCTION:
        wants = this.#ioExits(vmcs12);
        break;
      case EXIT_REASON.MSR_READ:
      case EXIT_REASON.MSR_WRITE: {
        // kvm: nested_vmx_exit_handled_msr — L1's MSR bitmap, its write half for WRMSR (or no
        // bitmap: every MSR exits).
        const uses =
          (vmcs12.read(F.CPU_BASED_VM_EXEC_CONTROL) & CPU_BASED_CTLS.CPU_BASED_USE_MSR_BITMAPS) !== 0;
        const index = kvm.exitingRegisters().gprLo[GPR.RCX]!;
        wants = !uses || !kvm.guestPassesMsr(index, reason === EXIT_REASON.MSR_WRITE);
        break;
      }
      case EXIT_REASON.CR_ACCESS:
        wants = this.#crAccessExits(vmcs12);
        break;
      case EXIT_REASON.INVLPG:
        // kvm: nested_vmx_l1_wants_exit — only with INVLPG exiting in vmcs12.
        wants = (vmcs12.read(F.CPU_BASED_VM_EXEC_CONTROL) & CPU_BASED_CTLS.CPU_BASED_INVLPG_EXITING) !== 0;
        break;
      default:
        wants = true;
    }
    const policy = kvm.policies.reflection;
    if (policy !== undefined) wants = policy({ reason, level: kvm.level, vmcs12, kvmDecision: wants });
    if (!wants) return false;
    kvm.meter.count(HV.NESTED_EXIT_REFLECTED);
    // kvm: nested_vmx_reflect_vmexit reads the interruption information and the qualification of
    // every exit it reflects.
    const intrInfo = kvm.regs.readIntrInfo();
    const qual = kvm.regs.readExitQualification();
    this.nestedVmexit(reason, qual, kvm.regs.exitQualHi, intrInfo);
    return true;
  }

  /**
   * kvm: nested_vmx_exit_handled_io — with "use I/O bitmaps" in vmcs12, L1's bitmap A (ports
   * 0–7FFFH) or B (8000H–FFFFH) decides for each byte of the access (an unreadable bitmap byte or a
   * port past FFFFH exits); without bitmaps, "unconditional I/O exiting" does (SDM 26.1.3).
   */
  #ioExits(vmcs12: Vmcs12): boolean {
    const exec = vmcs12.read(F.CPU_BASED_VM_EXEC_CONTROL);
    if ((exec & CPU_BASED_CTLS.CPU_BASED_USE_IO_BITMAPS) === 0) return (exec & UNCOND_IO) !== 0;
    const qual = this.kvm.regs.readExitQualification();
    const memory = this.kvm.guestMemory();
    let port = qual >>> 16;
    for (let size = (qual & 7) + 1; size > 0; size--, port++) {
      if (port > 0xffff) return true;
      const field = port < 0x8000 ? F.IO_BITMAP_A : F.IO_BITMAP_B;
      const address = vmcs12.read(field) + vmcs12.hi * TWO_32 + ((port & 0x7fff) >>> 3);
      if (address >= memory.size) return true;
      if (((memory.read8(address) >>> (port & 7)) & 1) !== 0) return true;
    }
    return false;
  }

  /**
   * kvm: nested_vmx_exit_handled_cr, by the access type in qualification bits 5:4 (SDM Table 28-3):
   * MOV to CR0/CR4 when it changes a bit L1 owns from its read shadow, to CR3/CR8 with their load
   * exiting; MOV from CR3/CR8 with their store exiting; CLTS when L1 owns TS and its shadow has TS
   * set; LMSW (source data in bits 31:16) when it changes a bit 3:1 L1 owns, or sets PE that L1 owns
   * and shadows as clear.
   */
  #crAccessExits(vmcs12: Vmcs12): boolean {
    const kvm = this.kvm;
    const qual = kvm.regs.readExitQualification();
    const cr = qual & 0xf;
    const exec = vmcs12.read(F.CPU_BASED_VM_EXEC_CONTROL);
    const mask0 = vmcs12.read(F.CR0_GUEST_HOST_MASK);
    const shadow0 = vmcs12.read(F.CR0_READ_SHADOW);
    switch ((qual >>> 4) & 3) {
      case 0: {
        // kvm: kvm_register_read of the source operand (is_64_bit_mode: CS AR bytes in long mode).
        kvm.is64BitMode();
        const value = kvm.exitingRegisters().gprLo[(qual >>> 8) & 0xf]!;
        if (cr === 0) return (mask0 & (value ^ shadow0)) >>> 0 !== 0;
        if (cr === 4)
          return (vmcs12.read(F.CR4_GUEST_HOST_MASK) & (value ^ vmcs12.read(F.CR4_READ_SHADOW))) >>> 0 !== 0;
        if (cr === 3) return (exec & CPU_BASED_CTLS.CPU_BASED_CR3_LOAD_EXITING) !== 0;
        if (cr === 8) return (exec & CPU_BASED_CTLS.CPU_BASED_CR8_LOAD_EXITING) !== 0;
        return false;
      }
      case 1:
        if (cr === 3) return (exec & CPU_BASED_CTLS.CPU_BASED_CR3_STORE_EXITING) !== 0;
        if (cr === 8) return (exec & CPU_BASED_CTLS.CPU_BASED_CR8_STORE_EXITING) !== 0;
        return false;
      case 2:
        return (mask0 & CR0.TS) !== 0 && (shadow0 & CR0.TS) !== 0;
      default: {
        const value = (qual >>> 16) & 0xf;
        if ((mask0 & 0xe & (value ^ shadow0)) !== 0) return true;
        return (mask0 & 1) !== 0 && (shadow0 & 1) === 0 && (value & 1) !== 0;
      }
    }
  }

  /**
   * kvm: nested_vmx_prepare_msr_bitmap — without MSR bitmaps in vmcs12 (or with an unmappable one)
   * vmcs02 uses none, so every MSR access of L2 exits. Otherwise vmcs02's bitmap intercepts
   * everything except the MSRs KVM merges, each passed through only when both vmcs01's bitmap and
   * L1's pass it: FS_BASE, GS_BASE, KERNEL_GS_BASE and SPEC_CTRL for reads and writes, PRED_CMD and
   * FLUSH_CMD for writes. (The x2APIC range stays intercepted: the model's L1 does not virtualize
   * x2APIC mode.) KVM maps L1's bitmap for this on every nested entry; the model has no calibrated
   * cost for that map and counts nothing for it.
   */
  #prepareMsrBitmap(vmcs12: Vmcs12): boolean {
    if ((vmcs12.read(F.CPU_BASED_VM_EXEC_CONTROL) & CPU_BASED_CTLS.CPU_BASED_USE_MSR_BITMAPS) === 0)
      return false;
    const l1Bitmap = vmcs12.read(F.MSR_BITMAP) + vmcs12.hi * TWO_32;
    const l1Memory = this.kvm.shadow.guestMemory;
    if (l1Bitmap % 4096 !== 0 || l1Bitmap + 4096 > l1Memory.size) return false;
    // kvm: kvm_vcpu_map of L1's bitmap page — one memslot translation, then the page is read where
    // it lives; a page no memslot holds cannot be mapped and L2 runs without MSR bitmaps.
    const hostBitmap = l1Memory.translate(l1Bitmap);
    if (hostBitmap < 0) return false;
    const memory = this.kvm.cpu.memory;
    MERGED_MSRS.merge(memory, KVM_PAGE.MSR_BITMAP, l1Memory.host, hostBitmap, memory, KVM_PAGE.MSR_BITMAP02);
    return true;
  }

  /** L0 keeps a vmcs12 field current for L1 (kvm: vmx_set_msr's `get_vmcs12(vcpu)->x = data`). */
  updateVmcs12(field: number, lo: number, hi: number): void {
    this.state.cachedVmcs12.write(field, lo, hi);
    this.kvm.meter.count(VMCS12_WRITE_EVENT);
  }

  /** vmcs12's VM-exit controls (a vmcs12 read), e.g. whether L1 saves a guest MSR on exit. */
  vmcs12ExitControls(): number {
    this.kvm.meter.count(VMCS12_READ_EVENT);
    return this.state.cachedVmcs12.read(F.VM_EXIT_CONTROLS);
  }

  /** Does L1 intercept `vector` (with `errorCode`) in L2? Reads vmcs12 (see exceptionIntercepted). */
  exceptionExitsToL1(vector: number, errorCode: number): boolean {
    this.kvm.meter.count(VMCS12_READ_EVENT);
    return exceptionIntercepted(this.state.cachedVmcs12, vector, errorCode);
  }

  /**
   * An exception L0 would inject into L2 that L1 intercepts becomes a nested VM exit instead (kvm:
   * kvm_multiple_exception queues it as exception_vmexit; nested_vmx_inject_exception_vmexit turns
   * it into EXIT_REASON_EXCEPTION_NMI): a hardware exception, error code valid in protected mode,
   * qualification = the faulting address (CR2) for a #PF.
   */
  injectExceptionVmexit(vector: number, errorCode: number, qualLo: number, qualHi: number): void {
    const vmcs12 = this.state.cachedVmcs12;
    vmcs12.write(F.VM_EXIT_INTR_ERROR_CODE, errorCode & 0xffff);
    this.kvm.meter.count(VMCS12_WRITE_EVENT);
    // SDM 25.9.2 (VM-exit interruption information): valid, error code valid, type 3, vector.
    const intrInfo = (0x80000000 | 0x800 | (3 << 8) | vector) >>> 0;
    this.nestedVmexit(EXIT_REASON.EXCEPTION_NMI, qualLo, qualHi, intrInfo);
  }

  /**
   * L0 handles an EPT violation of L2 with nested EPT (kvm: kvm_mmu_page_fault on guest_mmu →
   * ept_page_fault): build EPT02 from EPT12, or reflect EPT12's violation/misconfiguration to L1.
   */
  handleEpt02Violation(gpa: number, qual: number): void {
    const kvm = this.kvm;
    const vmcs12 = this.state.cachedVmcs12;
    const eptp = vmcs12.read(F.EPT_POINTER) + vmcs12.hi * TWO_32;
    for (let tries = 0; tries < 4; tries++) {
      const r = kvm.shadowEpt!.fault(kvm.mmu.mmu.rootHpa, kvm.ept12Context(eptp), gpa, qual);
      switch (r.outcome) {
        case FAULT.FIXED:
        case FAULT.SPURIOUS:
          return;
        case FAULT.RETRY:
          kvm.mmu.freeObsoleteRoots();
          kvm.reloadMmu();
          continue;
        case FAULT.INJECT_EPT_VIOLATION:
        case FAULT.INJECT_EPT_MISCONFIG:
          // kvm: nested_ept_inject_page_fault → nested_vmx_vmexit with vmcs12's exit information.
          kvm.meter.count(HV.NESTED_EPT_FAULT_INJECTED);
          // KVM stores the address after nested_vmx_vmexit; nothing in between reads it, and the
          // model's syncs to L1 (shadow VMCS, enlightened VMCS) run after the exit in both orders.
          vmcs12.write(F.GUEST_PHYSICAL_ADDRESS, r.gpa >>> 0, Math.floor(r.gpa / TWO_32));
          kvm.meter.count(VMCS12_WRITE_EVENT);
          this.nestedVmexit(r.exitReason, r.qualification, 0, 0);
          return;
        default:
          throw new Error(
            `${kvm.name}: L2 access to 0x${gpa.toString(16)} ended with shadow-EPT outcome ${r.outcome}`,
          );
      }
    }
    throw new Error(`${kvm.name}: EPT02 fault at 0x${gpa.toString(16)} not resolved after 4 tries`);
  }

  // ------------------------------------------------------------------------------------------
  // Nested VM exit (kvm: nested_vmx_vmexit)

  /** Reflect an exit of L2 to L1: sync vmcs12, prepare its exit information, back to vmcs01 and L1's host state. */
  nestedVmexit(reason: number, qualLo: number, qualHi: number, intrInfo: number): void {
    const kvm = this.kvm;
    const p = kvm.processor;
    const meter = kvm.meter;
    const vmcs12 = this.state.cachedVmcs12;
    meter.count(HV.NESTED_VM_EXIT);
    // X2: leave_guest_mode.
    this.state.guestMode = false;
    // X3: sync_vmcs02_to_vmcs12 (vmcs02 still current).
    kvm.tracePhase(KVM_PHASE.SYNC_VMCS02_TO_VMCS12);
    this.sync.syncVmcs02ToVmcs12(vmcs12, kvm.cr0GuestOwnedBits(), kvm.cr4GuestOwnedBits());
    // kvm: sync_vmcs02_to_vmcs12 — with nested EPT and PAE paging, L2's PDPTEs as the CPU holds them
    // (a MOV to CR3 without an exit reloads them into vmcs02). Before flag E they are in the exit
    // sync's own list, read on every exit with EPT (v5.2 sync_vmcs12), so not a second time here.
    if (kvm.config.nestedEntryWriteTrims && kvm.useEpt && this.nestedEpt && kvm.mmu.paePaging) {
      for (const field of GUEST_PDPTR_FIELDS) {
        const lo = p.vmread(field);
        vmcs12.write(field, lo, p.hi);
      }
      meter.count(VMCS12_WRITE_EVENT, 4);
    }
    const rip = kvm.regs.readRip();
    const rsp = kvm.regs.readRsp();
    vmcs12.write(F.GUEST_RIP, rip >>> 0, Math.floor(rip / TWO_32));
    vmcs12.write(F.GUEST_RSP, rsp >>> 0, Math.floor(rsp / TWO_32));
    this.#syncVcpuStateToVmcs12(vmcs12);
    // X4: prepare_vmcs12.
    kvm.tracePhase(KVM_PHASE.PREPARE_VMCS12);
    vmcs12.write(F.VM_EXIT_REASON, reason);
    vmcs12.write(F.EXIT_QUALIFICATION, qualLo, qualHi);
    vmcs12.launchState = 1;
    vmcs12.write(F.VM_ENTRY_INTR_INFO_FIELD, vmcs12.read(F.VM_ENTRY_INTR_INFO_FIELD) & 0x7fffffff);
    vmcs12.write(F.IDT_VECTORING_INFO_FIELD, 0);
    vmcs12.write(F.VM_EXIT_INTR_INFO, intrInfo);
    vmcs12.write(F.VM_EXIT_INSTRUCTION_LEN, p.vmread(F.VM_EXIT_INSTRUCTION_LEN));
    vmcs12.write(F.VMX_INSTRUCTION_INFO, p.vmread(F.VMX_INSTRUCTION_INFO));
    meter.count(VMCS12_WRITE_EVENT, 12);
    // X5: L2's VMWRITEs that L0 served go back to L1's shadow VMCS page.
    this.#flushCachedShadowVmcs12(vmcs12);
    this.#leaveToL1(true);
  }

  /**
   * The parts of sync_vmcs02_to_vmcs12 that come from KVM's vCPU state and vmcs12's own controls
   * rather than from a VMREAD list (kvm: sync_vmcs02_to_vmcs12; v5.2: sync_vmcs12):
   * - the activity state, from mp_state: ACTIVE, since an L2 exit never leaves this model's vCPU
   *   halted or waiting for SIPI (L2's HLT exits; INIT and SIPI are not modelled);
   * - the "IA-32e mode guest" entry control, from vmcs02's controls shadow (no VMREAD);
   * - with "save debug controls", DR7 from the vCPU; before flag E also DEBUGCTL, by VMREAD;
   * - before flag E, with "save IA32_PAT", the PAT by VMREAD (later kernels keep vmcs12 current when
   *   L2 writes the MSR);
   * - with "save IA32_EFER", EFER from the vCPU.
   * Not modelled: the preemption-timer value (no timer) and the guest interrupt status (no VID).
   */
  #syncVcpuStateToVmcs12(vmcs12: Vmcs12): void {
    const kvm = this.kvm;
    const p = kvm.processor;
    vmcs12.write(F.GUEST_ACTIVITY_STATE, GUEST_ACTIVITY.ACTIVE);
    const entryControls = vmcs12.read(F.VM_ENTRY_CONTROLS);
    const ia32e = kvm.controls.get(VMCS_CONTROL.VM_ENTRY) & VM_ENTRY_CTLS.VM_ENTRY_IA32E_MODE;
    vmcs12.write(F.VM_ENTRY_CONTROLS, ((entryControls & ~VM_ENTRY_CTLS.VM_ENTRY_IA32E_MODE) | ia32e) >>> 0);
    const exitControls = vmcs12.read(F.VM_EXIT_CONTROLS);
    const reads = 2;
    let writes = 2;
    const rereads = !kvm.config.nestedEntryWriteTrims;
    if ((exitControls & VM_EXIT_CTLS.VM_EXIT_SAVE_DEBUG_CONTROLS) !== 0) {
      vmcs12.write(F.GUEST_DR7, this.#l2Dr7);
      writes++;
      if (rereads) {
        vmcs12.write(F.GUEST_IA32_DEBUGCTL, p.vmread(F.GUEST_IA32_DEBUGCTL), p.hi);
        writes++;
      }
    }
    if (rereads && (exitControls & VM_EXIT_CTLS.VM_EXIT_SAVE_IA32_PAT) !== 0) {
      vmcs12.write(F.GUEST_IA32_PAT, p.vmread(F.GUEST_IA32_PAT), p.hi);
      writes++;
    }
    if ((exitControls & VM_EXIT_CTLS.VM_EXIT_SAVE_IA32_EFER) !== 0) {
      const efer = kvm.mmu.efer;
      vmcs12.write(F.GUEST_IA32_EFER, efer >>> 0, Math.floor(efer / TWO_32));
      writes++;
    }
    kvm.meter.count(VMCS12_READ_EVENT, reads);
    kvm.meter.count(VMCS12_WRITE_EVENT, writes);
  }

  // ------------------------------------------------------------------------------------------
  // VMCS shadowing emulated for L1 (L2 is itself a hypervisor and L1 gives it a shadow VMCS)

  /** vmcs12 enables VMCS shadowing for L2 (kvm: nested_cpu_has_shadow_vmcs). */
  #shadowsForL2(vmcs12: Vmcs12): boolean {
    return (
      (vmcs12.read(F.CPU_BASED_VM_EXEC_CONTROL) & CPU_BASED_CTLS.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS) !==
        0 && (vmcs12.read(F.SECONDARY_VM_EXEC_CONTROL) & SHADOW_VMCS) !== 0
    );
  }

  /**
   * kvm: nested_vmx_exit_handled_vmcs_access — does L1 want L2's VMREAD/VMWRITE? Always without
   * shadowing in vmcs12; otherwise the field encoding (the register VMX_INSTRUCTION_INFO's Reg2 names)
   * picks a bit of L1's VMREAD or VMWRITE bitmap, a page in L1's memory at vmcs12's `bitmapField`:
   * set (or an encoding above 0x7fff, or an unreadable byte) → L1's exit; clear → L0 emulates it on
   * the cached shadow vmcs12.
   */
  #vmcsAccessExits(vmcs12: Vmcs12, bitmapField: number): boolean {
    if (!this.#shadowsForL2(vmcs12)) return true;
    const kvm = this.kvm;
    const info = kvm.processor.vmread(F.VMX_INSTRUCTION_INFO);
    const g = kvm.exitingRegisters();
    const reg2 = (info & INFO.REG2_MASK) >>> INFO.REG2_SHIFT;
    // kvm: kvm_register_read of the field register (is_64_bit_mode reads CS AR bytes in long mode;
    // the model's guest hypervisors are 64-bit).
    kvm.is64BitMode();
    const fieldLo = g.gprLo[reg2]!;
    if (g.gprHi[reg2]! !== 0 || fieldLo >>> 15 !== 0) return true;
    const bitmap = vmcs12.read(bitmapField) + vmcs12.hi * TWO_32;
    kvm.meter.count(VMCS12_READ_EVENT);
    const byteAddress = bitmap + (fieldLo >>> 3);
    const memory = kvm.guestMemory();
    // kvm: kvm_vcpu_read_guest of one byte; a failed read means the exit goes to L1.
    if (byteAddress + 1 > memory.size) return true;
    return ((memory.read8(byteAddress) >>> (fieldLo & 7)) & 1) !== 0;
  }

  /**
   * kvm: nested_cache_shadow_vmcs12 — with shadowing in vmcs12 and a link pointer, read the 4-KiB
   * shadow VMCS from L1's memory into the cached shadow vmcs12 (an unmapped page is skipped).
   */
  #cacheShadowVmcs12(vmcs12: Vmcs12): void {
    const gpa = this.#shadowVmcs12Address(vmcs12);
    if (gpa < 0) return;
    this.state.cachedShadowVmcs12.readFrom(this.kvm.guestMemory(), gpa);
    this.kvm.meter.count(VMX_EVENTS.VMCS12_IMAGE_LOAD);
  }

  /** kvm: nested_flush_cached_shadow_vmcs12 — the cached shadow vmcs12 back to L1's page. */
  #flushCachedShadowVmcs12(vmcs12: Vmcs12): void {
    const gpa = this.#shadowVmcs12Address(vmcs12);
    if (gpa < 0) return;
    this.state.cachedShadowVmcs12.writeTo(this.kvm.guestMemory(), gpa);
    this.kvm.meter.count(VMX_EVENTS.VMCS12_IMAGE_FLUSH);
  }

  /** The shadow vmcs12's address in L1's memory, or -1 (no shadowing, link pointer −1, or unmapped). */
  #shadowVmcs12Address(vmcs12: Vmcs12): number {
    if (!this.#shadowsForL2(vmcs12)) return -1;
    const lo = vmcs12.read(F.VMCS_LINK_POINTER);
    const hi = vmcs12.hi;
    this.kvm.meter.count(VMCS12_READ_EVENT);
    if (lo === 0xffffffff && hi === 0xffffffff) return -1;
    const gpa = hi * TWO_32 + lo;
    // kvm: kvm_gfn_to_hva_cache_init fails without a memslot for the whole page.
    return gpa + VMCS12_SIZE > this.kvm.guestMemory().size ? -1 : gpa;
  }

  /**
   * A guest-state check failed: an entry-failure exit to L1 (kvm: vmentry_fail_vmexit — back to
   * vmcs01 and load_vmcs12_host_state, without nested_vmx_vmexit's vmcs01 refresh).
   */
  #entryFailure(exitReason: number, qualification: number): void {
    const vmcs12 = this.state.cachedVmcs12;
    vmcs12.write(F.VM_EXIT_REASON, (exitReason | VMX_EXIT_REASONS_FAILED_VMENTRY) >>> 0);
    vmcs12.write(F.EXIT_QUALIFICATION, qualification);
    this.state.nestedRunPending = false;
    this.#leaveToL1(false);
  }

  /** X7–X13: back to vmcs01, refresh it (a real exit), L1's host state and MMU; L1 gets the exit. */
  #leaveToL1(refreshVmcs01: boolean): void {
    const kvm = this.kvm;
    const vmcs12 = this.state.cachedVmcs12;
    this.#switchVmcs(kvm.vmcs01);
    // X9: vmcs01 refresh.
    if (refreshVmcs01) {
      kvm.tracePhase(KVM_PHASE.REFRESH_VMCS01);
      this.#vmcs01Refresh.run(kvm.processor);
    }
    // X11: the shadow VMCS is refreshed before L1 runs.
    this.sync.requestVmcs12ToShadowSync();
    // X13: load_vmcs12_host_state.
    kvm.tracePhase(KVM_PHASE.LOAD_VMCS12_HOST_STATE);
    const cr0 = vmcs12.read(F.HOST_CR0);
    const cr4 = vmcs12.read(F.HOST_CR4);
    const cr3 = vmcs12.read(F.HOST_CR3) + vmcs12.hi * TWO_32;
    const exitControls = vmcs12.read(F.VM_EXIT_CONTROLS);
    // EFER: vmcs12's host EFER with "load IA32_EFER", else the vCPU's with LMA/LME following
    // "host address-space size".
    const efer =
      (exitControls & VM_EXIT_CTLS.VM_EXIT_LOAD_IA32_EFER) !== 0
        ? vmcs12.read(F.HOST_IA32_EFER)
        : eferInMode(kvm.mmu.efer, (exitControls & VM_EXIT_CTLS.VM_EXIT_HOST_ADDR_SPACE_SIZE) !== 0);
    this.#loadEfer(efer);
    kvm.setRflags(0x2);
    kvm.clearInterruptShadow();
    this.#write(F.CR0_READ_SHADOW, cr0);
    this.#write(F.GUEST_CR0, cr0);
    kvm.regs.markCr0Available();
    kvm.checkGuestStateValid(cr0);
    // kvm: vmx_set_cr4 → kvm_read_cr4 and the guest/host mask are read back first.
    kvm.processor.vmread(F.CR4_GUEST_HOST_MASK);
    kvm.processor.vmread(F.GUEST_CR4);
    this.#write(F.CR4_READ_SHADOW, cr4);
    this.#write(F.GUEST_CR4, cr4);
    kvm.mmu.nestedVmExit({ cr0, cr3, cr4, efer });
    kvm.tracePhase(KVM_PHASE.LOAD_VMCS12_HOST_STATE);
    kvm.cr3Dirty = true;
    kvm.loadPgdRequested = true;
    // kvm: nested_vmx_transition_tlb_flush on exit — a guest TLB flush only when vmcs12 does not
    // use VPID (L2 then shared L1's VPID 0); with VPID, L2's entries are tagged apart (vpid02/EPTP).
    if (!usesVpid(vmcs12)) kvm.mmu.makeRequest(MMU_REQUEST.TLB_FLUSH_GUEST);
    // Sysenter MSRs, IDTR/GDTR, PAT (with "load IA32_PAT"); the host segments (__vmx_set_segment
    // each); DR7 and DEBUGCTL.
    this.#hostStateLoad.run(kvm.processor, vmcs12);
    this.#hostDescriptorLimits.run(kvm.processor);
    if ((exitControls & VM_EXIT_CTLS.VM_EXIT_LOAD_IA32_PAT) !== 0) {
      this.#write(F.GUEST_IA32_PAT, vmcs12.read(F.HOST_IA32_PAT), vmcs12.hi);
    }
    this.#hostSegments.run(kvm.processor, vmcs12);
    // kvm: every __vmx_set_segment clears the segment cache (vmx_segment_cache_clear).
    kvm.regs.clearSegments();
    this.#hostDebugLoad.run(kvm.processor);
    // kvm: load_vmcs12_host_state ends with vmx_emulation_required on L1's new state.
    kvm.checkGuestStateValid(cr0);
    kvm.regs.writeRsp(vmcs12.read(F.HOST_RSP) + vmcs12.hi * TWO_32);
    kvm.regs.writeRip(vmcs12.read(F.HOST_RIP) + vmcs12.hi * TWO_32);
    // The guest hypervisor's handler runs when it is entered.
    kvm.guest.pendingExit = true;
    this.#l2 = null;
  }

  /**
   * kvm: vmx_switch_vmcs. With flag D (v5.3+) only the VMCS load and its bookkeeping; before it, a
   * full vcpu put (host state restored, PI descriptor) and vcpu load (RDMSR DEBUGCTL, RDPKRU, PI),
   * after which the next entry re-saves host state.
   */
  #switchVmcs(target: HardwareVmcs): void {
    const kvm = this.kvm;
    const meter = kvm.meter;
    kvm.tracePhase(KVM_PHASE.SWITCH_VMCS);
    if (!kvm.config.noVcpuPutOnVmcsSwitch) {
      meter.count(HV.VCPU_PUT);
      meter.count(HV.PI_DESCRIPTOR_UPDATE);
      kvm.hostStateReloadPending = true;
    }
    const r = kvm.processor.vmptrld(target.address);
    if (r !== 0) throw new Error(`${kvm.name}: VMPTRLD of ${target.describe()} failed (${r})`);
    if (!kvm.config.noVcpuPutOnVmcsSwitch) {
      meter.count(HV.VCPU_LOAD);
      // kvm v5.2 vmx_vcpu_load: host_debugctlmsr = get_debugctlmsr() (an exit in a guest hypervisor);
      // a kernel that snapshots it before every entry (hostDebugctlPerEntry) no longer reads it here.
      if (!kvm.config.hostDebugctlPerEntry) kvm.hostDebugctl = kvm.cpu.readDebugctl();
      meter.count(HV.RDPKRU);
      meter.count(HV.PI_DESCRIPTOR_UPDATE);
    } else {
      meter.count(HV.VMCS_SWITCH);
    }
    kvm.controls.switchTo(target);
    kvm.regs.resetForVmcsSwitch();
  }

  /**
   * kvm: nested_vmx_calc_efer — vmcs12's guest EFER with "load IA32_EFER", else L1's EFER with
   * LMA/LME following "IA-32e mode guest".
   */
  #l2Efer(vmcs12: Vmcs12): number {
    const entryControls = vmcs12.read(F.VM_ENTRY_CONTROLS);
    return (entryControls & VM_ENTRY_CTLS.VM_ENTRY_LOAD_IA32_EFER) !== 0
      ? vmcs12.read(F.GUEST_IA32_EFER)
      : eferInMode(this.kvm.mmu.efer, (entryControls & VM_ENTRY_CTLS.VM_ENTRY_IA32E_MODE) !== 0);
  }

  /**
   * kvm: vmx_set_efer on the loaded VMCS — "IA-32e mode guest" follows LMA; then
   * update_transition_efer: when the EFER to run with differs from the host's, GUEST_IA32_EFER and
   * "load IA32_EFER" on entry and exit (add_atomic_switch_msr_special), else both controls cleared
   * (clear_atomic_switch_msr_special). Three control-shadow updates, each written only on change.
   */
  #loadEfer(efer: number): void {
    const kvm = this.kvm;
    const c = kvm.controls;
    if ((efer & EFER.LMA) !== 0) c.setbit(VMCS_CONTROL.VM_ENTRY, VM_ENTRY_CTLS.VM_ENTRY_IA32E_MODE);
    else c.clearbit(VMCS_CONTROL.VM_ENTRY, VM_ENTRY_CTLS.VM_ENTRY_IA32E_MODE);
    const guest = kvm.transitionEfer(efer);
    if (guest !== kvm.hostEfer) {
      this.#write(F.GUEST_IA32_EFER, guest);
      c.setbit(VMCS_CONTROL.VM_ENTRY, VM_ENTRY_CTLS.VM_ENTRY_LOAD_IA32_EFER);
      c.setbit(VMCS_CONTROL.VM_EXIT, VM_EXIT_CTLS.VM_EXIT_LOAD_IA32_EFER);
    } else {
      c.clearbit(VMCS_CONTROL.VM_ENTRY, VM_ENTRY_CTLS.VM_ENTRY_LOAD_IA32_EFER);
      c.clearbit(VMCS_CONTROL.VM_EXIT, VM_EXIT_CTLS.VM_EXIT_LOAD_IA32_EFER);
    }
  }

  #write(field: number, lo: number, hi = 0): void {
    this.kvm.processor.vmwrite(field, lo >>> 0, hi >>> 0);
  }

  /** `#copy` for prepare_vmcs02_rare, unless the sync's entry hooks say the field's group is clean. */
  #copyRare(vmcs12: Vmcs12, field: number): void {
    const hooks = this.#entryHooks;
    if (hooks === null || hooks.rareEntryWrites(field)) this.#copy(vmcs12, field);
  }

  /** vmcs12 → vmcs02 for a run of fields (a memory read of vmcs12 and a VMWRITE each). */
  #copyAll(vmcs12: Vmcs12, copies: Vmcs12Copies): void {
    copies.run(this.kvm.processor, vmcs12);
    this.kvm.meter.count(VMCS12_READ_EVENT, copies.length);
  }

  /** vmcs12 → vmcs02 for one field (a memory read of vmcs12 and a VMWRITE). */
  #copy(vmcs12: Vmcs12, field: number): void {
    const lo = vmcs12.read(field);
    if (lo < 0) return;
    this.kvm.processor.vmwrite(field, lo >>> 0, vmcs12.hi);
    this.kvm.meter.count(VMCS12_READ_EVENT);
  }
}

function vmcs12Host(kvm: Kvm, field: number): number {
  return kvm.nested.state.cachedVmcs12.read(field);
}
