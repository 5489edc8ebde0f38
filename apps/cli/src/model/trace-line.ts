/**
 * One line of a KVM trace as `trace-cmd report`, ftrace's `trace`/`trace_pipe` or `perf script`
 * print it (kvm-trace-formats.md §1), decoded into an event. Payloads are read by key, not by
 * position, so the kernel's old and new layouts of `kvm_exit`, `kvm_entry`, `kvm_nested_vmexit`,
 * `kvm_nested_vmexit_inject` and `kvm_nested_vmenter` (≤ v5.10, v5.4–v5.12, ≥ v5.13: §2) and the
 * libtraceevent plugin's layouts (§4) all parse, including the plugin's `CAN'T FIND FIELD` noise.
 * Nothing here throws: a line that cannot be read is returned as garbage with a reason — also a
 * line whose numbers do not fit the width KVM prints them with, a field given twice (two lines run
 * together), or a line too long to be one event.
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
// trace-cmd's own header lines, not the events of its threads ("trace-cmd-5812 [002] ...").
const HEADER =
  /^\s*(#|$)|^\s*cpus=\d+\s*$|^\s*version\s*=|^\s*CPU\s*\d+ is empty\s*$|^\s*trace-cmd\b(?!-\d)|^\s*\[?\s*tracing\b(?!-\d)/i;
// Only tried on lines that are not events: an event's payload may say anything.
const LOST = /LOST\s+(\d+)\s+EVENTS/i;

/**
 * The kernel formats one event into a page-sized buffer, so a longer line is not an event (a file
 * whose line breaks were lost, or a binary file that got through).
 */
export const MAX_LINE_LENGTH = 16384;
const U32_MAX = 0xffffffff;
/** Beyond this many seconds a double no longer holds a timestamp to the microsecond. */
const MAX_SECONDS = 2 ** 53 / 1e6;

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
/** The fields whose values are numbers (RIP and every field of the runs), with the width KVM prints. */
const NUMERIC_BITS: Readonly<Record<string, 32 | 64>> = {
  rip: 64,
  info1: 64,
  info2: 64,
  intr_info: 32,
  error_code: 32,
  int_info: 32,
  int_info_err: 32,
  ext_inf1: 64,
  ext_inf2: 64,
  ext_int: 32,
  ext_int_err: 32,
};
const NUMERIC_KEYS: readonly string[] = Object.keys(NUMERIC_BITS);

const KEYS = new Set(["vcpu", "reason", "info", "isa", ...NUMERIC_KEYS]);

/** The libtraceevent kvm plugin's complaint on new kernels, followed by the kernel's own format. */
const PLUGIN_NOISE = /CAN'T FIND FIELD "[^"]*"(?:<CANT FIND FIELD [^>]*>)?/g;

function hexValue(text: string | undefined): bigint | undefined {
  if (text === undefined) return undefined;
  const clean = text.replace(/[,;]$/, "").replace(/^0x/i, "");
  return /^[0-9a-f]+$/i.test(clean) ? BigInt(`0x${clean}`) : undefined;
}

/** Why a number token is unusable (missing, not hex, wider than `bits`), or undefined. */
function numberProblem(key: string, token: string | undefined, bits: 32 | 64): string | undefined {
  if (token === undefined) return `${key} has no value (a truncated line?)`;
  const value = hexValue(token);
  if (value === undefined) return `${key} ${JSON.stringify(token)} is not a hex number`;
  if (value >> BigInt(bits) !== 0n) return `${key} ${token} does not fit in ${bits} bits`;
  return undefined;
}

/** Why a vCPU id (`vcpu %u`) is unusable, or undefined. */
function vcpuProblem(token: string | undefined): string | undefined {
  if (token === undefined) return "vcpu has no value (a truncated line?)";
  if (!/^\d+$/.test(token)) return `vcpu ${JSON.stringify(token)} is not a vCPU number`;
  if (Number(token) > U32_MAX) return `vcpu ${token} does not fit in 32 bits`;
  return undefined;
}

