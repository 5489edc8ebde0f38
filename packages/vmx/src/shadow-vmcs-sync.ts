/**
 * KVM's bookkeeping that keeps vmcs12 (its software copy of L1's VMCS), the hardware shadow VMCS
 * L1 reads and writes without exits, and vmcs02 (the VMCS L2 runs on) coherent (kvm: nested.c), with
 * the seed-003 flags that changed how much of it is done (reference kvm-vmx.md §6, §8, §10):
 *
 * - `readOnlyShadowFields` (flag A): RO fields are VMWRITE-intercepted and no longer copied back on
 *   every nested VM entry; CS/SS AR bytes become RO. Off (v5.2): the VMWRITE bitmap is the VMREAD
 *   bitmap when L1 has VMWRITE-to-any, and `copy_shadow_to_vmcs12` copies RW + RO.
 * - `precomputedShadowOffsets` (flag B): every copy entry carries its vmcs12 offset. Off (v5.2): each
 *   copied field costs a runtime offset lookup (kvm v5.2: vmcs_field_to_offset inside
 *   vmcs12_read_any/vmcs12_write_any), counted as SHADOW_FIELD_OFFSET_LOOKUP.
 * - `lazyRareGuestSync` (flag C): 35 rarely used guest fields are read from vmcs02 only when L1 needs
 *   them (kvm: copy_vmcs02_to_vmcs12_rare). Off (v5.2): every nested VM exit reads them all.
 * - `controlsShadow` (flag F, the part that touches this file): PIN_BASED_VM_EXEC_CONTROL is shadow-RW
 *   ("KVM: nVMX: shadow pin based execution controls"). `ControlsShadow` calls the same flag
 *   `perVmcsShadow`.
 * - `entryVmwriteTrims` (flag E, its exit-side part): `sync_vmcs02_to_vmcs12` no longer reads the
 *   PDPTRs unconditionally (only with nested EPT and PAE paging, the caller's decision) nor the
 *   SYSENTER MSRs (kept current when L2 writes them).
 *
 * Every VMX instruction goes through the `VmcsProcessor`, so VMPTRLD/VMREAD/VMWRITE/VMCLEAR are
 * counted on its meter; KVM's memory accesses to vmcs12 count VMCS12_READ / VMCS12_WRITE.
 *
 * Not modelled: the enlightened VMCS (Hyper-V eVMCS) paths, 32-bit hosts (whose copy arrays keep
 * `_HIGH` entries), L2's accesses to L1's shadow vmcs12 (`cached_shadow_vmcs12`), and the
 * conditional parts of `sync_vmcs02_to_vmcs12` that need vCPU state (RSP/RIP from the register cache,
 * activity state, preemption-timer value, PAE PDPTRs, guest interrupt status, DR7, EFER, the IA-32e
 * entry control): the hypervisor layer does those, using `syncFieldFromVmcs02` for the VMREAD-backed
 * ones.
 */

import { SECONDARY_EXEC_CTLS } from "./controls";
import type { ControlsShadow } from "./controls-shadow";
import { FIELD_WIDTH, type FieldWidth, vmcsFieldWidth } from "./field-encoding";
import type { HardwareVmcs } from "./hardware-vmcs";
import { meterTable } from "./meter";
import type { NestedSyncPort } from "./nested-sync-port";
import {
  FULL_SHADOW_HOST,
  isVmcs12ExtField,
  RARE_GUEST_SYNC_FIELDS,
  type ShadowField,
  type ShadowFieldSet,
  type ShadowHostFeatures,
  shadowFieldByName,
  shadowFieldSet,
} from "./shadow-fields";
import { VmcsFieldList } from "./vmcs-field-list";
import type { VmcsProcessor } from "./vmcs-processor";
import { VmcsShadowingBitmaps } from "./vmcs-shadowing-bitmaps";
import type { Vmcs12 } from "./vmcs12";
import { vmcs12FieldOffset } from "./vmcs12-layout";
import { VMX_EVENTS } from "./vmx-events";
import { VMX_RESULT } from "./vmx-result";

