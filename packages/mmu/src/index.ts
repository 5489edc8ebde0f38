export { decodeExtendedRole, EXT_ROLE, type ExtendedRoleFields, encodeExtendedRole } from "./extended-role";
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
