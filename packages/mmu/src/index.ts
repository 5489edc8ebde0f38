export { decodeExtendedRole, EXT_ROLE, type ExtendedRoleFields, encodeExtendedRole } from "./extended-role";
export { HostPageAllocator, type HostPageAllocatorOptions } from "./host-page-allocator";
export {
  MEMSLOT_CHANGE,
  type Memslot,
  type MemslotChange,
  type MemslotChangeKind,
  type MemslotListener,
  type MemslotSpec,
  Memslots,
} from "./memslots";
export { MMU_EVENTS, type MmuEventName } from "./mmu-events";
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
export { INVALID_ROOT, NO_SHADOW_PAGE, type RootBackend } from "./root-backend";
export { type ShadowPageInfo, SP_FLAG, SP_HASH_BUCKETS, SP_HASH_SHIFT, spHashBucket } from "./shadow-page";
export { ShadowPageStore, type ShadowPageStoreOptions, type ZapAllFastHooks } from "./shadow-page-store";
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
} from "./spte";
export { TDP_MAP_RESULT, type TdpMapResult, TdpMmu, type TdpMmuOptions } from "./tdp-mmu";
export { TdpRootBackend } from "./tdp-root-backend";
