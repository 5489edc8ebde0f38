import {
  cpuRoleBase,
  HostPageAllocator,
  MemslotMemory,
  Memslots,
  SHADOW_FAULT,
  SHADOW_FAULT_NAMES,
  ShadowMmu,
  ShadowPageStore,
  ShadowRootBackend,
  SPTE_FORMAT,
  shadowEptRoleBase,
  TDP_MAP_RESULT,
  tdpRootRole,
} from "@nestvisor/mmu";
import { NOOP_METER } from "@nestvisor/vmx";
import {
  ACCESS_CASE_ENTRY_GPAS,
  ACCESS_CASE_LAYOUT,
  type AccessCaseCpu,
  type AccessCaseEntries,
  AD_UPDATE,
  accessCasePagingContext,
  CR0,
  CR4,
  createEptContext,
  DenseMemory,
  EFER,
  EPT_MEMORY_TYPE,
  EPT_OUTCOME,
  type EptContext,
  encodeEptPointer,
  FAULT_STAGE,
  type Gpa,
  MODERN_EPT_CAPABILITIES,
  type PagingContext,
  type PhysicalMemory,
  TwoDimensionalWalker,
} from "@nestvisor/x86-arch";
import type { ModelParts } from "../model-parts";
import type { AccessTarget } from "./access-target";

const L = ACCESS_CASE_LAYOUT;

const PAGE = 4096;
const TABLE_BASE = 0x10_0000;
const TABLE_PAGES = 2048;
const MAX_FAULTS = 12;
const TWO_32 = 4294967296;

/** What handles the EPT violations of the guest's two-dimensional walks. */
export interface Stage2Handler {
  /** The EPT pointer the processor runs the guest with (changes when a root is reloaded). */
  eptContext(): EptContext;
  /** An EPT violation at `gpa`: fix it (null) or say why the access cannot complete. */
  fix(gpa: number, qualification: number): string | null;
}

function eptContextOf(root: number, accessedDirty: boolean): EptContext {
  const eptp = encodeEptPointer({
    memoryType: EPT_MEMORY_TYPE.WB,
    walkLength: 4,
    accessedDirty,
    supervisorShadowStack: false,
    root,
  });
  return createEptContext({ eptpLo: eptp.lo, eptpHi: eptp.hi }, MODERN_EPT_CAPABILITIES, 46);
}

/** Host memory with a table pool and one memslot of guest RAM (`bytes`). */
function hostWith(bytes: number) {
  const guestHost = Math.ceil((TABLE_BASE + TABLE_PAGES * PAGE) / 0x20_0000) * 0x20_0000;
  const host = new DenseMemory(guestHost + bytes);
  const allocator = new HostPageAllocator(host, { base: TABLE_BASE, pages: TABLE_PAGES, zeroed: true });
  const memslots = new Memslots();
  memslots.add({ id: 0, baseGfn: 0, npages: bytes / PAGE, hostBase: guestHost });
  const store = new ShadowPageStore({ allocator, meter: NOOP_METER, memslots });
  return { host, memslots, store };
}

/**
 * An L1 guest on L0's EPT built by the model's TDP MMU (its `tdpMmu` hook): every EPT violation of
 * the guest's walks is a `TdpMmu.map` on the root (kvm: kvm_tdp_mmu_map).
 */
export function tdpStage2(parts: ModelParts): {
  host: DenseMemory;
  guest: PhysicalMemory;
  handler: Stage2Handler;
} {
  const { host, memslots, store } = hostWith(L.MEMORY_BYTES);
  const tdp = parts.tdpMmu({ store, memslots, meter: NOOP_METER, preserveTdpRoots: true });
  const base = cpuRoleBase(CR0.PE | CR0.PG | CR0.WP, CR4.PAE, EFER.LME | EFER.LMA | EFER.NXE, false, false);
  const role = tdpRootRole(base, 4, true);
  let root = tdp.allocRoot(role);
  let ctx = eptContextOf(root, true);
  const handler: Stage2Handler = {
    eptContext: () => ctx,
    fix(gpa, qualification) {
      const r = tdp.map(root, gpa as Gpa, (qualification & 2) !== 0);
      if (r === TDP_MAP_RESULT.FIXED || r === TDP_MAP_RESULT.SPURIOUS) return null;
      if (r === TDP_MAP_RESULT.RETRY) {
        tdp.putRoot(root);
        root = tdp.allocRoot(role);
        ctx = eptContextOf(root, true);
        return null;
      }
      return `the TDP MMU answered ${r} for guest RAM at 0x${gpa.toString(16)}`;
    },
  };
  return { host, guest: new MemslotMemory(host, memslots), handler };
}

/** L1's EPT12 for L2: an identity map of L2's RAM with 2-MiB leaves, tables above the RAM. */
const EPT12_BASE = L.MEMORY_BYTES;
const L1_BYTES = L.MEMORY_BYTES + 0x20_0000;

function buildIdentityEpt12(memory: PhysicalMemory, accessedDirty: boolean): number {
  const pml4 = EPT12_BASE;
  const pdpt = EPT12_BASE + PAGE;
  const pd = EPT12_BASE + 2 * PAGE;
  const rwx = 7;
  memory.write64(pml4, pdpt | rwx, 0);
  memory.write64(pdpt, pd | rwx, 0);
  for (let i = 0; i * 0x20_0000 < L.MEMORY_BYTES; i++) {
    memory.write64(pd + 8 * i, (i * 0x20_0000) | 0x80 | (EPT_MEMORY_TYPE.WB << 3) | rwx, 0);
  }
  const eptp = encodeEptPointer({
    memoryType: EPT_MEMORY_TYPE.WB,
    walkLength: 4,
    accessedDirty,
    supervisorShadowStack: false,
    root: pml4,
  });
  return eptp.hi * TWO_32 + eptp.lo;
}

