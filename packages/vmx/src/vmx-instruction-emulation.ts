/**
 * L0's emulation of the VMX instructions L1 executes, as KVM 6.12 does it (arch/x86/kvm/vmx/nested.c:
 * handle_vmxon, handle_vmxoff, handle_vmclear, handle_vmptrld, handle_vmptrst, handle_vmread,
 * handle_vmwrite, nested_vmx_run up to its pre-checks, handle_invept, handle_invvpid), with the
 * checks in KVM's order. Every handler returns a `VmxOutcome` (vmx-instruction-outcome.ts):
 * VMsucceed, VMfailInvalid, VMfailValid(n) (n written into vmcs12's VM_INSTRUCTION_ERROR, never into
 * a shadow VMCS: the field is not shadowed), a fault for L1 (#UD, #GP(0), or the memory operand's own
 * fault), or "enter non-root mode" for a VMLAUNCH/VMRESUME that passed its checks. For the three VMX
 * results the handler also applies the flags (SDM 31.2, kvm: nested_vmx_succeed / failInvalid /
 * failValid) to `ctx.rflags`; the caller then skips the instruction.
 *
 * Operands arrive decoded: a VMCS pointer or INVEPT/INVVPID descriptor as the 64-bit value L1's
 * memory operand holds, register values as two 32-bit halves. Decoding and accessing the memory
 * operand (kvm: get_vmx_mem_address, kvm_read_guest_virt, kvm_write_guest_virt_system) is the
 * caller's; when that access faults the caller puts the fault in `ctx.operandFault`, and the handler
 * returns it at the point where KVM touches the operand, so the checks KVM makes first still win
 * (e.g. VMCLEAR outside VMX operation is #UD even with an unmapped operand). L1's physical memory
 * (a `PhysicalMemory`) holds the VMXON region and the VMCS regions: VMPTRLD copies a 4-KiB vmcs12
 * image into `state.cachedVmcs12`, releasing the current VMCS (VMCLEAR of it, VMPTRLD of another)
 * writes the image back, VMCLEAR writes launch_state 0 at offset 8 of the region.
 *
 * The vmcs12 ↔ shadow VMCS ↔ vmcs02 coherence work is not done here: the handlers call the
 * `NestedSyncPort` where KVM does it, in KVM's order —
 *   - `syncRareFieldsIfPending` where KVM calls copy_vmcs02_to_vmcs12_rare (L1's VMREAD of a rare
 *     field, L1's VMWRITE of a field outside the shadow RW list, releasing the current VMCS);
 *   - `currentVmcsReleased` for the shadow part of nested_release_vmcs12 (copy_shadow_to_vmcs12 then
 *     vmx_disable_shadow_vmcs; the port does nothing without shadowing), before the write-back;
 *   - `currentVmcsLoaded` for set_current_vmptr;
 *   - `copyShadowToVmcs12` in nested_vmx_run, only with shadowing (kvm: enable_shadow_vmcs);
 *   - `writeThroughReadOnly` after an L1 VMWRITE of a shadow read-only field, only with shadowing.
 *
 * Not modelled: the enlightened VMCS (Hyper-V eVMCS paths), SMM's VMX state, VMFUNC, the work after a
 * successful check (nested VM entry, MMU root freeing and TLB flushes of INVEPT/INVVPID — the caller's,
 * with the instruction's decoded inputs), the memory-allocation failure of enter_vmx_operation.
 */

import {
  CR0,
  CR4,
  checkEptPointer,
  decodeEptCapabilities,
  type EptCapabilities,
  FEATURE_CONTROL,
  MODERN_CPU,
  type PhysicalMemory,
  RFLAGS_RESET,
} from "@nestvisor/x86-arch";
import {
  crFixedBitsOk,
  EPT_VPID_CAP_HI,
  EPT_VPID_CAP_LO,
  KVM_DEFAULT_VMX_CAPABILITIES,
  type VmxCapabilities,
} from "./capability-msrs";
import { SECONDARY_EXEC_CTLS, VMX_MISC } from "./controls";
import { DEFAULT_L0_HOST_FACTS, type L0HostFacts } from "./entry-check-context";
import { fieldByName } from "./field-catalog";
import { FIELD_WIDTH, isReadOnlyField, vmcsFieldWidth } from "./field-encoding";
import { type Meter, meterTable, NOOP_METER } from "./meter";
import type { NestedSyncPort } from "./nested-sync-port";
import { INVALID_GPA, NestedVmxState } from "./nested-vmx-state";
import { VM_INSTRUCTION_ERROR } from "./vm-instruction-error";
import type { Vmcs12 } from "./vmcs12";
import { VMCS12_HEADER, VMCS12_REVISION, VMCS12_SIZE } from "./vmcs12-layout";
import { VMX_EVENTS } from "./vmx-events";
import { VMX_OUTCOME, type VmxOutcome } from "./vmx-instruction-outcome";
import { rflagsAfterVmxResult, VMX_RESULT } from "./vmx-result";

/**
 * What `entryChecks` returns: 0 when vmcs12 passes KVM's control and host-state checks, else the
 * VM-instruction error of the first failure: 7 (controls, kvm: nested_vmx_check_controls) or 8
 * (address-space size or host state, kvm: nested_vmx_check_address_space_size,
 * nested_vmx_check_host_state).
 */
export type NestedEntryCheckError = 0 | 7 | 8;

/** The VM-entry checks nested_vmx_run makes after its pre-checks, in KVM's order. */
export type NestedEntryChecks = (vmcs12: Vmcs12) => NestedEntryCheckError;

