// @ts-check
/**
 * The smallest model module: the project's KVM model under another name. Start here to compose a
 * model of your own — replace `createMachine`, or add hooks (see ./README.md).
 *
 *   nestvisor-test-suite --model examples/models/kvm.mjs
 *
 * @param {import("../../apps/test-suite/src/model").ModelKit} kit
 * @returns {import("../../apps/test-suite/src/model").ModelFactory}
 */
export default function kvmExample(kit) {
  return {
    ...kit.defaultModel,
    name: "kvm-example",
    description: "the project's KVM model, loaded as a user module",
  };
}
