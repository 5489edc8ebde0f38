import { CR0, CR4, DenseMemory, EFER, RFLAGS } from "@nestvisor/x86-arch";
import { adjustControls, KVM_DEFAULT_VMX_CAPABILITIES, type VmxCapabilities } from "../capability-msrs";
import {
  CPU_BASED_CTLS,
  PIN_BASED_CTLS,
  SECONDARY_EXEC_CTLS,
  VM_ENTRY_CTLS,
  VM_EXIT_CTLS,
} from "../controls";
import {
  DEFAULT_L0_HOST_FACTS,
  DEFAULT_L1_VCPU_FACTS,
  type L0HostFacts,
  type L1VcpuFacts,
  type MsrWriter,
  type NestedEntryInput,
} from "../entry-check-context";
import { checkNestedVmEntry, checkNestedVmEntryAll, type EntryCheckResult } from "../entry-checks";
import { fieldByName } from "../field-catalog";
import { Vmcs12 } from "../vmcs12";

/**
 * Test data: a vmcs12 that passes every VM-entry check, built the way kvm-unit-tests' init_vmcs
 * does (vmx-tests.md §0) — a 64-bit flat guest whose control and host state come from a typical
 * KVM L1 — plus the L1 memory and facts the checks read, and setters to break one thing at a time.
 */

/** Guest-physical layout of the fixture's 16 MiB of L1 memory. */
export const FIXTURE_GPA = {
  HOST_CR3: 0x2000,
  GUEST_CR3: 0x3000,
  GDT: 0x4000,
  IDT: 0x5000,
  MSR_LIST: 0x10000,
  VIRTUAL_APIC: 0x20000,
  APIC_ACCESS: 0x21000,
  IO_BITMAP_A: 0x22000,
  IO_BITMAP_B: 0x23000,
  MSR_BITMAP: 0x24000,
  VMREAD_BITMAP: 0x25000,
  VMWRITE_BITMAP: 0x26000,
  PML: 0x27000,
  EPT_PML4: 0x28000,
  POSTED_INTR_DESC: 0x29000,
  EPTP_LIST: 0x2a000,
  SHADOW_VMCS: 0x30000,
  PDPT: 0x31000,
  MEMORY_SIZE: 0x1000000,
} as const;

/** A WB, 4-level EPTP for the fixture's PML4 (SDM 25.6.11). */
export const FIXTURE_EPTP = FIXTURE_GPA.EPT_PML4 | (3 << 3) | 6;

/** Host CR0 of a Linux L1: PE, MP, ET, NE, WP, AM, PG. */
const LINUX_CR0 = (CR0.PE | CR0.MP | CR0.ET | CR0.NE | CR0.WP | CR0.AM | CR0.PG) >>> 0;
const LINUX_EFER = (EFER.SCE | EFER.LME | EFER.LMA | EFER.NXE) >>> 0;
/** The PAT Linux programs at boot (pat_init): WB, WC, UC-, UC, WB, WP, UC-, WT. */
const LINUX_PAT = 0x0407050600070106n;

/** One nested entry to check: vmcs12, capabilities, facts and memory, all mutable for a test. */
export class EntryFixture {
  readonly vmcs12 = new Vmcs12();
  readonly memory = new DenseMemory(FIXTURE_GPA.MEMORY_SIZE);
  caps: VmxCapabilities;
  vcpu: L1VcpuFacts;
  host: L0HostFacts;
  writeMsr: MsrWriter | undefined;

  constructor(caps: VmxCapabilities = KVM_DEFAULT_VMX_CAPABILITIES) {
    this.caps = caps;
    this.vcpu = DEFAULT_L1_VCPU_FACTS;
    this.host = DEFAULT_L0_HOST_FACTS;
  }

  /** Writes a field by name; numbers must be safe integers, bigints are taken modulo 2^64. */
  set(name: string, value: bigint | number): this {
    const field = fieldByName(name);
    if (field === undefined) throw new Error(`no VMCS field ${name}`);
    this.vmcs12.writeBig(field.encoding, typeof value === "bigint" ? value : BigInt(value));
    return this;
  }

  get(name: string): bigint {
    const field = fieldByName(name);
    if (field === undefined) throw new Error(`no VMCS field ${name}`);
    return this.vmcs12.readBig(field.encoding);
  }

  /** Sets bits in a 32-bit field. */
  setBits(name: string, bits: number): this {
    return this.set(name, (Number(this.get(name)) | bits) >>> 0);
  }

