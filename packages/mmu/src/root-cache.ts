import type { Meter } from "@nestvisor/vmx";
import {
  INVALID_PGD,
  KVM_MMU_ROOT,
  kvmMmuRootPrevious,
  MMU_CONTEXT_KIND,
  type MmuContext,
} from "./mmu-context";
import { MMU_EVENTS } from "./mmu-events";
import type { MmuFlags } from "./mmu-flags";
import { PAGE_ROLE, roleLevel } from "./page-role";
import { ROOT_LEVEL } from "./reserved-bits";
import { INVALID_ROOT, NO_SHADOW_PAGE, type RootBackend } from "./root-backend";

/**
 * A context's root cache (kvm-mmu.md §3): the fast PGD switch that looks a new CR3/EPTP up among
 * the current root and three previous ones, freeing roots, and loading a root through a
 * `RootBackend`. The behaviour of three seed series is selected by flags:
 *
 * - `reuseCurrentRoot` (c2): compare the current root first (kvm: cached_root_find_and_keep_current)
 *   or not (the pre-v5.7 victim cache, kvm: cached_root_available).
 * - `fastSwitchIgnoresCr3ForDirect` (c1): direct roots match on role alone (kvm: is_root_usable)
 *   or also on the CR3 they were loaded with.
 * - `keepRootsOnRoleChange` (b): today's fast_pgd_switch (special roots freed first, an invalid
 *   current root searched around by cached_root_find_without_current) or the pre-v5.18 one (only
 *   with 64-bit levels, an invalid current root rotated into prev[0]).
 *
 * Every function works in place on the context's numbers and typed arrays and allocates nothing.
 */
export interface RootCacheEnv {
  readonly backend: RootBackend;
  readonly meter: Meter;
  readonly flags: MmuFlags;
}

/** Outcome of a lookup: `MISS`, `CURRENT`, or 1 + i for a hit on prev[i]. */
export const PGD_LOOKUP = {
  MISS: -1,
  CURRENT: 0,
  PREV_0: 1,
  PREV_1: 2,
  PREV_2: 3,
} as const;

const EV_LOAD = MMU_EVENTS.ROOT_LOAD;
const EV_DROP = MMU_EVENTS.ROOT_DROP;
const EV_HIT_CURRENT = MMU_EVENTS.PGD_HIT_CURRENT;
const EV_HIT_PREV = MMU_EVENTS.PGD_HIT_PREV;
const EV_MISS = MMU_EVENTS.PGD_MISS;

/**
 * Whether a cached root can serve `pgd` with `role` (kvm: is_root_usable): the slot is valid; for
 * an indirect role (or any role without c1) its pgd equals `pgd` exactly — PCID bits of a CR3 and
 * flag bits of an EPTP included; it has a page behind it (special PAE/PML4/PML5 roots never
 * qualify); and that page's role word, `invalid` bit included, equals `role`.
 */
export function isRootUsable(
  backend: RootBackend,
  hpa: number,
  rootPgd: number,
  pgd: number,
  role: number,
  ignoreCr3ForDirect: boolean,
): boolean {
  if (hpa === INVALID_ROOT) return false;
  if (!(ignoreCr3ForDirect && (role & PAGE_ROLE.DIRECT) !== 0) && pgd !== rootPgd) return false;
  const word = backend.rootRoleWord(hpa);
  if (word === NO_SHADOW_PAGE) return false;
  return word >>> 0 === role >>> 0;
}

/** Releases one valid slot's reference (kvm: mmu_free_root_page). */
function dropRoot(ctx: MmuContext, hpa: number, env: RootCacheEnv): void {
  env.backend.putRoot(hpa);
  ctx.stats.drops++;
  env.meter.count(EV_DROP);
}

/**
 * Frees the roots `mask` selects (kvm: kvm_mmu_free_roots): KVM_MMU_ROOT.CURRENT and/or
 * kvmMmuRootPrevious(i). A freed previous slot keeps its pgd (only hpa becomes invalid); a freed
 * current root gets pgd 0. Dropping a reference never destroys page tables here: that is the
 * backend's decision. Throws a RangeError for bits outside KVM_MMU_ROOT.ALL (KVM WARNs).
 */