interface Fields {
  readonly values: Map<string, string[]>;
  /** A key the payload holds twice: KVM prints each once, so two lines ran together. */
  readonly repeated: string | undefined;
}

/** Reads `key value` pairs (keys may carry a trailing ':'); `info` takes two values. */
function readFields(payload: string): Fields {
  const tokens = payload
    .replace(PLUGIN_NOISE, " ")
    .trim()
    .split(/\s+/)
    .filter((t) => t !== "");
  const fields = new Map<string, string[]>();
  let key: string | undefined;
  let repeated: string | undefined;
  for (const raw of tokens) {
    const bare = raw.replace(/[:,]$/, "").toLowerCase();
    if (KEYS.has(bare) && fields.has(bare)) repeated ??= bare;
    if (KEYS.has(bare) && (raw.endsWith(":") || !fields.has(bare) || key === undefined)) {
      key = bare;
      fields.set(key, []);
      continue;
    }
    if (key !== undefined) fields.get(key)!.push(raw.replace(/,$/, ""));
  }
  return { values: fields, repeated };
}

/**
 * Why an exit line cannot be trusted, or undefined: a number that does not parse or is wider than
 * KVM prints it, a field given twice, or a line cut short (no RIP, no qualification, or a field
 * without the ones KVM always prints with it; trace.h kvm_exit).
 */
function exitLineProblem({ values: f, repeated }: Fields, hasRip: boolean): string | undefined {
  if (repeated !== undefined) return `${repeated} appears twice (two lines run together?)`;
  // Every kvm_exit / kvm_nested_vmexit layout, old and new, prints the RIP after the reason.
  if (hasRip && !f.has("rip")) return "no rip (a truncated line?)";
  for (const key of NUMERIC_KEYS) {
    const tokens = f.get(key);
    if (tokens === undefined) continue;
    const problem = numberProblem(key, tokens[0], NUMERIC_BITS[key]!);
    if (problem !== undefined) return problem;
  }
  const info = f.get("info");
  if (info !== undefined) {
    if (info.length === 1) return "info has one value, not two (a truncated line?)";
    for (const token of [info[0], info[1]]) {
      const problem = numberProblem("info", token, 64);
      if (problem !== undefined) return problem;
    }
  }
  for (const run of FIELD_RUNS) {
    if (!f.has(run[0]!)) continue;
    const missing = run.find((key) => !f.has(key));
    if (missing !== undefined) return `no ${missing} after ${run[0]} (a truncated line?)`;
  }
  // Every layout prints the qualification: `info`, `info1` or `ext_inf1`.
  if (!f.has("info") && !f.has("info1") && !f.has("ext_inf1")) return "no info1 (a truncated line?)";
  if (f.has("vcpu")) return vcpuProblem(f.get("vcpu")![0]);
  return undefined;
}

