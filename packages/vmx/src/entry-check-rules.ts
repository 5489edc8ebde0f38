import {
  CR0,
  CR4,
  EFER,
  EPT_MEMORY_TYPE,
  EPTP,
  MSR,
  PDPTE_RESERVED_LO,
  RFLAGS,
  reservedAddressMaskHigh,
  SEGMENT_AR,
  SEGMENT_TYPE,
  VECTOR,
} from "@nestvisor/x86-arch";
import { controlsAllowed, EPT_VPID_CAP_LO, fixedBitsOk, VMFUNC_CTLS } from "./capability-msrs";
import {
  CPU_BASED_CTLS,
  PIN_BASED_CTLS,
  SECONDARY_EXEC_CTLS,
  VM_ENTRY_CTLS,
  VM_EXIT_CTLS,
  VMX_MISC,
  vmxMiscCr3Count,
  vmxMiscMaxMsrListEntries,
} from "./controls";
import {
  DEBUGCTL,
  ENTRY_FIELD,
  type EntryCheckContext,
  GUEST_SEGMENT,
  isBacked,
  isCanonical,
  isLegalAlignedGpa,
  isLegalGpa,
  isValidPat,
  validEferMask,
} from "./entry-check-context";
import { ENTRY_FAIL, EVENT_TYPE, INTR_INFO } from "./exit-qualification";
import { GUEST_ACTIVITY } from "./guest-activity-state";
import { VMCS12_HEADER, VMCS12_REVISION, VMCS12_SIZE } from "./vmcs12-layout";

/**
 * The consistency checks of a nested VM entry (VMLAUNCH/VMRESUME by L1), one named rule each, as
 * KVM 6.12 applies them to vmcs12 (arch/x86/kvm/vmx/nested.c; reference kvm-vmx.md §9) plus the
 * checks KVM leaves to the CPU, which sees them on vmcs02 (fields KVM copies from vmcs12) and whose
 * failures reach L1 unchanged. `ENTRY_CHECK_RULES` lists them in the order KVM reaches them;
 * `entry-checks.ts` runs them.
 *
 * Categories and what L1 sees (SDM Vol. 3C 27.2, 27.3, 27.8; 26.x in older editions):
 * - controls → VMfailValid 7 (also a vmcs02 control the CPU rejects: "late" VM-Fail);
 * - address-space size and host state → VMfailValid 8;
 * - guest state → VM-entry-failure VM exit 33 with the rule's qualification (0, 2 = PDPTE, 4 = VMCS
 *   link pointer);
 * - MSR loading → VM-entry-failure VM exit 34 with the 1-based index of the failing entry.
 */

/** What a failing rule makes L1 see. */
export const ENTRY_CHECK_CATEGORY = {
  /** VMfailValid(7), VM-instruction error "invalid control field(s)". */
  CONTROLS: "controls",
  /** VMfailValid(8), "invalid host-state field(s)". */
  ADDRESS_SPACE_SIZE: "address-space-size",
  /** VMfailValid(8). */
  HOST_STATE: "host-state",
  /** VM exit 33 (0x80000021), exit qualification from the rule. */
  GUEST_STATE: "guest-state",
  /** VM exit 34 (0x80000022), exit qualification = failing entry index. */
  MSR_LOAD: "msr-load",
} as const;
export type EntryCheckCategory = (typeof ENTRY_CHECK_CATEGORY)[keyof typeof ENTRY_CHECK_CATEGORY];

/** Where in KVM's nested VM entry a rule is evaluated, in execution order. */
export const ENTRY_CHECK_STAGE = {
  /** nested_vmx_run → nested_vmx_check_controls. */
  CONTROLS: "check-controls",
  /** nested_vmx_run → nested_vmx_check_address_space_size. */
  ADDRESS_SPACE_SIZE: "check-address-space-size",
  /** nested_vmx_run → nested_vmx_check_host_state. */
  HOST_STATE: "check-host-state",
  /** nested_vmx_enter_non_root_mode → nested_vmx_check_guest_state. */
  GUEST_STATE: "check-guest-state",
  /** nested_vmx_enter_non_root_mode → prepare_vmcs02. */
  PREPARE_VMCS02: "prepare-vmcs02",
  /** nested_vmx_enter_non_root_mode → nested_vmx_load_msr. */
  LOAD_MSRS: "load-msrs",
  /** The CPU's own checks when KVM enters L2 with vmcs02 (nested_early_check=0, the default). */
  HARDWARE: "hardware-vmcs02",
} as const;
export type EntryCheckStage = (typeof ENTRY_CHECK_STAGE)[keyof typeof ENTRY_CHECK_STAGE];

/** One VM-entry consistency check. */
export interface EntryCheckRule {
  /** Stable kebab-case identifier, e.g. "controls.pin.reserved". */
  readonly id: string;
  readonly category: EntryCheckCategory;
  readonly stage: EntryCheckStage;
  /** One line: what must hold. */
  readonly description: string;
  /** The KVM function that makes the check, or the hardware path that reports it. */
  readonly kvm: string;
  /** The SDM section (current numbering, the pre-2022 one in parentheses). */
  readonly sdm: string;
  /** Exit qualification of a guest-state failure (an ENTRY_FAIL code); 0 in other categories. */
  readonly qualification: number;
  /**
   * 0 when the check passes; otherwise 1, or for the MSR-load rule the 1-based index of the
   * failing entry. A rule whose precondition does not hold passes.
   */
  readonly test: (ctx: EntryCheckContext) => number;
}

const PASS = 0;
const FAIL = 1;

function failIf(bad: boolean): number {
  return bad ? FAIL : PASS;
}

const P = PIN_BASED_CTLS;
const C = CPU_BASED_CTLS;
const S2 = SECONDARY_EXEC_CTLS;
const X = VM_EXIT_CTLS;
const N = VM_ENTRY_CTLS;
const F = ENTRY_FIELD;
const G = GUEST_SEGMENT;
const AR = SEGMENT_AR;
const TYPE = SEGMENT_TYPE;

const SDM_EXEC = "SDM 27.2.1.1 (26.2.1.1)";
const SDM_EXIT = "SDM 27.2.1.2 (26.2.1.2)";
const SDM_ENTRY = "SDM 27.2.1.3 (26.2.1.3)";
const SDM_HOST_CR = "SDM 27.2.2 (26.2.2)";
const SDM_HOST_SEG = "SDM 27.2.3 (26.2.3)";
const SDM_ADDR_SIZE = "SDM 27.2.4 (26.2.4)";
const SDM_GUEST_CR = "SDM 27.3.1.1 (26.3.1.1)";
const SDM_GUEST_SEG = "SDM 27.3.1.2 (26.3.1.2)";
const SDM_GUEST_DT = "SDM 27.3.1.3 (26.3.1.3)";
const SDM_GUEST_RIP = "SDM 27.3.1.4 (26.3.1.4)";
const SDM_GUEST_NONREG = "SDM 27.3.1.5 (26.3.1.5)";
const SDM_GUEST_PDPTE = "SDM 27.3.1.6 (26.3.1.6)";
const SDM_MSR_LOAD = "SDM 27.4 (26.4)";

const KVM_EXEC = "nested_check_vm_execution_controls";
const KVM_EXIT = "nested_check_vm_exit_controls";
const KVM_ENTRY = "nested_check_vm_entry_controls";
const KVM_HOST = "nested_vmx_check_host_state";
const KVM_GUEST = "nested_vmx_check_guest_state";
const HW_CONTROLS = "hardware VM-Fail on vmcs02 → nested_vmx_vmexit VMfailValid(7)";
const HW_GUEST = "hardware VM-entry failure on vmcs02, reflected by nested_vmx_reflect_vmexit";

// ---------------------------------------------------------------------------------------------
// Shared predicates (kvm: nested.h helpers)
// ---------------------------------------------------------------------------------------------

/** vmcs02 runs L2 as an unrestricted guest (kvm: is_unrestricted_guest in guest mode). */
function unrestrictedGuest(c: EntryCheckContext): boolean {
  return c.host.unrestrictedGuest && c.has2(S2.SECONDARY_EXEC_UNRESTRICTED_GUEST);
}

function ia32eGuest(c: EntryCheckContext): boolean {
  return (c.entry & N.VM_ENTRY_IA32E_MODE) !== 0;
}

function hostAddressSpace64(c: EntryCheckContext): boolean {
  return (c.exit & X.VM_EXIT_HOST_ADDR_SPACE_SIZE) !== 0;
}

function guestV86(c: EntryCheckContext): boolean {
  return (c.read(F.GUEST_RFLAGS) & RFLAGS.VM) !== 0;
}

/** PAE paging as KVM sees L2 after loading CR0/CR4/EFER from vmcs12 (kvm: is_pae_paging). */
function paePaging(c: EntryCheckContext): boolean {
  const cr0 = c.read(F.GUEST_CR0);
  const cr4 = c.read(F.GUEST_CR4);
  return (cr0 & CR0.PG) !== 0 && (cr4 & CR4.PAE) !== 0 && !ia32eGuest(c);
}

/** kvm: nested_vmx_check_msr_switch — count 0, or a 16-byte aligned legal list whose last byte is legal. */
function msrSwitchOk(c: EntryCheckContext, countField: number, addrField: number): boolean {
  const count = c.read(countField);
  if (count === 0) return true;
  const lo = c.read(addrField);
  const hi = c.hi;
  if (!isLegalAlignedGpa(lo, hi, 16, c.maxPhysAddr)) return false;
  // Last byte: addr + 16 * count - 1, modulo 2^64 (count * 16 < 2^36).
  const bytesLo = (count << 4) >>> 0;
  const bytesHi = count >>> 28;
  const sumLo = lo + bytesLo - 1;
  const carry = Math.floor(sumLo / 4294967296);
  const lastHi = (hi + bytesHi + carry) >>> 0;
  return isLegalGpa(lastHi, c.maxPhysAddr);
}

/** kvm: nested_cr4_valid = fixed bits and __kvm_is_valid_cr4 (CPUID-reserved bits). */
function cr4Valid(c: EntryCheckContext, lo: number, hi: number): boolean {
  const f0 = c.caps.cr4Fixed0;
  const f1 = c.caps.cr4Fixed1;
  return (
    fixedBitsOk(lo, f0.lo, f1.lo) &&
    fixedBitsOk(hi, f0.hi, f1.hi) &&
    (lo & c.vcpu.cr4ReservedLo) === 0 &&
    (hi & c.vcpu.cr4ReservedHi) === 0
  );
}

/** kvm: kvm_vcpu_is_legal_cr3 — LAM's CR3 bits 61/62 are stripped when L1 can use LAM. */
function cr3Legal(c: EntryCheckContext, hi: number): boolean {
  const h = c.vcpu.lam ? hi & ~0x60000000 : hi;
  return isLegalGpa(h, c.maxPhysAddr);
}

/** kvm: kvm_valid_efer on a 64-bit EFER value, with L1's CPUID. */
function eferValid(c: EntryCheckContext, lo: number, hi: number): boolean {
  return hi === 0 && (lo & ~validEferMask(c.vcpu.cpu)) === 0;
}

/** kvm: kvm_valid_perf_global_ctrl — no bit outside L1's vPMU counters. */
function perfGlobalCtrlValid(c: EntryCheckContext, lo: number, hi: number): boolean {
  return (lo & ~c.vcpu.perfGlobalCtrlLo) === 0 && (hi & ~c.vcpu.perfGlobalCtrlHi) === 0;
}

// ---------------------------------------------------------------------------------------------
// VM-execution controls (kvm: nested_check_vm_execution_controls)
// ---------------------------------------------------------------------------------------------

// KVM checks against its nested.msrs *_ctls_low/high, which hold the TRUE capability values
// (the non-TRUE MSRs are derived from them for RDMSR; kvm: vmx_control_verify).
function pinReserved(c: EntryCheckContext): number {
  const m = c.caps.truePinbasedCtls;
  return failIf(controlsAllowed(m.lo, m.hi, c.pin) !== 0);
}