/** CR0 of a typical 64-bit L1 (PE, MP, ET, NE, WP, AM, PG): passes KVM's VMXON fixed-bit check. */
const DEFAULT_CR0 = (CR0.PE | CR0.MP | CR0.ET | CR0.NE | CR0.WP | CR0.AM | CR0.PG) >>> 0;
/** CR4 of a typical 64-bit L1 with VMX enabled (PAE, PGE, OSFXSR, OSXMMEXCPT, VMXE). */
const DEFAULT_CR4 = CR4.PAE | CR4.PGE | CR4.OSFXSR | CR4.OSXMMEXCPT | CR4.VMXE;

/**
 * The state of the vCPU executing the instruction that a handler needs, as one mutable object the
 * caller keeps and refills (nothing is allocated per instruction). It describes L1, or L2 for a
 * VMREAD/VMWRITE that L2 executes under VMCS shadowing and L0 emulates. The defaults are a 64-bit
 * L1 at CPL 0 with VMX enabled in CR4 and IA32_FEATURE_CONTROL.
 */
export class VmxInstructionContext {
  /** Current privilege level. */
  cpl = 0;
  /** CR0 as two 32-bit halves (kvm: kvm_read_cr0). */
  cr0Lo = DEFAULT_CR0;
  cr0Hi = 0;
  /** CR4 as two 32-bit halves (kvm: kvm_read_cr4). */
  cr4Lo = DEFAULT_CR4;
  cr4Hi = 0;
  /** RFLAGS, bits 31:0: read, and rewritten by every VMX result (SDM 31.2). */
  rflags = RFLAGS_RESET;
  /**
   * 64-bit mode (kvm: is_64_bit_mode): register operands are 64 bits, a memory operand of
   * VMREAD/VMWRITE is 8 bytes; otherwise both are 32 bits (kvm: kvm_register_read truncates).
   */
  mode64 = true;
  /** Blocking by MOV SS is in effect (kvm: vmx_get_interrupt_shadow & KVM_X86_SHADOW_INT_MOV_SS). */
  movSsBlocking = false;
  /** IA32_FEATURE_CONTROL bits 31:0 (kvm: vmx->msr_ia32_feature_control). */
  featureControl = FEATURE_CONTROL.LOCK | FEATURE_CONTROL.VMXON_OUTSIDE_SMX;
  /**
   * The fault that accessing this instruction's memory operand takes (a fault `VmxOutcome` such as
   * `VMX_OUTCOME.PF`), or 0 when the access succeeds or there is none. Set it before every call.
   */
  operandFault: VmxOutcome = 0;
}

/** Everything the emulation needs besides the per-instruction context. */
export interface VmxInstructionEmulatorOptions {
  /** L1's physical memory: VMXON and VMCS regions (kvm: kvm_read_guest / kvm_vcpu_write_guest). */
  readonly memory: PhysicalMemory;
  /** The vmcs12 / shadow VMCS / vmcs02 coherence machinery. */
  readonly sync: NestedSyncPort;
  /** VMLAUNCH/VMRESUME's control and host-state checks (VMfailValid 7 / 8). */
  readonly entryChecks: NestedEntryChecks;
  /** The VMX capability MSRs L1 sees (kvm: vmx->nested.msrs). Default: KVM 6.12's on a modern host. */
  readonly capabilities?: VmxCapabilities;
  /** L1's MAXPHYADDR (kvm: cpuid_maxphyaddr). Default: `MODERN_CPU.maxPhysAddr` (46). */
  readonly maxPhysAddr?: number;
  /**
   * What the handlers need to know of L0's host CPU: whether it has 5-level paging (kvm:
   * kvm_cpu_cap_has(X86_FEATURE_LA57)), which sets the width INVVPID's linear address is checked
   * against. An `L0HostFacts` fits. Default: `DEFAULT_L0_HOST_FACTS` (LA57 host).
   */
  readonly host?: Pick<L0HostFacts, "la57">;
  /** The nested state to act on. Default: a fresh `NestedVmxState` (L1 not in VMX operation). */
  readonly state?: NestedVmxState;
  /** Where the work is counted. Default: `NOOP_METER`. */
  readonly meter?: Meter;
  /**
   * Intercepted VMWRITEs to GUEST_ES..TR_AR_BYTES keep only bits 0x1f0ff. Default true (v5.3 and
   * later: the seed-003 patch "Intercept VMWRITEs to GUEST_{CS,SS}_AR_BYTES" added it; before that,
   * v5.2, vmcs12 stored the value L1 wrote).
   */
  readonly maskArBytesOnVmwrite?: boolean;
}

function encodingOf(name: string): number {
  const field = fieldByName(name);
  if (field === undefined) throw new Error(`field catalog has no ${name}`);
  return field.encoding;
}

const FIELD_VM_INSTRUCTION_ERROR = encodingOf("VM_INSTRUCTION_ERROR");
const FIELD_VMCS_LINK_POINTER = encodingOf("VMCS_LINK_POINTER");
const FIELD_GUEST_ES_AR_BYTES = encodingOf("GUEST_ES_AR_BYTES");
const FIELD_GUEST_TR_AR_BYTES = encodingOf("GUEST_TR_AR_BYTES");

/** Access-rights bits kept by an intercepted VMWRITE (kvm: handle_vmwrite, like some Intel CPUs). */
const AR_BYTES_KEPT = 0x1f0ff;