const EV_OFFSET_LOOKUP = VMX_EVENTS.SHADOW_FIELD_OFFSET_LOOKUP;
const EV_VMCS12_READ = VMX_EVENTS.VMCS12_READ;
const EV_VMCS12_WRITE = VMX_EVENTS.VMCS12_WRITE;
const EV_RARE_SYNC = VMX_EVENTS.VMCS02_RARE_SYNC;
const EV_RARE_DEFERRED = VMX_EVENTS.RARE_FIELD_VMREAD_DEFERRED;

const VMCS_LINK_POINTER = shadowFieldByName("VMCS_LINK_POINTER").encoding;
const SHADOW_VMCS_CONTROL = SECONDARY_EXEC_CTLS.SECONDARY_EXEC_SHADOW_VMCS;

const GUEST_CR0 = shadowFieldByName("GUEST_CR0");
const CR0_READ_SHADOW = shadowFieldByName("CR0_READ_SHADOW");
const CR0_GUEST_HOST_MASK = shadowFieldByName("CR0_GUEST_HOST_MASK");
const GUEST_CR4 = shadowFieldByName("GUEST_CR4");
const CR4_READ_SHADOW = shadowFieldByName("CR4_READ_SHADOW");
const CR4_GUEST_HOST_MASK = shadowFieldByName("CR4_GUEST_HOST_MASK");

const names = (list: readonly string[]): ShadowField[] => list.map(shadowFieldByName);
const SEGMENT_SELECTORS = names(
  ["ES", "CS", "SS", "DS", "FS", "GS", "LDTR", "TR"].map((s) => `GUEST_${s}_SELECTOR`),
);
const SEGMENT_LIMITS = names(
  ["ES", "CS", "SS", "DS", "FS", "GS", "LDTR", "TR", "GDTR", "IDTR"].map((s) => `GUEST_${s}_LIMIT`),
);
const SEGMENT_AR_BYTES = names(
  ["ES", "CS", "SS", "DS", "FS", "GS", "LDTR", "TR"].map((s) => `GUEST_${s}_AR_BYTES`),
);
const SEGMENT_BASES = names(
  ["ES", "CS", "SS", "DS", "FS", "GS", "LDTR", "TR", "GDTR", "IDTR"].map((s) => `GUEST_${s}_BASE`),
);
const PDPTRS = names(["GUEST_PDPTR0", "GUEST_PDPTR1", "GUEST_PDPTR2", "GUEST_PDPTR3"]);
const SYSENTER = names(["GUEST_SYSENTER_CS", "GUEST_SYSENTER_ESP", "GUEST_SYSENTER_EIP"]);
const RFLAGS = shadowFieldByName("GUEST_RFLAGS");
const CS_AR = shadowFieldByName("GUEST_CS_AR_BYTES");
const SS_AR = shadowFieldByName("GUEST_SS_AR_BYTES");
const INTERRUPTIBILITY = shadowFieldByName("GUEST_INTERRUPTIBILITY_INFO");
const PENDING_DBG = shadowFieldByName("GUEST_PENDING_DBG_EXCEPTIONS");
const CR3 = shadowFieldByName("GUEST_CR3");
const LINEAR_ADDRESS = shadowFieldByName("GUEST_LINEAR_ADDRESS");
const BNDCFGS = shadowFieldByName("GUEST_BNDCFGS");

/** What decides the exit-side field lists. */
export interface ExitSyncOptions {
  /** Flag C; default true. */
  readonly lazyRareGuestSync?: boolean;
  /** Flag E (exit side); default true. */
  readonly entryVmwriteTrims?: boolean;
  /** L0 uses EPT (kvm: enable_ept): GUEST_CR3 (and, before flag E, the PDPTRs) come from vmcs02; default true. */
  readonly ept?: boolean;
  /**
   * 2019 kernels on an MPX host read GUEST_BNDCFGS from vmcs02 (kvm v5.2/v5.3: kvm_mpx_supported()):
   * on every exit before flag C, in the rare sync after it. 6.12 never does. Default false.
   */
  readonly bndcfgsFromVmcs02?: boolean;
}

