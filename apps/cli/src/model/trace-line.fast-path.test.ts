import { exitReasonName } from "@nestvisor/vmx";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type LineResult, parseTraceLine } from "./trace-line";
import { normaliseReason, type TraceStats, traceStats } from "./trace-stat";

/**
 * The scanning reader (TraceLineReader, behind parseTraceLine and traceStats) against the reader it
 * replaced: regular expressions over the line with its blanks made one space, and BigInt numbers,
 * kept below as the reference. On generated lines of every producer's shape and payload layout, on
 * near misses (a character dropped, added or changed) and on junk, both must give the same answer:
 * the same event (64-bit values compared as their halves), or the same garbage reason.
 */

// ---------------------------------------------------------------------------------------------
// The reference: nestvisor's trace reader before the scanner, unchanged but for names and types.

interface RefCommon {
  readonly line: number;
  readonly producer: "perf" | "ftrace";
  readonly event: string;
  readonly comm: string;
  readonly tid: number;
  readonly cpu: number;
  readonly ts: number;
}
type RefEvent = RefCommon & { readonly kind: string } & { readonly [key: string]: unknown };
type RefResult =
  | { readonly type: "event"; readonly event: RefEvent }
  | { readonly type: "header" }
  | { readonly type: "lost"; readonly count: number }
  | { readonly type: "garbage"; readonly why: string };
interface RefGroup {
  readonly tid: number;
  readonly vcpu: string;
  readonly exitingLevel: "L1" | "L2" | null;
  readonly handledBy: "L0" | "L1";
  readonly reason: string;
  readonly count: number;
  readonly durations: number[];
  readonly qualifications: Map<bigint, number>;
}
interface RefStats {
  readonly lines: number;
  readonly events: number;
  readonly kvmEvents: number;
  readonly headers: number;
  readonly lostEvents: number;
  readonly garbage: number;
  readonly garbageSamples: readonly { line: number; text: string; why: string }[];
  readonly producers: readonly string[];
  readonly nested: boolean;
  readonly exits: number;
  readonly groups: readonly RefGroup[];
  readonly mmuPagesCreated: number;
  readonly nestedEntries: number;
  readonly span: number;
  readonly timeReversals: number;
  readonly firstTimeReversal: number | null;
}

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
const MAX_LINE_LENGTH = 16384;
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

