import {
  type HypervisorFlags,
  resolveFlags,
  type StepsBuilder,
  type WorkloadProgram,
  workload,
} from "@nestvisor/hypervisor";
import {
  AUDIT_FORMAT,
  eptOnEptReference,
  INVALID_ROOT,
  NO_SHADOW_PAGE,
  PAGE_ROLE,
  TableAuditor,
  tdpReference,
} from "@nestvisor/mmu";
import { CR0 } from "@nestvisor/x86-arch";
import type { ModelLevel } from "../model";
import { Prng } from "../prng";
import type { CaseGroup, Suite, SuiteContext } from "../suite";
import { roleDifference } from "./mmu-suite";

/**
 * DESIGN.md §3: the shadow, TDP and EPT02 tables every level keeps must agree with the composed walk
 * (memslots for direct roots; EPT12 then the memslots for shadow-EPT roots). After a random
 * workload runs, every valid root slot of every level's root contexts is audited with the mmu
 * package's `TableAuditor` (present leaves map the right host page with no more rights than the
 * reference; table pages are live shadow pages of the right level and gfn), and the active context's
 * current root must have the context's root role.
 */

const MEMORY = 16 * 2 ** 20;
const SPACES = 3;
const KERNEL = { gva: 0x10_0000, pages: 64 };
const USER = { gva: 0x40_0000, pages: 128 };

/** A random program: memory accesses over the mapped pages, CR3 switches, CR0.WP toggles, exits. */
export function randomProgram(seed: number, level: number, steps: number): WorkloadProgram {
  const rng = new Prng(seed);
  const spaces = Array.from({ length: SPACES }, (_, p) => ({
    name: `proc${p}`,
    mappings: [
      { gva: KERNEL.gva, pages: KERNEL.pages },
      { gva: USER.gva, gpa: 0x80_0000 + p * USER.pages * 4096, pages: USER.pages, user: true },
    ],
  }));
  const b = workload(`audit-${seed.toString(16)}`).setup({
    level: level as 1 | 2,
    paging: "4-level",
    memory: MEMORY,
    cpl: 0,
    addressSpaces: spaces,
  });
  const cr0 = 0x8005_0033;
  let wp = true;
  const step = (s: StepsBuilder) => {
    const r = rng.below(100);
    const region = rng.below(2) === 0 ? KERNEL : USER;
    const gva = region.gva + rng.below(region.pages) * 4096 + rng.below(512) * 8;
    if (r < 40) s.read(gva, { size: 8 });
    else if (r < 70) s.write(gva, { size: 8, value: rng.next() });
    else if (r < 80) s.movToCr3({ space: rng.below(SPACES) });
    else if (r < 85) {
      wp = !wp;
      s.movToCr0((wp ? cr0 : cr0 & ~CR0.WP) >>> 0);
    } else if (r < 92) s.cpuid(rng.below(8));
    else s.vmcall();
  };
  for (let i = 0; i < steps; i++) step(b);
  if (!wp) b.movToCr0(cr0);
  return b.build();
}

