import { type CpuFeatures, CR4, EFER, MODERN_CPU, type PhysicalMemory } from "@nestvisor/x86-arch";
import { KVM_DEFAULT_VMX_CAPABILITIES, type VmxCapabilities } from "./capability-msrs";
import { CPU_BASED_CTLS } from "./controls";
import { EntryCheckDependencies } from "./entry-check-dependencies";
import { fieldByName } from "./field-catalog";
import { FIELD_WIDTH, type FieldWidth, vmcsFieldWidth } from "./field-encoding";
import { Vmcs12 } from "./vmcs12";
import type { Vmcs12Layout } from "./vmcs12-layout";

/**
 * What the nested VM-entry checks read (`entry-check-rules.ts`, run by `entry-checks.ts`): a
 * read-only view of vmcs12, the capability MSRs KVM reports to L1, what L1's CPUID and current
 * state say, what L0 (KVM and its host CPU) can do, and L1's guest-physical memory. Also the
 * allocation-free number helpers the rules share (legal GPA, canonical address, PAT).
 */

/** Read access to vmcs12 by encoding: `Vmcs12` satisfies it (VMREAD semantics, high half in `hi`). */
export interface Vmcs12Reader {
  /** Low 32 bits of the field (unsigned), or a negative number when vmcs12 does not store it. */
  read(encoding: number): number;
  /** High 32 bits of the last field read. */
  readonly hi: number;
}

/**
 * Facts about the L1 vCPU the checks depend on: its CPUID (kvm: guest_cpuid_has,
 * cpuid_maxphyaddr), its current registers, and per-VM KVM settings.
 */
export interface L1VcpuFacts {
  /** L1's CPUID: MAXPHYADDR bounds every guest-physical address; NX and LM decide valid EFER bits. */
  readonly cpu: CpuFeatures;
  /** L1's IA32_EFER, low word (LMA is compared with the host address-space size exit control). */
  readonly efer: number;
  /** L1's CR4, low word (LA57 sets the width HOST_RIP is checked against). */
  readonly cr4: number;
  /**
   * CR4 bits L1 may not set, as two words (kvm: cr4_reserved_bits | vcpu->arch.cr4_guest_rsvd_bits,
   * tested by __kvm_is_valid_cr4 after the fixed bits).
   */
  readonly cr4ReservedLo: number;
  readonly cr4ReservedHi: number;
  /** L1 may use LAM: CR3 bits 61 and 62 are then not address bits (kvm: kvm_vcpu_is_legal_cr3). */
  readonly lam: boolean;
  /** IA32_PERF_GLOBAL_CTRL bits L1's vPMU implements (kvm: ~pmu->global_ctrl_rsvd), two words. */
  readonly perfGlobalCtrlLo: number;
  readonly perfGlobalCtrlHi: number;
  /** IA32_DEBUGCTL bits KVM lets L1 set, low word (kvm: vmx_get_supported_debugctl). */
  readonly debugctlSupported: number;
  /** KVM_X86_QUIRK_VMCS12_ALLOW_FREEZE_IN_SMM (enabled unless userspace disables it). */
  readonly freezeInSmmQuirk: boolean;
  /** x2APIC mode is on in L1's IA32_APIC_BASE (x2APIC MSRs may not be in the MSR-load list). */
  readonly x2apicEnabled: boolean;
}

/** Facts about L0: KVM's module parameters and the host CPU that runs vmcs02. */
export interface L0HostFacts {
  /**
   * The host CPU has 5-level paging (kvm: kvm_cpu_cap_has(X86_FEATURE_LA57)): MSR-held addresses
   * and segment/descriptor-table bases are checked against 57 bits whatever L1's CR4.LA57 is
   * (kvm: is_noncanonical_msr_address, is_noncanonical_base_address).
   */
  readonly la57: boolean;
  /** enable_unrestricted_guest: KVM runs L2 in unrestricted-guest mode when vmcs12 asks for it. */
  readonly unrestrictedGuest: boolean;
  /** The host CPU has RTM: bit 16 of the pending-debug-exceptions field is not reserved (SDM 27.3.1.5). */
  readonly rtm: boolean;
  /**
   * enable_vnmi: vmcs01's pin-based controls have "virtual NMIs" (kvm: vmx_pin_based_exec_ctrl), and
   * vmcs02 inherits them (prepare_vmcs02_early ORs vmcs12's pin controls into vmcs01's), so the CPU
   * applies its virtual-NMI checks to L2 whatever vmcs12 asks.
   */
  readonly virtualNmis: boolean;
  /**
   * The host CPU enumerates SGX (CPUID.(EAX=7,ECX=0):EBX[2]): the CPU accepts the enclave-interruption
   * bit of the interruptibility state (SDM 27.3.1.5).
   */
  readonly sgx: boolean;
}