/**
 * The VMREADs `sync_vmcs02_to_vmcs12` does on every nested VM exit, in KVM's order: GUEST_CR0 and
 * CR0_READ_SHADOW, GUEST_CR4 and CR4_READ_SHADOW (merged with vmcs12 by the guest/host masks), then
 * fields copied as they are. With flags C and E and EPT (6.12): 10. All flags off (v5.2): 52 —
 * RFLAGS, 8 selectors, 10 limits, 8 AR bytes, 10 bases, interruptibility, pending debug exceptions,
 * CR3, PDPTR0–3, linear address, SYSENTER CS/ESP/EIP (kvm v5.2: sync_vmcs12).
 */
export function exitSyncFields(options: ExitSyncOptions = {}): readonly ShadowField[] {
  const lazy = options.lazyRareGuestSync ?? true;
  const trims = options.entryVmwriteTrims ?? true;
  const ept = options.ept ?? true;
  const out: ShadowField[] = [GUEST_CR0, CR0_READ_SHADOW, GUEST_CR4, CR4_READ_SHADOW, RFLAGS];
  if (lazy) {
    // kvm ≥ v5.3: CS/SS AR bytes stay on the always-path (they give CPL and 64-bit mode).
    out.push(CS_AR, SS_AR, INTERRUPTIBILITY);
  } else {
    out.push(...SEGMENT_SELECTORS, ...SEGMENT_LIMITS, ...SEGMENT_AR_BYTES, ...SEGMENT_BASES);
    out.push(INTERRUPTIBILITY, PENDING_DBG);
  }
  if (ept) {
    out.push(CR3);
    // kvm v5.2: PDPTRs read whenever EPT is on; flag E reads them only with nested EPT + PAE paging.
    if (!trims) out.push(...PDPTRS);
  }
  out.push(LINEAR_ADDRESS);
  // kvm v5.2: SYSENTER MSRs read back on every exit; flag E keeps vmcs12 current on L2's WRMSR.
  if (!trims) out.push(...SYSENTER);
  if (!lazy && (options.bndcfgsFromVmcs02 ?? false)) out.push(BNDCFGS);
  return Object.freeze(out);
}

/**
 * What `sync_vmcs02_to_vmcs12_rare` reads (after flag C): the 35 fields of 6.12, plus GUEST_BNDCFGS
 * for a 2019 kernel on an MPX host. Empty without flag C (nothing is deferred).
 */
export function rareSyncFields(options: ExitSyncOptions = {}): readonly ShadowField[] {
  if (!(options.lazyRareGuestSync ?? true)) return Object.freeze([]);
  return Object.freeze(
    options.bndcfgsFromVmcs02 ? [...RARE_GUEST_SYNC_FIELDS, BNDCFGS] : [...RARE_GUEST_SYNC_FIELDS],
  );
}

export interface ShadowVmcsSyncOptions extends ExitSyncOptions {
  /** KVM's controls shadow for this vCPU; its processor is the one every instruction runs on. */
  readonly controls: ControlsShadow;
  /** L1's VMCS as L0 runs it (kvm: vmx->vmcs01). */
  readonly vmcs01: HardwareVmcs;
  /** The VMCS L0 runs L2 on (kvm: vmx->nested.vmcs02). */
  readonly vmcs02: HardwareVmcs;
  /**
   * The shadow VMCS KVM allocated for vmcs01 (kvm: vmcs01.shadow_vmcs; its shadow-VMCS indicator
   * must be set), or null when L0 does not use VMCS shadowing (kvm: enable_shadow_vmcs = 0).
   */
  readonly shadowVmcs: HardwareVmcs | null;
  /** Flag A; default true. */
  readonly readOnlyShadowFields?: boolean;
  /** Flag B; default true. */
  readonly precomputedShadowOffsets?: boolean;
  /** Flag F (pin controls shadow-RW); default true. */
  readonly controlsShadow?: boolean;
  /** Host VMX features that decide which RW fields exist; default all present. */
  readonly host?: ShadowHostFeatures;
  /** L1's IA32_VMX_MISC bit 29, "VMWRITE to any supported field" (default true, as KVM offers it). */
  readonly l1VmwriteAnyField?: boolean;
}