/** kvm: handle_vmxon VMXON_NEEDED_FEATURES. */
const VMXON_NEEDED_FEATURES = FEATURE_CONTROL.LOCK | FEATURE_CONTROL.VMXON_OUTSIDE_SMX;

/** kvm: VMX_EPT_EXTENT_SHIFT; `ept_caps >> 24 & 6` gives the INVEPT types (bit 1 single, bit 2 all). */
const VMX_EPT_EXTENT_SHIFT = 24;
/** kvm: VMX_VPID_EXTENT_SUPPORTED_MASK >> 8 picks the INVVPID types from the VPID capability bits. */
const VPID_EXTENT_MASK =
  EPT_VPID_CAP_HI.VMX_VPID_EXTENT_INDIVIDUAL_ADDR_BIT |
  EPT_VPID_CAP_HI.VMX_VPID_EXTENT_SINGLE_CONTEXT_BIT |
  EPT_VPID_CAP_HI.VMX_VPID_EXTENT_GLOBAL_CONTEXT_BIT |
  EPT_VPID_CAP_HI.VMX_VPID_EXTENT_SINGLE_NON_GLOBAL_BIT;

/** INVEPT / INVVPID types (SDM 31.3 INVEPT, INVVPID; kvm: VMX_EPT_EXTENT_*, VMX_VPID_EXTENT_*). */
const INVEPT_SINGLE_CONTEXT = 1;
const INVVPID_INDIVIDUAL_ADDRESS = 0;
const INVVPID_SINGLE_CONTEXT = 1;
const INVVPID_ALL_CONTEXTS = 2;
const INVVPID_SINGLE_CONTEXT_RETAINING_GLOBALS = 3;

const ERR = VM_INSTRUCTION_ERROR;
const EV = VMX_EVENTS;

/**
 * The emulation of L1's VMX instructions on one vCPU. Handlers allocate nothing; VMREAD and VMPTRST
 * leave their 64-bit result in `valueLo`/`valueHi` for the caller to store in L1's register or memory.
 */
export class VmxInstructionEmulator {
  readonly state: NestedVmxState;
  readonly memory: PhysicalMemory;
  readonly sync: NestedSyncPort;
  readonly capabilities: VmxCapabilities;
  readonly maxPhysAddr: number;
  /** Width INVVPID's individual address must be canonical for: 57 on an LA57 host, else 48. */
  readonly invalidationAddressBits: number;
  readonly meter: Meter;
  readonly maskArBytesOnVmwrite: boolean;
  /** Low half of the value the last VMREAD read or the last VMPTRST stored. */
  valueLo = 0;
  /** High half of that value (0 outside 64-bit mode, where only 32 bits are stored). */
  valueHi = 0;

  readonly #entryChecks: NestedEntryChecks;
  readonly #counts: Float64Array | null;
  /** 2^(MAXPHYADDR - 32): a legal address's high word is below this (kvm: kvm_vcpu_is_legal_gpa). */
  readonly #addressHiLimit: number;
  readonly #errorOffset: number;
  readonly #linkPointerOffset: number;
  readonly #vmwriteAnyField: boolean;
  readonly #shadowVmcsOffered: boolean;
  readonly #inveptOffered: boolean;
  readonly #inveptTypes: number;
  readonly #eptCaps: EptCapabilities;
  readonly #invvpidOffered: boolean;
  readonly #invvpidTypes: number;

  constructor(options: VmxInstructionEmulatorOptions) {
    this.memory = options.memory;
    this.sync = options.sync;
    this.#entryChecks = options.entryChecks;
    this.capabilities = options.capabilities ?? KVM_DEFAULT_VMX_CAPABILITIES;
    this.maxPhysAddr = options.maxPhysAddr ?? MODERN_CPU.maxPhysAddr;
    if (!Number.isInteger(this.maxPhysAddr) || this.maxPhysAddr < 32 || this.maxPhysAddr > 52) {
      throw new RangeError(`maxPhysAddr ${this.maxPhysAddr} must be an integer in [32, 52]`);
    }
    // kvm: is_noncanonical_invlpg_address → max_host_virt_addr_bits, the host CPU's width whatever
    // L1's CR4.LA57 (x86.h: TLB-invalidation addresses get the static check, like MSR-held addresses).
    this.invalidationAddressBits = (options.host ?? DEFAULT_L0_HOST_FACTS).la57 ? 57 : 48;
    this.state = options.state ?? new NestedVmxState();
    this.meter = options.meter ?? NOOP_METER;
    this.maskArBytesOnVmwrite = options.maskArBytesOnVmwrite ?? true;
    this.#counts = meterTable(this.meter);
    this.#addressHiLimit = 2 ** (this.maxPhysAddr - 32);
    this.#errorOffset = this.state.cachedVmcs12.offsetOf(FIELD_VM_INSTRUCTION_ERROR);
    this.#linkPointerOffset = this.state.cachedVmcs12.offsetOf(FIELD_VMCS_LINK_POINTER);

    const caps = this.capabilities;
    // kvm: nested_cpu_has_vmwrite_any_field (IA32_VMX_MISC bit 29 as L1 sees it).
    this.#vmwriteAnyField = (caps.misc.lo & VMX_MISC.VMX_MISC_VMWRITE_SHADOW_RO_FIELDS) !== 0;
    // kvm: nested_cpu_has_vmx_shadow_vmcs (secondary allowed-1 settings).
    this.#shadowVmcsOffered = (caps.procbasedCtls2.hi & SECONDARY_EXEC_CTLS.SECONDARY_EXEC_SHADOW_VMCS) !== 0;
    // kvm: handle_invept, #UD unless "enable EPT" and INVEPT are offered.
    this.#inveptOffered =
      (caps.procbasedCtls2.hi & SECONDARY_EXEC_CTLS.SECONDARY_EXEC_ENABLE_EPT) !== 0 &&
      (caps.eptVpidCap.lo & EPT_VPID_CAP_LO.VMX_EPT_INVEPT_BIT) !== 0;
    this.#inveptTypes = (caps.eptVpidCap.lo >>> VMX_EPT_EXTENT_SHIFT) & 6;
    this.#eptCaps = decodeEptCapabilities(caps.eptVpidCap.lo, caps.eptVpidCap.hi);
    // kvm: handle_invvpid, #UD unless "enable VPID" and INVVPID are offered.
    this.#invvpidOffered =
      (caps.procbasedCtls2.hi & SECONDARY_EXEC_CTLS.SECONDARY_EXEC_ENABLE_VPID) !== 0 &&
      (caps.eptVpidCap.hi & EPT_VPID_CAP_HI.VMX_VPID_INVVPID_BIT) !== 0;
    this.#invvpidTypes = (caps.eptVpidCap.hi & VPID_EXTENT_MASK) >>> 8;
  }

