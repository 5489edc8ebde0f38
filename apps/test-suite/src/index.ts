/**
 * @nestvisor/test-suite: a conformance suite for hypervisor models built from the nestvisor packages,
 * in the spirit of kvm-unit-tests (issue 7). The runner library, the suites, the reports, the
 * `ModelFactory` interface a user's model implements (or a hypervisor `ModelSpec`, adapted by
 * `specModelFactory`), and the command behind `nestvisor-test-suite`.
 */
export { CaseRecorder, MAX_MESSAGES } from "./case-recorder";
export {
  type CommandIo,
  type ListedGroup,
  listedGroups,
  parseCommandLine,
  runCommand,
  USAGE,
  UsageError,
} from "./command";
export { KVM_MODEL } from "./kvm-model";
export { loadModel, MODEL_KIT, ModelLoadError, moduleArgument, resolveModelExport } from "./load-model";
export type {
  EntryChecker,
  ModelBaseline,
  ModelFactory,
  ModelHooks,
  ModelKit,
  ModelLevel,
  ModelMachine,
  ModelMachineOptions,
  ModelModuleArgument,
  ModelModuleExport,
} from "./model";
export { DEFAULT_PARTS, type ModelParts, modelParts } from "./model-parts";
export { Prng } from "./prng";
export { formatJunit, xmlEscape } from "./report-junit";
export { formatTap } from "./report-tap";
export { formatGroupLine, formatSuiteCounts, formatSummary, formatTextReport } from "./report-text";
export {
  DEFAULT_SEED,
  exitCodeOf,
  type GroupResult,
  type ProgressEvent,
  type RunOptions,
  type RunReport,
  type RunTotals,
  runGroup,
  runSuites,
  selectGroups,
  suiteContext,
  totalsOf,
  VERDICT,
  type Verdict,
} from "./runner";
export { policyNames, specModelFactory } from "./spec-model";
export type { CaseGroup, Suite, SuiteContext } from "./suite";
export {
  ACCESS_SUITE,
  AUDIT_SUITE,
  DIFFERENTIAL_SUITE,
  EPT_SUITE,
  MMU_SUITE,
  NESTED_SUITE,
  SHADOW_VMCS_SUITE,
  SUITES,
  VMX_CHECKS_SUITE,
  VMX_SUITE,
} from "./suites";