  /** Clears bits in a 32-bit field. */
  clearBits(name: string, bits: number): this {
    return this.set(name, (Number(this.get(name)) & ~bits) >>> 0);
  }

  /** Activates secondary controls and sets `bits` in them. */
  secondary(bits: number): this {
    this.setBits("CPU_BASED_VM_EXEC_CONTROL", CPU_BASED_CTLS.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS);
    return this.setBits("SECONDARY_VM_EXEC_CONTROL", bits);
  }

  /** Enables EPT with a valid WB 4-level EPTP. */
  ept(): this {
    this.set("EPT_POINTER", FIXTURE_EPTP);
    return this.secondary(SECONDARY_EXEC_CTLS.SECONDARY_EXEC_ENABLE_EPT);
  }

  /** Enables unrestricted guest (with EPT). */
  unrestricted(): this {
    return this.ept().secondary(SECONDARY_EXEC_CTLS.SECONDARY_EXEC_UNRESTRICTED_GUEST);
  }

  /** Turns the guest into a 32-bit protected-mode guest (flat segments, IA-32e off). */
  guest32(pae: boolean): this {
    this.clearBits("VM_ENTRY_CONTROLS", VM_ENTRY_CTLS.VM_ENTRY_IA32E_MODE);
    this.set("GUEST_IA32_EFER", EFER.SCE | EFER.NXE);
    this.set("GUEST_CS_AR_BYTES", 0xc09b);
    const cr4 = Number(this.get("GUEST_CR4"));
    this.set("GUEST_CR4", (pae ? cr4 & ~CR4.PCIDE : cr4 & ~(CR4.PAE | CR4.PCIDE)) >>> 0);
    return this;
  }

  /** Writes a VM-entry MSR-load list of (index, reserved, value) entries and points vmcs12 at it. */
  entryMsrList(entries: readonly (readonly [index: number, reserved: number, value: number])[]): this {
    entries.forEach(([index, reserved, value], i) => {
      const pa = FIXTURE_GPA.MSR_LIST + i * 16;
      this.memory.write32(pa, index);
      this.memory.write32(pa + 4, reserved);
      this.memory.write64(pa + 8, value >>> 0, Math.floor(value / 2 ** 32));
    });
    this.set("VM_ENTRY_MSR_LOAD_ADDR", FIXTURE_GPA.MSR_LIST);
    return this.set("VM_ENTRY_MSR_LOAD_COUNT", entries.length);
  }

  input(): NestedEntryInput {
    const base = {
      vmcs12: this.vmcs12,
      caps: this.caps,
      vcpu: this.vcpu,
      host: this.host,
      memory: this.memory,
    };
    return this.writeMsr === undefined ? base : { ...base, writeMsr: this.writeMsr };
  }

  check(): EntryCheckResult {
    return checkNestedVmEntry(this.input());
  }

  checkAll(): ReturnType<typeof checkNestedVmEntryAll> {
    return checkNestedVmEntryAll(this.input());
  }
}