  /**
   * VMXON (kvm: handle_vmxon). `ptrLo`/`ptrHi`: the 64-bit VMXON-region address read from the memory
   * operand. Order: CR4.VMXE = 0 → #UD (KVM forces VMXE in hardware, so it checks L1's value); CPL > 0
   * → #GP(0); already post-VMXON → VMfail(15) (VMfailInvalid without a current VMCS); CR0/CR4 against
   * the nested FIXED0/FIXED1 MSRs → #GP(0); IA32_FEATURE_CONTROL without LOCK and VMXON-outside-SMX →
   * #GP(0); operand fault; address not 4-KiB aligned or beyond MAXPHYADDR → VMfailInvalid; first word
   * unreadable or not VMCS12_REVISION → VMfailInvalid; then L1 is in VMX operation: VMsucceed.
   */
  vmxon(ctx: VmxInstructionContext, ptrLo: number, ptrHi: number): VmxOutcome {
    this.#tally(EV.EMULATED_VMXON);
    this.#requireL1("VMXON");
    const state = this.state;
    if ((ctx.cr4Lo & CR4.VMXE) === 0) return VMX_OUTCOME.UD;
    if (ctx.cpl !== 0) return VMX_OUTCOME.GP;
    if (state.vmxon) return this.#fail(ctx, ERR.VMXON_IN_VMX_ROOT);
    // kvm: nested_host_cr0_valid / nested_host_cr4_valid (since 6.1 #GP, after the VMfail above).
    const caps = this.capabilities;
    if (
      !crFixedBitsOk(ctx.cr0Lo, ctx.cr0Hi, caps.cr0Fixed0, caps.cr0Fixed1) ||
      !crFixedBitsOk(ctx.cr4Lo, ctx.cr4Hi, caps.cr4Fixed0, caps.cr4Fixed1)
    ) {
      return VMX_OUTCOME.GP;
    }
    if ((ctx.featureControl & VMXON_NEEDED_FEATURES) !== VMXON_NEEDED_FEATURES) return VMX_OUTCOME.GP;
    if (ctx.operandFault !== 0) return ctx.operandFault;
    // SDM 31.3 VMXON; kvm: page_address_valid, then kvm_read_guest of the revision identifier.
    const gpa = this.#pageAddress(ptrLo, ptrHi);
    if (gpa < 0) return this.#failInvalid(ctx);
    if (gpa + 4 > this.memory.size || this.memory.read32(gpa) !== VMCS12_REVISION) {
      return this.#failInvalid(ctx);
    }
    // kvm: enter_vmx_operation (vmcs02, the caches and the hardware shadow VMCS are not modelled here).
    state.vmxonPtr = gpa;
    state.vmxon = true;
    return this.#succeed(ctx);
  }

  /**
   * VMXOFF (kvm: handle_vmxoff → free_nested). Permission (#UD / #GP(0)), then leave VMX operation:
   * the VMXON and current-VMCS pointers are forgotten and the current vmcs12 is **not** written back
   * to L1's memory. With shadowing and a current VMCS, shadowing is turned off in vmcs01 (kvm:
   * vmx_disable_shadow_vmcs, no copy); without a current VMCS it is already off and KVM's redundant
   * link-pointer VMWRITE is not reported. Never VMfails.
   */
  vmxoff(ctx: VmxInstructionContext): VmxOutcome {
    this.#tally(EV.EMULATED_VMXOFF);
    this.#requireL1("VMXOFF");
    const denied = this.#checkPermission(ctx);
    if (denied !== 0) return denied;
    const state = this.state;
    if (this.sync.shadowingEnabled && state.hasCurrentVmcs) this.sync.disableShadowing();
    state.vmxon = false;
    state.vmxonPtr = INVALID_GPA;
    state.currentVmptr = INVALID_GPA;
    return this.#succeed(ctx);
  }

