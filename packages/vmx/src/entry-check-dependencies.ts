/**
 * What the VM-entry check rules depended on when they last ran, so that a later entry can re-run
 * only the rules whose inputs changed (self-adjusting computation: a rule that reads the same
 * values gives the same result).
 *
 * A rule's inputs are (a) the context slots it read (`entry-check-context.ts`: vmcs12 fields and
 * derived values such as the effective secondary controls), recorded here, and (b) the input
 * objects themselves (capabilities, vCPU and host facts, the memory's size), which the checker
 * compares by identity. Anything else — guest memory *content*, a WRMSR from the MSR-load list, a
 * field without a slot — makes the rule "opaque": it is re-run on every entry.
 *
 * The record is slot-major (for each slot, the set of rules that read it) so that the rules a few
 * changed slots affect are found without visiting every rule. A rule that runs again adds its new
 * reads without removing its old ones: a stale reader only costs an extra re-run, never a missed
 * one, and `clear` (a full evaluation) starts afresh.
 *
 * The context (`entry-check-context.ts`) writes these tables directly on its hot path, exactly as
 * `recordRead` and `setOpaque` do.
 */
export class EntryCheckDependencies {
  readonly ruleCount: number;
  readonly slotCount: number;
  /** 32-bit words in a set of rules. */
  readonly ruleWords: number;
  /** 32-bit words in a set of slots. */
  readonly slotWords: number;
  /** Row s (words s·ruleWords …): the rules that read slot s since the last `clear`. */
  readonly readers: Uint32Array;
  /** The rules whose last run did something their slots do not determine. */
  readonly opaque: Uint32Array;
  /** Every slot read since the last `clear`, by a rule or by the context itself. */
  readonly union: Uint32Array;

  constructor(ruleCount: number, slotCount: number) {
    if (slotCount > 0x7fff) throw new RangeError(`too many slots: ${slotCount}`);
    this.ruleCount = ruleCount;
    this.slotCount = slotCount;
    this.ruleWords = Math.max(1, Math.ceil(ruleCount / 32));
    this.slotWords = Math.max(1, Math.ceil(slotCount / 32));
    this.readers = new Uint32Array(slotCount * this.ruleWords);
    this.opaque = new Uint32Array(this.ruleWords);
    this.union = new Uint32Array(this.slotWords);
  }

  /** Forgets everything (before a full evaluation). */
  clear(): void {
    this.readers.fill(0);
    this.opaque.fill(0);
    this.union.fill(0);
  }

  /** Records that rule `rule` read slot `slot`. */
  recordRead(rule: number, slot: number): void {
    this.readers[slot * this.ruleWords + (rule >>> 5)]! |= 1 << (rule & 31);
    this.union[slot >>> 5]! |= 1 << (slot & 31);
  }

  /** Marks rule `rule` opaque (re-run on every entry) or not. */
  setOpaque(rule: number, opaque: boolean): void {
    if (opaque) this.opaque[rule >>> 5]! |= 1 << (rule & 31);
    else this.opaque[rule >>> 5]! &= ~(1 << (rule & 31));
  }

  /**
   * The rules that must run again when the slots set in `changed` (a set of slots) changed: the
   * opaque rules and every reader of a changed slot, written to `out` (a set of rules).
   */
  affected(changed: Uint32Array, out: Uint32Array): void {
    const ruleWords = this.ruleWords;
    const readers = this.readers;
    for (let w = 0; w < ruleWords; w++) out[w] = this.opaque[w]!;
    for (let sw = 0; sw < changed.length; sw++) {
      let bits = changed[sw]!;
      while (bits !== 0) {
        const low = bits & -bits;
        bits ^= low;
        const row = ((sw << 5) | (31 - Math.clz32(low))) * ruleWords;
        for (let w = 0; w < ruleWords; w++) out[w]! |= readers[row + w]!;
      }
    }
  }

  /** The slots rule `rule` read since the last `clear`, ascending (tests and reports). */
  slotsOf(rule: number): number[] {
    const out: number[] = [];
    const word = rule >>> 5;
    const bit = 1 << (rule & 31);
    for (let slot = 0; slot < this.slotCount; slot++) {
      if ((this.readers[slot * this.ruleWords + word]! & bit) !== 0) out.push(slot);
    }
    return out;
  }

  /** True when rule `rule` is opaque. */
  isOpaque(rule: number): boolean {
    return (this.opaque[rule >>> 5]! & (1 << (rule & 31))) !== 0;
  }

  /** The slots in the union, ascending. */
  unionSlots(): number[] {
    const out: number[] = [];
    for (let slot = 0; slot < this.slotCount; slot++) {
      if ((this.union[slot >>> 5]! & (1 << (slot & 31))) !== 0) out.push(slot);
    }
    return out;
  }
}
