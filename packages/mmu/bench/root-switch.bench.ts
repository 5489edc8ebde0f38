import type { BenchCase } from "@nestvisor/bench";
import { CountingMeter } from "@nestvisor/vmx";
import { MMU_CONTEXT_KIND, MmuContext } from "../src/mmu-context";
import { MMU_EVENTS } from "../src/mmu-events";
import { DEFAULT_MMU_FLAGS, mmuFlagPreset } from "../src/mmu-flags";
import { kvmMmuNewPgd, kvmMmuReload, type RootCacheEnv } from "../src/root-cache";
import { FakeRootBackend } from "../src/testing/fake-root-backend";
import { l2State, nestedScenario, roundTrip } from "../src/testing/nested-scenario";

/** Root switches per batch. */
const SWITCHES = 1_000_000;
/** Nested round trips per batch. */
const ROUND_TRIPS = 100_000;

/** Throughput target for "root switches (kvm_mmu_new_pgd hit)", in switches per second. */
export const ROOT_SWITCH_TARGET = 10_000_000;

/** The 64-bit shadow-paging root role of kvm-mmu.md §2.9. */
const SHADOW_ROLE = 0x00003704;

/**
 * Two processes' CR3s alternating on one shadow-paging context: each switch is a
 * kvm_mmu_new_pgd hit on prev[0] that rotates the cache (the common MOV-to-CR3 path).
 */
function alternatingSwitches(): () => number {
  const env: RootCacheEnv = {
    backend: new FakeRootBackend(),
    meter: new CountingMeter([MMU_EVENTS]),
    flags: DEFAULT_MMU_FLAGS,
  };
  const ctx = new MmuContext(MMU_CONTEXT_KIND.ROOT_MMU);
  ctx.cpuRoleBase = SHADOW_ROLE;
  ctx.rootRole = SHADOW_ROLE;
  const cr3s = [0x0010_0000, 0x0020_0000];
  for (const cr3 of cr3s) {
    kvmMmuNewPgd(ctx, cr3, SHADOW_ROLE, env);
    kvmMmuReload(ctx, cr3, env);
  }
  return () => {
    let hits = 0;
    for (let i = 0; i < SWITCHES; i++) {
      if (kvmMmuNewPgd(ctx, cr3s[i & 1]!, SHADOW_ROLE, env)) hits++;
    }
    return hits;
  };
}

/** The MMU part of L1 → L2 → L1 (EPT-on-EPT, kvm-mmu.md §6.3 case A) under a flag preset. */
function nestedRoundTrips(preset: string): () => number {
  const { vcpu } = nestedScenario(mmuFlagPreset(preset));
  const l2 = l2State();
  roundTrip(vcpu, l2);
  return () => {
    for (let i = 0; i < ROUND_TRIPS; i++) roundTrip(vcpu, l2);
    return vcpu.guestMmu.stats.hits | 0;
  };
}

export function rootSwitchBenchCases(): BenchCase[] {
  return [
    {
      name: "root switches (kvm_mmu_new_pgd hit)",
      unit: "switches",
      ops: SWITCHES,
      batch: alternatingSwitches(),
    },
    {
      name: "nested MMU round trips (EPT-on-EPT, today)",
      unit: "round trips",
      ops: ROUND_TRIPS,
      batch: nestedRoundTrips("today"),
    },
    {
      name: "nested MMU round trips (EPT-on-EPT, preset none)",
      unit: "round trips",
      ops: ROUND_TRIPS,
      batch: nestedRoundTrips("none"),
    },
  ];
}