  /**
   * VMCLEAR (kvm: handle_vmclear). Permission; operand fault; not 4-KiB aligned or beyond MAXPHYADDR →
   * VMfail(2); the VMXON pointer → VMfail(3); if it is the current VMCS, release it (sync, write the
   * cached vmcs12 back); write 0 to launch_state in L1's memory (errors ignored); VMsucceed.
   */
  vmclear(ctx: VmxInstructionContext, ptrLo: number, ptrHi: number): VmxOutcome {
    this.#tally(EV.EMULATED_VMCLEAR);
    this.#requireL1("VMCLEAR");
    const denied = this.#checkPermission(ctx);
    if (denied !== 0) return denied;
    if (ctx.operandFault !== 0) return ctx.operandFault;
    const gpa = this.#pageAddress(ptrLo, ptrHi);
    if (gpa < 0) return this.#fail(ctx, ERR.VMCLEAR_INVALID_ADDRESS);
    const state = this.state;
    if (gpa === state.vmxonPtr) return this.#fail(ctx, ERR.VMCLEAR_VMXON_POINTER);
    if (gpa === state.currentVmptr) this.#releaseCurrentVmcs();
    // kvm: kvm_vcpu_write_guest of launch_state; a failed write is silently ignored.
    const launchState = gpa + VMCS12_HEADER.LAUNCH_STATE_OFFSET;
    if (launchState + 4 <= this.memory.size) {
      this.memory.write32(launchState, 0);
      this.#tally(EV.VMCS12_WRITE);
    }
    return this.#succeed(ctx);
  }

