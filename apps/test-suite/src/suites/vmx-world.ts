import {
  GUEST_KIND,
  GuestContext,
  HardwareVmxCpu,
  type HypervisorFlags,
  type ModelPolicies,
  NOOP_TRACER,
} from "@nestvisor/hypervisor";
import {
  ACCESS_TYPE,
  ControlsShadow,
  DEFAULT_L0_HOST_FACTS,
  DEFAULT_L1_VCPU_FACTS,
  type EntryCheckResult,
  EXIT_REASON,
  FIELD_TYPE,
  FIELD_WIDTH,
  fieldByName,
  type HardwareVmcs,
  isVmxResultOutcome,
  LAUNCH_STATE,
  NestedVmxState,
  rflagsAfterVmxResult,
  SECONDARY_EXEC_CTLS,
  type ShadowVmcsSync,
  type ShadowVmcsSyncOptions,
  VMCS_FIELDS,
  VMCS12_REVISION,
  VMX_EXIT_REASONS_FAILED_VMENTRY,
  VMX_OUTCOME,
  VMX_RESULT,
  type Vmcs12,
  VmcsProcessor,
  VmxInstructionContext,
  type VmxInstructionEmulator,
  type VmxOutcome,
} from "@nestvisor/vmx";
import { CR0, CR4, DenseMemory } from "@nestvisor/x86-arch";
import type { EntryChecker, ModelFactory } from "../model";
import type { ModelParts } from "../model-parts";
import type { SuiteContext } from "../suite";

/** Encoding of a field by KVM's name (throws for a name the catalog lacks: a suite bug). */
export function enc(name: string): number {
  const field = fieldByName(name);
  if (field === undefined) throw new Error(`no VMCS field ${name}`);
  return field.encoding;
}

/** L1's guest-physical memory layout in the world (4 MiB). */
export const L1 = {
  VMXON: 0x1000,
  VMCS: [0x2000, 0x3000, 0x4000, 0x5000] as const,
  /** The shadow VMCS L1 links for its L2 (revision with bit 31). */
  SHADOW_VMCS: 0x8000,
  VMREAD_BITMAP: 0x9000,
  VMWRITE_BITMAP: 0xa000,
  MSR_BITMAP: 0xb000,
  IO_BITMAP_A: 0xc000,
  IO_BITMAP_B: 0xd000,
  VIRTUAL_APIC: 0xe000,
  APIC_ACCESS: 0xf000,
  MSR_LIST: 0x10000,
  EPT_PML4: 0x20000,
  PML: 0x21000,
  POSTED_INTR_DESC: 0x22000,
  HOST_CR3: 0x30000,
  GUEST_CR3: 0x31000,
  GUEST_PDPT: 0x32000,
  MEMORY_SIZE: 0x40_0000,
} as const;

/** Where L0 keeps its own VMCSs (host physical; the processor model needs only the addresses). */
const L0 = { VMXON: 0x1000, VMCS01: 0x2000, VMCS02: 0x3000, SHADOW: 0x4000, MEMORY_SIZE: 0x8000 } as const;

/** The policies of a model the world applies: L0's nested sync and the guest hypervisor's VMCS access. */
export type WorldPolicies = Pick<ModelPolicies, "nestedSync" | "vmcsAccess">;

type GuestVmcsAccess = ReturnType<NonNullable<ModelPolicies["vmcsAccess"]>>;

/** The optional hook of a policy's sync that KVM calls on a VMfail (kvm: nested_vmx_fail; see NestedEntryHooks). */
interface InstructionFailedHook {
  instructionFailed(): void;
}

function hasInstructionFailedHook(sync: object): sync is InstructionFailedHook {
  return typeof (sync as Partial<InstructionFailedHook>).instructionFailed === "function";
}