function exitFields(payload: string, hasRip: boolean): Record<string, unknown> | string | undefined {
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
  return out;
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

/** Decodes one line, as nestvisor did before the scanner. */
function referenceParse(text: string, line: number): RefResult {
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
  let common: RefCommon;
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

/** A reason as printed, normalised: numbers (unknown codes) become hex; VMX numbers get their name. */
function referenceNormalise(reason: string): string {
  if (/^(\d+|0x[0-9a-f]+)$/i.test(reason)) {
    // Exactly, however wide: SVM exit codes are 64-bit.
    const n = BigInt(reason);
    return (n <= 0xffffn ? exitReasonName(Number(n)) : undefined) ?? `0x${n.toString(16)}`;
  }
  return reason;
}

/** The lines of `text`: ends are \n, \r\n or a lone \r; the empty piece after a final line end is no line. */
function* linesOf(text: string): Generator<string> {
  const breaks = /\r\n|\r|\n/g;
  let start = 0;
  for (let m = breaks.exec(text); m !== null; m = breaks.exec(text)) {
    yield text.slice(start, m.index);
    start = m.index + m[0].length;
  }
  if (start < text.length) yield text.slice(start);
}

interface Pending {
  readonly tid: number;
  readonly reason: string;
  readonly ts: number;
  nested: boolean;
  reflected: boolean;
  info1: bigint | undefined;
}

/**
 * Reads a whole trace, as text or as UTF-8 bytes. Never throws on content: unknown lines are counted
 * as garbage.
 */
function referenceStats(input: string): RefStats {
  const vcpuOfTid = new Map<number, string>();
  const pending = new Map<number, Pending>();
  const producers = new Set<string>();
  const garbageSamples: { line: number; text: string; why: string }[] = [];
  let lines = 0;
  let events = 0;
  let kvmEvents = 0;
  let headers = 0;
  let lostEvents = 0;
  let garbage = 0;
  let nested = false;
  let exits = 0;
  let mmuPagesCreated = 0;
  let nestedEntries = 0;
  let first = Number.POSITIVE_INFINITY;
  let last = Number.NEGATIVE_INFINITY;
  let timeReversals = 0;
  let firstTimeReversal: number | null = null;
  const lastTsOfTid = new Map<number, number>();

  const commOfTid = new Map<number, string>();
  const rawGroups = new Map<string, RefGroup>();
  const record = (p: Pending, end: number | undefined) => {
    exits++;
    const exitingLevel = p.nested ? "L2" : "L1";
    const handledBy = p.reflected ? "L1" : "L0";
    const id = `${p.tid}\u0000${exitingLevel}\u0000${handledBy}\u0000${p.reason}`;
    let group = rawGroups.get(id);
    if (group === undefined) {
      group = {
        tid: p.tid,
        vcpu: "",
        exitingLevel,
        handledBy,
        reason: p.reason,
        count: 0,
        durations: [],
        qualifications: new Map(),
      };
      rawGroups.set(id, group);
    }
    (group as { count: number }).count++;
    // Trace timestamps have at most nanosecond resolution: rounding drops the doubles' noise.
    if (end !== undefined && end >= p.ts) group.durations.push(Math.round((end - p.ts) * 1e9) / 1e3);
    if (p.info1 !== undefined)
      group.qualifications.set(p.info1, (group.qualifications.get(p.info1) ?? 0) + 1);
  };
  const open = (event: RefEvent, isNested: boolean): Pending => ({
    tid: event.tid,
    reason: referenceNormalise(event.reason as string),
    ts: event.ts,
    nested: isNested,
    reflected: false,
    info1: event.info1 as bigint | undefined,
  });

  for (const raw of linesOf(input)) {
    lines++;
    const result = referenceParse(raw, lines);
    if (result.type === "header") {
      headers++;
      continue;
    }
    if (result.type === "lost") {
      lostEvents += result.count;
      // The lost events may hold any vCPU's entry: an open exit can no longer be paired.
      for (const current of pending.values()) record(current, undefined);
      pending.clear();
      continue;
    }
    if (result.type === "garbage") {
      garbage++;
      if (garbageSamples.length < 5)
        garbageSamples.push({ line: lines, text: raw.slice(0, 120), why: result.why });
      continue;
    }
    const event = result.event;
    events++;
    producers.add(event.producer);
    first = Math.min(first, event.ts);
    last = Math.max(last, event.ts);
    const previousTs = lastTsOfTid.get(event.tid);
    if (previousTs !== undefined && event.ts < previousTs) {
      timeReversals++;
      firstTimeReversal ??= lines;
    }
    lastTsOfTid.set(event.tid, event.ts);
    if (event.kind === "other") continue;
    kvmEvents++;
    if (!commOfTid.has(event.tid)) commOfTid.set(event.tid, event.comm);
    if ("vcpuId" in event && event.vcpuId !== undefined) vcpuOfTid.set(event.tid, String(event.vcpuId));
    switch (event.kind) {
      case "exit": {
        const previous = pending.get(event.tid);
        if (previous !== undefined) record(previous, undefined);
        pending.set(event.tid, open(event, false));
        break;
      }
      case "nested-exit": {
        nested = true;
        const current = pending.get(event.tid);
        if (current !== undefined && !current.nested) current.nested = true;
        else {
          if (current !== undefined) record(current, undefined);
          pending.set(event.tid, open(event, true));
        }
        break;
      }
      case "nested-inject": {
        nested = true;
        const current = pending.get(event.tid);
        // kvm_nested_vmexit_inject is printed by nested_vmx_vmexit for every exit to L1, also the
        // ones KVM makes up (an interrupt for L1, a failed entry): only an injected exit with the
        // open L2 exit's reason reflects that exit; another reason means L0 handled it.
        if (current !== undefined && referenceNormalise(event.reason as string) === current.reason) {
          current.nested = true;
          current.reflected = true;
        }
        break;
      }
      case "entry": {
        const current = pending.get(event.tid);
        if (current !== undefined) {
          record(current, event.ts);
          pending.delete(event.tid);
        }
        break;
      }
      case "nested-enter":
        nested = true;
        nestedEntries++;
        break;
      case "mmu-get-page":
        if (event.created) mmuPagesCreated++;
        break;
      default:
        break;
    }
  }
  for (const current of pending.values()) record(current, undefined);
  // vCPU labels: the id KVM printed for the thread, else QEMU's "CPU n/KVM" thread name, else the
  // thread id; a label two threads share (two VMs) gets the thread id appended.
  const baseLabel = (tid: number): string => {
    const id = vcpuOfTid.get(tid) ?? /CPU\s+(\d+)\/KVM/.exec(commOfTid.get(tid) ?? "")?.[1];
    return id ?? `tid ${tid}`;
  };
  const tidsByLabel = new Map<string, Set<number>>();
  for (const g of rawGroups.values()) {
    const label = baseLabel(g.tid);
    const set = tidsByLabel.get(label) ?? new Set<number>();
    set.add(g.tid);
    tidsByLabel.set(label, set);
  }
  const list: RefGroup[] = [...rawGroups.values()].map((g) => {
    const label = baseLabel(g.tid);
    const vcpu =
      (tidsByLabel.get(label)?.size ?? 1) > 1 && !label.startsWith("tid") ? `${label}/${g.tid}` : label;
    return { ...g, vcpu, exitingLevel: nested ? g.exitingLevel : null };
  });
  return {
    lines,
    events,
    kvmEvents,
    headers,
    lostEvents,
    garbage,
    garbageSamples,
    producers: [...producers],
    nested,
    exits,
    groups: list,
    mmuPagesCreated,
    nestedEntries,
    span: events === 0 ? 0 : last - first,
    timeReversals,
    firstTimeReversal,
  };
}

// ---------------------------------------------------------------------------------------------
// Comparing the two.

const HALVES: Readonly<Record<string, string>> = { rip: "rip", info1: "info1", info2: "info2", gfn: "gfn" };

/** The reference's answer in the reader's representation: 64-bit values as halves, 32-bit ones as numbers. */
function asHalves(result: RefResult): LineResult {
  if (result.type !== "event") return result;
  const event: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(result.event)) {
    if (typeof value !== "bigint") event[key] = value;
    else if (HALVES[key] !== undefined) {
      event[`${key}Lo`] = Number(value & 0xffffffffn);
      event[`${key}Hi`] = Number(value >> 32n);
    } else event[key] = Number(value);
  }
  return { type: "event", event: event as unknown as Extract<LineResult, { type: "event" }>["event"] };
}

function sameAsReference(line: string): void {
  expect(parseTraceLine(line, 7)).toEqual(asHalves(referenceParse(line, 7)));
}

function plainStats(stats: TraceStats) {
  return {
    ...stats,
    groups: stats.groups.map((g) => ({
      ...g,
      qualifications: [g.qualifications.los, g.qualifications.his, g.qualifications.counts],
    })),
  };
}

function plainReferenceStats(stats: RefStats) {
  return {
    ...stats,
    groups: stats.groups.map((g) => {
      const values = [...g.qualifications.keys()];
      return {
        ...g,
        qualifications: [
          values.map((v) => Number(v & 0xffffffffn)),
          values.map((v) => Number(v >> 32n)),
          [...g.qualifications.values()],
        ],
      };
    }),
  };
}

// ---------------------------------------------------------------------------------------------
// Lines: prefixes of every producer, payloads of every layout, with the odd value mixed in.

/** Mostly one space, sometimes what `\s` also matches. */
const blank = fc.oneof(
  { weight: 30, arbitrary: fc.constant(" ") },
  { weight: 1, arbitrary: fc.constantFrom("  ", "\t", "\u00a0", " \u3000", "\u2028", "\ufeff") },
);
const hexDigits = fc.oneof(
  { weight: 6, arbitrary: fc.stringMatching(/^[0-9a-f]{1,16}$/) },
  { weight: 1, arbitrary: fc.stringMatching(/^0{0,6}[0-9a-fA-F]{0,20}$/) },
  {
    weight: 1,
    arbitrary: fc.constantFrom("ffffffffffffffff", "1ffffffffffffffff", "100000000", "ffffffff", "zz", ""),
  },
);
const hexToken = fc.oneof(
  {
    weight: 12,
    arbitrary: fc
      .tuple(fc.constantFrom("", "0x"), fc.stringMatching(/^[0-9a-f]{1,16}$/))
      .map(([p, d]) => p + d),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.constantFrom("", "0x", "0X"), hexDigits, fc.constantFrom("", ",", ";", ":", ",,", "[x]"))
      .map(([p, d, s]) => p + d + s),
  },
);
const decimal = fc.oneof(
  { weight: 30, arbitrary: fc.nat({ max: 4096 }).map(String) },
  {
    weight: 1,
    arbitrary: fc.constantFrom("007", "4294967295", "4294967296", "99999999999999999999", "-1", "abc", "1,"),
  },
);
const reasonValue = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom("EPT_VIOLATION", "HLT", "IO_INSTRUCTION", "npf", "48") },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      "EPT_VIOLATION",
      "HLT",
      "CPUID",
      "npf",
      "EXIT_NPF",
      "48",
      "0x30",
      "0X1F",
      "131072",
      "18446744073709551615",
      "18446744073709551616",
      "000000000000000000000048",
      "0xFFFFFFFFFFFFFFFFFFFF",
      "0xffffffffffffffff",
      "UNKNOWN",
      "EPT_VIOLATION[",
      "EPT_VIOLATION[ ]",
      "[x]",
      "INVALID_STATE",
      "-5",
      "0x",
      "HLT,",
      "HLT:",
      "rip",
      "Reason",
      "_a1",
      "a-b",
      "é",
    ),
  },
);
const reasonExtra = fc.constantFrom(
  "FAILED_VMENTRY",
  "]",
  "(65)",
  "(2147483681)",
  "(x)",
  "A|B",
  "lower",
  "[ ]",
  "rip",
);
const KEY_WORDS = [
  "vcpu",
  "reason",
  "info",
  "isa",
  "rip",
  "info1",
  "info2",
  "intr_info",
  "error_code",
  "int_info",
  "int_info_err",
  "ext_inf1",
  "ext_inf2",
  "ext_int",
  "ext_int_err",
];
const key = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...KEY_WORDS) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.constantFrom(...KEY_WORDS), fc.constantFrom(":", ",", "::", ":,"))
      .map(([k, s]) => k + s),
  },
  { weight: 1, arbitrary: fc.constantFrom(...KEY_WORDS).map((k) => k.toUpperCase()) },
  {
    weight: 1,
    arbitrary: fc.constantFrom("info3", "vcp", "ext_inf", "intr_inf0", "REASON:", "Rip", "requests"),
  },
);
type Field = readonly [string, readonly string[]];
const field = (name: string, ...values: fc.Arbitrary<string>[]): fc.Arbitrary<Field> =>
  fc.tuple(...values).map((v) => [name, v] as const);

