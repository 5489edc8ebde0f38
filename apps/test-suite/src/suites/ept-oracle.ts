import { EPT_ACCESS, EPT_OUTCOME, EPT_VIOLATION, type EptOutcome } from "@nestvisor/x86-arch";

/**
 * The expected outcome of one EPT walk, from the SDM (Vol. 3C 29.3.3: misconfigurations and
 * violations; Table 28-7: the qualification), written as a plain function over the entries the walk
 * meets, top level first. vmx-tests.md §8 tabulates the same rules as kvm-unit-tests checks them.
 */
export interface EptEntrySpec {
  lo: number;
  hi: number;
}

export interface EptExpectation {
  outcome: EptOutcome;
  /** Qualification of a violation (bits 0–8; advanced bits 9–11 are left out). */
  qualification: number;
}

export interface EptOracleOptions {
  /** Execute-only entries allowed (IA32_VMX_EPT_VPID_CAP bit 0). */
  readonly executeOnly: boolean;
  /** MAXPHYADDR: entry bits maxPhysAddr..51 are reserved. */
  readonly maxPhysAddr: number;
}

/** Memory types 2, 3 and 7 are reserved in a leaf's bits 5:3 (SDM 29.3.3.1). */
const BAD_MEMORY_TYPES = (1 << 2) | (1 << 3) | (1 << 7);

function reservedAddressBits(e: EptEntrySpec, maxPhysAddr: number): boolean {
  // Bits maxPhysAddr..51 of the entry (all in the high word for MAXPHYADDR ≥ 32).
  const mask = ((2 ** (52 - 32) - 1) & ~(2 ** (maxPhysAddr - 32) - 1)) >>> 0;
  return (e.hi & mask) !== 0;
}

/**
 * Walks `entries` (index 0 = the top level, `levels` of them at most; an entry with bit 7 at levels
 * 2–3 is a leaf) for `access` (EPT_ACCESS bits) and returns the outcome. `linear` is OR-ed into a
 * violation's qualification (bits 7–8, as the processor reports them).
 */
export function expectEptWalk(
  entries: readonly EptEntrySpec[],
  levels: number,
  access: number,
  linear: number,
  options: EptOracleOptions,
): EptExpectation {
  let and = 7;
  for (let i = 0; i < entries.length; i++) {
    const level = levels - i;
    const e = entries[i]!;
    const xwr = e.lo & 7;
    if (xwr === 0) return { outcome: EPT_OUTCOME.VIOLATION, qualification: access | linear };
    // Misconfigurations (SDM 29.3.3.1).
    if ((xwr & 3) === 2) return { outcome: EPT_OUTCOME.MISCONFIG, qualification: 0 };
    if (xwr === 4 && !options.executeOnly) return { outcome: EPT_OUTCOME.MISCONFIG, qualification: 0 };
    if (reservedAddressBits(e, options.maxPhysAddr))
      return { outcome: EPT_OUTCOME.MISCONFIG, qualification: 0 };
    const large = (level === 2 || level === 3) && (e.lo & 0x80) !== 0;
    const leaf = level === 1 || large;
    if (!leaf) {
      // Non-leaf: bits 7:3 reserved in a PML4E/PML5E, bits 6:3 in a PDPTE or PDE.
      const mask = level >= 4 ? 0xf8 : 0x78;
      if ((e.lo & mask) !== 0) return { outcome: EPT_OUTCOME.MISCONFIG, qualification: 0 };
    } else {
      if ((BAD_MEMORY_TYPES & (1 << ((e.lo >>> 3) & 7))) !== 0)
        return { outcome: EPT_OUTCOME.MISCONFIG, qualification: 0 };
      if (large) {
        const mask = level === 2 ? 0x001f_f000 : 0x3fff_f000;
        if ((e.lo & mask) !== 0) return { outcome: EPT_OUTCOME.MISCONFIG, qualification: 0 };
      }
    }
    and &= xwr;
    if (leaf) break;
  }
  const needed =
    ((access & EPT_ACCESS.READ) !== 0 ? 1 : 0) |
    ((access & EPT_ACCESS.WRITE) !== 0 ? 2 : 0) |
    ((access & EPT_ACCESS.FETCH) !== 0 ? 4 : 0);
  if ((and & needed) !== needed) {
    return { outcome: EPT_OUTCOME.VIOLATION, qualification: access | (and << 3) | linear };
  }
  return { outcome: EPT_OUTCOME.OK, qualification: 0 };
}

/** Qualification bits compared (kvm-unit-tests masks the advanced information, bits 9–11). */
export const QUALIFICATION_COMPARED = 0x1ff;

/** The GLA bits of a final-translation access (bits 7 and 8). */
export const FINAL_LINEAR = EPT_VIOLATION.GLA_VALID | EPT_VIOLATION.FINAL_TRANSLATION;
