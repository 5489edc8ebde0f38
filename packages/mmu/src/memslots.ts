import { PAGE_SIZE } from "@nestvisor/x86-arch";

/**
 * A VM's memory slots (kvm: `struct kvm_memory_slot`, `struct kvm_memslots`; the
 * KVM_SET_USER_MEMORY_REGION ioctl): ranges of guest frame numbers backed by host memory.
 *
 * KVM backs a slot with a userspace virtual range and gets host pages through the host MMU; the
 * model backs a slot with one contiguous range of *host-physical* memory, so a gfn translates to
 * `hostBase + (gfn - baseGfn) * 4096`. One address space is modelled (KVM has a second one for
 * SMM). Dirty logging and the other slot flags are not modelled; read-only slots are
 * (KVM_MEM_READONLY).
 *
 * Lookups are the hot path (every TDP fault does one): the slots are kept sorted by base gfn in
 * typed arrays, searched by bisection after a one-entry cache of the last slot hit
 * (kvm: `search_memslots` with its `last_used_slot`).
 */
export interface MemslotSpec {
  /** Slot number (kvm: `kvm_userspace_memory_region.slot`); the smallest free number when absent. */
  readonly id?: number;
  /** First guest frame number. */
  readonly baseGfn: number;
  /** Number of 4-KiB pages. */
  readonly npages: number;
  /** Host-physical address of the page backing `baseGfn` (4-KiB aligned). */
  readonly hostBase: number;
  /** KVM_MEM_READONLY: guest writes exit to userspace as MMIO. */
  readonly readOnly?: boolean;
}

/** A slot as the model keeps it. */
export interface Memslot {
  readonly id: number;
  readonly baseGfn: number;
  readonly npages: number;
  readonly hostBase: number;
  readonly readOnly: boolean;
}

/** What happened to the slots (kvm: `enum kvm_mr_change`, FLAGS_ONLY not modelled). */
export const MEMSLOT_CHANGE = {
  CREATE: "create",
  DELETE: "delete",
  MOVE: "move",
} as const;
export type MemslotChangeKind = (typeof MEMSLOT_CHANGE)[keyof typeof MEMSLOT_CHANGE];

export interface MemslotChange {
  readonly kind: MemslotChangeKind;
  /** The slot before the change (CREATE: the new slot). */
  readonly old: Memslot;
  /** The slot after the change (DELETE: null). */
  readonly current: Memslot | null;
}

export type MemslotListener = (change: MemslotChange) => void;

/** Guest-physical addresses are below 2^52 (SDM 4.1.4), so gfns are below 2^40. */
const GFN_LIMIT = 2 ** 40;
const HPA_LIMIT = 2 ** 52;
/** Slot numbers are 16 bits (kvm: `__kvm_set_memory_region` takes `(u16)mem->slot`; bits 31:16 are the address space). */
const SLOT_ID_LIMIT = 0x10000;

export class Memslots {
  /** Sorted by base gfn: the search arrays. */
  #base = new Float64Array(8);
  #npages = new Float64Array(8);
  #host = new Float64Array(8);
  #readOnly = new Uint8Array(8);
  #ids = new Int32Array(8);
  #count = 0;
  /** Index of the last slot a lookup hit, or -1. */
  #lastHit = -1;
  /** Bumped on every change (kvm: `kvm_memslots.generation`). */
  #generation = 0;
  readonly #listeners: MemslotListener[] = [];

  /** Number of slots. */
  get count(): number {
    return this.#count;
  }

  /** Incremented by every create, delete and move. */
  get generation(): number {
    return this.#generation;
  }

