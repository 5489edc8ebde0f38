import { ACCESS, PAGE_ACCESS } from "./access";
import type { EptContext } from "./ept-context";
import { EPT_MISCONFIG, type EptMisconfig } from "./ept-entry";
import { EPT_VIOLATION } from "./ept-violation";
import { EPT_ACCESS, EPT_OUTCOME, type EptOutcome, EptWalker } from "./ept-walk";
import { type AdUpdate, PageWalker, STAGE2_KIND, type Stage2Kind, type Stage2Translator } from "./page-walk";
import type { PagingContext } from "./paging-context";
import type { PhysicalMemory } from "./physical-memory";
import type { WalkResult, WalkTrace } from "./walk-result";

/** The last stage-2 fault: what the VM exit (reason 48 or 49) would report. */
export class Stage2Fault {
  /** VIOLATION or MISCONFIG (OK when no fault has been recorded since `reset`). */
  outcome: EptOutcome = EPT_OUTCOME.OK;
  /** Exit qualification of a violation (0 for a misconfiguration). */
  qualification = 0;
  misconfig: EptMisconfig = EPT_MISCONFIG.NONE;
  /** The guest-physical address whose translation failed (the VMCS guest-physical-address field). */
  gpa = 0;
  /** The guest-linear address (the VMCS guest-linear-address field), as two halves. */
  laLo = 0;
  laHi = 0;
  /** What the failed translation was for. */
  kind: Stage2Kind = STAGE2_KIND.FINAL;
  /** EPT level of the entry where the EPT walk stopped. */
  level = 0;

  reset(): void {
    this.outcome = EPT_OUTCOME.OK;
    this.qualification = 0;
    this.misconfig = EPT_MISCONFIG.NONE;
    this.gpa = 0;
    this.laLo = 0;
    this.laHi = 0;
    this.kind = STAGE2_KIND.FINAL;
    this.level = 0;
  }
}

const GLA = EPT_VIOLATION.GLA_VALID;
const GLA_FINAL = EPT_VIOLATION.GLA_VALID | EPT_VIOLATION.FINAL_TRANSLATION;

/**
 * EPT as the second stage of a `PageWalker` (SDM Vol. 3C 29.3.3.2, guest paging-structure accesses
 * vs the final access). Every guest-physical address the guest walk touches goes through an EPT
 * walk: entry reads as reads (GLA valid, bit 8 clear), guest A/D updates as read+write, and the
 * final access as itself (GLA valid, bit 8 set, with the linear address's U/S, R/W and XD for the
 * advanced qualification bits and for mode-based execute control).
 *
 * Use: `const stage2 = new EptStage2Translator(new EptWalker(host), eptCtx);
 * const walker = new PageWalker(host, { stage2 }); stage2.attach(walker.result);` — the guest
 * walker reads entries at the translated (host-physical) addresses, so its memory is host memory.
 */
export class EptStage2Translator implements Stage2Translator {
  readonly ept: EptWalker;
  ctx: EptContext;
  readonly fault = new Stage2Fault();
  /** Guest-physical address of the last successful final translation. */
  finalGpa = 0;
  /** EPT page size, permissions (`EptWalkResult.permissions`) and memory type of that translation. */
  finalPageSize = 0;
  finalPermissions = 0;
  finalMemoryType = 0;
  #guest: WalkResult | null = null;

  constructor(ept: EptWalker, ctx: EptContext) {
    this.ept = ept;
    this.ctx = ctx;
  }

  /**
   * Connects the guest walker's result, so that the EPT entry reads and writes of each
   * translation are added to its `memoryReads`/`memoryWrites` (a 2D walk's total references).
   */
  attach(guestResult: WalkResult): void {
    this.#guest = guestResult;
  }

