import {
  ACCESS_CASE_ENTRY_GPAS,
  ACCESS_CASE_LAYOUT,
  type AccessCaseCpu,
  type AccessCaseEntries,
  type AdUpdate,
  accessCasePagingContext,
  DenseMemory,
  type PageWalker,
  type PagingContext,
} from "@nestvisor/x86-arch";
import type { ModelParts } from "../model-parts";
import type { AccessTarget } from "./access-target";

const L = ACCESS_CASE_LAYOUT;
const PRESENT_WRITABLE_USER_ACCESSED = 0x27;

/**
 * The cases on the model's page walker alone (its `pageWalker` hook): guest tables in flat memory,
 * the walker's A/D policy as given. With 5 levels a fixed PML5E (A already set) sits above the PML4.
 */
export class WalkerAccessTarget implements AccessTarget {
  readonly policy: AdUpdate;
  readonly memory: DenseMemory;
  readonly walker: PageWalker;
  readonly levels: 4 | 5;
  pa = 0;
  errorCode = 0;
  problem: string | null = null;
  readonly #contexts = new Map<number, PagingContext>();
  readonly #la: { lo: number; hi: number };

  constructor(parts: ModelParts, policy: AdUpdate, levels: 4 | 5, la: { lo: number; hi: number }) {
    this.policy = policy;
    this.levels = levels;
    this.memory = new DenseMemory(L.MEMORY_BYTES);
    this.walker = parts.pageWalker(this.memory, { adUpdate: policy });
    this.#la = la;
    if (levels === 5) this.memory.write64(L.PML5E, L.PML4 | PRESENT_WRITABLE_USER_ACCESSED, 0);
  }

  /** The PML5E is unchanged (a 5-level walk never needs to write it: A is set). */
  pml5eIntact(): boolean {
    return this.levels === 4 || this.memory.read32(L.PML5E) === (L.PML4 | PRESENT_WRITABLE_USER_ACCESSED);
  }

  store(e: AccessCaseEntries): void {
    const m = this.memory;
    for (let i = 0; i < 4; i++) m.write64(ACCESS_CASE_ENTRY_GPAS[i]!, e[2 * i]!, e[2 * i + 1]!);
  }

  load(out: AccessCaseEntries): void {
    const m = this.memory;
    for (let i = 0; i < 4; i++) {
      out[2 * i] = m.read32(ACCESS_CASE_ENTRY_GPAS[i]!);
      out[2 * i + 1] = m.read32(ACCESS_CASE_ENTRY_GPAS[i]! + 4);
    }
  }

  context(cpu: AccessCaseCpu): PagingContext {
    let ctx = this.#contexts.get(cpu.key);
    if (ctx === undefined) {
      ctx = accessCasePagingContext(cpu, this.levels);
      this.#contexts.set(cpu.key, ctx);
    }
    return ctx;
  }

  access(cpu: AccessCaseCpu, access: number): boolean {
    const w = this.walker;
    const ok = w.walk(this.context(cpu), this.#la.lo, this.#la.hi, access);
    this.pa = w.result.pa;
    this.errorCode = w.result.errorCode;
    return ok;
  }
}
