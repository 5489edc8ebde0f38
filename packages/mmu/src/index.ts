export {
  AUDIT_FORMAT,
  AUDIT_PRESENCE,
  AUDIT_PROBLEM,
  AuditError,
  type AuditFormat,
  type AuditInconsistency,
  type AuditPresence,
  type AuditProblem,
  type AuditResult,
  type AuditStats,
  assertAuditClean,
  auditTables,
  TableAuditor,
  type TableAuditorOptions,
} from "./audit";
export {
  describeRights,
  eptRightsToAcc,
  ReferenceMapping,
  ReferenceTable,
  type ReferenceTranslator,
  throughMemslots,
} from "./audit-reference";
export {
  type CpuRoleFields,
  cpuRoleBase,
  cpuRoleExt,
  cpuRoleToBigInt,
  decodeCpuRole,
  formatCpuRole,
  MMU_CR0_ROLE_BITS,
  MMU_CR4_ROLE_BITS,
  MMU_CR4_ROLE_BITS_PRE_5_16,
  MMU_CR4_ROLE_BITS_PRE_5_18,
  MMU_EFER_ROLE_BITS,
  MMU_EFER_ROLE_BITS_PRE_5_18,
  parseCpuRole,
} from "./cpu-role";
export { eptOnEptReference } from "./ept-on-ept-reference";
export { decodeExtendedRole, EXT_ROLE, type ExtendedRoleFields, encodeExtendedRole } from "./extended-role";
export { HostPageAllocator, type HostPageAllocatorOptions } from "./host-page-allocator";
export { maxMappingLevel, PAGES_PER_2M } from "./huge-page-level";
export { MemslotMemory } from "./memslot-memory";
export {
  MEMSLOT_CHANGE,
  type Memslot,
  type MemslotChange,
  type MemslotChangeKind,
  type MemslotListener,
  type MemslotSpec,
  Memslots,
} from "./memslots";
export { MmioCache } from "./mmio-cache";
export {
  EPT_MMIO_SPTE_VALUE,
  isMmioSpte,
  MMIO_GENERATION_MASK,
  mmioSpteAccess,
  mmioSpteGeneration,
  mmioSpteGfn,
  mmioSpteHi,
  mmioSpteLo,
  writeMmioSpte,
} from "./mmio-spte";
export {
  INVALID_PGD,
  KVM_MMU_NUM_PREV_ROOTS,
  KVM_MMU_ROOT,
  kvmMmuRootPrevious,
  kvmMmuRootsAll,
  MAX_PREV_ROOTS,
  MMU_CONTEXT_KIND,
  MMU_FLAVOUR,
  MmuContext,
  type MmuContextKind,
  MmuContextStats,
  type MmuContextStatsSnapshot,
  type MmuFlavour,
  type RootSlot,
} from "./mmu-context";
export { MMU_EVENTS, type MmuEventName } from "./mmu-events";
export {
  DEFAULT_MMU_FLAGS,
  diffMmuFlags,
  MMU_FLAG_INFO,
  MMU_FLAG_NAMES,
  MMU_FLAG_PRESETS,
  type MmuFlagInfo,
  type MmuFlagName,
  type MmuFlagPresetName,
  type MmuFlags,
  mmuFlagPreset,
  mmuFlags,
} from "./mmu-flags";
export {
  type GuestCpuModel,
  type HostMmuModel,
  initNestedMmu,
  initShadowEptMmu,
  initShadowMmu,
  initTdpMmu,
  type MmuInitEnv,
  refreshPassthroughBits,
  resetGuestPagingMetadata,
} from "./mmu-init";
export { describeMmuRequests, MMU_REQUEST, MMU_REQUEST_TLB_FLUSH, type MmuRequest } from "./mmu-request";
export {
  ACC,
  childRole,
  decodePageRole,
  encodePageRole,
  PAGE_ROLE,
  type PageRoleFields,
  roleLevel,
} from "./page-role";
export {
  ACC_BYTE_MASK,
  PERMISSIONS_SIZE,
  permissionFault,
  pkruLoopRuns,
  updatePermissionBitmask,
  updatePkruBitmask,
} from "./permission-bitmask";
export {
  createRsvdBitsValidate,
  eptHugePageLevel,
  isReservedGpte,
  PG_LEVEL,
  ROOT_LEVEL,
  type RsvdBitsValidate,
  resetEptShadowZeroBitsMask,
  resetGuestRsvdsBitsMask,
  resetRsvdsBitsMask,
  resetRsvdsBitsMaskEpt,
  resetShadowZeroBitsMask,
  resetTdpShadowZeroBitsMask,
  rsvdMaskIndex,
} from "./reserved-bits";
export {
  calcRootPageRole,
  eptpAccessedDirty,
  eptpWalkLevel,
  shadowEptRoleBase,
  shadowEptRoleExt,
  shadowNptRootRole,
  shadowRootRole,
  tdpRootLevel,
  tdpRootRole,
} from "./role-calculation";
export { INVALID_ROOT, NO_SHADOW_PAGE, type RootBackend } from "./root-backend";
export {
  cachedRootFindAndKeepCurrent,
  cachedRootFindWithoutCurrent,
  fastPgdSwitch,
  isRootUsable,
  kvmMmuFreeGuestModeRoots,
  kvmMmuFreeObsoleteRoots,
  kvmMmuFreeRoots,
  kvmMmuLoad,
  kvmMmuNewPgd,
  kvmMmuReload,
  PGD_LOOKUP,
  type RootCacheEnv,
  rootsMatchingEptp,
} from "./root-cache";
export { KVM_ROOT_CACHE, kvmRootCacheWithSize, type RootCachePolicy } from "./root-cache-policy";
export { ShadowEptMmu } from "./shadow-ept-mmu";
export { SHADOW_FAULT, SHADOW_FAULT_NAMES, type ShadowFaultOutcome, ShadowFaultResult } from "./shadow-fault";
export { ShadowMmu, type ShadowMmuOptions, type SyncSpteSource } from "./shadow-mmu";
export { type ShadowPageInfo, SP_FLAG, SP_HASH_BUCKETS, SP_HASH_SHIFT, spHashBucket } from "./shadow-page";
export { ShadowPageStore, type ShadowPageStoreOptions, type ZapAllFastHooks } from "./shadow-page-store";
export { ShadowPagingMmu } from "./shadow-paging-mmu";
export { cr0WpAlternative, shadowPagingReference } from "./shadow-paging-reference";
export { ShadowRootBackend, type ShadowRootBackendOptions } from "./shadow-root-backend";
export {
  leafSpteHi,
  leafSpteLo,
  nonLeafSpteHi,
  nonLeafSpteLo,
  SPTE_FORMAT,
  SPTE_WRITABLE,
  type SpteFormat,
  spteAccess,
  writeProtectedSpteHi,
  writeProtectedSpteLo,
  X86_SPTE_HI,
  X86_SPTE_LO,
} from "./shadow-spte";
export {
  eptLeafSpteHi,
  eptLeafSpteLo,
  eptNonLeafSpteHi,
  eptNonLeafSpteLo,
  isLastSpte,
  isShadowPresentSpte,
  SPTE_HI,
  SPTE_LO,
  SPTES_PER_PAGE,
  spteAddress,
  spteIndex,
  TerminalSpte,
  walkToTerminalSpte,
} from "./spte";
export { TDP_MAP_RESULT, type TdpMapResult, TdpMmu, type TdpMmuOptions } from "./tdp-mmu";
export { tdpReference } from "./tdp-reference";
export { TdpRootBackend } from "./tdp-root-backend";
export {
  DEFAULT_GUEST_CPU,
  DEFAULT_HOST_MMU,
  DEFAULT_NESTED_EPT_CAPS,
  INVEPT_TYPE,
  type InveptType,
  type MmuRegisters,
  type NestedEntryState,
  type NestedEptCaps,
  VcpuMmu,
  type VcpuMmuOptions,
} from "./vcpu-mmu";