export function kvmMmuFreeRoots(ctx: MmuContext, mask: number, env: RootCacheEnv): void {
  if ((mask & ~ctx.allRoots) !== 0) {
    throw new RangeError(
      `root mask 0x${mask.toString(16)} has bits outside KVM_MMU_ROOTS_ALL (0x${ctx.allRoots.toString(16)})`,
    );
  }
  const freeCurrent = (mask & KVM_MMU_ROOT.CURRENT) !== 0 && ctx.rootHpa !== INVALID_ROOT;
  const prevHpa = ctx.prevHpa;
  for (let i = 0; i < ctx.prevHpa.length; i++) {
    const hpa = prevHpa[i]!;
    if ((mask & kvmMmuRootPrevious(i)) !== 0 && hpa !== INVALID_ROOT) {
      dropRoot(ctx, hpa, env);
      prevHpa[i] = INVALID_ROOT;
    }
  }
  if (freeCurrent) {
    dropRoot(ctx, ctx.rootHpa, env);
    ctx.rootHpa = INVALID_ROOT;
    ctx.rootPgd = 0;
  }
}

/**
 * Looks the key up with the current root valid or not, rotating the cache as KVM does (kvm:
 * cached_root_find_and_keep_current; before v5.7 cached_root_available). With `checkCurrent` (c2)
 * a usable current root is a hit and nothing moves. Otherwise each step swaps the root in hand
 * with prev[i] — `C|P0 P1 P2` becomes `P0|C P1 P2`, then `P1|C P0 P2`, then `P2|C P0 P1` — so a
 * hit at i leaves the cache in MRU order, and a miss leaves the old prev[2] (the LRU entry) as the
 * current root for the caller to free.
 */
export function cachedRootFindAndKeepCurrent(
  ctx: MmuContext,
  pgd: number,
  role: number,
  env: RootCacheEnv,
  checkCurrent: boolean,
): number {
  const backend = env.backend;
  const ignoreCr3 = env.flags.fastSwitchIgnoresCr3ForDirect;
  if (checkCurrent && isRootUsable(backend, ctx.rootHpa, ctx.rootPgd, pgd, role, ignoreCr3)) {
    return PGD_LOOKUP.CURRENT;
  }
  const prevPgd = ctx.prevPgd;
  const prevHpa = ctx.prevHpa;
  for (let i = 0; i < ctx.prevHpa.length; i++) {
    const hpa = prevHpa[i]!;
    const p = prevPgd[i]!;
    prevHpa[i] = ctx.rootHpa;
    prevPgd[i] = ctx.rootPgd;
    ctx.rootHpa = hpa;
    ctx.rootPgd = p;
    if (isRootUsable(backend, hpa, p, pgd, role, ignoreCr3)) return 1 + i;
  }
  return PGD_LOOKUP.MISS;
}

/**
 * Looks the key up while the current root is invalid (kvm: cached_root_find_without_current, v5.18):
 * the first usable prev[i] becomes current, the entries after it move up one place, and prev[2]
 * becomes invalid (its pgd keeps a stale value, harmless because hpa is checked first). A miss
 * changes nothing.
 */
export function cachedRootFindWithoutCurrent(
  ctx: MmuContext,
  pgd: number,
  role: number,
  env: RootCacheEnv,
): number {
  const backend = env.backend;
  const ignoreCr3 = env.flags.fastSwitchIgnoresCr3ForDirect;
  const prevPgd = ctx.prevPgd;
  const prevHpa = ctx.prevHpa;
  let found = -1;
  for (let i = 0; i < ctx.prevHpa.length; i++) {
    if (isRootUsable(backend, prevHpa[i]!, prevPgd[i]!, pgd, role, ignoreCr3)) {
      found = i;
      break;
    }
  }
  if (found < 0) return PGD_LOOKUP.MISS;
  const hpa = prevHpa[found]!;
  const p = prevPgd[found]!;
  prevHpa[found] = ctx.rootHpa;
  prevPgd[found] = ctx.rootPgd;
  ctx.rootHpa = hpa;
  ctx.rootPgd = p;
  let i = found;
  for (; i < ctx.prevHpa.length - 1; i++) {
    prevHpa[i] = prevHpa[i + 1]!;
    prevPgd[i] = prevPgd[i + 1]!;
  }
  prevHpa[i] = INVALID_ROOT;
  return 1 + found;
}