/** The VM-entry MSR-load list writes through this (kvm: kvm_set_msr); false = the WRMSR is refused. */
export type MsrWriter = (index: number, lo: number, hi: number) => boolean;

/** Everything one nested VM entry is checked against. */
export interface NestedEntryInput {
  readonly vmcs12: Vmcs12Reader;
  readonly caps: VmxCapabilities;
  readonly vcpu: L1VcpuFacts;
  readonly host: L0HostFacts;
  /** L1's guest-physical memory; [0, size) is backed (a memslot), anything above is not. */
  readonly memory: PhysicalMemory;
  /** Applies each VM-entry MSR-load entry in order; when absent every write is accepted. */
  readonly writeMsr?: MsrWriter;
}

/** IA32_DEBUGCTL bits (SDM Vol. 3B 18.4.1; kvm: DEBUGCTLMSR_*). */
export const DEBUGCTL = {
  LBR: 1 << 0,
  BTF: 1 << 1,
  BUS_LOCK_DETECT: 1 << 2,
  FREEZE_LBRS_ON_PMI: 1 << 11,
  FREEZE_IN_SMM: 1 << 14,
  RTM_DEBUG: 1 << 15,
} as const;

/**
 * A typical 64-bit L1 (Linux) on `MODERN_CPU`: long mode with NX, 4-level paging, x2APIC, a vPMU
 * with 8 general-purpose and 3 fixed counters, LBRs, bus-lock detection; no LAM.
 */
export const DEFAULT_L1_VCPU_FACTS: L1VcpuFacts = Object.freeze({
  cpu: MODERN_CPU,
  efer: (EFER.SCE | EFER.LME | EFER.LMA | EFER.NXE) >>> 0,
  cr4:
    (CR4.DE |
      CR4.PSE |
      CR4.PAE |
      CR4.PGE |
      CR4.OSFXSR |
      CR4.OSXMMEXCPT |
      CR4.VMXE |
      CR4.FSGSBASE |
      CR4.PCIDE |
      CR4.OSXSAVE |
      CR4.SMEP |
      CR4.SMAP) >>>
    0,
  // What CR4_FIXED1 allows is what L1's CPUID allows (kvm: nested_vmx_cr_fixed1_bits_update).
  cr4ReservedLo: ~KVM_DEFAULT_VMX_CAPABILITIES.cr4Fixed1.lo >>> 0,
  cr4ReservedHi: 0xffffffff,
  lam: false,
  perfGlobalCtrlLo: 0xff,
  perfGlobalCtrlHi: 0x7,
  debugctlSupported: DEBUGCTL.LBR | DEBUGCTL.BTF | DEBUGCTL.BUS_LOCK_DETECT | DEBUGCTL.FREEZE_LBRS_ON_PMI,
  freezeInSmmQuirk: true,
  x2apicEnabled: true,
});

/**
 * A modern host with KVM's default module parameters (`MODERN_CPU` has LA57; virtual NMIs on, as
 * enable_vnmi defaults; RTM and SGX are assumed off).
 */
export const DEFAULT_L0_HOST_FACTS: L0HostFacts = Object.freeze({
  la57: MODERN_CPU.la57,
  unrestrictedGuest: true,
  rtm: false,
  virtualNmis: true,
  sgx: false,
});

/** `DEFAULT_L1_VCPU_FACTS` with overrides. */
export function l1VcpuFacts(overrides: Partial<L1VcpuFacts> = {}): L1VcpuFacts {
  return Object.freeze({ ...DEFAULT_L1_VCPU_FACTS, ...overrides });
}

/** `DEFAULT_L0_HOST_FACTS` with overrides. */
export function l0HostFacts(overrides: Partial<L0HostFacts> = {}): L0HostFacts {
  return Object.freeze({ ...DEFAULT_L0_HOST_FACTS, ...overrides });
}

/**
 * True when bits 63:maxPhysAddr of a 64-bit address are clear (kvm: kvm_vcpu_is_legal_gpa). Only
 * the high word matters: MAXPHYADDR is at least 32.
 */
export function isLegalGpa(hi: number, maxPhysAddr: number): boolean {
  return hi >>> (maxPhysAddr - 32) === 0;
}

/**
 * True when (lo, hi) is aligned to `alignment` (a power of two up to 4096) and legal (kvm:
 * kvm_vcpu_is_legal_aligned_gpa; `page_address_valid` with 4096).
 */
export function isLegalAlignedGpa(lo: number, hi: number, alignment: number, maxPhysAddr: number): boolean {
  return (lo & (alignment - 1)) === 0 && hi >>> (maxPhysAddr - 32) === 0;
}

/**
 * True when (lo, hi) is canonical for a `bits`-wide linear address (48 or 57): bits 63:bits-1 all
 * equal (kvm: __is_canonical_address).
 */
export function isCanonical(hi: number, bits: number): boolean {
  const top = hi >> (bits - 33);
  return top === 0 || top === -1;
}

