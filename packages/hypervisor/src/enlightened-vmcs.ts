/**
 * An enlightened VMCS (Hyper-V's eVMCS, TLFS "HV_VMX_ENLIGHTENED_VMCS"; KVM implements the host side
 * in arch/x86/kvm/vmx/hyperv.c and nested.c) as two model policies:
 *
 * - `EnlightenedVmcsAccess` (the guest hypervisor's side, a `vmcsAccess` policy): L1 keeps its VMCS
 *   as an ordinary page of its own memory. A VMREAD is a load from that page and a VMWRITE a store
 *   that also clears the clean bit of the field's group, so neither exits to L0.
 * - `EnlightenedVmcsSync` (L0's side, a `nestedSync` policy built on `ShadowVmcsSync`): at L1's
 *   VMLAUNCH/VMRESUME, L0 copies into vmcs12 only the groups whose clean bit L1 cleared (kvm:
 *   copy_enlightened_to_vmcs12), and prepares vmcs02's rare guest state for those groups only
 *   (kvm: prepare_vmcs02_rare). Because L1 reads its page without exits, nothing can be synced on
 *   demand: on a nested VM exit L0 reads the rarely used guest fields from vmcs02 at once (kvm:
 *   sync_vmcs02_to_vmcs12 calls sync_vmcs02_to_vmcs12_rare when an eVMCS is in use) and, before L1
 *   runs again, writes the guest state and exit information into L1's page and marks every group
 *   clean (kvm: copy_vmcs12_to_enlightened from nested_sync_vmcs12_to_shadow).
 *
 * The clean-field groups (TLFS HV_VMX_ENLIGHTENED_CLEAN_FIELD_*): L1 clears a group's bit when it
 * changes any field of that group, and L0 may skip a group whose bit is set. The field membership
 * below follows KVM's field table for eVMCS version 1 (kvm: vmcs_field_to_evmcs_1).
 *
 * Model choices (documented deviations):
 * - The page uses vmcs12's layout (the real eVMCS has its own), so L0's copies are offset-for-offset;
 *   the clean-field mask is the u32 at `EVMCS_CLEAN_FIELDS_OFFSET`, in vmcs12's header padding. Only
 *   the accesses matter to the cost, not the layout.
 * - L1 makes a page current with VMPTRLD (an exit, as for a normal VMCS) instead of through the
 *   Hyper-V VP assist page; in steady state a guest hypervisor at level 1 of a 2-level machine does
 *   not switch VMCS, so the measured loops are unaffected. A VMCLEAR/VMPTRLD that releases the page
 *   first pulls all of it into vmcs12 (the model's release writes vmcs12 back to the page).
 * - eVMCS v1 has no slot for some fields KVM's own L1 uses (e.g. the EOI-exit bitmaps, PML, the
 *   posted-interrupt fields); KVM hides those features from an eVMCS guest. The model's L1 still
 *   writes them, so they form an extra group `EVMCS_CLEAN.OTHER` (bit 16) that is copied like the
 *   others. Fields KVM maps to the whole mask (MSR-switch addresses and counts, #PF error-code
 *   mask/match, CR3-target count) dirty every group when written, as in KVM, and are copied with OTHER.
 * - KVM's "Enlightened VMCS doesn't have launch state" (nested_vmx_run forces launch_state) is not
 *   modelled: vmcs12's launch state is kept as for a normal VMCS, so VMLAUNCH/VMRESUME fail exactly
 *   as they would without the enlightenment.
 *
 * Work is counted as VMCS12_READ/VMCS12_WRITE (memory accesses to a VMCS image): L1's at L1's level,
 * L0's copies at L0's.
 */

import {
  exitSyncFields,
  FIELD_WIDTH,
  type FieldWidth,
  LAUNCH_STATE,
  lookupVmcs12Offset,
  type Meter,
  meterTable,
  type NestedVmxState,
  rareSyncFields,
  ShadowVmcsSync,
  type ShadowVmcsSyncOptions,
  VMX_EVENTS,
  type Vmcs12,
  type Vmcs12Layout,
  vmcs12Layout,
  vmcsFieldWidth,
} from "@nestvisor/vmx";
import type { PhysicalMemory } from "@nestvisor/x86-arch";
import type {
  GuestVmcsAccess,
  GuestVmcsAccessContext,
  ModelPolicies,
  NestedEntryHooks,
  NestedSyncContext,
} from "./model-policies";
import { vmcsFieldEncoding } from "./vmcs-field-encodings";