function procReserved(c: EntryCheckContext): number {
  const m = c.caps.trueProcbasedCtls;
  return failIf(controlsAllowed(m.lo, m.hi, c.proc) !== 0);
}

function proc2Reserved(c: EntryCheckContext): number {
  if ((c.proc & C.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS) === 0) return PASS;
  const m = c.caps.procbasedCtls2;
  return failIf(controlsAllowed(m.lo, m.hi, c.procRaw2) !== 0);
}

function cr3TargetCount(c: EntryCheckContext): number {
  return failIf(c.read(F.CR3_TARGET_COUNT) > vmxMiscCr3Count(c.caps.misc.lo));
}

function ioBitmaps(c: EntryCheckContext): number {
  if ((c.proc & C.CPU_BASED_USE_IO_BITMAPS) === 0) return PASS;
  return failIf(!c.pageAddressValid(F.IO_BITMAP_A) || !c.pageAddressValid(F.IO_BITMAP_B));
}

function msrBitmap(c: EntryCheckContext): number {
  if ((c.proc & C.CPU_BASED_USE_MSR_BITMAPS) === 0) return PASS;
  return failIf(!c.pageAddressValid(F.MSR_BITMAP));
}

function virtualApicAddress(c: EntryCheckContext): number {
  if ((c.proc & C.CPU_BASED_TPR_SHADOW) === 0) return PASS;
  return failIf(!c.pageAddressValid(F.VIRTUAL_APIC_PAGE_ADDR));
}

function apicAccessAddress(c: EntryCheckContext): number {
  if (!c.has2(S2.SECONDARY_EXEC_VIRTUALIZE_APIC_ACCESSES)) return PASS;
  return failIf(!c.pageAddressValid(F.APIC_ACCESS_ADDR));
}

const APICV_SECONDARY =
  S2.SECONDARY_EXEC_VIRTUALIZE_X2APIC_MODE |
  S2.SECONDARY_EXEC_APIC_REGISTER_VIRT |
  S2.SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY;

function postedInterrupts(c: EntryCheckContext): boolean {
  return (c.pin & P.PIN_BASED_POSTED_INTR) !== 0;
}

/** kvm: nested_vmx_check_apicv_controls runs its checks only when an APICv feature is on. */
function anyApicv(c: EntryCheckContext): boolean {
  return (c.proc2 & APICV_SECONDARY) !== 0 || postedInterrupts(c);
}

function x2apicWithApicAccess(c: EntryCheckContext): number {
  return failIf(
    anyApicv(c) &&
      c.has2(S2.SECONDARY_EXEC_VIRTUALIZE_X2APIC_MODE) &&
      c.has2(S2.SECONDARY_EXEC_VIRTUALIZE_APIC_ACCESSES),
  );
}

function vidNeedsExtIntExiting(c: EntryCheckContext): number {
  return failIf(
    anyApicv(c) &&
      c.has2(S2.SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY) &&
      (c.pin & P.PIN_BASED_EXT_INTR_MASK) === 0,
  );
}

function postedNeedsVid(c: EntryCheckContext): number {
  return failIf(postedInterrupts(c) && !c.has2(S2.SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY));
}

function postedNeedsAck(c: EntryCheckContext): number {
  return failIf(postedInterrupts(c) && (c.exit & X.VM_EXIT_ACK_INTR_ON_EXIT) === 0);
}

function postedVector(c: EntryCheckContext): number {
  return failIf(postedInterrupts(c) && (c.read(F.POSTED_INTR_NV) & 0xff00) !== 0);
}

function postedDescriptor(c: EntryCheckContext): number {
  if (!postedInterrupts(c)) return PASS;
  const lo = c.read(F.POSTED_INTR_DESC_ADDR);
  return failIf(!isLegalAlignedGpa(lo, c.hi, 64, c.maxPhysAddr));
}

function apicvNeedsTprShadow(c: EntryCheckContext): number {
  return failIf(anyApicv(c) && (c.proc & C.CPU_BASED_TPR_SHADOW) === 0);
}

function virtualNmisNeedNmiExiting(c: EntryCheckContext): number {
  return failIf((c.pin & P.PIN_BASED_NMI_EXITING) === 0 && (c.pin & P.PIN_BASED_VIRTUAL_NMIS) !== 0);
}

function nmiWindowNeedsVirtualNmis(c: EntryCheckContext): number {
  return failIf((c.pin & P.PIN_BASED_VIRTUAL_NMIS) === 0 && (c.proc & C.CPU_BASED_NMI_WINDOW_EXITING) !== 0);
}

function pmlNeedsEpt(c: EntryCheckContext): number {
  return failIf(c.has2(S2.SECONDARY_EXEC_ENABLE_PML) && !c.has2(S2.SECONDARY_EXEC_ENABLE_EPT));
}

function pmlAddress(c: EntryCheckContext): number {
  if (!c.has2(S2.SECONDARY_EXEC_ENABLE_PML)) return PASS;
  return failIf(!c.pageAddressValid(F.PML_ADDRESS));
}

function unrestrictedNeedsEpt(c: EntryCheckContext): number {
  return failIf(c.has2(S2.SECONDARY_EXEC_UNRESTRICTED_GUEST) && !c.has2(S2.SECONDARY_EXEC_ENABLE_EPT));
}

function modeBasedEptNeedsEpt(c: EntryCheckContext): number {
  return failIf(c.has2(S2.SECONDARY_EXEC_MODE_BASED_EPT_EXEC) && !c.has2(S2.SECONDARY_EXEC_ENABLE_EPT));
}

function shadowVmcsBitmaps(c: EntryCheckContext): number {
  if (!c.has2(S2.SECONDARY_EXEC_SHADOW_VMCS)) return PASS;
  return failIf(!c.pageAddressValid(F.VMREAD_BITMAP) || !c.pageAddressValid(F.VMWRITE_BITMAP));
}

function vpidNonZero(c: EntryCheckContext): number {
  return failIf(c.has2(S2.SECONDARY_EXEC_ENABLE_VPID) && c.read(F.VIRTUAL_PROCESSOR_ID) === 0);
}

function saveTimerNeedsTimer(c: EntryCheckContext): number {
  return failIf(
    (c.pin & P.PIN_BASED_VMX_PREEMPTION_TIMER) === 0 && (c.exit & X.VM_EXIT_SAVE_VMX_PREEMPTION_TIMER) !== 0,
  );
}

// kvm: nested_vmx_check_eptp, in its order: memory type, walk length, reserved bits, A/D.
function eptpMemoryType(c: EntryCheckContext): number {
  if (!c.has2(S2.SECONDARY_EXEC_ENABLE_EPT)) return PASS;
  const type = c.read(F.EPT_POINTER) & EPTP.MEMORY_TYPE_MASK;
  const caps = c.caps.eptVpidCap.lo;
  if (type === EPT_MEMORY_TYPE.UC) return failIf((caps & EPT_VPID_CAP_LO.VMX_EPTP_UC_BIT) === 0);
  if (type === EPT_MEMORY_TYPE.WB) return failIf((caps & EPT_VPID_CAP_LO.VMX_EPTP_WB_BIT) === 0);
  return FAIL;
}

function eptpWalkLength(c: EntryCheckContext): number {
  if (!c.has2(S2.SECONDARY_EXEC_ENABLE_EPT)) return PASS;
  const levels = ((c.read(F.EPT_POINTER) >>> EPTP.WALK_LENGTH_SHIFT) & EPTP.WALK_LENGTH_MASK) + 1;
  const caps = c.caps.eptVpidCap.lo;
  if (levels === 4) return failIf((caps & EPT_VPID_CAP_LO.VMX_EPT_PAGE_WALK_4_BIT) === 0);
  if (levels === 5) return failIf((caps & EPT_VPID_CAP_LO.VMX_EPT_PAGE_WALK_5_BIT) === 0);
  return FAIL;
}

function eptpReserved(c: EntryCheckContext): number {
  if (!c.has2(S2.SECONDARY_EXEC_ENABLE_EPT)) return PASS;
  const lo = c.read(F.EPT_POINTER);
  // Bits 11:7 (bit 7 too: KVM never offers supervisor shadow-stack control) and bits above MAXPHYADDR.
  return failIf(((lo >>> 7) & 0x1f) !== 0 || !isLegalGpa(c.hi, c.maxPhysAddr));
}

function eptpAccessedDirty(c: EntryCheckContext): number {
  if (!c.has2(S2.SECONDARY_EXEC_ENABLE_EPT)) return PASS;
  return failIf(
    (c.read(F.EPT_POINTER) & EPTP.ACCESSED_DIRTY) !== 0 &&
      (c.caps.eptVpidCap.lo & EPT_VPID_CAP_LO.VMX_EPT_AD_BIT) === 0,
  );
}

function vmfuncReserved(c: EntryCheckContext): number {
  if (!c.has2(S2.SECONDARY_EXEC_ENABLE_VMFUNC)) return PASS;
  const lo = c.read(F.VM_FUNCTION_CONTROL);
  return failIf((lo & ~c.caps.vmfunc.lo) !== 0 || (c.hi & ~c.caps.vmfunc.hi) !== 0);
}

function eptpSwitching(c: EntryCheckContext): boolean {
  return (
    c.has2(S2.SECONDARY_EXEC_ENABLE_VMFUNC) &&
    (c.read(F.VM_FUNCTION_CONTROL) & VMFUNC_CTLS.VMX_VMFUNC_EPTP_SWITCHING) !== 0
  );
}

function eptpSwitchingNeedsEpt(c: EntryCheckContext): number {
  return failIf(eptpSwitching(c) && !c.has2(S2.SECONDARY_EXEC_ENABLE_EPT));
}

function eptpListAddress(c: EntryCheckContext): number {
  return failIf(eptpSwitching(c) && !c.pageAddressValid(F.EPTP_LIST_ADDRESS));
}

// ---------------------------------------------------------------------------------------------
// VM-exit and VM-entry controls (kvm: nested_check_vm_exit_controls / _entry_controls)
// ---------------------------------------------------------------------------------------------

function exitReserved(c: EntryCheckContext): number {
  const m = c.caps.trueExitCtls;
  return failIf(controlsAllowed(m.lo, m.hi, c.exit) !== 0);
}

function exitMsrLoadList(c: EntryCheckContext): number {
  return failIf(!msrSwitchOk(c, F.VM_EXIT_MSR_LOAD_COUNT, F.VM_EXIT_MSR_LOAD_ADDR));
}

function exitMsrStoreList(c: EntryCheckContext): number {
  return failIf(!msrSwitchOk(c, F.VM_EXIT_MSR_STORE_COUNT, F.VM_EXIT_MSR_STORE_ADDR));
}

function entryReserved(c: EntryCheckContext): number {
  const m = c.caps.trueEntryCtls;
  return failIf(controlsAllowed(m.lo, m.hi, c.entry) !== 0);
}

/** VM-entry interruption information, or 0 when its valid bit is clear. */
function injection(c: EntryCheckContext): number {
  const info = c.read(F.VM_ENTRY_INTR_INFO);
  return (info & INTR_INFO.INTR_INFO_VALID_MASK) !== 0 ? info : 0;
}

function injectionType(info: number): number {
  return (info & INTR_INFO.INTR_INFO_INTR_TYPE_MASK) >>> INTR_INFO.TYPE_SHIFT;
}

/**
 * Vectors whose delivery pushes an error code, as KVM 6.12 lists them (x86_exception_has_error_code):
 * #DF, #TS, #NP, #SS, #GP, #PF, #AC. #CP (21) joined the list with CET virtualization, after 6.12.
 */
const KVM_ERROR_CODE_VECTORS =
  (1 << VECTOR.DF) |
  (1 << VECTOR.TS) |
  (1 << VECTOR.NP) |
  (1 << VECTOR.SS) |
  (1 << VECTOR.GP) |
  (1 << VECTOR.PF) |
  (1 << VECTOR.AC);

