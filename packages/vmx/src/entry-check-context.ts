import { type CpuFeatures, CR4, EFER, MODERN_CPU, type PhysicalMemory } from "@nestvisor/x86-arch";
import { KVM_DEFAULT_VMX_CAPABILITIES, type VmxCapabilities } from "./capability-msrs";
import { CPU_BASED_CTLS } from "./controls";
import { fieldByName } from "./field-catalog";

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
  /** kvm_caps.has_tsc_control: vmcs02 always uses TSC scaling, so a zero vmcs12 multiplier reaches hardware. */
  readonly tscScaling: boolean;
  /** The host CPU has RTM: bit 16 of the pending-debug-exceptions field is not reserved (SDM 27.3.1.5). */
  readonly rtm: boolean;
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

/** A modern host with KVM's default module parameters (`MODERN_CPU` has LA57; RTM is assumed off). */
export const DEFAULT_L0_HOST_FACTS: L0HostFacts = Object.freeze({
  la57: MODERN_CPU.la57,
  unrestrictedGuest: true,
  tscScaling: true,
  rtm: false,
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
 * Small cache slots for the fields the checks read, so that a field several rules consult is read
 * from vmcs12 once per entry: slot of each encoding (encodings are below 0x8000), -1 for none.
 */
const CACHE_SLOT = new Int16Array(0x8000).fill(-1);
let cacheSlots = 0;
for (const encoding of [
  ...Object.values(ENTRY_FIELD),
  ...SEG_SELECTOR,
  ...SEG_BASE,
  ...SEG_LIMIT,
  ...SEG_AR,
]) {
  if (CACHE_SLOT[encoding] === -1) CACHE_SLOT[encoding] = cacheSlots++;
}

/**
 * The state one run of the checks shares: the input plus the five control words read once. Reused
 * across entries (`reset`) so that checking allocates nothing.
 */
export class EntryCheckContext {
  vmcs12!: Vmcs12Reader;
  caps: VmxCapabilities = KVM_DEFAULT_VMX_CAPABILITIES;
  vcpu: L1VcpuFacts = DEFAULT_L1_VCPU_FACTS;
  host: L0HostFacts = DEFAULT_L0_HOST_FACTS;
  memory!: PhysicalMemory;
  writeMsr: MsrWriter | undefined;
  /** Pin-based, primary, raw secondary, VM-exit and VM-entry controls. */
  pin = 0;
  proc = 0;
  procRaw2 = 0;
  /** Secondary controls as KVM's nested_cpu_has2 sees them: 0 unless "activate secondary controls". */
  proc2 = 0;
  exit = 0;
  entry = 0;
  /** High 32 bits of the last field read through `read`. */
  hi = 0;
  /** Per-entry read cache: values and the generation that filled each slot. */
  readonly #cacheLo = new Uint32Array(cacheSlots);
  readonly #cacheHi = new Uint32Array(cacheSlots);
  readonly #cacheGeneration = new Uint32Array(cacheSlots);
  #generation = 0;

  /** Points the context at one entry's input and reads the controls. */
  reset(input: NestedEntryInput): this {
    this.vmcs12 = input.vmcs12;
    // A new entry invalidates every cached field (vmcs12 does not change during the checks).
    if (this.#generation === 0xffffffff) {
      this.#cacheGeneration.fill(0);
      this.#generation = 0;
    }
    this.#generation++;
    this.caps = input.caps;
    this.vcpu = input.vcpu;
    this.host = input.host;
    this.memory = input.memory;
    this.writeMsr = input.writeMsr;
    this.pin = this.read(ENTRY_FIELD.PIN);
    this.proc = this.read(ENTRY_FIELD.PROC);
    this.procRaw2 = this.read(ENTRY_FIELD.PROC2);
    this.proc2 = (this.proc & CPU_BASED_CTLS.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS) !== 0 ? this.procRaw2 : 0;
    this.exit = this.read(ENTRY_FIELD.EXIT);
    this.entry = this.read(ENTRY_FIELD.ENTRY);
    return this;
  }

  /** A field's low 32 bits (0 when vmcs12 does not store it); the high half goes to `hi`. */
  read(encoding: number): number {
    const slot = (encoding & 0x7fff) === encoding ? CACHE_SLOT[encoding]! : -1;
    if (slot >= 0 && this.#cacheGeneration[slot] === this.#generation) {
      this.hi = this.#cacheHi[slot]!;
      return this.#cacheLo[slot]!;
    }
    let lo = this.vmcs12.read(encoding);
    if (lo < 0) {
      lo = 0;
      this.hi = 0;
    } else {
      lo >>>= 0;
      this.hi = this.vmcs12.hi >>> 0;
    }
    if (slot >= 0) {
      this.#cacheLo[slot] = lo;
      this.#cacheHi[slot] = this.hi;
      this.#cacheGeneration[slot] = this.#generation;
    }
    return lo;
  }

  /** kvm: nested_cpu_has2 — a secondary control counts only when secondary controls are active. */
  has2(bit: number): boolean {
    return (this.proc2 & bit) !== 0;
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