const EV_READ = VMX_EVENTS.VMCS12_READ;
const EV_WRITE = VMX_EVENTS.VMCS12_WRITE;

/** Clean-field group bits (TLFS HV_VMX_ENLIGHTENED_CLEAN_FIELD_*), plus the model's OTHER (bit 16). */
export const EVMCS_CLEAN = {
  IO_BITMAP: 1 << 0,
  MSR_BITMAP: 1 << 1,
  CONTROL_GRP2: 1 << 2,
  CONTROL_GRP1: 1 << 3,
  CONTROL_PROC: 1 << 4,
  CONTROL_EVENT: 1 << 5,
  CONTROL_ENTRY: 1 << 6,
  CONTROL_EXCPN: 1 << 7,
  CRDR: 1 << 8,
  CONTROL_XLAT: 1 << 9,
  GUEST_BASIC: 1 << 10,
  GUEST_GRP1: 1 << 11,
  GUEST_GRP2: 1 << 12,
  HOST_POINTER: 1 << 13,
  HOST_GRP1: 1 << 14,
  ENLIGHTENMENTS_CONTROL: 1 << 15,
  /** Model extension: vmcs12 fields eVMCS v1 has no slot (or no group) for; see the file comment. */
  OTHER: 1 << 16,
} as const;

export type EvmcsCleanGroupName = keyof typeof EVMCS_CLEAN;

/** Every group clean (TLFS HV_VMX_ENLIGHTENED_CLEAN_FIELD_ALL, plus OTHER). */
export const EVMCS_CLEAN_ALL = 0x1ffff;

/** Byte offset of the clean-field mask (u32) in the model's eVMCS page: vmcs12's first padding word. */
export const EVMCS_CLEAN_FIELDS_OFFSET = 12;

const SEGMENTS = ["ES", "CS", "SS", "DS", "FS", "GS", "LDTR", "TR"];

/**
 * Which fields each group holds (TLFS groups; membership as in kvm: vmcs_field_to_evmcs_1). Fields
 * L0 copies at every entry regardless of the mask are in `EVMCS_ALWAYS_COPIED`.
 */
export const EVMCS_GROUP_FIELDS: Readonly<Partial<Record<EvmcsCleanGroupName, readonly string[]>>> =
  Object.freeze({
    IO_BITMAP: ["IO_BITMAP_A", "IO_BITMAP_B"],
    MSR_BITMAP: ["MSR_BITMAP"],
    CONTROL_GRP2: [
      "TSC_OFFSET",
      "VIRTUAL_APIC_PAGE_ADDR",
      "XSS_EXIT_BITMAP",
      "ENCLS_EXITING_BITMAP",
      "TSC_MULTIPLIER",
    ],
    CONTROL_GRP1: ["PIN_BASED_VM_EXEC_CONTROL", "VM_EXIT_CONTROLS", "SECONDARY_VM_EXEC_CONTROL"],
    CONTROL_PROC: ["CPU_BASED_VM_EXEC_CONTROL"],
    CONTROL_EVENT: ["VM_ENTRY_INTR_INFO_FIELD", "VM_ENTRY_EXCEPTION_ERROR_CODE", "VM_ENTRY_INSTRUCTION_LEN"],
    CONTROL_ENTRY: ["VM_ENTRY_CONTROLS"],
    CONTROL_EXCPN: ["EXCEPTION_BITMAP"],
    CRDR: [
      "CR0_GUEST_HOST_MASK",
      "CR4_GUEST_HOST_MASK",
      "CR0_READ_SHADOW",
      "CR4_READ_SHADOW",
      "GUEST_CR0",
      "GUEST_CR3",
      "GUEST_CR4",
      "GUEST_DR7",
    ],
    CONTROL_XLAT: ["EPT_POINTER", "VIRTUAL_PROCESSOR_ID"],
    GUEST_BASIC: ["GUEST_RSP", "GUEST_RFLAGS", "GUEST_INTERRUPTIBILITY_INFO"],
    GUEST_GRP1: [
      "VMCS_LINK_POINTER",
      "GUEST_IA32_DEBUGCTL",
      "GUEST_IA32_PAT",
      "GUEST_IA32_EFER",
      "GUEST_IA32_PERF_GLOBAL_CTRL",
      "GUEST_PDPTR0",
      "GUEST_PDPTR1",
      "GUEST_PDPTR2",
      "GUEST_PDPTR3",
      "GUEST_PENDING_DBG_EXCEPTIONS",
      "GUEST_SYSENTER_ESP",
      "GUEST_SYSENTER_EIP",
      "GUEST_BNDCFGS",
      "GUEST_ACTIVITY_STATE",
      "GUEST_SYSENTER_CS",
    ],
    GUEST_GRP2: [
      ...SEGMENTS.map((s) => `GUEST_${s}_SELECTOR`),
      ...[...SEGMENTS, "GDTR", "IDTR"].map((s) => `GUEST_${s}_LIMIT`),
      ...SEGMENTS.map((s) => `GUEST_${s}_AR_BYTES`),
      ...[...SEGMENTS, "GDTR", "IDTR"].map((s) => `GUEST_${s}_BASE`),
    ],
    HOST_POINTER: [
      "HOST_FS_BASE",
      "HOST_GS_BASE",
      "HOST_TR_BASE",
      "HOST_GDTR_BASE",
      "HOST_IDTR_BASE",
      "HOST_RSP",
    ],
    HOST_GRP1: [
      "HOST_IA32_PAT",
      "HOST_IA32_EFER",
      "HOST_IA32_PERF_GLOBAL_CTRL",
      "HOST_CR0",
      "HOST_CR3",
      "HOST_CR4",
      "HOST_IA32_SYSENTER_ESP",
      "HOST_IA32_SYSENTER_EIP",
      "HOST_RIP",
      "HOST_IA32_SYSENTER_CS",
      ...["ES", "CS", "SS", "DS", "FS", "GS", "TR"].map((s) => `HOST_${s}_SELECTOR`),
    ],
  });

