export { auditMachine, type MachineAuditSummary } from "./audit-machine";
export {
  BUILTIN_LAYOUT,
  BUILTIN_PORTS,
  BUILTIN_WORKLOAD_NAMES,
  BUILTIN_WORKLOADS,
  type BuiltinParameter,
  type BuiltinParameterValues,
  type BuiltinWorkload,
  builtinWorkload,
  builtinWorkloadBuilder,
  findBuiltinWorkload,
  resolveBuiltinParameters,
} from "./builtin-workloads";
export {
  CALIBRATION_FACTS,
  type CalibrationCheck,
  type CalibrationFact,
  checkCalibration,
} from "./calibration";
export {
  ATTRIBUTION_LEVELS,
  CostAccumulator,
  type CostAccumulatorOptions,
  MAX_OPEN_EXITS,
  NO_EXIT,
  NO_EXIT_SLOT,
  OTHER_REASON_SLOT,
  REASON_SLOT_LIMIT,
  REASON_SLOTS,
  reasonSlot,
} from "./cost-accumulator";
export {
  type CostAttribution,
  costAttribution,
  type EventCycles,
  type ExitLatencyRow,
  type LatencyBucketRow,
  type ReasonCycles,
  reasonSlotName,
} from "./cost-attribution";
export {
  COST_CATALOGS,
  COST_EVENT_NAMES,
  type CostEventName,
  costEventId,
  isCostEventName,
} from "./cost-catalogs";
export {
  type CostEntry,
  type CostProfile,
  CostProfileError,
  type CostProfileIssue,
  costProvenance,
  formatProfileIssue,
  formatProfilePath,
  type ParseCostProfileOptions,
  type Provenance,
  parseCostProfile,
  parseCostProfileText,
  type TscRate,
} from "./cost-profile";
export {
  COST_PROFILE_NAMES,
  type CostProfileName,
  costProfile,
  DEFAULT_COST_PROFILE_NAME,
  flatCostProfile,
} from "./cost-profiles";
export { type CostTable, compileCostTable, cyclesOf, cyclesOfNamed } from "./cost-table";
export {
  EnlightenedVmcsAccess,
  EnlightenedVmcsSync,
  EVMCS_ALWAYS_COPIED,
  EVMCS_CLEAN,
  EVMCS_CLEAN_ALL,
  EVMCS_CLEAN_FIELDS_OFFSET,
  EVMCS_GROUP_FIELDS,
  EVMCS_WHOLE_MASK_FIELDS,
  EVMCS_WRITE_BACK_FIELDS,
  type EvmcsCleanGroupName,
  enlightenedVmcsPolicies,
  evmcsCopyGroup,
  evmcsDirtyMask,
} from "./enlightened-vmcs";
export {
  DEFAULT_SAMPLE_CAPACITY,
  type ExitLatencyOptions,
  ExitLatencyRecorder,
  LATENCY_BUCKETS,
  type LatencyPercentiles,
  latencyBucket,
  latencyBucketHigh,
  latencyBucketLow,
  nearestRank,
} from "./exit-latency";
export { LINUX_PAT, type MsrWords } from "./guest-boot-state";
export { GPR, GUEST_KIND, GuestContext, type GuestKind } from "./guest-context";
export {
  buildGuestPageTables,
  GuestPageTableError,
  type GuestPageTables,
  guestPageTablePages,
  type PageTableRegion,
} from "./guest-page-tables";
export { ExitInformation, HardwareVmxCpu } from "./hardware-vmx-cpu";
export type { KvmConfig } from "./hypervisor-config";
export {
  HYPERVISOR_EVENT_DESCRIPTIONS,
  HYPERVISOR_EVENTS,
  type HypervisorEventName,
} from "./hypervisor-events";
export {
  diffFlags,
  type FlagAssignment,
  FlagError,
  type FlagOverrides,
  formatFlags,
  HYPERVISOR_FLAG_INFO,
  HYPERVISOR_FLAG_NAMES,
  HYPERVISOR_SWITCH_DEFAULTS,
  HYPERVISOR_SWITCH_NAMES,
  type HypervisorFlagInfo,
  type HypervisorFlagKind,
  type HypervisorFlagName,
  type HypervisorFlags,
  type HypervisorSwitches,
  type HypervisorSwitchName,
  isHypervisorFlagName,
  KERNEL_BEHAVIOUR_DEFAULTS,
  KERNEL_BEHAVIOUR_NAMES,
  type KernelBehaviourName,
  type KernelBehaviours,
  mmuFlagsOf,
  OPTIMIZATION_FLAG_NAMES,
  parseFlagAssignment,
  parseFlagAssignments,
  VMX_FLAG_NAMES,
  type VmxFlagName,
  type VmxFlags,
  vmxFlagsOf,
  withFlags,
} from "./hypervisor-flags";
export { createModel, type HypervisorModel, type ModelSpec, modelFromModule } from "./hypervisor-model";
export { InKernelPic, inKernelPort, PM_TIMER_PORT, UserspaceDevices } from "./io-devices";
export {
  DEFAULT_PRESET_NAME,
  type FlagChange,
  isKernelPresetName,
  KERNEL_PRESET_NAMES,
  KERNEL_PRESETS,
  type KernelPreset,
  type KernelPresetName,
  kernelPreset,
  resolveFlags,
} from "./kernel-presets";
export {
  type GuestBootState,
  HYPERVISOR_BOOT_STATE,
  isPassthroughMsr,
  KVM_PAGE,
  KVM_PRIVATE_BYTES,
  Kvm,
  type KvmOptions,
  PASSTHROUGH_MSRS,
} from "./kvm";
export { KvmNested } from "./kvm-nested";
export { KVM_PHASE, type KvmPhase, type KvmPhaseInfo, kvmPhaseInfo } from "./kvm-phases";
export {
  SEGMENT,
  SEGMENT_FIELD,
  type SegmentField,
  type SegmentRegister,
  VcpuRegisterCache,
} from "./kvm-vcpu-registers";
export { Machine, type MachineOptions } from "./machine";
export {
  DOORBELL_ADDRESS,
  InKernelIoapic,
  IOAPIC_BASE,
  IOAPIC_LENGTH,
  inMmioWindow,
  MMIO_WINDOW_BASE,
  MMIO_WINDOW_END,
  MmioDevices,
  UserspaceMmio,
  VMM_REGISTERS_BASE,
} from "./mmio-devices";
export {
  type ExitReflectionPolicy,
  type ExitReflectionQuery,
  type GuestVmcsAccess,
  type GuestVmcsAccessContext,
  type GuestVmcsAccessFactory,
  hasNestedEntryHooks,
  type ModelPolicies,
  type NestedEntryHooks,
  type NestedSyncContext,
  type NestedSyncFactory,
} from "./model-policies";
export { msrBitmapIntercepts, writeMsrBitmap } from "./msr-bitmap";
export {
  NestedVmcsProcessor,
  NestedVmxCpu,
  type NestedVmxCpuOptions,
  offersVmcsShadowing,
  type ParentMemoryView,
} from "./nested-vmx-cpu";
export { CURSOR_END, ProgramCursor } from "./program-cursor";
export {
  type GuestStateSnapshot,
  guestStateSnapshot,
  type RunOptions,
  type RunResult,
  runWorkload,
} from "./run-workload";
export {
  type ChromeCompleteEvent,
  type ChromeInstantEvent,
  type ChromeMetadataEvent,
  type ChromeTrace,
  type ChromeTraceEvent,
  type ChromeTraceOptions,
  defaultTraceEventName,
  TRACE_PID,
  type TraceArgValue,
  type TraceTimeline,
  toChromeTraceEvents,
} from "./trace-events-export";
export {
  DEFAULT_TRACE_CAPACITY,
  MAX_TRACE_DEPTH,
  NOOP_TRACER,
  TimelineTracer,
  type TimelineTracerOptions,
  TRACE_KIND,
  TRACE_KIND_LIMIT,
  type TraceKind,
  type TraceRecord,
  type Tracer,
  traceKindName,
} from "./tracer";
export { TransitionLedger } from "./transition-ledger";
export { VMCS_FIELD } from "./vmcs-field-encodings";
export type { ExitSink, VmxCpu } from "./vmx-cpu";
export {
  type AccessOptions,
  type Cr3Target,
  STEP_OPCODE,
  StepsBuilder,
  WorkloadBuilder,
  type WriteOptions,
  workload,
} from "./workload-builder";
export {
  compileWorkload,
  DEFAULT_LEVEL,
  DEFAULT_MEMORY_BYTES,
  defaultControlRegisters,
  isCanonical,
  MAX_PROBLEMS,
  WorkloadBuildError,
  type WorkloadProblem,
} from "./workload-compiler";
export { RIP_BASE, WorkloadExecutor, WorkloadObservations } from "./workload-executor";
export {
  formatFileProblem,
  loadWorkload,
  parseWorkloadText,
  WORKLOAD_JSON_SCHEMA,
  WorkloadFileError,
  type WorkloadFileProblem,
} from "./workload-file";
export {
  type AddressSpaceLayout,
  COMPUTE_SLOT,
  CPUID_SLOT,
  type Cpl,
  CR_SLOT,
  CR3_FLAG,
  checkProgram,
  dynamicOpCounts,
  formatOperation,
  formatProgram,
  type GvaMapping,
  IO_SLOT,
  ITERATION_SLOT,
  isMemoryOp,
  isOpcode,
  LOOP_SLOT,
  MEM_SLOT,
  MSR_SLOT,
  OP,
  OP_NAMES,
  OPCODE_LIMIT,
  OPERAND_STRIDE,
  type Opcode,
  opCountsByName,
  operand,
  staticOpCounts,
  VMCALL_SLOT,
  type WorkloadLevel,
  type WorkloadProgram,
  type WorkloadSetup,
} from "./workload-ops";
export {
  type AccessSize,
  type AddressSpaceSpec,
  type Cr3Spec,
  type FieldInfo,
  type FieldKind,
  type FieldTable,
  type IoSize,
  type JsonValue,
  MAX_LOOP_DEPTH,
  MAX_MEMORY_BYTES,
  type MappingSpec,
  type MemoryAccessSpec,
  type NoOperands,
  PAGE_SIZE_NAMES,
  PAGING_NAMES,
  type PageSizeName,
  type PagingName,
  parseByteSize,
  type SetupSpec,
  STEP_NAMES,
  STEP_TABLE,
  type StepInfo,
  type StepName,
  type StepSpec,
  type U64,
  type WorkloadSpec,
  type WriteSpec,
  workloadDocument,
  workloadToJson,
} from "./workload-spec";