/** The layouts of kvm_exit, kvm_nested_vmexit(_inject) (kvm-trace-formats.md §2, §4), and key soup. */
const exitLayouts: fc.Arbitrary<readonly Field[]> = fc.oneof(
  fc.tuple(
    field("vcpu", decimal),
    fc
      .tuple(
        reasonValue,
        fc.oneof({ weight: 4, arbitrary: fc.constant([]) }, fc.array(reasonExtra, { maxLength: 2 })),
      )
      .map(([r, x]) => ["reason", [r, ...x]] as Field),
    field("rip", hexToken),
    field("info1", hexToken),
    field("info2", hexToken),
    field("intr_info", hexToken),
    field("error_code", hexToken),
  ),
  fc.tuple(field("reason", reasonValue), field("rip", hexToken), field("info", hexToken, hexToken)),
  fc.tuple(
    field("rip", hexToken),
    field("reason", reasonValue),
    field("info1", hexToken),
    field("info2", hexToken),
    field("int_info", hexToken),
    field("int_info_err", hexToken),
  ),
  fc.tuple(
    field("rip:", hexToken),
    field("reason:", reasonValue),
    field("ext_inf1:", hexToken),
    field("ext_inf2:", hexToken),
    field("ext_int:", hexToken),
    field("ext_int_err:", hexToken),
  ),
  fc.tuple(
    field("reason:", reasonValue),
    field("ext_inf1:", hexToken),
    field("ext_inf2:", hexToken),
    field("ext_int:", hexToken),
    field("ext_int_err:", hexToken),
  ),
  fc.array(fc.tuple(key, fc.array(fc.oneof(hexToken, decimal, reasonValue, key), { maxLength: 3 })), {
    maxLength: 8,
  }),
);

