import { CountingMeter } from "@nestvisor/vmx";
import {
  AD_UPDATE,
  createEptContext,
  DenseMemory,
  EPT_MEMORY_TYPE,
  EPT_VIOLATION,
  type EptContext,
  EptWalker,
  encodeEptPointer,
  type Gpa,
  MODERN_EPT_CAPABILITIES,
} from "@nestvisor/x86-arch";
import { AUDIT_FORMAT, type AuditStats, assertAuditClean, TableAuditor } from "../audit";
import { eptOnEptReference } from "../ept-on-ept-reference";
import { HostPageAllocator } from "../host-page-allocator";
import { Memslots } from "../memslots";
import { KVM_MMU_NUM_PREV_ROOTS, type MmuContext } from "../mmu-context";
import { MMU_EVENTS } from "../mmu-events";
import { DEFAULT_MMU_FLAGS, type MmuFlags } from "../mmu-flags";
import { PAGE_ROLE } from "../page-role";
import { INVALID_ROOT, NO_SHADOW_PAGE } from "../root-backend";
import { ShadowEptMmu } from "../shadow-ept-mmu";
import { SHADOW_FAULT, type ShadowFaultOutcome } from "../shadow-fault";
import { ShadowMmu } from "../shadow-mmu";
import { ShadowPageStore } from "../shadow-page-store";
import { ShadowRootBackend } from "../shadow-root-backend";
import { SPTE_FORMAT } from "../shadow-spte";
import { TDP_MAP_RESULT, type TdpMapResult, TdpMmu } from "../tdp-mmu";
import { tdpReference } from "../tdp-reference";
import { VcpuMmu } from "../vcpu-mmu";
import { TABLE_BASE } from "./nested-ept-fixture";
import { L1_REGS } from "./nested-scenario";

const TWO_32 = 4294967296;

export interface RealVcpuFixtureOptions {
  readonly flags?: MmuFlags;
  /** Host pages for L0's tables (default 512). */
  readonly tablePages?: number;
  /** Pages of L1 RAM in memslot 0 (default 0x1000 = 16 MiB); a 16-page read-only slot follows at `roGfn`. */
  readonly l1Pages?: number;
}

/** Per-step audit totals. */
export interface RealAuditTotals {
  roots: number;
  tdpRoots: number;
  shadowEptRoots: number;
  skippedObsolete: number;
  skippedSpecial: number;
  leaves: number;
}

/**
 * Test helper: a `VcpuMmu` on the real backends — one `ShadowPageStore` shared by the `TdpMmu`
 * (root_mmu's direct roots) and an EPT-format `ShadowMmu` (guest_mmu's shadow-EPT roots), both
 * reached through one `ShadowRootBackend` as KVM's mmu_alloc_direct_roots / mmu_alloc_shadow_roots
 * reach them. `preserveTdpRoots` of the flags goes to the TDP MMU. Host memory holds L0's table
 * region and L1's RAM (memslot 0) plus a read-only slot; L1 starts in 64-bit mode with its root
 * loaded. `l1Fault` and `l2Access` run accesses the way the processor and L0 would, and
 * `auditAll` audits every valid root slot of every root-holding context.
 */
