import type { BenchCase } from "@nestvisor/bench";
import { toCodes } from "../src/model/trace-code-units";
import { parseTraceLine, TraceLineReader } from "../src/model/trace-line";
import { traceStats } from "../src/model/trace-stat";

/** Lines per batch: about 13 MB of text, read as `nestvisor trace` reads a file (bytes). */
const LINES = 100_000;

/**
 * Throughput target for reading a trace, in lines per second: users replay real traces of millions
 * of lines, which must take seconds, not minutes (1 µs per line).
 */
export const TRACE_LINES_TARGET = 1_000_000;

/** A small deterministic generator (mulberry32), so every run reads the same trace. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const L2_REASONS = ["EPT_VIOLATION", "IO_INSTRUCTION", "CPUID", "MSR_WRITE", "HLT", "EXTERNAL_INTERRUPT"];
const L1_REASONS = ["VMREAD", "VMWRITE", "VMRESUME", "MSR_READ", "PREEMPTION_TIMER", "EXTERNAL_INTERRUPT"];

/**
 * The lines of a nested-virtualization trace as real ones look (kvm-trace-formats.md §1, §2, §4):
 * trace-cmd report lines (old and plugin payloads), ftrace lines (5 flag characters, the kernel's
 * ≥ 5.11 payloads) and perf script lines, switching producer every few hundred exits; L2 exits
 * handled by L0 or reflected to L1 (with L1's VMREADs and VMRESUME), kvm_mmu_get_page, other KVM
 * events and scheduler events.
 */
