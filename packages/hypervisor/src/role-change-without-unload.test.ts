import { describe, expect, it } from "vitest";
import { builtinWorkload } from "./builtin-workloads";
import { createModel } from "./hypervisor-model";

/**
 * The `all` preset's one flag beyond v6.12, `keepRootsOnAllRoleChanges` (seed 001 v2 patch 18,
 * unmerged; kvm-mmu.md §7.2): under shadow paging a guest toggling CR0.WP no longer unloads every
 * root on each toggle but finds the root of the other WP value in the cache. Same guest, same
 * final state; the saving comes from the roots that are no longer freed and rebuilt.
 */
describe("keepRootsOnAllRoleChanges on toggle_cr0_wp with shadow paging (ept=off)", () => {
  const ITERATIONS = 200;
  const run = (preset: string) =>
    createModel({ preset, flags: { ept: false } }).run(
      builtinWorkload("toggle_cr0_wp", { level: 1, iterations: ITERATIONS }),
    );

  it("drops the unload and reload of every toggle, keeps the guest's state, and costs less", () => {
    const upstream = run("v6.12");
    const patched = run("all");
    const per = (r: typeof upstream, event: string) =>
      ((r.counts as Record<string, number>)[event] ?? 0) / ITERATIONS;
    expect(per(upstream, "MMU_UNLOAD")).toBe(2);
    expect(per(upstream, "ROOT_LOAD")).toBe(2);
    expect(per(patched, "MMU_UNLOAD")).toBe(0);
    // Only the very first toggle misses (the other WP value's root does not exist yet).
    expect(per(patched, "ROOT_LOAD") * ITERATIONS).toBe(1);
    expect(per(patched, "PGD_HIT_PREV") * ITERATIONS).toBe(2 * ITERATIONS - 1);
    expect(per(patched, "MMU_RESET_CONTEXT")).toBe(per(upstream, "MMU_RESET_CONTEXT"));
    expect(patched.snapshot).toEqual(upstream.snapshot);
    expect(patched.cyclesPerIteration).toBeLessThan(upstream.cyclesPerIteration);
  });

  it("changes nothing under EPT, where a WP toggle does not even exit (CR0.WP guest-owned)", () => {
    const withEpt = (preset: string) =>
      createModel({ preset }).run(builtinWorkload("toggle_cr0_wp", { level: 1, iterations: ITERATIONS }));
    expect(withEpt("all").cyclesPerIteration).toBe(withEpt("v6.12").cyclesPerIteration);
  });
});