/** Fields without a clean bit that L0 copies on every entry (kvm: copy_enlightened_to_vmcs12). */
export const EVMCS_ALWAYS_COPIED: readonly string[] = Object.freeze(["GUEST_RIP", "TPR_THRESHOLD"]);

/** Fields KVM maps to the whole mask: writing one dirties every group (kvm: vmcs_field_to_evmcs_1). */
export const EVMCS_WHOLE_MASK_FIELDS: readonly string[] = Object.freeze([
  "VM_EXIT_MSR_STORE_ADDR",
  "VM_EXIT_MSR_LOAD_ADDR",
  "VM_ENTRY_MSR_LOAD_ADDR",
  "PAGE_FAULT_ERROR_CODE_MASK",
  "PAGE_FAULT_ERROR_CODE_MATCH",
  "CR3_TARGET_COUNT",
  "VM_EXIT_MSR_STORE_COUNT",
  "VM_EXIT_MSR_LOAD_COUNT",
  "VM_ENTRY_MSR_LOAD_COUNT",
]);

/**
 * What L0 writes into L1's page before L1 runs after a nested VM exit, in KVM's order: guest segment
 * state, the guest MSRs, PDPTRs and CRs it syncs, the exit information, RSP/RFLAGS/interruptibility,
 * the controls L0 may have changed, the entry event fields, RIP and BNDCFGS (kvm:
 * copy_vmcs12_to_enlightened). Host state and most controls are L1's own and are never written back.
 */
export const EVMCS_WRITE_BACK_FIELDS: readonly string[] = Object.freeze([
  ...SEGMENTS.map((s) => `GUEST_${s}_SELECTOR`),
  ...[...SEGMENTS, "GDTR", "IDTR"].map((s) => `GUEST_${s}_LIMIT`),
  ...SEGMENTS.map((s) => `GUEST_${s}_AR_BYTES`),
  ...[...SEGMENTS, "GDTR", "IDTR"].map((s) => `GUEST_${s}_BASE`),
  "GUEST_IA32_PAT",
  "GUEST_IA32_EFER",
  "GUEST_PDPTR0",
  "GUEST_PDPTR1",
  "GUEST_PDPTR2",
  "GUEST_PDPTR3",
  "GUEST_PENDING_DBG_EXCEPTIONS",
  "GUEST_SYSENTER_ESP",
  "GUEST_SYSENTER_EIP",
  "GUEST_ACTIVITY_STATE",
  "GUEST_SYSENTER_CS",
  "GUEST_CR0",
  "GUEST_CR3",
  "GUEST_CR4",
  "GUEST_DR7",
  "GUEST_PHYSICAL_ADDRESS",
  "VM_INSTRUCTION_ERROR",
  "VM_EXIT_REASON",
  "VM_EXIT_INTR_INFO",
  "VM_EXIT_INTR_ERROR_CODE",
  "IDT_VECTORING_INFO_FIELD",
  "IDT_VECTORING_ERROR_CODE",
  "VM_EXIT_INSTRUCTION_LEN",
  "VMX_INSTRUCTION_INFO",
  "EXIT_QUALIFICATION",
  "GUEST_LINEAR_ADDRESS",
  "GUEST_RSP",
  "GUEST_RFLAGS",
  "GUEST_INTERRUPTIBILITY_INFO",
  "CPU_BASED_VM_EXEC_CONTROL",
  "VM_ENTRY_CONTROLS",
  "VM_ENTRY_INTR_INFO_FIELD",
  "VM_ENTRY_EXCEPTION_ERROR_CODE",
  "VM_ENTRY_INSTRUCTION_LEN",
  "GUEST_RIP",
  "GUEST_BNDCFGS",
]);

