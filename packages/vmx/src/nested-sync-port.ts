import type { Vmcs12 } from "./vmcs12";

/**
 * What KVM's emulation of L1's VMX instructions needs from the machinery that keeps vmcs12, the
 * hardware shadow VMCS and vmcs02 coherent (kvm: nested.c). The instruction emulation calls this
 * port; the shadow-VMCS module (`shadow-vmcs-sync.ts`) implements it, with the seed-003 flags
 * deciding how much work each call does. Keeping the seam here lets a user plug in another sync
 * policy (e.g. an enlightened-VMCS-style one) without touching the instruction emulation.
 */
export interface NestedSyncPort {
  /** L0 gives L1 hardware VMCS shadowing (kvm: enable_shadow_vmcs). */
  readonly shadowingEnabled: boolean;
  /** A field L1 reads and writes without exits when shadowing is on (kvm: is_shadow_field_rw). */
  isShadowRw(encoding: number): boolean;
  /** A field L1 reads without exits but whose writes are intercepted (kvm: is_shadow_field_ro). */
  isShadowRo(encoding: number): boolean;
  /** A rarely used guest field synced from vmcs02 only on demand (kvm: is_vmcs12_ext_field). */
  isRareField(encoding: number): boolean;
  /** Pull L1's un-intercepted writes from the shadow VMCS into vmcs12 (kvm: copy_shadow_to_vmcs12). */
  copyShadowToVmcs12(vmcs12: Vmcs12): void;
  /**
   * Make vmcs12's rare guest fields current before vmcs12 is read or dirtied in L1, if a lazy sync
   * is pending (kvm: copy_vmcs02_to_vmcs12_rare under need_sync_vmcs02_to_vmcs12_rare).
   */
  syncRareFieldsIfPending(vmcs12: Vmcs12): void;
  /**
   * A VMCS became current (kvm: set_current_vmptr): with shadowing, enable it in vmcs01 and
   * request a vmcs12 → shadow copy before L1 next runs.
   */
  currentVmcsLoaded(vmcs12: Vmcs12): void;
  /**
   * The current VMCS is being released (kvm: nested_release_vmcs12): finish a pending rare sync,
   * pull the shadow VMCS into vmcs12 (copy_shadow_to_vmcs12), and turn shadowing off. Writing
   * vmcs12 back to L1's memory is the caller's.
   */
  currentVmcsReleased(vmcs12: Vmcs12): void;
  /** Turn shadowing off in vmcs01 without any copy (kvm: vmx_disable_shadow_vmcs, from free_nested). */
  disableShadowing(): void;
  /**
   * vmcs12 changed in a way only the rare path of the next nested entry propagates (kvm:
   * `nested.dirty_vmcs12 = true`). The port owns the flag because the entry preparation that
   * consumes it lives beside it.
   */
  markVmcs12Dirty(): void;
  /** kvm: nested.dirty_vmcs12. */
  readonly dirtyVmcs12: boolean;
  /**
   * An intercepted L1 VMWRITE to a shadow-RO field: write the value through to the hardware
   * shadow VMCS so L1's next un-intercepted VMREAD sees it (kvm: handle_vmwrite).
   */
  writeThroughReadOnly(encoding: number, lo: number, hi: number): void;
}