/** A layout with a field dropped, repeated or moved, or not. */
const exitPayload = fc
  .tuple(
    exitLayouts,
    fc.nat(),
    fc.nat(),
    fc.constantFrom("keep", "keep", "keep", "keep", "drop", "repeat", "move"),
  )
  .chain(([fields, a, b, how]) => {
    const list = [...fields];
    if (list.length > 0) {
      const i = a % list.length;
      const j = b % list.length;
      if (how === "drop") list.splice(i, 1);
      if (how === "repeat") list.splice(j, 0, list[i]!);
      if (how === "move") list.splice(j, 0, ...list.splice(i, 1));
    }
    const words = list.flatMap(([k, values]) => [k, ...values]);
    const noise = fc.oneof({ weight: 6, arbitrary: fc.constant(false) }, fc.constant(true));
    return fc
      .tuple(fc.array(blank, { minLength: words.length, maxLength: words.length }), noise)
      .map(
        ([blanks, noise]) =>
          (noise ? `CAN'T FIND FIELD "rip"<CANT FIND FIELD exit_code>` : "") +
          words.map((w, i) => (i === 0 ? w : blanks[i]! + w)).join(""),
      );
  });

const words = (list: readonly string[]) =>
  fc
    .array(fc.constantFrom(...list), { maxLength: 8 })
    .chain((ws) =>
      fc
        .array(blank, { minLength: ws.length, maxLength: ws.length })
        .map((bs) => ws.map((w, i) => (i === 0 ? w : bs[i]! + w)).join("")),
    );

