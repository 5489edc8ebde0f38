import { describe, expect, it } from "vitest";
import { normaliseReason, percentile, statRows, traceStats } from "./trace-stat";

const P = (tid: number, ts: string) => ` qemu-system-x86-${tid}  [001]   ${ts}: `;

describe("traceStats", () => {
  it("times each exit from kvm_exit to the vCPU's next kvm_entry", () => {
    const text = [
      `${P(10, "1.000000")}kvm_exit: reason CPUID rip 0x1 info 0 0`,
      `${P(10, "1.000004")}kvm_entry: vcpu 0`,
      `${P(11, "1.000005")}kvm_exit: reason HLT rip 0x1 info 0 0`,
      `${P(10, "1.000010")}kvm_exit: reason CPUID rip 0x1 info 0 0`,
      `${P(10, "1.000012")}kvm_entry: vcpu 0`,
      `${P(11, "1.000105")}kvm_entry: vcpu 1`,
    ].join("\n");
    const stats = traceStats(text);
    expect(stats).toMatchObject({ lines: 6, events: 6, exits: 3, nested: false, garbage: 0 });
    const rows = statRows(stats, { mergeVcpus: true });
    expect(rows.map((r) => [r.reason, r.count, r.exitingLevel])).toEqual([
      ["CPUID", 2, null],
      ["HLT", 1, null],
    ]);
    expect(rows[0]!.minUs).toBeCloseTo(2, 5);
    expect(rows[0]!.maxUs).toBeCloseTo(4, 5);
    expect(rows[1]!.p50Us).toBeCloseTo(100, 4);
    const perVcpu = statRows(stats, { mergeVcpus: false });
    expect(perVcpu.map((r) => r.vcpu).sort()).toEqual(["0", "1"]);
  });

  it("splits a nested trace by exiting level and by who handled the exit", () => {
    const text = [
      `${P(7, "2.000000")}kvm_exit: reason IO_INSTRUCTION rip 0x1 info 5658000b 0`,
      `${P(7, "2.000001")}kvm_nested_vmexit: rip 1 reason IO_INSTRUCTION info1 5658000b info2 0 int_info 0 int_info_err 0`,
      `${P(7, "2.000002")}kvm_nested_vmexit_inject: reason IO_INSTRUCTION info1 5658000b info2 0 int_info 0 int_info_err 0`,
      `${P(7, "2.000003")}kvm_entry: vcpu 0`,
      `${P(7, "2.000004")}kvm_exit: reason VMRESUME rip 0x2 info 0 0`,
      `${P(7, "2.000005")}kvm_nested_vmenter: rip: 0x2 vmcs: 0x1000 nested_rip: 0x3 int_ctl: 0x0 event_inj: 0x0 nested_ept=y nested_eptp: 0x5e`,
      `${P(7, "2.000006")}kvm_entry: vcpu 0`,
      `${P(7, "2.000007")}kvm_exit: reason EPT_MISCONFIG rip 0x3 info 0 0`,
      `${P(7, "2.000008")}kvm_nested_vmexit: rip 3 reason EPT_MISCONFIG info1 0 info2 0 int_info 0 int_info_err 0`,
      `${P(7, "2.000009")}kvm_entry: vcpu 0`,
    ].join("\n");
    const stats = traceStats(text);
    expect(stats.nested).toBe(true);
    expect(stats.nestedEntries).toBe(1);
    const rows = statRows(stats, { mergeVcpus: true });
    const key = (r: { exitingLevel: string | null; handledBy: string; reason: string }) =>
      `${r.exitingLevel}/${r.handledBy}/${r.reason}`;
    expect(rows.map(key).sort()).toEqual(["L1/L0/VMRESUME", "L2/L0/EPT_MISCONFIG", "L2/L1/IO_INSTRUCTION"]);
    const io = stats.groups.find((g) => g.reason === "IO_INSTRUCTION")!;
    expect([io.qualifications.los, io.qualifications.his]).toEqual([[0x5658000b], [0]]);
  });

  it("counts garbage and lost events, and keeps the first garbage lines as samples", () => {
    const text = [
      "garbage one",
      `${P(1, "1.0")}kvm_exit: reason HLT rip 0 info 0 0`,
      "garbage two",
      "CPU:0 [LOST 5 EVENTS]",
      "",
    ].join("\n");
    const stats = traceStats(text);
    expect(stats.garbage).toBe(2);
    expect(stats.garbageSamples.map((g) => g.line)).toEqual([1, 3]);
    expect(stats.lostEvents).toBe(5);
    expect(stats.exits).toBe(1);
    expect(statRows(stats, { mergeVcpus: true })[0]!.timedCount).toBe(0);
  });

  it("labels vCPUs by KVM's id even when it appears after the first exit", () => {
    const text = [
      `${P(42, "1.0")}kvm_exit: reason HLT rip 0 info 0 0`,
      `${P(42, "1.1")}kvm_entry: vcpu 3`,
    ].join("\n");
    expect(statRows(traceStats(text), { mergeVcpus: false })[0]!.vcpu).toBe("3");
  });

  it("filters by vCPU and reason", () => {
    const text = [
      `${P(1, "1.0")}kvm_exit: vcpu 0 reason HLT rip 0x0 info1 0x0 info2 0x0`,
      `${P(2, "1.0")}kvm_exit: vcpu 1 reason CPUID rip 0x0 info1 0x0 info2 0x0`,
    ].join("\n");
    const stats = traceStats(text);
    expect(statRows(stats, { mergeVcpus: false, vcpu: "1" }).map((r) => r.reason)).toEqual(["CPUID"]);
    expect(statRows(stats, { mergeVcpus: true, reason: /hl/i }).map((r) => r.reason)).toEqual(["HLT"]);
  });
});

