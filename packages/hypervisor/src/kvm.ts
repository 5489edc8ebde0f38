import {
  HostPageAllocator,
  INVEPT_TYPE,
  isMmioSpte,
  Memslots,
  MMIO_GENERATION_MASK,
  MMU_EVENTS,
  MMU_REQUEST,
  type MmuFlags,
  mmioSpteAccess,
  mmioSpteGeneration,
  mmioSpteGfn,
  PAGE_ROLE,
  SHADOW_FAULT,
  ShadowEptMmu,
  ShadowMmu,
  ShadowPageStore,
  ShadowPagingMmu,
  ShadowRootBackend,
  SPTE_FORMAT,
  TDP_MAP_RESULT,
  TdpMmu,
  TerminalSpte,
  VcpuMmu,
} from "@nestvisor/mmu";
import {
  adjustControls,
  CONTROL_CLASS,
  ControlsShadow,
  CPU_BASED_CTLS,
  CR_ACCESS_QUAL,
  DEFAULT_L0_HOST_FACTS,
  DEFAULT_L1_VCPU_FACTS,
  EXIT_REASON,
  entryCheckControlMsr,
  fieldByName,
  type HardwareVmcs,
  IO_QUAL,
  KVM_DEFAULT_VMX_CAPABILITIES,
  type L0HostFacts,
  type L1VcpuFacts,
  type Meter,
  NestedEntryChecker,
  PIN_BASED_CTLS,
  SECONDARY_EXEC_CTLS,
  VM_ENTRY_CTLS,
  VM_EXIT_CTLS,
  VMX_RESULT,
  type VmcsProcessor,
  type VmcsShadowingBitmaps,
  type VmxCapabilities,
} from "@nestvisor/vmx";
import {
  CR0,
  CR4,
  createEptContext,
  createPagingContext,
  DEBUGCTL,
  DR7_RESET,
  EFER,
  EPT_MEMORY_TYPE,
  type EptContext,
  encodeEptPointer,
  type Gpa,
  IA32_PAT_RESET,
  INVVPID_TYPE,
  isPaePaging,
  loadPdptesInto,
  MODERN_CPU,
  MODERN_EPT_CAPABILITIES,
  MSR,
  type PagingContext,
  PFERR,
  type PhysicalMemory,
  pdptAddress,
  RFLAGS,
  RFLAGS_RESET,
} from "@nestvisor/x86-arch";

export { type GuestBootState, HYPERVISOR_BOOT_STATE };

import {
  bootPat,
  type GuestBootState,
  HYPERVISOR_BOOT_STATE,
  LINUX_PAT,
  type MsrWords,
} from "./guest-boot-state";
import { GPR, GUEST_KIND, type GuestContext } from "./guest-context";
import type { KvmConfig } from "./hypervisor-config";
import { HYPERVISOR_EVENTS as HV } from "./hypervisor-events";
import { InKernelPic, inKernelPort, UserspaceDevices } from "./io-devices";
import { KvmNested } from "./kvm-nested";
import { KVM_PHASE, type KvmPhase } from "./kvm-phases";
import { SEGMENT, SEGMENT_FIELD, type SegmentRegister, VcpuRegisterCache } from "./kvm-vcpu-registers";
import { MmioDevices } from "./mmio-devices";
import type { ModelPolicies } from "./model-policies";
import { msrBitmapIntercepts, writeMsrBitmap } from "./msr-bitmap";
import { TRACKED_WRITE_LENGTH } from "./nested-vmx-cpu";
import { CR0_PDPTR_BITS, CR4_PDPTR_BITS } from "./pae-paging";
import type { TransitionLedger } from "./transition-ledger";
import { VMCS_FIELD as F, GUEST_PDPTR_FIELDS } from "./vmcs-field-encodings";
import type { ExitSink, VmxCpu } from "./vmx-cpu";

const TWO_32 = 4294967296;
const PAGE = 4096;
/** The segments __vmx_guest_state_valid reads in protected mode, in its order. */
const PMODE_CHECKED_SEGMENTS: readonly SegmentRegister[] = Object.freeze([
  SEGMENT.CS,
  SEGMENT.SS,
  SEGMENT.DS,
  SEGMENT.ES,
  SEGMENT.FS,
  SEGMENT.GS,
  SEGMENT.TR,
  SEGMENT.LDTR,
]);
/** The segments it reads in real or VM86 mode (rmode_segment_valid): the same six, no TR or LDTR. */
const RMODE_CHECKED_SEGMENTS: readonly SegmentRegister[] = Object.freeze(PMODE_CHECKED_SEGMENTS.slice(0, 6));

/** Where KVM keeps its own pages in its physical memory (a model layout; see `KvmLayout`). */
export const KVM_PAGE = {
  VMXON: 0x1000,
  VMCS01: 0x2000,
  VMCS02: 0x3000,
  SHADOW_VMCS: 0x4000,
  MSR_BITMAP: 0x5000,
  VMREAD_BITMAP: 0x6000,
  VMWRITE_BITMAP: 0x7000,
  /** vmcs02's own MSR bitmap, merged from vmcs01's and L1's on each nested entry. */
  MSR_BITMAP02: 0x8000,
  /** The page-modification log of vmcs01 (0x9000 is a guest hypervisor's own CR3 page). */
  PML_LOG: 0xa000,
  /** First page of the pool the MMU allocates page tables from. */
  POOL: 0x10_0000,
} as const;

/** Bytes of a hypervisor's physical memory below its guest's RAM: KVM pages and the table pool. */
export const KVM_PRIVATE_BYTES = 0x80_0000;

/** MSRs KVM's MSR bitmap lets a guest access without exits (kvm: vmx_disable_intercept_for_msr at vCPU creation). */
export const PASSTHROUGH_MSRS: readonly number[] = Object.freeze([
  0xc000_0100, // FS_BASE
  0xc000_0101, // GS_BASE
  0xc000_0102, // KERNEL_GS_BASE
  0x174, // SYSENTER_CS
  0x175, // SYSENTER_ESP
  0x176, // SYSENTER_EIP
]);

/** GUEST_SYSENTER_CS, _ESP and _EIP: where KVM keeps MSRs 174H–176H (kvm: vmx_set_msr). */
const SYSENTER_FIELDS: readonly number[] = Object.freeze([
  F.GUEST_SYSENTER_CS,
  F.GUEST_SYSENTER_ESP,
  F.GUEST_SYSENTER_EIP,
]);

export function isPassthroughMsr(index: number): boolean {
  return PASSTHROUGH_MSRS.includes(index >>> 0);
}

export interface KvmOptions {
  /** "L0", "L1", … for messages. */
  readonly name: string;
  /** The level this KVM runs at (0 = on the physical CPU). */
  readonly level: number;
  readonly cpu: VmxCpu;
  readonly config: KvmConfig;
  readonly meter: Meter;
  /** The one vCPU this KVM runs. */
  readonly guest: GuestContext;
  readonly guestBoot: GuestBootState;
  /** Bytes of guest RAM, placed at `KVM_PRIVATE_BYTES` in this KVM's physical memory. */
  readonly guestMemoryBytes: number;
  /**
   * The CPU offers EPT to this KVM (kvm: cpu_has_vmx_ept; for a guest hypervisor, nested EPT, which
   * its parent offers only when it uses EPT itself). Default true.
   */
  readonly cpuOffersEpt?: boolean;
  /** Replacement policies (root cache, nested sync, exit reflection); default KVM's. */
  readonly policies?: ModelPolicies;
  /** Where the KVM functions of each transition are marked on the timeline (`KVM_PHASE`); default none. */
  readonly ledger?: TransitionLedger;
}

/**
 * The KVM model (DESIGN.md §3): one class, used at every level. It owns one vCPU's VMCSs, its MMU
 * (VcpuMmu over a TDP MMU and a shadow-EPT MMU sharing one page store, as KVM's do), the in-kernel
 * and user-space devices, the exit handlers and — when its guest is itself a hypervisor — nested
 * VMX (`KvmNested`). Every VMCS access goes through its `VmxCpu`, so the same code costs hardware
 * VMREADs at L0 and VM exits (or shadow-VMCS accesses) at L1.
 */
export class Kvm implements ExitSink {
  readonly name: string;
  readonly level: number;
  readonly cpu: VmxCpu;
  readonly processor: VmcsProcessor;
  readonly config: KvmConfig;
  readonly meter: Meter;
  readonly guest: GuestContext;
  readonly guestMemoryBytes: number;
  readonly controls: ControlsShadow;
  readonly regs: VcpuRegisterCache;
  readonly memslots = new Memslots();
  readonly allocator: HostPageAllocator;
  readonly store: ShadowPageStore;
  /** This KVM uses EPT for its guest (kvm: enable_ept): `ept` at L0, `l1Ept` in a guest hypervisor. */
  readonly useEpt: boolean;
  /** The TDP MMU for direct roots (kvm: tdp_mmu_enabled); null for the legacy MMU or without EPT. */
  readonly tdp: TdpMmu | null;
  /** The shadow MMU: EPT format (nested EPT, legacy direct roots) with EPT, x86 format (shadow paging) without. */
  readonly shadow: ShadowMmu;
  /** Shadow EPT for a nested guest with EPT (EPT format only). */
  readonly shadowEpt: ShadowEptMmu | null;
  /** Shadow paging of the guest (x86 format only). */
  readonly shadowPaging: ShadowPagingMmu | null;
  readonly mmu: VcpuMmu;
  readonly pic = new InKernelPic();
  readonly userspace = new UserspaceDevices();
  /** The MMIO buses and devices (`mmio-devices.ts`): KVM's IOAPIC and ioeventfds, the VMM's device. */
  readonly mmio = new MmioDevices();
  /** Scratch for an MMIO page fault's walk (kvm: get_mmio_spte). */
  readonly #terminal = new TerminalSpte();
  /** Scratch for an emulated MMIO load. */
  readonly #mmioLoad = new Uint32Array(2);
  /** MSR values KVM emulates for its guest (kvm: the vCPU's MSR state). */
  readonly msrs = new Map<number, number>();
  readonly vmcs01: HardwareVmcs;
  /** Nested VMX, for a guest that is a hypervisor. */
  readonly nested: KvmNested;
  /** The VMX capabilities this KVM's CPU offers it (used to build valid controls). */
  readonly caps: VmxCapabilities = KVM_DEFAULT_VMX_CAPABILITIES;
  /** The policies this KVM runs with (empty: KVM's own). */
  readonly policies: ModelPolicies;