export function realVcpuFixture(options: RealVcpuFixtureOptions = {}) {
  const flags = options.flags ?? DEFAULT_MMU_FLAGS;
  const tablePages = options.tablePages ?? 512;
  const l1Pages = options.l1Pages ?? 0x1000;
  const l1Host = Math.ceil((TABLE_BASE + tablePages * 4096) / 0x20_0000) * 0x20_0000;
  const roHost = l1Host + l1Pages * 4096;
  const roGfn = l1Pages + 0x100;
  const memory = new DenseMemory(roHost + 16 * 4096);
  const allocator = new HostPageAllocator(memory, { base: TABLE_BASE, pages: tablePages, zeroed: true });
  const meter = new CountingMeter([MMU_EVENTS]);
  const memslots = new Memslots();
  memslots.add({ id: 0, baseGfn: 0, npages: l1Pages, hostBase: l1Host });
  memslots.add({ id: 1, baseGfn: roGfn, npages: 16, hostBase: roHost, readOnly: true });
  const store = new ShadowPageStore({ allocator, meter, memslots });
  const holder: { tdp: TdpMmu | null } = { tdp: null };
  const shadow = new ShadowMmu({
    store,
    memslots,
    format: SPTE_FORMAT.EPT,
    meter,
    // kvm: kvm_mmu_slot_gfn_write_protect also write-protects the TDP MMU's (EPT01's) mapping.
    onWriteProtectGfn: (gfn) => holder.tdp?.writeProtectGfn(gfn, false) ?? false,
  });
  const tdp = new TdpMmu({ store, memslots, meter, preserveTdpRoots: flags.preserveTdpRoots });
  holder.tdp = tdp;
  const ept = new ShadowEptMmu(shadow);
  const backend = new ShadowRootBackend({ shadow, tdp });
  const vcpu = new VcpuMmu({ backend, meter, flags });
  vcpu.setSregs(L1_REGS);
  vcpu.reload();

  const l1Memory = shadow.guestMemory;
  const hardware = new EptWalker(memory, { adUpdate: AD_UPDATE.NONE });
  const ept12Contexts = new Map<number, EptContext>();
  /** The walk context of an EPTP12 value (what KVM walks EPT12 with: L1's caps, MAXPHYADDR 46). */
  const ept12Context = (eptp: number): EptContext => {
    let ctx = ept12Contexts.get(eptp);
    if (ctx === undefined) {
      ctx = createEptContext(
        { eptpLo: (eptp % TWO_32) >>> 0, eptpHi: Math.floor(eptp / TWO_32) },
        MODERN_EPT_CAPABILITIES,
        46,
      );
      ept12Contexts.set(eptp, ctx);
    }
    return ctx;
  };
  /** The EPTP the processor uses for a root (EPT02 or EPT01): A/D as the root role says (kvm: construct_eptp). */
  const ctx02 = (root: number): EptContext => {
    const role = backend.rootRoleWord(root);
    const eptp = encodeEptPointer({
      memoryType: EPT_MEMORY_TYPE.WB,
      walkLength: 4,
      accessedDirty: role !== NO_SHADOW_PAGE && (role & PAGE_ROLE.AD_DISABLED) === 0,
      supervisorShadowStack: false,
      root,
    });
    return createEptContext({ eptpLo: eptp.lo, eptpHi: eptp.hi }, MODERN_EPT_CAPABILITIES, 46);
  };

  /** Before a VM entry: free obsolete roots if a fault asked for it, then kvm_mmu_reload. */
  const reloadAfterStale = () => {
    vcpu.freeObsoleteRoots();
    vcpu.reload();
  };

  /**
   * L1 touches `gpa` (L0 handles the EPT01 violation with the TDP MMU on root_mmu's current root,
   * reloading after a stale-root retry). Must run while L1 runs. Returns the last map result.
   */
  const l1Fault = (gpa: number, write: boolean): TdpMapResult => {
    if (vcpu.guestMode) throw new Error("l1Fault while L2 runs");
    vcpu.reload();
    for (let tries = 0; ; tries++) {
      const r = tdp.map(vcpu.rootMmu.rootHpa, gpa as Gpa, write);
      if (r !== TDP_MAP_RESULT.RETRY || tries >= 3) return r;
      reloadAfterStale();
    }
  };

  /**
   * L2 accesses `gpa` (EPT_ACCESS bits) through EPT02 = guest_mmu's current root; each EPT
   * violation goes to `ShadowEptMmu.fault` with vmcs12's EPTP, a stale root is freed and reloaded.
   * Must run while L2 runs with nested EPT. Returns FIXED when the access went through, else the
   * last fault outcome (a reflection to L1, an emulation).
   */
  const l2Access = (gpa: number, access: number): ShadowFaultOutcome => {
    if (!vcpu.mmuIsNested) throw new Error("l2Access without nested EPT");
    vcpu.reload();
    const linear = EPT_VIOLATION.GLA_VALID | EPT_VIOLATION.FINAL_TRANSLATION;
    for (let faults = 0; ; faults++) {
      const root = vcpu.guestMmu.rootHpa;
      if (hardware.walk(ctx02(root), gpa, access, linear)) return SHADOW_FAULT.FIXED;
      const r = ept.fault(root, ept12Context(vcpu.eptp12), gpa, hardware.result.qualification);
      if (faults >= 4) return r.outcome;
      if (r.outcome === SHADOW_FAULT.RETRY && shadow.isRootStale(root)) {
        reloadAfterStale();
        continue;
      }
      if (r.outcome !== SHADOW_FAULT.FIXED && r.outcome !== SHADOW_FAULT.SPURIOUS) return r.outcome;
    }
  };

  /** Whether the processor would let L1 make `access` (EPT_ACCESS bits) at `gpa` through root_mmu's current root (EPT01). */
  const ept01Allows = (gpa: number, access: number): boolean => {
    const root = vcpu.rootMmu.rootHpa;
    if (root === INVALID_ROOT) return false;
    return hardware.walk(ctx02(root), gpa, access, 0);
  };

  const tdpAuditor = new TableAuditor({
    memory,
    format: AUDIT_FORMAT.EPT,
    reference: tdpReference(memslots),
    store,
  });
  const eptAuditors = new Map<number, TableAuditor>();
  const eptAuditor = (eptp: number): TableAuditor => {
    let a = eptAuditors.get(eptp);
    if (a === undefined) {
      a = new TableAuditor({
        memory,
        format: AUDIT_FORMAT.EPT,
        reference: eptOnEptReference(l1Memory, ept12Context(eptp), memslots),
        store,
      });
      eptAuditors.set(eptp, a);
    }
    return a;
  };

  const totals: RealAuditTotals = {
    roots: 0,
    tdpRoots: 0,
    shadowEptRoots: 0,
    skippedObsolete: 0,
    skippedSpecial: 0,
    leaves: 0,
  };
  const auditSlot = (pgd: number, hpa: number): void => {
    if (hpa === INVALID_ROOT) return;
    // An obsolete root is empty or about to be freed (KVM_REQ_MMU_FREE_OBSOLETE_ROOTS).
    if (backend.isObsoleteRoot(hpa)) {
      totals.skippedObsolete++;
      return;
    }
    const role = backend.rootRoleWord(hpa);
    if (role === NO_SHADOW_PAGE) {
      totals.skippedSpecial++;
      return;
    }
    let stats: AuditStats;
    if ((role & PAGE_ROLE.DIRECT) !== 0) {
      stats = assertAuditClean(tdpAuditor.audit(hpa));
      totals.tdpRoots++;
    } else {
      // A shadow-EPT root's pgd is the EPTP12 it shadows (kvm: root.pgd, compared by is_root_usable).
      stats = assertAuditClean(eptAuditor(pgd).audit(hpa));
      totals.shadowEptRoots++;
    }
    totals.roots++;
    totals.leaves += stats.leaves;
  };
  /** Audits the current and previous roots of root_mmu and (when split) guest_mmu; throws on the first inconsistency. */
  const auditAll = (): void => {
    for (const ctx of vcpu.rootContexts) auditContext(ctx);
  };
  const auditContext = (ctx: MmuContext): void => {
    auditSlot(ctx.rootPgd, ctx.rootHpa);
    for (let i = 0; i < KVM_MMU_NUM_PREV_ROOTS; i++) auditSlot(ctx.prevPgd[i]!, ctx.prevHpa[i]!);
  };

  return {
    flags,
    memory,
    allocator,
    meter,
    memslots,
    store,
    shadow,
    tdp,
    ept,
    backend,
    vcpu,
    l1Memory,
    l1Host,
    roGfn,
    ept12Context,
    l1Fault,
    l2Access,
    ept01Allows,
    auditAll,
    totals,
  };
}

export type RealVcpuFixture = ReturnType<typeof realVcpuFixture>;
