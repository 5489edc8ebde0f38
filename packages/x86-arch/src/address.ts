/**
 * Branded address types (DESIGN.md §2.7). They are plain numbers at run time, so they cost nothing
 * on hot paths, but the type checker keeps a guest-physical address from being passed where a
 * host-physical one is expected: the classic nested-virtualisation bug.
 *
 * Physical addresses are at most 52 bits (SDM 4.1.4, MAXPHYADDR ≤ 52), so every one is exact in a
 * double. Linear addresses may be 57 bits wide with LA57; the walker therefore takes them as two
 * 32-bit halves, and `Gva` is used for addresses that fit in 53 bits (the common 48-bit case with
 * the sign-extension bits dropped).
 */
declare const brand: unique symbol;
type Branded<T, B extends string> = T & { readonly [brand]: B };

/** Guest-virtual (linear) address, canonical sign bits dropped; must be < 2^53. */
export type Gva = Branded<number, "Gva">;
/** Guest-physical address (what a guest's page tables produce; what EPT translates). */
export type Gpa = Branded<number, "Gpa">;
/** Host-physical address (what EPT produces; an index into host memory). */
export type Hpa = Branded<number, "Hpa">;

/** Largest physical address width the architecture allows (SDM 4.1.4). */
export const MAX_PHYSICAL_ADDRESS_BITS = 52;
const PHYSICAL_LIMIT = 2 ** MAX_PHYSICAL_ADDRESS_BITS;

function checkAddress(kind: string, value: number, limit: number): void {
  if (!Number.isInteger(value) || value < 0 || value >= limit) {
    throw new RangeError(`${kind} ${String(value)} is not an integer in [0, 2^${Math.log2(limit)})`);
  }
}

/** Brands a guest-virtual address after checking it is a non-negative integer below 2^53. */
export function gva(value: number): Gva {
  checkAddress("guest-virtual address", value, 2 ** 53);
  return value as Gva;
}

/** Brands a guest-physical address after checking it is below 2^52. */
export function gpa(value: number): Gpa {
  checkAddress("guest-physical address", value, PHYSICAL_LIMIT);
  return value as Gpa;
}

/** Brands a host-physical address after checking it is below 2^52. */
export function hpa(value: number): Hpa {
  checkAddress("host-physical address", value, PHYSICAL_LIMIT);
  return value as Hpa;
}

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 4096;
/** Page frame number of an address (address >> 12, exact above 2^32). */
export function pfn(address: number): number {
  return Math.floor(address / PAGE_SIZE);
}