/** The valid baseline (kvm-unit-tests init_vmcs, vmx-tests.md §0). */
export function baselineFixture(caps: VmxCapabilities = KVM_DEFAULT_VMX_CAPABILITIES): EntryFixture {
  const f = new EntryFixture(caps);
  const P = PIN_BASED_CTLS;
  const X = VM_EXIT_CTLS;
  const N = VM_ENTRY_CTLS;
  const pin = caps.truePinbasedCtls;
  const proc = caps.trueProcbasedCtls;
  const exit = caps.trueExitCtls;
  const entry = caps.trueEntryCtls;

  // Controls: interrupt and NMI exiting with virtual NMIs; load EFER/PAT and 64-bit host on
  // exit; load EFER and IA-32e guest on entry; no secondary controls; HLT exiting.
  f.set(
    "PIN_BASED_VM_EXEC_CONTROL",
    adjustControls(
      pin.lo,
      pin.hi,
      P.PIN_BASED_EXT_INTR_MASK | P.PIN_BASED_NMI_EXITING | P.PIN_BASED_VIRTUAL_NMIS,
    ),
  );
  f.set("CPU_BASED_VM_EXEC_CONTROL", adjustControls(proc.lo, proc.hi, CPU_BASED_CTLS.CPU_BASED_HLT_EXITING));
  f.set("SECONDARY_VM_EXEC_CONTROL", 0);
  f.set(
    "VM_EXIT_CONTROLS",
    adjustControls(
      exit.lo,
      exit.hi,
      X.VM_EXIT_LOAD_IA32_EFER | X.VM_EXIT_HOST_ADDR_SPACE_SIZE | X.VM_EXIT_LOAD_IA32_PAT,
    ),
  );
  f.set(
    "VM_ENTRY_CONTROLS",
    adjustControls(entry.lo, entry.hi, N.VM_ENTRY_LOAD_IA32_EFER | N.VM_ENTRY_IA32E_MODE),
  );
  f.set("CR3_TARGET_COUNT", 0);
  f.set("VIRTUAL_PROCESSOR_ID", 1);
  f.set("VMCS_LINK_POINTER", 0xffffffffffffffffn);

  // Host state of a Linux L1 (kernel CS 0x10, DS 0x18, TSS 0x40).
  const cr4 = DEFAULT_L1_VCPU_FACTS.cr4;
  f.set("HOST_CR0", LINUX_CR0);
  f.set("HOST_CR3", FIXTURE_GPA.HOST_CR3);
  f.set("HOST_CR4", cr4);
  f.set("HOST_IA32_EFER", LINUX_EFER);
  f.set("HOST_IA32_PAT", LINUX_PAT);
  f.set("HOST_CS_SELECTOR", 0x10);
  for (const s of ["SS", "DS", "ES", "FS", "GS"]) f.set(`HOST_${s}_SELECTOR`, 0x18);
  f.set("HOST_TR_SELECTOR", 0x40);
  f.set("HOST_FS_BASE", 0);
  f.set("HOST_GS_BASE", 0xffff888100000000n);
  f.set("HOST_TR_BASE", 0xfffffe0000003000n);
  f.set("HOST_GDTR_BASE", 0xfffffe0000001000n);
  f.set("HOST_IDTR_BASE", 0xfffffe0000000000n);
  f.set("HOST_IA32_SYSENTER_ESP", 0xfffffe0000002000n);
  f.set("HOST_IA32_SYSENTER_EIP", 0xffffffff81a00000n);
  f.set("HOST_RIP", 0xffffffff81000000n);
  f.set("HOST_RSP", 0xffffc90000004000n);

  // Guest: 64-bit flat segments (CS 0xa09b, data 0xc093, LDTR 0x82, busy 64-bit TSS 0x8b).
  f.set("GUEST_CR0", LINUX_CR0);
  f.set("GUEST_CR3", FIXTURE_GPA.GUEST_CR3);
  f.set("GUEST_CR4", cr4);
  f.set("GUEST_IA32_EFER", LINUX_EFER);
  f.set("GUEST_IA32_PAT", LINUX_PAT);
  f.set("GUEST_DR7", 0x400);
  f.set("GUEST_CS_SELECTOR", 0x8);
  f.set("GUEST_CS_BASE", 0);
  f.set("GUEST_CS_LIMIT", 0xffffffff);
  f.set("GUEST_CS_AR_BYTES", 0xa09b);
  for (const s of ["SS", "DS", "ES", "FS", "GS"]) {
    f.set(`GUEST_${s}_SELECTOR`, 0x10);
    f.set(`GUEST_${s}_BASE`, 0);
    f.set(`GUEST_${s}_LIMIT`, 0xffffffff);
    f.set(`GUEST_${s}_AR_BYTES`, 0xc093);
  }
  f.set("GUEST_LDTR_SELECTOR", 0);
  f.set("GUEST_LDTR_BASE", 0);
  f.set("GUEST_LDTR_LIMIT", 0xffff);
  f.set("GUEST_LDTR_AR_BYTES", 0x82);
  f.set("GUEST_TR_SELECTOR", 0x18);
  f.set("GUEST_TR_BASE", 0x6000);
  f.set("GUEST_TR_LIMIT", 0x67);
  f.set("GUEST_TR_AR_BYTES", 0x8b);
  f.set("GUEST_GDTR_BASE", FIXTURE_GPA.GDT);
  f.set("GUEST_GDTR_LIMIT", 0xffff);
  f.set("GUEST_IDTR_BASE", FIXTURE_GPA.IDT);
  f.set("GUEST_IDTR_LIMIT", 0xfff);
  f.set("GUEST_RIP", 0x400000);
  f.set("GUEST_RSP", 0x500000);
  f.set("GUEST_RFLAGS", RFLAGS.FIXED1);
  f.set("GUEST_ACTIVITY_STATE", 0);
  f.set("GUEST_INTERRUPTIBILITY_INFO", 0);
  f.set("GUEST_PENDING_DBG_EXCEPTIONS", 0);
  return f;
}