/**
 * One vCPU's vmcs12 ↔ shadow VMCS ↔ vmcs02 synchronisation, with KVM's three flags
 * `need_vmcs12_to_shadow_sync`, `dirty_vmcs12` and `need_sync_vmcs02_to_vmcs12_rare`.
 */
export class ShadowVmcsSync implements NestedSyncPort {
  readonly processor: VmcsProcessor;
  readonly controls: ControlsShadow;
  readonly vmcs01: HardwareVmcs;
  readonly vmcs02: HardwareVmcs;
  readonly shadowVmcs: HardwareVmcs | null;
  readonly readOnlyShadowFields: boolean;
  readonly precomputedShadowOffsets: boolean;
  readonly lazyRareGuestSync: boolean;
  readonly controlsShadow: boolean;
  readonly entryVmwriteTrims: boolean;
  readonly l1VmwriteAnyField: boolean;
  /** The header's lists and what `init_vmcs_shadow_fields` kept for this host. */
  readonly fields: ShadowFieldSet;
  /** The VMREAD/VMWRITE bitmaps vmcs01 points at (consulted by the processor running L1). */
  readonly bitmaps: VmcsShadowingBitmaps;
  /**
   * vmcs12 changed in a way the next nested VM entry must propagate with the full (rare) vmcs02
   * preparation (kvm: dirty_vmcs12). Set by VMPTRLD (`currentVmcsLoaded`) and by `markVmcs12Dirty`;
   * the nested VM entry clears it after `prepare_vmcs02_rare`.
   */
  dirtyVmcs12 = false;

  #needVmcs12ToShadowSync = false;
  #needRareSync = false;
  readonly #shadowToVmcs12: VmcsFieldList;
  readonly #vmcs12ToShadow: VmcsFieldList;
  readonly #exitSync: VmcsFieldList;
  readonly #rareSync: VmcsFieldList;
  readonly #counts: Float64Array | null;

