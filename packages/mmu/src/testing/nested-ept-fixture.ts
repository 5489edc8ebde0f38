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
  MODERN_EPT_CAPABILITIES,
} from "@nestvisor/x86-arch";
import { HostPageAllocator } from "../host-page-allocator";
import { Memslots } from "../memslots";
import { MMU_EVENTS } from "../mmu-events";
import { ACC, PAGE_ROLE } from "../page-role";
import { ShadowEptMmu } from "../shadow-ept-mmu";
import { SHADOW_FAULT, type ShadowFaultResult } from "../shadow-fault";
import { ShadowMmu } from "../shadow-mmu";
import { ShadowPageStore } from "../shadow-page-store";
import { ShadowRootBackend } from "../shadow-root-backend";
import { SPTE_FORMAT } from "../shadow-spte";
import { GuestEptBuilder } from "./guest-ept-builder";

export interface NestedEptFixtureOptions {
  /** EPTP12 A/D enable (also EPT02's, as KVM builds EPTP02). Default false. */
  readonly accessedDirty?: boolean;
  readonly levels?: 4 | 5;
  /** Host pages for L0's tables (default 1024). */
  readonly tablePages?: number;
  /** Pages of L1 RAM in memslot 0 (default 8192 = 32 MiB). */
  readonly l1Pages?: number;
  readonly meter?: CountingMeter;
  /** The store lets last-level pages become unsync (`ShadowPageStore` option `unsync`). Default false. */
  readonly unsync?: boolean;
  /** The host backs L1's memory with 2-MiB pages (`ShadowMmuOptions.hugePages`). Default false. */
  readonly hugePages?: boolean;
}

/** The guest-mode shadow-EPT root role (kvm-mmu.md §2.4/§2.9: 0x00020704, plus ad_disabled without A/D). */
export function shadowEptRootRole(levels: 4 | 5, accessedDirty: boolean): number {
  return (
    (levels |
      (ACC.ALL << PAGE_ROLE.ACCESS_SHIFT) |
      PAGE_ROLE.GUEST_MODE |
      (accessedDirty ? 0 : PAGE_ROLE.AD_DISABLED)) >>>
    0
  );
}

/** What an L2 access through EPT02 ended with, after letting L0 handle its EPT violations. */
export interface L2AccessResult {
  /** The access went through EPT02; `hpa` is where. */
  readonly ok: boolean;
  readonly hpa: number;
  /** EPT-violation exits L0 handled on the way. */
  readonly faults: number;
  /** When not ok: the last fault's outcome (a reflection to L1, an emulation, ...). */
  readonly outcome: number;
}

/** Base of the host page region for L0's tables (below 4 GiB, as PAE roots need). */
export const TABLE_BASE = 0x10_0000;

/**
 * Test helper: L0 with shadow EPT for one L2. Host memory holds L0's table region and L1's RAM
 * (memslot 0: L1 gfns [0, l1Pages)) plus a 16-page read-only slot at L1 gfn `roGfn`. L1's EPT12
 * tables are built in L1 memory from `ept12Base` up. `l2Access` runs an L2 access the way the
 * processor and L0 would: walk EPT02 in host memory, and on an EPT violation call
 * `ShadowEptMmu.fault` and retry while L0 fixed it.
 */
