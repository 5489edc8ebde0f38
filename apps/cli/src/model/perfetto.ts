import {
  type ChromeTrace,
  type CostProfile,
  kvmPhaseInfo,
  TRACE_KIND,
  type TraceKind,
  type TraceTimeline,
  toChromeTraceEvents,
} from "@nestvisor/hypervisor";
import { exitReasonName, fieldName } from "@nestvisor/vmx";

/**
 * The Chrome trace-event JSON of a run, for Perfetto's UI: one track per level, hardware exits and
 * entries as instants, exit handling as slices. Event names spell out exit reasons by KVM's names.
 */

function reason(code: number): string {
  return exitReasonName(code & 0xffff) ?? `reason 0x${(code >>> 0).toString(16)}`;
}

export function traceEventName(kind: TraceKind, code: number): string {
  switch (kind) {
    case TRACE_KIND.VM_EXIT:
      return `VM exit: ${reason(code)}`;
    case TRACE_KIND.VM_ENTRY:
      return "VM entry";
    case TRACE_KIND.HANDLER:
      return `handle ${reason(code)}`;
    case TRACE_KIND.NESTED_ENTRY:
      return "nested VM entry";
    case TRACE_KIND.NESTED_EXIT:
      return `nested VM exit: ${reason(code)}`;
    case TRACE_KIND.VMX_INSTRUCTION:
      return `VMX instruction ${fieldName(code & 0x7fff)}`;
    case TRACE_KIND.MMU:
      return "MMU";
    case TRACE_KIND.PHASE:
      return kvmPhaseInfo(code)?.kvm ?? `KVM phase ${code}`;
    default:
      return "guest";
  }
}

function levelName(level: number, workloadLevel: number): string {
  if (level === 0) return "L0 (host KVM)";
  if (level === workloadLevel) return `L${level} (workload)`;
  return `L${level} (guest KVM)`;
}

export function perfettoTrace(
  timeline: TraceTimeline,
  profile: CostProfile,
  workload: string,
  workloadLevel: number,
): ChromeTrace {
  const levelNames = Array.from({ length: workloadLevel + 1 }, (_, level) => levelName(level, workloadLevel));
  const trace = toChromeTraceEvents(timeline, {
    cyclesPerMicrosecond: profile.tscGHz.value * 1000,
    name: traceEventName,
    levelNames,
  });
  // A guest hypervisor's handler span carries no reason (the tracer records code 0 for it).
  const events = trace.traceEvents.map((event) =>
    event.ph === "X" && event.cat === "HANDLER" && event.tid > 0
      ? { ...event, name: `L${event.tid} handles the reflected exit` }
      : event,
  );
  return {
    traceEvents: events,
    displayTimeUnit: trace.displayTimeUnit,
    otherData: { ...trace.otherData, workload, profile: profile.name, tscGHz: profile.tscGHz.value },
  };
}
