export { ACCESS, type AccessKind, accessOf, PAGE_ACCESS } from "./access";
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
  type RegisterLayout,
} from "./bit-register";
export { type CpuFeatures, cpuFeatures, MODERN_CPU, reservedAddressMaskHigh } from "./cpu-features";
export { CR0, CR0_LAYOUT } from "./cr0";
export { DENSE_MEMORY_MAX_BYTES, DenseMemory } from "./dense-memory";
export { loadPdptes, PDPTE_RESERVED_LO, type PdpteLoad } from "./pae-pdpte";
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
export { HOST_IS_LITTLE_ENDIAN, type PhysicalMemory } from "./physical-memory";
export { SparseMemory } from "./sparse-memory";
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