/** True when every byte of (lo, hi) is a valid memory type: 0, 1, 4, 5, 6 or 7 (kvm: kvm_pat_valid). */
export function isValidPat(lo: number, hi: number): boolean {
  for (let shift = 0; shift < 32; shift += 8) {
    const a = (lo >>> shift) & 0xff;
    const b = (hi >>> shift) & 0xff;
    if (a > 7 || a === 2 || a === 3 || b > 7 || b === 2 || b === 3) return false;
  }
  return true;
}

/**
 * EFER bits a vCPU may set on an Intel host (kvm: kvm_valid_efer; efer_reserved_bits leaves SCE,
 * LME, LMA and NXE, and __kvm_valid_efer needs CPUID LM for LME/LMA and NX for NXE).
 */
export function validEferMask(cpu: CpuFeatures): number {
  return (EFER.SCE | (cpu.lm ? EFER.LME | EFER.LMA : 0) | (cpu.nx ? EFER.NXE : 0)) >>> 0;
}

/** True when [pa, pa + length) lies in backed memory (a memslot; kvm_vcpu_read_guest succeeds). */
export function isBacked(memory: PhysicalMemory, lo: number, hi: number, length: number): boolean {
  const pa = hi * 4294967296 + lo;
  return hi < 0x100000 && pa + length <= memory.size;
}

function encodingOf(name: string): number {
  const f = fieldByName(name);
  if (f === undefined) throw new Error(`field catalog lacks ${name}`);
  return f.encoding;
}

