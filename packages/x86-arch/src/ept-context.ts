import type { EptCapabilities } from "./ept-capabilities";
import { type EptEntryRules, eptReservedMasks } from "./ept-entry";
import { checkEptPointer, decodeEptPointer } from "./ept-pointer";

/** The VMCS state an EPT walk depends on. */
export interface EptControls {
  /** The EPT-pointer field, low and high words. */
  readonly eptpLo: number;
  readonly eptpHi: number;
  /** The "mode-based execute control for EPT" secondary VM-execution control (bit 22). */
  readonly modeBasedExecute?: boolean;
}

/**
 * Everything an EPT walk needs, computed once per EPTP or control change (the EPT counterpart of
 * `PagingContext`): levels, root, the A/D and shadow-stack switches, the capabilities that change
 * the entry checks, and the reserved-bit masks per level.
 */
export interface EptContext extends EptEntryRules {
  /** 4 or 5. */
  readonly levels: 4 | 5;
  /** Host-physical address of the EPT PML4 or PML5 table. */
  readonly root: number;
  /** EPTP bit 6: accessed/dirty flags are maintained, and guest paging-structure accesses count as writes. */
  readonly accessedDirty: boolean;
  /** EPTP bit 7: supervisor shadow-stack control. */
  readonly supervisorShadowStack: boolean;
  /** IA32_VMX_EPT_VPID_CAP bit 22: qualification bits 11:9 are reported. */
  readonly advancedExitInfo: boolean;
  readonly maxPhysAddr: number;
  readonly caps: EptCapabilities;
  readonly eptpLo: number;
  readonly eptpHi: number;
}

/**
 * Builds the walk context for an EPTP. An EPTP that VM entry would reject (SDM 27.2.1.1) has no
 * walk: this throws a RangeError with the reason `checkEptPointer` gives.
 */
export function createEptContext(
  controls: EptControls,
  caps: EptCapabilities,
  maxPhysAddr: number,
): EptContext {
  const { eptpLo, eptpHi } = controls;
  const invalid = checkEptPointer(eptpLo, eptpHi, caps, maxPhysAddr);
  if (invalid !== null) throw new RangeError(invalid);
  const eptp = decodeEptPointer(eptpLo, eptpHi);
  const { lo, hi } = eptReservedMasks(maxPhysAddr, caps);
  return Object.freeze({
    levels: eptp.walkLength as 4 | 5,
    root: eptp.root,
    accessedDirty: eptp.accessedDirty,
    supervisorShadowStack: eptp.supervisorShadowStack,
    advancedExitInfo: caps.advancedExitInfo,
    executeOnly: caps.executeOnly,
    modeBasedExecute: controls.modeBasedExecute ?? false,
    reservedLo: lo,
    reservedHi: hi,
    maxPhysAddr,
    caps,
    eptpLo: eptpLo >>> 0,
    eptpHi: eptpHi >>> 0,
  });
}