  /** kvm: loaded_vmcs->launched of vmcs01. */
  launched01 = false;
  /** KVM_REQ_LOAD_MMU_PGD: write EPT_POINTER before the next entry. */
  loadPgdRequested = true;
  /** KVM_REQ_TLB_FLUSH: a remote flush asked this vCPU to flush every context before its next entry. */
  tlbFlushAllRequested = false;
  /** Flag D off: a vCPU put cleared guest_state_loaded, so the next entry re-saves host state. */
  hostStateReloadPending = false;
  /**
   * kvm: vcpu->arch.host_debugctl, the host's DEBUGCTL as the last entry read it (`hostDebugctlPerEntry`).
   * It stays 0 in the model (no level's host sets DEBUGCTL bits; SDM 28.5.1 clears it on every exit),
   * so KVM's write-back after an exit (vmx_vcpu_run: update_debugctlmsr when non-zero) never happens.
   */
  hostDebugctl = 0;
  /** CR3 changed in the register cache: vmx_load_mmu_pgd writes GUEST_CR3 with the EPT pointer. */
  cr3Dirty = false;
  /** The guest vCPU's IA32_PAT (kvm: vcpu->arch.pat), from its boot state. */
  guestPat: MsrWords = IA32_PAT_RESET;
  /** kvm: mmu->pdptrs, the guest's PAE PDPTEs as KVM last loaded them (load_pdptrs). */
  readonly pdptrs: Float64Array = new Float64Array(4);
  /** kvm: VCPU_EXREG_PDPTR dirty — vmx_ept_load_pdptrs writes GUEST_PDPTR0–3 at the next entry. */
  pdptrsDirty = false;
  /** The CPU this KVM offers its guest when the guest is a hypervisor (set by the machine). */
  guestCpu: VmxCpu | null = null;
  /** KVM's nested entry checks (kvm: nested_vmx_check_controls/_host_state/_guest_state). */
  readonly entryChecker = new NestedEntryChecker({ includeHardware: false });
  /** What the entry checks know of the guest hypervisor's vCPU and of this host. */
  readonly l1Facts: L1VcpuFacts = DEFAULT_L1_VCPU_FACTS;
  readonly l0Facts: L0HostFacts = DEFAULT_L0_HOST_FACTS;
  readonly #ledger: TransitionLedger | null;

  /** Marks on the timeline that this KVM enters the function `phase` (a `KVM_PHASE` id); counts nothing. */
  tracePhase(phase: KvmPhase): void {
    this.#ledger?.phase(this.level, phase);
  }

  /**
   * vmcs01's controls as KVM computed them (kvm: vmcs_config, the controls shadow of vmcs01);
   * `entry01Base` and `exit01Base` without the bits KVM toggles at run time (IA-32e mode guest,
   * load IA32_EFER).
   */
  pin01 = 0;
  exec01 = 0;
  secondary01 = 0;
  entry01Base = 0;
  exit01Base = 0;
  /** This KVM's own EFER, which a VM exit gives back (kvm: kvm_host.efer). */
  readonly hostEfer: number = HYPERVISOR_BOOT_STATE.efer;

  /**
   * The EFER KVM switches to for a guest (kvm: update_transition_efer): NX forced on under shadow
   * paging, LME only with LMA. Equal to `hostEfer` means no switch through the VMCS.
   */
  transitionEfer(efer: number): number {
    let value = this.useEpt ? efer : efer | EFER.NXE;
    if ((value & EFER.LMA) === 0) value &= ~EFER.LME;
    return value >>> 0;
  }

  constructor(options: KvmOptions) {
    this.name = options.name;
    this.level = options.level;
    this.#ledger = options.ledger ?? null;
    this.cpu = options.cpu;
    this.processor = options.cpu.processor;
    this.config = options.config;
    this.meter = options.meter;
    this.guest = options.guest;
    this.guestMemoryBytes = options.guestMemoryBytes;
    this.policies = options.policies ?? {};
    const memory = options.cpu.memory;
    this.controls = new ControlsShadow(this.processor, { perVmcsShadow: this.config.controlsShadow });
    this.regs = new VcpuRegisterCache(this.processor);

    // Guest RAM: one memslot at KVM_PRIVATE_BYTES (kvm: KVM_SET_USER_MEMORY_REGION).
    this.memslots.add({
      id: 0,
      baseGfn: 0,
      npages: options.guestMemoryBytes / PAGE,
      hostBase: KVM_PRIVATE_BYTES,
    });
    const poolPages = (KVM_PRIVATE_BYTES - KVM_PAGE.POOL) / PAGE;
    this.allocator = new HostPageAllocator(memory, { base: KVM_PAGE.POOL, pages: poolPages, zeroed: true });
    this.useEpt = (options.cpuOffersEpt ?? true) && (this.level === 0 ? this.config.ept : this.config.l1Ept);
    this.store = new ShadowPageStore({
      allocator: this.allocator,
      meter: this.meter,
      memslots: this.memslots,
      // Unsync last-level pages need the format's sync: shadow EPT has it (ShadowEptMmu.syncSpte),
      // shadow paging does not yet, so its shadowed tables stay write-tracked.
      unsync: this.useEpt && (this.policies.unsyncShadowPages ?? true),
    });
    // kvm: kvm_flush_remote_tlbs → KVM_REQ_TLB_FLUSH on the VM's (one) vCPU.
    this.store.onRemoteFlush = () => {
      this.tlbFlushAllRequested = true;
    };
    const holder: { tdp: TdpMmu | null } = { tdp: null };
    this.shadow = new ShadowMmu({
      store: this.store,
      memslots: this.memslots,
      format: this.useEpt ? SPTE_FORMAT.EPT : SPTE_FORMAT.X86,
      meter: this.meter,
      // kvm: kvm_mmu_slot_gfn_write_protect also write-protects the TDP MMU's mapping of the gfn.
      onWriteProtectGfn: (gfn) => holder.tdp?.writeProtectGfn(gfn, false) ?? false,
      hugePages: this.config.hugePages,
    });
    // kvm: tdp_mmu_enabled needs TDP; the legacy MMU builds direct roots from shadow pages.
    this.tdp =
      this.useEpt && this.config.tdpMmu
        ? new TdpMmu({
            store: this.store,
            memslots: this.memslots,
            meter: this.meter,
            preserveTdpRoots: this.config.preserveTdpRoots,
            hugePages: this.config.hugePages,
          })
        : null;
    holder.tdp = this.tdp;
    this.shadowEpt = this.useEpt ? new ShadowEptMmu(this.shadow) : null;
    this.shadowPaging = this.useEpt ? null : new ShadowPagingMmu(this.shadow);
    const mmuFlags: MmuFlags = this.config;
    this.mmu = new VcpuMmu({
      backend: new ShadowRootBackend(
        this.tdp === null ? { shadow: this.shadow } : { shadow: this.shadow, tdp: this.tdp },
      ),
      meter: this.meter,
      flags: mmuFlags,
      tdpEnabled: this.useEpt,
      ...(this.policies.rootCache === undefined ? {} : { rootCache: this.policies.rootCache }),
    });
    const boot = options.guestBoot;
    this.mmu.setSregs({ cr0: boot.cr0, cr3: boot.cr3, cr4: boot.cr4, efer: boot.efer });

    this.vmcs01 = this.processor.createVmcs(KVM_PAGE.VMCS01, { revision: this.processor.revisionId });
    this.nested = new KvmNested(this);
    this.cpu.attach(this);
  }

  /** The guest's physical memory as this KVM reads it (kvm: kvm_read_guest through the memslots). */
  guestMemory(): PhysicalMemory {
    return this.shadow.guestMemory;
  }

  /** A VMCS field's encoding by KVM's name. */
  fieldEncoding(name: string): number {
    const field = fieldByName(name);
    if (field === undefined) throw new Error(`no VMCS field ${name}`);
    return field.encoding;
  }

  /** With VMCS shadowing: tell the processor where vmcs01's VMREAD/VMWRITE bitmaps are. */
  registerShadowingBitmaps(bitmaps: VmcsShadowingBitmaps): void {
    const cpu = this.cpu as VmxCpu & {
      setShadowingBitmaps?: (v: HardwareVmcs, b: VmcsShadowingBitmaps) => void;
    };
    cpu.setShadowingBitmaps?.(this.vmcs01, bitmaps);
  }

  /** The guest hypervisor's MSR bitmap lets its guest access `index` without an exit (kvm: nested_vmx_exit_handled_msr). */
  guestPassesMsr(index: number, write = false): boolean {
    const vmcs12 = this.nested.state.cachedVmcs12;
    const address = vmcs12.read(F.MSR_BITMAP) + vmcs12.hi * TWO_32;
    return !msrBitmapIntercepts(this.guestMemory(), address, index, write);
  }

