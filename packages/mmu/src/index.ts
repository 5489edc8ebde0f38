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
export { INVALID_ROOT, NO_SHADOW_PAGE, type RootBackend } from "./root-backend";
