import {
  AD_UPDATE,
  CR0,
  CR4,
  createEptContext,
  createPagingContext,
  EFER,
  EPT_MEMORY_TYPE,
  EPTE_LO,
  type EptContext,
  EptWalker,
  encodeEptPointer,
  loadPdptes,
  MODERN_CPU,
  MODERN_EPT_CAPABILITIES,
  PAGE_ACCESS,
  PAGE_SIZE,
  PageWalker,
  PTE_LO,
} from "@nestvisor/x86-arch";
import type { ShadowMmu } from "../shadow-mmu";
import { isLastSpte, isShadowPresentSpte, spteAddress } from "../spte";

/** One present leaf SPTE and the address (GVA or L2 GPA) it maps, as two words. */
export interface ShadowLeaf {
  readonly addressLo: number;
  readonly addressHi: number;
  readonly level: number;
  readonly lo: number;
  readonly hi: number;
}

/** The address words of entry `index` at `level` added to (lo, hi). */
function addIndex(lo: number, hi: number, level: number, index: number): [number, number] {
  if (level === 1) return [(lo | (index << 12)) >>> 0, hi];
  if (level === 2) return [(lo | (index << 21)) >>> 0, hi];
  if (level === 3) return [(lo | ((index & 3) << 30)) >>> 0, (hi | (index >>> 2)) >>> 0];
  if (level === 4) return [lo, (hi | (index << 7)) >>> 0];
  return [lo, (hi | (index << 16)) >>> 0];
}

/**
 * The 4-KiB pages an audit checks under a leaf: every page of a 2-MiB leaf (each gfn of its range
 * must be translated the same and none may be write-protected while the leaf is writable), the
 * leaf's own page otherwise (the shadow MMU builds no larger leaves).
 */
function subpages(leaf: ShadowLeaf): number {
  return leaf.level === 2 ? 512 : 1;
}

/**
 * Test oracle: every present leaf of the shadow tables under `rootHpa` (a root page, or a PAE
 * root's four entries). Allocates.
 */
export function shadowLeaves(shadow: ShadowMmu, rootHpa: number): ShadowLeaf[] {
  const memory = shadow.memory;
  const out: ShadowLeaf[] = [];
  const visit = (table: number, level: number, lo: number, hi: number) => {
    for (let i = 0; i < 512; i++) {
      const entryLo = memory.read32(table + i * 8);
      if (!isShadowPresentSpte(entryLo)) continue;
      const entryHi = memory.read32(table + i * 8 + 4);
      const [aLo, aHi] = addIndex(lo, hi, level, i);
      if (isLastSpte(entryLo, level))
        out.push({ addressLo: aLo, addressHi: aHi, level, lo: entryLo, hi: entryHi });
      else visit(spteAddress(entryLo, entryHi), level - 1, aLo, aHi);
    }
  };
  if (shadow.isDummyRoot(rootHpa)) return out;
  if (shadow.isSpecialRoot(rootHpa)) {
    for (let i = 0; i < 4; i++) {
      const lo = memory.read32(rootHpa + i * 8);
      if ((lo & 1) === 0) continue;
      visit(spteAddress(lo, memory.read32(rootHpa + i * 8 + 4)), 2, (i << 30) >>> 0, 0);
    }
    return out;
  }
  visit(rootHpa, shadow.store.level(shadow.store.idOfHostPage(rootHpa)), 0, 0);
  return out;
}

const hex = (lo: number, hi: number) => `0x${(hi * 2 ** 32 + lo).toString(16)}`;

/**
 * Test oracle for shadow EPT: walks EPT02 from `rootHpa` with the x86-arch `EptWalker` over host
 * memory for every present leaf, and checks it against the composed walk — L1's EPT12 (over
 * `shadow.guestMemory`) then the memslots: same host address; R and X as EPT12 grants them; W only
 * where EPT12 grants it, the slot is writable, the L1 gfn is not write-protected
 * (`isGfnWriteProtected`), and (EPT12 A/D on) the EPT12 leaf is dirty. A 2-MiB leaf is checked for
 * each of its 4-KiB pages. Returns the leaf count and one message per disagreement.
 */
