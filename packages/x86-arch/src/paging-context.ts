import { type CpuFeatures, reservedAddressMaskHigh } from "./cpu-features";
import { CR0 } from "./cr0";
import { CR4 } from "./cr4";
import { EFER } from "./efer";
import { PAGING_LEVELS, PAGING_MODE, type PagingMode, pagingModeOf } from "./paging-mode";
import { RFLAGS } from "./rflags";
import { mask32 } from "./u64";

/** The register state a linear-address walk depends on. */
export interface PagingRegisters {
  readonly cr0: number;
  /** CR3 as loaded (bit 63, the no-flush hint of MOV to CR3, is not part of CR3). */
  readonly cr3: number;
  readonly cr4: number;
  readonly efer: number;
  /** Only AC (bit 18) matters to the walk, for SMAP. */
  readonly rflags?: number;
  readonly pkru?: number;
  readonly pkrs?: number;
  /** The four PAE PDPTE registers (SDM 4.4.1), loaded at MOV to CR3; see `loadPdptes`. */
  readonly pdptes?: readonly number[];
}

/**
 * Everything a walk needs, computed once per register change (like QEMU's pg_mode flags and KVM's
 * cpu_role): the mode, the root table, the permission switches and the reserved-bit masks per
 * level. A walk reads only this, never the raw registers.
 */
export interface PagingContext {
  readonly mode: PagingMode;
  /** Paging-structure levels walked (2, 3 for PAE below the PDPTE registers, 4 or 5). */
  readonly levels: number;
  /** Physical address of the top table (CR3 bits M-1:12; PDPT base bits 31:5 in PAE mode). */
  readonly root: number;
  readonly features: CpuFeatures;
  readonly wp: boolean;
  readonly nxe: boolean;
  readonly smep: boolean;
  readonly smap: boolean;
  /** Protection keys for user pages apply (CR4.PKE in IA-32e mode). */
  readonly pke: boolean;
  /** Protection keys for supervisor pages apply (CR4.PKS in IA-32e mode). */
  readonly pks: boolean;
  /** RFLAGS.AC (lets explicit supervisor data accesses to user pages through SMAP). */
  readonly ac: boolean;
  /** 32-bit paging: CR4.PSE makes PDE bit 7 select a 4-MiB page. */
  readonly pse: boolean;
  readonly pkru: number;
  readonly pkrs: number;
  /** PAE PDPTE registers as numbers (PDPTEs have no bit above 51). */
  readonly pdptes: Float64Array;
  /** Fetch faults report I/D (SDM 4.7: with SMEP, or with NXE in PAE/IA-32e paging). */
  readonly fetchSetsErrorI: boolean;
  /** Mask of address bits 51:32 that are below MAXPHYADDR, applied to an entry's high word. */
  readonly addressMaskHi: number;
  /** Reserved-bit masks, index `level * 2 + (bit 7 set ? 1 : 0)`, low and high words. */
  readonly reservedLo: Uint32Array;
  readonly reservedHi: Uint32Array;
}

/**
 * Reserved bits of an entry per mode, level and bit 7 (SDM 4.3 Table 4-6 and 4.4/4.5 tables; the
 * same terms as kvm: __reset_rsvds_bits_mask for an Intel guest).
 */
