export { ACCESS, type AccessKind, accessOf, PAGE_ACCESS } from "./access";
export { AccessCaseExpectation, accessCaseExpectedPa, expectAccessCase } from "./access-case-outcome";
export {
  ACCESS_CASE_ENTRY_GPAS,
  ACCESS_CASE_ENTRY_NAMES,
  ACCESS_CASE_FEATURES,
  ACCESS_CASE_LAYOUT,
  type AccessCaseCpu,
  type AccessCaseEntries,
  accessCaseAccess,
  accessCaseCpu,
  accessCasePagingContext,
  buildAccessCaseEntries,
  buildScenarioEntries,
  newAccessCaseEntries,
  type ScenarioPage,
} from "./access-case-setup";
export {
  ACCESS_CASE_FLAG,
  ACCESS_CASE_FLAG_COUNT,
  ACCESS_CASE_FLAG_NAMES,
  ACCESS_CASE_FREE_FLAGS,
  ACCESS_CASE_PKU_FLAGS,
  type AccessCaseFlagName,
  type AccessCaseSpace,
  type AccessCaseSpaceOptions,
  accessCaseAt,
  accessCaseIndex,
  accessCaseSliceSize,
  accessCaseSpace,
  describeAccessCase,
  forEachAccessCase,
  isLegalAccessCase,
} from "./access-case-space";
export {
  type Gpa,
  type Gva,
  gpa,
  gva,
  type Hpa,
  hpa,
  MAX_PHYSICAL_ADDRESS_BITS,
  PAGE_SHIFT,
  PAGE_SIZE,
  pfn,
} from "./address";
export {
  type BitField,
  type DecodedRegister,
  decodeRegister,
  definedMask,
  describeRegister,
  encodeRegister,
  type FieldDescription,
  type FieldValue,
  field,
  flag,
  type RegisterLayout,
} from "./bit-register";
export { type CpuFeatures, cpuFeatures, MODERN_CPU, reservedAddressMaskHigh } from "./cpu-features";
export { CR0, CR0_LAYOUT } from "./cr0";
export {
  CR3,
  CR3_HI,
  CR3_LAYOUT,
  CR3_OPERAND_HI,
  CR3_PCID_LAYOUT,
  type Cr3OperandSplit,
  type Cr3OperandSplitWords,
  cr3Base,
  cr3OperandNoFlush,
  cr3Pcid,
  MOV_CR3_OPERAND_LAYOUT,
  splitCr3Operand,
  splitCr3OperandWords,
} from "./cr3";
export { CR4, CR4_HI, CR4_LAYOUT } from "./cr4";
export { DEBUGCTL, DEBUGCTL_LAYOUT } from "./debugctl";
export { DENSE_MEMORY_MAX_BYTES, DenseMemory } from "./dense-memory";
export { DR7, DR7_LAYOUT, DR7_LEN, DR7_RESET, DR7_RW, dr7AsHeld, dr7LenShift, dr7RwShift } from "./dr7";
export { EFER, EFER_LAYOUT, eferInMode } from "./efer";
export {
  decodeEptCapabilities,
  EPT_CAP,
  EPT_CAP_MODELLED_LO,
  EPT_VPID_CAP_LAYOUT,
  type EptCapabilities,
  encodeEptCapabilities,
  eptCapabilities,
  MODERN_EPT_CAPABILITIES,
} from "./ept-capabilities";
export { createEptContext, type EptContext, type EptControls } from "./ept-context";
export {
  EPT_BAD_MEMORY_TYPES,
  EPT_ENTRY_LAYOUT,
  EPT_MISCONFIG,
  EPT_MISCONFIG_NAMES,
  EPTE_HI,
  EPTE_LO,
  type EptEntryRules,
  type EptMisconfig,
  type EptReservedMasks,
  eptEntryAddress,
  eptEntryIsLeaf,
  eptEntryMisconfiguration,
  eptEntryPresent,
  eptReservedMasks,
} from "./ept-entry";
export {
  checkEptPointer,
  decodeEptPointer,
  EPT_MEMORY_TYPE,
  EPTP,
  EPTP_LAYOUT,
  type EptMemoryType,
  type EptPointer,
  encodeEptPointer,
} from "./ept-pointer";
export {
  decodeEptViolationQualification,
  EPT_VIOLATION,
  EPT_VIOLATION_LAYOUT,
  type EptViolationFields,
  type EptViolationReporting,
  eptViolationQualification,
  summarizeEptViolation,
} from "./ept-violation";
export {
  EPT_ACCESS,
  EPT_OUTCOME,
  type EptOutcome,
  EptWalker,
  type EptWalkerOptions,
  EptWalkResult,
} from "./ept-walk";
export {
  CONTRIBUTORY_VECTORS,
  DOUBLE_FAULT_CLASS,
  type DoubleFaultClass,
  ERROR_CODE_VECTORS,
  EXCEPTION_CLASS,
  EXCEPTIONS,
  type ExceptionClass,
  type ExceptionInfo,
  type ExceptionVector,
  exceptionHasErrorCode,
  exceptionInfo,
  exceptionName,
  exceptionVector,
  raisesDoubleFault,
  VECTOR,
} from "./exceptions";
export {
  APIC_BASE,
  FEATURE_CONTROL,
  FEATURE_CONTROL_LAYOUT,
  IA32_PAT_RESET,
  isX2apicMsr,
  MSR,
  MSR_LIST,
  type MsrInfo,
  type MsrName,
  msrDescription,
  msrIndex,
  msrName,
  X2APIC_MSR_FIRST,
  X2APIC_MSR_LAST,
  x2apicMsrIndex,
} from "./msr";
export {
  isPaePaging,
  loadPdptes,
  loadPdptesInto,
  PDPTE_RESERVED_LO,
  type PdpteLoad,
  pdptAddress,
} from "./pae-pdpte";
export { PFERR, PFERR_LAYOUT, summarizePageFaultErrorCode } from "./page-fault";
export {
  AD_UPDATE,
  type AdUpdate,
  PageWalker,
  type PageWalkerOptions,
  STAGE2_KIND,
  type Stage2Kind,
  type Stage2Translator,
} from "./page-walk";
export { createPagingContext, type PagingContext, type PagingRegisters } from "./paging-context";
export {
  entryFrameAddress,
  entryProtectionKey,
  PAGE_1G,
  PAGE_2M,
  PAGE_4K,
  PAGE_4M,
  PTE_HI,
  PTE_LO,
  PTE32_LAYOUT,
  PTE64_LAYOUT,
} from "./paging-entry";
export { PAGING_LEVELS, PAGING_MODE, PAGING_MODE_NAMES, type PagingMode, pagingModeOf } from "./paging-mode";
export { accessRightsFault } from "./permission";
export { HOST_IS_LITTLE_ENDIAN, type PhysicalMemory, readWords, writeWords } from "./physical-memory";
export {
  type KeyRights,
  keyRights,
  PKEY,
  PKRS_LAYOUT,
  PKRU_LAYOUT,
  withKeyRights,
} from "./protection-key-rights";
export { registerLayout, registerNames } from "./register-catalog";
export { RFLAGS, RFLAGS_LAYOUT, RFLAGS_RESET } from "./rflags";
export {
  accessRightsFromDescriptor,
  descriptorAttributesFromAccessRights,
  SEGMENT_AR,
  SEGMENT_AR_LAYOUT,
  SEGMENT_TYPE,
} from "./segment-access-rights";
export { SparseMemory } from "./sparse-memory";
export {
  eptTagOf,
  INVEPT_TYPE,
  INVPCID_TYPE,
  INVVPID_TYPE,
  TLB_FLAG,
  TLB_INVALIDATION,
  TLB_INVALIDATION_NAMES,
  TLB_MAPPING,
  TLB_MISS,
  Tlb,
  type TlbEntry,
  type TlbInvalidation,
  type TlbInvalidationName,
  type TlbKindCounters,
  type TlbMapping,
  type TlbOptions,
  type TlbStats,
} from "./tlb";
export {
  EptStage2Translator,
  Stage2Fault,
  TwoDimensionalWalker,
  type TwoDimensionalWalkerOptions,
} from "./two-dimensional-walk";
export { formatHex64, fromBigInt64, hi32, join64, lo32, mask32, parseU64, toBigInt64 } from "./u64";
export {
  FAULT_STAGE,
  type FaultStage,
  GUEST_FAULT,
  type GuestFault,
  WALK_TRACE_CAPACITY,
  WalkResult,
  WalkTrace,
} from "./walk-result";
export { XCR0, XCR0_LAYOUT, XCR0_USER_COMPONENTS, XSS_SUPERVISOR_COMPONENTS } from "./xcr0";