/**
 * An L2 guest with nested EPT: L1's EPT12 maps L2's RAM one to one, and L0's EPT02 is built by the
 * model's shadow-EPT MMU (its `shadowEptMmu` hook) from EPT12 and the memslots, fault by fault
 * (kvm: ept_page_fault). EPT A/D follows `accessedDirty` (EPTP12 bit 6, and so EPTP02's).
 */
export function shadowEptStage2(
  parts: ModelParts,
  accessedDirty: boolean,
): { host: DenseMemory; guest: PhysicalMemory; handler: Stage2Handler } {
  const { host, memslots, store } = hostWith(L1_BYTES);
  const shadow = new ShadowMmu({ store, memslots, format: SPTE_FORMAT.EPT, meter: NOOP_METER });
  const ept = parts.shadowEptMmu(shadow);
  const backend = new ShadowRootBackend({ shadow });
  const l1 = shadow.guestMemory;
  const eptp12 = buildIdentityEpt12(l1, accessedDirty);
  const ctx12 = createEptContext(
    { eptpLo: eptp12 % TWO_32, eptpHi: Math.floor(eptp12 / TWO_32) },
    MODERN_EPT_CAPABILITIES,
    46,
  );
  const role = shadowEptRoleBase(4, accessedDirty);
  let root = backend.allocShadowRoot(role, eptp12);
  let ctx = eptContextOf(root, accessedDirty);
  const handler: Stage2Handler = {
    eptContext: () => ctx,
    fix(gpa, qualification) {
      const r = ept.fault(root, ctx12, gpa, qualification);
      switch (r.outcome) {
        case SHADOW_FAULT.FIXED:
        case SHADOW_FAULT.SPURIOUS:
          return null;
        case SHADOW_FAULT.RETRY:
          if (shadow.isRootStale(root)) {
            backend.putRoot(root);
            root = backend.allocShadowRoot(role, eptp12);
            ctx = eptContextOf(root, accessedDirty);
          }
          return null;
        default:
          return `the shadow-EPT MMU answered ${SHADOW_FAULT_NAMES[r.outcome] ?? r.outcome} for L2 RAM at 0x${gpa.toString(16)} (EPT12 maps it)`;
      }
    },
  };
  return { host, guest: l1, handler };
}

/**
 * The cases on a guest whose page walks are two-dimensional (SDM 29.3): the processor's walk reads
 * every guest table through EPT and sets guest A/D flags as hardware does; EPT violations go to the
 * hypervisor's handler and the access is retried. The guest must see exactly what it sees without
 * a hypervisor.
 */
export class TwoDimensionalAccessTarget implements AccessTarget {
  readonly policy = AD_UPDATE.HARDWARE;
  readonly guest: PhysicalMemory;
  readonly handler: Stage2Handler;
  readonly walker: TwoDimensionalWalker;
  pa = 0;
  errorCode = 0;
  problem: string | null = null;
  /** EPT violations handled. */
  faults = 0;
  readonly #contexts = new Map<number, PagingContext>();

  constructor(setup: { host: DenseMemory; guest: PhysicalMemory; handler: Stage2Handler }) {
    this.guest = setup.guest;
    this.handler = setup.handler;
    const first = accessCasePagingContext(
      {
        key: -1,
        nxe: true,
        wp: true,
        smep: false,
        smap: false,
        ac: false,
        pke: false,
        pks: false,
        pkru: 0,
        pkrs: 0,
      },
      4,
    );
    this.walker = new TwoDimensionalWalker(setup.host, first, setup.handler.eptContext(), {
      guestAdUpdate: AD_UPDATE.HARDWARE,
      eptAdUpdate: AD_UPDATE.HARDWARE,
    });
  }

  store(e: AccessCaseEntries): void {
    for (let i = 0; i < 4; i++) this.guest.write64(ACCESS_CASE_ENTRY_GPAS[i]!, e[2 * i]!, e[2 * i + 1]!);
  }

  load(out: AccessCaseEntries): void {
    for (let i = 0; i < 4; i++) {
      out[2 * i] = this.guest.read32(ACCESS_CASE_ENTRY_GPAS[i]!);
      out[2 * i + 1] = this.guest.read32(ACCESS_CASE_ENTRY_GPAS[i]! + 4);
    }
  }

  access(cpu: AccessCaseCpu, access: number): boolean {
    this.problem = null;
    let ctx = this.#contexts.get(cpu.key);
    if (ctx === undefined) {
      ctx = accessCasePagingContext(cpu, 4);
      this.#contexts.set(cpu.key, ctx);
    }
    const w = this.walker;
    w.setGuestContext(ctx);
    for (let faults = 0; ; faults++) {
      w.setEptContext(this.handler.eptContext());
      if (w.walk(L.LA_LO, L.LA_HI, access)) {
        this.pa = w.stage2.finalGpa;
        return true;
      }
      if (w.result.stage === FAULT_STAGE.GUEST) {
        this.errorCode = w.result.errorCode;
        return false;
      }
      if (w.fault.outcome !== EPT_OUTCOME.VIOLATION) {
        this.problem = `EPT misconfiguration at 0x${w.fault.gpa.toString(16)} in the hypervisor's tables`;
        return false;
      }
      if (faults >= MAX_FAULTS) {
        this.problem = `still taking EPT violations after ${MAX_FAULTS} (last at 0x${w.fault.gpa.toString(16)})`;
        return false;
      }
      this.faults++;
      const problem = this.handler.fix(w.fault.gpa, w.fault.qualification);
      if (problem !== null) {
        this.problem = problem;
        return false;
      }
    }
  }
}
