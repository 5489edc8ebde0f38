/**
 * One line of a KVM trace as `trace-cmd report`, ftrace's `trace`/`trace_pipe` or `perf script`
 * print it (kvm-trace-formats.md §1), decoded into an event. Payloads are read by key, not by
 * position, so the kernel's old and new layouts of `kvm_exit`, `kvm_entry`, `kvm_nested_vmexit`,
 * `kvm_nested_vmexit_inject` and `kvm_nested_vmenter` (≤ v5.10, v5.4–v5.12, ≥ v5.13: §2) and the
 * libtraceevent plugin's layouts (§4) all parse, including the plugin's `CAN'T FIND FIELD` noise.
 * Nothing here throws: a line that cannot be read is returned as garbage with a reason.
 */

export type Producer = "perf" | "ftrace";

interface Common {
  readonly line: number;
  readonly producer: Producer;
  /** The event name without its system ("kvm_exit"). */
  readonly event: string;
  readonly comm: string;
  /** Thread id of the task (a vCPU thread for KVM events). */
  readonly tid: number;
  readonly cpu: number;
  /** Seconds. */
  readonly ts: number;
}

/** Numbers from a payload: hex (with or without 0x) except `vcpu`, which KVM prints in decimal. */
export interface ExitFields {
  /** The exit reason as printed: a KVM name (EPT_VIOLATION, npf, EXIT_NPF) or a number. */
  readonly reason: string;
  /** Flag names printed after the reason (FAILED_VMENTRY, …). */
  readonly reasonFlags: readonly string[];
  readonly vcpuId?: number;
  readonly rip?: bigint;
  /** Exit qualification (VMX) / exit_info_1 (SVM). */
  readonly info1?: bigint;
  readonly info2?: bigint;
  readonly intrInfo?: bigint;
  readonly errorCode?: bigint;
}

export type TraceEvent =
  | (Common & { readonly kind: "exit" } & ExitFields)
  | (Common & { readonly kind: "nested-exit" } & ExitFields)
  | (Common & { readonly kind: "nested-inject" } & ExitFields)
  | (Common & { readonly kind: "entry"; readonly vcpuId?: number; readonly rip?: bigint })
  | (Common & { readonly kind: "nested-enter"; readonly nestedEpt?: boolean })
  | (Common & {
      readonly kind: "mmu-get-page";
      readonly gfn?: bigint;
      readonly level?: number;
      readonly created: boolean;
      readonly direct: boolean;
    })
  | (Common & { readonly kind: "kvm-other" })
  | (Common & { readonly kind: "other" });

export type LineResult =
  | { readonly type: "event"; readonly event: TraceEvent }
  | { readonly type: "header" }
  | { readonly type: "lost"; readonly count: number }
  | { readonly type: "garbage"; readonly why: string };

// comm tid[/tid] [cpu] seconds: [period] system:event: payload   (perf script)
const PERF =
  /^\s*(.+?)\s+(\d+)(?:\/(\d+))?\s+\[(\d+)\]\s+(\d+(?:\.\d+)?):\s+(?:\d+\s+)?([A-Za-z_][\w]*):([A-Za-z_][\w]*):\s?(.*)$/;
// comm-tid [(tgid)] [cpu] [flags] seconds: event: payload   (ftrace, trace-cmd report)
const FTRACE =
  /^\s*(.*?)-(\d+)\s+(?:\(\s*[-\d]+\)\s+)?\[(\d+)\]\s+(?:(\S{3,7})\s+)?(\d+(?:\.\d+)?):\s+([A-Za-z_][\w]*):\s*(.*)$/;
