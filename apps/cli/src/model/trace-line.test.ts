import { describe, expect, it } from "vitest";
import { parseTraceLine, type TraceEvent } from "./trace-line";

function event(text: string): TraceEvent {
  const result = parseTraceLine(text, 1);
  if (result.type !== "event") throw new Error(`not an event: ${JSON.stringify(result)}`);
  return result.event;
}

describe("line prefixes (kvm-trace-formats.md §1)", () => {
  it("reads trace-cmd report lines (no flags column, padded event name)", () => {
    const e = event(
      " qemu-system-x86-6660  [007]   398.691476: kvm_nested_vmexit:    rip 7fa9ee5224e4 reason IO_INSTRUCTION info1 5658000b info2 0 int_info 0 int_info_err 0",
    );
    expect(e).toMatchObject({
      producer: "ftrace",
      comm: "qemu-system-x86",
      tid: 6660,
      cpu: 7,
      ts: 398.691476,
      kind: "nested-exit",
      reason: "IO_INSTRUCTION",
    });
  });

  it("reads ftrace lines with 4 or 5 flag characters and a comm holding spaces", () => {
    const a = event(
      "          CPU 23/KVM-5046    [001] d....  3410.005610: kvm_exit: vcpu 23 reason HLT rip 0xffffffff81a0 info1 0x0 info2 0x0 intr_info 0x0 error_code 0x0",
    );
    expect(a).toMatchObject({
      comm: "CPU 23/KVM",
      tid: 5046,
      cpu: 1,
      kind: "exit",
      reason: "HLT",
      vcpuId: 23,
    });
    const b = event(
      " qemu-system-x86-1695082 [012] ...1. 722267.552895: kvm_mmu_get_page: sp gen 0 gfn 14b600 l1 8-byte q0 direct wux nxe ad root 0 sync new",
    );
    expect(b).toMatchObject({
      tid: 1695082,
      kind: "mmu-get-page",
      gfnLo: 0x14b600,
      gfnHi: 0,
      level: 1,
      created: true,
      direct: true,
    });
  });

  it("reads perf script lines (comm tid [cpu] time: system:event:)", () => {
    const e = event(
      "      CPU 0/KVM  699876 [020] 18136.763651:                       kvm:kvm_exit: reason EPT_VIOLATION rip 0x40359f info 582 0",
    );
    expect(e).toMatchObject({
      producer: "perf",
      comm: "CPU 0/KVM",
      tid: 699876,
      cpu: 20,
      kind: "exit",
      reason: "EPT_VIOLATION",
      info1Lo: 0x582,
      info1Hi: 0,
      info2Lo: 0,
      info2Hi: 0,
    });
  });

  it("classifies headers, lost-event markers, other events and garbage without throwing", () => {
    expect(parseTraceLine("# tracer: nop", 1).type).toBe("header");
    expect(parseTraceLine("cpus=8", 1).type).toBe("header");
    expect(parseTraceLine("CPU 3 is empty", 1).type).toBe("header");
    expect(parseTraceLine("", 1).type).toBe("header");
    expect(parseTraceLine("CPU:2 [LOST 17 EVENTS]", 1)).toEqual({ type: "lost", count: 17 });
    expect(
      event("          <idle>-0       [003] d..2.  100.000001: sched_switch: prev_comm=swapper").kind,
    ).toBe("other");
    expect(parseTraceLine("this is not a trace line", 1).type).toBe("garbage");
    expect(parseTraceLine(" qemu-1 [000] 1.000000: kvm_exit: rip 0x1 info 0 0", 1)).toEqual({
      type: "garbage",
      why: "kvm_exit without a reason",
    });
  });
});

