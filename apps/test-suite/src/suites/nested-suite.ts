import { RIP_BASE, type StepsBuilder, workload } from "@nestvisor/hypervisor";
import { fieldByName, type VmcsProcessor } from "@nestvisor/vmx";
import { CR0, CR4 } from "@nestvisor/x86-arch";
import { hex } from "../case-recorder";
import type { CaseGroup, Suite } from "../suite";
import { loadBaseline } from "./vmcs12-baseline";
import { enc, L1, worldFor } from "./vmx-world";

/**
 * Nested VM exits as L1 sees them (vmx-tests.md §9; SDM 28.3 "Saving guest state", 28.2 "Recording
 * VM-exit information"): after each exit kind, what L1 reads back in vmcs12 must be what the
 * architecture says — the guest state L2 left in the VMCS the processor ran, and the exit information.
 */

// ---------------------------------------------------------------------------------------------
// Component level: the model's ShadowVmcsSync on a nested exit, read back by L1's VMREADs.

/** Guest state L2 changes while it runs (as the processor saves it into vmcs02 on the exit). */
const L2_CHANGES: readonly (readonly [name: string, value: number | bigint])[] = [
  ["GUEST_ES_SELECTOR", 0x2b],
  ["GUEST_CS_SELECTOR", 0x33],
  ["GUEST_SS_SELECTOR", 0x2b],
  ["GUEST_DS_SELECTOR", 0x2b],
  ["GUEST_FS_SELECTOR", 0x53],
  ["GUEST_GS_SELECTOR", 0x63],
  ["GUEST_LDTR_SELECTOR", 0x28],
  ["GUEST_TR_SELECTOR", 0x40],
  ["GUEST_ES_LIMIT", 0xfffff],
  ["GUEST_CS_LIMIT", 0xffffe],
  ["GUEST_SS_LIMIT", 0xffffd],
  ["GUEST_DS_LIMIT", 0xffffc],
  ["GUEST_FS_LIMIT", 0xffffb],
  ["GUEST_GS_LIMIT", 0xffffa],
  ["GUEST_LDTR_LIMIT", 0x7ff],
  ["GUEST_TR_LIMIT", 0x2067],
  ["GUEST_GDTR_LIMIT", 0x7f],
  ["GUEST_IDTR_LIMIT", 0x1ff],
  ["GUEST_ES_AR_BYTES", 0xc0f3],
  ["GUEST_CS_AR_BYTES", 0xa0fb],
  ["GUEST_SS_AR_BYTES", 0xc0f3],
  ["GUEST_DS_AR_BYTES", 0xc0f3],
  ["GUEST_FS_AR_BYTES", 0xc0f3],
  ["GUEST_GS_AR_BYTES", 0xc0f3],
  ["GUEST_LDTR_AR_BYTES", 0x10000],
  ["GUEST_TR_AR_BYTES", 0x808b],
  ["GUEST_ES_BASE", 0x1000],
  ["GUEST_CS_BASE", 0],
  ["GUEST_SS_BASE", 0x2000],
  ["GUEST_DS_BASE", 0x3000],
  ["GUEST_FS_BASE", 0x7fff_1234_5000n],
  ["GUEST_GS_BASE", 0xffff_8880_1234_0000n],
  ["GUEST_LDTR_BASE", 0x9000],
  ["GUEST_TR_BASE", 0xffff_fe00_0000_3000n],
  ["GUEST_GDTR_BASE", 0xffff_fe00_0000_1000n],
  ["GUEST_IDTR_BASE", 0xffff_fe00_0000_0000n],
  ["GUEST_RIP", 0x40_1234],
  ["GUEST_RSP", 0x50_0ff0],
  ["GUEST_RFLAGS", 0x246],
  ["GUEST_INTERRUPTIBILITY_INFO", 1],
  ["GUEST_PENDING_DBG_EXCEPTIONS", 0x4000],
  ["GUEST_CR3", L1.GUEST_CR3 + 0x1000],
  ["GUEST_LINEAR_ADDRESS", 0x7000_1234],
];

/** Guest state L2 does not change: L1 must read back what it wrote before the entry. */
const UNCHANGED = [
  "GUEST_SYSENTER_CS",
  "GUEST_SYSENTER_ESP",
  "GUEST_SYSENTER_EIP",
  "GUEST_DR7",
  "GUEST_IA32_PAT",
  "GUEST_IA32_EFER",
];