function injectionTypeValid(c: EntryCheckContext): number {
  const info = injection(c);
  if (info === 0) return PASS;
  const type = injectionType(info);
  const mtf = (c.caps.trueProcbasedCtls.hi & C.CPU_BASED_MONITOR_TRAP_FLAG) !== 0;
  return failIf(type === EVENT_TYPE.RESERVED || (type === EVENT_TYPE.OTHER && !mtf));
}

function injectionVector(c: EntryCheckContext): number {
  const info = injection(c);
  if (info === 0) return PASS;
  const type = injectionType(info);
  const vector = info & INTR_INFO.INTR_INFO_VECTOR_MASK;
  return failIf(
    (type === EVENT_TYPE.NMI && vector !== VECTOR.NMI) ||
      (type === EVENT_TYPE.HWEXC && vector > 31) ||
      (type === EVENT_TYPE.OTHER && vector !== 0),
  );
}

function injectionErrorCodeFlag(c: EntryCheckContext): number {
  const info = injection(c);
  if (info === 0) return PASS;
  const type = injectionType(info);
  const vector = info & INTR_INFO.INTR_INFO_VECTOR_MASK;
  const has = (info & INTR_INFO.INTR_INFO_DELIVER_CODE_MASK) !== 0;
  // Protected mode unless unrestricted guest is on with CR0.PE = 0.
  const protectedMode = !c.has2(S2.SECONDARY_EXEC_UNRESTRICTED_GUEST) || (c.read(F.GUEST_CR0) & CR0.PE) !== 0;
  const should =
    type === EVENT_TYPE.HWEXC &&
    protectedMode &&
    vector < 32 &&
    ((KVM_ERROR_CODE_VECTORS >>> vector) & 1) === 1;
  return failIf(has !== should);
}

function injectionErrorCodeBits(c: EntryCheckContext): number {
  const info = injection(c);
  if (info === 0 || (info & INTR_INFO.INTR_INFO_DELIVER_CODE_MASK) === 0) return PASS;
  return failIf((c.read(F.VM_ENTRY_EXCEPTION_ERROR_CODE) & 0xffff0000) !== 0);
}

function injectionReservedBits(c: EntryCheckContext): number {
  return failIf((injection(c) & INTR_INFO.INTR_INFO_RESVD_BITS_MASK) !== 0);
}

function injectionInstructionLength(c: EntryCheckContext): number {
  const info = injection(c);
  if (info === 0) return PASS;
  const type = injectionType(info);
  if (type !== EVENT_TYPE.SWEXC && type !== EVENT_TYPE.SWINT && type !== EVENT_TYPE.PRIV_SWEXC) return PASS;
  const length = c.read(F.VM_ENTRY_INSTRUCTION_LEN);
  const zeroAllowed = (c.caps.misc.lo & VMX_MISC.VMX_MISC_ZERO_LEN_INS) !== 0;
  return failIf(length > 15 || (length === 0 && !zeroAllowed));
}

function entryMsrLoadList(c: EntryCheckContext): number {
  return failIf(!msrSwitchOk(c, F.VM_ENTRY_MSR_LOAD_COUNT, F.VM_ENTRY_MSR_LOAD_ADDR));
}

// ---------------------------------------------------------------------------------------------
// Address-space size and host state (kvm: nested_vmx_check_address_space_size / _host_state)
// ---------------------------------------------------------------------------------------------

function hostSizeMatchesLma(c: EntryCheckContext): number {
  return failIf(hostAddressSpace64(c) !== ((c.vcpu.efer & EFER.LMA) !== 0));
}

function hostCr0Fixed(c: EntryCheckContext): number {
  const lo = c.read(F.HOST_CR0);
  const f0 = c.caps.cr0Fixed0;
  const f1 = c.caps.cr0Fixed1;
  return failIf(!fixedBitsOk(lo, f0.lo, f1.lo) || !fixedBitsOk(c.hi, f0.hi, f1.hi));
}

function hostCr4Valid(c: EntryCheckContext): number {
  const lo = c.read(F.HOST_CR4);
  return failIf(!cr4Valid(c, lo, c.hi));
}

function hostCr3(c: EntryCheckContext): number {
  c.read(F.HOST_CR3);
  return failIf(!cr3Legal(c, c.hi));
}

function hostCetNeedsWp(c: EntryCheckContext): number {
  const cr4 = c.read(F.HOST_CR4);
  return failIf((cr4 & CR4.CET) !== 0 && (c.read(F.HOST_CR0) & CR0.WP) === 0);
}

function hostSysenter(c: EntryCheckContext): number {
  const bits = c.staticCanonicalBits;
  c.read(F.HOST_SYSENTER_ESP);
  if (!isCanonical(c.hi, bits)) return FAIL;
  c.read(F.HOST_SYSENTER_EIP);
  return failIf(!isCanonical(c.hi, bits));
}

function hostPat(c: EntryCheckContext): number {
  if ((c.exit & X.VM_EXIT_LOAD_IA32_PAT) === 0) return PASS;
  const lo = c.read(F.HOST_PAT);
  return failIf(!isValidPat(lo, c.hi));
}

function hostPerfGlobalCtrl(c: EntryCheckContext): number {
  if ((c.exit & X.VM_EXIT_LOAD_IA32_PERF_GLOBAL_CTRL) === 0) return PASS;
  const lo = c.read(F.HOST_PERF_GLOBAL_CTRL);
  return failIf(!perfGlobalCtrlValid(c, lo, c.hi));
}

function hostCr4PaeFor64(c: EntryCheckContext): number {
  return failIf(hostAddressSpace64(c) && (c.read(F.HOST_CR4) & CR4.PAE) === 0);
}

function hostNon64NoIa32eGuest(c: EntryCheckContext): number {
  return failIf(!hostAddressSpace64(c) && ia32eGuest(c));
}

function hostNon64NoPcide(c: EntryCheckContext): number {
  return failIf(!hostAddressSpace64(c) && (c.read(F.HOST_CR4) & CR4.PCIDE) !== 0);
}

function hostNon64RipHigh(c: EntryCheckContext): number {
  if (hostAddressSpace64(c)) return PASS;
  c.read(F.HOST_RIP);
  return failIf(c.hi !== 0);
}

const HOST_SELECTORS: readonly number[] = [
  F.HOST_CS_SELECTOR,
  F.HOST_SS_SELECTOR,
  F.HOST_DS_SELECTOR,
  F.HOST_ES_SELECTOR,
  F.HOST_FS_SELECTOR,
  F.HOST_GS_SELECTOR,
  F.HOST_TR_SELECTOR,
];

/** Selector RPL (bits 1:0) and TI (bit 2). */
const SELECTOR_RPL_TI = 7;

function hostSelectorsRplTi(c: EntryCheckContext): number {
  for (const field of HOST_SELECTORS) if ((c.read(field) & SELECTOR_RPL_TI) !== 0) return FAIL;
  return PASS;
}

function hostCsNonZero(c: EntryCheckContext): number {
  return failIf(c.read(F.HOST_CS_SELECTOR) === 0);
}

function hostTrNonZero(c: EntryCheckContext): number {
  return failIf(c.read(F.HOST_TR_SELECTOR) === 0);
}

function hostSsNonZero(c: EntryCheckContext): number {
  return failIf(c.read(F.HOST_SS_SELECTOR) === 0 && !hostAddressSpace64(c));
}

const HOST_BASES: readonly number[] = [
  F.HOST_FS_BASE,
  F.HOST_GS_BASE,
  F.HOST_GDTR_BASE,
  F.HOST_IDTR_BASE,
  F.HOST_TR_BASE,
];

function hostBasesCanonical(c: EntryCheckContext): number {
  const bits = c.staticCanonicalBits;
  for (const field of HOST_BASES) {
    c.read(field);
    if (!isCanonical(c.hi, bits)) return FAIL;
  }
  return PASS;
}

function hostRipCanonical(c: EntryCheckContext): number {
  // kvm: is_noncanonical_address(host_rip, vcpu, 0) — L1's current paging width.
  c.read(F.HOST_RIP);
  return failIf(!isCanonical(c.hi, (c.vcpu.cr4 & CR4.LA57) !== 0 ? 57 : 48));
}

function hostEferReserved(c: EntryCheckContext): number {
  if ((c.exit & X.VM_EXIT_LOAD_IA32_EFER) === 0) return PASS;
  const lo = c.read(F.HOST_EFER);
  return failIf(!eferValid(c, lo, c.hi));
}

function hostEferLongMode(c: EntryCheckContext): number {
  if ((c.exit & X.VM_EXIT_LOAD_IA32_EFER) === 0) return PASS;
  const efer = c.read(F.HOST_EFER);
  const ia32e = hostAddressSpace64(c);
  return failIf(ia32e !== ((efer & EFER.LMA) !== 0) || ia32e !== ((efer & EFER.LME) !== 0));
}

// ---------------------------------------------------------------------------------------------
// Guest state checked by KVM (kvm: nested_vmx_check_guest_state)
// ---------------------------------------------------------------------------------------------

function guestCr0Fixed(c: EntryCheckContext): number {
  const lo = c.read(F.GUEST_CR0);
  const hi = c.hi;
  let fixed0 = c.caps.cr0Fixed0.lo;
  // kvm: nested_guest_cr0_valid — PE and PG may be 0 when unrestricted guest is offered and used.
  if (
    (c.caps.procbasedCtls2.hi & S2.SECONDARY_EXEC_UNRESTRICTED_GUEST) !== 0 &&
    c.has2(S2.SECONDARY_EXEC_UNRESTRICTED_GUEST)
  ) {
    fixed0 = (fixed0 & ~(CR0.PE | CR0.PG)) >>> 0;
  }
  const f1 = c.caps.cr0Fixed1;
  return failIf(!fixedBitsOk(lo, fixed0, f1.lo) || !fixedBitsOk(hi, c.caps.cr0Fixed0.hi, f1.hi));
}

function guestCr4Valid(c: EntryCheckContext): number {
  const lo = c.read(F.GUEST_CR4);
  return failIf(!cr4Valid(c, lo, c.hi));
}

function guestCetNeedsWp(c: EntryCheckContext): number {
  const cr4 = c.read(F.GUEST_CR4);
  return failIf((cr4 & CR4.CET) !== 0 && (c.read(F.GUEST_CR0) & CR0.WP) === 0);
}

function guestDr7(c: EntryCheckContext): number {
  if ((c.entry & N.VM_ENTRY_LOAD_DEBUG_CONTROLS) === 0) return PASS;
  c.read(F.GUEST_DR7);
  return failIf(c.hi !== 0);
}

function guestDebugctl(c: EntryCheckContext): number {
  if ((c.entry & N.VM_ENTRY_LOAD_DEBUG_CONTROLS) === 0) return PASS;
  let lo = c.read(F.GUEST_DEBUGCTL);
  const hi = c.hi;
  if (c.vcpu.freezeInSmmQuirk) lo &= ~DEBUGCTL.FREEZE_IN_SMM;
  // kvm: vmx_is_valid_debugctl — BTF and LBR are tolerated (only logged) even when unsupported.
  const unsupported = lo & ~c.vcpu.debugctlSupported & ~(DEBUGCTL.BTF | DEBUGCTL.LBR);
  return failIf(unsupported !== 0 || hi !== 0);
}

function guestPat(c: EntryCheckContext): number {
  if ((c.entry & N.VM_ENTRY_LOAD_IA32_PAT) === 0) return PASS;
  const lo = c.read(F.GUEST_PAT);
  return failIf(!isValidPat(lo, c.hi));
}

/** The VMCS link pointer is in use: not all ones (SDM 25.4.2: all ones means "no linked VMCS"). */
function linkPointerInUse(c: EntryCheckContext): boolean {
  const lo = c.read(F.VMCS_LINK_POINTER);
  return !(lo === 0xffffffff && c.hi === 0xffffffff);
}