  /**
   * The MMU's current root as the EPT pointer KVM writes (kvm: construct_eptp): WB, 4 levels (the
   * model's roots), A/D enabled except in guest mode with nested EPT when L1's EPTP12 has A/D off
   * (nested_ept_ad_enabled) — else the CPU would set dirty bits for L2's page-table reads, which L1
   * did not ask for.
   */
  eptPointer(root: number): { readonly lo: number; readonly hi: number } {
    let accessedDirty = true;
    if (this.nested.guestMode && this.nested.nestedEpt) {
      const vmcs12 = this.nested.state.cachedVmcs12;
      accessedDirty = (vmcs12.read(F.EPT_POINTER) & (1 << 6)) !== 0;
    }
    // The root changes rarely; the encoding of the last one is kept (no allocation per entry).
    if (root !== this.#eptpRoot || accessedDirty !== this.#eptpAd) {
      this.#eptp = encodeEptPointer({
        memoryType: EPT_MEMORY_TYPE.WB,
        walkLength: 4,
        accessedDirty,
        supervisorShadowStack: false,
        root,
      });
      this.#eptpRoot = root;
      this.#eptpAd = accessedDirty;
    }
    return this.#eptp;
  }
  // NaN equals no root, not even INVALID_ROOT (-1), whose encoding must still fail loudly.
  #eptpRoot = Number.NaN;
  #eptpAd = true;
  #eptp: { readonly lo: number; readonly hi: number } = { lo: 0, hi: 0 };

  /**
   * vCPU creation and the first KVM_RUN up to the VM entry (kvm: vmx_create_vcpu, init_vmcs,
   * vmx_vcpu_reset): VMXON, VMCLEAR + VMPTRLD of vmcs01, its controls and host/guest state.
   */
  createVcpu(boot: GuestBootState): void {
    const p = this.processor;
    const memory = this.cpu.memory;
    // VMXON region and vmcs01 carry the revision identifier (SDM 25.2, 25.11.5).
    memory.write32(KVM_PAGE.VMXON, p.revisionId);
    memory.write32(KVM_PAGE.VMCS01, p.revisionId);
    this.#check(p.vmxon(KVM_PAGE.VMXON), "VMXON");
    this.#check(p.vmclear(KVM_PAGE.VMCS01), "VMCLEAR vmcs01");
    this.#check(p.vmptrld(KVM_PAGE.VMCS01), "VMPTRLD vmcs01");
    this.controls.switchTo(this.vmcs01);
    this.cpu.bindGuest(this.vmcs01, this.guest);
    this.guestPat = bootPat(boot);
    this.#initVmcs(boot);
    this.nested.createVcpu();
  }

  /** kvm: init_vmcs + vmx_vcpu_reset, reduced to the fields the model's guests and checks read. */
  #initVmcs(boot: GuestBootState): void {
    const p = this.processor;
    const c = this.controls;
    const caps = this.caps;
    const ctl = (cls: (typeof CONTROL_CLASS)[keyof typeof CONTROL_CLASS], wanted: number): number => {
      const msr = entryCheckControlMsr(caps, cls as Exclude<typeof cls, "tertiary">);
      return adjustControls(msr.lo, msr.hi, wanted);
    };
    const long = (boot.efer & EFER.LMA) !== 0;
    this.pin01 = ctl(
      CONTROL_CLASS.PIN,
      PIN_BASED_CTLS.PIN_BASED_EXT_INTR_MASK | PIN_BASED_CTLS.PIN_BASED_NMI_EXITING,
    );
    // kvm: without EPT, CR3 loads/stores and INVLPG exit (vmx_exec_control, shadow paging).
    const shadowPagingExits = this.useEpt
      ? 0
      : CPU_BASED_CTLS.CPU_BASED_CR3_LOAD_EXITING |
        CPU_BASED_CTLS.CPU_BASED_CR3_STORE_EXITING |
        CPU_BASED_CTLS.CPU_BASED_INVLPG_EXITING;
    this.exec01 = ctl(
      CONTROL_CLASS.PRIMARY,
      CPU_BASED_CTLS.CPU_BASED_HLT_EXITING |
        CPU_BASED_CTLS.CPU_BASED_UNCOND_IO_EXITING |
        CPU_BASED_CTLS.CPU_BASED_USE_MSR_BITMAPS |
        CPU_BASED_CTLS.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS |
        shadowPagingExits,
    );
    const ept = this.useEpt ? SECONDARY_EXEC_CTLS.SECONDARY_EXEC_ENABLE_EPT : 0;
    // kvm: enable_pml (with EPT), offered to a guest hypervisor too (nested PML).
    const pml = ept !== 0 ? SECONDARY_EXEC_CTLS.SECONDARY_EXEC_ENABLE_PML : 0;
    this.secondary01 = ctl(
      CONTROL_CLASS.SECONDARY,
      ept |
        pml |
        SECONDARY_EXEC_CTLS.SECONDARY_EXEC_ENABLE_VPID |
        (ept !== 0 ? SECONDARY_EXEC_CTLS.SECONDARY_EXEC_UNRESTRICTED_GUEST : 0),
    );
    // kvm: setup_vmcs_config — "load debug controls" is required (KVM_REQUIRED_VMX_VM_ENTRY_CONTROLS),
    // "load IA32_PAT" optional and kept (vmx_vmentry_ctrl). IA-32e mode and "load IA32_EFER" are
    // toggled by vmx_set_efer (KVM_SET_SREGS at reset): "load IA32_EFER" on entry and exit only
    // when the guest's EFER differs from the host's (update_transition_efer).
    this.entry01Base = ctl(
      CONTROL_CLASS.ENTRY,
      VM_ENTRY_CTLS.VM_ENTRY_LOAD_DEBUG_CONTROLS | VM_ENTRY_CTLS.VM_ENTRY_LOAD_IA32_PAT,
    );
    const transitionEfer = this.transitionEfer(boot.efer);
    const switchEfer = transitionEfer !== this.hostEfer;
    const entry =
      (this.entry01Base |
        (long ? VM_ENTRY_CTLS.VM_ENTRY_IA32E_MODE : 0) |
        (switchEfer ? VM_ENTRY_CTLS.VM_ENTRY_LOAD_IA32_EFER : 0)) >>>
      0;
    // kvm: KVM_REQUIRED_VMX_VM_EXIT_CONTROLS (save debug controls, ack interrupt on exit, host
    // address-space size) and "load IA32_PAT". No KVM of the modelled versions sets "save IA32_PAT",
    // "save IA32_EFER" or "save preemption timer" in a VMCS of its own: setup_vmcs_config did not
    // request them before 6.1, and vmx_vmexit_ctrl clears them since (they exist for vmcs12 only).
    this.exit01Base = ctl(
      CONTROL_CLASS.EXIT,
      VM_EXIT_CTLS.VM_EXIT_SAVE_DEBUG_CONTROLS |
        VM_EXIT_CTLS.VM_EXIT_HOST_ADDR_SPACE_SIZE |
        VM_EXIT_CTLS.VM_EXIT_ACK_INTR_ON_EXIT |
        VM_EXIT_CTLS.VM_EXIT_LOAD_IA32_PAT,
    );
    const exit01 = (this.exit01Base | (switchEfer ? VM_EXIT_CTLS.VM_EXIT_LOAD_IA32_EFER : 0)) >>> 0;
    c.init(0, this.pin01);
    c.init(1, this.exec01);
    c.init(2, this.secondary01);
    c.init(4, entry);
    c.init(5, exit01);
    writeMsrBitmap(this.cpu.memory, KVM_PAGE.MSR_BITMAP, PASSTHROUGH_MSRS);
    const w = (field: number, lo: number, hi = 0) => p.vmwrite(field, lo >>> 0, hi >>> 0);
    w(F.VIRTUAL_PROCESSOR_ID, this.vpid01);
    w(F.VMCS_LINK_POINTER, 0xffffffff, 0xffffffff);
    w(F.MSR_BITMAP, KVM_PAGE.MSR_BITMAP);
    // kvm: init_vmcs with enable_pml — the log page and an empty log (index PML_ENTITY_NUM − 1).
    if ((this.secondary01 & SECONDARY_EXEC_CTLS.SECONDARY_EXEC_ENABLE_PML) !== 0) {
      w(F.PML_ADDRESS, KVM_PAGE.PML_LOG);
      w(F.GUEST_PML_INDEX, 511);
    }
    // kvm: with EPT, #PF is not intercepted; #MC and #DB/#AC as KVM does are irrelevant here.
    // kvm: update_exception_bitmap — #MC always; #PF only without EPT (shadow paging).
    w(F.EXCEPTION_BITMAP, (1 << 18) | (this.useEpt ? 0 : 1 << 14));
    // kvm: KVM_POSSIBLE_CR0_GUEST_BITS — TS always; WP too with EPT since v6.4 (fb509f76acc8).
    w(F.CR0_GUEST_HOST_MASK, ~this.cr0GuestOwnedBits() >>> 0, 0xffffffff);
    w(F.CR4_GUEST_HOST_MASK, ~this.cr4GuestOwnedBits() >>> 0, 0xffffffff);
    w(F.CR0_READ_SHADOW, boot.cr0);
    w(F.CR4_READ_SHADOW, boot.cr4);
    w(F.GUEST_CR0, boot.cr0 | CR0.NE);
    w(F.GUEST_CR4, this.#hardwareCr4(boot.cr4));
    w(F.GUEST_CR3, boot.cr3 >>> 0, Math.floor(boot.cr3 / TWO_32));
    // kvm: add_atomic_switch_msr_special — the guest's EFER in the VMCS only when it is switched.
    if (switchEfer) w(F.GUEST_IA32_EFER, transitionEfer);
    // kvm: kvm_vcpu_reset — DR7 at its reset value (vmx_set_dr7), DEBUGCTL clear; with "load
    // IA32_PAT" the guest's PAT (the reset value, or what a booted guest hypervisor's Linux wrote:
    // vmx_set_msr keeps GUEST_IA32_PAT current) and the host's, which KVM reads with RDMSR
    // (vmx_set_constant_host_state) and which is Linux's on every host.
    w(F.GUEST_DR7, DR7_RESET);
    w(F.GUEST_IA32_DEBUGCTL, 0);
    if ((entry & VM_ENTRY_CTLS.VM_ENTRY_LOAD_IA32_PAT) !== 0) {
      w(F.GUEST_IA32_PAT, this.guestPat.lo, this.guestPat.hi);
    }
    if ((this.exit01Base & VM_EXIT_CTLS.VM_EXIT_LOAD_IA32_PAT) !== 0)
      w(F.HOST_IA32_PAT, LINUX_PAT.lo, LINUX_PAT.hi);
    // kvm: KVM_SET_SREGS → __set_sregs_common — with PAE paging, load_pdptrs (with EPT they go to
    // GUEST_PDPTR0–3 at the first entry; the shadow MMU reads them itself when it builds a PAE root).
    if (isPaePaging(boot.cr0, boot.cr4, boot.efer)) this.loadPdptrs(boot.cr3);
    w(F.GUEST_RIP, boot.rip >>> 0, Math.floor(boot.rip / TWO_32));
    w(F.GUEST_RFLAGS, RFLAGS_RESET);
    // Flat segments of a protected-mode (or 64-bit) kernel at the boot CPL (kvm: vmx_vcpu_reset then
    // KVM_SET_SREGS); without unrestricted guest KVM checks them (vmx_guest_state_valid).
    const cpl = (boot.cpl ?? 0) & 3;
    const dpl = cpl << 5;
    const segment = (name: string, selector: number, ar: number, limit: number) => {
      w(this.fieldEncoding(`GUEST_${name}_SELECTOR`), selector);
      w(this.fieldEncoding(`GUEST_${name}_AR_BYTES`), ar);
      w(this.fieldEncoding(`GUEST_${name}_LIMIT`), limit);
      w(this.fieldEncoding(`GUEST_${name}_BASE`), 0);
    };
    segment("CS", 0x10 | cpl, (long ? 0xa09b : 0xc09b) | dpl, 0xffffffff);
    for (const name of ["SS", "DS", "ES", "FS", "GS"]) segment(name, 0x18 | cpl, 0xc093 | dpl, 0xffffffff);
    segment("TR", 0x40, 0x8b, 0x67);
    segment("LDTR", 0, 0x10000, 0);
    w(F.GUEST_GDTR_LIMIT, 0xffff);
    w(F.GUEST_IDTR_LIMIT, 0xffff);
    w(F.HOST_CR0, HYPERVISOR_BOOT_STATE.cr0);
    w(F.HOST_CR3, HYPERVISOR_BOOT_STATE.cr3);
    w(F.HOST_CR4, HYPERVISOR_BOOT_STATE.cr4);
    w(F.HOST_IA32_EFER, HYPERVISOR_BOOT_STATE.efer);
    w(F.HOST_CS_SELECTOR, 0x10);
    w(F.HOST_SS_SELECTOR, 0x18);
    w(F.HOST_TR_SELECTOR, 0x40);
    w(F.HOST_RIP, 0x0010_1000);
    w(F.HOST_RSP, 0x0020_0000);
    this.regs.reset();
  }

  /** CR0 bits the guest owns (kvm: vcpu->arch.cr0_guest_owned_bits): TS, and WP with EPT from v6.4. */
  cr0GuestOwnedBits(): number {
    // kvm: fb509f76acc8 "KVM: VMX: Make CR0.WP a guest owned bit" (v6.4), the same series as the
    // WP-only MMU exemption; modelled under keepRootsOnWpOnlyChange. Only with EPT.
    return this.config.keepRootsOnWpOnlyChange && this.useEpt ? CR0.TS | CR0.WP : CR0.TS;
  }

  /**
   * CR4 bits the guest owns (kvm: set_cr4_guest_host_mask): KVM_POSSIBLE_CR4_GUEST_BITS (PVI, DE,
   * PCE, OSFXSR, OSXMMEXCPT, PGE, TSD, FSGSBASE; the model's guests support all of them), less PGE
   * without EPT (X86_CR4_TLBFLUSH_BITS and X86_CR4_PDPTR_BITS: shadow paging must see PGE changes).
   */
  cr4GuestOwnedBits(): number {
    const owned = CR4.PVI | CR4.DE | CR4.PCE | CR4.OSFXSR | CR4.OSXMMEXCPT | CR4.PGE | CR4.TSD | CR4.FSGSBASE;
    return (this.useEpt ? owned : owned & ~CR4.PGE) >>> 0;
  }

  #check(result: number, what: string): void {
    if (result !== VMX_RESULT.SUCCEED) throw new Error(`${this.name}: ${what} failed (${result})`);
  }

  // ------------------------------------------------------------------------------------------
  // Run loop

  /**
   * The tail of the run loop after a VM exit of its guest (kvm: vmx_vcpu_run after the exit,
   * vmx_handle_exit, then vcpu_enter_guest up to the next entry).
   */
  onVmExit(): void {
    const p = this.processor;
    this.meter.count(HV.EXIT_DISPATCH);
    // kvm: vmx_vcpu_enter_exit reads the exit reason; vmx_vcpu_run the IDT-vectoring information.
    const reason = p.vmread(F.VM_EXIT_REASON);
    p.vmread(F.IDT_VECTORING_INFO_FIELD);
    this.regs.reset();
    const basic = reason & 0xffff;
    // kvm: __vmx_handle_exit flushes the PML buffer on every exit outside guest mode.
    if (!this.nested.guestMode && (this.secondary01 & SECONDARY_EXEC_CTLS.SECONDARY_EXEC_ENABLE_PML) !== 0) {
      p.vmread(F.GUEST_PML_INDEX);
    }
    if (this.nested.guestMode) {
      if (this.nested.reflectVmexit(basic)) {
        this.enterGuest();
        return;
      }
      this.meter.count(HV.NESTED_EXIT_HANDLED_BY_L0);
    }
    this.#dispatch(basic);
    this.enterGuest();
  }

  /**
   * kvm: kvm_mmu_reload → kvm_mmu_load when the current root is invalid: a new root, loaded at once
   * (kvm_mmu_load_pgd), then flush_tlb_current called directly (not a request).
   */
  reloadMmu(): void {
    if (!this.mmu.reload()) return;
    // kvm: kvm_mmu_load syncs the new root's unsync pages before loading it.
    this.#syncRoots();
    this.#loadMmuPgd();
    this.#flushTlbCurrent();
  }

  /**
   * kvm: kvm_mmu_sync_roots — nothing for a direct root role or without a root; the shadow-EPT root
   * of L2 is synced against vmcs12's EPT12. Only the shadow-EPT store has unsync pages.
   */
  #syncRoots(): void {
    const context = this.mmu.mmu;
    const shadowEpt = this.shadowEpt;
    if (shadowEpt === null || !this.store.unsyncEnabled || !context.hasRoot) return;
    if ((context.rootRole & PAGE_ROLE.DIRECT) !== 0) return;
    shadowEpt.syncRoots(context.rootHpa, this.ept12Context(this.mmu.eptp12));
  }

  /**
   * kvm: kvm_vcpu_flush_tlb_current → vmx_flush_tlb_current: with EPT, INVEPT single-context of the
   * current root's EPTP (ept_sync_context); without, INVVPID of the current VPID. Nothing to
   * invalidate without a valid root. A guest hypervisor's INVEPT/INVVPID exits to its parent.
   */
  #flushTlbCurrent(): void {
    this.meter.count(HV.TLB_FLUSH_CURRENT);
    const context = this.mmu.mmu;
    if (!context.hasRoot) return;
    if (this.useEpt) {
      const eptp = this.eptPointer(context.rootHpa);
      this.cpu.invept(INVEPT_TYPE.SINGLE_CONTEXT, eptp.hi * TWO_32 + eptp.lo);
    } else {
      this.#vpidSyncContext(this.#currentVpid());
    }
  }

  /**
   * kvm: kvm_vcpu_flush_tlb_all → vmx_flush_tlb_all: with EPT an INVEPT of every EPTP
   * (ept_sync_global), else an INVVPID of every VPID (vpid_sync_vcpu_global; the model's CPUs offer
   * the all-context type). A guest hypervisor's is an exit that L0 emulates (handle_invept frees all
   * of L2's shadow-EPT roots).
   */
  #flushTlbAll(): void {
    this.meter.count(HV.TLB_FLUSH_ALL);
    if (this.useEpt) this.cpu.invept(INVEPT_TYPE.GLOBAL, 0);
    else this.cpu.invvpid(INVVPID_TYPE.ALL_CONTEXTS, 0);
  }

  /** kvm: kvm_vcpu_flush_tlb_guest → vmx_flush_tlb_guest: INVVPID of the current VPID. */
  #flushTlbGuest(): void {
    this.meter.count(HV.TLB_FLUSH_GUEST);
    this.#vpidSyncContext(this.#currentVpid());
  }

  /** kvm: vmx->vpid, the VPID of this KVM's guest: level+1 in the model (init_vmcs). */
  get vpid01(): number {
    return this.level + 1;
  }

  /** kvm: nested.vpid02, the VPID L0 gives its nested guest: level+2 (prepare_vmcs02_early_rare). */
  get vpid02(): number {
    return this.level + 2;
  }

  /** kvm: vmx_get_current_vpid — vpid02 in guest mode when vmcs12 enables VPID, else vpid01. */
  #currentVpid(): number {
    const nested = this.nested;
    return nested.guestMode && nested.l2UsesVpid() ? this.vpid02 : this.vpid01;
  }

  /**
   * kvm: vpid_sync_context — INVVPID single-context (the model's CPUs offer it); VPID 0 needs none,
   * VM entry and exit flush it.
   */
  #vpidSyncContext(vpid: number): void {
    if (vpid !== 0) this.cpu.invvpid(INVVPID_TYPE.SINGLE_CONTEXT, vpid);
  }

  /** kvm: vpid_sync_vcpu_addr — INVVPID of one linear address (the model's CPUs offer the type). */
  #vpidSyncAddress(vpid: number, linear: number): void {
    if (vpid !== 0) this.cpu.invvpid(INVVPID_TYPE.INDIVIDUAL_ADDRESS, vpid, linear);
  }

  /**
   * kvm: handle_invvpid after the checks — vpid02 invalidated on the processor: the one address for
   * an individual-address INVVPID (vpid_sync_vcpu_addr), else the whole context (vpid_sync_context).
   */
  invalidateNestedVpid(type: number, linear: number): void {
    if (type === INVVPID_TYPE.INDIVIDUAL_ADDRESS) this.#vpidSyncAddress(this.vpid02, linear);
    else this.#vpidSyncContext(this.vpid02);
    // Without EPT, L1 and L2 share root_mmu: L2's roots go (kvm_mmu_free_guest_mode_roots).
    this.mmu.handleInvvpidShadowPaging();
  }

  /**
   * kvm: kvm_mmu_load_pgd → vmx_load_mmu_pgd. Nothing without a valid root (kvm_mmu_reload loads it
   * later). With EPT: the EPT pointer, GUEST_CR3 only when the CR3 register is dirty, and the PDPTEs
   * KVM loaded when they are dirty and the guest uses PAE paging (vmx_ept_load_pdptrs). Without EPT
   * the processor walks the shadow root, written as GUEST_CR3. The dirty bits stay set until the VM
   * entry (KVM resets its register cache after the next exit), so a second load writes them again.
   */
  #loadMmuPgd(): void {
    const context = this.mmu.mmu;
    if (!context.hasRoot) return;
    const root = context.rootHpa;
    const p = this.processor;
    if (!this.useEpt) {
      // kvm: vmx_load_mmu_pgd — the shadow root tagged with the guest's active PCID
      // (kvm_get_active_pcid), so the processor's TLB keeps each address space's entries apart.
      const cr3 = root + this.mmu.activePcid;
      p.vmwrite(F.GUEST_CR3, cr3 >>> 0, Math.floor(cr3 / TWO_32));
      return;
    }
    const eptp = this.eptPointer(root);
    p.vmwrite(F.EPT_POINTER, eptp.lo, eptp.hi);
    if (this.cr3Dirty) {
      const cr3 = this.mmu.cr3;
      p.vmwrite(F.GUEST_CR3, cr3 >>> 0, Math.floor(cr3 / TWO_32));
    }
    if (this.pdptrsDirty && this.mmu.paePaging) {
      const pdptrs = this.pdptrs;
      for (let i = 0; i < 4; i++) {
        p.vmwrite(GUEST_PDPTR_FIELDS[i]!, pdptrs[i]! % TWO_32, Math.floor(pdptrs[i]! / TWO_32));
      }
    }
  }

  /** kvm: vcpu_enter_guest from the request checks to the VM entry. */
  enterGuest(): void {
    const p = this.processor;
    const nested = this.nested;
    this.tracePhase(KVM_PHASE.PREPARE_ENTRY);
    // kvm: vcpu_enter_guest services the requests in this order: KVM_REQ_MMU_SYNC
    // (kvm_mmu_sync_roots), KVM_REQ_LOAD_MMU_PGD, then kvm_service_local_tlb_flush_requests (current
    // context, then guest); kvm_mmu_reload comes after.
    const mmu = this.mmu;
    if (mmu.requests !== 0 && mmu.checkRequest(MMU_REQUEST.MMU_SYNC)) this.#syncRoots();
    if (this.loadPgdRequested) {
      this.loadPgdRequested = false;
      this.#loadMmuPgd();
    }
    // kvm: KVM_REQ_TLB_FLUSH before the local flushes; flushing everything subsumes "current".
    if (this.tlbFlushAllRequested) {
      this.tlbFlushAllRequested = false;
      this.#flushTlbAll();
      if (mmu.requests !== 0) mmu.checkRequest(MMU_REQUEST.TLB_FLUSH_CURRENT);
    }
    if (mmu.requests !== 0) {
      if (mmu.checkRequest(MMU_REQUEST.TLB_FLUSH_CURRENT)) this.#flushTlbCurrent();
      if (mmu.checkRequest(MMU_REQUEST.TLB_FLUSH_GUEST)) this.#flushTlbGuest();
    }
    this.reloadMmu();
    // The register cache is reset after the exit that follows (vmx_register_cache_reset).
    this.cr3Dirty = false;
    this.pdptrsDirty = false;
    this.tracePhase(KVM_PHASE.SWITCH_TO_GUEST);
    // kvm: vmx_prepare_switch_to_guest → nested_sync_vmcs12_to_shadow, when a sync is pending.
    if (!nested.guestMode) nested.syncVmcs12ToShadow();
    if (this.hostStateReloadPending) {
      // kvm (flag D off): vmx_prepare_switch_to_guest re-saves host segments and writes them.
      this.hostStateReloadPending = false;
      this.meter.count(HV.HOST_STATE_RELOAD);
      p.vmwrite(F.HOST_FS_SELECTOR, 0);
      p.vmwrite(F.HOST_GS_SELECTOR, 0);
      p.vmwrite(F.HOST_FS_BASE, 0);
      p.vmwrite(F.HOST_GS_BASE, 0);
    }
    // kvm: vmx_sync_pir_to_irr → vmx_set_rvi with APICv (the model's host has it), L1 only.
    if (!nested.guestMode) p.vmread(F.GUEST_INTR_STATUS);
    let reloadGuestDebugctl = false;
    if (this.config.hostDebugctlPerEntry) {
      // kvm: vcpu_enter_guest → get_debugctlmsr with IRQs off (189ecdb3e112); a change in a
      // host-owned bit sets KVM_RUN_LOAD_DEBUGCTL.
      this.tracePhase(KVM_PHASE.SNAPSHOT_HOST_DEBUGCTL);
      const debugctl = this.cpu.readDebugctl();
      reloadGuestDebugctl = ((debugctl ^ this.hostDebugctl) & DEBUGCTL.FREEZE_IN_SMM) !== 0;
      this.hostDebugctl = debugctl;
    }
    this.tracePhase(KVM_PHASE.VCPU_RUN);
    this.regs.flush();
    if (reloadGuestDebugctl) this.#reloadGuestDebugctl();
    const current = p.current;
    const launched = current === this.vmcs01 ? this.launched01 : nested.launched02;
    const result = this.cpu.enterGuest(!launched);
    if (result !== VMX_RESULT.SUCCEED) {
      throw new Error(
        `${this.name}: VM entry failed with ${result} (a model bug: KVM's VMCS is always valid)`,
      );
    }
    if (current === this.vmcs01) this.launched01 = true;
    else nested.launched02 = true;
  }

  // ------------------------------------------------------------------------------------------
  // Exit handlers

  /** The registers of the vCPU whose exit is being handled (GPRs pass through every level). */
  exitingRegisters(): GuestContext {
    const current = this.processor.current;
    const guest = current === null ? undefined : this.cpu.guestOf(current);
    if (guest !== undefined) return guest;
    return this.nested.l2Context();
  }

  #dispatch(reason: number): void {
    switch (reason) {
      case EXIT_REASON.CPUID:
        this.#handleCpuid();
        return;
      case EXIT_REASON.VMCALL:
        this.#handleVmcall();
        return;
      case EXIT_REASON.HLT:
        this.meter.count(HV.EXIT_HANDLER_HLT);
        this.skipInstruction();
        return;
      case EXIT_REASON.IO_INSTRUCTION:
        this.#handleIo();
        return;
      case EXIT_REASON.MSR_READ:
      case EXIT_REASON.MSR_WRITE:
        this.#handleMsr(reason === EXIT_REASON.MSR_WRITE);
        return;
      case EXIT_REASON.CR_ACCESS:
        this.#handleCr();
        return;
      case EXIT_REASON.INVLPG: {
        this.meter.count(HV.EXIT_HANDLER_INVLPG);
        // kvm: handle_invlpg → kvm_mmu_invlpg → kvm_mmu_invalidate_addr: flush_tlb_gva, an INVVPID of
        // the address for the current VPID (vmx_flush_tlb_gva); the model's shadow pages are never
        // unsync, so there is nothing to resync.
        const linear = this.regs.readExitQualification() + this.regs.exitQualHi * TWO_32;
        this.mmu.mmioCache.clear(linear); // kvm: __kvm_mmu_invalidate_addr → vcpu_clear_mmio_info
        this.#vpidSyncAddress(this.#currentVpid(), linear);
        this.skipInstruction();
        return;
      }
      case EXIT_REASON.EPT_VIOLATION:
        this.#handleEptViolation();
        return;
      case EXIT_REASON.EXCEPTION_NMI:
        this.#handleException();
        return;
      case EXIT_REASON.EPT_MISCONFIG:
        this.#handleEptMisconfig();
        return;
      case EXIT_REASON.VMON:
      case EXIT_REASON.VMOFF:
      case EXIT_REASON.VMCLEAR:
      case EXIT_REASON.VMPTRLD:
      case EXIT_REASON.VMPTRST:
      case EXIT_REASON.VMREAD:
      case EXIT_REASON.VMWRITE:
      case EXIT_REASON.VMLAUNCH:
      case EXIT_REASON.VMRESUME:
      case EXIT_REASON.INVEPT:
      case EXIT_REASON.INVVPID:
        this.nested.handleVmxInstruction(reason);
        return;
      default:
        throw new Error(`${this.name}: no handler for exit reason ${reason}`);
    }
  }

  /**
   * kvm: kvm_skip_emulated_instruction → skip_emulated_instruction: RIP += VM_EXIT_INSTRUCTION_LEN,
   * clear the interrupt shadow (vmx_set_interrupt_shadow reads GUEST_INTERRUPTIBILITY_INFO), and the
   * single-step check reads RFLAGS.
   */
  skipInstruction(): void {
    this.tracePhase(KVM_PHASE.SKIP_INSTRUCTION);
    const p = this.processor;
    // RFLAGS first: kvm_skip_emulated_instruction checks it for single-stepping after the skip.
    this.regs.readRflags();
    const length = p.vmread(F.VM_EXIT_INSTRUCTION_LEN);
    this.regs.writeRip(this.regs.readRip() + length);
    this.clearInterruptShadow();
  }

  /**
   * kvm: vmx_set_interrupt_shadow(vcpu, 0) — GUEST_INTERRUPTIBILITY_INFO read, and written back
   * without STI and MOV-SS blocking (bits 1:0) only when one of them was set.
   */
  clearInterruptShadow(): void {
    const p = this.processor;
    const interruptibility = p.vmread(F.GUEST_INTERRUPTIBILITY_INFO);
    if ((interruptibility & 3) !== 0) p.vmwrite(F.GUEST_INTERRUPTIBILITY_INFO, interruptibility & ~3);
  }

  #handleCpuid(): void {
    this.meter.count(HV.EXIT_HANDLER_CPUID);
    const g = this.exitingRegisters();
    const leaf = g.gprLo[GPR.RAX]!;
    const subleaf = g.gprLo[GPR.RCX]!;
    // A fixed, deterministic CPUID table: what a guest reads does not depend on flags or levels.
    const seed = (Math.imul(leaf ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(subleaf + 1, 0xc2b2ae35)) >>> 0;
    g.setGpr(GPR.RAX, seed, 0);
    g.setGpr(GPR.RBX, Math.imul(seed, 3) >>> 0, 0);
    g.setGpr(GPR.RCX, (seed ^ 0x5a5a5a5a) >>> 0, 0);
    g.setGpr(GPR.RDX, (seed >>> 7) ^ leaf, 0);
    this.skipInstruction();
  }

  /**
   * kvm: is_64_bit_mode — false outside long mode (no VMCS access), else CS.L from GUEST_CS_AR_BYTES
   * through the segment cache. kvm_register_read truncates a GPR to 32 bits when it is false.
   */
  is64BitMode(): boolean {
    if ((this.mmu.efer & EFER.LMA) === 0) return false;
    return this.regs.read64BitMode();
  }

  #handleVmcall(): void {
    this.meter.count(HV.EXIT_HANDLER_VMCALL);
    // kvm: is_64_bit_hypercall and the CPL check read CS and SS AR bytes (segment cache).
    const op64 = this.is64BitMode();
    this.regs.readCpl();
    const g = this.exitingRegisters();
    // kvm: kvm_emulate_hypercall — an unknown hypercall returns -KVM_ENOSYS (1000) in RAX, truncated
    // to 32 bits outside 64-bit mode.
    g.setGpr(GPR.RAX, -1000 >>> 0, op64 ? 0xffffffff : 0);
    this.skipInstruction();
  }

  #handleIo(): void {
    const qual = this.regs.readExitQualification();
    const bytes = (qual & IO_QUAL.SIZE_MASK) + 1;
    const port = qual >>> IO_QUAL.PORT_SHIFT;
    const isIn = (qual & IO_QUAL.DIRECTION_IN) !== 0;
    const g = this.exitingRegisters();
    const mask = bytes === 4 ? 0xffffffff : (1 << (bytes * 8)) - 1;
    // kvm: kvm_fast_pio → kernel_pio on KVM_PIO_BUS, else KVM_EXIT_IO to user space.
    const kernel = inKernelPort(port);
    this.meter.count(kernel ? HV.EXIT_HANDLER_IO_KERNEL : HV.EXIT_HANDLER_IO_USERSPACE);
    if (!kernel) {
      // kvm: the user-space exit remembers the linear RIP (kvm_get_linear_rip: RIP, plus the CS base
      // outside 64-bit mode).
      if (!this.is64BitMode()) this.regs.readCsBase();
      this.regs.readRip();
    }
    if (isIn) {
      const value = kernel ? this.pic.read(port, bytes) : this.userspace.read(port, bytes);
      // kvm: complete_fast_pio_in — a 1- or 2-byte IN merges into RAX, a 4-byte one zero-extends.
      if (bytes === 4) {
        g.setGpr(GPR.RAX, value >>> 0, 0);
      } else {
        const rax = g.gprLo[GPR.RAX]!;
        g.gprLo[GPR.RAX] = ((rax & ~mask) | (value & mask)) >>> 0;
      }
    } else {
      const value = g.gprLo[GPR.RAX]! & mask;
      if (kernel) this.pic.write(port, bytes, value);
      else this.userspace.write(port, bytes, value);
    }
    this.skipInstruction();
  }

  #handleMsr(write: boolean): void {
    this.meter.count(HV.EXIT_HANDLER_MSR);
    const g = this.exitingRegisters();
    const index = g.gprLo[GPR.RCX]!;
    const sysenter = index >= 0x174 && index <= 0x176 ? SYSENTER_FIELDS[index - 0x174]! : -1;
    if (sysenter >= 0) {
      // kvm: vmx_set_msr / vmx_get_msr — the SYSENTER MSRs live in the VMCS; in guest mode a write
      // also updates vmcs12 (which is why sync_vmcs02_to_vmcs12 no longer reads them back).
      const p = this.processor;
      if (write) {
        const lo = g.gprLo[GPR.RAX]!;
        const hi = sysenter === SYSENTER_FIELDS[0] ? 0 : g.gprLo[GPR.RDX]!;
        if (this.nested.guestMode) this.nested.updateVmcs12(sysenter, lo, hi);
        p.vmwrite(sysenter, lo, hi);
      } else {
        const lo = p.vmread(sysenter);
        g.setGpr(GPR.RAX, lo, 0);
        g.setGpr(GPR.RDX, p.hi, 0);
      }
      this.skipInstruction();
      return;
    }
    if (index === MSR.IA32_DEBUGCTL) {
      if (write) this.#writeDebugctl(g.gprLo[GPR.RAX]!, g.gprLo[GPR.RDX]!);
      else {
        // kvm: vmx_get_msr → vmx_guest_debugctl_read, the VMCS value without the host-owned bit.
        const lo = this.processor.vmread(F.GUEST_IA32_DEBUGCTL) & ~DEBUGCTL.FREEZE_IN_SMM;
        g.setGpr(GPR.RAX, lo >>> 0, 0);
        g.setGpr(GPR.RDX, this.processor.hi, 0);
      }
      this.skipInstruction();
      return;
    }
    if (write) {
      this.msrs.set(
        index,
        g.gprHi[GPR.RDX]! === 0
          ? g.gprLo[GPR.RAX]! + g.gprLo[GPR.RDX]! * TWO_32
          : g.gprLo[GPR.RAX]! + g.gprLo[GPR.RDX]! * TWO_32,
      );
    } else {
      const value = this.msrs.get(index) ?? 0;
      g.setGpr(GPR.RAX, value >>> 0, 0);
      g.setGpr(GPR.RDX, Math.floor(value / TWO_32) >>> 0, 0);
    }
    this.skipInstruction();
  }

  /**
   * kvm: vmx_reload_guest_debugctl — the guest's DEBUGCTL takes the host's FREEZE_IN_SMM when it
   * differs. The model's hosts never set the bit, so this runs only if a host did.
   */
  #reloadGuestDebugctl(): void {
    const p = this.processor;
    const value = p.vmread(F.GUEST_IA32_DEBUGCTL);
    const hi = p.hi;
    if (((value ^ this.hostDebugctl) & DEBUGCTL.FREEZE_IN_SMM) === 0) return;
    const guest = value & ~DEBUGCTL.FREEZE_IN_SMM;
    p.vmwrite(F.GUEST_IA32_DEBUGCTL, (guest | (this.hostDebugctl & DEBUGCTL.FREEZE_IN_SMM)) >>> 0, hi);
  }

  /**
   * kvm: vmx_set_msr for IA32_DEBUGCTL. The model's guests are offered none of the optional bits
   * (vmx_get_supported_debugctl: no bus-lock detection, no LBR virtualization, no RTM), so BTF and LBR
   * are dropped (vmx_is_valid_debugctl ignores them) and any other bit is a #GP, which the model
   * does not inject. In guest mode vmcs12 keeps the value when L1 saves debug controls on exit; the
   * write keeps the host's FREEZE_IN_SMM (vmx_guest_debugctl_write).
   */
  #writeDebugctl(lo: number, hi: number): void {
    const invalidLo = lo & ~(DEBUGCTL.BTF | DEBUGCTL.LBR);
    if (invalidLo !== 0 || hi !== 0) {
      throw new Error(
        `${this.name}: WRMSR IA32_DEBUGCTL 0x${(hi * TWO_32 + lo).toString(16)} sets bits KVM does not ` +
          "support for the guest; the #GP KVM injects is not modelled",
      );
    }
    const value = 0;
    if (
      this.nested.guestMode &&
      (this.nested.vmcs12ExitControls() & VM_EXIT_CTLS.VM_EXIT_SAVE_DEBUG_CONTROLS) !== 0
    ) {
      this.nested.updateVmcs12(F.GUEST_IA32_DEBUGCTL, value, 0);
    }
    this.processor.vmwrite(
      F.GUEST_IA32_DEBUGCTL,
      (value | (this.hostDebugctl & DEBUGCTL.FREEZE_IN_SMM)) >>> 0,
      0,
    );
  }

  /** kvm: handle_cr for MOV to/from CR0/CR3/CR4. */
  #handleCr(): void {
    this.meter.count(HV.EXIT_HANDLER_CR_ACCESS);
    const p = this.processor;
    const qual = this.regs.readExitQualification();
    const cr = qual & CR_ACCESS_QUAL.CR_NUM_MASK;
    const type = (qual & CR_ACCESS_QUAL.ACCESS_TYPE_MASK) >>> CR_ACCESS_QUAL.ACCESS_TYPE_SHIFT;
    const gpr = (qual & CR_ACCESS_QUAL.GPR_MASK) >>> CR_ACCESS_QUAL.GPR_SHIFT;
    const g = this.exitingRegisters();
    if (type === 0) {
      // kvm: kvm_register_read (is_64_bit_mode) and kvm_read_cr0/cr4 of the old value.
      const longOperand = this.is64BitMode();
      // The old CR0's guest-owned bits (WP under EPT) come from the VMCS.
      if (cr === 0) this.refreshGuestOwnedCr0();
      else if (cr === 4) p.vmread(F.GUEST_CR4);
      const value = g.gprLo[gpr]!;
      const nested = this.nested.guestMode;
      if (cr === 0) {
        this.setCr0(nested ? this.nested.l2CrValue(0, value) : value);
        if (nested) p.vmwrite(F.CR0_READ_SHADOW, value);
      } else if (cr === 4) {
        this.setCr4(nested ? this.nested.l2CrValue(4, value) : value);
        if (nested) p.vmwrite(F.CR4_READ_SHADOW, value);
      } else if (cr === 3) {
        // Bit 63 is CR3's no-flush hint, not part of the value (SDM 4.10.4.1). Outside 64-bit mode
        // the operand is 32 bits (kvm_register_read).
        const hi = longOperand ? g.gprHi[gpr]! : 0;
        const noFlush = (hi & 0x80000000) !== 0;
        // kvm: kvm_set_cr3 — without CR4.PCIDE bit 63 stays in the value, which is then not a legal
        // CR3 (kvm_vcpu_is_legal_cr3): kvm_complete_insn_gp injects #GP(0), RIP unchanged.
        if (noFlush && (this.mmu.cr4 & CR4.PCIDE) === 0) {
          this.#injectException(13, 0);
          return;
        }
        this.setCr3(g.gprLo[gpr]! + (hi & 0x7fffffff) * TWO_32, noFlush);
      }
    } else if (type === 1) {
      const value = cr === 0 ? this.readCr0() : cr === 4 ? this.readCr4() : this.mmu.cr3;
      // kvm: kvm_register_write truncates to 32 bits outside 64-bit mode (is_64_bit_mode).
      g.setGpr(gpr, value >>> 0, this.is64BitMode() ? Math.floor(value / TWO_32) : 0);
    }
    this.skipInstruction();
  }

  /**
   * kvm: kvm_queue_exception_e — a hardware exception with an error code (#GP from
   * kvm_complete_insn_gp, #PF from kvm_inject_emulated_page_fault): in guest mode, a nested VM exit
   * when L1 intercepts it (kvm_multiple_exception → nested_vmx_inject_exception_vmexit, with
   * `qualLo`/`qualHi` as the qualification, CR2 for a #PF); otherwise written at the next entry
   * (vmx_inject_exception). The instruction is not skipped.
   */
  #injectException(vector: number, errorCode: number, qualLo = 0, qualHi = 0): void {
    if (this.nested.guestMode && this.nested.exceptionExitsToL1(vector, errorCode)) {
      this.nested.injectExceptionVmexit(vector, errorCode, qualLo, qualHi);
      return;
    }
    this.meter.count(HV.EVENT_INJECTION);
    // SDM 25.8.3: valid, deliver error code, type 3 (hardware exception), the vector.
    this.processor.vmwrite(F.VM_ENTRY_INTR_INFO_FIELD, (0x80000b00 | vector) >>> 0);
    this.processor.vmwrite(F.VM_ENTRY_EXCEPTION_ERROR_CODE, errorCode);
  }

  /**
   * kvm: kvm_read_cr0_bits → vmx_cache_reg(VCPU_EXREG_CR0) — the guest-owned CR0 bits (WP under
   * EPT), which the guest may have toggled without an exit, from GUEST_CR0; once per exit, as KVM's
   * register cache keeps them until the next one.
   */
  refreshGuestOwnedCr0(): void {
    if (this.regs.cr0Available) return;
    this.mmu.cacheGuestOwnedCr0(this.processor.vmread(F.GUEST_CR0), this.cr0GuestOwnedBits());
    this.regs.markCr0Available();
  }

  /** kvm: kvm_read_cr0 — guest-owned bits from GUEST_CR0, the rest from the read shadow. */
  readCr0(): number {
    const p = this.processor;
    const owned = this.cr0GuestOwnedBits();
    const shadow = p.vmread(F.CR0_READ_SHADOW);
    const real = p.vmread(F.GUEST_CR0);
    return ((real & owned) | (shadow & ~owned)) >>> 0;
  }

  readCr4(): number {
    const p = this.processor;
    const owned = this.cr4GuestOwnedBits();
    const shadow = p.vmread(F.CR4_READ_SHADOW);
    const real = p.vmread(F.GUEST_CR4);
    return ((real & owned) | (shadow & ~owned)) >>> 0;
  }

  /** kvm: kvm_set_cr0 → vmx_set_cr0 (read shadow + GUEST_CR0) → kvm_post_set_cr0 (MMU). */
  setCr0(value: number): void {
    const p = this.processor;
    // kvm: kvm_set_cr0 forces ET (bit 4) on before vmx_set_cr0.
    const cr0 = (value | CR0.ET) >>> 0;
    p.vmwrite(F.CR0_READ_SHADOW, cr0);
    p.vmwrite(F.GUEST_CR0, (cr0 | CR0.NE) >>> 0);
    this.regs.markCr0Available();
    this.checkGuestStateValid(cr0);
    const old = this.mmu.cr0;
    // VcpuMmu.setCr0 stores the value and runs kvm_post_set_cr0.
    this.mmu.setCr0(cr0);
    // kvm: kvm_set_cr0 — entering or changing PAE paging's CD/NW/PG reloads the PDPTEs.
    if (((old ^ cr0) & CR0_PDPTR_BITS) !== 0) this.#reloadPdptrs();
  }

  /**
   * The end of vmx_set_cr0 (kvm: vmx->emulation_required = vmx_emulation_required(vcpu)) with the
   * new CR0 `cr0`. With unrestricted guest nothing is read. Without it (no EPT, or L2 when vmcs12
   * does not ask for unrestricted guest) __vmx_guest_state_valid reads the guest's segments through
   * the segment cache: in protected mode RFLAGS (for VM86), then CS and SS (cs_ss_rpl_check,
   * code_segment_valid, stack_segment_valid), DS, ES, FS, GS (data_segment_valid), TR and LDTR; in
   * real or VM86 mode CS, SS, DS, ES, FS, GS (rmode_segment_valid). Every read is the whole segment
   * (vmx_get_segment). The model's guests always pass; a CS/SS RPL mismatch, after which KVM would
   * emulate the guest (emulate_invalid_guest_state) or fail a nested entry, is not modelled and
   * throws. Real mode is read as whole segments too, without KVM's enter_rmode (not modelled).
   */
  checkGuestStateValid(cr0: number): void {
    if (this.#isUnrestrictedGuest()) return;
    const regs = this.regs;
    if ((cr0 & CR0.PE) === 0 || (regs.readRflags() & RFLAGS.VM) !== 0) {
      for (const seg of RMODE_CHECKED_SEGMENTS) regs.readWholeSegment(seg);
      return;
    }
    for (const seg of PMODE_CHECKED_SEGMENTS) regs.readWholeSegment(seg);
    const cs = regs.readSegment(SEGMENT.CS, SEGMENT_FIELD.SELECTOR);
    const ss = regs.readSegment(SEGMENT.SS, SEGMENT_FIELD.SELECTOR);
    if ((cs & 3) !== (ss & 3)) {
      throw new Error(
        `${this.name}: CS.RPL ${cs & 3} differs from SS.RPL ${ss & 3} without unrestricted guest; ` +
          "invalid guest state (emulated by KVM, or a failed nested entry) is not modelled",
      );
    }
  }

  /**
   * kvm: vmx_set_rflags. With unrestricted guest one VMWRITE and the cache; without it the old
   * value is read first (vmx_get_rflags), and a change of RFLAGS.VM re-runs the guest-state check.
   * (vm86 mode, which KVM uses for real mode without unrestricted guest, is not modelled.)
   */
  setRflags(value: number): void {
    if (this.#isUnrestrictedGuest()) {
      this.regs.writeRflags(value);
      return;
    }
    const old = this.regs.readRflags();
    this.regs.writeRflags(value);
    if (((old ^ value) & RFLAGS.VM) !== 0) this.checkGuestStateValid(this.mmu.cr0);
  }

  /**
   * kvm: is_unrestricted_guest — the module's enable_unrestricted_guest (which needs EPT) and, for
   * L2, "unrestricted guest" among vmcs02's secondary controls, read from KVM's copy (no VMREAD).
   * The L2 test dates from 2020; the model applies it under every preset, like the rest of 6.12's
   * behaviour that no flag covers.
   */
  #isUnrestrictedGuest(): boolean {
    if (!this.useEpt) return false;
    if (!this.nested.guestMode) return true;
    return (this.nested.secondary02 & SECONDARY_EXEC_CTLS.SECONDARY_EXEC_UNRESTRICTED_GUEST) !== 0;
  }

  /**
   * kvm: vmx_set_cr4's hw_cr4 — the guest's CR4 with VMXE (KVM_VM_CR4_ALWAYS_ON_UNRESTRICTED_GUEST
   * with EPT); without EPT also PAE (KVM_PMODE_VM_CR4_ALWAYS_ON): KVM shadows every paging mode,
   * 32-bit included, with PAE or 64-bit tables, so the processor must walk them as such.
   */
  #hardwareCr4(cr4: number): number {
    return (cr4 | CR4.VMXE | (this.useEpt ? 0 : CR4.PAE)) >>> 0;
  }

  /** kvm: kvm_set_cr4 → vmx_set_cr4 → kvm_post_set_cr4. */
  setCr4(value: number): void {
    const p = this.processor;
    p.vmwrite(F.CR4_READ_SHADOW, value >>> 0);
    p.vmwrite(F.GUEST_CR4, this.#hardwareCr4(value));
    const old = this.mmu.cr4;
    // VcpuMmu.setCr4 stores the value and runs kvm_post_set_cr4.
    this.mmu.setCr4(value >>> 0);
    // kvm: kvm_set_cr4 — a change of PGE, PSE, PAE or SMEP under PAE paging reloads the PDPTEs.
    if (((old ^ value) & CR4_PDPTR_BITS) !== 0) this.#reloadPdptrs();
  }

  /** The PDPTE reload of kvm_set_cr0/kvm_set_cr4. */
  #reloadPdptrs(): void {
    if (this.mmu.paePaging) this.loadPdptrs(this.mmu.cr3);
  }

  /**
   * kvm: load_pdptrs — the four PDPTEs at CR3 bits 31:5 in guest memory into `pdptrs`, marked dirty
   * with KVM_REQ_LOAD_MMU_PGD. The 32-byte read is not priced (no calibrated figure; the VMWRITEs
   * of GUEST_PDPTR0–3 that follow with EPT are). Not modelled: the #GP KVM makes the instruction
   * raise for a reserved bit, the translation of CR3 through L1's EPT in guest mode with nested
   * EPT, and, without EPT, kvm_mmu_free_roots of the current root when the PDPTEs changed under
   * an unchanged CR3 (the shadow MMU reads the PDPTEs when it builds a PAE root).
   */
  loadPdptrs(cr3: number): void {
    if (this.nested.guestMode && this.nested.nestedEpt) {
      throw new RangeError(
        `${this.name}: loading L2's PDPTEs through L1's EPT (load_pdptrs in guest mode with nested EPT) is not modelled`,
      );
    }
    const bad = loadPdptesInto(this.guestMemory(), pdptAddress(cr3), MODERN_CPU, this.pdptrs);
    if (bad >= 0) {
      throw new RangeError(
        `${this.name}: PDPTE ${bad} at 0x${pdptAddress(cr3).toString(16)} has a reserved bit set; the #GP KVM injects is not modelled`,
      );
    }
    this.pdptrsDirty = true;
    this.loadPgdRequested = true;
    this.#pagingKey[0] = -1;
  }

  /**
   * kvm: kvm_set_cr3 — `value` without bit 63, which with CR4.PCIDE is the no-flush hint (`noFlush`,
   * read by VcpuMmu.setCr3 for kvm_invalidate_pcid). With EPT the MMU's PGD switch is for shadow
   * paging only and GUEST_CR3 is written.
   */
  setCr3(value: number, noFlush = false): void {
    // kvm: kvm_set_cr3 — under PAE paging, load_pdptrs of the new CR3 first.
    if (this.mmu.paePaging) this.loadPdptrs(value);
    if (this.useEpt) {
      this.mmu.setCr3(value, noFlush);
      this.processor.vmwrite(F.GUEST_CR3, value >>> 0, Math.floor(value / TWO_32));
      return;
    }
    // kvm: kvm_set_cr3 → kvm_mmu_new_pgd (the fast switch over the root cache, skipped for an
    // unchanged CR3): a hit requests KVM_REQ_LOAD_MMU_PGD, and vmx_load_mmu_pgd writes the shadow
    // root into GUEST_CR3 before the entry; a miss leaves no root, which kvm_mmu_reload loads.
    if (this.mmu.setCr3(value, noFlush)) this.loadPgdRequested = true;
  }

  /**
   * kvm: handle_ept_violation → kvm_mmu_page_fault: the TDP MMU maps the faulting GPA on the current
   * root (an L1 fault, or an L2 fault without nested EPT); with nested EPT, `KvmNested` builds EPT02.
   */
  #handleEptViolation(): void {
    this.meter.count(HV.EXIT_HANDLER_EPT_VIOLATION);
    const p = this.processor;
    const qual = this.regs.readExitQualification();
    const gpaLo = p.vmread(F.GUEST_PHYSICAL_ADDRESS);
    const gpa = p.hi * TWO_32 + gpaLo;
    if (this.nested.guestMode && this.nested.nestedEpt) {
      this.nested.handleEpt02Violation(gpa, qual);
      return;
    }
    this.#handleEptViolationAt(gpa, qual);
  }

  /**
   * kvm: kvm_mmu_page_fault → kvm_tdp_page_fault on the current root for `gpa`, with the fault's
   * write and present bits from the EPT-violation qualification `qual` (bits 1 and 5:3).
   */
  #handleEptViolationAt(gpa: number, qual: number): void {
    const write = (qual & 2) !== 0;
    for (let tries = 0; tries < 4; tries++) {
      const root = this.mmu.mmu.rootHpa;
      // kvm: the fault's P bit — the qualification's R/W/X bits (5:3) at the exit; a retry is a new
      // fault on the tables as they are now.
      const present = tries === 0 ? (qual & 0x38) !== 0 : undefined;
      const r =
        this.tdp !== null
          ? this.tdp.map(root, gpa as Gpa, write, present)
          : this.#legacyTdpFault(root, gpa, write, present);
      if (r === TDP_MAP_RESULT.RETRY) {
        this.mmu.freeObsoleteRoots();
        this.reloadMmu();
        continue;
      }
      if (r === TDP_MAP_RESULT.EMULATE_WRITE_PROTECTED) {
        this.#emulateTrackedWrite(gpa);
        return;
      }
      if (r === TDP_MAP_RESULT.EMULATE_MMIO) {
        // kvm: kvm_handle_noslot_fault cached the page (gva 0 for a TDP fault) before the map
        // installed its MMIO SPTE; then x86_emulate_instruction.
        this.mmu.mmioCache.cache(0, Math.floor(gpa / PAGE), 0, this.memslots.generation, false);
        this.#emulateMmio(gpa);
        return;
      }
      if (r === TDP_MAP_RESULT.EMULATE_READ_ONLY) {
        // A configuration the model refuses, not a model bug: a RangeError saying "not modelled".
        throw new RangeError(
          `${this.name}: guest write to read-only memory at 0x${gpa.toString(16)} (read-only memslots are not modelled)`,
        );
      }
      return;
    }
    throw new Error(`${this.name}: EPT violation at 0x${gpa.toString(16)} not resolved after 4 tries`);
  }

  /**
   * kvm: handle_ept_misconfig — an access through an MMIO SPTE. With an ioeventfd of length 0 at the
   * GPA (KVM_FAST_MMIO_BUS) the eventfd is signalled and the instruction skipped without decoding
   * it — not in guest mode, whose GPA is L2's; otherwise an MMIO page fault
   * (kvm_mmu_page_fault with PFERR_RSVD_MASK).
   */
  #handleEptMisconfig(): void {
    this.meter.count(HV.EXIT_HANDLER_EPT_MISCONFIG);
    const p = this.processor;
    const gpaLo = p.vmread(F.GUEST_PHYSICAL_ADDRESS);
    const gpa = p.hi * TWO_32 + gpaLo;
    // The bus write carries no data and the instruction is not decoded, so a load from the
    // doorbell signals it too and leaves its destination as it was (KVM's behaviour).
    if (!this.nested.guestMode && this.mmio.fastWrite(gpa)) {
      this.#skipAfterMisconfig();
      return;
    }
    if (this.#mmioPageFault(gpa, true)) return;
    // kvm: RET_PF_INVALID — the MMIO SPTE is stale: the ordinary fault rebuilds it.
    this.#handleEptViolationAt(gpa, 0);
  }

  /**
   * kvm: kvm_skip_emulated_instruction after a fast-MMIO write. KVM on bare metal trusts
   * VM_EXIT_INSTRUCTION_LEN, which the SDM leaves undefined for an EPT misconfiguration; KVM running
   * as a guest (X86_FEATURE_HYPERVISOR) decodes the instruction instead (skip_emulated_instruction →
   * EMULTYPE_SKIP, commit d391f1207067): its fetch and decode, then RIP and the interrupt shadow.
   */
  #skipAfterMisconfig(): void {
    if (this.level === 0) {
      this.skipInstruction();
      return;
    }
    this.tracePhase(KVM_PHASE.SKIP_INSTRUCTION);
    this.regs.readRflags();
    const g = this.exitingRegisters();
    this.meter.count(HV.INSTRUCTION_SKIP_DECODE);
    const rip = this.#emulatorDecodeAccesses();
    this.regs.writeRip(rip + this.#decodedLength(g));
    this.clearInterruptShadow();
  }

  /**
   * kvm: handle_mmio_page_fault (from kvm_mmu_page_fault with PFERR_RSVD_MASK): the vCPU's MMIO cache,
   * else the MMIO SPTE a lockless walk of the current root finds (kvm: get_mmio_spte,
   * check_mmio_spte), gives the page, which is cached and emulated. `addr` is a GPA on a direct root
   * (`direct`), else a GVA. Returns false for a stale MMIO SPTE (RET_PF_INVALID: the caller runs the
   * ordinary fault); true when handled, or when nothing is there (RET_PF_RETRY: the instruction runs
   * again).
   */
  #mmioPageFault(addr: number, direct: boolean): boolean {
    if (this.nested.guestMode) {
      throw new RangeError(
        `${this.name}: an MMIO page fault of its L2 at 0x${addr.toString(16)} (a device its guest hypervisor gave L2 directly) is not modelled`,
      );
    }
    const cache = this.mmu.mmioCache;
    const generation = this.memslots.generation;
    if (direct && cache.matchGpa(addr, generation)) {
      this.#emulateMmio(addr);
      return true;
    }
    if (!direct && cache.matchGva(addr, generation)) {
      this.#emulateMmio(cache.gfn * PAGE + (addr % PAGE));
      return true;
    }
    this.meter.count(HV.MMIO_SPTE_WALK);
    const t = this.#terminal;
    const root = this.mmu.mmu.rootHpa;
    const format = this.useEpt ? SPTE_FORMAT.EPT : SPTE_FORMAT.X86;
    if (this.tdp !== null && direct) this.tdp.terminalSpte(root, addr, t);
    else this.shadow.terminalSpte(root, addr >>> 0, Math.floor(addr / TWO_32), t);
    if (t.level === 0 || !isMmioSpte(format, t.lo, t.hi)) return true;
    if (mmioSpteGeneration(t.lo, t.hi) !== (generation & MMIO_GENERATION_MASK)) return false;
    const gfn = mmioSpteGfn(t.lo, t.hi);
    cache.cache(direct ? 0 : addr, gfn, mmioSpteAccess(format, t.lo), generation, false);
    this.#emulateMmio(gfn * PAGE + (addr % PAGE));
    return true;
  }

  /**
   * kvm: x86_emulate_instruction for a load or store that reached MMIO at `gpa`: decode (the
   * operand the processor left in the exiting context stands for the instruction bytes), then
   * emulator_read_write → vcpu_mmio_read/_write (`MmioDevices`): a device on KVM_MMIO_BUS completes
   * it, or a KVM_EXIT_MMIO to the VMM does, whose result a load takes at the next KVM_RUN
   * (complete_emulated_mmio). Then the writeback: RIP, interrupt
   * shadow, RFLAGS.
   */
  #emulateMmio(gpa: number): void {
    const g = this.exitingRegisters();
    if (g.kind !== GUEST_KIND.WORKLOAD || g.accessBytes === 0) {
      throw new RangeError(
        `${this.name}: ${g.kind === GUEST_KIND.WORKLOAD ? "an instruction fetch" : "a guest hypervisor's access"} from MMIO at 0x${gpa.toString(16)} is not modelled`,
      );
    }
    this.meter.count(HV.INSTRUCTION_EMULATION);
    const rip = this.#emulatorDecodeAccesses();
    const out = this.#mmioLoad;
    const kernel = g.accessWrite
      ? this.mmio.write(gpa, g.accessBytes, g.accessValueLo, g.accessValueHi)
      : this.mmio.read(gpa, g.accessBytes, out);
    this.meter.count(kernel ? HV.MMIO_KERNEL : HV.MMIO_USERSPACE);
    if (!g.accessWrite) {
      g.loadedLo = out[0]!;
      g.loadedHi = out[1]!;
    }
    this.#emulatorWriteback(rip, this.#decodedLength(g));
  }

  /** The length the emulator decodes: the workload's instruction's, or the guest hypervisor's store. */
  #decodedLength(g: GuestContext): number {
    return g.kind === GUEST_KIND.WORKLOAD ? g.accessLength : TRACKED_WRITE_LENGTH;
  }

  /**
   * The legacy MMU's TDP fault (kvm: kvm_tdp_page_fault → direct_page_fault → direct_map without the
   * TDP MMU): the same checks as the TDP MMU's — first page_fault_handle_page_track, a write to a
   * tracked gfn through a present translation (`present`: the fault's P bit; by default, whether the
   * tables map the gpa now) — then a direct shadow-page walk that allocates missing tables from the
   * shadow-page hash. Returns a TDP_MAP_RESULT.
   */
  #legacyTdpFault(root: number, gpa: number, write: boolean, present?: boolean): number {
    this.meter.count(MMU_EVENTS.TDP_FAULT);
    const gfn = Math.floor(gpa / PAGE);
    if (
      write &&
      this.store.isGfnTracked(gfn) &&
      (present ?? this.shadow.mapsAddress(root, gpa >>> 0, Math.floor(gpa / TWO_32)))
    ) {
      return TDP_MAP_RESULT.EMULATE_WRITE_PROTECTED;
    }
    const memslots = this.memslots;
    const slot = memslots.lookup(gfn);
    if (slot >= 0 && write && memslots.readOnlyAt(slot)) return TDP_MAP_RESULT.EMULATE_READ_ONLY;
    if (this.shadow.isRootStale(root)) return TDP_MAP_RESULT.RETRY;
    // Without a memslot (slot < 0) direct_map caches an MMIO SPTE (kvm: kvm_handle_noslot_fault).
    const outcome = this.shadow.directMap(root, gpa, gfn, slot, write);
    switch (outcome) {
      case SHADOW_FAULT.RETRY:
        return TDP_MAP_RESULT.RETRY;
      case SHADOW_FAULT.EMULATE_MMIO:
        return TDP_MAP_RESULT.EMULATE_MMIO;
      case SHADOW_FAULT.SPURIOUS:
        return TDP_MAP_RESULT.SPURIOUS;
      case SHADOW_FAULT.EMULATE_WRITE_PROTECTED:
        return TDP_MAP_RESULT.EMULATE_WRITE_PROTECTED;
      default:
        return TDP_MAP_RESULT.FIXED;
    }
  }

  /**
   * A #PF exit under shadow paging (kvm: handle_exception_nmi → kvm_mmu_page_fault →
   * FNAME(page_fault)): fix the shadow tables from the guest's, or inject the guest's own #PF.
   */
  #handleException(): void {
    this.meter.count(HV.EXIT_HANDLER_EXCEPTION);
    const p = this.processor;
    const info = this.regs.readIntrInfo();
    const vector = info & 0xff;
    const errorCode = (info & 0x800) !== 0 ? p.vmread(F.VM_EXIT_INTR_ERROR_CODE) : 0;
    if (vector !== 14 || this.shadowPaging === null) {
      throw new Error(`${this.name}: exception ${vector} exits are not modelled beyond shadow-paging #PF`);
    }
    const cr2Lo = this.regs.readExitQualification();
    const cr2Hi = this.regs.exitQualHi;
    if (this.exitingRegisters().kind === GUEST_KIND.HYPERVISOR) {
      // A guest hypervisor wrote a page this KVM write-protects (kvm: FNAME(page_fault) →
      // page_fault_handle_page_track → emulate). Its kernel addresses are physical in the model
      // (see NestedVmxCpu.trackedWrite), so CR2 is the gpa.
      const gpa = cr2Hi * TWO_32 + cr2Lo;
      const writeProtect = PFERR.PRESENT | PFERR.WRITE;
      if ((errorCode & writeProtect) !== writeProtect || !this.store.isGfnTracked(Math.floor(gpa / PAGE))) {
        throw new Error(
          `${this.name}: #PF 0x${errorCode.toString(16)} of its guest hypervisor at 0x${gpa.toString(16)} is not a write to a tracked page (the model does not page a guest hypervisor's own memory)`,
        );
      }
      this.#emulateTrackedWrite(gpa);
      return;
    }
    // kvm: kvm_mmu_page_fault — a reserved-bit fault is first tried as an MMIO page fault.
    if ((errorCode & PFERR.RSVD) !== 0 && this.#mmioPageFault(cr2Hi * TWO_32 + cr2Lo, false)) return;
    const mmu = this.mmu;
    for (let tries = 0; tries < 4; tries++) {
      const ctx = this.#guestPagingContext();
      const r = this.shadowPaging.fault(mmu.mmu.rootHpa, ctx, cr2Lo, cr2Hi, errorCode);
      switch (r.outcome) {
        case SHADOW_FAULT.FIXED:
        case SHADOW_FAULT.SPURIOUS:
          return;
        case SHADOW_FAULT.EMULATE_MMIO: {
          // kvm: kvm_handle_noslot_fault cached the page (its GVA, gfn and rights) before the fetch
          // installed the MMIO SPTE; then x86_emulate_instruction.
          const gva = cr2Hi * TWO_32 + cr2Lo;
          mmu.mmioCache.cache(gva, r.gfn, r.access, this.memslots.generation, false);
          this.#emulateMmio(r.gfn * PAGE + (cr2Lo % PAGE));
          return;
        }
        case SHADOW_FAULT.RETRY:
          mmu.freeObsoleteRoots();
          this.reloadMmu();
          continue;
        case SHADOW_FAULT.INJECT_PAGE_FAULT:
          // kvm: kvm_inject_emulated_page_fault — a present, non-reserved fault first drops the
          // address's TLB entries (kvm_mmu_invalidate_addr → flush_tlb_gva: INVVPID of the current
          // VPID), as a hardware #PF would. In guest mode, a #PF L1 intercepts is L1's to fix
          // (its own shadow tables): a nested VM exit, not an injection (kvm_multiple_exception).
          if ((r.errorCode & PFERR.PRESENT) !== 0 && (r.errorCode & PFERR.RSVD) === 0) {
            this.#vpidSyncAddress(this.#currentVpid(), cr2Hi * TWO_32 + cr2Lo);
          }
          this.#injectException(14, r.errorCode, cr2Lo, cr2Hi);
          return;
        default:
          throw new Error(
            `${this.name}: shadow-paging fault at 0x${(cr2Hi * TWO_32 + cr2Lo).toString(16)} ended with outcome ${r.outcome}, which the model does not emulate`,
          );
      }
    }
    throw new Error(`${this.name}: #PF not resolved after 4 tries`);
  }

  /** The guest's paging registers as KVM holds them (kvm: the vCPU's CR0/CR3/CR4/EFER). */
  #guestPagingContext(): PagingContext {
    const m = this.mmu;
    const key = this.#pagingKey;
    if (key[0] !== m.cr0 || key[1] !== m.cr3 || key[2] !== m.cr4 || key[3] !== m.efer) {
      key[0] = m.cr0;
      key[1] = m.cr3;
      key[2] = m.cr4;
      key[3] = m.efer;
      const regs = { cr0: m.cr0, cr3: m.cr3, cr4: m.cr4, efer: m.efer };
      // kvm: mmu->get_pdptr — a PAE walk starts from the PDPTEs load_pdptrs stored.
      this.#paging = createPagingContext(
        m.paePaging ? { ...regs, pdptes: Array.from(this.pdptrs) } : regs,
        MODERN_CPU,
      );
    }
    return this.#paging!;
  }

  readonly #pagingKey = new Float64Array([-1, -1, -1, -1]);
  #paging: PagingContext | null = null;

  /**
   * A guest hypervisor wrote a page table this KVM shadows (kvm: page_fault_handle_page_track →
   * emulate the instruction; kvm_mmu_track_write zaps what the write invalidates). The write's value
   * and size come in RAX/RDX (value) and RCX (bytes) (see `NestedVmxCpu`).
   */
  #emulateTrackedWrite(gpa: number): void {
    const g = this.exitingRegisters();
    if (g.kind !== GUEST_KIND.HYPERVISOR) {
      throw new Error(`${this.name}: a workload wrote a write-tracked page at 0x${gpa.toString(16)}`);
    }
    const rip = this.#emulatorDecodeAccesses();
    const bytes = g.gprLo[GPR.RCX]!;
    const host = this.memslots.gfnToHpa(Math.floor(gpa / PAGE)) + (gpa % PAGE);
    const memory = this.cpu.memory;
    if (bytes === 8) memory.write64(host, g.gprLo[GPR.RAX]!, g.gprLo[GPR.RDX]!);
    else memory.write32(host, g.gprLo[GPR.RAX]!);
    this.shadow.trackedWrite(gpa, bytes);
    this.#emulatorWriteback(rip, TRACKED_WRITE_LENGTH);
    g.storeEmulated = true;
  }

  /**
   * kvm: the VMCS reads from the write-protection fault to the decoded store (the guest hypervisors
   * are 64-bit). With EPT: kvm_mmu_write_protect_fault reads RIP (its retry check); init_emulate_ctxt
   * CS.L/D and RFLAGS; the instruction fetch CR4 (__linearize's address width), the CPL
   * (kvm_fetch_guest_virt), and for the walk of the guest's tables CR3 (kvm_read_cr3) and CR0.WP
   * (permission_fault → kvm_mmu_refresh_passthrough_bits; WP is the guest's own bit under EPT). The
   * store's address is the faulting gpa (gpa_available), so no second walk. Without EPT the #PF path
   * has walked first (RFLAGS for permission_fault) and CR3 is KVM's own (no read); its second walk
   * for the store reads nothing more from the VMCS. Returns RIP. The walks and the emulation are
   * TRACKED_WRITE's cycles; the model's guest hypervisors have no page tables of their own to walk.
   */
  #emulatorDecodeAccesses(): number {
    const regs = this.regs;
    const p = this.processor;
    if (!this.useEpt) regs.readRflags();
    const rip = regs.readRip();
    regs.read64BitMode();
    regs.readRflags();
    p.vmread(F.GUEST_CR4);
    regs.readCpl();
    if (this.useEpt) {
      p.vmread(F.GUEST_CR3);
      this.refreshGuestOwnedCr0();
    }
    return rip;
  }

  /**
   * kvm: x86_emulate_instruction's writeback after the store: toggle_interruptibility reads the
   * interrupt shadow (and clears it), RIP advances by the decoded length (written at the entry),
   * __kvm_set_rflags writes RFLAGS.
   */
  #emulatorWriteback(rip: number, length: number): void {
    const p = this.processor;
    // toggle_interruptibility reads the shadow; a set shadow goes through vmx_set_interrupt_shadow,
    // which reads it again before clearing it.
    if ((p.vmread(F.GUEST_INTERRUPTIBILITY_INFO) & 3) !== 0) this.clearInterruptShadow();
    this.regs.writeRip(rip + length);
    this.setRflags(this.regs.readRflags());
  }

  /** INVEPT on behalf of a guest hypervisor (kvm: handle_invept after the checks). */
  invalidateNestedEpt(type: number, eptp: number): void {
    this.mmu.handleInvept(type === 2 ? INVEPT_TYPE.GLOBAL : INVEPT_TYPE.SINGLE_CONTEXT, eptp);
  }

  /** The EPT12 walk context for an EPT pointer of the guest hypervisor (its caps, MAXPHYADDR 46). */
  ept12Context(eptp: number): EptContext {
    return createEptContext(
      { eptpLo: eptp >>> 0, eptpHi: Math.floor(eptp / TWO_32) },
      MODERN_EPT_CAPABILITIES,
      46,
    );
  }
}