export function auditShadowEpt(
  shadow: ShadowMmu,
  rootHpa: number,
  ept12: EptContext,
): { leaves: number; problems: string[] } {
  const problems: string[] = [];
  const leaves = shadowLeaves(shadow, rootHpa);
  const rootLevel = shadow.store.level(shadow.store.idOfHostPage(rootHpa));
  const eptp02 = encodeEptPointer({
    memoryType: EPT_MEMORY_TYPE.WB,
    walkLength: rootLevel,
    accessedDirty: ept12.accessedDirty,
    supervisorShadowStack: false,
    root: rootHpa,
  });
  const ctx02 = createEptContext({ eptpLo: eptp02.lo, eptpHi: eptp02.hi }, MODERN_EPT_CAPABILITIES, 46);
  const hardware = new EptWalker(shadow.memory, { adUpdate: AD_UPDATE.NONE });
  const composed = new EptWalker(shadow.guestMemory, { adUpdate: AD_UPDATE.NONE });
  const memslots = shadow.memslots;
  for (const leaf of leaves)
    for (let k = 0; k < subpages(leaf); k++) {
      const addressLo = (leaf.addressLo + k * PAGE_SIZE) >>> 0;
      const gpa = leaf.addressHi * 2 ** 32 + addressLo + 0x123;
      const where = `L2 GPA ${hex(addressLo, leaf.addressHi)}`;
      if (!hardware.walk(ctx02, gpa, 0)) {
        problems.push(`${where}: EPT02 walk fails (outcome ${hardware.result.outcome})`);
        continue;
      }
      if (!composed.walk(ept12, gpa, 0)) {
        problems.push(`${where}: EPT02 maps it but EPT12 does not (stale leaf)`);
        continue;
      }
      const l1Gfn = Math.floor(composed.result.hpa / PAGE_SIZE);
      const slot = memslots.lookup(l1Gfn);
      if (slot < 0) {
        problems.push(`${where}: L1 gfn 0x${l1Gfn.toString(16)} is in no memslot`);
        continue;
      }
      const expected = memslots.hostAddressAt(slot, l1Gfn) + 0x123;
      if (hardware.result.hpa !== expected) {
        problems.push(
          `${where}: EPT02 gives 0x${hardware.result.hpa.toString(16)}, composed walk 0x${expected.toString(16)}`,
        );
      }
      const hw = hardware.result.permissions & EPTE_LO.XWR;
      const l1 = composed.result.permissions & EPTE_LO.XWR;
      const readExec = EPTE_LO.READ | EPTE_LO.EXECUTE;
      if ((hw & readExec) !== (l1 & readExec)) {
        problems.push(
          `${where}: EPT02 R/X 0x${(hw & readExec).toString(16)}, EPT12 0x${(l1 & readExec).toString(16)}`,
        );
      }
      if ((hw & EPTE_LO.WRITE) !== 0) {
        const dirty = !ept12.accessedDirty || (composed.result.leafLo & EPTE_LO.DIRTY) !== 0;
        if ((l1 & EPTE_LO.WRITE) === 0) problems.push(`${where}: EPT02 writable, EPT12 is not`);
        if (memslots.readOnlyAt(slot)) problems.push(`${where}: EPT02 writable over a read-only slot`);
        if (shadow.store.isGfnWriteProtected(l1Gfn))
          problems.push(`${where}: EPT02 writable over a write-protected (shadowed, sync) table`);
        if (!dirty) problems.push(`${where}: EPT02 writable while the EPT12 leaf is clean`);
      }
    }
  return { leaves: leaves.length, problems };
}

/** The guest registers the shadow-paging oracle walks with. */
export interface GuestPagingRegs {
  readonly cr0: number;
  readonly cr3: number;
  readonly cr4: number;
  readonly efer: number;
  readonly pdptes?: readonly number[];
}

/**
 * Test oracle for shadow paging: walks the shadow tables from `rootHpa` with the x86-arch
 * `PageWalker` over host memory (as the processor does with CR3 = the root: 4-level, or PAE for a
 * `pae_root`, EFER.NX on, CR0.WP on) for every present leaf, and checks it against the guest's
 * walk (over `shadow.guestMemory`) composed with the memslots: same host address; U and X as the
 * guest grants them; W only where the guest grants it on a dirty leaf, the slot is writable and
 * the gfn is not write-protected. With guest CR0.WP = 0 an SPTE may instead be KVM's supervisor-only
 * version of a read-only page (W or not, U off, X not beyond the guest's). Returns the leaf count
 * and one message per disagreement.
 */