/**
 * The model's policies for a world. `enlightened`: L1 uses the VMCS access the model offers (an
 * enlightened VMCS) — the nested suite's L1, a guest hypervisor like KVM's. Otherwise L1 is
 * kvm-unit-tests, which executes VMREAD/VMWRITE: an access policy is an enlightenment such a guest
 * does not opt into, and the nested sync paired with it assumes the guest does, so the world then
 * uses KVM's sync (the machine-level suites run the pair with a guest hypervisor that uses it).
 */
export function worldPolicies(model: ModelFactory, enlightened: boolean): WorldPolicies {
  const p = model.policies ?? {};
  if (p.vmcsAccess !== undefined && !enlightened) return {};
  return {
    ...(p.nestedSync === undefined ? {} : { nestedSync: p.nestedSync }),
    ...(p.vmcsAccess === undefined ? {} : { vmcsAccess: p.vmcsAccess }),
  };
}

/** A world of the run's model and flags (see `worldPolicies` for `enlightened`). */
export function worldFor(ctx: SuiteContext, enlightened = false): VmxWorld {
  return new VmxWorld(ctx.parts, ctx.flags, worldPolicies(ctx.model, enlightened));
}

const SHADOW_VMCS_CONTROL = SECONDARY_EXEC_CTLS.SECONDARY_EXEC_SHADOW_VMCS;
const VMCS_LINK_POINTER = enc("VMCS_LINK_POINTER");
const SECONDARY_VM_EXEC_CONTROL = enc("SECONDARY_VM_EXEC_CONTROL");
const VM_EXIT_REASON = enc("VM_EXIT_REASON");
const EXIT_QUALIFICATION = enc("EXIT_QUALIFICATION");
const CR0_GUEST_HOST_MASK = enc("CR0_GUEST_HOST_MASK");
const CR4_GUEST_HOST_MASK = enc("CR4_GUEST_HOST_MASK");
const CPU_BASED_VM_EXEC_CONTROL = enc("CPU_BASED_VM_EXEC_CONTROL");
const VMREAD_BITMAP = enc("VMREAD_BITMAP");
const VMWRITE_BITMAP = enc("VMWRITE_BITMAP");
const ACTIVATE_SECONDARY = 0x8000_0000;
const CR_FIELDS = [
  [enc("GUEST_CR0"), CR0_GUEST_HOST_MASK, enc("CR0_READ_SHADOW")],
  [enc("GUEST_CR4"), CR4_GUEST_HOST_MASK, enc("CR4_READ_SHADOW")],
] as const;

/** Guest-state fields (type 2) vmcs12 stores: what prepare_vmcs02 copies and the exit syncs back. */
export const GUEST_STATE_FIELDS: readonly number[] = Object.freeze(
  VMCS_FIELDS.filter((f) => f.type === FIELD_TYPE.GUEST && f.access === ACCESS_TYPE.FULL).map(
    (f) => f.encoding,
  ),
);

/** How L1 saw its last VM entry attempt. */
export type EntryReport =
  | { readonly kind: "vmfail"; readonly outcome: VmxOutcome }
  | { readonly kind: "entry-failure"; readonly exitReason: number; readonly qualification: number }
  | { readonly kind: "entered" };

/**
 * One L1 vCPU as L0 runs it, assembled from the model's parts and policies: the runtime's physical
 * processor (`HardwareVmxCpu` over a `VmcsProcessor` with vmcs01, vmcs02 and the hardware shadow
 * VMCS), KVM's controls shadow, the model's nested sync (its `nestedSync` policy, else its
 * `ShadowVmcsSync`), entry checker and VMX instruction emulator, and 4 MiB of L1 memory. L1 runs in
 * VMX non-root operation on vmcs01 (entered with the runtime's `enterGuest`), L2 on vmcs02. The
 * world's methods are L1's instructions: with a VMCS access policy (an enlightened VMCS) a VMREAD/
 * VMWRITE of the current VMCS is served by it, else one the VMCS-shadowing bitmaps let through is
 * served by the runtime's hardware from the shadow VMCS (SDM 26.1.3, `HardwareVmxCpu.shadowVmread`);
 * every other VMX instruction is a hardware VM exit to L0 (the world is the exit sink), whose emulator
 * handles it; before L1 runs again L0 refreshes the shadow VMCS if a sync is pending (kvm:
 * nested_sync_vmcs12_to_shadow). A successful VMLAUNCH/VMRESUME does a minimal nested entry
 * (vmcs12's guest state into vmcs02) so that `exitToL1` can take a nested VM exit back through the sync.
 */