const HEADER =
  /^\s*(#|$)|^\s*cpus=\d+\s*$|^\s*version\s*=|^\s*CPU\s*\d+ is empty\s*$|^\s*trace-cmd\b|^\s*\[?\s*tracing\b/i;
const LOST = /LOST\s+(\d+)\s+EVENTS/i;

/**
 * Fields KVM prints together: when the first is on a line, the others follow it in every layout
 * (kvm_exit's info1/info2, intr_info/error_code since 5.11; the inject event's int_info pair and the
 * four ext_* fields of 5.x+).
 */
const FIELD_RUNS: readonly (readonly string[])[] = [
  ["info1", "info2"],
  ["intr_info", "error_code"],
  ["int_info", "int_info_err"],
  ["ext_inf1", "ext_inf2", "ext_int", "ext_int_err"],
];
/** The fields whose values are numbers: RIP and every field of the runs. */
const NUMERIC_KEYS: readonly string[] = ["rip", ...FIELD_RUNS.flat()];

const KEYS = new Set(["vcpu", "reason", "info", "isa", ...NUMERIC_KEYS]);

/** The libtraceevent kvm plugin's complaint on new kernels, followed by the kernel's own format. */
const PLUGIN_NOISE = /CAN'T FIND FIELD "[^"]*"(?:<CANT FIND FIELD [^>]*>)?/g;

function hexValue(text: string | undefined): bigint | undefined {
  if (text === undefined) return undefined;
  const clean = text.replace(/[,;]$/, "").replace(/^0x/i, "");
  return /^[0-9a-f]+$/i.test(clean) ? BigInt(`0x${clean}`) : undefined;
}

/** Reads `key value` pairs (keys may carry a trailing ':'); `info` takes two values. */
function readFields(payload: string): Map<string, string[]> {
  const tokens = payload
    .replace(PLUGIN_NOISE, " ")
    .trim()
    .split(/\s+/)
    .filter((t) => t !== "");
  const fields = new Map<string, string[]>();
  let key: string | undefined;
  for (const raw of tokens) {
    const bare = raw.replace(/[:,]$/, "").toLowerCase();
    if (KEYS.has(bare) && (raw.endsWith(":") || !fields.has(bare) || key === undefined)) {
      key = bare;
      fields.set(key, []);
      continue;
    }
    if (key !== undefined) fields.get(key)!.push(raw.replace(/,$/, ""));
  }
  return fields;
}

/**
 * Why an exit line cannot be trusted, or undefined: a number that does not parse, or a line cut
 * short (no RIP, or a field without the ones KVM always prints with it; trace.h kvm_exit).
 */
function exitLineProblem(f: Map<string, string[]>, hasRip: boolean): string | undefined {
  // Every kvm_exit / kvm_nested_vmexit layout, old and new, prints the RIP after the reason.
  if (hasRip && !f.has("rip")) return "no rip (a truncated line?)";
  for (const key of NUMERIC_KEYS) {
    const tokens = f.get(key);
    if (tokens === undefined) continue;
    if (tokens.length === 0) return `${key} has no value (a truncated line?)`;
    if (hexValue(tokens[0]) === undefined) return `${key} "${tokens[0]}" is not a hex number`;
  }
  for (const run of FIELD_RUNS) {
    if (!f.has(run[0]!)) continue;
    const missing = run.find((key) => !f.has(key));
    if (missing !== undefined) return `no ${missing} after ${run[0]} (a truncated line?)`;
  }
  return undefined;
}

function exitFields(payload: string, hasRip: boolean): ExitFields | string | undefined {
  const f = readFields(payload);
  const reasonTokens = f.get("reason");
  if (reasonTokens === undefined || reasonTokens.length === 0) return undefined;
  const problem = exitLineProblem(f, hasRip);
  if (problem !== undefined) return problem;
  // "EPT_VIOLATION", "EPT_VIOLATION[ ]" (v5.4 nested layout), "INVALID_STATE FAILED_VMENTRY".
  const [first, ...rest] = reasonTokens;
  // The kvm plugin prints a reason it cannot name as "UNKNOWN (<decimal value>)": keep the value.
  const unknown = first === "UNKNOWN" ? /^\((\d+)\)$/.exec(rest[0] ?? "") : null;
  if (unknown) rest.shift();
  const reason = unknown ? unknown[1]! : first!.replace(/\[.*$/, "");
  if (reason === "") return undefined;
  const info = f.get("info");
  const vcpuText = f.get("vcpu")?.[0];
  const vcpuId = vcpuText !== undefined && /^\d+$/.test(vcpuText) ? Number(vcpuText) : undefined;
  const out: Record<string, unknown> = {
    reason,
    reasonFlags: rest.map((t) => t.replace(/[[\]]/g, "")).filter((t) => /^[A-Z_|]+$/.test(t)),
  };
  const set = (name: string, value: bigint | number | undefined) => {
    if (value !== undefined) out[name] = value;
  };
  set("vcpuId", vcpuId);
  set("rip", hexValue(f.get("rip")?.[0]));
  set("info1", hexValue(f.get("info1")?.[0] ?? f.get("ext_inf1")?.[0] ?? info?.[0]));
  set("info2", hexValue(f.get("info2")?.[0] ?? f.get("ext_inf2")?.[0] ?? info?.[1]));
  set("intrInfo", hexValue(f.get("intr_info")?.[0] ?? f.get("int_info")?.[0] ?? f.get("ext_int")?.[0]));
  set(
    "errorCode",
    hexValue(f.get("error_code")?.[0] ?? f.get("int_info_err")?.[0] ?? f.get("ext_int_err")?.[0]),
  );
  return out as unknown as ExitFields;
}

function mmuPage(payload: string): { gfn?: bigint; level?: number; created: boolean; direct: boolean } {
  const gfn = /\bgfn\s+([0-9a-f]+)/i.exec(payload)?.[1];
  // kernel: "... gfn 14b600 l1 8-byte ..."; plugin: "new sp gfn 0 4 q0 ..." or "... gfn 3a22e 1/4 q3 ...".
  const level =
    /\bl(\d+)\s+\d-byte\b/.exec(payload)?.[1] ??
    /\bgfn\s+[0-9a-f]+\s+(\d+)(?:\/\d+)?\s+q\d/i.exec(payload)?.[1];
  const out: { gfn?: bigint; level?: number; created: boolean; direct: boolean } = {
    created: /(^|\s)new(\s|$)/.test(payload),
    direct: /\bdirect\b/.test(payload),
  };
  if (gfn !== undefined) out.gfn = BigInt(`0x${gfn}`);
  if (level !== undefined) out.level = Number(level);
  return out;
}

/** Decodes one line. `line` is its 1-based number, carried into the event. */
export function parseTraceLine(text: string, line: number): LineResult {
  if (HEADER.test(text)) return { type: "header" };
  const lost = LOST.exec(text);
  if (lost) return { type: "lost", count: Number(lost[1]) };
  let common: Common;
  let payload: string;
  let tsText: string;
  const perf = PERF.exec(text);
  if (perf) {
    const [, comm, pid, tid, cpu, ts, , event, rest] = perf;
    tsText = ts!;
    common = {
      line,
      producer: "perf",
      event: event!,
      comm: comm!.trim(),
      tid: Number(tid ?? pid),
      cpu: Number(cpu),
      ts: Number(ts),
    };
    payload = rest ?? "";
  } else {
    const ftrace = FTRACE.exec(text);
    if (!ftrace) return { type: "garbage", why: "not a trace-cmd, ftrace or perf script event line" };
    const [, comm, tid, cpu, , ts, event, rest] = ftrace;
    tsText = ts!;
    common = {
      line,
      producer: "ftrace",
      event: event!,
      comm: comm!.trim(),
      tid: Number(tid),
      cpu: Number(cpu),
      ts: Number(ts),
    };
    payload = rest ?? "";
  }
  // A counter clock (trace-cmd record -C x86-tsc or counter) prints ticks without a decimal point:
  // durations would be in unknown units, so such lines are refused by name.
  if (!tsText.includes(".")) {
    return {
      type: "garbage",
      why: "integer timestamp (a counter clock such as x86-tsc): record with a clock in seconds, e.g. trace-cmd record -C local",
    };
  }
  const event = common.event;
  if (
    !event.startsWith("kvm") &&
    !["fast_page_fault", "handle_mmio_page_fault", "mark_mmio_spte", "check_mmio_spte"].includes(event)
  ) {
    return { type: "event", event: { ...common, kind: "other" } };
  }
  switch (event) {
    case "kvm_exit":
    case "kvm_nested_vmexit":
    case "kvm_nested_vmexit_inject": {
      const fields = exitFields(payload, event !== "kvm_nested_vmexit_inject");
      if (fields === undefined) return { type: "garbage", why: `${event} without a reason` };
      if (typeof fields === "string") return { type: "garbage", why: `${event}: ${fields}` };
      const kind =
        event === "kvm_exit" ? "exit" : event === "kvm_nested_vmexit" ? "nested-exit" : "nested-inject";
      return { type: "event", event: { ...common, kind, ...fields } };
    }
    case "kvm_entry": {
      const vcpu = /\bvcpu\s+(\d+)/.exec(payload)?.[1];
      const rip = hexValue(/\brip\s+(\S+)/.exec(payload)?.[1]);
      return {
        type: "event",
        event: {
          ...common,
          kind: "entry",
          ...(vcpu === undefined ? {} : { vcpuId: Number(vcpu) }),
          ...(rip === undefined ? {} : { rip }),
        },
      };
    }
    case "kvm_nested_vmenter":
    case "kvm_nested_vmrun": {
      const ept = /nested_(?:ept|npt)=([yn])|npt:\s*(on|off)/.exec(payload);
      const nestedEpt = ept ? ept[1] === "y" || ept[2] === "on" : undefined;
      return {
        type: "event",
        event: { ...common, kind: "nested-enter", ...(nestedEpt === undefined ? {} : { nestedEpt }) },
      };
    }
    case "kvm_mmu_get_page":
      return { type: "event", event: { ...common, kind: "mmu-get-page", ...mmuPage(payload) } };
    default:
      return { type: "event", event: { ...common, kind: "kvm-other" } };
  }
}
