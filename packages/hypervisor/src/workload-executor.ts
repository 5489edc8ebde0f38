import {
  CPU_BASED_CTLS,
  EXIT_REASON,
  type HardwareVmcs,
  type Meter,
  SECONDARY_EXEC_CTLS,
} from "@nestvisor/vmx";
import {
  ACCESS,
  AD_UPDATE,
  accessRightsFault,
  type CpuFeatures,
  CR4,
  createEptContext,
  createPagingContext,
  EPT_ACCESS,
  EPT_VIOLATION,
  type EptContext,
  eptTagOf,
  FAULT_STAGE,
  isPaePaging,
  loadPdptesInto,
  MODERN_CPU,
  MODERN_EPT_CAPABILITIES,
  PageWalker,
  type PagingContext,
  pdptAddress,
  TLB_FLAG,
  TLB_MISS,
  type Tlb,
  TwoDimensionalWalker,
  type WalkResult,
} from "@nestvisor/x86-arch";
import { GPR, type GuestContext } from "./guest-context";
import { activeSecondaryControls, type HardwareVmxCpu } from "./hardware-vmx-cpu";
import { HYPERVISOR_EVENTS as HV } from "./hypervisor-events";
import { vmcsInterceptsMsr } from "./msr-bitmap";
import { CR0_PDPTR_BITS, CR4_PDPTR_BITS } from "./pae-paging";
import { CURSOR_END, ProgramCursor } from "./program-cursor";
import { VMCS_FIELD as F, GUEST_PDPTR_FIELDS } from "./vmcs-field-encodings";
import {
  COMPUTE_SLOT,
  CPUID_SLOT,
  CR_SLOT,
  CR3_FLAG,
  IO_SLOT,
  MEM_SLOT,
  MSR_SLOT,
  OP,
  VMCALL_SLOT,
  type WorkloadProgram,
} from "./workload-ops";

const TWO_32 = 4294967296;
/** What loading the PDPTEs for a MOV to CR3/CR0/CR4 came to. */
const PDPTE_LOAD = { DONE: 0, EXITED: 1, FAULTED: 2 } as const;
/** Bit 8 of a leaf paging entry: G, global (SDM 4.10.2.4; the same bit in every paging mode). */
const LEAF_GLOBAL = 0x100;
/** Guest-linear address of operation i is RIP_BASE + i·16: every operation has its own RIP. */
export const RIP_BASE = 0x0010_0000;
const RIP_STRIDE = 16;

/** Instruction lengths the hardware reports (SDM Vol. 2 encodings of the usual forms). */
const LENGTH = Object.freeze({
  CPUID: 2,
  VMCALL: 3,
  HLT: 1,
  IO: 1,
  MSR: 2,
  MOV_CR: 3,
  INVLPG: 3,
  MEMORY: 3,
});

/** OP codes of the instructions that need CPL 0 (or IOPL): MOV to/from CR0/CR3/CR4 … HLT. */
const PRIVILEGED_OPS = (() => {
  let mask = 0;
  for (const op of [
    OP.MOV_TO_CR0,
    OP.MOV_TO_CR3,
    OP.MOV_TO_CR4,
    OP.MOV_FROM_CR0,
    OP.MOV_FROM_CR3,
    OP.MOV_FROM_CR4,
    OP.WRMSR,
    OP.RDMSR,
    OP.INVLPG,
    OP.IN,
    OP.OUT,
    OP.HLT,
  ])
    mask |= 1 << op;
  return mask >>> 0;
})();

/**
 * Exits in a row one operation may take before the run is called a livelock: a nested access
 * exits once per missing table at each level (a handful), so progress never comes near it.
 */
const MAX_RETRIES = 1000;

/** What a workload has done that a guest can see, accumulated as it runs (for differential checks). */
export class WorkloadObservations {
  /** FNV-1a over every value read from memory, CPUID/RDMSR/IN result and CR read, in order. */
  digest = 0x811c9dc5;
  /**
   * Faults the workload's guest took itself (the guest kernel's handler is not modelled: the
   * operation is skipped): page faults, and #GP from privileged instructions at CPL > 0.
   */
  guestFaults = 0;
  lastFaultErrorCode = 0;
  /** ITERATION markers passed. */
  iterations = 0;
  /** Operations completed. */
  operations = 0;

  mix(value: number): void {
    let h = this.digest;
    h = Math.imul(h ^ (value & 0xff), 0x01000193);
    h = Math.imul(h ^ ((value >>> 8) & 0xff), 0x01000193);
    h = Math.imul(h ^ ((value >>> 16) & 0xff), 0x01000193);
    h = Math.imul(h ^ (value >>> 24), 0x01000193);
    this.digest = h >>> 0;
  }
}

/**
 * The physical CPU executing a workload in VMX non-root operation (SDM Vol. 3C 26, "VMX Non-Root
 * Operation"): each operation either completes inside the guest, or causes a VM exit according to the
 * current VMCS (CPUID and VMCALL always; HLT, I/O, RDMSR/WRMSR, MOV to CR0/CR4, INVLPG by their
 * controls, bitmaps, guest/host masks and read shadows; EPT violations and misconfigurations from the
 * two-dimensional walk). After an exit the operation is retried unless the handler advanced RIP past
 * it — exactly how the model learns that a handler emulated an instruction.
 */
