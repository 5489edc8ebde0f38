import { CR0, CR4, EFER } from "@nestvisor/x86-arch";
import { decodeExtendedRole, EXT_ROLE, type ExtendedRoleFields } from "./extended-role";
import { ACC, decodePageRole, PAGE_ROLE, type PageRoleFields } from "./page-role";
import { ROOT_LEVEL } from "./reserved-bits";

/**
 * `union kvm_cpu_role` (kvm-mmu.md §1.3, §2.1): what the *guest* is doing — CR0/CR4/EFER, SMM and
 * guest mode — as a 64-bit value whose low word is a page role (`base`) and whose high word is an
 * extended role (`ext`). The model keeps the two halves as two numbers so that hot paths never
 * build a BigInt; the gates compare both halves, as KVM compares `as_u64`.
 */

/** CR0 bits that feed the cpu role (kvm: KVM_MMU_CR0_ROLE_BITS, arch/x86/kvm/mmu.h). */
export const MMU_CR0_ROLE_BITS = (CR0.PG | CR0.WP) >>> 0;

/** CR4 bits that feed the cpu role (kvm: KVM_MMU_CR4_ROLE_BITS, arch/x86/kvm/mmu.h, v5.18+). */
export const MMU_CR4_ROLE_BITS = (CR4.PSE | CR4.PAE | CR4.LA57 | CR4.SMEP | CR4.SMAP | CR4.PKE) >>> 0;

/**
 * KVM_MMU_CR4_ROLE_BITS up to v5.15: it also held PGE, so toggling CR4.PGE reset the MMU although no
 * role consumes PGE. Removed by Lai Jiangshan's a91a7c709600 "Don't reset mmu context when toggling
 * X86_CR4_PGE" (v5.16), which made a PGE toggle a guest TLB flush request.
 */
export const MMU_CR4_ROLE_BITS_PRE_5_16 = (MMU_CR4_ROLE_BITS | CR4.PGE) >>> 0;

/**
 * @deprecated The old name of `MMU_CR4_ROLE_BITS_PRE_5_16`: PGE left the mask in v5.16, not v5.18.
 */
export const MMU_CR4_ROLE_BITS_PRE_5_18 = MMU_CR4_ROLE_BITS_PRE_5_16;

/** EFER bits whose change resets the MMU (kvm: KVM_MMU_EFER_ROLE_BITS, used by set_efer). */
export const MMU_EFER_ROLE_BITS = (EFER.LME | EFER.NXE) >>> 0;

/** Before v5.18 set_efer reset the MMU only for EFER.NX ("host-initiated EFER.LME write affects the MMU"). */
export const MMU_EFER_ROLE_BITS_PRE_5_18 = EFER.NXE;

/**
 * The page-role half of the cpu role (kvm: kvm_calc_cpu_role, kvm-mmu.md §2.1). `cr0`, `cr4` and
 * `efer` are the registers' low words (every bit read here is below bit 32).
 */
export function cpuRoleBase(
  cr0: number,
  cr4: number,
  efer: number,
  smm: boolean,
  guestMode: boolean,
): number {
  // kvm: kvm_calc_cpu_role — access = ACC_ALL, smm, guest_mode always.
  let base = ACC.ALL << PAGE_ROLE.ACCESS_SHIFT;
  if (smm) base |= 1 << PAGE_ROLE.SMM_SHIFT;
  if (guestMode) base |= PAGE_ROLE.GUEST_MODE;
  // kvm: kvm_calc_cpu_role — with CR0.PG = 0 only `direct` is added; level stays 0.
  if ((cr0 & CR0.PG) === 0) return (base | PAGE_ROLE.DIRECT) >>> 0;

  const wp = (cr0 & CR0.WP) !== 0;
  if ((efer & EFER.NXE) !== 0) base |= PAGE_ROLE.EFER_NX;
  if (wp) base |= PAGE_ROLE.CR0_WP;
  else {
    if ((cr4 & CR4.SMEP) !== 0) base |= PAGE_ROLE.SMEP_ANDNOT_WP;
    if ((cr4 & CR4.SMAP) !== 0) base |= PAGE_ROLE.SMAP_ANDNOT_WP;
  }
  const pae = (cr4 & CR4.PAE) !== 0;
  if (!pae) base |= PAGE_ROLE.HAS_4_BYTE_GPTE;
  // kvm: kvm_calc_cpu_role — level from EFER.LMA, CR4.LA57 and CR4.PAE.
  if ((efer & EFER.LMA) !== 0) base |= (cr4 & CR4.LA57) !== 0 ? ROOT_LEVEL.PT64_5 : ROOT_LEVEL.PT64_4;
  else base |= pae ? ROOT_LEVEL.PT32E : ROOT_LEVEL.PT32;
  return base >>> 0;
}

