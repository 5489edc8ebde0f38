import { builtinWorkload, createModel, type ModelSpec, modelFromModule } from "@nestvisor/hypervisor";
import { describe, expect, it } from "vitest";
import * as module from "./model.mjs";

const ORIGIN = "examples/root-cache-8/model.mjs";
const load = (base: ModelSpec = {}) => modelFromModule(module, ORIGIN, base);

function cr3Switch(level: 1 | 2, processes: number) {
  return builtinWorkload("cr3_switch", { level, processes, iterations: 30 });
}

describe("root-cache-8", () => {
  it("is today's KVM with an 8-slot root cache, taking preset and flags from the caller", () => {
    const model = load({ preset: "v6.12", flags: { ept: false } });
    expect(model.name).toBe("kvm-root-cache-8");
    expect(model.policies.rootCache?.prevRoots).toBe(8);
    expect(model.config.ept).toBe(false);
  });

  it("shadow paging at L1: 6 and 9 processes stop missing; the guest sees the same", () => {
    for (const processes of [6, 9]) {
      const program = cr3Switch(1, processes);
      const base = createModel({ flags: { ept: false } }).run(program);
      const eight = load({ flags: { ept: false } }).run(program);
      expect(eight.snapshot).toEqual(base.snapshot);
      // KVM misses on every switch; with 8 slots only the first switch to each process misses.
      expect(base.counts.PGD_MISS ?? 0).toBeGreaterThanOrEqual(processes * 29);
      expect(eight.counts.PGD_MISS ?? 0).toBeLessThanOrEqual(processes);
      expect(eight.counts.ROOT_DROP ?? 0).toBeLessThan(base.counts.ROOT_DROP ?? 0);
      expect(eight.cyclesPerIteration).toBeLessThan(base.cyclesPerIteration);
    }
  });

  it("round-robin over more address spaces than slots defeats LRU: 10 processes miss either way", () => {
    const program = cr3Switch(1, 10);
    const base = createModel({ flags: { ept: false } }).run(program);
    const eight = load({ flags: { ept: false } }).run(program);
    expect(eight.snapshot).toEqual(base.snapshot);
    expect(eight.counts.PGD_MISS).toBe(base.counts.PGD_MISS);
  });

  it("L1 shadow-paging L2 (l1Ept off): L1's misses go, the same cycles saved per switch", () => {
    const program = cr3Switch(2, 8);
    const base = createModel({ flags: { l1Ept: false } }).run(program);
    const eight = load({ flags: { l1Ept: false } }).run(program);
    expect(eight.snapshot).toEqual(base.snapshot);
    expect(eight.counts.PGD_MISS ?? 0).toBeLessThanOrEqual(8);
    expect(base.counts.PGD_MISS ?? 0).toBeGreaterThan(200);
    expect(eight.cyclesPerIteration).toBeLessThan(base.cyclesPerIteration);
  });

  it("with EPT the guest's MOV to CR3 does not exit: nothing changes", () => {
    const program = cr3Switch(1, 8);
    const base = createModel().run(program);
    const eight = load().run(program);
    expect(eight.counts).toEqual(base.counts);
  });
});