export class VmxWorld {
  readonly flags: HypervisorFlags;
  readonly processor = new VmcsProcessor();
  /** The physical CPU of the hypervisor runtime: VM entries, exits and shadow VMREAD/VMWRITE. */
  readonly hardware: HardwareVmxCpu;
  /** The contexts L1 and L2 run in. */
  readonly l1 = new GuestContext("L1", 1, GUEST_KIND.HYPERVISOR);
  readonly l2 = new GuestContext("L2", 2, GUEST_KIND.WORKLOAD);
  /** The model's VMCS access for L1 (an enlightened VMCS), or null: VMX instructions only. */
  readonly vmcsAccess: GuestVmcsAccess | null;
  readonly controls: ControlsShadow;
  readonly vmcs01: HardwareVmcs;
  readonly vmcs02: HardwareVmcs;
  readonly shadowVmcs: HardwareVmcs | null;
  readonly sync: ShadowVmcsSync;
  readonly checker: EntryChecker;
  readonly emulator: VmxInstructionEmulator;
  readonly state = new NestedVmxState();
  readonly memory = new DenseMemory(L1.MEMORY_SIZE);
  readonly ctx = new VmxInstructionContext();
  /** The last entry check's result (set by VMLAUNCH/VMRESUME). */
  lastCheck: EntryCheckResult | null = null;
  /** How the last VMLAUNCH/VMRESUME ended for L1. */
  lastEntry: EntryReport | null = null;
  /** The value of the last VMREAD / VMPTRST. */
  valueLo = 0;
  valueHi = 0;
  /** L1's last VMREAD or VMWRITE was served by the shadow VMCS without an exit. */
  servedByShadow = false;
  /** L1's last VMREAD or VMWRITE was served by the model's VMCS access (enlightened VMCS) without an exit. */
  servedByAccess = false;
  /** L2's registers for the VMREAD/VMWRITE it executes (separate from L1's). */
  readonly l2ctx = new VmxInstructionContext();
  /** Where the shadow VMCS L1 linked for L2 was cached from at the last entry, or -1. */
  #cachedShadowAt = -1;
  /** What L0 does for the VM exit being delivered (see `#l0`), and its outcome. */
  #handler: (() => VmxOutcome) | null = null;
  #outcome: VmxOutcome = VMX_RESULT.SUCCEED;