/** Exit kinds with their exit qualification (SDM 28.2.1). */
const EXIT_KINDS: readonly (readonly [name: string, reason: number, qualification: number])[] = [
  ["CPUID", 10, 0],
  ["VMCALL", 18, 0],
  ["HLT", 12, 0],
  ["I/O (IN EAX, port 0x1234)", 30, 0x1234_000b],
  ["MOV to CR0 from RAX", 28, 0],
  ["EPT violation (read, GLA valid, final)", 48, 0x181],
];

function big(lo: number, hi: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}

function vmcs12AfterExitGroup(): CaseGroup {
  const perKind = L2_CHANGES.length + UNCHANGED.length + 4;
  return {
    id: "nested/vmcs12-after-exit",
    description:
      "after each exit kind, L1's VMREADs (shadowed, emulated or, with the model's VMCS access, enlightened; rare fields included) return the state L2 left and the exit information (the model's nested sync)",
    cases: EXIT_KINDS.length * perKind,
    run(rec, ctx) {
      for (const [kind, reason, qualification] of EXIT_KINDS) {
        const w = loadBaseline(worldFor(ctx, true));
        const before = new Map<string, bigint>();
        for (const name of [...UNCHANGED, "GUEST_CR0", "GUEST_CR4"]) before.set(name, w.read(name) ?? -1n);
        w.vmlaunch();
        if (w.lastEntry?.kind !== "entered") {
          rec.fail(`${kind}: the baseline did not enter L2 (${JSON.stringify(w.lastEntry)})`);
          continue;
        }
        const written = new Map<string, bigint>();
        const owned = w.guestOwnedBits();
        w.exitToL1(reason, qualification, (p: VmcsProcessor) => {
          for (const [name, value] of L2_CHANGES) {
            const v = BigInt(value);
            p.vmwrite(enc(name), Number(v & 0xffffffffn), Number(v >> 32n));
            const lo = p.vmread(enc(name));
            written.set(name, big(lo, p.hi));
          }
          // L2 flips a CR0 and a CR4 bit that L0 lets it own (no exit): TS, OSXMMEXCPT.
          const cr0 = p.vmread(enc("GUEST_CR0"));
          p.vmwrite(enc("GUEST_CR0"), (cr0 ^ CR0.TS) >>> 0);
          const cr4 = p.vmread(enc("GUEST_CR4"));
          p.vmwrite(enc("GUEST_CR4"), (cr4 ^ CR4.OSXMMEXCPT) >>> 0);
        });
        const check = (name: string, want: bigint, why: string) => {
          const got = w.read(name);
          if (got === want) rec.pass();
          else {
            rec.fail(
              `after the ${kind} exit, L1 read ${name} = ${got === undefined ? "(VMREAD failed)" : hex(Number(got))}${w.servedByShadow ? " from the shadow VMCS" : w.servedByAccess ? " from its enlightened VMCS" : ""}, expected ${hex(Number(want))} (${why})`,
            );
          }
        };
        for (const [name] of L2_CHANGES) {
          const why = w.sync.isRareField(enc(name))
            ? "what L2 left in vmcs02: a rare field the lazy sync must pull when L1 reads it, kvm: copy_vmcs02_to_vmcs12_rare"
            : "what L2 left in vmcs02, kvm: sync_vmcs02_to_vmcs12";
          check(name, written.get(name)!, why);
        }
        for (const name of UNCHANGED) check(name, before.get(name)!, "L2 did not change it");
        // SDM 28.3.1 / kvm: vmcs12_guest_cr0 — L0-owned bits from L2's register, the rest as L1 set them.
        check("GUEST_CR0", before.get("GUEST_CR0")! ^ BigInt(CR0.TS & owned.cr0), "CR0.TS is L2's own bit");
        check(
          "GUEST_CR4",
          before.get("GUEST_CR4")! ^ BigInt(CR4.OSXMMEXCPT & owned.cr4),
          "CR4.OSXMMEXCPT is L2's own bit",
        );
        check("VM_EXIT_REASON", BigInt(reason), "SDM 28.2.1");
        check("EXIT_QUALIFICATION", BigInt(qualification), "SDM 28.2.1");
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Machine level: one instruction of L2 that L1 intercepts, on the model's machine.

interface MachineExit {
  readonly name: string;
  readonly step: (b: StepsBuilder) => unknown;
  /** Expected VM_EXIT_REASON, qualification (masked), instruction length; null = no exit reflected. */
  readonly reason: number | null;
  readonly qualification: number;
  readonly qualificationMask: number;
  readonly length: number;
  /** L1 emulated the instruction and skipped it (RIP advanced by the length). */
  readonly skipped: boolean;
  readonly gpa?: number;
}

const PAGED_CR0 = 0x80050033;
const PAGED_CR4 = 0x6a0;

const MACHINE_EXITS: readonly MachineExit[] = [
  {
    name: "CPUID",
    step: (b) => b.cpuid(0),
    reason: 10,
    qualification: 0,
    qualificationMask: ~0,
    length: 2,
    skipped: true,
  },
  {
    name: "VMCALL",
    step: (b) => b.vmcall(),
    reason: 18,
    qualification: 0,
    qualificationMask: ~0,
    length: 3,
    skipped: true,
  },
  {
    name: "HLT",
    step: (b) => b.hlt(),
    reason: 12,
    qualification: 0,
    qualificationMask: ~0,
    length: 1,
    skipped: true,
  },
  {
    name: "IN EAX from port 0x1234",
    step: (b) => b.in(0x1234, 4),
    reason: 30,
    qualification: 0x1234_000b,
    qualificationMask: ~0,
    length: 1,
    skipped: true,
  },
  {
    name: "OUT AL to port 0x4d0",
    step: (b) => b.out(0x4d0, 1, 0),
    reason: 30,
    qualification: 0x04d0_0000,
    qualificationMask: ~0,
    length: 1,
    skipped: true,
  },
  {
    name: "IN AL from port 0x4d0",
    step: (b) => b.in(0x4d0, 1),
    reason: 30,
    qualification: 0x04d0_0008,
    qualificationMask: ~0,
    length: 1,
    skipped: true,
  },
  {
    name: "RDMSR of IA32_TSC_ADJUST",
    step: (b) => b.rdmsr(0x3b),
    reason: 31,
    qualification: 0,
    qualificationMask: ~0,
    length: 2,
    skipped: true,
  },
  {
    name: "WRMSR of IA32_TSC_ADJUST",
    step: (b) => b.wrmsr(0x3b, 5),
    reason: 32,
    qualification: 0,
    qualificationMask: ~0,
    length: 2,
    skipped: true,
  },
  {
    name: "MOV to CR0 changing AM (an L1-owned bit)",
    step: (b) => b.movToCr0((PAGED_CR0 ^ CR0.AM) >>> 0),
    reason: 28,
    qualification: 0,
    qualificationMask: 0x3f,
    length: 3,
    skipped: true,
  },
  {
    name: "MOV to CR4 changing SMEP (an L1-owned bit)",
    step: (b) => b.movToCr4((PAGED_CR4 ^ CR4.SMEP) >>> 0),
    reason: 28,
    qualification: 4,
    qualificationMask: 0x3f,
    length: 3,
    skipped: true,
  },
  {
    // kvm: KVM_POSSIBLE_CR4_GUEST_BITS — with EPT a KVM L1 leaves PGE to its guest, and so does L0.
    name: "MOV to CR4 changing PGE (guest-owned with EPT: no exit)",
    step: (b) => b.movToCr4((PAGED_CR4 ^ CR4.PGE) >>> 0),
    reason: null,
    qualification: 0,
    qualificationMask: 0,
    length: 0,
    skipped: false,
  },
  {
    name: "first read of a page L1's EPT12 does not map yet",
    step: (b) => b.read(0x20_0000),
    reason: 48,
    qualification: 0x181,
    qualificationMask: 0x187,
    length: 3,
    skipped: false,
    gpa: 0x20_0000,
  },
  {
    name: "MOV from CR3 (not intercepted with EPT)",
    step: (b) => b.movFromCr3(),
    reason: null,
    qualification: 0,
    qualificationMask: 0,
    length: 0,
    skipped: false,
  },
];

function readField(vmcs12: { read(e: number): number; readonly hi: number }, name: string): number {
  const lo = vmcs12.read(fieldByName(name)!.encoding);
  return vmcs12.hi * 2 ** 32 + Math.max(lo, 0);
}

function machineExitsGroup(): CaseGroup {
  return {
    id: "nested/machine-exits",
    description:
      "one L2 instruction that L1 intercepts, on the model's machine: vmcs12's exit reason, qualification, length and RIP as L1 left them",
    cases: MACHINE_EXITS.length,
    run(rec, ctx) {
      for (const x of MACHINE_EXITS) {
        const b = workload(`nested-${x.reason ?? "none"}`).setup({
          level: 2,
          paging: "4-level",
          memory: "16MiB",
          cpl: 0,
          addressSpaces: [
            {
              name: "kernel",
              mappings: [
                { gva: 0x10_0000, pages: 16 },
                { gva: 0x20_0000, pages: 4 },
              ],
            },
          ],
        });
        x.step(b);
        const program = b.build();
        let machine: ReturnType<typeof ctx.model.createMachine>;
        try {
          machine = ctx.model.createMachine({ program, config: ctx.flags });
          machine.run();
        } catch (error) {
          rec.fail(`${x.name}: the machine failed: ${(error as Error).message}`);
          continue;
        }
        const level = machine.levels?.[0];
        if (level === undefined) {
          rec.skip("the model's machines expose no levels (ModelMachine.levels)");
          return;
        }
        const v = level.nested.state.cachedVmcs12;
        const got = {
          reason: readField(v, "VM_EXIT_REASON"),
          qualification: readField(v, "EXIT_QUALIFICATION"),
          length: readField(v, "VM_EXIT_INSTRUCTION_LEN"),
          rip: readField(v, "GUEST_RIP"),
          intrInfo: readField(v, "VM_EXIT_INTR_INFO"),
          gpa: readField(v, "GUEST_PHYSICAL_ADDRESS"),
        };
        const problems: string[] = [];
        if (x.reason === null) {
          if (got.reason !== 0) problems.push(`L1 got exit ${got.reason}, expected no exit`);
        } else if (got.reason === 0 && got.rip === RIP_BASE) {
          // Nothing reached L1: the exit it intercepts was kept (or absorbed) below it.
          problems.push(
            `L1 never saw the exit (vmcs12 untouched: VM_EXIT_REASON 0, GUEST_RIP ${hex(got.rip)}), expected exit ${x.reason}: L1 intercepts it, so L0 must reflect it (kvm: nested_vmx_reflect_vmexit, nested_vmx_l1_wants_exit)`,
          );
        } else {
          if (got.reason !== x.reason) problems.push(`VM_EXIT_REASON ${got.reason}, expected ${x.reason}`);
          if ((got.qualification & x.qualificationMask) >>> 0 !== x.qualification)
            problems.push(
              `EXIT_QUALIFICATION ${hex(got.qualification)}, expected ${hex(x.qualification)} in mask ${hex(x.qualificationMask >>> 0)}`,
            );
          if (got.length !== x.length)
            problems.push(`VM_EXIT_INSTRUCTION_LEN ${got.length}, expected ${x.length}`);
          if ((got.intrInfo & 0x8000_0000) !== 0)
            problems.push(
              `VM_EXIT_INTR_INFO ${hex(got.intrInfo)} is valid for an exit that delivers no event`,
            );
          const rip = RIP_BASE + (x.skipped ? x.length : 0);
          if (got.rip !== rip)
            problems.push(
              `GUEST_RIP ${hex(got.rip)}, expected ${hex(rip)} (${x.skipped ? "L1 skipped the instruction" : "the access is retried"})`,
            );
          if (x.gpa !== undefined && Math.floor(got.gpa / 4096) !== x.gpa / 4096)
            problems.push(`GUEST_PHYSICAL_ADDRESS ${hex(got.gpa)}, expected the page ${hex(x.gpa)}`);
        }
        if (problems.length === 0) rec.pass();
        else rec.fail(`${x.name}: ${problems.join("; ")}`);
      }
    },
  };
}

/** The `nested` suite: nested entry/exit state transfer. */
export const NESTED_SUITE: Suite = {
  name: "nested",
  description: "nested VM entry/exit state transfer: what L1 reads back in vmcs12 after each exit kind",
  groups() {
    return [vmcs12AfterExitGroup(), machineExitsGroup()];
  },
};