describe("traceStats against KVM 6.12's tracepoints (review fixes)", () => {
  const K = (ts: string) => ` CPU 0/KVM-5046  [001]  ${ts}: `;

  it("credits an L2 exit to L1 only when kvm_nested_vmexit_inject carries its reason", () => {
    // nested_vmx_vmexit prints the inject event for exits KVM makes up too (an interrupt for L1).
    const text = [
      `${K("100.000010")}kvm_exit: vcpu 0 reason VMRESUME rip 0x1 info1 0x0 info2 0x0 intr_info 0x0 error_code 0x0`,
      `${K("100.000012")}kvm_nested_vmenter: rip: 0x1 vmcs: 0x12345000 nested_rip: 0x401000 int_ctl: 0x0 event_inj: 0x0 nested_ept=y nested_eptp: 0x1234501e`,
      `${K("100.000013")}kvm_nested_vmexit_inject: reason: EXTERNAL_INTERRUPT ext_inf1: 0x0 ext_inf2: 0x0 ext_int: 0x800000ec ext_int_err: 0x0`,
      `${K("100.000015")}kvm_entry: vcpu 0, rip 0x2`,
      `${K("100.000020")}kvm_exit: vcpu 0 reason EPT_VIOLATION rip 0x401000 info1 0x181 info2 0x0 intr_info 0x0 error_code 0x0`,
      `${K("100.000021")}kvm_nested_vmexit: vcpu 0 reason EPT_VIOLATION rip 0x401000 info1 0x181 info2 0x0 intr_info 0x0 error_code 0x0`,
      `${K("100.000025")}kvm_nested_vmexit_inject: reason: EXTERNAL_INTERRUPT ext_inf1: 0x0 ext_inf2: 0x0 ext_int: 0x800000ec ext_int_err: 0x0`,
      `${K("100.000030")}kvm_entry: vcpu 0, rip 0x2`,
      `${K("100.000040")}kvm_exit: vcpu 0 reason CPUID rip 0x401000 info1 0x0 info2 0x0 intr_info 0x0 error_code 0x0`,
      `${K("100.000041")}kvm_nested_vmexit: vcpu 0 reason CPUID rip 0x401000 info1 0x0 info2 0x0 intr_info 0x0 error_code 0x0`,
      `${K("100.000042")}kvm_nested_vmexit_inject: reason: CPUID ext_inf1: 0x0 ext_inf2: 0x0 ext_int: 0x0 ext_int_err: 0x0`,
      `${K("100.000050")}kvm_entry: vcpu 0, rip 0x2`,
    ].join("\n");
    const rows = statRows(traceStats(text), { mergeVcpus: true });
    expect(rows.map((r) => [r.exitingLevel, r.handledBy, r.reason]).sort()).toEqual([
      ["L1", "L0", "VMRESUME"],
      ["L2", "L0", "EPT_VIOLATION"],
      ["L2", "L1", "CPUID"],
    ]);
  });

  it("keeps the value of a reason the kvm plugin prints as UNKNOWN (n)", () => {
    const text = [
      `      CPU 0/KVM  699876 [020] 18136.763660:                       kvm:kvm_exit: reason UNKNOWN (65) rip 0x40359f info 0 0`,
      `      CPU 0/KVM  699876 [020] 18136.763661:                       kvm:kvm_exit: reason UNKNOWN (2147483681) rip 0x40359f info 0 0`,
    ].join("\n");
    const reasons = statRows(traceStats(text), { mergeVcpus: true }).map((r) => r.reason);
    expect(reasons).not.toContain("UNKNOWN");
    expect(reasons).toContain("0x80000021");
  });

  it("does not pair an exit with an entry across lost events", () => {
    const text = [
      `${K("100.000010")}kvm_exit: vcpu 0 reason HLT rip 0x1 info1 0x0 info2 0x0 intr_info 0x0 error_code 0x0`,
      "CPU:1 [LOST 50000 EVENTS]",
      `${K("102.500010")}kvm_entry: vcpu 0, rip 0x1`,
    ].join("\n");
    const [row] = statRows(traceStats(text), { mergeVcpus: true });
    expect(row!.count).toBe(1);
    expect(row!.timedCount).toBe(0);
  });

  it("selects a vCPU by its thread id when no vCPU has that label", () => {
    const text = `${K("100.000010")}kvm_exit: vcpu 0 reason HLT rip 0x1 info1 0x0 info2 0x0 intr_info 0x0 error_code 0x0`;
    expect(statRows(traceStats(text), { mergeVcpus: false, vcpu: "5046" }).map((r) => r.reason)).toEqual([
      "HLT",
    ]);
  });

  it("skips truncated or corrupt kvm_exit lines, naming why, instead of counting them", () => {
    const text = [
      `${K("100.000010")}kvm_exit: vcpu 0 reason EPT_VIOL`,
      `${K("100.000020")}kvm_exit: vcpu 0 reason HLT rip 0xffffffff81001000 info1 0x00000`,
      `${K("100.000050")}kvm_exit: vcpu 0 reason HLT rip 0x1 info1 0xzz info2 0x0 intr_info 0x0 error_code 0x0`,
      `${K("100.000060")}kvm_exit: vcpu 0 reason CPUID rip 0x1 info1 0x0 info2 0x0 intr_info 0x0 error_code 0x0`,
    ].join("\n");
    const stats = traceStats(text);
    expect(stats.exits).toBe(1);
    expect(stats.garbageSamples.map((g) => g.why)).toEqual([
      "kvm_exit: no rip (a truncated line?)",
      "kvm_exit: no info2 after info1 (a truncated line?)",
      'kvm_exit: info1 "0xzz" is not a hex number',
    ]);
  });

  it("names a counter-clock timestamp as the reason a line is refused", () => {
    const stats = traceStats(`${K("1234567890123")}kvm_exit: vcpu 0 reason HLT rip 0x1 info1 0x0 info2 0x0`);
    expect(stats.events).toBe(0);
    expect(stats.garbageSamples[0]!.why).toMatch(/integer timestamp/);
  });
});

describe("helpers", () => {
  it("names numeric reasons and prints unknown ones in hex", () => {
    expect(normaliseReason("48")).toBe("EPT_VIOLATION");
    expect(normaliseReason("131072")).toBe("0x20000");
    expect(normaliseReason("npf")).toBe("npf");
  });

  it("takes nearest-rank percentiles", () => {
    const values = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(values, 50)).toBe(50);
    expect(percentile(values, 99)).toBe(99);
    expect(percentile([7], 99)).toBe(7);
    expect(Number.isNaN(percentile([], 50))).toBe(true);
  });
});