function reservedMasks(mode: PagingMode, features: CpuFeatures, nxe: boolean, pse: boolean) {
  const lo = new Uint32Array(12);
  const hi = new Uint32Array(12);
  const set = (level: number, bit7: 0 | 1, maskLo: number, maskHi: number) => {
    lo[level * 2 + bit7] = maskLo >>> 0;
    hi[level * 2 + bit7] = maskHi >>> 0;
  };
  const physHigh = reservedAddressMaskHigh(features.maxPhysAddr);
  const xdReserved = nxe ? 0 : 0x80000000;
  const largeLow = (pageShift: number) => mask32(13, pageShift - 13); // bits pageShift-1:13 (bit 12 is PAT)
  switch (mode) {
    case PAGING_MODE.BIT32: {
      // Only a 4-MiB PDE has reserved bits: bit 21, and address bits above min(MAXPHYADDR, 40).
      if (pse) {
        const highBits = features.pse36 ? Math.min(features.maxPhysAddr, 40) - 32 : 0;
        set(2, 1, mask32(13 + highBits, 21 - (13 + highBits) + 1), 0);
      }
      break;
    }
    case PAGING_MODE.PAE: {
      // Bits 62:MAXPHYADDR are reserved in PAE entries; 63 too without NXE.
      const high = physHigh | 0x7ff00000 | xdReserved;
      set(2, 0, 0, high);
      set(2, 1, largeLow(21), high);
      set(1, 0, 0, high);
      set(1, 1, 0, high);
      break;
    }
    case PAGING_MODE.LEVEL4:
    case PAGING_MODE.LEVEL5: {
      const high = physHigh | xdReserved;
      for (const level of [5, 4]) {
        set(level, 0, 0, high);
        set(level, 1, 0x80, high); // PS must be 0 in a PML5E/PML4E
      }
      set(3, 0, 0, high);
      set(3, 1, features.gbPages ? largeLow(30) : 0x80, high);
      set(2, 0, 0, high);
      set(2, 1, largeLow(21), high);
      set(1, 0, 0, high);
      set(1, 1, 0, high); // bit 7 of a PTE is PAT
      break;
    }
    default:
      break;
  }
  return { lo, hi };
}

/** Builds the walk context for a register state (pure; the caller rebuilds it when registers change). */
export function createPagingContext(regs: PagingRegisters, features: CpuFeatures): PagingContext {
  const mode = pagingModeOf(regs.cr0, regs.cr4, regs.efer);
  const longMode = mode === PAGING_MODE.LEVEL4 || mode === PAGING_MODE.LEVEL5;
  const nxe = (regs.efer & EFER.NXE) !== 0 && features.nx && mode >= PAGING_MODE.PAE;
  const smep = (regs.cr4 & CR4.SMEP) !== 0;
  const pse = (regs.cr4 & CR4.PSE) !== 0;
  const { lo, hi } = reservedMasks(mode, features, nxe, pse);
  const addressMaskHi = (2 ** Math.max(0, features.maxPhysAddr - 32) - 1) >>> 0;

  let root = 0;
  if (mode === PAGING_MODE.BIT32) root = (regs.cr3 & 0xfffff000) >>> 0;
  else if (mode === PAGING_MODE.PAE) root = (regs.cr3 & 0xffffffe0) >>> 0;
  else if (longMode) {
    const cr3Hi = Math.floor(regs.cr3 / 4294967296) & addressMaskHi;
    root = cr3Hi * 4294967296 + ((regs.cr3 & 0xfffff000) >>> 0);
  }

  const pdptes = new Float64Array(4);
  if (mode === PAGING_MODE.PAE) {
    if (regs.pdptes === undefined || regs.pdptes.length !== 4) {
      throw new RangeError("PAE paging needs the four PDPTE registers (see loadPdptes)");
    }
    for (let i = 0; i < 4; i++) pdptes[i] = regs.pdptes[i]!;
  }

  return Object.freeze({
    mode,
    levels: PAGING_LEVELS[mode],
    root,
    features,
    wp: (regs.cr0 & CR0.WP) !== 0,
    nxe,
    smep,
    smap: (regs.cr4 & CR4.SMAP) !== 0,
    pke: longMode && (regs.cr4 & CR4.PKE) !== 0,
    pks: longMode && (regs.cr4 & CR4.PKS) !== 0,
    ac: ((regs.rflags ?? 0) & RFLAGS.AC) !== 0,
    pse,
    pkru: (regs.pkru ?? 0) >>> 0,
    pkrs: (regs.pkrs ?? 0) >>> 0,
    pdptes,
    fetchSetsErrorI: smep || nxe,
    addressMaskHi,
    reservedLo: lo,
    reservedHi: hi,
  });
}