/** The vmcs12 encodings the checks read, resolved once from the field catalog. */
export const ENTRY_FIELD = Object.freeze({
  PIN: encodingOf("PIN_BASED_VM_EXEC_CONTROL"),
  PROC: encodingOf("CPU_BASED_VM_EXEC_CONTROL"),
  PROC2: encodingOf("SECONDARY_VM_EXEC_CONTROL"),
  EXIT: encodingOf("VM_EXIT_CONTROLS"),
  ENTRY: encodingOf("VM_ENTRY_CONTROLS"),
  CR3_TARGET_COUNT: encodingOf("CR3_TARGET_COUNT"),
  IO_BITMAP_A: encodingOf("IO_BITMAP_A"),
  IO_BITMAP_B: encodingOf("IO_BITMAP_B"),
  MSR_BITMAP: encodingOf("MSR_BITMAP"),
  VIRTUAL_APIC_PAGE_ADDR: encodingOf("VIRTUAL_APIC_PAGE_ADDR"),
  APIC_ACCESS_ADDR: encodingOf("APIC_ACCESS_ADDR"),
  POSTED_INTR_NV: encodingOf("POSTED_INTR_NV"),
  POSTED_INTR_DESC_ADDR: encodingOf("POSTED_INTR_DESC_ADDR"),
  PML_ADDRESS: encodingOf("PML_ADDRESS"),
  VMREAD_BITMAP: encodingOf("VMREAD_BITMAP"),
  VMWRITE_BITMAP: encodingOf("VMWRITE_BITMAP"),
  VIRTUAL_PROCESSOR_ID: encodingOf("VIRTUAL_PROCESSOR_ID"),
  EPT_POINTER: encodingOf("EPT_POINTER"),
  VM_FUNCTION_CONTROL: encodingOf("VM_FUNCTION_CONTROL"),
  EPTP_LIST_ADDRESS: encodingOf("EPTP_LIST_ADDRESS"),
  TPR_THRESHOLD: encodingOf("TPR_THRESHOLD"),
  TSC_MULTIPLIER: encodingOf("TSC_MULTIPLIER"),
  VM_EXIT_MSR_LOAD_COUNT: encodingOf("VM_EXIT_MSR_LOAD_COUNT"),
  VM_EXIT_MSR_LOAD_ADDR: encodingOf("VM_EXIT_MSR_LOAD_ADDR"),
  VM_EXIT_MSR_STORE_COUNT: encodingOf("VM_EXIT_MSR_STORE_COUNT"),
  VM_EXIT_MSR_STORE_ADDR: encodingOf("VM_EXIT_MSR_STORE_ADDR"),
  VM_ENTRY_INTR_INFO: encodingOf("VM_ENTRY_INTR_INFO_FIELD"),
  VM_ENTRY_EXCEPTION_ERROR_CODE: encodingOf("VM_ENTRY_EXCEPTION_ERROR_CODE"),
  VM_ENTRY_INSTRUCTION_LEN: encodingOf("VM_ENTRY_INSTRUCTION_LEN"),
  VM_ENTRY_MSR_LOAD_COUNT: encodingOf("VM_ENTRY_MSR_LOAD_COUNT"),
  VM_ENTRY_MSR_LOAD_ADDR: encodingOf("VM_ENTRY_MSR_LOAD_ADDR"),
  HOST_CR0: encodingOf("HOST_CR0"),
  HOST_CR3: encodingOf("HOST_CR3"),
  HOST_CR4: encodingOf("HOST_CR4"),
  HOST_SYSENTER_ESP: encodingOf("HOST_IA32_SYSENTER_ESP"),
  HOST_SYSENTER_EIP: encodingOf("HOST_IA32_SYSENTER_EIP"),
  HOST_PAT: encodingOf("HOST_IA32_PAT"),
  HOST_PERF_GLOBAL_CTRL: encodingOf("HOST_IA32_PERF_GLOBAL_CTRL"),
  HOST_EFER: encodingOf("HOST_IA32_EFER"),
  HOST_RIP: encodingOf("HOST_RIP"),
  HOST_CS_SELECTOR: encodingOf("HOST_CS_SELECTOR"),
  HOST_SS_SELECTOR: encodingOf("HOST_SS_SELECTOR"),
  HOST_DS_SELECTOR: encodingOf("HOST_DS_SELECTOR"),
  HOST_ES_SELECTOR: encodingOf("HOST_ES_SELECTOR"),
  HOST_FS_SELECTOR: encodingOf("HOST_FS_SELECTOR"),
  HOST_GS_SELECTOR: encodingOf("HOST_GS_SELECTOR"),
  HOST_TR_SELECTOR: encodingOf("HOST_TR_SELECTOR"),
  HOST_FS_BASE: encodingOf("HOST_FS_BASE"),
  HOST_GS_BASE: encodingOf("HOST_GS_BASE"),
  HOST_TR_BASE: encodingOf("HOST_TR_BASE"),
  HOST_GDTR_BASE: encodingOf("HOST_GDTR_BASE"),
  HOST_IDTR_BASE: encodingOf("HOST_IDTR_BASE"),
  GUEST_CR0: encodingOf("GUEST_CR0"),
  GUEST_CR3: encodingOf("GUEST_CR3"),
  GUEST_CR4: encodingOf("GUEST_CR4"),
  GUEST_DR7: encodingOf("GUEST_DR7"),
  GUEST_DEBUGCTL: encodingOf("GUEST_IA32_DEBUGCTL"),
  GUEST_PAT: encodingOf("GUEST_IA32_PAT"),
  GUEST_EFER: encodingOf("GUEST_IA32_EFER"),
  GUEST_PERF_GLOBAL_CTRL: encodingOf("GUEST_IA32_PERF_GLOBAL_CTRL"),
  GUEST_BNDCFGS: encodingOf("GUEST_BNDCFGS"),
  GUEST_SYSENTER_ESP: encodingOf("GUEST_SYSENTER_ESP"),
  GUEST_SYSENTER_EIP: encodingOf("GUEST_SYSENTER_EIP"),
  VMCS_LINK_POINTER: encodingOf("VMCS_LINK_POINTER"),
  GUEST_ACTIVITY_STATE: encodingOf("GUEST_ACTIVITY_STATE"),
  GUEST_INTERRUPTIBILITY: encodingOf("GUEST_INTERRUPTIBILITY_INFO"),
  GUEST_PENDING_DBG: encodingOf("GUEST_PENDING_DBG_EXCEPTIONS"),
  GUEST_RIP: encodingOf("GUEST_RIP"),
  GUEST_RFLAGS: encodingOf("GUEST_RFLAGS"),
  GUEST_GDTR_BASE: encodingOf("GUEST_GDTR_BASE"),
  GUEST_GDTR_LIMIT: encodingOf("GUEST_GDTR_LIMIT"),
  GUEST_IDTR_BASE: encodingOf("GUEST_IDTR_BASE"),
  GUEST_IDTR_LIMIT: encodingOf("GUEST_IDTR_LIMIT"),
  GUEST_PDPTR0: encodingOf("GUEST_PDPTR0"),
  GUEST_PDPTR1: encodingOf("GUEST_PDPTR1"),
  GUEST_PDPTR2: encodingOf("GUEST_PDPTR2"),
  GUEST_PDPTR3: encodingOf("GUEST_PDPTR3"),
});

/** Guest segment registers in VMCS encoding order (SDM Appendix B: ES, CS, SS, DS, FS, GS, LDTR, TR). */
export const GUEST_SEGMENT = { ES: 0, CS: 1, SS: 2, DS: 3, FS: 4, GS: 5, LDTR: 6, TR: 7 } as const;
export const GUEST_SEGMENT_NAMES = ["ES", "CS", "SS", "DS", "FS", "GS", "LDTR", "TR"] as const;

const SEG_SELECTOR: readonly number[] = GUEST_SEGMENT_NAMES.map((s) => encodingOf(`GUEST_${s}_SELECTOR`));
const SEG_BASE: readonly number[] = GUEST_SEGMENT_NAMES.map((s) => encodingOf(`GUEST_${s}_BASE`));
const SEG_LIMIT: readonly number[] = GUEST_SEGMENT_NAMES.map((s) => encodingOf(`GUEST_${s}_LIMIT`));
const SEG_AR: readonly number[] = GUEST_SEGMENT_NAMES.map((s) => encodingOf(`GUEST_${s}_AR_BYTES`));