function linkPointerAddress(c: EntryCheckContext): number {
  if (!linkPointerInUse(c)) return PASS;
  return failIf(!c.pageAddressValid(F.VMCS_LINK_POINTER));
}

/** kvm: kvm_gfn_to_hva_cache_init of VMCS12_SIZE bytes at the link pointer. */
function linkPointerMapped(c: EntryCheckContext): boolean {
  const lo = c.read(F.VMCS_LINK_POINTER);
  return isBacked(c.memory, lo, c.hi, VMCS12_SIZE);
}

function linkPointerReadable(c: EntryCheckContext): number {
  if (!linkPointerInUse(c) || !c.pageAddressValid(F.VMCS_LINK_POINTER)) return PASS;
  return failIf(!linkPointerMapped(c));
}

/** The header word at the link pointer, or -1 when an earlier link-pointer rule already fails. */
function linkPointerHeader(c: EntryCheckContext): number {
  if (!linkPointerInUse(c) || !c.pageAddressValid(F.VMCS_LINK_POINTER) || !linkPointerMapped(c)) return -1;
  const lo = c.read(F.VMCS_LINK_POINTER);
  return c.readGuest32(c.hi * 4294967296 + lo);
}

function linkPointerRevision(c: EntryCheckContext): number {
  const header = linkPointerHeader(c);
  if (header < 0) return PASS;
  return failIf((header & VMCS12_HEADER.REVISION_MASK) !== VMCS12_REVISION);
}

function linkPointerShadowBit(c: EntryCheckContext): number {
  const header = linkPointerHeader(c);
  if (header < 0) return PASS;
  return failIf(header >= VMCS12_HEADER.SHADOW_VMCS !== c.has2(S2.SECONDARY_EXEC_SHADOW_VMCS));
}

function guestPerfGlobalCtrl(c: EntryCheckContext): number {
  if ((c.entry & N.VM_ENTRY_LOAD_IA32_PERF_GLOBAL_CTRL) === 0) return PASS;
  const lo = c.read(F.GUEST_PERF_GLOBAL_CTRL);
  return failIf(!perfGlobalCtrlValid(c, lo, c.hi));
}

function guestPagingWithoutProtection(c: EntryCheckContext): number {
  return failIf((c.read(F.GUEST_CR0) & (CR0.PG | CR0.PE)) >>> 0 === CR0.PG);
}

function ia32eNeedsPae(c: EntryCheckContext): number {
  return failIf(ia32eGuest(c) && (c.read(F.GUEST_CR4) & CR4.PAE) === 0);
}

function ia32eNeedsPaging(c: EntryCheckContext): number {
  return failIf(ia32eGuest(c) && (c.read(F.GUEST_CR0) & CR0.PG) === 0);
}

// The guest EFER checks run only with nested_run_pending, which VMLAUNCH/VMRESUME always set.
function guestEferReserved(c: EntryCheckContext): number {
  if ((c.entry & N.VM_ENTRY_LOAD_IA32_EFER) === 0) return PASS;
  const lo = c.read(F.GUEST_EFER);
  return failIf(!eferValid(c, lo, c.hi));
}

function guestEferLma(c: EntryCheckContext): number {
  if ((c.entry & N.VM_ENTRY_LOAD_IA32_EFER) === 0) return PASS;
  return failIf(ia32eGuest(c) !== ((c.read(F.GUEST_EFER) & EFER.LMA) !== 0));
}

function guestEferLme(c: EntryCheckContext): number {
  if ((c.entry & N.VM_ENTRY_LOAD_IA32_EFER) === 0) return PASS;
  if ((c.read(F.GUEST_CR0) & CR0.PG) === 0) return PASS;
  return failIf(ia32eGuest(c) !== ((c.read(F.GUEST_EFER) & EFER.LME) !== 0));
}

/** IA32_BNDCFGS bits 11:2 (kvm: MSR_IA32_BNDCFGS_RSVD). */
const BNDCFGS_RESERVED = 0xffc;

function guestBndcfgsCanonical(c: EntryCheckContext): number {
  if ((c.entry & N.VM_ENTRY_LOAD_BNDCFGS) === 0) return PASS;
  c.read(F.GUEST_BNDCFGS);
  return failIf(!isCanonical(c.hi, c.staticCanonicalBits));
}

function guestBndcfgsReserved(c: EntryCheckContext): number {
  if ((c.entry & N.VM_ENTRY_LOAD_BNDCFGS) === 0) return PASS;
  return failIf((c.read(F.GUEST_BNDCFGS) & BNDCFGS_RESERVED) !== 0);
}

/**
 * KVM's only activity-state check (nested_check_guest_non_reg_state). The CPU's other activity-state
 * checks of SDM 27.3.1.5 (HLT needs SS.DPL 0; HLT or wait-for-SIPI only without blocking by STI or
 * MOV SS; an injected event must be one the state lets through) never see vmcs12's state: nested.c
 * never writes GUEST_ACTIVITY_STATE into vmcs02, whose state reads active (a zeroed, VMCLEARed region;
 * only the CPU changes it, when L2 halts natively with HLT exits disabled), and KVM emulates HLT by
 * halting the vCPU and wait-for-SIPI by the INIT-received state (nested_vmx_run). So they are not
 * rules here.
 */
function guestActivityState(c: EntryCheckContext): number {
  const state = c.read(F.GUEST_ACTIVITY_STATE);
  return failIf(
    state !== GUEST_ACTIVITY.ACTIVE && state !== GUEST_ACTIVITY.HLT && state !== GUEST_ACTIVITY.WAIT_SIPI,
  );
}

// ---------------------------------------------------------------------------------------------
// prepare_vmcs02
// ---------------------------------------------------------------------------------------------

const REAL_MODE_SEGMENTS: readonly number[] = [G.CS, G.SS, G.DS, G.ES, G.FS, G.GS];
const DATA_SEGMENTS: readonly number[] = [G.DS, G.ES, G.FS, G.GS];

/**
 * KVM's own view of a segment's access rights (kvm: vmx_get_segment + vmx_segment_access_rights):
 * "present" is taken as "not unusable", and an unusable segment reads as only the unusable bit.
 */
function kvmAccessRights(ar: number): number {
  return (ar & AR.UNUSABLE) !== 0 ? AR.UNUSABLE : ((ar & 0xf07f) | AR.P) >>> 0;
}

/** Segment type 3: read/write, accessed, expand-up data. */
const TYPE_DATA_RW_ACCESSED = TYPE.WRITABLE_OR_READABLE | TYPE.ACCESSED;

/**
 * kvm: rmode_segment_valid — base = selector × 16, limit 0xffff, and access rights 0xf3 after KVM
 * overrides DPL with 3 and, for CS, the type with 3: so neither DPL nor CS's type is checked (nor P,
 * see `kvmAccessRights`). The CPU's own virtual-8086 rule compares the raw field (`guestV86Segments`).
 */
function kvmRealModeSegmentValid(c: EntryCheckContext, seg: number): boolean {
  const selector = c.guestSelector(seg);
  const baseLo = c.guestBase(seg);
  if (c.hi !== 0 || baseLo !== selector * 16) return false;
  if (c.guestLimit(seg) !== 0xffff) return false;
  let ar = kvmAccessRights(c.guestAr(seg)) | AR.DPL_MASK;
  if (seg === G.CS) ar = (ar & ~AR.TYPE_MASK) | TYPE_DATA_RW_ACCESSED;
  return ar >>> 0 === 0xf3;
}

/**
 * kvm: __vmx_guest_state_valid — the segment state KVM can run without unrestricted guest. Note
 * KVM's rules, not the SDM's: P is ignored (present = usable), CS's DPL rule keys on the readable
 * type bit, and TR may be type 3 or 11 in any mode.
 */
function kvmSegmentsValid(c: EntryCheckContext): boolean {
  const cr0 = c.read(F.GUEST_CR0);
  if ((cr0 & CR0.PE) === 0 || guestV86(c)) {
    for (const seg of REAL_MODE_SEGMENTS) if (!kvmRealModeSegmentValid(c, seg)) return false;
    return true;
  }
  const csRpl = c.guestSelector(G.CS) & 3;
  const ssRpl = c.guestSelector(G.SS) & 3;
  if (csRpl !== ssRpl) return false;

  const cs = c.guestAr(G.CS);
  if ((cs & AR.UNUSABLE) !== 0) return false;
  if ((~cs & (TYPE.CODE | TYPE.ACCESSED)) !== 0) return false;
  if ((cs & AR.S) === 0) return false;
  const csDpl = (cs & AR.DPL_MASK) >>> AR.DPL_SHIFT;
  if ((cs & TYPE.WRITABLE_OR_READABLE) !== 0 ? csDpl > csRpl : csDpl !== csRpl) return false;

  const ss = c.guestAr(G.SS);
  if ((ss & AR.UNUSABLE) === 0) {
    const type = ss & AR.TYPE_MASK;
    if (type !== 3 && type !== 7) return false;
    if ((ss & AR.S) === 0) return false;
    if ((ss & AR.DPL_MASK) >>> AR.DPL_SHIFT !== ssRpl) return false;
  }

  for (const seg of DATA_SEGMENTS) {
    const ar = c.guestAr(seg);
    if ((ar & AR.UNUSABLE) !== 0) continue;
    if ((ar & AR.S) === 0) return false;
    const rpl = c.guestSelector(seg) & 3;
    const readableCode =
      (ar & (TYPE.CODE | TYPE.WRITABLE_OR_READABLE)) === (TYPE.CODE | TYPE.WRITABLE_OR_READABLE);
    if (!readableCode && (ar & AR.DPL_MASK) >>> AR.DPL_SHIFT < rpl) return false;
  }

  const tr = c.guestAr(G.TR);
  if ((tr & AR.UNUSABLE) !== 0) return false;
  if ((c.guestSelector(G.TR) & 4) !== 0) return false;
  const trType = tr & AR.TYPE_MASK;
  if (trType !== 3 && trType !== 11) return false;

  const ldtr = c.guestAr(G.LDTR);
  if ((ldtr & AR.UNUSABLE) === 0) {
    if ((c.guestSelector(G.LDTR) & 4) !== 0) return false;
    if ((ldtr & AR.TYPE_MASK) !== 2) return false;
  }
  return true;
}

function guestEmulationRequired(c: EntryCheckContext): number {
  if (unrestrictedGuest(c)) return PASS;
  return failIf(!kvmSegmentsValid(c));
}

function guestCr3(c: EntryCheckContext): number {
  c.read(F.GUEST_CR3);
  return failIf(!cr3Legal(c, c.hi));
}

/** Reserved bits of a present PAE PDPTE's high word: MAXPHYADDR..63 (bit 63 too: no XD in a PDPTE). */
function pdpteReservedHi(maxPhysAddr: number): number {
  return (reservedAddressMaskHigh(maxPhysAddr) | 0xfff00000) >>> 0;
}

function pdpteBad(lo: number, hi: number, reservedHi: number): boolean {
  return (lo & 1) !== 0 && ((lo & PDPTE_RESERVED_LO) !== 0 || (hi & reservedHi) !== 0);
}

/** kvm: nested_vmx_load_cr3 → load_pdptrs, for PAE paging without nested EPT. */
function guestPdptesFromMemory(c: EntryCheckContext): number {
  if (c.has2(S2.SECONDARY_EXEC_ENABLE_EPT) || !paePaging(c)) return PASS;
  const lo = c.read(F.GUEST_CR3) & 0xffffffe0;
  const hi = c.hi;
  if (!isBacked(c.memory, lo >>> 0, hi, 32)) return FAIL;
  const base = hi * 4294967296 + (lo >>> 0);
  const reservedHi = pdpteReservedHi(c.maxPhysAddr);
  for (let i = 0; i < 4; i++) {
    if (pdpteBad(c.readGuest32(base + i * 8), c.readGuest32(base + i * 8 + 4), reservedHi)) return FAIL;
  }
  return PASS;
}