const entryPayload = fc.oneof(
  fc.tuple(decimal, hexToken).map(([v, r]) => `vcpu ${v}, rip ${r}`),
  decimal.map((v) => `vcpu ${v}`),
  fc.tuple(decimal, hexToken).map(([v, r]) => `vcpu ${v}, rip ${r}[immediate exit]`),
  decimal.map((v) => `vcpu ${v}, rip 0x401000 inj 0x00000000 inj_error_code 0x00000000[guest]`),
  words([
    "vcpu",
    "vcpu,",
    "vcpus",
    "xvcpu",
    "rip",
    "rip,0x1",
    "rip:",
    "0x1",
    "1",
    "1,2",
    ",",
    "[x]",
    "vcpu_",
    "rip0x1",
  ]),
);

const nestedEnterPayload = fc.oneof(
  fc
    .tuple(
      fc.constantFrom("nested_ept=y", "nested_ept=n", "nested_npt=y"),
      fc.constantFrom("nested_eptp: 0x5e", "guest cr3: 0x1"),
    )
    .map(
      ([ept, tail]) =>
        `rip: 0xffffffff81000010 vmcs: 0xffffffffffffffff nested_rip: 0x00007fa9ee5224e6 int_ctl: 0x00000000 event_inj: 0x00000000 ${ept} ${tail}`,
    ),
  fc.constant(
    "rip: 0x0000000000001000 vmcb: 0x0000000000002000 nrip: 0x0000000000003000 int_ctl: 0x00000000 event_inj: 0x00000000 npt: off",
  ),
  words([
    "nested_ept=y",
    "nested_ept=n",
    "nested_npt=n",
    "nested_ept=x",
    "nested_ept=",
    "npt:",
    "on",
    "off",
    "only",
    "npt:on",
    "npt:off",
    "xnested_ept=y",
    "nested_",
    "npt",
    "rip:",
  ]),
);

const mmuPayload = fc.oneof(
  fc
    .tuple(
      hexDigits,
      fc.constantFrom("1", "4", "5", "6", "12", "0007"),
      fc.constantFrom("8", "4", "12"),
      fc.constantFrom("new", "existing"),
    )
    .map(
      ([gfn, level, bytes, how]) =>
        `sp gen 0 gfn ${gfn} l${level} ${bytes}-byte q0 direct wux nxe ad root 0 sync ${how}`,
    ),
  fc.constant("existing sp gfn 3a22e 1/4 q3 direct --x !pge !nxe root 6 sync"),
  fc.constant("new sp gfn 0 4 q0 direct wux pae !nxe !wp root 0 sync"),
  words([
    "gfn",
    "GFN",
    "gfn:",
    "l1",
    "l12",
    "8-byte",
    "4-byte",
    "12-byte",
    "8-bytes",
    "q0",
    "Q3",
    "q",
    "new",
    "new,",
    "direct",
    "indirect",
    "directx",
    "1/4",
    "1/",
    "/4",
    "xl1",
    "1ffffffffffffffffff",
    "0",
    "9",
    "zz",
    "sp",
  ]),
);

