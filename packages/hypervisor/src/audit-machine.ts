import {
  AUDIT_FORMAT,
  assertAuditClean,
  eptOnEptReference,
  INVALID_ROOT,
  NO_SHADOW_PAGE,
  PAGE_ROLE,
  shadowPagingReference,
  TableAuditor,
  tdpReference,
} from "@nestvisor/mmu";
import { createPagingContext, MODERN_CPU } from "@nestvisor/x86-arch";
import type { Kvm } from "./kvm";
import type { Machine } from "./machine";

/** What an audit of a machine covered. */
export interface MachineAuditSummary {
  /** Roots audited per level (index = the KVM's level). */
  readonly roots: readonly number[];
  /** Present leaves checked in all. */
  readonly leaves: number;
  /** Roots skipped: obsolete (about to be freed) or without a shadow page (PAE/dummy roots). */
  readonly skipped: number;
}

/**
 * Audits every table every KVM of the machine holds (DESIGN.md §3, the mmu layer's audit): each
 * valid current and previous root of each root-holding MMU context is walked and every present
 * entry compared with the composed reference — memslots for direct (TDP / legacy direct) roots,
 * EPT12 ∘ memslots for shadow-EPT roots, the guest's page tables ∘ memslots for shadow-paging roots.
 * Throws an `AuditError` naming the first inconsistency.
 */
export function auditMachine(machine: Machine): MachineAuditSummary {
  const roots: number[] = [];
  let leaves = 0;
  let skipped = 0;
  for (const kvm of machine.kvms) {
    let count = 0;
    const audit = (pgd: number, hpa: number): void => {
      if (hpa === INVALID_ROOT) return;
      const backend = kvm.mmu.backend;
      if (backend.isObsoleteRoot(hpa) || backend.rootRoleWord(hpa) === NO_SHADOW_PAGE) {
        skipped++;
        return;
      }
      const stats = assertAuditClean(auditorFor(kvm, pgd, backend.rootRoleWord(hpa)).audit(hpa));
      leaves += stats.leaves;
      count++;
    };
    for (const ctx of kvm.mmu.rootContexts) {
      audit(ctx.rootPgd, ctx.rootHpa);
      for (let i = 0; i < ctx.prevRootCount; i++) audit(ctx.prevPgd[i]!, ctx.prevHpa[i]!);
    }
    roots.push(count);
  }
  return { roots, leaves, skipped };
}

function auditorFor(kvm: Kvm, pgd: number, role: number): TableAuditor {
  const memory = kvm.cpu.memory;
  const store = kvm.store;
  if ((role & PAGE_ROLE.DIRECT) !== 0) {
    return new TableAuditor({
      memory,
      format: kvm.useEpt ? AUDIT_FORMAT.EPT : AUDIT_FORMAT.X86_64,
      reference: tdpReference(kvm.memslots),
      store,
    });
  }
  if (kvm.useEpt) {
    // A shadow-EPT root's pgd is the EPTP12 it shadows (kvm: root.pgd).
    return new TableAuditor({
      memory,
      format: AUDIT_FORMAT.EPT,
      reference: eptOnEptReference(kvm.guestMemory(), kvm.ept12Context(pgd), kvm.memslots),
      store,
    });
  }
  // A shadow-paging root shadows the guest's tables at CR3 = pgd, in the guest's current mode.
  const m = kvm.mmu;
  const paging = createPagingContext({ cr0: m.cr0, cr3: pgd, cr4: m.cr4, efer: m.efer }, MODERN_CPU);
  return new TableAuditor({
    memory,
    format: AUDIT_FORMAT.X86_64,
    reference: shadowPagingReference(kvm.guestMemory(), paging, kvm.memslots),
    store,
  });
}
