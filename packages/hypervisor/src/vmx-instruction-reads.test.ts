import { CountingMeter, EXIT_REASON, fieldByEncoding } from "@nestvisor/vmx";
import { describe, expect, it } from "vitest";
import { builtinWorkload } from "./builtin-workloads";
import { COST_CATALOGS } from "./cost-catalogs";
import { resolveFlags } from "./kernel-presets";
import { Machine } from "./machine";

/**
 * The VMCS fields L0 reads while it emulates one VMX instruction of L1, up to the nested entry
 * (VMLAUNCH/VMRESUME) or the instruction skip (the others): what KVM 6.12's handle_* functions read
 * (nested_vmx_run, nested_vmx_check_permission, get_vmx_mem_address, nested_vmx_succeed).
 */
function readsPerInstruction(workload: string, preset: string, reason: number): string[][] {
  const m = new Machine({
    program: builtinWorkload(workload, { level: 2, iterations: 3 }),
    config: resolveFlags(preset, {}),
    meter: new CountingMeter(COST_CATALOGS),
  });
  const l0 = m.kvms[0]!;
  const p = l0.processor;
  const vmread = p.vmread.bind(p);
  const runs: string[][] = [];
  let current: string[] | null = null;
  p.vmread = (encoding: number) => {
    const name = fieldByEncoding(encoding)?.name ?? `0x${encoding.toString(16)}`;
    // The nested entry starts with the APICv RVI read; the skip with VM_EXIT_INSTRUCTION_LEN.
    if (name === "GUEST_INTR_STATUS" || name === "VM_EXIT_INSTRUCTION_LEN") current = null;
    current?.push(name);
    return vmread(encoding);
  };
  const nested = l0.nested;
  const handle = nested.handleVmxInstruction.bind(nested);
  nested.handleVmxInstruction = (r: number) => {
    if (r === reason) {
      current = [];
      runs.push(current);
    }
    handle(r);
    current = null;
  };
  m.run();
  return runs;
}

describe("what L0 reads to emulate L1's VMX instructions", () => {
  it("VMRESUME: the interrupt shadow, the CPL and, for the entry tracepoint's argument, RIP", () => {
    const runs = readsPerInstruction("cpuid", "v6.12", EXIT_REASON.VMRESUME);
    expect(runs.length).toBeGreaterThanOrEqual(3);
    for (const reads of runs)
      expect(reads).toEqual(["GUEST_INTERRUPTIBILITY_INFO", "GUEST_SS_AR_BYTES", "GUEST_RIP"]);
  });

  it("INVEPT: the CPL, the information, the type register, the descriptor's address and its read", () => {
    // v5.2's L1 resets its MMU on each CR0.WP toggle of L2 and flushes the new root with INVEPT.
    const runs = readsPerInstruction("toggle_cr0_wp", "v5.2", EXIT_REASON.INVEPT);
    expect(runs.length).toBeGreaterThan(0);
    for (const reads of runs) {
      expect(reads).toEqual([
        "GUEST_SS_AR_BYTES",
        "VMX_INSTRUCTION_INFO",
        "GUEST_CS_AR_BYTES",
        "EXIT_QUALIFICATION",
        // The descriptor is a stack slot: base RSP (from the VMCS), segment SS (its AR bytes are
        // cached from the CPL check).
        "GUEST_RSP",
        "GUEST_SS_BASE",
        "GUEST_SS_LIMIT",
        "GUEST_SS_SELECTOR",
        // kvm_read_guest_virt of the descriptor: the walk's CR3, RFLAGS (SMAP) and CR0.WP.
        "GUEST_CR3",
        "GUEST_RFLAGS",
        "GUEST_CR0",
      ]);
    }
  });
});
