import { MMU_EVENTS } from "@nestvisor/mmu";
import { CountingMeter, VMX_EVENTS } from "@nestvisor/vmx";
import { describe, expect, it } from "vitest";
import { builtinWorkload } from "./builtin-workloads";
import { HYPERVISOR_EVENTS } from "./hypervisor-events";
import { resolveFlags } from "./kernel-presets";
import { KVM_PHASE, kvmPhaseInfo } from "./kvm-phases";
import { Machine } from "./machine";
import { TimelineTracer, TRACE_KIND, type Tracer } from "./tracer";

const P = KVM_PHASE;

function run(preset: string, tracer?: Tracer) {
  const meter = new CountingMeter([VMX_EVENTS, MMU_EVENTS, HYPERVISOR_EVENTS]);
  const machine = new Machine({
    program: builtinWorkload("cpuid", { level: 2, iterations: 3 }),
    config: resolveFlags(preset, {}),
    meter,
    ...(tracer === undefined ? {} : { tracer }),
  });
  machine.run();
  return meter.snapshot();
}

/** The phases of the recorded timeline, as "level:phase", in order. */
function phases(timeline: TimelineTracer): string[] {
  const out: string[] = [];
  for (let i = 0; i < timeline.length; i++) {
    if (timeline.kindAt(i) === TRACE_KIND.PHASE) out.push(`${timeline.levelAt(i)}:${timeline.codeAt(i)}`);
  }
  return out;
}

describe("KVM phases on the timeline", () => {
  it("every phase has a step name and a KVM function; other numbers have none", () => {
    for (const id of Object.values(KVM_PHASE)) {
      const info = kvmPhaseInfo(id)!;
      expect(info.step.length).toBeGreaterThan(0);
      expect(info.kvm).toMatch(/[a-z_]+/);
    }
    expect(kvmPhaseInfo(0)).toBeUndefined();
    expect(kvmPhaseInfo(999)).toBeUndefined();
  });

  it("an L2 CPUID round trip passes through KVM's functions in KVM's order (kvm-vmx.md §7, §8)", () => {
    const timeline = new TimelineTracer();
    run("v6.12", timeline);
    const seq = phases(timeline).join(" ");
    const exitToL1 = [
      `0:${P.SYNC_VMCS02_TO_VMCS12}`,
      `0:${P.PREPARE_VMCS12}`,
      `0:${P.SWITCH_VMCS}`,
      `0:${P.REFRESH_VMCS01}`,
      `0:${P.LOAD_VMCS12_HOST_STATE}`,
      `0:${P.LOAD_VMCS12_HOST_STATE}`,
      `0:${P.PREPARE_ENTRY}`,
      `0:${P.SWITCH_TO_GUEST}`,
      `0:${P.COPY_VMCS12_TO_SHADOW}`,
      `0:${P.SWITCH_TO_GUEST}`,
      `0:${P.SNAPSHOT_HOST_DEBUGCTL}`,
      `0:${P.VCPU_RUN}`,
    ].join(" ");
    // L1's DEBUGCTL read is an RDMSR exit that L0 handles before L1 goes on to its VMRESUME.
    const l0HandlesRdmsr = [
      `0:${P.SKIP_INSTRUCTION}`,
      `0:${P.PREPARE_ENTRY}`,
      `0:${P.SWITCH_TO_GUEST}`,
      `0:${P.SNAPSHOT_HOST_DEBUGCTL}`,
      `0:${P.VCPU_RUN}`,
    ].join(" ");
    const l1Handler = [
      `1:${P.SKIP_INSTRUCTION}`,
      `1:${P.PREPARE_ENTRY}`,
      `1:${P.SWITCH_TO_GUEST}`,
      `1:${P.SNAPSHOT_HOST_DEBUGCTL}`,
      l0HandlesRdmsr,
      `1:${P.VCPU_RUN}`,
    ].join(" ");
    const entryToL2 = [
      `0:${P.SWITCH_VMCS}`,
      `0:${P.PREPARE_VMCS02_EARLY}`,
      `0:${P.GET_VMCS12_PAGES}`,
      `0:${P.PREPARE_VMCS02}`,
      `0:${P.PREPARE_VMCS02}`,
      `0:${P.PREPARE_ENTRY}`,
      `0:${P.SWITCH_TO_GUEST}`,
      `0:${P.SNAPSHOT_HOST_DEBUGCTL}`,
      `0:${P.VCPU_RUN}`,
    ].join(" ");
    expect(seq).toContain(`${exitToL1} ${l1Handler} ${entryToL2}`);
  });

  it("phases are spans inside the exit being handled and end before it does", () => {
    const timeline = new TimelineTracer();
    run("v6.12", timeline);
    let phaseSpans = 0;
    for (let i = 0; i < timeline.length; i++) {
      if (timeline.kindAt(i) !== TRACE_KIND.PHASE) continue;
      phaseSpans++;
      expect(timeline.instantAt(i)).toBe(false);
      expect(timeline.endAt(i)).toBeGreaterThanOrEqual(timeline.startAt(i));
    }
    expect(phaseSpans).toBeGreaterThan(20);
  });

  it("count nothing: the same counts with and without a tracer, under every preset", () => {
    for (const preset of ["v5.2", "v6.12"]) expect(run(preset, new TimelineTracer())).toEqual(run(preset));
  });
});