export class WorkloadExecutor {
  readonly hw: HardwareVmxCpu;
  readonly program: WorkloadProgram;
  readonly context: GuestContext;
  readonly cursor: ProgramCursor;
  readonly observations = new WorkloadObservations();
  readonly features: CpuFeatures;
  readonly #meter: Meter;
  /** Page tables of each address space (CR3 values), from the machine. */
  readonly #roots: readonly number[];
  /**
   * CR3 as the guest last loaded it (its architectural value). Under shadow paging GUEST_CR3 holds
   * KVM's shadow root instead, so a reload (`MOV RAX, CR3; MOV CR3, RAX`) takes the value from here.
   */
  #guestCr3: number;
  /** The operand of the MOV to CR3 in progress, committed to `#guestCr3` when it completes. */
  #cr3Operand = 0;
  /** Exits in a row that left the current operation where it was. */
  #retries = 0;
  readonly #walker: TwoDimensionalWalker;
  /** The one-dimensional walk of a VMCS without EPT (the processor walks KVM's shadow tables). */
  readonly #walker1d: PageWalker;
  /** The workload's privilege level (its setup's CPL). */
  readonly #cpl: number;
  readonly #eptContexts = new Map<number, EptContext>();
  #paging: PagingContext;
  /** The CR0/CR3/CR4/EFER the paging context was built from. */
  readonly #pagingRegs = new Float64Array([-1, -1, -1, -1]);
  /** Pass-through MSR values (the ones no bitmap intercepts). */
  readonly msrs = new Map<number, number>();
  #pending = false;
  /** The processor's TLB (`HardwareVmxCpu.tlb`). */
  readonly #tlb: Tlb;
  /** The PDPTE registers of PAE paging (SDM 4.4.1), as the paging context was last built with them. */
  readonly #pdptes = new Float64Array(4);
  /** Scratch for loading them. */
  readonly #pdpteLoad = new Float64Array(4);