export function auditShadowPaging(
  shadow: ShadowMmu,
  rootHpa: number,
  guest: GuestPagingRegs,
): { leaves: number; problems: string[] } {
  const problems: string[] = [];
  const leaves = shadowLeaves(shadow, rootHpa);
  const host = shadow.memory;
  const pae = shadow.isSpecialRoot(rootHpa);
  const hwRegs = {
    cr0: CR0.PE | CR0.PG | CR0.WP,
    cr3: rootHpa,
    cr4: CR4.PAE,
    efer: pae ? EFER.NXE : EFER.NXE | EFER.LME | EFER.LMA,
  };
  let hwPdptes: readonly number[] | undefined;
  if (pae) {
    const load = loadPdptes(host, rootHpa, MODERN_CPU);
    if (!load.ok)
      return { leaves: leaves.length, problems: [`pae_root PDPTE ${load.badIndex} is malformed`] };
    hwPdptes = load.pdptes;
  }
  const hwCtx = createPagingContext(
    hwPdptes === undefined ? hwRegs : { ...hwRegs, pdptes: hwPdptes },
    MODERN_CPU,
  );
  // The guest walk as a probe: SMEP/SMAP/PKE off so a supervisor read reports the rights.
  const probeRegs = {
    cr0: guest.cr0,
    cr3: guest.cr3,
    cr4: guest.cr4 & ~(CR4.SMEP | CR4.SMAP | CR4.PKE),
    efer: guest.efer,
  };
  const guestCtx = createPagingContext(
    guest.pdptes === undefined ? probeRegs : { ...probeRegs, pdptes: guest.pdptes },
    MODERN_CPU,
  );
  const wp = (guest.cr0 & CR0.WP) !== 0;
  const hardware = new PageWalker(host, { adUpdate: AD_UPDATE.NONE });
  const composed = new PageWalker(shadow.guestMemory, { adUpdate: AD_UPDATE.NONE });
  const memslots = shadow.memslots;
  for (const leaf of leaves)
    for (let k = 0; k < subpages(leaf); k++) {
      const addressLo = (leaf.addressLo + k * PAGE_SIZE) >>> 0;
      const laLo = (addressLo | 0x123) >>> 0;
      const where = `GVA ${hex(addressLo, leaf.addressHi)}`;
      if (!hardware.walk(hwCtx, laLo, leaf.addressHi, 0)) {
        problems.push(`${where}: shadow walk fails (error code 0x${hardware.result.errorCode.toString(16)})`);
        continue;
      }
      if (!composed.walk(guestCtx, laLo, leaf.addressHi, 0)) {
        problems.push(`${where}: the shadow maps it but the guest does not (stale leaf)`);
        continue;
      }
      const gfn = Math.floor(composed.result.pa / PAGE_SIZE);
      const slot = memslots.lookup(gfn);
      if (slot < 0) {
        problems.push(`${where}: gfn 0x${gfn.toString(16)} is in no memslot`);
        continue;
      }
      const expected = memslots.hostAddressAt(slot, gfn) + (composed.result.pa % PAGE_SIZE);
      if (hardware.result.pa !== expected) {
        problems.push(
          `${where}: shadow gives 0x${hardware.result.pa.toString(16)}, composed walk 0x${expected.toString(16)}`,
        );
      }
      const s = hardware.result.pageAccess;
      const g = composed.result.pageAccess;
      const sW = (s & PAGE_ACCESS.WRITE) !== 0;
      const gW = (g & PAGE_ACCESS.WRITE) !== 0;
      // KVM's CR0.WP = 0 emulation: the SPTE of a read-only user page written by the kernel.
      const supervisorCopy = (sW && !gW) || ((g & PAGE_ACCESS.USER) !== 0 && (s & PAGE_ACCESS.USER) === 0);
      if (supervisorCopy) {
        if (wp) problems.push(`${where}: supervisor-only SPTE (WP = 0 emulation) with CR0.WP = 1`);
        if ((s & PAGE_ACCESS.USER) !== 0)
          problems.push(`${where}: writable SPTE of a read-only page keeps U`);
        if ((s & PAGE_ACCESS.EXEC & ~g) !== 0) problems.push(`${where}: SPTE executable, guest page is not`);
      } else {
        if ((s & PAGE_ACCESS.USER) !== (g & PAGE_ACCESS.USER)) problems.push(`${where}: U differs`);
        if ((s & PAGE_ACCESS.EXEC) !== (g & PAGE_ACCESS.EXEC)) problems.push(`${where}: X differs`);
        if (sW && (composed.result.leafLo & PTE_LO.DIRTY) === 0) {
          problems.push(`${where}: SPTE writable while the guest leaf is clean`);
        }
      }
      if (sW && memslots.readOnlyAt(slot)) problems.push(`${where}: SPTE writable over a read-only slot`);
      if (sW && shadow.store.isGfnWriteProtected(gfn))
        problems.push(`${where}: SPTE writable over a write-protected (shadowed, sync) table`);
    }
  return { leaves: leaves.length, problems };
}