/**
 * The group tables of one vmcs12 layout: for each 16-bit unit of the page, the clean bits a write
 * there clears (0: not a field) and the group it is copied with; per group, the fields as offsets and
 * widths (a 64-bit field once, by its full encoding).
 */
class EvmcsTables {
  readonly layout: Vmcs12Layout;
  /** Clean bits a VMWRITE at byte offset 2k clears. */
  readonly dirtyMask: Int32Array;
  /** The group bit the field at byte offset 2k is copied with (0 for always-copied fields). */
  readonly groupBit: Int32Array;
  /** Per group bit index 0…16: the fields to copy. */
  readonly groupOffsets: readonly Int32Array[];
  readonly groupWidths: readonly Uint8Array[];
  readonly alwaysOffsets: Int32Array;
  readonly alwaysWidths: Uint8Array;
  readonly writeBackOffsets: Int32Array;
  readonly writeBackWidths: Uint8Array;
  /** Every field (all groups and the always-copied ones), for a full pull. */
  readonly allOffsets: Int32Array;
  readonly allWidths: Uint8Array;

  constructor(layout: Vmcs12Layout) {
    this.layout = layout;
    this.dirtyMask = new Int32Array(0x800);
    this.groupBit = new Int32Array(0x800).fill(-1);
    const perGroup: [number, number][][] = Array.from({ length: 17 }, () => []);
    const always: [number, number][] = [];
    const place = (offset: number, width: FieldWidth, dirty: number, bit: number) => {
      const units = width === FIELD_WIDTH.U16 ? 1 : width === FIELD_WIDTH.U32 ? 2 : 4;
      for (let u = 0; u < units; u++) {
        this.dirtyMask[(offset >>> 1) + u] = dirty;
        this.groupBit[(offset >>> 1) + u] = bit;
      }
    };
    const named = new Set<string>();
    for (const [group, names] of Object.entries(EVMCS_GROUP_FIELDS)) {
      const bit = EVMCS_CLEAN[group as EvmcsCleanGroupName];
      const index = 31 - Math.clz32(bit);
      for (const name of names ?? []) {
        const offset = this.#offset(name);
        if (offset < 0) continue; // not in this era's vmcs12
        named.add(name);
        const width = vmcsFieldWidth(vmcsFieldEncoding(name));
        place(offset, width, bit, bit);
        perGroup[index]!.push([offset, width]);
      }
    }
    for (const name of EVMCS_ALWAYS_COPIED) {
      const offset = this.#offset(name);
      if (offset < 0) continue;
      named.add(name);
      const width = vmcsFieldWidth(vmcsFieldEncoding(name));
      place(offset, width, 0, 0);
      always.push([offset, width]);
    }
    const other = 31 - Math.clz32(EVMCS_CLEAN.OTHER);
    const wholeMask = new Set(EVMCS_WHOLE_MASK_FIELDS);
    for (const f of layout.fields) {
      if (named.has(f.name) || f.name.endsWith("_HIGH")) continue;
      const dirty = wholeMask.has(f.name) ? EVMCS_CLEAN_ALL : EVMCS_CLEAN.OTHER;
      place(f.offset, f.width, dirty, EVMCS_CLEAN.OTHER);
      perGroup[other]!.push([f.offset, f.width]);
    }
    this.groupOffsets = perGroup.map((list) => Int32Array.from(list, (e) => e[0]));
    this.groupWidths = perGroup.map((list) => Uint8Array.from(list, (e) => e[1]));
    this.alwaysOffsets = Int32Array.from(always, (e) => e[0]);
    this.alwaysWidths = Uint8Array.from(always, (e) => e[1]);
    const back = EVMCS_WRITE_BACK_FIELDS.map(
      (name) => [this.#offset(name), vmcsFieldEncoding(name)] as const,
    ).filter(([offset]) => offset >= 0);
    this.writeBackOffsets = Int32Array.from(back, (e) => e[0]);
    this.writeBackWidths = Uint8Array.from(back, (e) => vmcsFieldWidth(e[1]));
    const all = [...perGroup.flat(), ...always];
    this.allOffsets = Int32Array.from(all, (e) => e[0]);
    this.allWidths = Uint8Array.from(all, (e) => e[1]);
  }

  #offset(name: string): number {
    return lookupVmcs12Offset(this.layout.offsets, vmcsFieldEncoding(name));
  }
}