  constructor(
    hw: HardwareVmxCpu,
    program: WorkloadProgram,
    context: GuestContext,
    roots: readonly number[],
    meter: Meter,
  ) {
    this.hw = hw;
    this.program = program;
    this.context = context;
    this.cursor = new ProgramCursor(program);
    this.features = MODERN_CPU;
    this.#meter = meter;
    this.#roots = roots;
    const setup = program.setup;
    this.#guestCr3 = roots[setup.initialAddressSpace] ?? 0;
    // PAE paging starts with placeholder PDPTEs: the first step loads the real ones (#refreshPaging).
    this.#paging = createPagingContext(
      {
        cr0: setup.cr0,
        cr3: roots[setup.initialAddressSpace] ?? 0,
        cr4: setup.cr4,
        efer: setup.efer,
        ...(isPaePaging(setup.cr0, setup.cr4, setup.efer) ? { pdptes: [0, 0, 0, 0] } : {}),
      },
      this.features,
    );
    const placeholder = createEptContext({ eptpLo: 0x1e, eptpHi: 0 }, MODERN_EPT_CAPABILITIES, 46);
    this.#walker = new TwoDimensionalWalker(hw.memory, this.#paging, placeholder, {
      guestAdUpdate: AD_UPDATE.HARDWARE,
      eptAdUpdate: AD_UPDATE.HARDWARE,
    });
    this.#walker1d = new PageWalker(hw.memory, { adUpdate: AD_UPDATE.HARDWARE });
    this.#cpl = setup.cpl;
    this.#tlb = hw.tlb;
  }

  /** Runs the program to its end, letting the hypervisors handle every exit on the way. */
  run(): void {
    const hw = this.hw;
    for (;;) {
      hw.drive();
      if (hw.running !== this.context) {
        throw new Error(
          `the workload's vCPU is not running after its exit was handled (running: ${hw.running?.name})`,
        );
      }
      if (!this.#step()) return;
    }
  }

  /** Executes operations until one exits (returns true) or the program ends (false). */
  #step(): boolean {
    const hw = this.hw;
    const cursor = this.cursor;
    const vmcs = hw.runningVmcs!;
    this.#refreshPaging(vmcs);
    for (;;) {
      let op: number;
      if (this.#pending) {
        // The operation that exited: completed if RIP moved past it, else retried — unless the
        // hypervisor injected an exception, which the guest takes instead (SDM 27.6).
        this.#pending = false;
        const rip = vmcs.read(F.GUEST_RIP) + vmcs.hi * TWO_32;
        const at = RIP_BASE + cursor.pc * RIP_STRIDE;
        const injected = vmcs.read(F.VM_ENTRY_INTR_INFO_FIELD);
        if ((injected & 0x8000_0000) !== 0) {
          vmcs.write(F.VM_ENTRY_INTR_INFO_FIELD, injected & 0x7fff_ffff);
          const errorCode = (injected & 0x800) !== 0 ? vmcs.read(F.VM_ENTRY_EXCEPTION_ERROR_CODE) : 0;
          // The guest sees the vector as it would a fault the processor raised itself
          // (`#generalProtection`; a #PF is told by its error code alone).
          if ((injected & 0xff) !== 14) this.observations.mix((injected & 0xff) << 16);
          this.#guestFault(errorCode);
          this.observations.operations++;
          this.#retries = 0;
          op = cursor.next();
        } else if (rip !== at) {
          this.#completeAfterExit(cursor.opcode);
          this.observations.operations++;
          this.#retries = 0;
          op = cursor.next();
        } else {
          op = cursor.opcode;
          // A guest livelocks when every exit leaves the operation where it was (a hypervisor that
          // never fixes what it faults on); real retries end within a few exits per level.
          if (++this.#retries > MAX_RETRIES) {
            throw new Error(
              `operation ${cursor.pc} of "${this.program.name}" exited ${MAX_RETRIES} times in a row ` +
                `without completing (last exit reason ${this.hw.exitInfo.reason}): the hypervisors make no progress`,
            );
          }
        }
      } else {
        this.#retries = 0;
        op = cursor.next();
      }
      if (op === CURSOR_END) return false;
      if (this.#execute(op, vmcs)) {
        this.#pending = true;
        return true;
      }
      this.observations.operations++;
    }
  }

  /** After an exit that emulated the operation: fold the guest-visible results into the digest. */
  #completeAfterExit(op: number): void {
    const g = this.context;
    const o = this.observations;
    switch (op) {
      case OP.CPUID:
        o.mix(g.gprLo[GPR.RAX]!);
        o.mix(g.gprLo[GPR.RBX]!);
        o.mix(g.gprLo[GPR.RCX]!);
        o.mix(g.gprLo[GPR.RDX]!);
        break;
      case OP.VMCALL:
      case OP.IN:
        o.mix(g.gprLo[GPR.RAX]!);
        break;
      case OP.READ:
        // A load KVM emulated (MMIO): mixed as #dataAccess mixes a load from RAM.
        o.mix(g.loadedLo);
        if (g.accessBytes === 8) o.mix(g.loadedHi);
        break;
      case OP.RDMSR:
        o.mix(g.gprLo[GPR.RAX]!);
        o.mix(g.gprLo[GPR.RDX]!);
        break;
      case OP.MOV_FROM_CR0:
      case OP.MOV_FROM_CR4:
      case OP.MOV_FROM_CR3:
        o.mix(g.gprLo[GPR.RAX]!);
        break;
      case OP.MOV_TO_CR3:
        this.#guestCr3 = this.#cr3Operand;
        break;
      default:
        break;
    }
  }

  /** Executes one operation; true when it caused a VM exit (the exit has been handled). */
  #execute(op: number, vmcs: HardwareVmcs): boolean {
    const cursor = this.cursor;
    const g = this.context;
    // SDM 26.1.1: faults based on privilege level come before VM exits. MOV to/from CR, RDMSR/WRMSR,
    // INVLPG and HLT need CPL 0; IN/OUT need CPL ≤ IOPL (0 here; the model's guests have no TSS I/O
    // permission bitmap). At CPL > 0 they raise #GP(0) instead of exiting.
    if (this.#cpl !== 0 && op < 32 && ((PRIVILEGED_OPS >>> op) & 1) !== 0)
      return this.#generalProtection(vmcs);
    switch (op) {
      case OP.ITERATION:
        this.observations.iterations++;
        return false;
      case OP.COMPUTE: {
        const cycles =
          cursor.operand(COMPUTE_SLOT.CYCLES_LO) + cursor.operand(COMPUTE_SLOT.CYCLES_HI) * TWO_32;
        if (cycles > 0) this.#meter.count(HV.GUEST_COMPUTE_CYCLES, cycles);
        return false;
      }
      case OP.CPUID:
        g.setGpr(GPR.RAX, cursor.operand(CPUID_SLOT.LEAF), 0);
        g.setGpr(GPR.RCX, cursor.operand(CPUID_SLOT.SUBLEAF), 0);
        return this.#exit(EXIT_REASON.CPUID, LENGTH.CPUID, 0);
      case OP.VMCALL:
        g.setGpr(GPR.RAX, cursor.operand(VMCALL_SLOT.NR), 0);
        return this.#exit(EXIT_REASON.VMCALL, LENGTH.VMCALL, 0);
      case OP.HLT:
        if ((vmcs.read(F.CPU_BASED_VM_EXEC_CONTROL) & CPU_BASED_CTLS.CPU_BASED_HLT_EXITING) === 0)
          return false;
        return this.#exit(EXIT_REASON.HLT, LENGTH.HLT, 0);
      case OP.IN:
      case OP.OUT: {
        const port = cursor.operand(IO_SLOT.PORT);
        const bytes = cursor.operand(IO_SLOT.SIZE);
        const exec = vmcs.read(F.CPU_BASED_VM_EXEC_CONTROL);
        // SDM 26.1.3: unconditional I/O exiting, or the I/O bitmaps (not modelled: they exit too).
        if (
          (exec & (CPU_BASED_CTLS.CPU_BASED_UNCOND_IO_EXITING | CPU_BASED_CTLS.CPU_BASED_USE_IO_BITMAPS)) ===
          0
        ) {
          if (op === OP.IN) this.observations.mix(0xffffffff);
          return false;
        }
        if (op === OP.OUT) g.setGpr(GPR.RAX, cursor.operand(IO_SLOT.VALUE), 0);
        // SDM Table 28-5: size − 1, direction (1 = IN), DX operand, port in bits 31:16.
        const qual = ((bytes - 1) | (op === OP.IN ? 8 : 0) | (port << 16)) >>> 0;
        return this.#exit(EXIT_REASON.IO_INSTRUCTION, LENGTH.IO, qual);
      }
      case OP.RDMSR:
      case OP.WRMSR: {
        const index = cursor.operand(MSR_SLOT.INDEX);
        const write = op === OP.WRMSR;
        const intercepted = vmcsInterceptsMsr(vmcs, this.hw.memory, index, write);
        g.setGpr(GPR.RCX, index, 0);
        if (write) {
          g.setGpr(GPR.RAX, cursor.operand(MSR_SLOT.VALUE_LO), 0);
          g.setGpr(GPR.RDX, cursor.operand(MSR_SLOT.VALUE_HI), 0);
        }
        if (intercepted)
          return this.#exit(write ? EXIT_REASON.MSR_WRITE : EXIT_REASON.MSR_READ, LENGTH.MSR, 0);
        if (write) {
          this.msrs.set(
            index,
            cursor.operand(MSR_SLOT.VALUE_LO) + cursor.operand(MSR_SLOT.VALUE_HI) * TWO_32,
          );
        } else {
          const value = this.msrs.get(index) ?? 0;
          g.setGpr(GPR.RAX, value >>> 0, 0);
          g.setGpr(GPR.RDX, Math.floor(value / TWO_32) >>> 0, 0);
          this.observations.mix(value >>> 0);
          this.observations.mix(Math.floor(value / TWO_32));
        }
        return false;
      }
      case OP.MOV_TO_CR0:
      case OP.MOV_TO_CR4: {
        const cr0 = op === OP.MOV_TO_CR0;
        const value = cursor.operand(CR_SLOT.VALUE_LO);
        const mask = vmcs.read(cr0 ? F.CR0_GUEST_HOST_MASK : F.CR4_GUEST_HOST_MASK);
        const shadow = vmcs.read(cr0 ? F.CR0_READ_SHADOW : F.CR4_READ_SHADOW);
        g.setGpr(GPR.RAX, value, cursor.operand(CR_SLOT.VALUE_HI));
        // SDM 26.1.3: MOV to CR0/CR4 exits iff it would change a host-owned bit from its read shadow.
        if (((value ^ shadow) & mask) !== 0) {
          return this.#exit(EXIT_REASON.CR_ACCESS, LENGTH.MOV_CR, cr0 ? 0 : 4);
        }
        const field = cr0 ? F.GUEST_CR0 : F.GUEST_CR4;
        const current = vmcs.read(field);
        const next = ((current & mask) | (value & ~mask)) >>> 0;
        // SDM 4.4.1: changing CD/NW/PG or PGE/PSE/PAE/SMEP with PAE paging after reloads the PDPTEs.
        const newCr0 = cr0 ? next : vmcs.read(F.GUEST_CR0);
        const newCr4 = cr0 ? vmcs.read(F.GUEST_CR4) : next;
        if (
          ((current ^ next) & (cr0 ? CR0_PDPTR_BITS : CR4_PDPTR_BITS)) !== 0 &&
          isPaePaging(newCr0, newCr4, this.hw.guestEfer)
        ) {
          const loaded = this.#loadGuestPdptes(vmcs, vmcs.read(F.GUEST_CR3));
          if (loaded === PDPTE_LOAD.EXITED) return true;
          if (loaded === PDPTE_LOAD.FAULTED) return false;
        }
        vmcs.write(field, next);
        // SDM 4.10.4.1: what the write invalidates (the TLB applies the rules).
        const vpid = this.#vpid(vmcs);
        if (cr0) this.#tlb.movToCr0(vpid, current, next);
        else this.#tlb.movToCr4(vpid, this.#pcid(), current, next);
        this.#refreshPaging(vmcs);
        return false;
      }
      case OP.MOV_TO_CR3: {
        const flags = cursor.operand(CR_SLOT.FLAGS);
        let value: number;
        if ((flags & CR3_FLAG.SPACE) !== 0) value = this.#roots[cursor.operand(CR_SLOT.SPACE)] ?? 0;
        else if ((flags & CR3_FLAG.RELOAD) !== 0) value = this.#guestCr3;
        else value = cursor.operand(CR_SLOT.VALUE_LO) + cursor.operand(CR_SLOT.VALUE_HI) * TWO_32;
        // The source register holds the operand whether or not the MOV exits (MOV CR3, RAX): with
        // the no-flush hint in bit 63, which the exit handler reads from it (kvm: kvm_set_cr3).
        const noFlushBit = (flags & CR3_FLAG.NO_FLUSH) !== 0 ? 0x8000_0000 : 0;
        g.setGpr(GPR.RAX, value >>> 0, (Math.floor(value / TWO_32) | noFlushBit) >>> 0);
        this.#cr3Operand = value;
        if ((vmcs.read(F.CPU_BASED_VM_EXEC_CONTROL) & CPU_BASED_CTLS.CPU_BASED_CR3_LOAD_EXITING) !== 0) {
          return this.#exit(EXIT_REASON.CR_ACCESS, LENGTH.MOV_CR, 3);
        }
        // SDM Vol. 2 MOV to CR3: bit 63 is the no-flush hint only with CR4.PCIDE = 1, else a
        // reserved bit: #GP(0) (after the VM exit, which has priority over it: SDM 26.1.1).
        if (noFlushBit !== 0 && (vmcs.read(F.GUEST_CR4) & CR4.PCIDE) === 0)
          return this.#generalProtection(vmcs);
        // SDM 4.4.1: under PAE paging the new table's PDPTEs are loaded (and checked) first.
        if (isPaePaging(vmcs.read(F.GUEST_CR0), vmcs.read(F.GUEST_CR4), this.hw.guestEfer)) {
          const loaded = this.#loadGuestPdptes(vmcs, value);
          if (loaded === PDPTE_LOAD.EXITED) return true;
          if (loaded === PDPTE_LOAD.FAULTED) return false;
        }
        vmcs.write(F.GUEST_CR3, value >>> 0, Math.floor(value / TWO_32));
        // SDM 4.10.4.1: the source's bit 63 (no flush) matters only with CR4.PCIDE, and is not stored.
        this.#tlb.movToCr3(
          this.#vpid(vmcs),
          (vmcs.read(F.GUEST_CR4) & CR4.PCIDE) !== 0,
          value >>> 0,
          (Math.floor(value / TWO_32) | noFlushBit) >>> 0,
        );
        this.#guestCr3 = value;
        this.#refreshPaging(vmcs);
        return false;
      }
      case OP.MOV_FROM_CR0:
      case OP.MOV_FROM_CR4:
      case OP.MOV_FROM_CR3: {
        // SDM 26.3 (and 25.6.6): reads of host-owned bits return the read shadow.
        let value: number;
        if (op === OP.MOV_FROM_CR3) {
          if ((vmcs.read(F.CPU_BASED_VM_EXEC_CONTROL) & CPU_BASED_CTLS.CPU_BASED_CR3_STORE_EXITING) !== 0) {
            // SDM Table 28-3: CR 3, access type 1 (MOV from CR), GPR RAX.
            return this.#exit(EXIT_REASON.CR_ACCESS, LENGTH.MOV_CR, 3 | (1 << 4));
          }
          value = vmcs.read(F.GUEST_CR3);
          g.setGpr(GPR.RAX, value, vmcs.hi);
          this.observations.mix(value);
          return false;
        } else {
          const cr0 = op === OP.MOV_FROM_CR0;
          const mask = vmcs.read(cr0 ? F.CR0_GUEST_HOST_MASK : F.CR4_GUEST_HOST_MASK);
          const shadow = vmcs.read(cr0 ? F.CR0_READ_SHADOW : F.CR4_READ_SHADOW);
          value = ((vmcs.read(cr0 ? F.GUEST_CR0 : F.GUEST_CR4) & ~mask) | (shadow & mask)) >>> 0;
        }
        g.setGpr(GPR.RAX, value, 0);
        this.observations.mix(value);
        return false;
      }
      case OP.INVLPG:
        if ((vmcs.read(F.CPU_BASED_VM_EXEC_CONTROL) & CPU_BASED_CTLS.CPU_BASED_INVLPG_EXITING) === 0) {
          this.#tlb.invlpg(this.#vpid(vmcs), this.#pcid(), cursor.gvaLo, cursor.gvaHi);
          return false;
        }
        // SDM 28.2.1: the qualification is the whole linear address.
        return this.#exit(EXIT_REASON.INVLPG, LENGTH.INVLPG, cursor.gvaLo, cursor.gvaHi);
      case OP.READ:
      case OP.WRITE:
      case OP.FETCH:
        return this.#access(op, vmcs);
      default:
        throw new Error(`operation ${op} at ${cursor.pc} is not executable`);
    }
  }

  /**
   * A data or instruction access: a TLB hit whose rights allow it, else the 2D walk (guest tables,
   * then the VMCS's EPT) when the VMCS enables EPT, else the 1D walk of the tables at GUEST_CR3
   * (KVM's shadow tables). A successful walk's translation is cached.
   */
  #access(op: number, vmcs: HardwareVmcs): boolean {
    const cursor = this.cursor;
    let access = this.#cpl === 3 ? ACCESS.USER : 0;
    if (op === OP.WRITE) access |= ACCESS.WRITE;
    else if (op === OP.FETCH) access |= ACCESS.FETCH;
    const ept = this.#usesEpt(vmcs);
    const eptpLo = ept ? vmcs.read(F.EPT_POINTER) : 0;
    const eptpHi = ept ? vmcs.hi : 0;
    // SDM 3C 28.3.1: linear mappings without EPT, combined ones tagged with the EP4TA with it.
    const eptTag = ept ? eptTagOf(eptpLo, eptpHi) : 0;
    const vpid = this.#vpid(vmcs);
    const pcid = this.#pcid();
    const tlb = this.#tlb;
    // Under EPT a fetch always walks: the entries here keep the guest's rights, not EPT's execute
    // rights (nor mode-based execute), so only reads and writes use and fill combined mappings.
    const cacheable = !ept || op !== OP.FETCH;
    if (cacheable) {
      const hit = tlb.lookup(vpid, pcid, eptTag, cursor.gvaLo, cursor.gvaHi, access);
      // A hit is used when its rights allow the access under today's CR0.WP, SMEP, SMAP and keys
      // (SDM 4.10.2.2); otherwise the processor walks again, as if the entry had been evicted.
      if (
        hit !== TLB_MISS &&
        accessRightsFault(this.#paging, tlb.pageAccess(hit), tlb.protectionKey(hit), access) === 0
      ) {
        this.#dataAccess(op, tlb.physicalAddress(hit, cursor.gvaLo));
        return false;
      }
    }
    let ok: boolean;
    let result: WalkResult;
    if (ept) {
      const walker = this.#walker;
      walker.setEptContext(this.#eptContext(eptpLo + eptpHi * TWO_32));
      ok = walker.walk(cursor.gvaLo, cursor.gvaHi, access);
      result = walker.result;
    } else {
      ok = this.#walker1d.walk(this.#paging, cursor.gvaLo, cursor.gvaHi, access, null);
      result = this.#walker1d.result;
    }
    if (ok) {
      if (cacheable) this.#cache(vpid, pcid, eptTag, access, result);
      this.#dataAccess(op, result.pa);
      return false;
    }
    if (result.stage === FAULT_STAGE.GUEST) {
      // SDM 26.2 / 25.6.3: a #PF exits when the exception bitmap and the PFEC mask/match say so.
      const errorCode = result.errorCode;
      const bitmapHit = (vmcs.read(F.EXCEPTION_BITMAP) & (1 << 14)) !== 0;
      const match =
        (errorCode & vmcs.read(F.PAGE_FAULT_ERROR_CODE_MASK)) === vmcs.read(F.PAGE_FAULT_ERROR_CODE_MATCH);
      // SDM 4.10.4.1: a page fault invalidates the faulting page's entries for the current PCID,
      // whether it is delivered or causes a VM exit.
      tlb.pageFault(vpid, pcid, cursor.gvaLo, cursor.gvaHi);
      if (bitmapHit === match) {
        const info = this.hw.exitInfo.reset(EXIT_REASON.EXCEPTION_NMI);
        info.instructionLength = LENGTH.MEMORY;
        info.interruptionInfo = 0x80000b0e;
        info.errorCode = errorCode;
        info.qualificationLo = cursor.gvaLo;
        info.qualificationHi = cursor.gvaHi;
        this.#decodeOperand(op);
        this.#saveAndExit(vmcs);
        return true;
      }
      this.#guestFault(errorCode);
      return false;
    }
    const fault = this.#walker.fault;
    if (fault.misconfig === 0) {
      // SDM 3C 29.4.3.1: an EPT violation invalidates the guest-physical mappings of its GPA, and,
      // when that GPA was the translation of the linear address, the combined mappings for it.
      const gpaLo = fault.gpa >>> 0;
      const gpaHi = Math.floor(fault.gpa / TWO_32);
      if ((fault.qualification & EPT_VIOLATION.FINAL_TRANSLATION) !== 0) {
        tlb.eptViolationForLinear(vpid, pcid, eptTag, cursor.gvaLo, cursor.gvaHi, gpaLo, gpaHi);
      } else {
        tlb.eptViolation(eptTag, gpaLo, gpaHi);
      }
    }
    const info = this.hw.exitInfo.reset(
      fault.misconfig !== 0 ? EXIT_REASON.EPT_MISCONFIG : EXIT_REASON.EPT_VIOLATION,
    );
    info.instructionLength = LENGTH.MEMORY;
    info.qualificationLo = fault.qualification >>> 0;
    info.gpa = fault.gpa;
    info.linearLo = fault.laLo;
    info.linearHi = fault.laHi;
    this.#decodeOperand(op);
    this.#saveAndExit(vmcs);
    return true;
  }

  /**
   * Before a data or instruction access exits: its decoded operand, for a hypervisor that emulates
   * it (MMIO; `GuestContext.accessBytes`). Only exits need it, so accesses that complete skip it.
   */
  #decodeOperand(op: number): void {
    const g = this.context;
    if (op === OP.FETCH) {
      g.accessBytes = 0;
      return;
    }
    const cursor = this.cursor;
    const write = op === OP.WRITE;
    g.accessBytes = cursor.operand(MEM_SLOT.SIZE);
    g.accessWrite = write;
    g.accessValueLo = write ? cursor.operand(MEM_SLOT.VALUE_LO) : 0;
    g.accessValueHi = write ? cursor.operand(MEM_SLOT.VALUE_HI) : 0;
    g.accessLength = LENGTH.MEMORY;
  }

  /**
   * #GP(0) from a privileged instruction at CPL > 0: a VM exit when the exception bitmap has bit 13
   * (SDM 26.2), else the guest's own handler (not modelled: recorded as a guest fault, skipped).
   */
  #generalProtection(vmcs: HardwareVmcs): boolean {
    if ((vmcs.read(F.EXCEPTION_BITMAP) & (1 << 13)) !== 0) {
      const info = this.hw.exitInfo.reset(EXIT_REASON.EXCEPTION_NMI);
      info.interruptionInfo = 0x80000b0d;
      info.errorCode = 0;
      this.#saveAndExit(vmcs);
      return true;
    }
    this.observations.mix(13 << 16);
    this.#guestFault(0);
    return false;
  }

  /** The guest takes a #PF (its own handler is not modelled: the access is recorded and skipped). */
  #guestFault(errorCode: number): void {
    this.observations.guestFaults++;
    this.observations.lastFaultErrorCode = errorCode;
    this.observations.mix(errorCode);
  }

  #exit(reason: number, length: number, qualification: number, qualificationHi = 0): boolean {
    const info = this.hw.exitInfo.reset(reason);
    info.instructionLength = length;
    info.qualificationLo = qualification >>> 0;
    info.qualificationHi = qualificationHi >>> 0;
    this.#saveAndExit(this.hw.runningVmcs!);
    return true;
  }

  /** SDM 28.3: RIP of the exiting instruction saved in the guest-state area; then the VM exit. */
  #saveAndExit(vmcs: HardwareVmcs): void {
    const rip = RIP_BASE + this.cursor.pc * RIP_STRIDE;
    vmcs.write(F.GUEST_RIP, rip >>> 0, Math.floor(rip / TWO_32));
    this.hw.vmExit();
  }

  /** The data part of a translated READ or WRITE (a FETCH only needed its translation). */
  #dataAccess(op: number, pa: number): void {
    const cursor = this.cursor;
    const memory = this.hw.memory;
    const size = cursor.operand(MEM_SLOT.SIZE);
    if (op === OP.WRITE) {
      const lo = cursor.operand(MEM_SLOT.VALUE_LO);
      if (size === 8) memory.write64(pa, lo, cursor.operand(MEM_SLOT.VALUE_HI));
      else if (size === 4) memory.write32(pa, lo);
      else if (size === 2) memory.write16(pa, lo & 0xffff);
      else memory.write8(pa, lo & 0xff);
    } else if (op === OP.READ) {
      const value = size === 1 ? memory.read8(pa) : size === 2 ? memory.read16(pa) : memory.read32(pa);
      this.observations.mix(value);
      if (size === 8) this.observations.mix(memory.read32(pa + 4));
    }
  }

  /**
   * Caches a successful walk's translation (SDM 4.10.2.3: the walk set every accessed flag on its
   * way). A combined mapping takes the smaller of the guest and EPT page sizes. An entry is dirty
   * only when this access was a write (the walk just set the dirty flags, in the guest leaf and, with
   * EPT A/D, in the EPT leaf): a later write through a clean entry walks again (SDM 4.8), so a write
   * never uses an entry whose EPT translation was not checked for writing. EPT permissions cannot
   * change while the guest runs: KVM changes EPT only in VM exits, and flushes (INVEPT) before the
   * next entry whatever it took away; a right it adds without a flush is found by walking again.
   */
  #cache(vpid: number, pcid: number, eptTag: number, access: number, result: WalkResult): void {
    let pageSize = result.pageSize;
    if (eptTag !== 0) {
      const eptPageSize = this.#walker.stage2.finalPageSize;
      if (eptPageSize < pageSize) pageSize = eptPageSize;
    }
    let flags = (access & ACCESS.WRITE) !== 0 ? TLB_FLAG.DIRTY : 0;
    if ((result.leafLo & LEAF_GLOBAL) !== 0 && (this.#pagingRegs[2]! & CR4.PGE) !== 0)
      flags |= TLB_FLAG.GLOBAL;
    this.#tlb.insert(
      vpid,
      pcid,
      eptTag,
      this.cursor.gvaLo,
      this.cursor.gvaHi,
      pageSize,
      result.pa,
      result.pageAccess,
      result.pkey,
      flags,
    );
  }

  /** The VPID of the running VMCS: VIRTUAL_PROCESSOR_ID with "enable VPID", else 0 (SDM 3C 28.1). */
  #vpid(vmcs: HardwareVmcs): number {
    return (activeSecondaryControls(vmcs) & SECONDARY_EXEC_CTLS.SECONDARY_EXEC_ENABLE_VPID) !== 0
      ? vmcs.read(F.VIRTUAL_PROCESSOR_ID) & 0xffff
      : 0;
  }

  /** The current PCID: CR3[11:0] with CR4.PCIDE, else 0 (SDM 4.10.1). */
  #pcid(): number {
    const r = this.#pagingRegs;
    return (r[2]! & CR4.PCIDE) !== 0 ? r[1]! % 4096 : 0;
  }

  /**
   * Rebuilds the paging context when CR0/CR3/CR4/EFER or, under PAE paging, the PDPTE registers
   * changed. Called after each VM entry and after the guest's own MOV to CR. The PDPTEs a VM entry
   * loads (SDM 27.3.2.4) come from GUEST_PDPTR0–3 with EPT, else from memory at CR3 (KVM's shadow
   * PAE root); a guest MOV to CR that reloads them under EPT has written them to those fields first.
   */
  #refreshPaging(vmcs: HardwareVmcs): void {
    const cr0 = vmcs.read(F.GUEST_CR0);
    const cr4 = vmcs.read(F.GUEST_CR4);
    const cr3 = vmcs.read(F.GUEST_CR3) + vmcs.hi * TWO_32;
    const efer = this.hw.guestEfer;
    const r = this.#pagingRegs;
    const pae = isPaePaging(cr0, cr4, efer);
    const pdptesChanged = pae && this.#readPdpteRegisters(vmcs, cr3);
    if (!pdptesChanged && r[0] === cr0 && r[1] === cr3 && r[2] === cr4 && r[3] === efer) return;
    r[0] = cr0;
    r[1] = cr3;
    r[2] = cr4;
    r[3] = efer;
    this.#paging = createPagingContext(
      pae ? { cr0, cr3, cr4, efer, pdptes: Array.from(this.#pdptes) } : { cr0, cr3, cr4, efer },
      this.features,
    );
    this.#walker.setGuestContext(this.#paging);
  }

  /** The PDPTE registers for the running VMCS into `#pdptes`; true when they changed. */
  #readPdpteRegisters(vmcs: HardwareVmcs, cr3: number): boolean {
    const load = this.#pdpteLoad;
    if (this.#usesEpt(vmcs)) {
      for (let i = 0; i < 4; i++) load[i] = vmcs.read(GUEST_PDPTR_FIELDS[i]!) + vmcs.hi * TWO_32;
    } else if (loadPdptesInto(this.hw.memory, pdptAddress(cr3), this.features, load) >= 0) {
      // KVM builds the shadow PAE root: a reserved bit there is a model bug, not guest behaviour.
      throw new Error(
        `VM entry with invalid PDPTEs at 0x${pdptAddress(cr3).toString(16)} (KVM's shadow root)`,
      );
    }
    const pdptes = this.#pdptes;
    let changed = false;
    for (let i = 0; i < 4; i++) {
      if (pdptes[i] !== load[i]) {
        pdptes[i] = load[i]!;
        changed = true;
      }
    }
    return changed;
  }

  /** The running VMCS enables EPT. */
  #usesEpt(vmcs: HardwareVmcs): boolean {
    return (activeSecondaryControls(vmcs) & SECONDARY_EXEC_CTLS.SECONDARY_EXEC_ENABLE_EPT) !== 0;
  }

  /**
   * A MOV to CR3 (or a MOV to CR0/CR4 changing a PDPTE-relevant bit) under PAE paging loads the
   * PDPTEs from the table at `cr3` (SDM 4.4.1). Under EPT the table's guest-physical address is
   * translated first: an EPT violation or misconfiguration exits before the instruction completes
   * (qualification without a guest-linear address, SDM 28.2.1); the loaded values go to
   * GUEST_PDPTR0–3, where the processor keeps them. A reserved bit makes the instruction fault with
   * #GP(0) instead. Without EPT the guest's MOV to CR3 exits (KVM intercepts it), so this runs
   * under EPT only.
   */
  #loadGuestPdptes(vmcs: HardwareVmcs, cr3: number): number {
    const gpa = pdptAddress(cr3);
    const ept = this.#walker.ept;
    const eptp = vmcs.read(F.EPT_POINTER) + vmcs.hi * TWO_32;
    if (!ept.walk(this.#eptContext(eptp), gpa, EPT_ACCESS.READ, 0)) {
      const r = ept.result;
      // SDM 3C 29.4.3.1: the guest-physical mappings of the GPA (not a linear address's translation).
      if (r.misconfig === 0)
        this.#tlb.eptViolation(
          eptTagOf(eptp >>> 0, Math.floor(eptp / TWO_32)),
          gpa >>> 0,
          Math.floor(gpa / TWO_32),
        );
      const info = this.hw.exitInfo.reset(
        r.misconfig !== 0 ? EXIT_REASON.EPT_MISCONFIG : EXIT_REASON.EPT_VIOLATION,
      );
      info.instructionLength = LENGTH.MOV_CR;
      info.qualificationLo = r.qualification >>> 0;
      info.gpa = gpa;
      this.#saveAndExit(vmcs);
      return PDPTE_LOAD.EXITED;
    }
    const load = this.#pdpteLoad;
    if (loadPdptesInto(this.hw.memory, ept.result.hpa, this.features, load) >= 0) {
      return this.#generalProtection(vmcs) ? PDPTE_LOAD.EXITED : PDPTE_LOAD.FAULTED;
    }
    for (let i = 0; i < 4; i++)
      vmcs.write(GUEST_PDPTR_FIELDS[i]!, load[i]! % TWO_32, Math.floor(load[i]! / TWO_32));
    return PDPTE_LOAD.DONE;
  }

  #eptContext(eptp: number): EptContext {
    let ctx = this.#eptContexts.get(eptp);
    if (ctx === undefined) {
      ctx = createEptContext(
        { eptpLo: eptp >>> 0, eptpHi: Math.floor(eptp / TWO_32) },
        MODERN_EPT_CAPABILITIES,
        46,
      );
      this.#eptContexts.set(eptp, ctx);
    }
    return ctx;
  }
}