/** Encodings of a guest segment's four fields, for tests and reports. */
export function guestSegmentFields(seg: number): {
  readonly selector: number;
  readonly base: number;
  readonly limit: number;
  readonly ar: number;
} {
  return { selector: SEG_SELECTOR[seg]!, base: SEG_BASE[seg]!, limit: SEG_LIMIT[seg]!, ar: SEG_AR[seg]! };
}

/**
 * Context slots: one per vmcs12 field the checks read (encodings are below 0x8000; -1 for a field
 * without a slot), so that a field several rules consult is read from vmcs12 once per entry, plus
 * derived values. A rule's slots are what `entry-check-dependencies.ts` records for it.
 */
const CACHE_SLOT = new Int16Array(0x8000).fill(-1);
const SLOT_ENCODINGS: number[] = [];
for (const encoding of [
  ...Object.values(ENTRY_FIELD),
  ...SEG_SELECTOR,
  ...SEG_BASE,
  ...SEG_LIMIT,
  ...SEG_AR,
]) {
  if (CACHE_SLOT[encoding] === -1) {
    CACHE_SLOT[encoding] = SLOT_ENCODINGS.length;
    SLOT_ENCODINGS.push(encoding);
  }
}
/** Slots backed by a vmcs12 field: 0 .. FIELD_SLOTS − 1. */
const FIELD_SLOTS = SLOT_ENCODINGS.length;
/** Derived slot: the secondary controls as nested_cpu_has2 sees them (0 unless activated). */
const EFFECTIVE_PROC2_SLOT = FIELD_SLOTS;

/** Number of context slots (vmcs12 fields and derived values) a rule's dependencies range over. */
export const ENTRY_CHECK_SLOT_COUNT = FIELD_SLOTS + 1;

/** The context slot of a vmcs12 encoding, or -1 when reads of it are not cached (nor tracked). */
export function entryCheckSlot(encoding: number): number {
  return (encoding & 0x7fff) === encoding ? CACHE_SLOT[encoding]! : -1;
}

const PIN_SLOT = CACHE_SLOT[ENTRY_FIELD.PIN]!;
const PROC_SLOT = CACHE_SLOT[ENTRY_FIELD.PROC]!;
const PROC2_SLOT = CACHE_SLOT[ENTRY_FIELD.PROC2]!;
const EXIT_SLOT = CACHE_SLOT[ENTRY_FIELD.EXIT]!;
const ENTRY_SLOT = CACHE_SLOT[ENTRY_FIELD.ENTRY]!;

/** Where each field slot lives in a `Vmcs12` of one era: byte offset (-1 when not stored) and width. */
interface SlotLayout {
  readonly offsets: Int32Array;
  readonly widths: Uint8Array;
}

const SLOT_LAYOUTS = new WeakMap<Vmcs12Layout, SlotLayout>();

function slotLayout(vmcs12: Vmcs12): SlotLayout {
  let layout = SLOT_LAYOUTS.get(vmcs12.layout);
  if (layout === undefined) {
    const offsets = new Int32Array(FIELD_SLOTS);
    const widths = new Uint8Array(FIELD_SLOTS);
    for (let slot = 0; slot < FIELD_SLOTS; slot++) {
      const encoding = SLOT_ENCODINGS[slot]!;
      offsets[slot] = vmcs12.offsetOf(encoding);
      widths[slot] = vmcsFieldWidth(encoding);
    }
    layout = { offsets, widths };
    SLOT_LAYOUTS.set(vmcs12.layout, layout);
  }
  return layout;
}

/**
 * The state one run of the checks shares: the input plus the five control words read once. Reused
 * across entries (`reset`) so that checking allocates nothing.
 *
 * A tracked context (`track`) also records, for the rule being run (`enterRule`), which slots the
 * rule read and whether it did anything else that its slots do not determine: reading guest memory
 * content (`readGuest32`, `readGuest8`), writing an MSR (`setMsr`) or reading a field without a
 * slot. Rules therefore reach vmcs12, guest memory and the MSR writer only through these methods;
 * `memory` itself may be passed to `isBacked`, which depends on the memory's size alone.
 *
 * Read cache: a slot is valid when its generation is the current one. `reset` starts a generation;
 * `refresh` keeps it, re-validating every slot cached in it (the dependencies' union) against
 * vmcs12 and reporting which changed.
 */