/**
 * The lookup part of a PGD switch (kvm: fast_pgd_switch; before v5.18 fast_cr3_switch). Returns a
 * PGD_LOOKUP value; on a miss the current root may hold the LRU entry, which `kvmMmuNewPgd` frees.
 */
export function fastPgdSwitch(ctx: MmuContext, pgd: number, role: number, env: RootCacheEnv): number {
  const flags = env.flags;
  if (!flags.keepRootsOnRoleChange) {
    // kvm (pre-v5.18): fast_cr3_switch — "limit the fast switch to 64-bit hosts+VMs": the old
    // guest level (cpu role) and shadow level (root role) must both be ≥ 4. The current root,
    // valid or not, is then rotated into prev[0].
    if (roleLevel(ctx.cpuRoleBase) < ROOT_LEVEL.PT64_4 || roleLevel(ctx.rootRole) < ROOT_LEVEL.PT64_4) {
      return PGD_LOOKUP.MISS;
    }
    return cachedRootFindAndKeepCurrent(ctx, pgd, role, env, flags.reuseCurrentRoot);
  }
  // kvm: fast_pgd_switch — a special (PAE/PML4/PML5 wrapper) current root is never cached.
  if (ctx.rootHpa !== INVALID_ROOT && env.backend.rootRoleWord(ctx.rootHpa) === NO_SHADOW_PAGE) {
    kvmMmuFreeRoots(ctx, KVM_MMU_ROOT.CURRENT, env);
  }
  if (ctx.rootHpa !== INVALID_ROOT) {
    return cachedRootFindAndKeepCurrent(ctx, pgd, role, env, flags.reuseCurrentRoot);
  }
  return cachedRootFindWithoutCurrent(ctx, pgd, role, env);
}

/**
 * Switches the context to `pgd` (kvm: kvm_mmu_new_pgd, with the role explicit as in the pre-v5.18
 * __kvm_mmu_new_pgd; today callers pass the context's own `rootRole`). A hit makes the cached root
 * current and counts PGD_HIT_CURRENT or PGD_HIT_PREV. A miss frees whatever is current, leaving no
 * root (the next `kvmMmuReload` loads one) and counts PGD_MISS. Returns whether it hit.
 */
export function kvmMmuNewPgd(ctx: MmuContext, pgd: number, role: number, env: RootCacheEnv): boolean {
  const r = fastPgdSwitch(ctx, pgd, role, env);
  if (r === PGD_LOOKUP.MISS) {
    // kvm: the LRU root left current by the rotation (or the root the level check skipped) is freed.
    kvmMmuFreeRoots(ctx, KVM_MMU_ROOT.CURRENT, env);
    ctx.stats.misses++;
    env.meter.count(EV_MISS);
    return false;
  }
  if (r === PGD_LOOKUP.CURRENT) {
    ctx.stats.hitCurrent++;
    env.meter.count(EV_HIT_CURRENT);
  } else {
    ctx.stats.hitPrev[r - 1]!++;
    env.meter.count(EV_HIT_PREV);
  }
  return true;
}

/**
 * Gives the context a current root (kvm: kvm_mmu_load → mmu_alloc_direct_roots /
 * mmu_alloc_shadow_roots): the backend finds or builds a root for `rootRole` (and, for an indirect
 * role, the guest table `guestPgd` points to). The slot records `guestPgd` — or 0 for a direct
 * root with c1, which ignores it. Counts ROOT_LOAD. Throws if the context already has a root (the
 * reference would leak) or is the walk-only nested_mmu.
 *
 * KVM ends every load with a flush of the current context (kvm: kvm_mmu_load →
 * kvm_x86_call(flush_tlb_current), since the new root's provenance is unknown). That is a direct
 * vendor call, not a KVM_REQ request, so it is not a TLB_FLUSH_REQUEST: it is the caller's to count,
 * exactly once per ROOT_LOAD (`kvmMmuReload` returning true).
 */