// ---------------------------------------------------------------------------------------------
// VM-entry MSR-load list (kvm: nested_vmx_load_msr, nested_vmx_load_msr_check)
// ---------------------------------------------------------------------------------------------

/** kvm: MSR_IA32_UCODE_WRITE and MSR_IA32_UCODE_REV (SDM names: IA32_BIOS_UPDT_TRIG, IA32_BIOS_SIGN_ID). */
const MSR_UCODE_WRITE = MSR.IA32_BIOS_UPDT_TRIG;
const MSR_UCODE_REV = MSR.IA32_BIOS_SIGN_ID;

function entryMsrLoad(c: EntryCheckContext): number {
  const count = c.read(F.VM_ENTRY_MSR_LOAD_COUNT);
  if (count === 0) return PASS;
  const addrLo = c.read(F.VM_ENTRY_MSR_LOAD_ADDR);
  const addrHi = c.hi;
  const max = vmxMiscMaxMsrListEntries(c.caps.misc.lo);
  const memory = c.memory;
  for (let i = 0; i < count; i++) {
    // Entries up to the limit are processed before a too-long list fails.
    if (i >= max) return i + 1;
    const offset = addrLo + i * 16;
    const lo = offset % 4294967296;
    const hi = addrHi + Math.floor(offset / 4294967296);
    if (!isBacked(memory, lo, hi, 16)) return i + 1;
    const pa = hi * 4294967296 + lo;
    const index = c.readGuest32(pa);
    const reserved = c.readGuest32(pa + 4);
    if (index === MSR.IA32_FS_BASE || index === MSR.IA32_GS_BASE || index === MSR.IA32_SMM_MONITOR_CTL) {
      return i + 1;
    }
    if (c.vcpu.x2apicEnabled && index >>> 8 === 0x8) return i + 1;
    if (index === MSR_UCODE_WRITE || index === MSR_UCODE_REV) return i + 1;
    if (reserved !== 0) return i + 1;
    if (!c.setMsr(index, c.readGuest32(pa + 8), c.readGuest32(pa + 12))) {
      return i + 1;
    }
  }
  return PASS;
}

// ---------------------------------------------------------------------------------------------
// vmcs02 controls the CPU rejects (late VM-Fail, VMfailValid 7)
// ---------------------------------------------------------------------------------------------

function virtualApicMapped(c: EntryCheckContext): boolean {
  const lo = c.read(F.VIRTUAL_APIC_PAGE_ADDR);
  return isBacked(c.memory, (lo & ~0xfff) >>> 0, c.hi, 4096);
}

/**
 * kvm: nested_get_vmcs12_pages — an unmapped virtual-APIC page is dropped (TPR shadow cleared)
 * when CR8 loads and stores both exit and APIC accesses are not virtualized; otherwise KVM writes
 * an invalid address into vmcs02 so that the CPU fails the entry.
 */
function tprShadowDropped(c: EntryCheckContext): boolean {
  return (
    (c.proc & C.CPU_BASED_CR8_LOAD_EXITING) !== 0 &&
    (c.proc & C.CPU_BASED_CR8_STORE_EXITING) !== 0 &&
    !c.has2(S2.SECONDARY_EXEC_VIRTUALIZE_APIC_ACCESSES)
  );
}

function virtualApicBacked(c: EntryCheckContext): number {
  if ((c.proc & C.CPU_BASED_TPR_SHADOW) === 0) return PASS;
  return failIf(!virtualApicMapped(c) && !tprShadowDropped(c));
}

/** vmcs02 uses the TPR shadow with vmcs12's threshold and virtual-APIC page. */
function tprShadowInVmcs02(c: EntryCheckContext): boolean {
  return (c.proc & C.CPU_BASED_TPR_SHADOW) !== 0 && virtualApicMapped(c);
}

function tprThresholdReserved(c: EntryCheckContext): number {
  if (!tprShadowInVmcs02(c) || c.has2(S2.SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY)) return PASS;
  return failIf((c.read(F.TPR_THRESHOLD) & 0xfffffff0) !== 0);
}

function tprThresholdAboveVtpr(c: EntryCheckContext): number {
  if (
    !tprShadowInVmcs02(c) ||
    c.has2(S2.SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY) ||
    c.has2(S2.SECONDARY_EXEC_VIRTUALIZE_APIC_ACCESSES)
  ) {
    return PASS;
  }
  const page = c.read(F.VIRTUAL_APIC_PAGE_ADDR) & ~0xfff;
  const vtpr = c.readGuest8(c.hi * 4294967296 + (page >>> 0) + 0x80);
  return failIf((c.read(F.TPR_THRESHOLD) & 0xf) > vtpr >>> 4);
}

// ---------------------------------------------------------------------------------------------
// vmcs02 guest state the CPU rejects (VM exit 33, reflected to L1)
// ---------------------------------------------------------------------------------------------

function guestPcideNeedsIa32e(c: EntryCheckContext): number {
  return failIf(!ia32eGuest(c) && (c.read(F.GUEST_CR4) & CR4.PCIDE) !== 0);
}

function guestSysenter(c: EntryCheckContext): number {
  const bits = c.staticCanonicalBits;
  c.read(F.GUEST_SYSENTER_ESP);
  if (!isCanonical(c.hi, bits)) return FAIL;
  c.read(F.GUEST_SYSENTER_EIP);
  return failIf(!isCanonical(c.hi, bits));
}

function guestTrTi(c: EntryCheckContext): number {
  return failIf((c.guestSelector(G.TR) & 4) !== 0);
}

function usable(ar: number): boolean {
  return (ar & AR.UNUSABLE) === 0;
}

function guestLdtrTi(c: EntryCheckContext): number {
  return failIf(usable(c.guestAr(G.LDTR)) && (c.guestSelector(G.LDTR) & 4) !== 0);
}

function guestSsRpl(c: EntryCheckContext): number {
  if (guestV86(c) || unrestrictedGuest(c)) return PASS;
  return failIf((c.guestSelector(G.SS) & 3) !== (c.guestSelector(G.CS) & 3));
}

function guestV86Segments(c: EntryCheckContext): number {
  if (!guestV86(c)) return PASS;
  for (const seg of REAL_MODE_SEGMENTS) {
    const selector = c.guestSelector(seg);
    const baseLo = c.guestBase(seg);
    if (c.hi !== 0 || baseLo !== selector * 16) return FAIL;
    if (c.guestLimit(seg) !== 0xffff || c.guestAr(seg) !== 0xf3) return FAIL;
  }
  return PASS;
}

function guestBasesCanonical(c: EntryCheckContext): number {
  const bits = c.staticCanonicalBits;
  c.guestBase(G.TR);
  if (!isCanonical(c.hi, bits)) return FAIL;
  c.guestBase(G.FS);
  if (!isCanonical(c.hi, bits)) return FAIL;
  c.guestBase(G.GS);
  return failIf(!isCanonical(c.hi, bits));
}

function guestLdtrBaseCanonical(c: EntryCheckContext): number {
  if (!usable(c.guestAr(G.LDTR))) return PASS;
  c.guestBase(G.LDTR);
  return failIf(!isCanonical(c.hi, c.staticCanonicalBits));
}

function guestCsBaseHigh(c: EntryCheckContext): number {
  c.guestBase(G.CS);
  return failIf(c.hi !== 0);
}

const SS_DS_ES: readonly number[] = [G.SS, G.DS, G.ES];

function guestSsDsEsBaseHigh(c: EntryCheckContext): number {
  for (const seg of SS_DS_ES) {
    if (!usable(c.guestAr(seg))) continue;
    c.guestBase(seg);
    if (c.hi !== 0) return FAIL;
  }
  return PASS;
}

/** Access-rights bits 11:8 and 31:17 are reserved. */
function arReservedClear(ar: number): boolean {
  return (ar & 0xf00) === 0 && (ar & 0xfffe0000) === 0;
}

/** Limit vs G: G = 0 unless bits 11:0 are all ones; G = 1 if any of bits 31:20 is set. */
function granularityOk(limit: number, ar: number): boolean {
  const g = (ar & AR.G) !== 0;
  if ((limit & 0xfff) !== 0xfff && g) return false;
  if ((limit & 0xfff00000) !== 0 && !g) return false;
  return true;
}

function dpl(ar: number): number {
  return (ar & AR.DPL_MASK) >>> AR.DPL_SHIFT;
}

function guestCsAccessRights(c: EntryCheckContext): number {
  if (guestV86(c)) return PASS;
  const ar = c.guestAr(G.CS);
  const ssDpl = dpl(c.guestAr(G.SS));
  const type = ar & AR.TYPE_MASK;
  const nonConforming = type === 9 || type === 11;
  const conforming = type === 13 || type === 15;
  if (!nonConforming && !conforming && !(type === 3 && unrestrictedGuest(c))) return FAIL;
  if ((ar & AR.S) === 0) return FAIL;
  if (type === 3 && dpl(ar) !== 0) return FAIL;
  if (nonConforming && dpl(ar) !== ssDpl) return FAIL;
  if (conforming && dpl(ar) > ssDpl) return FAIL;
  if ((ar & AR.P) === 0 || !arReservedClear(ar)) return FAIL;
  if (ia32eGuest(c) && (ar & AR.L) !== 0 && (ar & AR.DB) !== 0) return FAIL;
  return failIf(!granularityOk(c.guestLimit(G.CS), ar));
}

function guestSsAccessRights(c: EntryCheckContext): number {
  if (guestV86(c)) return PASS;
  const ar = c.guestAr(G.SS);
  if (!unrestrictedGuest(c) && dpl(ar) !== (c.guestSelector(G.SS) & 3)) return FAIL;
  const csType = c.guestAr(G.CS) & AR.TYPE_MASK;
  if ((csType === 3 || (c.read(F.GUEST_CR0) & CR0.PE) === 0) && dpl(ar) !== 0) return FAIL;
  if (!usable(ar)) return PASS;
  const type = ar & AR.TYPE_MASK;
  if (type !== 3 && type !== 7) return FAIL;
  if ((ar & AR.S) === 0 || (ar & AR.P) === 0 || !arReservedClear(ar)) return FAIL;
  return failIf(!granularityOk(c.guestLimit(G.SS), ar));
}

function guestDataAccessRights(c: EntryCheckContext): number {
  if (guestV86(c)) return PASS;
  const ug = unrestrictedGuest(c);
  for (const seg of DATA_SEGMENTS) {
    const ar = c.guestAr(seg);
    if (!usable(ar)) continue;
    const type = ar & AR.TYPE_MASK;
    if ((type & TYPE.ACCESSED) === 0) return FAIL;
    if ((type & TYPE.CODE) !== 0 && (type & TYPE.WRITABLE_OR_READABLE) === 0) return FAIL;
    if ((ar & AR.S) === 0 || (ar & AR.P) === 0 || !arReservedClear(ar)) return FAIL;
    if (!ug && type <= 11 && dpl(ar) < (c.guestSelector(seg) & 3)) return FAIL;
    if (!granularityOk(c.guestLimit(seg), ar)) return FAIL;
  }
  return PASS;
}

function guestTrAccessRights(c: EntryCheckContext): number {
  const ar = c.guestAr(G.TR);
  const type = ar & AR.TYPE_MASK;
  if (ia32eGuest(c) ? type !== 11 : type !== 3 && type !== 11) return FAIL;
  if ((ar & AR.S) !== 0 || (ar & AR.P) === 0 || !usable(ar) || !arReservedClear(ar)) return FAIL;
  return failIf(!granularityOk(c.guestLimit(G.TR), ar));
}

function guestLdtrAccessRights(c: EntryCheckContext): number {
  const ar = c.guestAr(G.LDTR);
  if (!usable(ar)) return PASS;
  if ((ar & AR.TYPE_MASK) !== 2) return FAIL;
  if ((ar & AR.S) !== 0 || (ar & AR.P) === 0 || !arReservedClear(ar)) return FAIL;
  return failIf(!granularityOk(c.guestLimit(G.LDTR), ar));
}