export class EntryCheckContext {
  vmcs12!: Vmcs12Reader;
  caps: VmxCapabilities = KVM_DEFAULT_VMX_CAPABILITIES;
  vcpu: L1VcpuFacts = DEFAULT_L1_VCPU_FACTS;
  host: L0HostFacts = DEFAULT_L0_HOST_FACTS;
  memory!: PhysicalMemory;
  writeMsr: MsrWriter | undefined;
  /** High 32 bits of the last field read through `read`. */
  hi = 0;
  #pin = 0;
  #proc = 0;
  #procRaw2 = 0;
  #proc2 = 0;
  #exit = 0;
  #entry = 0;
  /** Per-entry read cache: values and the generation that filled each slot. */
  readonly #cacheLo = new Uint32Array(ENTRY_CHECK_SLOT_COUNT);
  readonly #cacheHi = new Uint32Array(ENTRY_CHECK_SLOT_COUNT);
  readonly #cacheGeneration = new Uint32Array(ENTRY_CHECK_SLOT_COUNT);
  #generation = 0;
  /** `vmcs12` when it is a `Vmcs12`, read by precomputed offsets; else null. */
  #fast: Vmcs12 | null = null;
  #offsets: Int32Array = new Int32Array(0);
  #widths: Uint8Array = new Uint8Array(0);
  /** Dependency recording (the tables of `#dependencies`); `#ruleBit` is 0 outside a rule. */
  #dependencies: EntryCheckDependencies;
  #tracked = false;
  #readers: Uint32Array;
  #union: Uint32Array;
  #opaque: Uint32Array;
  #ruleWords: number;
  #ruleWord = 0;
  #ruleBit = 0;
  /**
   * Change detection for `refresh`: the union's field slots as (vmcs12 word, mask, last value,
   * slot) entries for a `Vmcs12`, and as a slot list for any other reader. Rebuilt when the union
   * has grown (a cache miss).
   */
  #entriesStale = true;
  #entryCount = 0;
  readonly #entryWord = new Int32Array(2 * FIELD_SLOTS);
  readonly #entryMask = new Int32Array(2 * FIELD_SLOTS);
  readonly #entryValue = new Int32Array(2 * FIELD_SLOTS);
  readonly #entrySlot = new Int16Array(2 * FIELD_SLOTS);
  #slotListCount = 0;
  readonly #slotList = new Int16Array(FIELD_SLOTS);

  constructor() {
    this.#dependencies = new EntryCheckDependencies(0, ENTRY_CHECK_SLOT_COUNT);
    this.#readers = this.#dependencies.readers;
    this.#union = this.#dependencies.union;
    this.#opaque = this.#dependencies.opaque;
    this.#ruleWords = this.#dependencies.ruleWords;
  }

  /** Records into `dependencies` from now on (its slot count must be `ENTRY_CHECK_SLOT_COUNT`). */
  track(dependencies: EntryCheckDependencies): this {
    if (dependencies.slotCount !== ENTRY_CHECK_SLOT_COUNT) {
      throw new RangeError(
        `dependencies over ${dependencies.slotCount} slots, not ${ENTRY_CHECK_SLOT_COUNT}`,
      );
    }
    this.#dependencies = dependencies;
    this.#tracked = true;
    this.#readers = dependencies.readers;
    this.#union = dependencies.union;
    this.#opaque = dependencies.opaque;
    this.#ruleWords = dependencies.ruleWords;
    this.#ruleBit = 0;
    // The new union is not this generation's: start a new one.
    this.#nextGeneration();
    return this;
  }

  /** Starts recording for rule `rule` (no-op unless tracked); the rule is not opaque until it says so. */
  enterRule(rule: number): void {
    if (!this.#tracked) return;
    this.#ruleWord = rule >>> 5;
    this.#ruleBit = 1 << (rule & 31);
    this.#opaque[this.#ruleWord]! &= ~this.#ruleBit;
  }

  #note(slot: number): void {
    this.#readers[slot * this.#ruleWords + this.#ruleWord]! |= this.#ruleBit;
  }

  #nextGeneration(): void {
    if (this.#generation === 0xffffffff) {
      this.#cacheGeneration.fill(0);
      this.#generation = 0;
    }
    this.#generation++;
    // The union (and what the rules read) restarts with the generation.
    if (this.#tracked) this.#dependencies.clear();
    this.#entriesStale = true;
  }

  /** Points the context at one entry's input and reads the controls (a new cache generation). */
  reset(input: NestedEntryInput): this {
    this.#ruleBit = 0;
    this.vmcs12 = input.vmcs12;
    const vmcs12 = input.vmcs12;
    if (vmcs12 instanceof Vmcs12) {
      if (this.#fast === null || this.#fast.layout !== vmcs12.layout) {
        const layout = slotLayout(vmcs12);
        this.#offsets = layout.offsets;
        this.#widths = layout.widths;
      }
      this.#fast = vmcs12;
    } else {
      this.#fast = null;
    }
    // A new entry invalidates every cached field (vmcs12 does not change during the checks).
    this.#nextGeneration();
    this.caps = input.caps;
    this.vcpu = input.vcpu;
    this.host = input.host;
    this.memory = input.memory;
    this.writeMsr = input.writeMsr;
    this.#loadControls();
    return this;
  }