  constructor(parts: ModelParts, flags: HypervisorFlags, policies: WorldPolicies = {}) {
    this.flags = flags;
    const p = this.processor;
    this.hardware = new HardwareVmxCpu(p, new DenseMemory(L0.MEMORY_SIZE), NOOP_TRACER);
    this.hardware.attach(this);
    p.vmxon(L0.VMXON);
    this.vmcs01 = p.createVmcs(L0.VMCS01);
    this.vmcs02 = p.createVmcs(L0.VMCS02);
    this.shadowVmcs = flags.shadowVmcs ? p.createVmcs(L0.SHADOW, { shadow: true }) : null;
    p.vmptrld(this.vmcs01.address);
    this.controls = new ControlsShadow(p, { perVmcsShadow: flags.controlsShadow });
    this.controls.switchTo(this.vmcs01);
    const syncOptions: ShadowVmcsSyncOptions = {
      controls: this.controls,
      vmcs01: this.vmcs01,
      vmcs02: this.vmcs02,
      shadowVmcs: this.shadowVmcs,
      readOnlyShadowFields: flags.readOnlyShadowFields,
      precomputedShadowOffsets: flags.precomputedShadowOffsets,
      lazyRareGuestSync: flags.lazyRareGuestSync,
      controlsShadow: flags.controlsShadow,
      entryVmwriteTrims: flags.nestedEntryWriteTrims,
      ept: flags.ept,
    };
    const meter = p.meter;
    this.sync =
      policies.nestedSync === undefined
        ? parts.shadowVmcsSync(syncOptions)
        : policies.nestedSync(syncOptions, { level: 0, guestMemory: this.memory, state: this.state, meter });
    this.vmcsAccess = policies.vmcsAccess?.({ level: 1, memory: this.memory, meter }) ?? null;
    this.checker = parts.entryChecker({ includeHardware: true });
    this.emulator = parts.vmxInstructionEmulator({
      memory: this.memory,
      sync: this.sync,
      state: this.state,
      maskArBytesOnVmwrite: flags.readOnlyShadowFields,
      entryChecks: (vmcs12) => {
        const result = this.checker.check({
          vmcs12,
          caps: this.emulator.capabilities,
          vcpu: DEFAULT_L1_VCPU_FACTS,
          host: DEFAULT_L0_HOST_FACTS,
          memory: this.memory,
        });
        this.lastCheck = result;
        if (result.ok || result.outcome.kind !== "vmfail") return 0;
        return result.outcome.error;
      },
    });
    for (const region of [L1.VMXON, ...L1.VMCS]) this.memory.write32(region, VMCS12_REVISION);
    this.memory.write32(L1.SHADOW_VMCS, (VMCS12_REVISION | 0x8000_0000) >>> 0);
    // kvm: init_vmcs — vmcs01's VMREAD/VMWRITE bitmaps, as the hardware finds them.
    if (this.shadowVmcs !== null) this.hardware.setShadowingBitmaps(this.vmcs01, this.sync.bitmaps);
    this.hardware.bindGuest(this.vmcs01, this.l1);
    this.hardware.bindGuest(this.vmcs02, this.l2);
    // L0 launches L1.
    this.#enter(true);
  }

  get vmcs12(): Vmcs12 {
    return this.state.cachedVmcs12;
  }