/** The extended-role half of the cpu role (kvm: kvm_calc_cpu_role, kvm-mmu.md §2.1 step 5). */
export function cpuRoleExt(cr0: number, cr4: number, efer: number): number {
  let ext: number = EXT_ROLE.VALID;
  if ((cr0 & CR0.PG) === 0) return ext;
  const lma = (efer & EFER.LMA) !== 0;
  if ((cr4 & CR4.SMEP) !== 0) ext |= EXT_ROLE.CR4_SMEP;
  if ((cr4 & CR4.SMAP) !== 0) ext |= EXT_ROLE.CR4_SMAP;
  if ((cr4 & CR4.PSE) !== 0) ext |= EXT_ROLE.CR4_PSE;
  // kvm: kvm_calc_cpu_role — "PKEY and LA57 are active iff long mode is active".
  if (lma) {
    ext |= EXT_ROLE.EFER_LMA;
    if ((cr4 & CR4.PKE) !== 0) ext |= EXT_ROLE.CR4_PKE;
    if ((cr4 & CR4.LA57) !== 0) ext |= EXT_ROLE.CR4_LA57;
  }
  return ext >>> 0;
}

/** A decoded cpu role, for the CLI and for test failure messages. */
export interface CpuRoleFields {
  readonly baseWord: number;
  readonly extWord: number;
  readonly base: PageRoleFields;
  readonly ext: ExtendedRoleFields;
}

const TWO_32 = 0x1_0000_0000n;

/**
 * Splits a 64-bit cpu role, given as a BigInt (`as_u64`) or as its two halves, into named fields.
 * Throws a RangeError for a value outside 0..2^64-1 or a half outside 0..2^32-1.
 */
export function decodeCpuRole(role: bigint): CpuRoleFields;
export function decodeCpuRole(base: number, ext: number): CpuRoleFields;
export function decodeCpuRole(roleOrBase: bigint | number, ext?: number): CpuRoleFields {
  let baseWord: number;
  let extWord: number;
  if (typeof roleOrBase === "bigint") {
    if (roleOrBase < 0n || roleOrBase >= TWO_32 * TWO_32) {
      throw new RangeError(`cpu role 0x${roleOrBase.toString(16)} is not a 64-bit value`);
    }
    baseWord = Number(roleOrBase % TWO_32);
    extWord = Number(roleOrBase / TWO_32);
  } else {
    baseWord = roleOrBase;
    extWord = ext ?? 0;
    for (const [name, v] of [
      ["base", baseWord],
      ["ext", extWord],
    ] as const) {
      if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
        throw new RangeError(`cpu role ${name} word ${v} is not a 32-bit value`);
      }
    }
  }
  return { baseWord, extWord, base: decodePageRole(baseWord), ext: decodeExtendedRole(extWord) };
}

/** The role as KVM's `as_u64` (ext in bits 63:32). For printing and test oracles. */
export function cpuRoleToBigInt(base: number, ext: number): bigint {
  return (BigInt(ext >>> 0) << 32n) | BigInt(base >>> 0);
}

/** Formats a cpu role the way kvm-mmu.md §2.9 writes it: `0x000000b9_00003704` (ext_base). */
export function formatCpuRole(base: number, ext: number): string {
  const hex = (w: number) => (w >>> 0).toString(16).padStart(8, "0");
  return `0x${hex(ext)}_${hex(base)}`;
}

/**
 * Parses a cpu role typed by a user, always hexadecimal as KVM prints roles: an optional `0x`
 * prefix and optional `_` separators (`0x000000b9_00003704`, `b900003704`). Throws a RangeError
 * naming the text.
 */
export function parseCpuRole(text: string): { base: number; ext: number } {
  const digits = text.trim().replaceAll("_", "").replace(/^0x/i, "");
  if (!/^[0-9a-f]{1,16}$/i.test(digits)) {
    throw new RangeError(`"${text}" is not a 64-bit hex cpu role (for example 0x000000b9_00003704)`);
  }
  const value = BigInt(`0x${digits}`);
  return { base: Number(value % TWO_32), ext: Number(value / TWO_32) };
}