const EVENTS = [
  "kvm_exit",
  "kvm_nested_vmexit",
  "kvm_nested_vmexit_inject",
  "kvm_entry",
  "kvm_nested_vmenter",
  "kvm_nested_vmrun",
  "kvm_mmu_get_page",
];
const event = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...EVENTS) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      "kvm_inj_virq",
      "kvm",
      "kv",
      "kvm_exits",
      "KVM_EXIT",
      "sched_switch",
      "fast_page_fault",
      "check_mmio_spte",
      "_x",
      "kvm_nested_vmru",
    ),
  },
);
const payloadOf = (name: string): fc.Arbitrary<string> => {
  if (name.includes("exit")) return exitPayload;
  if (name === "kvm_entry") return entryPayload;
  if (name === "kvm_nested_vmenter" || name === "kvm_nested_vmrun") return nestedEnterPayload;
  if (name === "kvm_mmu_get_page") return mmuPayload;
  return fc.oneof(exitPayload, fc.constant("irq 236"), fc.constant(""));
};

const comm = fc.oneof(
  {
    weight: 16,
    arbitrary: fc.constantFrom("qemu-system-x86", "CPU 0/KVM", "CPU 12/KVM", "<idle>", "kworker/3:1"),
  },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      "trace-cmd",
      "a-1",
      "x [1]",
      "",
      "tracing",
      "CPU 3 is empty",
      "#x",
      "cpus=4",
      "version",
      "a(1)",
      "x 12",
      "[",
      "-",
      "9",
      "CPU  0/KVM",
      "tab\there",
      "x [a]",
      "a:b: c",
    ),
  },
);
const tid = fc.oneof(
  { weight: 20, arbitrary: fc.constantFrom("5046", "7", "8") },
  {
    weight: 1,
    arbitrary: fc.constantFrom("0", "007", "4294967295", "4294967296", "99999999999999999999", "1-2", ""),
  },
);
const cpu = fc.oneof(
  { weight: 20, arbitrary: fc.constantFrom("000", "7", "012") },
  { weight: 1, arbitrary: fc.constantFrom("4294967296", "99999999999", "1a", "") },
);
const seconds = fc.oneof(
  {
    weight: 10,
    arbitrary: fc
      .tuple(fc.stringMatching(/^[0-9]{1,10}$/), fc.stringMatching(/^[0-9]{1,9}$/))
      .map(([whole, fraction]) => `${whole}.${fraction}`),
  },
  {
    weight: 20,
    arbitrary: fc.constantFrom("398.691476", "1.000001", "1.000002", "1.000005", "1.5", "722267.552895123"),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      "1.0",
      "12345",
      "99999999999999999999.5",
      "0.000000001",
      "9007199254.740993",
      "1.",
      ".5",
      "1.2.3",
      "123456789012345678.25",
    ),
  },
);
const flags = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom("d....", "...1.", "d..2.", "dN.h", "d...") },
  { weight: 1, arbitrary: fc.constantFrom("ab", "abcdefgh", "1.0:", "2.5:", "12345:") },
);
const lead = fc.constantFrom("", " ", "          ", "\t");

