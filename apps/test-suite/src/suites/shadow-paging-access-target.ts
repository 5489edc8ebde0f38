import {
  cpuRoleBase,
  HostPageAllocator,
  Memslots,
  SHADOW_FAULT,
  SHADOW_FAULT_NAMES,
  ShadowMmu,
  ShadowPageStore,
  type ShadowPagingMmu,
  ShadowRootBackend,
  SPTE_FORMAT,
  shadowRootRole,
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
  createPagingContext,
  DenseMemory,
  EFER,
  MODERN_CPU,
  PageWalker,
  type PagingContext,
} from "@nestvisor/x86-arch";
import type { ModelParts } from "../model-parts";
import type { AccessTarget } from "./access-target";

const L = ACCESS_CASE_LAYOUT;

const PAGE = 4096;
const TABLE_BASE = 0x10_0000;
const TABLE_PAGES = 1024;
/** Faults one access may take before the target calls it a livelock. */
const MAX_FAULTS = 8;

interface RootState {
  hpa: number;
  readonly role: number;
  readonly guest: PagingContext;
  readonly hardware: { cr0: number; cr4: number };
}

/**
 * The cases through shadow paging (L0 without TDP, kvm-mmu.md §2.3): the guest's tables live in guest
 * memory, the processor walks L0's shadow tables, and every #PF goes to the model's
 * `ShadowPagingMmu` (its `shadowPagingMmu` hook), which either fixes the shadow or injects the
 * guest's own #PF. A guest store to its page tables is an emulated write of a write-tracked page
 * (kvm: kvm_mmu_track_write). What the guest sees must be the architecture's, with KVM's A/D policy
 * (A/D written only after a successful walk, kvm: FNAME(update_accessed_dirty_bits)); protection
 * keys are left out (KVM offers PKU only with TDP).
 */
export class ShadowPagingAccessTarget implements AccessTarget {
  readonly policy = AD_UPDATE.AFTER_SUCCESS;
  readonly host: DenseMemory;
  readonly guestHost: number;
  readonly shadow: ShadowMmu;
  readonly paging: ShadowPagingMmu;
  readonly backend: ShadowRootBackend;
  pa = 0;
  errorCode = 0;
  problem: string | null = null;
  /** Shadow faults handled (for reports). */
  faults = 0;
  readonly #roots = new Map<number, RootState>();
  readonly #walker: PageWalker;

  constructor(parts: ModelParts) {
    this.guestHost = Math.ceil((TABLE_BASE + TABLE_PAGES * PAGE) / 0x40_0000) * 0x40_0000;
    this.host = new DenseMemory(this.guestHost + L.MEMORY_BYTES);
    const allocator = new HostPageAllocator(this.host, {
      base: TABLE_BASE,
      pages: TABLE_PAGES,
      zeroed: true,
    });
    const memslots = new Memslots();
    memslots.add({ id: 0, baseGfn: 0, npages: L.MEMORY_BYTES / PAGE, hostBase: this.guestHost });
    const store = new ShadowPageStore({ allocator, meter: NOOP_METER, memslots, tdpEnabled: false });
    this.shadow = new ShadowMmu({ store, memslots, format: SPTE_FORMAT.X86, meter: NOOP_METER });
    this.paging = parts.shadowPagingMmu(this.shadow);
    this.backend = new ShadowRootBackend({ shadow: this.shadow });
    this.#walker = new PageWalker(this.host, { adUpdate: AD_UPDATE.NONE });
  }

  /** A guest store to its page tables: the write, then the write-tracking notification. */
  store(e: AccessCaseEntries): void {
    const memory = this.shadow.guestMemory;
    const tracked = this.shadow.store;
    for (let i = 0; i < 4; i++) {
      const gpa = ACCESS_CASE_ENTRY_GPAS[i]!;
      if (memory.read32(gpa) === e[2 * i] && memory.read32(gpa + 4) === e[2 * i + 1]) continue;
      memory.write64(gpa, e[2 * i]!, e[2 * i + 1]!);
      if (tracked.isGfnTracked(Math.floor(gpa / PAGE))) this.shadow.trackedWrite(gpa, 8);
    }
  }