export function syntheticTrace(lines: number, seed = 1): string[] {
  const r = random(seed);
  const out = ["# tracer: nop", "#"];
  let us = 722_267_552_895;
  let producer = 0;
  const pick = <T>(list: readonly T[]): T => list[Math.floor(r() * list.length)]!;
  const hex = (n: number, width: number) => `0x${n.toString(16).padStart(width, "0")}`;
  const prefix = (vcpu: number, event: string) => {
    const tid = 5046 + vcpu;
    const ts = `${Math.floor(us / 1e6)}.${String(us % 1e6).padStart(6, "0")}`;
    if (producer === 2)
      return `      CPU ${vcpu}/KVM  ${tid} [00${vcpu}] ${ts}:${" ".repeat(Math.max(1, 24 - event.length))}kvm:${event}: `;
    if (producer === 1) return `          CPU ${vcpu}/KVM-${tid}    [00${vcpu}] d....  ${ts}: ${event}: `;
    return ` qemu-system-x86-${tid}  [00${vcpu}]   ${ts}: ${`${event}:`.padEnd(22)} `;
  };
  const exit = (vcpu: number, event: string, reason: string, rip: string, q: number, newLayout: boolean) =>
    prefix(vcpu, event) +
    (newLayout
      ? `vcpu ${vcpu} reason ${reason} rip ${rip} info1 ${hex(q, 16)} info2 ${hex(0, 16)} intr_info ${hex(0x800000ec, 8)} error_code ${hex(0, 8)}`
      : event === "kvm_exit"
        ? `reason ${reason} rip ${rip} info ${q.toString(16)} 0`
        : `rip ${rip.slice(2)} reason ${reason} info1 ${q.toString(16)} info2 0 int_info 0 int_info_err 0`);
  const entry = (vcpu: number, rip: string, newLayout: boolean) =>
    prefix(vcpu, "kvm_entry") + (newLayout ? `vcpu ${vcpu}, rip ${rip}` : `vcpu ${vcpu}`);
  while (out.length < lines) {
    if (r() < 0.003) producer = Math.floor(r() * 3);
    const newLayout = producer === 1;
    const vcpu = Math.floor(r() * 4);
    us += 1 + Math.floor(r() * 5);
    const l2 = r() < 0.5;
    const reason = pick(l2 ? L2_REASONS : L1_REASONS);
    const q = Math.floor(r() * 0x1000);
    const rip = `0xffffffff81${Math.floor(r() * 0xffffff)
      .toString(16)
      .padStart(6, "0")}`;
    out.push(exit(vcpu, "kvm_exit", reason, rip, q, newLayout));
    if (l2) {
      out.push(exit(vcpu, "kvm_nested_vmexit", reason, "0x7fa9ee5224e4", q, newLayout));
      if (reason === "EPT_VIOLATION") {
        out.push(
          `${prefix(vcpu, "kvm_mmu_get_page")}sp gen 0 gfn ${Math.floor(r() * 0xffffff).toString(16)} l1 8-byte q0 direct wux nxe ad root 0 sync ${r() < 0.5 ? "new" : "existing"}`,
          `${prefix(vcpu, "kvm_page_fault")}address 7fa9ee5224e4 error_code 582`,
        );
      }
      if (r() < 0.6) {
        // Reflected to L1: L1 reads the exit with VMREADs and resumes L2.
        out.push(
          prefix(vcpu, "kvm_nested_vmexit_inject") +
            (newLayout
              ? `reason: ${reason} ext_inf1: ${hex(q, 16)} ext_inf2: ${hex(0, 16)} ext_int: ${hex(0, 8)} ext_int_err: ${hex(0, 8)}`
              : `reason ${reason} info1 ${q.toString(16)} info2 0 int_info 0 int_info_err 0`),
          entry(vcpu, rip, newLayout),
        );
        for (let i = 0; i < 2; i++) {
          out.push(exit(vcpu, "kvm_exit", "VMREAD", "0xffffffffc0a01234", 0, newLayout));
          out.push(entry(vcpu, "0xffffffffc0a01237", newLayout));
        }
        out.push(
          exit(vcpu, "kvm_exit", "VMRESUME", "0xffffffffc0a01300", 0, newLayout),
          `${prefix(vcpu, "kvm_nested_vmenter")}rip: 0xffffffffc0a01300 vmcs: 0x0000000012345000 nested_rip: 0x00007fa9ee5224e6 int_ctl: 0x00000000 event_inj: 0x00000000 nested_ept=y nested_eptp: 0x000000000abcd05e`,
        );
      }
    }
    if (r() < 0.15) out.push(`${prefix(vcpu, "kvm_inj_virq")}irq 236`);
    if (r() < 0.1) out.push(`${prefix(vcpu, "kvm_msr")}msr_write 6e0 = 0x12345678`);
    us += 1 + Math.floor(r() * 20);
    out.push(entry(vcpu, rip, newLayout));
    if (r() < 0.1) {
      out.push(
        `          <idle>-0       [003] d..2.  ${Math.floor(us / 1e6)}.${String(us % 1e6).padStart(6, "0")}: sched_switch: prev_comm=swapper/3 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=kworker/3:1 next_pid=901 next_prio=120`,
      );
    }
  }
  out.length = lines;
  return out;
}

export function traceBenchCases(): BenchCase[] {
  const lines = syntheticTrace(LINES);
  const text = `${lines.join("\n")}\n`;
  const bytes = new TextEncoder().encode(text);
  const codes = toCodes(text);
  const starts: number[] = [];
  for (let at = 0; at < text.length; at = text.indexOf("\n", at) + 1) starts.push(at);
  const reader = new TraceLineReader();
  return [
    {
      name: "trace lines parsed (traceStats, mixed ftrace/perf)",
      unit: "lines",
      ops: LINES,
      batch: () => {
        const stats = traceStats(bytes);
        return stats.lines + stats.exits + stats.garbage;
      },
    },
    {
      name: "trace lines read (TraceLineReader.read, no objects)",
      unit: "lines",
      ops: LINES,
      batch: () => {
        let sum = 0;
        for (let i = 0; i < starts.length; i++) {
          const start = starts[i]!;
          sum += reader.read(text, codes, start, text.indexOf("\n", start), i + 1) + reader.kind;
        }
        return sum;
      },
    },
    {
      name: "trace lines parsed (parseTraceLine, one object per line)",
      unit: "lines",
      ops: LINES,
      batch: () => {
        let sum = 0;
        for (let i = 0; i < lines.length; i++) sum += parseTraceLine(lines[i]!, i + 1).type.length;
        return sum;
      },
    },
  ];
}