  /** VMLAUNCH/VMRESUME of the guest that runs next (L2 in guest mode, else L1) on the runtime's CPU. */
  #enter(launch: boolean): void {
    const vmcs = this.state.guestMode ? this.vmcs02 : this.vmcs01;
    if (this.processor.current !== vmcs) this.#switchTo(vmcs);
    const result = this.hardware.enterGuest(launch);
    if (result !== VMX_RESULT.SUCCEED)
      throw new Error(`L0's VM entry on ${vmcs.describe()} failed (${result})`);
  }

  /**
   * A VM exit of the running guest (L1, or L2 in guest mode) with basic reason `reason`: the runtime's
   * hardware stores the exit and calls L0 (`onVmExit`), which runs `handler` and enters a guest again.
   * Returns the handler's outcome.
   */
  #l0(reason: number, handler: () => VmxOutcome): VmxOutcome {
    this.#handler = handler;
    this.hardware.exitInfo.reset(reason);
    this.hardware.vmExit();
    return this.#outcome;
  }

  /** L0's exit handler (the world is the hardware's exit sink). */
  onVmExit(): void {
    const handler = this.#handler;
    if (handler === null) throw new Error("a VM exit the world did not cause");
    this.#handler = null;
    const outcome = handler();
    this.#outcome = outcome;
    // kvm: nested_vmx_fail — a sync keeping vmcs12 in L1's memory must show L1 the VM-instruction error.
    if (
      !this.state.guestMode &&
      isVmxResultOutcome(outcome) &&
      outcome > 0 &&
      hasInstructionFailedHook(this.sync)
    )
      this.sync.instructionFailed();
    // kvm: vcpu_enter_guest → nested_sync_vmcs12_to_shadow before L1 runs again.
    if (!this.state.guestMode && this.sync.needVmcs12ToShadowSync) this.sync.syncVmcs12ToShadow(this.vmcs12);
    this.#enter(this.state.guestMode && this.vmcs02.launchState !== LAUNCH_STATE.LAUNCHED);
  }

  /** L1 runs (it executes the world's instructions) and its VMCS access or the hardware may serve one. */
  #l1Runs(fieldHi: number): boolean {
    this.servedByShadow = false;
    this.servedByAccess = false;
    // SDM 26.1.3: an encoding with any of bits 63:15 set always exits (the runtime takes 32-bit encodings).
    return fieldHi === 0 && this.hardware.running === this.l1;
  }

  vmxon(ptr: number, ptrHi = 0): VmxOutcome {
    return this.#l0(EXIT_REASON.VMON, () => this.emulator.vmxon(this.ctx, ptr, ptrHi));
  }

  vmxoff(): VmxOutcome {
    return this.#l0(EXIT_REASON.VMOFF, () => this.emulator.vmxoff(this.ctx));
  }

  vmclear(ptr: number, ptrHi = 0): VmxOutcome {
    return this.#l0(EXIT_REASON.VMCLEAR, () => this.emulator.vmclear(this.ctx, ptr, ptrHi));
  }

  vmptrld(ptr: number, ptrHi = 0): VmxOutcome {
    return this.#l0(EXIT_REASON.VMPTRLD, () => this.emulator.vmptrld(this.ctx, ptr, ptrHi));
  }

  vmptrst(): VmxOutcome {
    return this.#l0(EXIT_REASON.VMPTRST, () => {
      const outcome = this.emulator.vmptrst(this.ctx);
      this.valueLo = this.emulator.valueLo;
      this.valueHi = this.emulator.valueHi;
      return outcome;
    });
  }

  /** L1's VMREAD; the value is in `valueLo`/`valueHi` on success. */
  vmread(field: number, fieldHi = 0): VmxOutcome {
    if (this.#l1Runs(fieldHi)) {
      const access = this.vmcsAccess;
      if (access !== null && this.state.hasCurrentVmcs) {
        const lo = access.read(this.state.currentVmptr, field);
        if (lo >= 0) {
          this.servedByAccess = true;
          return this.#servedRead(lo, access.hi);
        }
      }
      const hw = this.hardware;
      if (hw.shadowVmread(field)) {
        this.servedByShadow = true;
        return this.#servedRead(hw.shadowLo, hw.shadowHi);
      }
    }
    return this.#l0(EXIT_REASON.VMREAD, () => {
      const outcome = this.emulator.vmread(this.ctx, field, fieldHi);
      if (outcome === VMX_RESULT.SUCCEED) {
        this.valueLo = this.emulator.valueLo;
        this.valueHi = this.emulator.valueHi;
      }
      return outcome;
    });
  }

  #servedRead(lo: number, hi: number): VmxOutcome {
    this.valueLo = lo;
    this.valueHi = hi;
    this.ctx.rflags = rflagsAfterVmxResult(this.ctx.rflags, VMX_RESULT.SUCCEED);
    return VMX_RESULT.SUCCEED;
  }

  /** L1's VMWRITE of (lo, hi) to `field`. */
  vmwrite(field: number, lo: number, hi = 0, fieldHi = 0): VmxOutcome {
    if (this.#l1Runs(fieldHi)) {
      const access = this.vmcsAccess;
      let served = false;
      if (access !== null && this.state.hasCurrentVmcs)
        served = this.servedByAccess = access.write(this.state.currentVmptr, field, lo >>> 0, hi >>> 0);
      if (!served) served = this.servedByShadow = this.hardware.shadowVmwrite(field, lo >>> 0, hi >>> 0);
      if (served) {
        this.ctx.rflags = rflagsAfterVmxResult(this.ctx.rflags, VMX_RESULT.SUCCEED);
        return VMX_RESULT.SUCCEED;
      }
    }
    return this.#l0(EXIT_REASON.VMWRITE, () => this.emulator.vmwrite(this.ctx, field, fieldHi, lo, hi));
  }

  /** VMWRITE of a 64-bit value given as a bigint or a safe integer. */
  write(name: string, value: bigint | number): VmxOutcome {
    const v = typeof value === "bigint" ? BigInt.asUintN(64, value) : BigInt(value);
    return this.vmwrite(enc(name), Number(v & 0xffffffffn), Number(v >> 32n));
  }

  /** VMREAD as a bigint, or undefined when it fails. */
  read(name: string): bigint | undefined {
    if (this.vmread(enc(name)) !== VMX_RESULT.SUCCEED) return undefined;
    return (BigInt(this.valueHi >>> 0) << 32n) | BigInt(this.valueLo >>> 0);
  }

  invept(type: number, eptpLo: number, eptpHi = 0): VmxOutcome {
    return this.#l0(EXIT_REASON.INVEPT, () => this.emulator.invept(this.ctx, type, 0, eptpLo, eptpHi));
  }

  invvpid(type: number, typeHi: number, vpidLo: number, vpidHi: number, laLo = 0, laHi = 0): VmxOutcome {
    return this.#l0(EXIT_REASON.INVVPID, () =>
      this.emulator.invvpid(this.ctx, type, typeHi, vpidLo, vpidHi, laLo, laHi),
    );
  }

  vmlaunch(): VmxOutcome {
    return this.#l0(EXIT_REASON.VMLAUNCH, () => this.#run(this.emulator.vmlaunch(this.ctx)));
  }

  vmresume(): VmxOutcome {
    return this.#l0(EXIT_REASON.VMRESUME, () => this.#run(this.emulator.vmresume(this.ctx)));
  }

  /**
   * After VMLAUNCH/VMRESUME: a VMfail is L1's result; otherwise the nested entry — a guest-state or
   * MSR-load failure becomes an entry-failure exit to L1 (kvm: nested_vmx_enter_non_root_mode →
   * vmentry_fail_vmexit, launch state unchanged), else L2 runs on vmcs02 with vmcs12's guest state.
   */
  #run(outcome: VmxOutcome): VmxOutcome {
    if (outcome !== VMX_OUTCOME.ENTER_NON_ROOT) {
      this.lastEntry = { kind: "vmfail", outcome };
      return outcome;
    }
    const check = this.lastCheck;
    const vmcs12 = this.vmcs12;
    this.state.nestedRunPending = false;
    if (check !== null && !check.ok && check.outcome.kind === "entry-failure") {
      const reason = (check.outcome.exitReason | VMX_EXIT_REASONS_FAILED_VMENTRY) >>> 0;
      vmcs12.write(VM_EXIT_REASON, reason);
      vmcs12.write(EXIT_QUALIFICATION, check.outcome.qualification);
      this.lastEntry = {
        kind: "entry-failure",
        exitReason: reason,
        qualification: check.outcome.qualification,
      };
      this.sync.requestVmcs12ToShadowSync();
      return outcome;
    }
    // prepare_vmcs02, reduced to what the exit sync reads back: L2's guest state into vmcs02.
    this.#switchTo(this.vmcs02);
    for (const field of GUEST_STATE_FIELDS) {
      const lo = vmcs12.read(field);
      if (lo >= 0) this.processor.vmwrite(field, lo, vmcs12.hi);
    }
    // What L2 reads of CR0/CR4: L1-owned bits from vmcs12's read shadows (kvm: nested_read_cr0/cr4).
    for (const [guest, mask, shadow] of CR_FIELDS) {
      const value =
        ((vmcs12.read(guest) & ~vmcs12.read(mask)) | (vmcs12.read(shadow) & vmcs12.read(mask))) >>> 0;
      this.processor.vmwrite(shadow, value);
    }
    this.sync.dirtyVmcs12 = false;
    this.#cacheShadowVmcs12();
    this.state.guestMode = true;
    this.lastEntry = { kind: "entered" };
    return outcome;
  }

  #switchTo(vmcs: HardwareVmcs): void {
    const r = this.processor.vmptrld(vmcs.address);
    if (r !== VMX_RESULT.SUCCEED) throw new Error(`VMPTRLD of ${vmcs.describe()} failed (${r})`);
    this.controls.switchTo(vmcs);
  }

  /** vmcs12 enables VMCS shadowing for L2 (kvm: nested_cpu_has_shadow_vmcs). */
  l1ShadowsForL2(): boolean {
    const v = this.vmcs12;
    return (
      (v.read(CPU_BASED_VM_EXEC_CONTROL) & ACTIVATE_SECONDARY) !== 0 &&
      (v.read(SECONDARY_VM_EXEC_CONTROL) & SHADOW_VMCS_CONTROL) !== 0
    );
  }

  /** At a nested entry: L1's shadow VMCS for L2 into cached_shadow_vmcs12 (kvm: nested_cache_shadow_vmcs12). */
  #cacheShadowVmcs12(): void {
    this.#cachedShadowAt = -1;
    const v = this.vmcs12;
    const lo = v.read(VMCS_LINK_POINTER);
    if (!this.l1ShadowsForL2() || (lo === 0xffffffff && v.hi === 0xffffffff)) return;
    const at = v.hi * 2 ** 32 + lo;
    if (at + 4096 > this.memory.size) return;
    const image = this.state.cachedShadowVmcs12;
    for (let o = 0; o < 4096; o += 4) image.writeAt(o, FIELD_WIDTH.U32, this.memory.read32(at + o));
    this.#cachedShadowAt = at;
  }

  /** At a nested exit: cached_shadow_vmcs12 back to L1's memory (kvm: nested_flush_cached_shadow_vmcs12). */
  #flushShadowVmcs12(): void {
    const at = this.#cachedShadowAt;
    if (at < 0) return;
    const image = this.state.cachedShadowVmcs12;
    for (let o = 0; o < 4096; o += 4) this.memory.write32(at + o, image.readAt(o, FIELD_WIDTH.U32));
    this.#cachedShadowAt = -1;
  }

  /** L1 wants L2's VMREAD/VMWRITE of `field` (kvm: nested_vmx_exit_handled_vmcs_access). */
  #l1InterceptsVmcsAccess(write: boolean, field: number, fieldHi: number): boolean {
    if (!this.l1ShadowsForL2()) return true;
    if (fieldHi !== 0 || field >>> 0 > 0x7fff) return true;
    const v = this.vmcs12;
    const bitmapLo = v.read(write ? VMWRITE_BITMAP : VMREAD_BITMAP);
    const bitmap = v.hi * 2 ** 32 + bitmapLo;
    if (bitmap + 4096 > this.memory.size) return true;
    const word = this.memory.read32(bitmap + (field >>> 5) * 4);
    return ((word >>> (field & 31)) & 1) !== 0;
  }

  /**
   * L2's VMREAD (`write` false) or VMWRITE of `field` while L2 runs. vmcs02 does not shadow, so the
   * hardware exits to L0, which finds that L1 wants the exit ("exit": the caller delivers it with
   * `exitToL1`) or emulates the instruction on cached_shadow_vmcs12 and resumes L2.
   */
  l2Access(write: boolean, field: number, fieldHi = 0, lo = 0, hi = 0): "exit" | VmxOutcome {
    if (!this.state.guestMode) throw new Error("L2 access while L1 runs");
    let reflected = false;
    const outcome = this.#l0(write ? EXIT_REASON.VMWRITE : EXIT_REASON.VMREAD, () => {
      if (this.#l1InterceptsVmcsAccess(write, field, fieldHi)) {
        reflected = true;
        return VMX_RESULT.SUCCEED;
      }
      if (write) return this.emulator.vmwrite(this.l2ctx, field, fieldHi, lo, hi);
      const result = this.emulator.vmread(this.l2ctx, field, fieldHi);
      this.valueLo = this.emulator.valueLo;
      this.valueHi = this.emulator.valueHi;
      return result;
    });
    return reflected ? "exit" : outcome;
  }

  /** L0's guest-owned CR0/CR4 bits while L2 runs (kvm: L0's possible guest bits minus vmcs12's mask). */
  guestOwnedBits(): { cr0: number; cr4: number } {
    const cr0 = this.flags.keepRootsOnWpOnlyChange && this.flags.ept ? CR0.TS | CR0.WP : CR0.TS;
    const cr4 = CR4.PCE | CR4.OSFXSR | CR4.OSXMMEXCPT | CR4.TSD | CR4.DE;
    return {
      cr0: (cr0 & ~this.vmcs12.read(CR0_GUEST_HOST_MASK)) >>> 0,
      cr4: (cr4 & ~this.vmcs12.read(CR4_GUEST_HOST_MASK)) >>> 0,
    };
  }

  /**
   * L2 (running since a successful VMLAUNCH/VMRESUME) exits to L1 with `reason`: the model's
   * `syncVmcs02ToVmcs12` with vmcs02 current, the exit information, back to vmcs01, and the shadow
   * VMCS refresh before L1 runs (kvm: nested_vmx_vmexit). `l2` first changes vmcs02 as L2's
   * execution and the exit's state saving would (after the runtime's hardware stored the exit).
   */
  exitToL1(reason: number, qualification = 0, l2?: (processor: VmcsProcessor) => void): void {
    if (!this.state.guestMode) throw new Error("exitToL1 while L1 runs");
    this.#l0(reason, () => {
      // What L2 did and the exit saved in vmcs02 (the hardware stored reason and qualification first).
      l2?.(this.processor);
      this.#flushShadowVmcs12();
      const owned = this.guestOwnedBits();
      this.state.guestMode = false;
      const vmcs12 = this.vmcs12;
      this.sync.syncVmcs02ToVmcs12(vmcs12, owned.cr0, owned.cr4);
      for (const name of ["GUEST_RIP", "GUEST_RSP"]) {
        const lo = this.processor.vmread(enc(name));
        vmcs12.write(enc(name), lo, this.processor.hi);
      }
      vmcs12.write(VM_EXIT_REASON, reason);
      vmcs12.write(EXIT_QUALIFICATION, qualification);
      vmcs12.launchState = 1;
      this.#switchTo(this.vmcs01);
      // L1 runs next: onVmExit refreshes its shadow VMCS (or enlightened VMCS) first.
      this.sync.requestVmcs12ToShadowSync();
      return VMX_RESULT.SUCCEED;
    });
  }

  /** VMXON, then VMCLEAR and VMPTRLD of L1.VMCS[0] (kvm-unit-tests init_vmcs); throws if any fails. */
  enterVmxWithCurrent(vmcs: number = L1.VMCS[0]): this {
    for (const [what, outcome] of [
      ["VMXON", this.vmxon(L1.VMXON)],
      ["VMCLEAR", this.vmclear(vmcs)],
      ["VMPTRLD", this.vmptrld(vmcs)],
    ] as const) {
      if (outcome !== VMX_RESULT.SUCCEED)
        throw new Error(`${what} failed with ${outcome} in the world's set-up`);
    }
    return this;
  }
}

/** Whether an outcome is a VMX result (VMsucceed/VMfailInvalid/VMfailValid), not a fault or an entry. */
export function isResult(outcome: VmxOutcome): boolean {
  return isVmxResultOutcome(outcome);
}