  /**
   * Starts an entry with the input objects of the last `reset` (tracked contexts only): keeps the
   * cache generation, re-reads from vmcs12 every slot cached in it and sets, in `changed` (a set of
   * slots), the bit of each whose value differs; reloads the control words. True if any changed.
   */
  refresh(changed: Uint32Array): boolean {
    if (!this.#tracked) throw new Error("refresh needs a tracked context");
    this.#ruleBit = 0;
    changed.fill(0);
    if (this.#entriesStale) this.#rebuildEntries();
    const cacheLo = this.#cacheLo;
    const cacheHi = this.#cacheHi;
    let any = false;
    const fast = this.#fast;
    if (fast !== null) {
      const words = fast.words;
      const entryWord = this.#entryWord;
      const entryMask = this.#entryMask;
      const entryValue = this.#entryValue;
      for (let k = 0; k < this.#entryCount; k++) {
        const value = words[entryWord[k]!]! & entryMask[k]!;
        if (value === entryValue[k]) continue;
        entryValue[k] = value;
        const slot = this.#entrySlot[k]!;
        const lo = fast.readAt(this.#offsets[slot]!, this.#widths[slot]! as FieldWidth);
        const hi = fast.hi;
        // Both halves of a 64-bit field have entries: the second finds the cache up to date.
        if (lo !== cacheLo[slot] || hi !== cacheHi[slot]) {
          cacheLo[slot] = lo;
          cacheHi[slot] = hi;
          changed[slot >>> 5]! |= 1 << (slot & 31);
          any = true;
        }
      }
    } else {
      const slots = this.#slotList;
      for (let k = 0; k < this.#slotListCount; k++) {
        const slot = slots[k]!;
        const lo = this.#readField(SLOT_ENCODINGS[slot]!);
        if (lo !== cacheLo[slot] || this.hi !== cacheHi[slot]) {
          cacheLo[slot] = lo;
          cacheHi[slot] = this.hi;
          changed[slot >>> 5]! |= 1 << (slot & 31);
          any = true;
        }
      }
    }
    if (this.#loadControls()) {
      changed[EFFECTIVE_PROC2_SLOT >>> 5]! |= 1 << (EFFECTIVE_PROC2_SLOT & 31);
      any = true;
    }
    return any;
  }

  /** Change-detection entries for the union's field slots, from the cached (last entry's) values. */
  #rebuildEntries(): void {
    const union = this.#union;
    const offsets = this.#offsets;
    const widths = this.#widths;
    const fast = this.#fast !== null;
    let n = 0;
    let m = 0;
    for (let slot = 0; slot < FIELD_SLOTS; slot++) {
      if ((union[slot >>> 5]! & (1 << (slot & 31))) === 0) continue;
      this.#slotList[m++] = slot;
      if (!fast) continue;
      const offset = offsets[slot]!;
      if (offset < 0) continue; // not stored in this era: always 0
      const lo = this.#cacheLo[slot]!;
      const word = offset >>> 2;
      switch (widths[slot]) {
        case FIELD_WIDTH.U16: {
          const shift = (offset & 2) << 3;
          n = this.#addEntry(n, slot, word, 0xffff << shift, lo << shift);
          break;
        }
        case FIELD_WIDTH.U32:
          n = this.#addEntry(n, slot, word, -1, lo);
          break;
        default:
          n = this.#addEntry(n, slot, word, -1, lo);
          n = this.#addEntry(n, slot, word + 1, -1, this.#cacheHi[slot]!);
      }
    }
    this.#entryCount = n;
    this.#slotListCount = m;
    this.#entriesStale = false;
  }

  #addEntry(n: number, slot: number, word: number, mask: number, value: number): number {
    this.#entrySlot[n] = slot;
    this.#entryWord[n] = word;
    this.#entryMask[n] = mask;
    this.#entryValue[n] = value & mask;
    return n + 1;
  }

  /** Reads the five control words; true when the effective secondary controls changed. */
  #loadControls(): boolean {
    this.#pin = this.read(ENTRY_FIELD.PIN);
    this.#proc = this.read(ENTRY_FIELD.PROC);
    this.#procRaw2 = this.read(ENTRY_FIELD.PROC2);
    this.#proc2 =
      (this.#proc & CPU_BASED_CTLS.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS) !== 0 ? this.#procRaw2 : 0;
    this.#exit = this.read(ENTRY_FIELD.EXIT);
    this.#entry = this.read(ENTRY_FIELD.ENTRY);
    const changed = this.#proc2 !== this.#cacheLo[EFFECTIVE_PROC2_SLOT];
    this.#cacheLo[EFFECTIVE_PROC2_SLOT] = this.#proc2;
    return changed;
  }

  /** A field from vmcs12 itself, 0 when not stored; the high half goes to `hi`. */
  #readField(encoding: number): number {
    const lo = this.vmcs12.read(encoding);
    if (lo < 0) {
      this.hi = 0;
      return 0;
    }
    this.hi = this.vmcs12.hi >>> 0;
    return lo >>> 0;
  }