/** A line as a producer prints it (or nearly: odd values come up). */
const eventLine: fc.Arbitrary<string> = fc
  .record({
    shape: fc.constantFrom("trace-cmd", "ftrace", "ftrace-tgid", "perf", "perf-pid-tid", "perf-period"),
    lead,
    comm,
    tid,
    cpu,
    seconds,
    flags,
    event,
    system: fc.constantFrom("kvm", "kvm", "kvmmmu", "sched", "_1"),
    b: fc.array(blank, { minLength: 6, maxLength: 6 }),
  })
  .chain((p) =>
    payloadOf(p.event).map((payload) => {
      const [b0, b1, b2, b3, b4, b5] = p.b as [string, string, string, string, string, string];
      switch (p.shape) {
        case "trace-cmd":
          return `${p.lead}${p.comm}-${p.tid}${b0}[${p.cpu}]${b1}${p.seconds}:${b2}${`${p.event}:`.padEnd(22)}${b3}${payload}`;
        case "ftrace":
          return `${p.lead}${p.comm}-${p.tid}${b0}[${p.cpu}]${b1}${p.flags}${b2}${p.seconds}:${b3}${p.event}:${b4}${payload}`;
        case "ftrace-tgid":
          return `${p.lead}${p.comm}-${p.tid}${b0}(${b5}-${p.tid})${b1}[${p.cpu}]${b2}${p.flags}${b3}${p.seconds}:${b4}${p.event}: ${payload}`;
        case "perf":
          return `${p.lead}${p.comm}${b0}${p.tid}${b1}[${p.cpu}]${b2}${p.seconds}:${b3}${p.system}:${p.event}:${b4}${payload}`;
        case "perf-pid-tid":
          return `${p.lead}${p.comm}${b0}1234/${p.tid}${b1}[${p.cpu}]${b2}${p.seconds}:${b3}${p.system}:${p.event}:${b4}${payload}`;
        default:
          return `${p.lead}${p.comm}${b0}${p.tid}${b1}[${p.cpu}]${b2}${p.seconds}:${b3}250000${b5}${p.system}:${p.event}:${b4}${payload}`;
      }
    }),
  );

/** trace-cmd's header lines and lost-event markers, and lines that nearly are. */
const otherLine = fc.constantFrom(
  "# tracer: nop",
  "",
  "   ",
  "\t#",
  "cpus=8",
  "cpus=8 x",
  "CPU 3 is empty",
  " cpu3   is   empty ",
  "CPU 3 is emptyish",
  "CPU3is empty",
  "version = 6",
  "VERSION=6",
  "versions = 6",
  "trace-cmd: No such file",
  "trace-cmd-12 [000] 1.000000: sched_switch: x",
  "trace-cmdx",
  "[tracing] on",
  "[ tracing",
  "tracing-1 [000] 1.000000: kvm_exit: reason HLT rip 0x1 info 0 0",
  "tracing_on",
  "CPU:2 [LOST 17 EVENTS]",
  "LOST 99999999999999999999 EVENTS",
  "lost 5 events",
  " qemu-1 [000] 1.0: bputs: LOST 5 EVENTS",
);

const ALPHABET = [
  " ",
  "\t",
  "\u00a0",
  "[",
  "]",
  "(",
  ")",
  ":",
  ",",
  ";",
  "-",
  "/",
  ".",
  "0",
  "1",
  "9",
  "a",
  "f",
  "x",
  "X",
  "k",
  "v",
  "m",
  "_",
  "#",
  '"',
  "'",
  "C",
  "N",
  "=",
  "y",
  "n",
  "é",
  "\u2028",
  "\ud800",
];

/** A line with up to three characters dropped, added or changed. */
const nearMiss = fc
  .tuple(
    fc.oneof(eventLine, otherLine),
    fc.array(fc.tuple(fc.constantFrom("drop", "add", "change"), fc.nat(), fc.constantFrom(...ALPHABET)), {
      minLength: 1,
      maxLength: 3,
    }),
  )
  .map(([line, edits]) => {
    let out = line;
    for (const [op, at, ch] of edits) {
      const i = out.length === 0 ? 0 : at % (out.length + (op === "add" ? 1 : 0));
      if (op === "drop") out = out.slice(0, i) + out.slice(i + 1);
      else if (op === "add") out = out.slice(0, i) + ch + out.slice(i);
      else out = out.slice(0, i) + ch + out.slice(i + 1);
    }
    return out;
  });

const junk = fc.oneof(
  fc.string({ unit: fc.constantFrom(...ALPHABET), maxLength: 80 }),
  fc.string({ maxLength: 80 }),
  fc.string({ unit: "binary", maxLength: 80 }),
);