describe("payload layouts by kernel era (§2, §4)", () => {
  const prefix = " qemu-system-x86-6660  [007]   398.691476: ";

  it("kvm_exit: old and plugin layout", () => {
    expect(event(`${prefix}kvm_exit: reason EPT_VIOLATION rip 0x40359f info 582 0`)).toMatchObject({
      reason: "EPT_VIOLATION",
      ripLo: 0x40359f,
      ripHi: 0,
      info1Lo: 0x582,
      info1Hi: 0,
    });
  });

  it("kvm_exit: v5.11+ layout with vcpu, info1/info2, intr_info and error_code, and failure flags", () => {
    const e = event(
      `${prefix}kvm_exit: vcpu 2 reason INVALID_STATE FAILED_VMENTRY rip 0xfff0 info1 0x0000000000000000 info2 0x0000000000000000 intr_info 0x800000ec error_code 0x00000000`,
    );
    expect(e).toMatchObject({
      vcpuId: 2,
      reason: "INVALID_STATE",
      reasonFlags: ["FAILED_VMENTRY"],
      intrInfo: 0x800000ec,
      errorCode: 0,
    });
  });

  it("kvm_exit: SVM names and unknown numeric codes", () => {
    expect(
      event(
        `${prefix}kvm_exit: vcpu 0 reason npf rip 0xffffffffffbbe119 info1 0x0000000200000006 info2 0x00000000001ab000 intr_info 0x00000000 error_code 0x00000000`,
      ),
    ).toMatchObject({
      reason: "npf",
      info1Lo: 0x00000006,
      info1Hi: 0x2,
      info2Lo: 0x1ab000,
      info2Hi: 0,
    });
    expect(event(`${prefix}kvm_exit: reason 131072 rip 0x1000 info 0 0`)).toMatchObject({ reason: "131072" });
  });

  it("kvm_nested_vmexit: the v5.4–v5.12 layout with colons", () => {
    const e = event(
      `${prefix}kvm_nested_vmexit: rip: 0x00007fa9ee5224e4 reason: IO_INSTRUCTION ext_inf1: 0x000000005658000b ext_inf2: 0x0000000000000000 ext_int: 0x00000000 ext_int_err: 0x00000000`,
    );
    expect(e).toMatchObject({
      kind: "nested-exit",
      reason: "IO_INSTRUCTION",
      ripLo: 0xee5224e4,
      ripHi: 0x7fa9,
      info1Lo: 0x5658000b,
      info1Hi: 0,
    });
  });

  it("kvm_nested_vmexit: the plugin's CAN'T FIND FIELD noise before the kernel format", () => {
    const e = event(
      `${prefix}kvm_nested_vmexit: CAN'T FIND FIELD "rip"<CANT FIND FIELD exit_code>vcpu 0 reason EPT_MISCONFIG rip 0xfffff80000001000 info1 0x0000000000000000 info2 0x0000000000000000 intr_info 0x00000000 error_code 0x00000000`,
    );
    expect(e).toMatchObject({ kind: "nested-exit", reason: "EPT_MISCONFIG", vcpuId: 0 });
  });

  it("kvm_nested_vmexit_inject: old and new layouts", () => {
    expect(
      event(
        `${prefix}kvm_nested_vmexit_inject: reason EXTERNAL_INTERRUPT info1 0 info2 0 int_info 80000081 int_info_err 0`,
      ),
    ).toMatchObject({
      kind: "nested-inject",
      reason: "EXTERNAL_INTERRUPT",
      intrInfo: 0x80000081,
    });
    expect(
      event(
        `${prefix}kvm_nested_vmexit_inject: reason: TRIPLE_FAULT ext_inf1: 0x0000000000000000 ext_inf2: 0x0000000000000000 ext_int: 0x00000000 ext_int_err: 0x00000000`,
      ),
    ).toMatchObject({ kind: "nested-inject", reason: "TRIPLE_FAULT" });
  });

  it("kvm_entry: with and without rip; kvm_nested_vmenter and kvm_nested_vmrun", () => {
    expect(event(`${prefix}kvm_entry: vcpu 0`)).toMatchObject({ kind: "entry", vcpuId: 0 });
    expect(event(`${prefix}kvm_entry: vcpu 1, rip 0xfffff8489b64142c`)).toMatchObject({
      kind: "entry",
      vcpuId: 1,
      ripLo: 0x9b64142c,
      ripHi: 0xfffff848,
    });
    expect(
      event(
        `${prefix}kvm_nested_vmenter: rip: 0xffffffff81000010 vmcs: 0xffffffffffffffff nested_rip: 0x00007fa9ee5224e6 int_ctl: 0x00000000 event_inj: 0x00000000 nested_ept=y nested_eptp: 0x000000000abcd05e`,
      ),
    ).toMatchObject({ kind: "nested-enter", nestedEpt: true });
    expect(
      event(
        `${prefix}kvm_nested_vmrun: rip: 0x0000000000001000 vmcb: 0x0000000000002000 nrip: 0x0000000000003000 int_ctl: 0x00000000 event_inj: 0x00000000 npt: off`,
      ),
    ).toMatchObject({
      kind: "nested-enter",
      nestedEpt: false,
    });
  });

  it("kvm_mmu_get_page: the plugin layouts", () => {
    expect(
      event(`${prefix}kvm_mmu_get_page: existing sp gfn 3a22e 1/4 q3 direct --x !pge !nxe root 6 sync`),
    ).toMatchObject({ gfnLo: 0x3a22e, gfnHi: 0, level: 1, created: false, direct: true });
    expect(
      event(`${prefix}kvm_mmu_get_page: new sp gfn 0 4 q0 direct wux pae !nxe !wp root 0 sync`),
    ).toMatchObject({ gfnLo: 0, gfnHi: 0, level: 4, created: true });
  });

  it("other KVM events are recognised but not used", () => {
    expect(event(`${prefix}kvm_page_fault: address 7fa9ee5224e4 error_code 582`).kind).toBe("kvm-other");
    expect(event(`${prefix}kvm_inj_virq: irq 236`).kind).toBe("kvm-other");
  });
});