const TABLES = new Map<string, EvmcsTables>();

function tablesFor(layout: Vmcs12Layout): EvmcsTables {
  let tables = TABLES.get(layout.era);
  if (tables === undefined) {
    tables = new EvmcsTables(layout);
    TABLES.set(layout.era, tables);
  }
  return tables;
}

/**
 * The clean bits a write of `encoding` clears: its group's bit, every bit for a field KVM maps to the
 * whole mask, 0 for an always-copied field, -1 for an encoding vmcs12 does not store.
 */
export function evmcsDirtyMask(encoding: number, layout: Vmcs12Layout = vmcs12Layout()): number {
  const offset = lookupVmcs12Offset(layout.offsets, encoding);
  return offset < 0 ? -1 : tablesFor(layout).dirtyMask[offset >>> 1]!;
}

/** The group a field is copied with (0 for an always-copied field, -1 for an encoding not stored). */
export function evmcsCopyGroup(encoding: number, layout: Vmcs12Layout = vmcs12Layout()): number {
  const offset = lookupVmcs12Offset(layout.offsets, encoding);
  return offset < 0 ? -1 : tablesFor(layout).groupBit[offset >>> 1]!;
}

function tally(counts: Float64Array | null, meter: Meter, event: number, n: number): void {
  if (counts !== null) counts[event] = counts[event]! + n;
  else meter.count(event, n);
}

/**
 * The guest hypervisor's side: VMREAD/VMWRITE of the current VMCS as loads and stores to its page
 * (for KVM as an eVMCS guest: evmcs_read64/evmcs_write64 and friends in vmx_onhyperv.h). A store
 * also clears the field's clean bits (a load and a store of the mask).
 */
export class EnlightenedVmcsAccess implements GuestVmcsAccess {
  hi = 0;
  readonly #memory: PhysicalMemory;
  readonly #meter: Meter;
  readonly #counts: Float64Array | null;
  readonly #offsets: Uint16Array;
  readonly #dirty: Int32Array;

  constructor(context: GuestVmcsAccessContext, layout: Vmcs12Layout = vmcs12Layout()) {
    this.#memory = context.memory;
    this.#meter = context.meter;
    this.#counts = meterTable(context.meter);
    this.#offsets = layout.offsets;
    this.#dirty = tablesFor(layout).dirtyMask;
  }