describe("the scanning reader reads every line as the regular expressions did", () => {
  it("lines of every producer's shape and payload layout", () => {
    fc.assert(
      fc.property(eventLine, (line) => {
        sameAsReference(line);
      }),
      { numRuns: 4000 },
    );
  });

  it("near misses: a character dropped, added or changed", () => {
    fc.assert(
      fc.property(nearMiss, (line) => {
        sameAsReference(line);
      }),
      { numRuns: 4000 },
    );
  });

  it("headers, lost-event markers and junk", () => {
    fc.assert(
      fc.property(fc.oneof(otherLine, junk), (line) => {
        sameAsReference(line);
      }),
      { numRuns: 1500 },
    );
  });

  it("lines too long, or long runs of blanks", () => {
    for (const line of [
      "x".repeat(16384),
      "x".repeat(16385),
      `${" ".repeat(16300)}-1 [000] 1.000000: kvm_exit: reason HLT rip 0x1 info 0 0`,
      ` qemu-1 [000] 1.000000: kvm_exit:${" ".repeat(16000)}reason HLT rip 0x1 info 0 0`,
      ` qemu-1 [000] 1.000000: kvm_exit: reason HLT rip 0x${"f".repeat(4000)} info 0 0`,
    ]) {
      sameAsReference(line);
    }
  });

  it("names numeric reasons as BigInt did", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.bigInt({ min: 0n, max: (1n << 80n) - 1n }).map(String),
          fc.bigInt({ min: 0n, max: (1n << 80n) - 1n }).map((n) => `0x${n.toString(16)}`),
          fc
            .bigInt({ min: 0n, max: 0xffffn })
            .map((n) => `0X${n.toString(16).toUpperCase().padStart(6, "0")}`),
          fc.stringMatching(/^0{0,30}[0-9]{0,30}$/),
          fc.constantFrom("npf", "0x", "EPT_VIOLATION"),
        ),
        (reason) => {
          expect(normaliseReason(reason)).toBe(referenceNormalise(reason));
        },
      ),
      { numRuns: 1500 },
    );
  });
});

describe("traceStats gives what the reference aggregation gave", () => {
  const line = fc.oneof(
    { weight: 12, arbitrary: eventLine },
    { weight: 1, arbitrary: nearMiss },
    { weight: 1, arbitrary: otherLine },
  );

  it("on traces of mixed lines, any line ends", () => {
    fc.assert(
      fc.property(fc.array(line, { maxLength: 40 }), fc.constantFrom("\n", "\r\n", "\r"), (lines, end) => {
        const text = lines.map((l) => l.replace(/[\r\n]/g, " ")).join(end);
        expect(plainStats(traceStats(text))).toEqual(plainReferenceStats(referenceStats(text)));
      }),
      { numRuns: 400 },
    );
  });

  it("reads pieces that hold the same text as fast as others (their strings were compared whole)", () => {
    const block = Array.from(
      { length: 40_000 },
      (_, i) => ` qemu-1 [000] ${(1 + i / 1e6).toFixed(6)}: kvm_exit: reason HLT rip 0x1 info 0 0`,
    ).join("\n");
    const bytes = new TextEncoder().encode(`${block}\n${block}\n`);
    const start = performance.now();
    // Two pieces of equal text: a search remembered from the first must not compare the strings.
    const stats = traceStats(bytes, block.length + 1);
    expect(performance.now() - start).toBeLessThan(2000);
    expect(stats).toMatchObject({ lines: 80_000, events: 80_000, exits: 80_000, garbage: 0 });
  });

  it("reads bytes a chunk at a time as it reads the text", () => {
    const piece = fc.oneof(
      { weight: 4, arbitrary: line },
      { weight: 2, arbitrary: fc.constantFrom("\n", "\r", "\r\n") },
      { weight: 1, arbitrary: fc.constantFrom("é", "😀", "\u0000", "\uFEFF", "\u2028") },
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 30 }), fc.integer({ min: 1, max: 64 }), (pieces, chunk) => {
        const bytes = new TextEncoder().encode(pieces.join(""));
        const text = new TextDecoder().decode(bytes);
        expect(plainStats(traceStats(bytes, chunk))).toEqual(plainStats(traceStats(text)));
        expect(plainStats(traceStats(text, chunk))).toEqual(plainStats(traceStats(text)));
        expect(plainStats(traceStats(text))).toEqual(plainReferenceStats(referenceStats(text)));
      }),
      { numRuns: 300 },
    );
  });
});