export function kvmMmuLoad(ctx: MmuContext, guestPgd: number, env: RootCacheEnv): void {
  if (ctx.kind === MMU_CONTEXT_KIND.NESTED_MMU) throw new Error("nested_mmu never has roots");
  if (ctx.rootHpa !== INVALID_ROOT) {
    throw new Error(`kvm_mmu_load on ${ctx.kind} with a valid current root 0x${ctx.rootHpa.toString(16)}`);
  }
  ctx.stats.loads++;
  env.meter.count(EV_LOAD);
  if ((ctx.rootRole & PAGE_ROLE.DIRECT) !== 0) {
    ctx.rootHpa = env.backend.allocDirectRoot(ctx.rootRole);
    // kvm: mmu_alloc_direct_roots — "root.pgd is ignored for direct MMUs" (c1); before it the
    // CR3 at load time was recorded and compared.
    ctx.rootPgd = env.flags.fastSwitchIgnoresCr3ForDirect ? 0 : guestPgd;
  } else {
    ctx.rootHpa = env.backend.allocShadowRoot(ctx.rootRole, guestPgd);
    ctx.rootPgd = guestPgd;
  }
}

/** Loads a root only if there is none (kvm: kvm_mmu_reload, run before every VM entry). Returns whether it loaded. */
export function kvmMmuReload(ctx: MmuContext, guestPgd: number, env: RootCacheEnv): boolean {
  if (ctx.rootHpa !== INVALID_ROOT) return false;
  kvmMmuLoad(ctx, guestPgd, env);
  return true;
}

/**
 * Frees the current and previous roots the backend calls obsolete (kvm:
 * __kvm_mmu_free_obsolete_roots, run for KVM_REQ_MMU_FREE_OBSOLETE_ROOTS).
 */
export function kvmMmuFreeObsoleteRoots(ctx: MmuContext, env: RootCacheEnv): void {
  const backend = env.backend;
  let mask = 0;
  if (ctx.rootHpa !== INVALID_ROOT && backend.isObsoleteRoot(ctx.rootHpa)) mask |= KVM_MMU_ROOT.CURRENT;
  for (let i = 0; i < ctx.prevHpa.length; i++) {
    const hpa = ctx.prevHpa[i]!;
    if (hpa !== INVALID_ROOT && backend.isObsoleteRoot(hpa)) mask |= kvmMmuRootPrevious(i);
  }
  if (mask !== 0) kvmMmuFreeRoots(ctx, mask, env);
}

/**
 * Frees the previous roots that belong to L2 — guest_mode set, or no page behind them — leaving
 * the current root alone (kvm: kvm_mmu_free_guest_mode_roots; VMX calls it for INVVPID without
 * EPT). Throws if the context's own role is a guest-mode one (KVM WARNs: L2 cannot be running).
 */
export function kvmMmuFreeGuestModeRoots(ctx: MmuContext, env: RootCacheEnv): void {
  if ((ctx.rootRole & PAGE_ROLE.GUEST_MODE) !== 0) {
    throw new Error(`kvm_mmu_free_guest_mode_roots on ${ctx.kind} while its role is a guest-mode one`);
  }
  let mask = 0;
  for (let i = 0; i < ctx.prevHpa.length; i++) {
    const hpa = ctx.prevHpa[i]!;
    if (hpa === INVALID_ROOT) continue;
    const word = env.backend.rootRoleWord(hpa);
    if (word === NO_SHADOW_PAGE || (word & PAGE_ROLE.GUEST_MODE) !== 0) mask |= kvmMmuRootPrevious(i);
  }
  kvmMmuFreeRoots(ctx, mask, env);
}

/** Bits 51:12 of an EPTP held as a number (kvm: EPTP_PA_MASK). */
function eptpAddressBits(eptp: number): number {
  return Math.floor(eptp / 4096) % 0x100_0000_0000;
}

/**
 * The root mask INVEPT single-context frees (kvm: handle_invept with nested_ept_root_matches):
 * every valid slot whose EPTP names the same top-level table as `eptp` (bits 51:12; the memory
 * type, walk length and A/D bits are ignored).
 */
export function rootsMatchingEptp(ctx: MmuContext, eptp: number): number {
  const target = eptpAddressBits(eptp);
  let mask = 0;
  if (ctx.rootHpa !== INVALID_ROOT && eptpAddressBits(ctx.rootPgd) === target) mask |= KVM_MMU_ROOT.CURRENT;
  for (let i = 0; i < ctx.prevHpa.length; i++) {
    const pgd = ctx.prevPgd[i]!;
    if (ctx.prevHpa[i] !== INVALID_ROOT && pgd !== INVALID_PGD && eptpAddressBits(pgd) === target) {
      mask |= kvmMmuRootPrevious(i);
    }
  }
  return mask;
}
