import { resolveFlags } from "@nestvisor/hypervisor";
import { PAGE_ROLE } from "@nestvisor/mmu";
import { describe, expect, it } from "vitest";
import { KVM_MODEL } from "../kvm-model";
import type { ModelLevel } from "../model";
import { runSuite, verdicts } from "../testing/run-suite";
import { AUDIT_SUITE, auditLevel, randomProgram } from "./audit-suite";

/** The host address of the first present EPT leaf under `root` (a depth-first search), or -1. */
function firstLeaf(level: ModelLevel, table: number, depth: number): number {
  const m = level.cpu.memory;
  for (let i = 0; i < 512; i++) {
    const lo = m.read32(table + 8 * i);
    if ((lo & 7) === 0) continue;
    if (depth === 1 || (lo & 0x80) !== 0) return table + 8 * i;
    const found = firstLeaf(level, (lo & 0xfffff000) >>> 0, depth - 1);
    if (found >= 0) return found;
  }
  return -1;
}

describe("audit suite", () => {
  it("random programs are deterministic per seed", () => {
    expect(randomProgram(7, 2, 50)).toEqual(randomProgram(7, 2, 50));
    expect(randomProgram(7, 2, 50)).not.toEqual(randomProgram(8, 2, 50));
  });

  it("passes on the project's model", () => {
    const [g] = runSuite(AUDIT_SUITE, /^audit\//);
    expect(verdicts([g!])).toEqual(["audit/random-workloads PASS"]);
    expect(g!.cases).toBe(g!.planned);
  });

  it("finds a corrupted TDP leaf", () => {
    const machine = KVM_MODEL.createMachine({
      program: randomProgram(3, 1, 60),
      config: resolveFlags("v6.12", {}),
    });
    machine.run();
    const l0 = machine.levels![0]!;
    expect(auditLevel(l0).problems).toEqual([]);
    const root = l0.mmu.rootMmu.rootHpa;
    expect(l0.mmu.backend.rootRoleWord(root) & PAGE_ROLE.DIRECT).not.toBe(0);
    const leaf = firstLeaf(l0, root, 4);
    expect(leaf).toBeGreaterThan(0);
    l0.cpu.memory.write32(leaf, (l0.cpu.memory.read32(leaf) + 0x1000) >>> 0);
    const { problems } = auditLevel(l0);
    expect(problems[0]).toMatch(/^L0 root_mmu current root 0x[0-9a-f]+: /);
  });

  it("finds an active root whose role is not the context's (kvm: is_root_usable)", () => {
    const machine = KVM_MODEL.createMachine({ program: randomProgram(5, 2, 60), config: resolveFlags() });
    machine.run();
    const l0 = machine.levels![0]!;
    expect(auditLevel(l0).problems).toEqual([]);
    const active = l0.mmu.mmu;
    active.rootRole = (active.rootRole ^ PAGE_ROLE.GUEST_MODE) >>> 0;
    expect(auditLevel(l0).problems[0]).toMatch(
      /^L0 guest_mmu's current root 0x[0-9a-f]+ has role 0x[0-9a-f]+ but the context's root role is 0x[0-9a-f]+ \(guest_mode true instead of false\): the root cache handed out a root without comparing its role \(kvm: is_root_usable\)$/,
    );
  });
});