  /**
   * VMPTRLD (kvm: handle_vmptrld). Permission; operand fault; bad address → VMfail(9); the VMXON
   * pointer → VMfail(10); the current pointer again → VMsucceed with nothing reloaded. Otherwise: the
   * 4 KiB not backed by L1's memory → VMfail(11); header revision ≠ VMCS12_REVISION, or its
   * shadow-VMCS bit set while L1 is not offered VMCS shadowing → VMfail(11); release the old current
   * VMCS; copy the 4-KiB image into the cached vmcs12; make it current (kvm: set_current_vmptr:
   * shadowing enabled for it, dirty_vmcs12 set); VMsucceed.
   */
  vmptrld(ctx: VmxInstructionContext, ptrLo: number, ptrHi: number): VmxOutcome {
    this.#tally(EV.EMULATED_VMPTRLD);
    this.#requireL1("VMPTRLD");
    const denied = this.#checkPermission(ctx);
    if (denied !== 0) return denied;
    if (ctx.operandFault !== 0) return ctx.operandFault;
    const gpa = this.#pageAddress(ptrLo, ptrHi);
    if (gpa < 0) return this.#fail(ctx, ERR.VMPTRLD_INVALID_ADDRESS);
    const state = this.state;
    if (gpa === state.vmxonPtr) return this.#fail(ctx, ERR.VMPTRLD_VMXON_POINTER);
    if (gpa !== state.currentVmptr) {
      const memory = this.memory;
      // kvm: kvm_gfn_to_hva_cache_init fails without a memslot ("reads return all ones").
      if (gpa + VMCS12_SIZE > memory.size) return this.#fail(ctx, ERR.VMPTRLD_BAD_REVISION_ID);
      const header = memory.read32(gpa + VMCS12_HEADER.REVISION_OFFSET);
      this.#tally(EV.VMCS12_READ);
      if (
        (header & VMCS12_HEADER.REVISION_MASK) !== VMCS12_REVISION ||
        (header >= VMCS12_HEADER.SHADOW_VMCS && !this.#shadowVmcsOffered)
      ) {
        return this.#fail(ctx, ERR.VMPTRLD_BAD_REVISION_ID);
      }
      this.#releaseCurrentVmcs();
      const vmcs12 = state.cachedVmcs12;
      vmcs12.readFrom(memory, gpa);
      this.#tally(EV.VMCS12_IMAGE_LOAD);
      // kvm: set_current_vmptr.
      state.currentVmptr = gpa;
      this.sync.currentVmcsLoaded(vmcs12); // also marks vmcs12 dirty (kvm: set_current_vmptr)
    }
    return this.#succeed(ctx);
  }

  /**
   * VMPTRST (kvm: handle_vmptrst). Permission; the current-VMCS pointer (all ones when there is none)
   * goes to `valueLo`/`valueHi` for the caller to store (8 bytes); operand fault; VMsucceed.
   */
  vmptrst(ctx: VmxInstructionContext): VmxOutcome {
    this.#tally(EV.EMULATED_VMPTRST);
    this.#requireL1("VMPTRST");
    const denied = this.#checkPermission(ctx);
    if (denied !== 0) return denied;
    const current = this.state.currentVmptr;
    if (current === INVALID_GPA) {
      this.valueLo = 0xffffffff;
      this.valueHi = 0xffffffff;
    } else {
      this.valueLo = current >>> 0;
      this.valueHi = Math.floor(current / 2 ** 32);
    }
    if (ctx.operandFault !== 0) return ctx.operandFault;
    return this.#succeed(ctx);
  }

  /**
   * VMREAD (kvm: handle_vmread), from L1 or (guest mode) from L2 under L1's VMCS shadowing, of the
   * field encoding held in a register (`fieldLo`/`fieldHi`). Permission; no current VMCS, or L2 and
   * vmcs12's VMCS link pointer all ones → VMfailInvalid; an encoding vmcs12 does not store (any bit
   * from 15 up included) → VMfail(12), recorded in vmcs12 even for L2; in L1, a rarely synced guest
   * field first pulls the pending vmcs02 values; the value (zero-extended, from vmcs12 or, for L2, the
   * cached shadow vmcs12) goes to `valueLo`/`valueHi`; a memory destination's fault; VMsucceed.
   */
  vmread(ctx: VmxInstructionContext, fieldLo: number, fieldHi = 0): VmxOutcome {
    this.#tally(EV.EMULATED_VMREAD);
    const denied = this.#checkPermission(ctx);
    if (denied !== 0) return denied;
    const state = this.state;
    if (!state.hasCurrentVmcs || (state.guestMode && this.#linkPointerIsInvalid())) {
      return this.#failInvalid(ctx);
    }
    const field = fieldLo >>> 0;
    const vmcs12 = state.guestMode ? state.cachedShadowVmcs12 : state.cachedVmcs12;
    // kvm: get_vmcs12_field_offset (a 64-bit encoding with bits 63:32 set is unsupported too).
    const offset = ctx.mode64 && fieldHi >>> 0 !== 0 ? -1 : vmcs12.offsetOf(field);
    if (offset < 0) return this.#fail(ctx, ERR.UNSUPPORTED_VMCS_COMPONENT);
    // kvm: is_vmcs12_ext_field → copy_vmcs02_to_vmcs12_rare.
    if (!state.guestMode && this.sync.isRareField(field)) this.sync.syncRareFieldsIfPending(vmcs12);
    this.valueLo = vmcs12.readAt(offset, vmcsFieldWidth(field));
    // Outside 64-bit mode only 32 bits reach the register or memory (kvm: kvm_register_write, len 4).
    this.valueHi = ctx.mode64 ? vmcs12.hi : 0;
    this.#tally(EV.VMCS12_READ);
    if (ctx.operandFault !== 0) return ctx.operandFault;
    return this.#succeed(ctx);
  }

  /**
   * VMWRITE (kvm: handle_vmwrite), from L1 or (guest mode) from L2, of `valueLo`/`valueHi` (register
   * or memory source; only 32 bits outside 64-bit mode) to the field encoding in a register.
   * Permission; no current VMCS, or L2 with link pointer all ones → VMfailInvalid; source operand
   * fault; unsupported encoding → VMfail(12); VM-exit-information field while L1's IA32_VMX_MISC bit
   * 29 is clear → VMfail(13); in L1, a field outside the shadow read/write list first pulls the
   * pending vmcs02 values; AR-byte fields keep bits 0x1f0ff; store into vmcs12 (L2: the cached shadow
   * vmcs12); in L1, a field outside the read/write list is written through to the hardware shadow
   * VMCS if it is shadow read-only, and dirties vmcs12; VMsucceed.
   */
  vmwrite(
    ctx: VmxInstructionContext,
    fieldLo: number,
    fieldHi: number,
    valueLo: number,
    valueHi: number,
  ): VmxOutcome {
    this.#tally(EV.EMULATED_VMWRITE);
    const denied = this.#checkPermission(ctx);
    if (denied !== 0) return denied;
    const state = this.state;
    if (!state.hasCurrentVmcs || (state.guestMode && this.#linkPointerIsInvalid())) {
      return this.#failInvalid(ctx);
    }
    if (ctx.operandFault !== 0) return ctx.operandFault;
    let lo = valueLo >>> 0;
    let hi = ctx.mode64 ? valueHi >>> 0 : 0;
    const field = fieldLo >>> 0;
    const inL1 = !state.guestMode;
    const vmcs12 = inL1 ? state.cachedVmcs12 : state.cachedShadowVmcs12;
    const offset = ctx.mode64 && fieldHi >>> 0 !== 0 ? -1 : vmcs12.offsetOf(field);
    if (offset < 0) return this.#fail(ctx, ERR.UNSUPPORTED_VMCS_COMPONENT);
    if (isReadOnlyField(field) && !this.#vmwriteAnyField) {
      return this.#fail(ctx, ERR.VMWRITE_READ_ONLY_COMPONENT);
    }
    const sync = this.sync;
    // kvm: is_shadow_field_rw — list membership, whether or not shadowing is enabled.
    const dirties = inL1 && !sync.isShadowRw(field);
    if (dirties) sync.syncRareFieldsIfPending(vmcs12);
    if (this.maskArBytesOnVmwrite && field >= FIELD_GUEST_ES_AR_BYTES && field <= FIELD_GUEST_TR_AR_BYTES) {
      lo = (lo & AR_BYTES_KEPT) >>> 0;
      hi = 0;
    }
    vmcs12.writeAt(offset, vmcsFieldWidth(field), lo, hi);
    this.#tally(EV.VMCS12_WRITE);
    if (dirties) {
      if (sync.shadowingEnabled && sync.isShadowRo(field)) sync.writeThroughReadOnly(field, lo, hi);
      sync.markVmcs12Dirty();
    }
    return this.#succeed(ctx);
  }

  /** VMLAUNCH (kvm: handle_vmlaunch → nested_vmx_run(launch = true)); see `#run`. */
  vmlaunch(ctx: VmxInstructionContext): VmxOutcome {
    this.#tally(EV.EMULATED_VMLAUNCH);
    return this.#run(ctx, 1);
  }

  /** VMRESUME (kvm: handle_vmresume → nested_vmx_run(launch = false)); see `#run`. */
  vmresume(ctx: VmxInstructionContext): VmxOutcome {
    this.#tally(EV.EMULATED_VMRESUME);
    return this.#run(ctx, 0);
  }

  /**
   * INVEPT (kvm: handle_invept) with the type from a register and the descriptor's EPTP from memory.
   * EPT or INVEPT not offered to L1 → #UD; permission; a type ≥ 32 or not offered (bit 25 single-context,
   * bit 26 all-context of IA32_VMX_EPT_VPID_CAP) → VMfail(28); descriptor fault (the descriptor is
   * read even for all-context); single-context with an EPTP KVM would not accept
   * (kvm: nested_vmx_check_eptp) → VMfail(28); VMsucceed (freeing the matching nested-EPT roots is
   * the caller's).
   */
  invept(
    ctx: VmxInstructionContext,
    typeLo: number,
    typeHi: number,
    eptpLo: number,
    eptpHi: number,
  ): VmxOutcome {
    this.#tally(EV.EMULATED_INVEPT);
    this.#requireL1("INVEPT");
    if (!this.#inveptOffered) return VMX_OUTCOME.UD;
    const denied = this.#checkPermission(ctx);
    if (denied !== 0) return denied;
    const type = this.#extentType(ctx, typeLo, typeHi, this.#inveptTypes);
    if (type < 0) return this.#fail(ctx, ERR.INVALID_INVEPT_INVVPID_OPERAND);
    if (ctx.operandFault !== 0) return ctx.operandFault;
    if (
      type === INVEPT_SINGLE_CONTEXT &&
      checkEptPointer(eptpLo >>> 0, eptpHi >>> 0, this.#eptCaps, this.maxPhysAddr) !== null
    ) {
      return this.#fail(ctx, ERR.INVALID_INVEPT_INVVPID_OPERAND);
    }
    return this.#succeed(ctx);
  }

  /**
   * INVVPID (kvm: handle_invvpid) with the type from a register and the descriptor (VPID in bits 63:0
   * of the first quadword, linear address in the second) from memory. VPID or INVVPID not offered →
   * #UD; permission; a type ≥ 32 or not offered (bits 40..43) → VMfail(28); descriptor fault; VPID ≥
   * 2^16 → VMfail(28); individual-address with VPID 0 or an address not canonical for the host CPU's
   * width (57 bits on an LA57 host, else 48; L1's CR4.LA57 does not matter) → VMfail(28);
   * single-context (retaining globals or not) with VPID 0 → VMfail(28); all-context: any VPID;
   * VMsucceed (the flush of vpid02 is the caller's).
   */
  invvpid(
    ctx: VmxInstructionContext,
    typeLo: number,
    typeHi: number,
    vpidLo: number,
    vpidHi: number,
    _linearLo: number,
    linearHi: number,
  ): VmxOutcome {
    this.#tally(EV.EMULATED_INVVPID);
    this.#requireL1("INVVPID");
    if (!this.#invvpidOffered) return VMX_OUTCOME.UD;
    const denied = this.#checkPermission(ctx);
    if (denied !== 0) return denied;
    const type = this.#extentType(ctx, typeLo, typeHi, this.#invvpidTypes);
    if (type < 0) return this.#fail(ctx, ERR.INVALID_INVEPT_INVVPID_OPERAND);
    if (ctx.operandFault !== 0) return ctx.operandFault;
    if (vpidHi >>> 0 !== 0 || vpidLo >>> 0 > 0xffff)
      return this.#fail(ctx, ERR.INVALID_INVEPT_INVVPID_OPERAND);
    const vpid = vpidLo >>> 0;
    switch (type) {
      case INVVPID_INDIVIDUAL_ADDRESS: {
        // kvm: handle_invvpid → is_noncanonical_invlpg_address (the host's width, not L1's paging).
        if (vpid === 0 || !isCanonical(linearHi, this.invalidationAddressBits)) {
          return this.#fail(ctx, ERR.INVALID_INVEPT_INVVPID_OPERAND);
        }
        break;
      }
      case INVVPID_SINGLE_CONTEXT:
      case INVVPID_SINGLE_CONTEXT_RETAINING_GLOBALS:
        if (vpid === 0) return this.#fail(ctx, ERR.INVALID_INVEPT_INVVPID_OPERAND);
        break;
      case INVVPID_ALL_CONTEXTS:
        break;
    }
    return this.#succeed(ctx);
  }

  /**
   * nested_vmx_run up to and including its checks: permission; no current VMCS → VMfailInvalid;
   * vmcs12's header marks it a shadow VMCS → VMfailInvalid (nothing recorded); pull L1's shadowed
   * writes (kvm: copy_shadow_to_vmcs12); blocking by MOV SS → VMfail(26); launch_state equal to
   * `launch` (VMLAUNCH of a launched VMCS → 4, VMRESUME of a clear one → 5; any other launch_state
   * value passes both); the control and host-state checks (7 / 8); then nested_run_pending is set and
   * the nested VM entry takes over.
   */
  #run(ctx: VmxInstructionContext, launch: 0 | 1): VmxOutcome {
    this.#requireL1(launch ? "VMLAUNCH" : "VMRESUME");
    const denied = this.#checkPermission(ctx);
    if (denied !== 0) return denied;
    const state = this.state;
    if (!state.hasCurrentVmcs) return this.#failInvalid(ctx);
    const vmcs12 = state.cachedVmcs12;
    this.#tally(EV.VMCS12_READ);
    if (vmcs12.shadowVmcs) return this.#failInvalid(ctx);
    if (this.sync.shadowingEnabled) this.sync.copyShadowToVmcs12(vmcs12);
    if (ctx.movSsBlocking) return this.#fail(ctx, ERR.ENTRY_EVENTS_BLOCKED_BY_MOV_SS);
    this.#tally(EV.VMCS12_READ);
    if (vmcs12.launchState === launch) {
      return this.#fail(ctx, launch ? ERR.VMLAUNCH_NONCLEAR_VMCS : ERR.VMRESUME_NONLAUNCHED_VMCS);
    }
    const error = this.#entryChecks(vmcs12);
    if (error !== 0) return this.#fail(ctx, error);
    state.nestedRunPending = true;
    return VMX_OUTCOME.ENTER_NON_ROOT;
  }

  /**
   * kvm: nested_release_vmcs12. Pull the pending rare fields from vmcs02, then (the port, with
   * shadowing) the shadow VMCS's fields and disable shadowing, write the 4-KiB cached vmcs12 back to
   * L1's memory, and forget the current pointer.
   */
  #releaseCurrentVmcs(): void {
    const state = this.state;
    const gpa = state.currentVmptr;
    if (gpa === INVALID_GPA) return;
    const vmcs12 = state.cachedVmcs12;
    const sync = this.sync;
    sync.syncRareFieldsIfPending(vmcs12);
    sync.currentVmcsReleased(vmcs12);
    const memory = this.memory;
    if (gpa + VMCS12_SIZE <= memory.size) {
      vmcs12.writeTo(memory, gpa);
      this.#tally(EV.VMCS12_IMAGE_FLUSH);
    }
    state.currentVmptr = INVALID_GPA;
  }

  /** kvm: nested_vmx_check_permission — #UD before VMXON, #GP(0) at CPL > 0; else 0. */
  #checkPermission(ctx: VmxInstructionContext): VmxOutcome {
    if (!this.state.vmxon) return VMX_OUTCOME.UD;
    if (ctx.cpl !== 0) return VMX_OUTCOME.GP;
    return 0;
  }

  /** vmcs12's VMCS link pointer is all ones (kvm: vmcs_link_pointer == INVALID_GPA). */
  #linkPointerIsInvalid(): boolean {
    const vmcs12 = this.state.cachedVmcs12;
    const lo = vmcs12.readAt(this.#linkPointerOffset, FIELD_WIDTH.U64);
    this.#tally(EV.VMCS12_READ);
    return lo === 0xffffffff && vmcs12.hi === 0xffffffff;
  }

  /**
   * The INVEPT/INVVPID type from its register (32 bits outside 64-bit mode), or -1 when it is ≥ 32 or
   * not among `types` (kvm: `type >= 32 || !(types & (1 << type))`).
   */
  #extentType(ctx: VmxInstructionContext, typeLo: number, typeHi: number, types: number): number {
    const lo = typeLo >>> 0;
    if ((ctx.mode64 && typeHi >>> 0 !== 0) || lo >= 32) return -1;
    return (types & (1 << lo)) !== 0 ? lo : -1;
  }

  /**
   * The address as a number if it is 4-KiB aligned and below 2^MAXPHYADDR, else -1 (kvm:
   * page_address_valid; SDM 31.3 VMXON/VMCLEAR/VMPTRLD operand checks).
   */
  #pageAddress(lo: number, hi: number): number {
    const l = lo >>> 0;
    const h = hi >>> 0;
    if ((l & 0xfff) !== 0 || h >= this.#addressHiLimit) return -1;
    return h * 2 ** 32 + l;
  }

  /** L2's VMX instructions other than VMREAD/VMWRITE always exit to L1 (kvm: nested_vmx_reflect_vmexit). */
  #requireL1(instruction: string): void {
    if (this.state.guestMode) {
      throw new Error(`${instruction} from L2 is reflected to L1, not emulated by L0`);
    }
  }

  /** kvm: nested_vmx_succeed. */
  #succeed(ctx: VmxInstructionContext): VmxOutcome {
    ctx.rflags = rflagsAfterVmxResult(ctx.rflags, VMX_RESULT.SUCCEED);
    return VMX_RESULT.SUCCEED;
  }