  constructor(options: ShadowVmcsSyncOptions) {
    this.controls = options.controls;
    this.processor = options.controls.processor;
    this.vmcs01 = options.vmcs01;
    this.vmcs02 = options.vmcs02;
    this.shadowVmcs = options.shadowVmcs;
    this.readOnlyShadowFields = options.readOnlyShadowFields ?? true;
    this.precomputedShadowOffsets = options.precomputedShadowOffsets ?? true;
    this.lazyRareGuestSync = options.lazyRareGuestSync ?? true;
    this.controlsShadow = options.controlsShadow ?? true;
    this.entryVmwriteTrims = options.entryVmwriteTrims ?? true;
    this.l1VmwriteAnyField = options.l1VmwriteAnyField ?? true;
    const shadow = this.shadowVmcs;
    if (shadow !== null) {
      if (!shadow.shadow) {
        throw new Error(`${shadow.describe()} lacks the shadow-VMCS indicator (kvm: alloc_vmcs(true))`);
      }
      // kvm: cpu_has_vmx_shadow_vmcs — shadowing is used only if VMWRITE can fill the RO fields.
      if (!this.processor.vmcsShadowing || !this.processor.vmwriteAnyField) {
        throw new Error(
          "VMCS shadowing needs a processor with the shadow-VMCS control and VMWRITE to any field " +
            "(kvm: cpu_has_vmx_shadow_vmcs); pass shadowVmcs: null for enable_shadow_vmcs = 0",
        );
      }
    }
    this.fields = shadowFieldSet(
      { readOnlyShadowFields: this.readOnlyShadowFields, controlsShadow: this.controlsShadow },
      options.host ?? FULL_SHADOW_HOST,
    );
    this.bitmaps = VmcsShadowingBitmaps.forKvm(
      {
        readOnlyShadowFields: this.readOnlyShadowFields,
        controlsShadow: this.controlsShadow,
        l1VmwriteAnyField: this.l1VmwriteAnyField,
      },
      this.fields,
    );
    // kvm v5.2 copy_shadow_to_vmcs12: RW, then RO when L1 may VMWRITE them; flag A: RW only.
    const copyBackRo = !this.readOnlyShadowFields && this.l1VmwriteAnyField;
    this.#shadowToVmcs12 = new VmcsFieldList([
      ...this.fields.rwCopy,
      ...(copyBackRo ? this.fields.roCopy : []),
    ]);
    // kvm: copy_vmcs12_to_shadow — RW then RO, in every era.
    this.#vmcs12ToShadow = new VmcsFieldList([...this.fields.rwCopy, ...this.fields.roCopy]);
    const exitOptions: ExitSyncOptions = {
      lazyRareGuestSync: this.lazyRareGuestSync,
      entryVmwriteTrims: this.entryVmwriteTrims,
      ept: options.ept ?? true,
      bndcfgsFromVmcs02: options.bndcfgsFromVmcs02 ?? false,
    };
    // The first four entries are the CR0/CR4 merge reads, done separately.
    this.#exitSync = new VmcsFieldList(exitSyncFields(exitOptions).slice(4));
    this.#rareSync = new VmcsFieldList(rareSyncFields(exitOptions));
    this.#counts = meterTable(this.processor.meter);
  }

  /** L0 gives L1 hardware VMCS shadowing (kvm: enable_shadow_vmcs). */
  get shadowingEnabled(): boolean {
    return this.shadowVmcs !== null;
  }

  /** kvm: need_vmcs12_to_shadow_sync — the shadow VMCS must be refreshed before L1 runs again. */
  get needVmcs12ToShadowSync(): boolean {
    return this.#needVmcs12ToShadowSync;
  }

  /** kvm: need_sync_vmcs02_to_vmcs12_rare — vmcs12's rare guest fields are stale (flag C). */
  get needSyncVmcs02ToVmcs12Rare(): boolean {
    return this.#needRareSync;
  }

  /** Number of fields each shadow copy moves, for reports: [shadow → vmcs12, vmcs12 → shadow]. */
  get copyLengths(): readonly [number, number] {
    return [this.#shadowToVmcs12.length, this.#vmcs12ToShadow.length];
  }

  /** kvm: is_shadow_field_rw — membership in the header's RW list (not filtered by host features). */
  isShadowRw(encoding: number): boolean {
    return this.fields.isRw(encoding);
  }

  /** kvm: is_shadow_field_ro — membership in the header's RO list. */
  isShadowRo(encoding: number): boolean {
    return this.fields.isRo(encoding);
  }

  /** kvm: is_vmcs12_ext_field with flag C; without it nothing is ever deferred, so false. */
  isRareField(encoding: number): boolean {
    return this.lazyRareGuestSync && isVmcs12ExtField(encoding);
  }

  /** An intercepted L1 VMWRITE touched a field that is not shadow-RW (kvm: handle_vmwrite). */
  markVmcs12Dirty(): void {
    this.dirtyVmcs12 = true;
  }

  /**
   * A nested VM exit (or a failed nested VM entry) reported to L1: with shadowing, refresh the shadow
   * VMCS before L1 next runs (kvm: nested_vmx_vmexit sets need_vmcs12_to_shadow_sync).
   */
  requestVmcs12ToShadowSync(): void {
    if (this.shadowVmcs !== null) this.#needVmcs12ToShadowSync = true;
  }

  /**
   * kvm: copy_shadow_to_vmcs12 — VMPTRLD the shadow VMCS, VMREAD each copied field into vmcs12,
   * VMCLEAR the shadow VMCS, VMPTRLD the VMCS that was current. With flag A the RW fields (24);
   * without it RW + RO (25 + 9 = 34) when L1 may VMWRITE RO fields. Nothing without shadowing.
   */
  copyShadowToVmcs12(vmcs12: Vmcs12): void {
    const shadow = this.shadowVmcs;
    if (shadow === null) return;
    const previous = this.#loadShadow(shadow);
    const cpu = this.processor;
    const list = this.#shadowToVmcs12;
    const { encodings, widths } = list;
    const n = list.length;
    if (this.precomputedShadowOffsets) {
      cpu.vmreadIntoVmcs12(list, vmcs12);
    } else {
      const era = vmcs12.era;
      for (let i = 0; i < n; i++) {
        const encoding = encodings[i]!;
        const lo = cpu.vmread(encoding);
        const hi = cpu.hi;
        // kvm v5.2: vmcs12_write_any → vmcs_field_to_offset for every field.
        this.#tally(EV_OFFSET_LOOKUP, 1);
        const offset = vmcs12FieldOffset(encoding, era);
        if (offset >= 0) vmcs12.writeAt(offset, widths[i]! as FieldWidth, lo, hi);
      }
    }
    this.#tally(EV_VMCS12_WRITE, n);
    this.#releaseShadow(shadow, previous);
  }

  /**
   * kvm: copy_vmcs12_to_shadow — VMPTRLD the shadow VMCS, VMWRITE each RW then RO field from vmcs12
   * (24 + 11 = 35 in 6.12; 25 + 9 = 34 in v5.2), VMCLEAR it, VMPTRLD the VMCS that was current.
   * Nothing without shadowing.
   */
  copyVmcs12ToShadow(vmcs12: Vmcs12): void {
    const shadow = this.shadowVmcs;
    if (shadow === null) return;
    const previous = this.#loadShadow(shadow);
    const cpu = this.processor;
    const list = this.#vmcs12ToShadow;
    const { encodings, widths } = list;
    const n = list.length;
    if (this.precomputedShadowOffsets) {
      cpu.vmwriteFromVmcs12(list, vmcs12);
    } else {
      const era = vmcs12.era;
      for (let i = 0; i < n; i++) {
        const encoding = encodings[i]!;
        // kvm v5.2: vmcs12_read_any → vmcs_field_to_offset for every field.
        this.#tally(EV_OFFSET_LOOKUP, 1);
        const offset = vmcs12FieldOffset(encoding, era);
        if (offset < 0) continue;
        const lo = vmcs12.readAt(offset, widths[i]! as FieldWidth);
        cpu.vmwrite(encoding, lo, vmcs12.hi);
      }
    }
    this.#tally(EV_VMCS12_READ, n);
    this.#releaseShadow(shadow, previous);
  }

  /**
   * Before L1 runs (kvm: vmx_prepare_switch_to_guest → nested_sync_vmcs12_to_shadow): copy vmcs12 to
   * the shadow VMCS if a sync is pending, and clear the request. Returns whether it copied.
   */
  syncVmcs12ToShadow(vmcs12: Vmcs12): boolean {
    if (!this.#needVmcs12ToShadowSync) return false;
    this.copyVmcs12ToShadow(vmcs12);
    this.#needVmcs12ToShadowSync = false;
    return true;
  }

  /**
   * kvm: copy_vmcs02_to_vmcs12_rare — if a lazy sync is pending: VMPTRLD vmcs02, VMREAD the rare
   * guest fields into vmcs12, VMPTRLD vmcs01 (which must be current: L1 is running). Triggered by an
   * L1 VMREAD of an ext field, an L1 VMWRITE of a field that is not shadow-RW, releasing the
   * current VMCS, and saving nested state.
   */
  syncRareFieldsIfPending(vmcs12: Vmcs12): void {
    if (!this.#needRareSync) return;
    const cpu = this.processor;
    if (cpu.current !== this.vmcs01) {
      throw new Error("the rare vmcs02 sync runs in L1's context: vmcs01 must be the current VMCS");
    }
    this.#tally(EV_RARE_SYNC, 1);
    this.#vmptrld(this.vmcs02);
    this.#readFromCurrent(vmcs12, this.#rareSync);
    this.#needRareSync = false;
    this.#vmptrld(this.vmcs01);
  }

  /**
   * The unconditional part of `sync_vmcs02_to_vmcs12` on a nested VM exit, with vmcs02 current: with
   * flag C, mark the rare fields stale (counting the VMREADs deferred); merge GUEST_CR0/CR4 (kvm:
   * vmcs12_guest_cr0/cr4: bits L0 gave the guest from vmcs02's register, bits L1 owns from vmcs12,
   * the rest from vmcs02's read shadow); copy the other fields of `exitSyncFields`.
   * `cr0GuestOwnedBits`/`cr4GuestOwnedBits` are KVM's vcpu->arch.cr0/cr4_guest_owned_bits while L2
   * ran (control-register bits 31:0; the upper halves are reserved).
   */
  syncVmcs02ToVmcs12(vmcs12: Vmcs12, cr0GuestOwnedBits: number, cr4GuestOwnedBits: number): void {
    if (this.processor.current !== this.vmcs02) {
      throw new Error("sync_vmcs02_to_vmcs12 runs right after the exit: vmcs02 must be the current VMCS");
    }
    if (this.lazyRareGuestSync) {
      this.#needRareSync = true;
      this.#tally(EV_RARE_DEFERRED, this.#rareSync.length);
    }
    this.#mergeCr(vmcs12, GUEST_CR0, CR0_READ_SHADOW, CR0_GUEST_HOST_MASK, cr0GuestOwnedBits);
    this.#mergeCr(vmcs12, GUEST_CR4, CR4_READ_SHADOW, CR4_GUEST_HOST_MASK, cr4GuestOwnedBits);
    this.#readFromCurrent(vmcs12, this.#exitSync);
  }

  /**
   * One conditional field of the exit sync: VMREAD it from vmcs02 (current) into vmcs12
   * (e.g. PDPTR0–3 with nested EPT and PAE paging, GUEST_INTR_STATUS with virtual-interrupt delivery).
   * Throws a RangeError if vmcs12 does not store the field.
   */
  syncFieldFromVmcs02(vmcs12: Vmcs12, encoding: number): void {
    if (this.processor.current !== this.vmcs02) {
      throw new Error("sync_vmcs02_to_vmcs12 runs right after the exit: vmcs02 must be the current VMCS");
    }
    const offset = vmcs12.offsetOf(encoding);
    if (offset < 0) throw new RangeError(`vmcs12 does not store field 0x${encoding.toString(16)}`);
    const lo = this.processor.vmread(encoding);
    vmcs12.writeAt(offset, vmcsFieldWidth(encoding), lo, this.processor.hi);
    this.#tally(EV_VMCS12_WRITE, 1);
  }

  /**
   * kvm: set_current_vmptr — L1's VMPTRLD made `vmcs12` current: vmcs12 is dirty, and with
   * shadowing vmcs01 (current) gets the SHADOW_VMCS control and a link pointer to the shadow VMCS,
   * and the shadow VMCS must be filled before L1 runs.
   */
  currentVmcsLoaded(_vmcs12: Vmcs12): void {
    const shadow = this.shadowVmcs;
    if (shadow !== null) {
      this.#requireVmcs01("set_current_vmptr");
      this.controls.secondaryExec.setbit(SHADOW_VMCS_CONTROL);
      this.processor.vmwrite(VMCS_LINK_POINTER, shadow.address >>> 0, Math.floor(shadow.address / 2 ** 32));
      this.#needVmcs12ToShadowSync = true;
    }
    this.dirtyVmcs12 = true;
  }

  /**
   * kvm: nested_release_vmcs12 (L1's VMCLEAR of the current VMCS, or VMPTRLD of another): finish a
   * pending rare sync, pull L1's shadow writes into vmcs12, and turn shadowing off in vmcs01
   * (kvm: vmx_disable_shadow_vmcs: clear SHADOW_VMCS, link pointer −1, no sync pending). Flushing
   * vmcs12 to L1's memory is the caller's.
   */
  currentVmcsReleased(vmcs12: Vmcs12): void {
    this.syncRareFieldsIfPending(vmcs12);
    if (this.shadowVmcs === null) return;
    this.#requireVmcs01("nested_release_vmcs12");
    this.copyShadowToVmcs12(vmcs12);
    this.disableShadowing();
  }

  /**
   * kvm: vmx_disable_shadow_vmcs: clear SHADOW_VMCS in vmcs01's secondary controls, set the VMCS
   * link pointer to −1, and drop any pending vmcs12 → shadow copy. Does nothing without shadowing.
   */
  disableShadowing(): void {
    if (this.shadowVmcs === null) return;
    this.#requireVmcs01("vmx_disable_shadow_vmcs");
    this.controls.secondaryExec.clearbit(SHADOW_VMCS_CONTROL);
    this.processor.vmwrite(VMCS_LINK_POINTER, 0xffffffff, 0xffffffff);
    this.#needVmcs12ToShadowSync = false;
  }

  /**
   * kvm ≥ v5.3 handle_vmwrite: an intercepted L1 VMWRITE of a shadow-RO field also goes to the shadow
   * VMCS (VMPTRLD shadow, VMWRITE, VMCLEAR shadow, VMPTRLD back) so L1's next un-intercepted VMREAD
   * sees it. Does nothing for another field, without shadowing, or without flag A (v5.2 had no
   * write-through: RO fields were never intercepted for VMWRITE while L1 could write them).
   */
  writeThroughReadOnly(encoding: number, lo: number, hi: number): void {
    const shadow = this.shadowVmcs;
    if (shadow === null || !this.readOnlyShadowFields || !this.fields.isRo(encoding)) return;
    const previous = this.#loadShadow(shadow);
    this.processor.vmwrite(encoding, lo, hi);
    this.#releaseShadow(shadow, previous);
  }

  /** VMREADs a list from the current VMCS into vmcs12 at precomputed offsets (fixed KVM code). */
  #readFromCurrent(vmcs12: Vmcs12, list: VmcsFieldList): void {
    this.processor.vmreadIntoVmcs12(list, vmcs12);
    this.#tally(EV_VMCS12_WRITE, list.length);
  }

  /** kvm: vmcs12_guest_cr0 / vmcs12_guest_cr4. */
  #mergeCr(
    vmcs12: Vmcs12,
    register: ShadowField,
    readShadow: ShadowField,
    mask: ShadowField,
    guestOwned: number,
  ): void {
    const cpu = this.processor;
    const natural = FIELD_WIDTH.NATURAL;
    // Bits 63:32 of CR0/CR4 are reserved: no guest-owned bit there, so the register's high half
    // does not contribute.
    const regLo = cpu.vmread(register.encoding);
    const shadowLo = cpu.vmread(readShadow.encoding);
    const shadowHi = cpu.hi;
    const maskLo = vmcs12.readAt(mask.offset, natural);
    const maskHi = vmcs12.hi;
    const oldLo = vmcs12.readAt(register.offset, natural);
    const oldHi = vmcs12.hi;
    const owned = guestOwned >>> 0;
    const lo = ((regLo & owned) | (oldLo & maskLo) | (shadowLo & ~(maskLo | owned))) >>> 0;
    const hi = ((oldHi & maskHi) | (shadowHi & ~maskHi)) >>> 0;
    vmcs12.writeAt(register.offset, natural, lo, hi);
    this.#tally(EV_VMCS12_READ, 2);
    this.#tally(EV_VMCS12_WRITE, 1);
  }

  /** VMPTRLD the shadow VMCS; returns the VMCS that was current (kvm: vmcs_load(shadow_vmcs)). */
  #loadShadow(shadow: HardwareVmcs): HardwareVmcs {
    const previous = this.processor.current;
    if (previous === null) throw new Error("a shadow-VMCS copy needs KVM's loaded VMCS to be current");
    this.#vmptrld(shadow);
    return previous;
  }

  /** VMCLEAR the shadow VMCS, VMPTRLD the VMCS that was current (kvm: vmcs_clear + vmcs_load). */
  #releaseShadow(shadow: HardwareVmcs, previous: HardwareVmcs): void {
    const result = this.processor.vmclear(shadow.address);
    if (result !== VMX_RESULT.SUCCEED) throw new Error(`VMCLEAR of ${shadow.describe()} failed (${result})`);
    this.#vmptrld(previous);
  }

  #vmptrld(vmcs: HardwareVmcs): void {
    const result = this.processor.vmptrld(vmcs.address);
    if (result !== VMX_RESULT.SUCCEED) throw new Error(`VMPTRLD of ${vmcs.describe()} failed (${result})`);
  }

  #requireVmcs01(what: string): void {
    if (this.processor.current !== this.vmcs01 || this.controls.loaded !== this.vmcs01) {
      throw new Error(`${what} runs in L1's context: vmcs01 must be current and loaded`);
    }
  }

  #tally(event: number, n: number): void {
    const counts = this.#counts;
    if (counts !== null) counts[event] = counts[event]! + n;
    else this.processor.meter.count(event, n);
  }
}