  /**
   * Index (in base-gfn order) of the slot holding `gfn`, or -1 (kvm: `__gfn_to_memslot` →
   * `search_memslots`). The index is valid until the next change.
   */
  lookup(gfn: number): number {
    const last = this.#lastHit;
    if (last >= 0 && gfn >= this.#base[last]! && gfn < this.#base[last]! + this.#npages[last]!) return last;
    let lo = 0;
    let hi = this.#count - 1;
    // Last slot whose base is <= gfn.
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#base[mid]! <= gfn) lo = mid + 1;
      else hi = mid - 1;
    }
    if (hi < 0 || gfn >= this.#base[hi]! + this.#npages[hi]!) return -1;
    this.#lastHit = hi;
    return hi;
  }

  /** Host-physical address of `gfn`'s page in the slot at `index` (kvm: `__gfn_to_pfn_memslot`). */
  hostAddressAt(index: number, gfn: number): number {
    return this.#host[index]! + (gfn - this.#base[index]!) * PAGE_SIZE;
  }

  /** Host-physical address backing `gfn`, or -1 when no slot holds it. */
  gfnToHpa(gfn: number): number {
    const index = this.lookup(gfn);
    return index < 0 ? -1 : this.hostAddressAt(index, gfn);
  }

  baseGfnAt(index: number): number {
    return this.#base[index]!;
  }

  npagesAt(index: number): number {
    return this.#npages[index]!;
  }

  hostBaseAt(index: number): number {
    return this.#host[index]!;
  }

  readOnlyAt(index: number): boolean {
    return this.#readOnly[index] === 1;
  }

  idAt(index: number): number {
    return this.#ids[index]!;
  }

  /** The slot numbered `id`, or undefined. */
  get(id: number): Memslot | undefined {
    const index = this.#indexOfId(id);
    return index < 0 ? undefined : this.#slotAt(index);
  }

  /** All slots in base-gfn order (allocates: for reports and tests). */
  list(): Memslot[] {
    const out: Memslot[] = [];
    for (let i = 0; i < this.#count; i++) out.push(this.#slotAt(i));
    return out;
  }

  /** Calls `listener` after every change; returns a function that removes it. */
  onChange(listener: MemslotListener): () => void {
    this.#listeners.push(listener);
    return () => {
      const at = this.#listeners.indexOf(listener);
      if (at >= 0) this.#listeners.splice(at, 1);
    };
  }

  /**
   * Creates a slot (KVM_MR_CREATE). Throws a RangeError for a malformed range, a slot number in
   * use, or a gfn range overlapping another slot (kvm: -EEXIST). Returns the slot number.
   */
  add(spec: MemslotSpec): number {
    const id = spec.id ?? this.#freeId();
    if (!Number.isInteger(id) || id < 0 || id >= SLOT_ID_LIMIT) {
      throw new RangeError(`memslot number ${id} is outside [0, 0x${SLOT_ID_LIMIT.toString(16)})`);
    }
    if (this.#indexOfId(id) >= 0) throw new RangeError(`memslot ${id} already exists`);
    const slot: Memslot = {
      id,
      baseGfn: spec.baseGfn,
      npages: spec.npages,
      hostBase: spec.hostBase,
      readOnly: spec.readOnly ?? false,
    };
    this.#check(slot, -1);
    this.#insert(slot);
    this.#changed({ kind: MEMSLOT_CHANGE.CREATE, old: slot, current: slot });
    return id;
  }

  /** Deletes slot `id` (KVM_MR_DELETE); throws a RangeError if there is none. */
  delete(id: number): Memslot {
    const index = this.#indexOfId(id);
    if (index < 0) throw new RangeError(`no memslot ${id} to delete`);
    const old = this.#slotAt(index);
    this.#remove(index);
    this.#changed({ kind: MEMSLOT_CHANGE.DELETE, old, current: null });
    return old;
  }

  /** Moves slot `id` to a new base gfn, same size and backing (KVM_MR_MOVE). */
  move(id: number, newBaseGfn: number): Memslot {
    const index = this.#indexOfId(id);
    if (index < 0) throw new RangeError(`no memslot ${id} to move`);
    const old = this.#slotAt(index);
    const current: Memslot = { ...old, baseGfn: newBaseGfn };
    this.#check(current, id);
    this.#remove(index);
    this.#insert(current);
    this.#changed({ kind: MEMSLOT_CHANGE.MOVE, old, current });
    return current;
  }

  #changed(change: MemslotChange): void {
    this.#generation++;
    this.#lastHit = -1;
    for (const listener of [...this.#listeners]) listener(change);
  }

  #slotAt(index: number): Memslot {
    return {
      id: this.#ids[index]!,
      baseGfn: this.#base[index]!,
      npages: this.#npages[index]!,
      hostBase: this.#host[index]!,
      readOnly: this.#readOnly[index] === 1,
    };
  }

  #indexOfId(id: number): number {
    for (let i = 0; i < this.#count; i++) if (this.#ids[i] === id) return i;
    return -1;
  }

  #freeId(): number {
    const used = new Set<number>();
    for (let i = 0; i < this.#count; i++) used.add(this.#ids[i]!);
    let id = 0;
    while (used.has(id)) id++;
    return id;
  }

  /** Validates a slot's range against the architecture and the other slots (ignoring `skipId`). */
  #check(slot: Memslot, skipId: number): void {
    const { baseGfn, npages, hostBase } = slot;
    if (!Number.isInteger(npages) || npages <= 0)
      throw new RangeError(`memslot size ${npages} pages is not positive`);
    if (!Number.isInteger(baseGfn) || baseGfn < 0 || baseGfn + npages > GFN_LIMIT) {
      throw new RangeError(
        `memslot gfns [0x${baseGfn.toString(16)}, +${npages}) leave the 52-bit guest-physical space`,
      );
    }
    if (!Number.isInteger(hostBase) || hostBase < 0 || hostBase % PAGE_SIZE !== 0) {
      throw new RangeError(`memslot host base 0x${hostBase.toString(16)} is not a 4-KiB-aligned address`);
    }
    if (hostBase + npages * PAGE_SIZE > HPA_LIMIT) {
      throw new RangeError(
        `memslot host range at 0x${hostBase.toString(16)} leaves the 52-bit physical space`,
      );
    }
    for (let i = 0; i < this.#count; i++) {
      if (this.#ids[i] === skipId) continue;
      const b = this.#base[i]!;
      if (baseGfn < b + this.#npages[i]! && b < baseGfn + npages) {
        throw new RangeError(
          `memslot gfns [0x${baseGfn.toString(16)}, 0x${(baseGfn + npages).toString(16)}) overlap memslot ${this.#ids[i]}`,
        );
      }
    }
  }

  #insert(slot: Memslot): void {
    if (this.#count === this.#base.length) this.#grow();
    let at = this.#count;
    while (at > 0 && this.#base[at - 1]! > slot.baseGfn) at--;
    for (let i = this.#count; i > at; i--) this.#copy(i - 1, i);
    this.#base[at] = slot.baseGfn;
    this.#npages[at] = slot.npages;
    this.#host[at] = slot.hostBase;
    this.#readOnly[at] = slot.readOnly ? 1 : 0;
    this.#ids[at] = slot.id;
    this.#count++;
  }

  #remove(index: number): void {
    for (let i = index; i < this.#count - 1; i++) this.#copy(i + 1, i);
    this.#count--;
  }

  #copy(from: number, to: number): void {
    this.#base[to] = this.#base[from]!;
    this.#npages[to] = this.#npages[from]!;
    this.#host[to] = this.#host[from]!;
    this.#readOnly[to] = this.#readOnly[from]!;
    this.#ids[to] = this.#ids[from]!;
  }

  #grow(): void {
    const size = this.#base.length * 2;
    const grow = <T extends Float64Array | Uint8Array | Int32Array>(old: T, make: (n: number) => T): T => {
      const next = make(size);
      next.set(old);
      return next;
    };
    this.#base = grow(this.#base, (n) => new Float64Array(n));
    this.#npages = grow(this.#npages, (n) => new Float64Array(n));
    this.#host = grow(this.#host, (n) => new Float64Array(n));
    this.#readOnly = grow(this.#readOnly, (n) => new Uint8Array(n));
    this.#ids = grow(this.#ids, (n) => new Int32Array(n));
  }
}