  /** A field's low 32 bits (0 when vmcs12 does not store it); the high half goes to `hi`. */
  read(encoding: number): number {
    const slot = (encoding & 0x7fff) === encoding ? CACHE_SLOT[encoding]! : -1;
    if (slot < 0) {
      // Without a slot its value is not compared between entries: the rule must always run.
      this.#opaque[this.#ruleWord]! |= this.#ruleBit;
      return this.#readField(encoding);
    }
    this.#readers[slot * this.#ruleWords + this.#ruleWord]! |= this.#ruleBit;
    if (this.#cacheGeneration[slot] === this.#generation) {
      this.hi = this.#cacheHi[slot]!;
      return this.#cacheLo[slot]!;
    }
    // First read in this generation: the slot joins the union that `refresh` re-validates.
    this.#union[slot >>> 5]! |= 1 << (slot & 31);
    this.#entriesStale = true;
    let lo: number;
    const fast = this.#fast;
    if (fast !== null) {
      const offset = this.#offsets[slot]!;
      if (offset >= 0) {
        lo = fast.readAt(offset, this.#widths[slot]! as FieldWidth);
        this.hi = fast.hi;
      } else {
        lo = 0;
        this.hi = 0;
      }
    } else {
      lo = this.#readField(encoding);
    }
    this.#cacheLo[slot] = lo;
    this.#cacheHi[slot] = this.hi;
    this.#cacheGeneration[slot] = this.#generation;
    return lo;
  }

  /** Pin-based VM-execution controls. */
  get pin(): number {
    this.#note(PIN_SLOT);
    return this.#pin;
  }

  /** Primary processor-based VM-execution controls. */
  get proc(): number {
    this.#note(PROC_SLOT);
    return this.#proc;
  }

  /** Secondary controls as written, whether or not they are activated. */
  get procRaw2(): number {
    this.#note(PROC2_SLOT);
    return this.#procRaw2;
  }

  /** Secondary controls as KVM's nested_cpu_has2 sees them: 0 unless "activate secondary controls". */
  get proc2(): number {
    this.#note(EFFECTIVE_PROC2_SLOT);
    return this.#proc2;
  }

  /** VM-exit controls. */
  get exit(): number {
    this.#note(EXIT_SLOT);
    return this.#exit;
  }

  /** VM-entry controls. */
  get entry(): number {
    this.#note(ENTRY_SLOT);
    return this.#entry;
  }

  /** kvm: nested_cpu_has2 — a secondary control counts only when secondary controls are active. */
  has2(bit: number): boolean {
    this.#note(EFFECTIVE_PROC2_SLOT);
    return (this.#proc2 & bit) !== 0;
  }

  /** A 32-bit word of L1's memory (check `isBacked` first). Makes the reading rule opaque. */
  readGuest32(pa: number): number {
    this.#opaque[this.#ruleWord]! |= this.#ruleBit;
    return this.memory.read32(pa);
  }

  /** A byte of L1's memory (check `isBacked` first). Makes the reading rule opaque. */
  readGuest8(pa: number): number {
    this.#opaque[this.#ruleWord]! |= this.#ruleBit;
    return this.memory.read8(pa);
  }

  /**
   * Writes an MSR of the VM-entry MSR-load list through `writeMsr` (kvm: kvm_set_msr); true when
   * accepted, as every write is without a writer. Makes the writing rule opaque.
   */
  setMsr(index: number, lo: number, hi: number): boolean {
    this.#opaque[this.#ruleWord]! |= this.#ruleBit;
    return this.writeMsr === undefined || this.writeMsr(index, lo, hi);
  }

  /** The MAXPHYADDR of L1's CPUID. */
  get maxPhysAddr(): number {
    return this.vcpu.cpu.maxPhysAddr;
  }

  /** kvm: page_address_valid on a 64-bit address field. */
  pageAddressValid(encoding: number): boolean {
    const lo = this.read(encoding);
    return isLegalAlignedGpa(lo, this.hi, 4096, this.vcpu.cpu.maxPhysAddr);
  }

  /** Width of MSR-held addresses and segment bases (kvm: max_host_virt_addr_bits). */
  get staticCanonicalBits(): number {
    return this.host.la57 ? 57 : 48;
  }

  guestSelector(seg: number): number {
    return this.read(SEG_SELECTOR[seg]!);
  }

  /** Low half of the base; the high half is in `hi`. */
  guestBase(seg: number): number {
    return this.read(SEG_BASE[seg]!);
  }

  guestLimit(seg: number): number {
    return this.read(SEG_LIMIT[seg]!);
  }

  guestAr(seg: number): number {
    return this.read(SEG_AR[seg]!);
  }
}