function guestDescriptorTableBases(c: EntryCheckContext): number {
  const bits = c.staticCanonicalBits;
  c.read(F.GUEST_GDTR_BASE);
  if (!isCanonical(c.hi, bits)) return FAIL;
  c.read(F.GUEST_IDTR_BASE);
  return failIf(!isCanonical(c.hi, bits));
}

function guestDescriptorTableLimits(c: EntryCheckContext): number {
  return failIf(
    (c.read(F.GUEST_GDTR_LIMIT) & 0xffff0000) !== 0 || (c.read(F.GUEST_IDTR_LIMIT) & 0xffff0000) !== 0,
  );
}

function guestRip(c: EntryCheckContext): number {
  const longMode = ia32eGuest(c) && (c.guestAr(G.CS) & AR.L) !== 0;
  c.read(F.GUEST_RIP);
  const hi = c.hi;
  if (!longMode) return failIf(hi !== 0);
  const bits = c.host.la57 && (c.read(F.GUEST_CR4) & CR4.LA57) !== 0 ? 57 : 48;
  return failIf(!isCanonical(hi, bits));
}

/** RFLAGS bits that must be 0 (63:22, 15, 5, 3); bit 1 must be 1 (SDM 27.3.1.4). */
const RFLAGS_RESERVED_LO = 0xffc08028;

function guestRflagsReserved(c: EntryCheckContext): number {
  const lo = c.read(F.GUEST_RFLAGS);
  return failIf(c.hi !== 0 || (lo & RFLAGS_RESERVED_LO) !== 0 || (lo & RFLAGS.FIXED1) === 0);
}

function guestRflagsVm(c: EntryCheckContext): number {
  if (!guestV86(c)) return PASS;
  return failIf(ia32eGuest(c) || (c.read(F.GUEST_CR0) & CR0.PE) === 0);
}

function injectsType(c: EntryCheckContext, type: number): boolean {
  const info = injection(c);
  return info !== 0 && injectionType(info) === type;
}

function guestRflagsIfForExtInt(c: EntryCheckContext): number {
  return failIf(injectsType(c, EVENT_TYPE.EXTINT) && (c.read(F.GUEST_RFLAGS) & RFLAGS.IF) === 0);
}

/** Guest interruptibility state bits (SDM 25.4.2, Table 25-3). */
const INTERRUPTIBILITY = { STI: 1 << 0, MOV_SS: 1 << 1, SMI: 1 << 2, NMI: 1 << 3, ENCLAVE: 1 << 4 } as const;

function guestInterruptibilityReserved(c: EntryCheckContext): number {
  return failIf((c.read(F.GUEST_INTERRUPTIBILITY) & 0xffffffe0) !== 0);
}

function guestStiAndMovSs(c: EntryCheckContext): number {
  const state = c.read(F.GUEST_INTERRUPTIBILITY);
  return failIf((state & INTERRUPTIBILITY.STI) !== 0 && (state & INTERRUPTIBILITY.MOV_SS) !== 0);
}

function guestStiNeedsIf(c: EntryCheckContext): number {
  return failIf(
    (c.read(F.GUEST_INTERRUPTIBILITY) & INTERRUPTIBILITY.STI) !== 0 &&
      (c.read(F.GUEST_RFLAGS) & RFLAGS.IF) === 0,
  );
}

function guestExtIntInjectionBlocked(c: EntryCheckContext): number {
  return failIf(
    injectsType(c, EVENT_TYPE.EXTINT) &&
      (c.read(F.GUEST_INTERRUPTIBILITY) & (INTERRUPTIBILITY.STI | INTERRUPTIBILITY.MOV_SS)) !== 0,
  );
}

function guestNmiInjectionMovSs(c: EntryCheckContext): number {
  return failIf(
    injectsType(c, EVENT_TYPE.NMI) && (c.read(F.GUEST_INTERRUPTIBILITY) & INTERRUPTIBILITY.MOV_SS) !== 0,
  );
}

function guestSmiBlocking(c: EntryCheckContext): number {
  return failIf((c.read(F.GUEST_INTERRUPTIBILITY) & INTERRUPTIBILITY.SMI) !== 0);
}

/**
 * vmcs02 has "virtual NMIs" when L0 uses them (kvm: vmx_pin_based_exec_ctrl keeps the control while
 * enable_vnmi) or vmcs12 sets them: prepare_vmcs02_early ORs vmcs12's pin controls into vmcs01's.
 */
function virtualNmisInVmcs02(c: EntryCheckContext): boolean {
  return c.host.virtualNmis || (c.pin & P.PIN_BASED_VIRTUAL_NMIS) !== 0;
}

// SDM 27.3.1.5: with virtual NMIs, blocking by NMI (virtual-NMI blocking) must be clear when an NMI
// is injected. KVM copies vmcs12's interruptibility state into vmcs02 unchanged (prepare_vmcs02_early).
function guestNmiInjectionVirtualNmiBlocked(c: EntryCheckContext): number {
  return failIf(
    injectsType(c, EVENT_TYPE.NMI) &&
      virtualNmisInVmcs02(c) &&
      (c.read(F.GUEST_INTERRUPTIBILITY) & INTERRUPTIBILITY.NMI) !== 0,
  );
}

// SDM 27.3.1.5: enclave interruption (bit 4) needs no blocking by MOV SS and a CPU with SGX.
function guestEnclaveInterruption(c: EntryCheckContext): number {
  const state = c.read(F.GUEST_INTERRUPTIBILITY);
  if ((state & INTERRUPTIBILITY.ENCLAVE) === 0) return PASS;
  return failIf((state & INTERRUPTIBILITY.MOV_SS) !== 0 || !c.host.sgx);
}

/** Pending debug exceptions: bits 11:4, 13, 15 and 63:17 reserved; bit 16 (RTM) unless RTM exists. */
function guestPendingDebugReserved(c: EntryCheckContext): number {
  const lo = c.read(F.GUEST_PENDING_DBG);
  const reserved = 0xfffe0000 | 0x8000 | 0x2000 | 0xff0 | (c.host.rtm ? 0 : 0x10000);
  return failIf(c.hi !== 0 || (lo & reserved) !== 0);
}

/** Pending debug exceptions bit 14 (BS): a single-step trap is pending (SDM 25.4.2, Table 25-4). */
const PENDING_DBG_BS = 1 << 14;

/**
 * SDM 27.3.1.5: with blocking by STI or MOV SS, or in the HLT state, BS must be 1 when RFLAGS.TF = 1
 * and IA32_DEBUGCTL.BTF = 0, and 0 when TF = 0 or BTF = 1 (the check kvm: vmx_inject_exception
 * works around for its own #DB injection). On vmcs02 only the blocking part of the condition can
 * hold: KVM never loads vmcs12's activity state into vmcs02, which reads active (see
 * `guestActivityState`). BTF is always 0 there: vmcs02's DEBUGCTL is vmcs12's masked with
 * vmx_get_supported_debugctl, or L1's, stored with the same mask (prepare_vmcs02). RFLAGS and the
 * pending debug exceptions are vmcs12's (prepare_vmcs02, prepare_vmcs02_rare).
 */
function guestPendingSingleStep(c: EntryCheckContext): number {
  const blocking = INTERRUPTIBILITY.STI | INTERRUPTIBILITY.MOV_SS;
  if ((c.read(F.GUEST_INTERRUPTIBILITY) & blocking) === 0) return PASS;
  const tf = (c.read(F.GUEST_RFLAGS) & RFLAGS.TF) !== 0;
  return failIf(tf !== ((c.read(F.GUEST_PENDING_DBG) & PENDING_DBG_BS) !== 0));
}

const PDPTR_FIELDS: readonly number[] = [F.GUEST_PDPTR0, F.GUEST_PDPTR1, F.GUEST_PDPTR2, F.GUEST_PDPTR3];

function guestPdpteFields(c: EntryCheckContext): number {
  if (!c.has2(S2.SECONDARY_EXEC_ENABLE_EPT) || !paePaging(c)) return PASS;
  const reservedHi = pdpteReservedHi(c.maxPhysAddr);
  for (const field of PDPTR_FIELDS) {
    const lo = c.read(field);
    if (pdpteBad(lo, c.hi, reservedHi)) return FAIL;
  }
  return PASS;
}

// ---------------------------------------------------------------------------------------------
// The rule table, in KVM's order
// ---------------------------------------------------------------------------------------------

const K = ENTRY_CHECK_CATEGORY;
const ST = ENTRY_CHECK_STAGE;

function rule(
  id: string,
  category: EntryCheckCategory,
  stage: EntryCheckStage,
  description: string,
  kvm: string,
  sdm: string,
  test: (ctx: EntryCheckContext) => number,
  qualification: number = ENTRY_FAIL.ENTRY_FAIL_DEFAULT,
): EntryCheckRule {
  return Object.freeze({ id, category, stage, description, kvm, sdm, qualification, test });
}

function control(
  id: string,
  description: string,
  kvm: string,
  sdm: string,
  test: (ctx: EntryCheckContext) => number,
): EntryCheckRule {
  return rule(id, K.CONTROLS, ST.CONTROLS, description, kvm, sdm, test);
}

function host(id: string, description: string, sdm: string, test: (ctx: EntryCheckContext) => number) {
  return rule(id, K.HOST_STATE, ST.HOST_STATE, description, KVM_HOST, sdm, test);
}

function guest(
  id: string,
  description: string,
  kvm: string,
  sdm: string,
  test: (ctx: EntryCheckContext) => number,
  qualification: number = ENTRY_FAIL.ENTRY_FAIL_DEFAULT,
) {
  return rule(id, K.GUEST_STATE, ST.GUEST_STATE, description, kvm, sdm, test, qualification);
}

function hardwareGuest(
  id: string,
  description: string,
  sdm: string,
  test: (ctx: EntryCheckContext) => number,
  qualification: number = ENTRY_FAIL.ENTRY_FAIL_DEFAULT,
) {
  return rule(id, K.GUEST_STATE, ST.HARDWARE, description, HW_GUEST, sdm, test, qualification);
}

const LINK = ENTRY_FAIL.ENTRY_FAIL_VMCS_LINK_PTR;
const KVM_LINK = "nested_vmx_check_vmcs_link_ptr";