  translate(
    gpa: number,
    kind: Stage2Kind,
    access: number,
    laLo: number,
    laHi: number,
    pageAccess: number,
  ): number {
    let eptAccess: number;
    let linear: number;
    if (kind === STAGE2_KIND.PAGING_READ) {
      eptAccess = EPT_ACCESS.READ;
      linear = GLA;
    } else if (kind === STAGE2_KIND.PAGING_WRITE) {
      // Setting a guest A/D flag is a locked read-modify-write (SDM 29.3.3.2).
      eptAccess = EPT_ACCESS.READ | EPT_ACCESS.WRITE;
      linear = GLA;
    } else {
      eptAccess =
        (access & ACCESS.WRITE) !== 0
          ? EPT_ACCESS.WRITE
          : (access & ACCESS.FETCH) !== 0
            ? EPT_ACCESS.FETCH
            : EPT_ACCESS.READ;
      linear = GLA_FINAL;
      if ((pageAccess & PAGE_ACCESS.USER) !== 0) linear |= EPT_VIOLATION.USER_LINEAR;
      if ((pageAccess & PAGE_ACCESS.WRITE) !== 0) linear |= EPT_VIOLATION.WRITABLE_LINEAR;
      if ((pageAccess & PAGE_ACCESS.EXEC) === 0) linear |= EPT_VIOLATION.EXECUTE_DISABLE_LINEAR;
    }

    const ept = this.ept;
    const ok = ept.walk(this.ctx, gpa, eptAccess, linear);
    const r = ept.result;
    const guest = this.#guest;
    if (guest !== null) {
      guest.memoryReads += r.entryReads;
      guest.memoryWrites += r.entryWrites;
    }
    if (ok) {
      if (kind === STAGE2_KIND.FINAL) {
        this.finalGpa = gpa;
        this.finalPageSize = r.pageSize;
        this.finalPermissions = r.permissions;
        this.finalMemoryType = r.memoryType;
      }
      return r.hpa;
    }
    const f = this.fault;
    f.outcome = r.outcome;
    f.qualification = r.qualification;
    f.misconfig = r.misconfig;
    f.gpa = gpa;
    f.laLo = laLo >>> 0;
    f.laHi = laHi >>> 0;
    f.kind = kind;
    f.level = r.level;
    return -1;
  }
}

export interface TwoDimensionalWalkerOptions {
  /** Guest A/D policy (`PageWalker`); default HARDWARE. */
  readonly guestAdUpdate?: AdUpdate;
  /** EPT A/D policy (`EptWalker`), used when EPTP bit 6 is set; default HARDWARE. */
  readonly eptAdUpdate?: AdUpdate;
}

/**
 * A guest linear-address walk under EPT (SDM Vol. 3C 29.3: guest paging with every guest-physical
 * address translated through EPT). Built from host memory (holding both the guest's tables, at the
 * host addresses EPT maps them to, and the EPT tables), the guest paging context and the EPT context.
 *
 * After `walk`: `result.ok` with `result.pa` the host-physical address; or `result.stage` GUEST with
 * the #PF `result.errorCode`; or STAGE2_PAGING_STRUCTURE / STAGE2_FINAL with `fault` holding the EPT
 * violation or misconfiguration, its qualification, guest-physical and guest-linear addresses.
 * `result.memoryReads` counts every memory reference: guest entries plus EPT entries (a 4-level
 * guest under 4-level EPT reads up to 4 × 5 + 4 = 24).
 */
export class TwoDimensionalWalker {
  readonly memory: PhysicalMemory;
  readonly ept: EptWalker;
  readonly stage2: EptStage2Translator;
  readonly guest: PageWalker;
  readonly result: WalkResult;
  readonly fault: Stage2Fault;
  #guestContext: PagingContext;

  constructor(
    hostMemory: PhysicalMemory,
    guestContext: PagingContext,
    eptContext: EptContext,
    options: TwoDimensionalWalkerOptions = {},
  ) {
    this.memory = hostMemory;
    this.ept = new EptWalker(
      hostMemory,
      options.eptAdUpdate === undefined ? {} : { adUpdate: options.eptAdUpdate },
    );
    this.stage2 = new EptStage2Translator(this.ept, eptContext);
    this.guest = new PageWalker(hostMemory, {
      stage2: this.stage2,
      ...(options.guestAdUpdate === undefined ? {} : { adUpdate: options.guestAdUpdate }),
    });
    this.stage2.attach(this.guest.result);
    this.result = this.guest.result;
    this.fault = this.stage2.fault;
    this.#guestContext = guestContext;
  }

  get guestContext(): PagingContext {
    return this.#guestContext;
  }

  get eptContext(): EptContext {
    return this.stage2.ctx;
  }

  /** After a guest register change (MOV to CR0/CR3/CR4, EFER). */
  setGuestContext(ctx: PagingContext): void {
    this.#guestContext = ctx;
  }

  /** After an EPTP or mode-based-execute change. */
  setEptContext(ctx: EptContext): void {
    this.stage2.ctx = ctx;
  }

  /**
   * Translates the guest-linear address `(laHi << 32) | laLo` for `access` (`ACCESS` bits).
   * `trace` records the guest entries read (at their host-physical addresses). Returns `result.ok`.
   */
  walk(laLo: number, laHi: number, access: number, trace: WalkTrace | null = null): boolean {
    this.fault.reset();
    return this.guest.walk(this.#guestContext, laLo, laHi, access, trace);
  }
}