  /** kvm: nested_vmx_failInvalid. */
  #failInvalid(ctx: VmxInstructionContext): VmxOutcome {
    ctx.rflags = rflagsAfterVmxResult(ctx.rflags, VMX_RESULT.FAIL_INVALID);
    return VMX_RESULT.FAIL_INVALID;
  }

  /**
   * kvm: nested_vmx_fail — VMfailInvalid without a current VMCS, else VMfailValid(error): ZF and the
   * error number in vmcs12's VM_INSTRUCTION_ERROR (which no shadow VMCS holds).
   */
  #fail(ctx: VmxInstructionContext, error: number): VmxOutcome {
    const state = this.state;
    if (!state.hasCurrentVmcs) return this.#failInvalid(ctx);
    state.cachedVmcs12.writeAt(this.#errorOffset, FIELD_WIDTH.U32, error);
    this.#tally(EV.VMCS12_WRITE);
    ctx.rflags = rflagsAfterVmxResult(ctx.rflags, error);
    return error;
  }

  /** Counts one event: straight into a counting meter's table, else through `Meter.count`. */
  #tally(event: number): void {
    const counts = this.#counts;
    if (counts !== null) counts[event] = counts[event]! + 1;
    else this.meter.count(event);
  }
}

/**
 * Whether a 64-bit linear address (high word given; the low word cannot matter for 48 or 57 bits) is
 * canonical for `bits` implemented bits: bits 63:bits-1 all equal (SDM 3.3.7.1; kvm:
 * __is_canonical_address).
 */
function isCanonical(hi: number, bits: number): boolean {
  const top = (hi | 0) >> (bits - 1 - 32);
  return top === 0 || top === -1;
}