/** Every modelled check, in the order a nested VMLAUNCH/VMRESUME meets them in KVM 6.12. */
// biome-ignore format: one rule per line keeps the table readable
export const ENTRY_CHECK_RULES: readonly EntryCheckRule[] = Object.freeze([
  // nested_check_vm_execution_controls
  control("controls.pin.reserved", "pin-based controls within the TRUE allowed-0/allowed-1 settings", KVM_EXEC, SDM_EXEC, pinReserved),
  control("controls.proc.reserved", "primary processor-based controls within the TRUE allowed settings", KVM_EXEC, SDM_EXEC, procReserved),
  control("controls.proc2.reserved", "secondary controls (when activated) within IA32_VMX_PROCBASED_CTLS2", KVM_EXEC, SDM_EXEC, proc2Reserved),
  control("controls.cr3-target-count", "CR3-target count no larger than IA32_VMX_MISC[24:16] (0 under KVM)", KVM_EXEC, SDM_EXEC, cr3TargetCount),
  control("controls.io-bitmaps.address", "use I/O bitmaps ⇒ I/O bitmap A and B are 4-KiB aligned legal GPAs", "nested_vmx_check_io_bitmap_controls", SDM_EXEC, ioBitmaps),
  control("controls.msr-bitmap.address", "use MSR bitmaps ⇒ the MSR bitmap is a 4-KiB aligned legal GPA", "nested_vmx_check_msr_bitmap_controls", SDM_EXEC, msrBitmap),
  control("controls.virtual-apic.address", "use TPR shadow ⇒ the virtual-APIC page is a 4-KiB aligned legal GPA", "nested_vmx_check_tpr_shadow_controls", SDM_EXEC, virtualApicAddress),
  control("controls.apic-access.address", "virtualize APIC accesses ⇒ the APIC-access page is a 4-KiB aligned legal GPA", "nested_vmx_check_apic_access_controls", SDM_EXEC, apicAccessAddress),
  control("controls.apicv.x2apic-and-apic-access", "virtualize x2APIC mode and virtualize APIC accesses are not both set", "nested_vmx_check_apicv_controls", SDM_EXEC, x2apicWithApicAccess),
  control("controls.apicv.vid-needs-ext-intr-exiting", "virtual-interrupt delivery ⇒ external-interrupt exiting", "nested_vmx_check_apicv_controls", SDM_EXEC, vidNeedsExtIntExiting),
  control("controls.posted-intr.needs-vid", "process posted interrupts ⇒ virtual-interrupt delivery", "nested_vmx_check_apicv_controls", SDM_EXEC, postedNeedsVid),
  control("controls.posted-intr.needs-ack-intr", "process posted interrupts ⇒ acknowledge interrupt on exit", "nested_vmx_check_apicv_controls", SDM_EXEC, postedNeedsAck),
  control("controls.posted-intr.vector", "process posted interrupts ⇒ notification vector bits 15:8 are 0", "nested_vmx_check_apicv_controls", SDM_EXEC, postedVector),
  control("controls.posted-intr.descriptor", "process posted interrupts ⇒ descriptor address 64-byte aligned and legal", "nested_vmx_check_apicv_controls", SDM_EXEC, postedDescriptor),
  control("controls.apicv.needs-tpr-shadow", "any APIC-virtualization control ⇒ use TPR shadow", "nested_vmx_check_apicv_controls", SDM_EXEC, apicvNeedsTprShadow),
  control("controls.nmi.virtual-nmis-need-nmi-exiting", "virtual NMIs ⇒ NMI exiting", "nested_vmx_check_nmi_controls", SDM_EXEC, virtualNmisNeedNmiExiting),
  control("controls.nmi.window-needs-virtual-nmis", "NMI-window exiting ⇒ virtual NMIs", "nested_vmx_check_nmi_controls", SDM_EXEC, nmiWindowNeedsVirtualNmis),
  control("controls.pml.needs-ept", "enable PML ⇒ enable EPT", "nested_vmx_check_pml_controls", SDM_EXEC, pmlNeedsEpt),
  control("controls.pml.address", "enable PML ⇒ the PML address is a 4-KiB aligned legal GPA", "nested_vmx_check_pml_controls", SDM_EXEC, pmlAddress),
  control("controls.unrestricted-guest.needs-ept", "unrestricted guest ⇒ enable EPT", "nested_vmx_check_unrestricted_guest_controls", SDM_EXEC, unrestrictedNeedsEpt),
  control("controls.mode-based-ept.needs-ept", "mode-based execute control for EPT ⇒ enable EPT", "nested_vmx_check_mode_based_ept_exec_controls", SDM_EXEC, modeBasedEptNeedsEpt),
  control("controls.shadow-vmcs.bitmaps", "VMCS shadowing ⇒ VMREAD and VMWRITE bitmaps are 4-KiB aligned legal GPAs", "nested_vmx_check_shadow_vmcs_controls", SDM_EXEC, shadowVmcsBitmaps),
  control("controls.vpid.nonzero", "enable VPID ⇒ VPID is not 0", KVM_EXEC, SDM_EXEC, vpidNonZero),
  control("controls.preemption-timer.save-needs-activate", "save VMX-preemption timer (exit) ⇒ activate VMX-preemption timer (pin); KVM traces no CC here", KVM_EXEC, SDM_EXIT, saveTimerNeedsTimer),
  control("controls.eptp.memory-type", "EPTP memory type is UC or WB and advertised in IA32_VMX_EPT_VPID_CAP", "nested_vmx_check_eptp", SDM_EXEC, eptpMemoryType),
  control("controls.eptp.walk-length", "EPTP page-walk length is 4 or 5 and advertised", "nested_vmx_check_eptp", SDM_EXEC, eptpWalkLength),
  control("controls.eptp.reserved", "EPTP bits 11:7 are 0 and no address bit is at or above MAXPHYADDR", "nested_vmx_check_eptp", SDM_EXEC, eptpReserved),
  control("controls.eptp.accessed-dirty", "EPTP bit 6 (A/D flags) only if EPT A/D is advertised", "nested_vmx_check_eptp", SDM_EXEC, eptpAccessedDirty),
  control("controls.vmfunc.reserved", "enable VM functions ⇒ VM-function controls within IA32_VMX_VMFUNC", KVM_EXEC, SDM_EXEC, vmfuncReserved),
  control("controls.vmfunc.eptp-switching-needs-ept", "EPTP switching ⇒ enable EPT", KVM_EXEC, SDM_EXEC, eptpSwitchingNeedsEpt),
  control("controls.vmfunc.eptp-list-address", "EPTP switching ⇒ the EPTP-list address is a 4-KiB aligned legal GPA", KVM_EXEC, SDM_EXEC, eptpListAddress),
  // nested_check_vm_exit_controls
  control("controls.exit.reserved", "VM-exit controls within the TRUE allowed settings", KVM_EXIT, SDM_EXIT, exitReserved),
  control("controls.exit.msr-load-list", "VM-exit MSR-load list: count 0, or 16-byte aligned legal address and legal last byte", "nested_vmx_check_exit_msr_switch_controls", SDM_EXIT, exitMsrLoadList),
  control("controls.exit.msr-store-list", "VM-exit MSR-store list: count 0, or 16-byte aligned legal address and legal last byte", "nested_vmx_check_exit_msr_switch_controls", SDM_EXIT, exitMsrStoreList),
  // nested_check_vm_entry_controls
  control("controls.entry.reserved", "VM-entry controls within the TRUE allowed settings", KVM_ENTRY, SDM_ENTRY, entryReserved),
  control("controls.event-injection.type", "injected event type is not 1 (reserved), and 7 (other) only if MTF is offered", KVM_ENTRY, SDM_ENTRY, injectionTypeValid),
  control("controls.event-injection.vector", "injected NMI has vector 2, hardware exception vector ≤ 31, other event vector 0", KVM_ENTRY, SDM_ENTRY, injectionVector),
  control("controls.event-injection.deliver-error-code", "deliver-error-code is set exactly for hardware exceptions that push one, in protected mode", KVM_ENTRY, SDM_ENTRY, injectionErrorCodeFlag),
  control("controls.event-injection.error-code", "a delivered error code has bits 31:16 clear", KVM_ENTRY, SDM_ENTRY, injectionErrorCodeBits),
  control("controls.event-injection.reserved", "VM-entry interruption information bits 30:12 are 0", KVM_ENTRY, SDM_ENTRY, injectionReservedBits),
  control("controls.event-injection.instruction-length", "software interrupts/exceptions carry an instruction length of 1..15", KVM_ENTRY, SDM_ENTRY, injectionInstructionLength),
  control("controls.entry.msr-load-list", "VM-entry MSR-load list: count 0, or 16-byte aligned legal address and legal last byte", "nested_vmx_check_entry_msr_switch_controls", SDM_ENTRY, entryMsrLoadList),
  // nested_vmx_check_address_space_size
  rule("address-space.host-size-matches-lma", K.ADDRESS_SPACE_SIZE, ST.ADDRESS_SPACE_SIZE, "host address-space size exit control equals L1's current EFER.LMA", "nested_vmx_check_address_space_size", SDM_ADDR_SIZE, hostSizeMatchesLma),
  // nested_vmx_check_host_state
  host("host.cr0.fixed", "host CR0 obeys IA32_VMX_CR0_FIXED0/FIXED1 (PE, NE, PG set)", SDM_HOST_CR, hostCr0Fixed),
  host("host.cr4.valid", "host CR4 obeys IA32_VMX_CR4_FIXED0/FIXED1 (VMXE set) and L1's CPUID", SDM_HOST_CR, hostCr4Valid),
  host("host.cr3.reserved", "host CR3 has no bit at or above MAXPHYADDR (LAM bits allowed with LAM)", SDM_HOST_CR, hostCr3),
  host("host.cr4.cet-needs-wp", "host CR4.CET ⇒ host CR0.WP", SDM_HOST_CR, hostCetNeedsWp),
  host("host.sysenter.canonical", "host IA32_SYSENTER_ESP and _EIP are canonical (host CPU's width)", SDM_HOST_CR, hostSysenter),
  host("host.pat.valid", "load IA32_PAT (exit) ⇒ every host PAT entry is 0, 1, 4, 5, 6 or 7", SDM_HOST_CR, hostPat),
  host("host.perf-global-ctrl.valid", "load IA32_PERF_GLOBAL_CTRL (exit) ⇒ only bits of L1's vPMU counters", SDM_HOST_CR, hostPerfGlobalCtrl),
  host("host.ia32e.cr4-pae", "host address-space size ⇒ host CR4.PAE", SDM_ADDR_SIZE, hostCr4PaeFor64),
  host("host.non-ia32e.no-ia32e-guest", "no host address-space size ⇒ no IA-32e mode guest", SDM_ADDR_SIZE, hostNon64NoIa32eGuest),
  host("host.non-ia32e.cr4-pcide", "no host address-space size ⇒ host CR4.PCIDE clear", SDM_ADDR_SIZE, hostNon64NoPcide),
  host("host.non-ia32e.rip-high", "no host address-space size ⇒ host RIP bits 63:32 clear", SDM_ADDR_SIZE, hostNon64RipHigh),
  host("host.selectors.rpl-ti", "host CS, SS, DS, ES, FS, GS and TR selectors have RPL 0 and TI 0", SDM_HOST_SEG, hostSelectorsRplTi),
  host("host.selectors.cs-nonzero", "host CS selector is not 0", SDM_HOST_SEG, hostCsNonZero),
  host("host.selectors.tr-nonzero", "host TR selector is not 0", SDM_HOST_SEG, hostTrNonZero),
  host("host.selectors.ss-nonzero", "host SS selector is not 0 unless host address-space size is 1", SDM_HOST_SEG, hostSsNonZero),
  host("host.bases.canonical", "host FS, GS, GDTR, IDTR and TR bases are canonical (host CPU's width)", SDM_HOST_SEG, hostBasesCanonical),
  host("host.rip.canonical", "host RIP is canonical for L1's current paging width", SDM_ADDR_SIZE, hostRipCanonical),
  host("host.efer.reserved", "load IA32_EFER (exit) ⇒ host EFER sets no bit L1's CPUID reserves", SDM_HOST_CR, hostEferReserved),
  host("host.efer.long-mode", "load IA32_EFER (exit) ⇒ host EFER.LMA and .LME equal host address-space size", SDM_HOST_CR, hostEferLongMode),
  // nested_vmx_check_guest_state
  guest("guest.cr0.fixed", "guest CR0 obeys the fixed bits (PE/PG free under unrestricted guest)", KVM_GUEST, SDM_GUEST_CR, guestCr0Fixed),
  guest("guest.cr4.valid", "guest CR4 obeys the fixed bits (VMXE set) and L1's CPUID", KVM_GUEST, SDM_GUEST_CR, guestCr4Valid),
  guest("guest.cr4.cet-needs-wp", "guest CR4.CET ⇒ guest CR0.WP", KVM_GUEST, SDM_GUEST_CR, guestCetNeedsWp),
  guest("guest.dr7.reserved", "load debug controls ⇒ guest DR7 bits 63:32 clear", KVM_GUEST, SDM_GUEST_CR, guestDr7),
  guest("guest.debugctl.valid", "load debug controls ⇒ guest IA32_DEBUGCTL only sets bits KVM supports for L1", KVM_GUEST, SDM_GUEST_CR, guestDebugctl),
  guest("guest.pat.valid", "load IA32_PAT (entry) ⇒ every guest PAT entry is 0, 1, 4, 5, 6 or 7", KVM_GUEST, SDM_GUEST_CR, guestPat),
  guest("guest.vmcs-link.address", "VMCS link pointer is all ones or a 4-KiB aligned legal GPA", KVM_LINK, SDM_GUEST_NONREG, linkPointerAddress, LINK),
  guest("guest.vmcs-link.readable", "VMCS link pointer names 4 KiB of backed memory", KVM_LINK, SDM_GUEST_NONREG, linkPointerReadable, LINK),
  guest("guest.vmcs-link.revision", "the VMCS at the link pointer has revision 0x11e57ed0", KVM_LINK, SDM_GUEST_NONREG, linkPointerRevision, LINK),
  guest("guest.vmcs-link.shadow-indicator", "its shadow-VMCS indicator equals the VMCS-shadowing control", KVM_LINK, SDM_GUEST_NONREG, linkPointerShadowBit, LINK),
  guest("guest.perf-global-ctrl.valid", "load IA32_PERF_GLOBAL_CTRL (entry) ⇒ only bits of L1's vPMU counters", KVM_GUEST, SDM_GUEST_CR, guestPerfGlobalCtrl),
  guest("guest.cr0.pg-needs-pe", "guest CR0.PG ⇒ guest CR0.PE", KVM_GUEST, SDM_GUEST_CR, guestPagingWithoutProtection),
  guest("guest.ia32e.cr4-pae", "IA-32e mode guest ⇒ guest CR4.PAE", KVM_GUEST, SDM_GUEST_CR, ia32eNeedsPae),
  guest("guest.ia32e.cr0-pg", "IA-32e mode guest ⇒ guest CR0.PG", KVM_GUEST, SDM_GUEST_CR, ia32eNeedsPaging),
  guest("guest.efer.reserved", "load IA32_EFER (entry) ⇒ guest EFER sets no bit L1's CPUID reserves", KVM_GUEST, SDM_GUEST_CR, guestEferReserved),
  guest("guest.efer.lma", "load IA32_EFER (entry) ⇒ guest EFER.LMA equals IA-32e mode guest", KVM_GUEST, SDM_GUEST_CR, guestEferLma),
  guest("guest.efer.lme", "load IA32_EFER (entry) and guest CR0.PG ⇒ guest EFER.LME equals IA-32e mode guest", KVM_GUEST, SDM_GUEST_CR, guestEferLme),
  guest("guest.bndcfgs.canonical", "load IA32_BNDCFGS ⇒ the bound-directory base is canonical", KVM_GUEST, SDM_GUEST_CR, guestBndcfgsCanonical),
  guest("guest.bndcfgs.reserved", "load IA32_BNDCFGS ⇒ bits 11:2 clear", KVM_GUEST, SDM_GUEST_CR, guestBndcfgsReserved),
  guest("guest.activity-state", "activity state is active, HLT or wait-for-SIPI (KVM offers no shutdown state)", "nested_check_guest_non_reg_state", SDM_GUEST_NONREG, guestActivityState),
  // prepare_vmcs02
  rule("guest.segments.kvm-emulation", K.GUEST_STATE, ST.PREPARE_VMCS02, "without unrestricted guest for L2, segments pass KVM's own validity checks", "prepare_vmcs02 → vmx_guest_state_valid", SDM_GUEST_SEG, guestEmulationRequired),
  rule("guest.cr3.reserved", K.GUEST_STATE, ST.PREPARE_VMCS02, "guest CR3 has no bit at or above MAXPHYADDR (LAM bits allowed with LAM)", "nested_vmx_load_cr3", SDM_GUEST_CR, guestCr3),
  rule("guest.pdptes.load", K.GUEST_STATE, ST.PREPARE_VMCS02, "PAE paging without EPT ⇒ the four PDPTEs at CR3 are readable and have no reserved bit set", "nested_vmx_load_cr3 → load_pdptrs", SDM_GUEST_PDPTE, guestPdptesFromMemory, ENTRY_FAIL.ENTRY_FAIL_PDPTE),
  // nested_vmx_load_msr
  rule("msr-load.entries", K.MSR_LOAD, ST.LOAD_MSRS, "each VM-entry MSR-load entry is readable, allowed (no FS/GS base, SMM monitor, microcode, x2APIC with x2APIC on), reserved 0, within 512·(N+1), and writable", "nested_vmx_load_msr", SDM_MSR_LOAD, entryMsrLoad),
  // the CPU on vmcs02: controls
  rule("controls.virtual-apic.backed", K.CONTROLS, ST.HARDWARE, "use TPR shadow ⇒ the virtual-APIC page is backed, unless CR8 exits let KVM drop the TPR shadow", `nested_get_vmcs12_pages; ${HW_CONTROLS}`, SDM_EXEC, virtualApicBacked),
  rule("controls.tpr-threshold.reserved", K.CONTROLS, ST.HARDWARE, "use TPR shadow without virtual-interrupt delivery ⇒ TPR threshold bits 31:4 clear", `prepare_vmcs02_early; ${HW_CONTROLS}`, SDM_EXEC, tprThresholdReserved),
  rule("controls.tpr-threshold.vtpr", K.CONTROLS, ST.HARDWARE, "TPR shadow without VID or APIC-access virtualization ⇒ threshold[3:0] ≤ VTPR[7:4]", `prepare_vmcs02_early; ${HW_CONTROLS}`, SDM_EXEC, tprThresholdAboveVtpr),
  // the CPU on vmcs02: guest state
  hardwareGuest("guest.cr4.pcide-needs-ia32e", "guest CR4.PCIDE ⇒ IA-32e mode guest", SDM_GUEST_CR, guestPcideNeedsIa32e),
  hardwareGuest("guest.sysenter.canonical", "guest IA32_SYSENTER_ESP and _EIP are canonical", SDM_GUEST_CR, guestSysenter),
  hardwareGuest("guest.selectors.tr-ti", "guest TR selector has TI 0", SDM_GUEST_SEG, guestTrTi),
  hardwareGuest("guest.selectors.ldtr-ti", "usable guest LDTR selector has TI 0", SDM_GUEST_SEG, guestLdtrTi),
  hardwareGuest("guest.selectors.ss-rpl", "without unrestricted guest or virtual-8086 mode, SS.RPL equals CS.RPL", SDM_GUEST_SEG, guestSsRpl),
  hardwareGuest("guest.v86.segments", "virtual-8086 guest ⇒ CS..GS base = selector × 16, limit 0xffff, access rights 0xf3", SDM_GUEST_SEG, guestV86Segments),
  hardwareGuest("guest.bases.tr-fs-gs-canonical", "guest TR, FS and GS bases are canonical", SDM_GUEST_SEG, guestBasesCanonical),
  hardwareGuest("guest.bases.ldtr-canonical", "usable guest LDTR base is canonical", SDM_GUEST_SEG, guestLdtrBaseCanonical),
  hardwareGuest("guest.bases.cs-high", "guest CS base bits 63:32 clear", SDM_GUEST_SEG, guestCsBaseHigh),
  hardwareGuest("guest.bases.ss-ds-es-high", "usable guest SS, DS, ES bases have bits 63:32 clear", SDM_GUEST_SEG, guestSsDsEsBaseHigh),
  hardwareGuest("guest.ar.cs", "guest CS access rights: accessed code (or type 3 with UG), S, DPL vs SS, P, reserved, L/D, G vs limit", SDM_GUEST_SEG, guestCsAccessRights),
  hardwareGuest("guest.ar.ss", "guest SS access rights: DPL rules; if usable type 3/7, S, P, reserved, G vs limit", SDM_GUEST_SEG, guestSsAccessRights),
  hardwareGuest("guest.ar.data", "usable guest DS, ES, FS, GS: accessed, readable if code, S, P, DPL ≥ RPL, reserved, G vs limit", SDM_GUEST_SEG, guestDataAccessRights),
  hardwareGuest("guest.ar.tr", "guest TR: busy TSS (64-bit in IA-32e mode), S clear, P, usable, reserved, G vs limit", SDM_GUEST_SEG, guestTrAccessRights),
  hardwareGuest("guest.ar.ldtr", "usable guest LDTR: type 2, S clear, P, reserved, G vs limit", SDM_GUEST_SEG, guestLdtrAccessRights),
  hardwareGuest("guest.gdtr-idtr.base-canonical", "guest GDTR and IDTR bases are canonical", SDM_GUEST_DT, guestDescriptorTableBases),
  hardwareGuest("guest.gdtr-idtr.limit", "guest GDTR and IDTR limits have bits 31:16 clear", SDM_GUEST_DT, guestDescriptorTableLimits),
  hardwareGuest("guest.rip", "guest RIP: bits 63:32 clear outside 64-bit mode, canonical in it", SDM_GUEST_RIP, guestRip),
  hardwareGuest("guest.rflags.reserved", "guest RFLAGS bits 63:22, 15, 5, 3 clear and bit 1 set", SDM_GUEST_RIP, guestRflagsReserved),
  hardwareGuest("guest.rflags.vm", "guest RFLAGS.VM clear in IA-32e mode and with CR0.PE clear", SDM_GUEST_RIP, guestRflagsVm),
  hardwareGuest("guest.rflags.if-for-ext-int", "injecting an external interrupt ⇒ guest RFLAGS.IF", SDM_GUEST_RIP, guestRflagsIfForExtInt),
  hardwareGuest("guest.interruptibility.reserved", "guest interruptibility bits 31:5 clear", SDM_GUEST_NONREG, guestInterruptibilityReserved),
  hardwareGuest("guest.interruptibility.sti-and-mov-ss", "blocking by STI and by MOV SS are not both set", SDM_GUEST_NONREG, guestStiAndMovSs),
  hardwareGuest("guest.interruptibility.sti-needs-if", "blocking by STI ⇒ RFLAGS.IF", SDM_GUEST_NONREG, guestStiNeedsIf),
  hardwareGuest("guest.interruptibility.ext-int-injection", "injecting an external interrupt ⇒ no blocking by STI or MOV SS", SDM_GUEST_NONREG, guestExtIntInjectionBlocked),
  hardwareGuest("guest.interruptibility.nmi-injection", "injecting an NMI ⇒ no blocking by MOV SS", SDM_GUEST_NONREG, guestNmiInjectionMovSs),
  hardwareGuest("guest.interruptibility.smi", "blocking by SMI clear (vmcs02 is never entered from SMM)", SDM_GUEST_NONREG, guestSmiBlocking),
  hardwareGuest("guest.interruptibility.nmi-injection-virtual-nmi", "injecting an NMI with virtual NMIs in vmcs02 (L0's enable_vnmi or vmcs12's) ⇒ no blocking by NMI", SDM_GUEST_NONREG, guestNmiInjectionVirtualNmiBlocked),
  hardwareGuest("guest.interruptibility.enclave", "enclave interruption ⇒ no blocking by MOV SS, and the host CPU has SGX", SDM_GUEST_NONREG, guestEnclaveInterruption),
  hardwareGuest("guest.pending-debug.reserved", "pending debug exceptions: bits 63:17, 15, 13, 11:4 clear (16 too without RTM)", SDM_GUEST_NONREG, guestPendingDebugReserved),
  hardwareGuest("guest.pending-debug.single-step", "blocking by STI or MOV SS ⇒ pending BS equals RFLAGS.TF (on vmcs02: active state, BTF 0)", SDM_GUEST_NONREG, guestPendingSingleStep),
  hardwareGuest("guest.pdptes.fields", "PAE paging with EPT ⇒ the four PDPTE fields have no reserved bit set", SDM_GUEST_PDPTE, guestPdpteFields, ENTRY_FAIL.ENTRY_FAIL_PDPTE),
]);

/** A rule by id, or undefined. */
export function entryCheckRule(id: string): EntryCheckRule | undefined {
  return ENTRY_CHECK_RULES.find((r) => r.id === id);
}
