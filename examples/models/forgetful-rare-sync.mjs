// @ts-check
/**
 * A deliberately broken model for nestvisor-test-suite: its lazy vmcs02 → vmcs12 sync forgets a
 * field.
 *
 * With lazy rare-field sync (seed 003 flag C, `lazyRareGuestSync`), KVM reads 35 rarely used guest
 * fields from vmcs02 only when L1 needs them (kvm: copy_vmcs02_to_vmcs12_rare). This model's
 * `syncRareFieldsIfPending` leaves GUEST_ES_SELECTOR out, so after a nested VM exit L1 reads the
 * selector it wrote before the entry instead of the one L2 left. The `nested` suite reports it:
 *
 *   nestvisor-test-suite --model examples/models/forgetful-rare-sync.mjs --filter '^nested/'
 *
 * With `--flag lazyRareGuestSync=off` (every exit reads every field) the bug has nowhere to hide
 * and the suite passes: the flag is what makes the field list matter.
 *
 * @param {import("../../apps/test-suite/src/model").ModelKit} kit
 * @returns {import("../../apps/test-suite/src/model").ModelFactory}
 */
export default function forgetfulRareSync(kit) {
  const { ShadowVmcsSync, fieldByName } = kit.vmx;
  const forgotten = /** @type {{ encoding: number }} */ (fieldByName("GUEST_ES_SELECTOR")).encoding;

  class ForgetfulSync extends ShadowVmcsSync {
    /**
     * @override
     * @param {import("@nestvisor/vmx").Vmcs12} vmcs12
     */
    syncRareFieldsIfPending(vmcs12) {
      if (!this.needSyncVmcs02ToVmcs12Rare) return;
      const kept = vmcs12.read(forgotten);
      super.syncRareFieldsIfPending(vmcs12);
      vmcs12.write(forgotten, kept); // the bug: this field's vmcs02 value is dropped
    }
  }

  return {
    ...kit.defaultModel,
    name: "forgetful-rare-sync",
    description: "KVM's model whose lazy rare-field sync forgets GUEST_ES_SELECTOR (a deliberate bug)",
    hooks: { ...kit.defaultModel.hooks, shadowVmcsSync: (options) => new ForgetfulSync(options) },
  };
}
