import { describe, expect, it } from "vitest";
import { builtinWorkload } from "./builtin-workloads";
import { createModel } from "./hypervisor-model";
import type { GuestVmcsAccess, GuestVmcsAccessContext } from "./model-policies";
import { NestedVmxCpu } from "./nested-vmx-cpu";
import { VMCS_FIELD } from "./vmcs-field-encodings";

/** An access policy that serves nothing and records what it was asked. */
class DecliningAccess implements GuestVmcsAccess {
  readonly hi = 0;
  readonly reads: number[] = [];
  readonly writes: number[] = [];
  readonly level: number;
  constructor(context: GuestVmcsAccessContext) {
    this.level = context.level;
  }
  read(_gpa: number, encoding: number): number {
    this.reads.push(encoding);
    return -1;
  }
  write(_gpa: number, encoding: number): boolean {
    this.writes.push(encoding);
    return false;
  }
}

describe("NestedVmcsProcessor with a vmcsAccess policy", () => {
  it("is installed on each guest hypervisor's processor by its parent", () => {
    const built: DecliningAccess[] = [];
    const program = builtinWorkload("cpuid", { level: 3, iterations: 1 });
    const machine = createModel({
      policies: {
        vmcsAccess: (context) => {
          const access = new DecliningAccess(context);
          built.push(access);
          return access;
        },
      },
    }).createMachine(program);
    expect(built.map((a) => a.level)).toEqual([1, 2]);
    const l1 = machine.kvms[1]!.cpu;
    expect(l1).toBeInstanceOf(NestedVmxCpu);
    if (l1 instanceof NestedVmxCpu) expect(l1.processor.vmcsAccess).toBe(built[0]);
  });

  it("takes the ordinary path for what the policy declines: the same run, the same counts", () => {
    const program = builtinWorkload("cpuid", { level: 2, iterations: 4 });
    let access: DecliningAccess | null = null;
    const declining = createModel({
      policies: {
        vmcsAccess: (context) => {
          access = new DecliningAccess(context);
          return access;
        },
      },
    }).run(program);
    const kvm = createModel().run(program);
    expect(declining.counts).toEqual(kvm.counts);
    expect(declining.snapshot).toEqual(kvm.snapshot);
    const seen = access as DecliningAccess | null;
    // L1's exit handler reads the exit reason and writes RIP past the instruction.
    expect(seen?.reads).toContain(VMCS_FIELD.VM_EXIT_REASON);
    expect(seen?.writes).toContain(VMCS_FIELD.GUEST_RIP);
  });
});
