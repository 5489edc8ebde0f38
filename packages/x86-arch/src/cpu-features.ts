/**
 * The CPUID-reported features that change how paging behaves (SDM 4.1.4, "Enumeration of Paging
 * Features by CPUID"). One frozen value the walkers consult; reserved-bit masks depend on
 * `maxPhysAddr`.
 */
export interface CpuFeatures {
  /** MAXPHYADDR, CPUID.80000008H:EAX[7:0]; 36..52. */
  readonly maxPhysAddr: number;
  /** Execute-disable, CPUID.80000001H:EDX.NX[20]: EFER.NXE may be set and bit 63 means XD. */
  readonly nx: boolean;
  /** 4-MiB pages in 32-bit paging, CPUID.01H:EDX.PSE[3]. */
  readonly pse: boolean;
  /** PSE-36: 4-MiB pages map physical addresses above 4 GiB, CPUID.01H:EDX.PSE-36[17]. */
  readonly pse36: boolean;
  /** PAE paging, CPUID.01H:EDX.PAE[6]. */
  readonly pae: boolean;
  /** Global pages (CR4.PGE), CPUID.01H:EDX.PGE[13]. */
  readonly pge: boolean;
  /** 1-GiB pages, CPUID.80000001H:EDX.Page1GB[26]. */
  readonly gbPages: boolean;
  /** Process-context identifiers, CPUID.01H:ECX.PCID[17]. */
  readonly pcid: boolean;
  /** INVPCID instruction, CPUID.(EAX=07H,ECX=0):EBX.INVPCID[10]. */
  readonly invpcid: boolean;
  /** Supervisor-mode execution prevention, CPUID.(EAX=07H,ECX=0):EBX.SMEP[7]. */
  readonly smep: boolean;
  /** Supervisor-mode access prevention, CPUID.(EAX=07H,ECX=0):EBX.SMAP[20]. */
  readonly smap: boolean;
  /** Protection keys for user pages, CPUID.(EAX=07H,ECX=0):ECX.PKU[3]. */
  readonly pku: boolean;
  /** Protection keys for supervisor pages, CPUID.(EAX=07H,ECX=0):ECX.PKS[31]. */
  readonly pks: boolean;
  /** 5-level paging, CPUID.(EAX=07H,ECX=0):ECX.LA57[16]. */
  readonly la57: boolean;
  /** Long mode, CPUID.80000001H:EDX.LM[29]. */
  readonly lm: boolean;
}

/** A recent server core: every paging feature, MAXPHYADDR 46 (as on Ice Lake/Sapphire Rapids SP). */
export const MODERN_CPU: CpuFeatures = Object.freeze({
  maxPhysAddr: 46,
  nx: true,
  pse: true,
  pse36: true,
  pae: true,
  pge: true,
  gbPages: true,
  pcid: true,
  invpcid: true,
  smep: true,
  smap: true,
  pku: true,
  pks: true,
  la57: true,
  lm: true,
});

/** Builds a feature set from `MODERN_CPU` with overrides, checking MAXPHYADDR's range. */
export function cpuFeatures(overrides: Partial<CpuFeatures> = {}): CpuFeatures {
  const features = { ...MODERN_CPU, ...overrides };
  if (!Number.isInteger(features.maxPhysAddr) || features.maxPhysAddr < 32 || features.maxPhysAddr > 52) {
    throw new RangeError(`maxPhysAddr ${features.maxPhysAddr} must be an integer in [32, 52] (SDM 4.1.4)`);
  }
  return Object.freeze(features);
}

/**
 * Reserved physical-address bits MAXPHYADDR..51 of a 64-bit entry, as a mask of the entry's
 * high word (bits 63:32). Bits 63:52 are not included: their meaning depends on the format.
 */
export function reservedAddressMaskHigh(maxPhysAddr: number): number {
  // Bits [maxPhysAddr, 52) of the entry are bits [maxPhysAddr - 32, 20) of the high word.
  if (maxPhysAddr >= 52) return 0;
  const from = Math.max(0, maxPhysAddr - 32);
  return ((1 << 20) - (1 << from)) >>> 0;
}