export function nestedEptFixture(options: NestedEptFixtureOptions = {}) {
  const accessedDirty = options.accessedDirty ?? false;
  const levels = options.levels ?? 4;
  const tablePages = options.tablePages ?? 1024;
  const l1Pages = options.l1Pages ?? 0x2000;
  const l1Host = Math.ceil((TABLE_BASE + tablePages * 4096) / 0x20_0000) * 0x20_0000;
  const roHost = l1Host + l1Pages * 4096;
  const roGfn = l1Pages + 0x100;
  const memory = new DenseMemory(roHost + 16 * 4096);
  const allocator = new HostPageAllocator(memory, { base: TABLE_BASE, pages: tablePages, zeroed: true });
  const meter = options.meter ?? new CountingMeter([MMU_EVENTS]);
  const memslots = new Memslots();
  memslots.add({ id: 0, baseGfn: 0, npages: l1Pages, hostBase: l1Host });
  memslots.add({ id: 1, baseGfn: roGfn, npages: 16, hostBase: roHost, readOnly: true });
  const store = new ShadowPageStore({ allocator, meter, memslots, unsync: options.unsync ?? false });
  const shadow = new ShadowMmu({
    store,
    memslots,
    format: SPTE_FORMAT.EPT,
    meter,
    hugePages: options.hugePages ?? false,
  });
  const ept = new ShadowEptMmu(shadow);
  const backend = new ShadowRootBackend({ shadow });
  const ept12Base = Math.floor(l1Pages / 2) * 4096;
  const builder = new GuestEptBuilder(shadow.guestMemory, ept12Base, levels);
  const eptp12 = builder.eptp(accessedDirty);
  const ctx12: EptContext = createEptContext(
    { eptpLo: eptp12.lo, eptpHi: eptp12.hi },
    MODERN_EPT_CAPABILITIES,
    46,
  );
  const role = shadowEptRootRole(levels, accessedDirty);
  const hardware = new EptWalker(memory, { adUpdate: AD_UPDATE.NONE });

  /** The walk context of EPTP02 for a root (what the processor uses while L2 runs). */
  const ctx02 = (root: number) => {
    const eptp = encodeEptPointer({
      memoryType: EPT_MEMORY_TYPE.WB,
      walkLength: levels,
      accessedDirty,
      supervisorShadowStack: false,
      root,
    });
    return createEptContext({ eptpLo: eptp.lo, eptpHi: eptp.hi }, MODERN_EPT_CAPABILITIES, 46);
  };

  const state = { root: backend.allocShadowRoot(role, eptp12.value) };

  /**
   * An L2 access (`EPT_ACCESS` bits) at L2 GPA `gpa` with linear-address bits `linear` (default: a
   * final translation of a linear address). A fault that retries on a stale root is followed by a
   * root reload, as before a VM entry. Returns how it ended; `last` is the last fault result.
   */
  const l2Access = (
    gpa: number,
    access: number,
    linear: number = EPT_VIOLATION.GLA_VALID | EPT_VIOLATION.FINAL_TRANSLATION,
  ): L2AccessResult & { last: ShadowFaultResult | null } => {
    let ctx = ctx02(state.root);
    let faults = 0;
    let last: ShadowFaultResult | null = null;
    for (;;) {
      if (hardware.walk(ctx, gpa, access, linear)) {
        return { ok: true, hpa: hardware.result.hpa, faults, outcome: SHADOW_FAULT.FIXED, last };
      }
      faults++;
      last = ept.fault(state.root, ctx12, gpa, hardware.result.qualification);
      const outcome = last.outcome;
      // kvm: a stale root is freed (KVM_REQ_MMU_FREE_OBSOLETE_ROOTS) and a new one loaded before re-entry.
      if (outcome === SHADOW_FAULT.RETRY && shadow.isRootStale(state.root) && faults <= 4) {
        backend.putRoot(state.root);
        state.root = backend.allocShadowRoot(role, eptp12.value);
        ctx = ctx02(state.root);
        continue;
      }
      if ((outcome !== SHADOW_FAULT.FIXED && outcome !== SHADOW_FAULT.SPURIOUS) || faults > 4) {
        return { ok: false, hpa: -1, faults, outcome, last };
      }
    }
  };

  return {
    memory,
    allocator,
    meter,
    memslots,
    store,
    shadow,
    ept,
    backend,
    builder,
    eptp12,
    ctx12,
    role,
    state,
    l1Host,
    roGfn,
    roHost,
    ept12Base,
    ctx02,
    l2Access,
  };
}
