import type { BenchCase } from "@nestvisor/bench";
import { accessOf, RFLAGS } from "@nestvisor/x86-arch";
import { EXT_ROLE } from "../src/extended-role";
import { ACC, PAGE_ROLE } from "../src/page-role";
import {
  PERMISSIONS_SIZE,
  permissionFault,
  updatePermissionBitmask,
  updatePkruBitmask,
} from "../src/permission-bitmask";

/** Table rebuilds per batch. */
const UPDATES = 200_000;
/** Permission checks per batch. */
const CHECKS = 2_000_000;

/** The 32 combinations of CR0.WP, EFER.NX, CR4.SMEP, CR4.SMAP and CR4.PKE as 4-level CPU roles. */
function roles(): { base: Uint32Array; ext: Uint32Array } {
  const base = new Uint32Array(32);
  const ext = new Uint32Array(32);
  for (let bits = 0; bits < 32; bits++) {
    const wp = (bits & 1) !== 0;
    const smep = (bits & 4) !== 0;
    const smap = (bits & 8) !== 0;
    let b = 4 | (ACC.ALL << PAGE_ROLE.ACCESS_SHIFT);
    if (wp) b |= PAGE_ROLE.CR0_WP;
    if ((bits & 2) !== 0) b |= PAGE_ROLE.EFER_NX;
    if (smep && !wp) b |= PAGE_ROLE.SMEP_ANDNOT_WP;
    if (smap && !wp) b |= PAGE_ROLE.SMAP_ANDNOT_WP;
    let e = EXT_ROLE.VALID | EXT_ROLE.EFER_LMA;
    if (smep) e |= EXT_ROLE.CR4_SMEP;
    if (smap) e |= EXT_ROLE.CR4_SMAP;
    if ((bits & 16) !== 0) e |= EXT_ROLE.CR4_PKE;
    base[bits] = b >>> 0;
    ext[bits] = e;
  }
  return { base, ext };
}

/**
 * The permission-table costs of kvm-mmu.md §4.3: rebuilding `permissions[]` (16 iterations, the
 * work a context reconfiguration does), rebuilding `pkru_mask` with PKE on, and one
 * `permission_fault` decision per guest-walk leaf.
 */
export function permissionBenchCases(): BenchCase[] {
  const { base, ext } = roles();
  const table = new Uint8Array(PERMISSIONS_SIZE);

  // Checks cycle through a fixed pseudo-random mix of rights, keys, accesses and RFLAGS.AC.
  const accesses = [
    accessOf("read", 3),
    accessOf("write", 3),
    accessOf("fetch", 3),
    accessOf("read", 0),
    accessOf("write", 0),
    accessOf("fetch", 0),
    accessOf("read", 3, true),
    accessOf("write", 3, true),
  ];
  const MIX = 4096;
  const mixAcc = new Uint8Array(MIX);
  const mixKey = new Uint8Array(MIX);
  const mixAccess = new Uint16Array(MIX);
  const mixRflags = new Uint32Array(MIX);
  let seed = 0x2545f491;
  for (let i = 0; i < MIX; i++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    mixAcc[i] = seed & 7;
    mixKey[i] = (seed >>> 3) & 15;
    mixAccess[i] = accesses[(seed >>> 7) & 7]!;
    mixRflags[i] = (seed >>> 10) & 1 ? RFLAGS.AC : 0;
  }
  const checkTable = new Uint8Array(PERMISSIONS_SIZE);
  const pkeAll = 0b11110;
  updatePermissionBitmask(checkTable, base[pkeAll]!, ext[pkeAll]!, false);
  const pkruMask = updatePkruBitmask(base[pkeAll]!, ext[pkeAll]!);
  const pkru = 0x5555_4444;

  return [
    {
      name: "update_permission_bitmask",
      unit: "tables",
      ops: UPDATES,
      batch: () => {
        let sum = 0;
        for (let i = 0; i < UPDATES; i++) {
          const r = i & 31;
          updatePermissionBitmask(table, base[r]!, ext[r]!, (i & 32) !== 0);
          sum = (sum + table[i & 15]!) | 0;
        }
        return sum;
      },
    },
    {
      name: "update_pkru_bitmask (PKE on)",
      unit: "masks",
      ops: UPDATES,
      batch: () => {
        let sum = 0;
        for (let i = 0; i < UPDATES; i++) {
          const r = (i & 15) | 16;
          sum = (sum + updatePkruBitmask(base[r]!, ext[r]!)) | 0;
        }
        return sum;
      },
    },
    {
      name: "permission_fault",
      unit: "checks",
      ops: CHECKS,
      batch: () => {
        let sum = 0;
        let k = 0;
        for (let i = 0; i < CHECKS; i++) {
          sum =
            (sum +
              permissionFault(
                checkTable,
                pkruMask,
                mixAcc[k]!,
                mixKey[k]!,
                mixAccess[k]!,
                mixRflags[k]!,
                pkru,
              )) |
            0;
          k = (k + 1) & (MIX - 1);
        }
        return sum;
      },
    },
  ];
}