function exitFields(payload: string, hasRip: boolean): ExitFields | string | undefined {
  const fields = readFields(payload);
  const f = fields.values;
  const reasonTokens = f.get("reason");
  if (reasonTokens === undefined || reasonTokens.length === 0) return undefined;
  const problem = exitLineProblem(fields, hasRip);
  if (problem !== undefined) return problem;
  // "EPT_VIOLATION", "EPT_VIOLATION[ ]" (v5.4 nested layout), "INVALID_STATE FAILED_VMENTRY".
  const [first, ...rest] = reasonTokens;
  // The kvm plugin prints a reason it cannot name as "UNKNOWN (<decimal value>)": keep the value.
  const unknown = first === "UNKNOWN" ? /^\((\d+)\)$/.exec(rest[0] ?? "") : null;
  if (unknown) rest.shift();
  const reason = unknown ? unknown[1]! : first!.replace(/\[.*$/, "");
  if (reason === "") return undefined;
  // A name (EPT_VIOLATION, npf, EXIT_NPF) or the code itself; SVM exit codes are 64 bits wide.
  if (/^(\d+|0x[0-9a-f]+)$/i.test(reason)) {
    if (BigInt(reason) >> 64n !== 0n) return `reason ${reason} does not fit in 64 bits`;
  } else if (!/^[A-Za-z_]\w*$/.test(reason))
    return `reason ${JSON.stringify(reason)} is not an exit-reason name or number`;
  const info = f.get("info");
  const vcpuText = f.get("vcpu")?.[0];
  const vcpuId = vcpuText === undefined ? undefined : Number(vcpuText);
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

function mmuPage(
  payload: string,
): { gfn?: bigint; level?: number; created: boolean; direct: boolean } | string {
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
  if (out.gfn !== undefined && out.gfn >> 64n !== 0n) return `gfn ${gfn} does not fit in 64 bits`;
  // role.level: 1 (4 KiB) to 5 (the root of 5-level paging).
  if (out.level !== undefined && out.level > 5) return `level ${level} is not a paging level (1-5)`;
  return out;
}

/** Why the numbers of a line's prefix are unusable, or undefined. */
function prefixProblem(tids: readonly (string | undefined)[], cpu: string, ts: string): string | undefined {
  for (const tid of tids)
    if (tid !== undefined && Number(tid) > U32_MAX) return `thread id ${tid} does not fit in 32 bits`;
  if (Number(cpu) > U32_MAX) return `CPU number ${cpu} does not fit in 32 bits`;
  if (Number(ts) > MAX_SECONDS) return `timestamp ${ts} is too large to time exits to the microsecond`;
  return undefined;
}

/** Decodes one line. `line` is its 1-based number, carried into the event. */
export function parseTraceLine(text: string, line: number): LineResult {
  if (text.length > MAX_LINE_LENGTH) {
    return {
      type: "garbage",
      why: `longer than ${MAX_LINE_LENGTH} characters: not a trace event line (lost line breaks?)`,
    };
  }
  // One space for each run of blanks: the patterns below then match in linear time (on a long run
  // of blanks their leading \s* made them quadratic).
  const flat = text.replace(/\s+/g, " ");
  if (HEADER.test(flat)) return { type: "header" };
  let common: Common;
  let payload: string;
  let tsText: string;
  let problem: string | undefined;
  const perf = PERF.exec(flat);
  if (perf) {
    const [, comm, pid, tid, cpu, ts, , event, rest] = perf;
    tsText = ts!;
    problem = prefixProblem([pid, tid], cpu!, ts!);
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
    const ftrace = FTRACE.exec(flat);
    if (!ftrace) {
      const lost = LOST.exec(flat);
      if (lost && !Number.isSafeInteger(Number(lost[1])))
        return { type: "garbage", why: `lost-event count ${lost[1]} is too large` };
      if (lost) return { type: "lost", count: Number(lost[1]) };
      return { type: "garbage", why: "not a trace-cmd, ftrace or perf script event line" };
    }
    const [, comm, tid, cpu, , ts, event, rest] = ftrace;
    tsText = ts!;
    problem = prefixProblem([tid], cpu!, ts!);
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
  if (problem !== undefined) return { type: "garbage", why: problem };
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
      // "vcpu %u" in every layout, then ", rip 0x%lx" since 5.11, with "[immediate exit]" right
      // after the RIP since 6.9.
      if (!/\bvcpu\b/.test(payload))
        return { type: "garbage", why: "kvm_entry: no vcpu (a truncated line?)" };
      const vcpu = /\bvcpu\s+([^\s,]+)/.exec(payload)?.[1];
      const ripText = /\brip\b\s*(\S+)?/.exec(payload)?.[1]?.replace(/\[.*$/, "");
      const why =
        vcpuProblem(vcpu) ?? (/\brip\b/.test(payload) ? numberProblem("rip", ripText, 64) : undefined);
      if (why !== undefined) return { type: "garbage", why: `kvm_entry: ${why}` };
      const rip = hexValue(ripText);
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
    case "kvm_mmu_get_page": {
      const page = mmuPage(payload);
      if (typeof page === "string") return { type: "garbage", why: `${event}: ${page}` };
      return { type: "event", event: { ...common, kind: "mmu-get-page", ...page } };
    }
    default:
      return { type: "event", event: { ...common, kind: "kvm-other" } };
  }
}