  load(out: AccessCaseEntries): void {
    const memory = this.shadow.guestMemory;
    for (let i = 0; i < 4; i++) {
      out[2 * i] = memory.read32(ACCESS_CASE_ENTRY_GPAS[i]!);
      out[2 * i + 1] = memory.read32(ACCESS_CASE_ENTRY_GPAS[i]! + 4);
    }
  }

  /** The shadow root for a CPU state: KVM's root role from the cpu role (kvm: kvm_init_shadow_mmu). */
  #root(cpu: AccessCaseCpu): RootState {
    let state = this.#roots.get(cpu.key);
    if (state === undefined) {
      const guest = accessCasePagingContext(cpu, 4);
      const cr0 = CR0.PE | CR0.PG | (cpu.wp ? CR0.WP : 0);
      const cr4 = CR4.PAE | (cpu.smep ? CR4.SMEP : 0) | (cpu.smap ? CR4.SMAP : 0);
      const efer = EFER.LME | EFER.LMA | (cpu.nxe ? EFER.NXE : 0);
      const role = shadowRootRole(cpuRoleBase(cr0, cr4, efer, false, false));
      state = {
        hpa: this.backend.allocShadowRoot(role, L.PML4),
        role,
        guest,
        // KVM runs the guest with CR0.WP and EFER.NX set (kvm: vmx_set_cr0, the shadow role bits).
        hardware: { cr0: cr0 | CR0.WP, cr4 },
      };
      this.#roots.set(cpu.key, state);
    }
    return state;
  }

  #hardwareContext(root: RootState, cpu: AccessCaseCpu): PagingContext {
    return createPagingContext(
      {
        cr0: root.hardware.cr0,
        cr3: root.hpa,
        cr4: root.hardware.cr4,
        efer: EFER.NXE | EFER.LME | EFER.LMA,
        rflags: cpu.ac ? 1 << 18 : 2,
      },
      MODERN_CPU,
    );
  }

  access(cpu: AccessCaseCpu, access: number): boolean {
    this.problem = null;
    const root = this.#root(cpu);
    let hw = this.#hardwareContext(root, cpu);
    const walker = this.#walker;
    for (let faults = 0; ; faults++) {
      if (walker.walk(hw, L.LA_LO, L.LA_HI, access)) {
        this.pa = walker.result.pa - this.guestHost;
        return true;
      }
      if (faults >= MAX_FAULTS) {
        this.problem = `still faulting after ${MAX_FAULTS} shadow page faults (error code 0x${walker.result.errorCode.toString(16)})`;
        return false;
      }
      this.faults++;
      const r = this.paging.fault(root.hpa, root.guest, L.LA_LO, L.LA_HI, walker.result.errorCode);
      switch (r.outcome) {
        case SHADOW_FAULT.FIXED:
        case SHADOW_FAULT.SPURIOUS:
          continue;
        case SHADOW_FAULT.INJECT_PAGE_FAULT:
          this.errorCode = r.errorCode;
          return false;
        case SHADOW_FAULT.RETRY:
          if (this.shadow.isRootStale(root.hpa)) {
            // kvm: KVM_REQ_MMU_FREE_OBSOLETE_ROOTS, then kvm_mmu_load before re-entry.
            this.backend.putRoot(root.hpa);
            root.hpa = this.backend.allocShadowRoot(root.role, L.PML4);
            hw = this.#hardwareContext(root, cpu);
          }
          continue;
        default:
          this.problem = `the shadow MMU answered ${SHADOW_FAULT_NAMES[r.outcome] ?? r.outcome} for a #PF at a mapped guest page`;
          return false;
      }
    }
  }
}