  read(vmcsGpa: number, encoding: number): number {
    const offset = lookupVmcs12Offset(this.#offsets, encoding);
    if (offset < 0) return -1;
    const m = this.#memory;
    const at = vmcsGpa + offset;
    tally(this.#counts, this.#meter, EV_READ, 1);
    switch (vmcsFieldWidth(encoding)) {
      case FIELD_WIDTH.U16:
        this.hi = 0;
        return m.read16(at);
      case FIELD_WIDTH.U32:
        this.hi = 0;
        return m.read32(at);
      default:
        this.hi = m.read32(at + 4);
        return m.read32(at);
    }
  }

  write(vmcsGpa: number, encoding: number, lo: number, hi: number): boolean {
    const offset = lookupVmcs12Offset(this.#offsets, encoding);
    if (offset < 0) return false;
    const m = this.#memory;
    const at = vmcsGpa + offset;
    switch (vmcsFieldWidth(encoding)) {
      case FIELD_WIDTH.U16:
        m.write16(at, lo & 0xffff);
        break;
      case FIELD_WIDTH.U32:
        m.write32(at, lo >>> 0);
        break;
      default:
        m.write64(at, lo >>> 0, hi >>> 0);
    }
    const dirty = this.#dirty[offset >>> 1]!;
    const counts = this.#counts;
    if (dirty !== 0) {
      const maskAt = vmcsGpa + EVMCS_CLEAN_FIELDS_OFFSET;
      m.write32(maskAt, (m.read32(maskAt) & ~dirty) >>> 0);
      tally(counts, this.#meter, EV_READ, 1);
      tally(counts, this.#meter, EV_WRITE, 1);
    }
    tally(counts, this.#meter, EV_WRITE, 1);
    return true;
  }
}

const GUEST_CR0 = vmcsFieldEncoding("GUEST_CR0");
const CR0_READ_SHADOW = vmcsFieldEncoding("CR0_READ_SHADOW");
const CR0_GUEST_HOST_MASK = vmcsFieldEncoding("CR0_GUEST_HOST_MASK");
const GUEST_CR4 = vmcsFieldEncoding("GUEST_CR4");
const CR4_READ_SHADOW = vmcsFieldEncoding("CR4_READ_SHADOW");
const CR4_GUEST_HOST_MASK = vmcsFieldEncoding("CR4_GUEST_HOST_MASK");

/**
 * L0's side: `ShadowVmcsSync` without a hardware shadow VMCS, whose copies go between vmcs12 and the
 * guest hypervisor's eVMCS page instead, by clean-field group. See the file comment for what KVM does
 * at each step.
 */
export class EnlightenedVmcsSync extends ShadowVmcsSync implements NestedEntryHooks {
  readonly #memory: PhysicalMemory;
  readonly #state: NestedVmxState;
  readonly #meter: Meter;
  readonly #counts: Float64Array | null;
  readonly #tables: EvmcsTables;
  readonly #rare: Int32Array;
  readonly #exit: Int32Array;
  /** The page's clean mask as the current nested entry found it (0 on VMLAUNCH). */
  #entryClean = EVMCS_CLEAN_ALL;
  #pendingWriteBack = false;

  constructor(options: ShadowVmcsSyncOptions, context: NestedSyncContext) {
    // KVM never enables hardware VMCS shadowing for an eVMCS (only set_current_vmptr does).
    super({ ...options, shadowVmcs: null });
    this.#memory = context.guestMemory;
    this.#state = context.state;
    this.#meter = context.meter;
    this.#counts = meterTable(context.meter);
    this.#tables = tablesFor(context.state.cachedVmcs12.layout);
    const exitOptions = {
      lazyRareGuestSync: this.lazyRareGuestSync,
      entryVmwriteTrims: this.entryVmwriteTrims,
      ept: options.ept ?? true,
      bndcfgsFromVmcs02: options.bndcfgsFromVmcs02 ?? false,
    };
    this.#rare = Int32Array.from(rareSyncFields(exitOptions), (f) => f.encoding);
    // The first four entries are the CR0/CR4 merge reads.
    this.#exit = Int32Array.from(exitSyncFields(exitOptions).slice(4), (f) => f.encoding);
  }

  /** L1 writes its VMCS without exits, so vmcs12 must be pulled at VMLAUNCH/VMRESUME (as with shadowing). */
  override get shadowingEnabled(): boolean {
    return true;
  }

  /** Nothing is synced lazily: L1 reads its page without exits (kvm: need_sync_vmcs02_to_vmcs12_rare = !evmcs). */
  override isRareField(_encoding: number): boolean {
    return false;
  }

  /** An eVMCS is current: L0 prepares the rare vmcs02 state on every entry (kvm: dirty_vmcs12 || hv_evmcs). */
  get rareEntryEveryTime(): boolean {
    return this.#state.hasCurrentVmcs;
  }

  /** The clean mask the last nested entry found in the page. */
  get entryCleanFields(): number {
    return this.#entryClean;
  }

  /** kvm: prepare_vmcs02_rare tests GUEST_GRP2 (segments) and GUEST_GRP1 (SYSENTER, debug, PDPTRs); the rest is always written. */
  rareEntryWrites(encoding: number): boolean {
    const t = this.#tables;
    const offset = lookupVmcs12Offset(t.layout.offsets, encoding);
    const bit = offset < 0 ? -1 : t.groupBit[offset >>> 1]!;
    if (bit !== EVMCS_CLEAN.GUEST_GRP2 && bit !== EVMCS_CLEAN.GUEST_GRP1) return true;
    return (this.#entryClean & bit) === 0;
  }

  /** kvm: nested_vmx_fail requests a sync so L1 sees VM_INSTRUCTION_ERROR in its page. */
  instructionFailed(): void {
    if (this.#state.hasCurrentVmcs) this.#pendingWriteBack = true;
  }

  override get needVmcs12ToShadowSync(): boolean {
    return this.#pendingWriteBack;
  }

  /** A nested VM exit: the page is refreshed before L1 runs (kvm: need_vmcs12_to_shadow_sync). */
  override requestVmcs12ToShadowSync(): void {
    if (this.#state.hasCurrentVmcs) this.#pendingWriteBack = true;
  }

  override syncVmcs12ToShadow(vmcs12: Vmcs12): boolean {
    if (!this.#pendingWriteBack) return false;
    this.copyVmcs12ToShadow(vmcs12);
    this.#pendingWriteBack = false;
    return true;
  }

  /**
   * kvm: copy_enlightened_to_vmcs12 — at VMLAUNCH/VMRESUME: RIP and the TPR threshold always, then
   * every group whose clean bit is clear. VMLAUNCH first clears the whole mask (kvm:
   * nested_vmx_handle_enlightened_vmptrld with from_launch).
   */
  override copyShadowToVmcs12(vmcs12: Vmcs12): void {
    const base = this.#state.currentVmptr;
    if (base < 0) return;
    const m = this.#memory;
    const maskAt = base + EVMCS_CLEAN_FIELDS_OFFSET;
    let clean = m.read32(maskAt);
    this.#tally(EV_READ, 1);
    if (vmcs12.launchState === LAUNCH_STATE.CLEAR) {
      clean = 0;
      m.write32(maskAt, 0);
      this.#tally(EV_WRITE, 1);
    }
    this.#entryClean = clean;
    const t = this.#tables;
    this.#pull(vmcs12, base, t.alwaysOffsets, t.alwaysWidths);
    for (let i = 0; i < t.groupOffsets.length; i++) {
      if ((clean & (1 << i)) === 0) this.#pull(vmcs12, base, t.groupOffsets[i]!, t.groupWidths[i]!);
    }
  }

  /**
   * kvm: copy_vmcs12_to_enlightened, then "all fields are clean" (nested_sync_vmcs12_to_shadow):
   * the guest state and exit information L0 owns go to L1's page.
   */
  override copyVmcs12ToShadow(vmcs12: Vmcs12): void {
    const base = this.#state.currentVmptr;
    if (base < 0) return;
    const t = this.#tables;
    this.#push(vmcs12, base, t.writeBackOffsets, t.writeBackWidths);
    this.#memory.write32(base + EVMCS_CLEAN_FIELDS_OFFSET, EVMCS_CLEAN_ALL);
    this.#tally(EV_WRITE, 1);
  }

  /** The eVMCS becomes current: every group is dirty (kvm: evmcs_gpa_changed clears the mask). */
  override currentVmcsLoaded(vmcs12: Vmcs12): void {
    super.currentVmcsLoaded(vmcs12);
    const base = this.#state.currentVmptr;
    if (base < 0) return;
    this.#memory.write32(base + EVMCS_CLEAN_FIELDS_OFFSET, 0);
    this.#tally(EV_WRITE, 1);
    this.#pendingWriteBack = false;
  }

  /** Before the model writes vmcs12 back to the page on release, pull every field L1 wrote there. */
  override currentVmcsReleased(vmcs12: Vmcs12): void {
    const base = this.#state.currentVmptr;
    if (base >= 0) this.#pull(vmcs12, base, this.#tables.allOffsets, this.#tables.allWidths);
    this.#pendingWriteBack = false;
    super.currentVmcsReleased(vmcs12);
  }

  /**
   * kvm: sync_vmcs02_to_vmcs12 with an eVMCS — the rare guest fields at once (sync_vmcs02_to_vmcs12_rare,
   * no VMCS switch: vmcs02 is current), then the CR0/CR4 merge and the fields read on every exit.
   */
  override syncVmcs02ToVmcs12(vmcs12: Vmcs12, cr0GuestOwnedBits: number, cr4GuestOwnedBits: number): void {
    if (this.processor.current !== this.vmcs02) {
      throw new Error("sync_vmcs02_to_vmcs12 runs right after the exit: vmcs02 must be the current VMCS");
    }
    const rare = this.#rare;
    for (let i = 0; i < rare.length; i++) this.syncFieldFromVmcs02(vmcs12, rare[i]!);
    this.#mergeCr(vmcs12, GUEST_CR0, CR0_READ_SHADOW, CR0_GUEST_HOST_MASK, cr0GuestOwnedBits);
    this.#mergeCr(vmcs12, GUEST_CR4, CR4_READ_SHADOW, CR4_GUEST_HOST_MASK, cr4GuestOwnedBits);
    const exit = this.#exit;
    for (let i = 0; i < exit.length; i++) this.syncFieldFromVmcs02(vmcs12, exit[i]!);
  }

  /** kvm: vmcs12_guest_cr0 / vmcs12_guest_cr4 (as `ShadowVmcsSync` does it). */
  #mergeCr(vmcs12: Vmcs12, register: number, readShadow: number, mask: number, guestOwned: number): void {
    const cpu = this.processor;
    const natural = FIELD_WIDTH.NATURAL;
    const regLo = cpu.vmread(register);
    const shadowLo = cpu.vmread(readShadow);
    const shadowHi = cpu.hi;
    const maskLo = vmcs12.read(mask);
    const maskHi = vmcs12.hi;
    const offset = vmcs12.offsetOf(register);
    const oldLo = vmcs12.readAt(offset, natural);
    const oldHi = vmcs12.hi;
    const owned = guestOwned >>> 0;
    const lo = ((regLo & owned) | (oldLo & maskLo) | (shadowLo & ~(maskLo | owned))) >>> 0;
    const hi = ((oldHi & maskHi) | (shadowHi & ~maskHi)) >>> 0;
    vmcs12.writeAt(offset, natural, lo, hi);
    this.#tally(EV_READ, 2);
    this.#tally(EV_WRITE, 1);
  }

  /** Page → vmcs12 for a field list (a load from the page and a store to vmcs12 each). */
  #pull(vmcs12: Vmcs12, base: number, offsets: Int32Array, widths: Uint8Array): void {
    const m = this.#memory;
    const n = offsets.length;
    for (let i = 0; i < n; i++) {
      const offset = offsets[i]!;
      const width = widths[i]! as FieldWidth;
      const at = base + offset;
      if (width === FIELD_WIDTH.U16) vmcs12.writeAt(offset, width, m.read16(at));
      else if (width === FIELD_WIDTH.U32) vmcs12.writeAt(offset, width, m.read32(at));
      else vmcs12.writeAt(offset, width, m.read32(at), m.read32(at + 4));
    }
    this.#tally(EV_READ, n);
    this.#tally(EV_WRITE, n);
  }

  /** vmcs12 → page for a field list. */
  #push(vmcs12: Vmcs12, base: number, offsets: Int32Array, widths: Uint8Array): void {
    const m = this.#memory;
    const n = offsets.length;
    for (let i = 0; i < n; i++) {
      const offset = offsets[i]!;
      const width = widths[i]! as FieldWidth;
      const lo = vmcs12.readAt(offset, width);
      const at = base + offset;
      if (width === FIELD_WIDTH.U16) m.write16(at, lo);
      else if (width === FIELD_WIDTH.U32) m.write32(at, lo);
      else m.write64(at, lo, vmcs12.hi);
    }
    this.#tally(EV_READ, n);
    this.#tally(EV_WRITE, n);
  }

  #tally(event: number, n: number): void {
    tally(this.#counts, this.#meter, event, n);
  }
}

/**
 * The two policies of an enlightened VMCS, to spread into `ModelSpec.policies`: every KVM offers
 * its guest hypervisor an eVMCS, and every guest hypervisor uses it.
 */
export function enlightenedVmcsPolicies(): Required<Pick<ModelPolicies, "nestedSync" | "vmcsAccess">> {
  return Object.freeze({
    nestedSync: (options: ShadowVmcsSyncOptions, context: NestedSyncContext) =>
      new EnlightenedVmcsSync(options, context),
    vmcsAccess: (context: GuestVmcsAccessContext) => new EnlightenedVmcsAccess(context),
  });
}