/** Audits every valid root slot of one level; returns the problems found (empty when clean). */
export function auditLevel(level: ModelLevel): { problems: string[]; roots: number } {
  const problems: string[] = [];
  let roots = 0;
  const memory = level.cpu.memory;
  const backend = level.mmu.backend;
  const tdp = new TableAuditor({
    memory,
    format: AUDIT_FORMAT.EPT,
    reference: tdpReference(level.memslots),
    store: level.store,
  });
  const slot = (ctxName: string, which: string, pgd: number, hpa: number) => {
    if (hpa === INVALID_ROOT || backend.isObsoleteRoot(hpa)) return;
    const role = backend.rootRoleWord(hpa);
    if (role === NO_SHADOW_PAGE) return;
    let result: ReturnType<TableAuditor["audit"]>;
    if ((role & PAGE_ROLE.DIRECT) !== 0) result = tdp.audit(hpa);
    else {
      const auditor = new TableAuditor({
        memory,
        format: AUDIT_FORMAT.EPT,
        reference: eptOnEptReference(level.guestMemory(), level.ept12Context(pgd), level.memslots),
        store: level.store,
      });
      result = auditor.audit(hpa);
    }
    roots++;
    if (!result.ok)
      problems.push(
        `${level.name} ${ctxName} ${which} root 0x${hpa.toString(16)}: ${result.inconsistency.message}`,
      );
  };
  for (const ctx of level.mmu.rootContexts) {
    slot(ctx.kind, "current", ctx.rootPgd, ctx.rootHpa);
    // Every previous slot the context has (a root-cache policy may keep more than KVM's 3).
    for (let i = 0; i < ctx.prevHpa.length; i++)
      slot(ctx.kind, `prev[${i}]`, ctx.prevPgd[i]!, ctx.prevHpa[i]!);
  }
  // What every VM entry relies on (kvm: kvm_mmu_reload, is_root_usable): the root the hardware uses
  // has the active context's root role. A root cache that skips the role check breaks it here.
  const active = level.mmu.mmu;
  const hpa = active.rootHpa;
  if (hpa !== INVALID_ROOT && !backend.isObsoleteRoot(hpa)) {
    const word = backend.rootRoleWord(hpa);
    if (word !== NO_SHADOW_PAGE && word >>> 0 !== active.rootRole >>> 0) {
      problems.unshift(
        `${level.name} ${active.kind}'s current root 0x${hpa.toString(16)} has role 0x${(word >>> 0).toString(16)} but the context's root role is 0x${(active.rootRole >>> 0).toString(16)} (${roleDifference(word, active.rootRole)}): the root cache handed out a root without comparing its role (kvm: is_root_usable)`,
      );
    }
  }
  return { problems, roots };
}

interface AuditRun {
  readonly label: string;
  readonly seed: number;
  readonly level: number;
  readonly config: HypervisorFlags;
}

function runsFor(ctx: SuiteContext): AuditRun[] {
  const presets = ctx.full
    ? ["none", "v4.19", "v5.3", "v5.7", "v6.12", "all"]
    : [...new Set([ctx.preset, "none", "v4.19"])];
  const perPreset = ctx.full ? 8 : 5;
  const out: AuditRun[] = [];
  for (const preset of presets) {
    const config = preset === ctx.preset ? ctx.flags : resolveFlags(preset, {});
    for (let i = 0; i < perPreset; i++) {
      for (const level of [1, 2]) {
        const seed = (ctx.seed ^ Math.imul(i + 1, 0x9e3779b1) ^ (level << 20)) >>> 0;
        out.push({
          label: `preset ${preset}, workload ${i} (seed 0x${seed.toString(16)}) at L${level}`,
          seed,
          level,
          config,
        });
      }
    }
  }
  return out;
}

function auditGroup(ctx: SuiteContext): CaseGroup {
  const runs = runsFor(ctx);
  const steps = ctx.full ? 600 : 300;
  return {
    id: "audit/random-workloads",
    description: `every level's TDP and EPT02 roots audited against the composed walk after ${runs.length} random workloads of ${steps} steps`,
    // One case per (workload, hypervisor level audited).
    cases: runs.reduce((n, r) => n + r.level, 0),
    ...(!ctx.flags.ept || !ctx.flags.l1Ept ? { skip: "the runtime models ept=on and l1Ept=on only" } : {}),
    run(rec, c) {
      for (const run of runs) {
        let levels: readonly ModelLevel[] | undefined;
        try {
          const machine = c.model.createMachine({
            program: randomProgram(run.seed, run.level, steps),
            config: run.config,
          });
          machine.run();
          levels = machine.levels;
        } catch (error) {
          rec.fail(`${run.label}: the machine failed: ${(error as Error).message}`);
          continue;
        }
        if (levels === undefined) {
          rec.skip("the model's machines expose no levels (ModelMachine.levels)");
          return;
        }
        for (const level of levels) {
          const { problems } = auditLevel(level);
          if (problems.length === 0) rec.pass();
          else
            rec.fail(
              `${run.label}: ${problems[0]}${problems.length > 1 ? ` (and ${problems.length - 1} more roots)` : ""}`,
            );
        }
      }
    },
  };
}

/** The `audit` suite. */
export const AUDIT_SUITE: Suite = {
  name: "audit",
  description:
    "shadow/TDP/EPT02 tables of every level consistent with the composed walk after random workloads",
  groups(ctx) {
    return [auditGroup(ctx)];
  },
};
