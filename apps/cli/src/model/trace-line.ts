/**
 * One line of a KVM trace as `trace-cmd report`, ftrace's `trace`/`trace_pipe` or `perf script`
 * print it (kvm-trace-formats.md §1), decoded into an event. Payloads are read by key, not by
 * position, so the kernel's old and new layouts of `kvm_exit`, `kvm_entry`, `kvm_nested_vmexit`,
 * `kvm_nested_vmexit_inject` and `kvm_nested_vmenter` (≤ v5.10, v5.4–v5.12, ≥ v5.13: §2) and the
 * libtraceevent plugin's layouts (§4) all parse, including the plugin's `CAN'T FIND FIELD` noise.
 * Nothing here throws: a line that cannot be read is returned as garbage with a reason — also a
 * line whose numbers do not fit the width KVM prints them with, a field given twice (two lines run
 * together), or a line too long to be one event.
 *
 * Traces run to millions of lines, so the reading is done by `TraceLineReader`, which scans the
 * code units of a line in place (a line may be a piece of a larger text) into its own fields: no
 * regular expression, no substring and no object per line on the common shapes, and 64-bit values
 * as two unsigned 32-bit halves (no BigInt). Blanks are runs of anything `\s` matches, as the
 * regular expressions saw them. A line whose prefix has an unusual shape (two `[<digit>` in it, a
 * lost-events marker, junk) is matched by the regular expressions the scan mirrors; an exit payload
 * that follows one of KVM's layouts exactly is read in one pass, any other key by key.
 * `parseTraceLine` builds a plain event object from the reader, for callers that want one.
 * trace-line.fast-path.test.ts checks all of it against the regular-expression reader it replaced.
 */

import {
  type Codes,
  codesOf,
  decimalFits64,
  decimalValue,
  HEX,
  HEX_NOT_HEX,
  HEX_OK,
  HEX_TOO_WIDE,
  hexDigit,
  indexIn,
  isBlank,
  isDigit,
  isIdentStart,
  isWord,
  matchesAt,
  matchesCi,
  parseHexDigits,
  parseHexNumber,
  sameAt,
  skipBlanks,
  skipDigits,
  textOf,
  toCodes,
  wordEndsAt,
  wordStartsAt,
} from "./trace-code-units";

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

/**
 * Numbers from a payload: hex (with or without 0x) except `vcpu`, which KVM prints in decimal.
 * A 64-bit value is given as two unsigned 32-bit halves, `xHi * 2 ** 32 + xLo` (both present or
 * both absent).
 */
export interface ExitFields {
  /** The exit reason as printed: a KVM name (EPT_VIOLATION, npf, EXIT_NPF) or a number. */
  readonly reason: string;
  /** Flag names printed after the reason (FAILED_VMENTRY, …). */
  readonly reasonFlags: readonly string[];
  readonly vcpuId?: number;
  readonly ripLo?: number;
  readonly ripHi?: number;
  /** Exit qualification (VMX) / exit_info_1 (SVM). */
  readonly info1Lo?: number;
  readonly info1Hi?: number;
  readonly info2Lo?: number;
  readonly info2Hi?: number;
  /** 32 bits in every layout. */
  readonly intrInfo?: number;
  /** 32 bits in every layout. */
  readonly errorCode?: number;
}

export type TraceEvent =
  | (Common & { readonly kind: "exit" } & ExitFields)
  | (Common & { readonly kind: "nested-exit" } & ExitFields)
  | (Common & { readonly kind: "nested-inject" } & ExitFields)
  | (Common & {
      readonly kind: "entry";
      readonly vcpuId?: number;
      readonly ripLo?: number;
      readonly ripHi?: number;
    })
  | (Common & { readonly kind: "nested-enter"; readonly nestedEpt?: boolean })
  | (Common & {
      readonly kind: "mmu-get-page";
      readonly gfnLo?: number;
      readonly gfnHi?: number;
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

/** What `TraceLineReader.read` found on a line. */
export const LINE = { EVENT: 0, HEADER: 1, LOST: 2, GARBAGE: 3 } as const;
/** The kind of an event line (`TraceLineReader.kind`), as numbers: `TraceEvent["kind"]` by index. */
export const KIND = {
  OTHER: 0,
  KVM_OTHER: 1,
  EXIT: 2,
  NESTED_EXIT: 3,
  NESTED_INJECT: 4,
  ENTRY: 5,
  NESTED_ENTER: 6,
  MMU_GET_PAGE: 7,
} as const;
const KIND_NAMES = [
  "other",
  "kvm-other",
  "exit",
  "nested-exit",
  "nested-inject",
  "entry",
  "nested-enter",
  "mmu-get-page",
] as const;

// The shapes the scan reads, as regular expressions: they read the lines the scan leaves to them.
// comm tid[/tid] [cpu] seconds: [period] system:event: payload   (perf script)
const PERF =
  /^\s*(.+?)\s+(\d+)(?:\/(\d+))?\s+\[(\d+)\]\s+(\d+(?:\.\d+)?):\s+(?:\d+\s+)?([A-Za-z_][\w]*):([A-Za-z_][\w]*):\s?(.*)$/d;
// comm-tid [(tgid)] [cpu] [flags] seconds: event: payload   (ftrace, trace-cmd report)
const FTRACE =
  /^\s*(.*?)-(\d+)\s+(?:\(\s*[-\d]+\)\s+)?\[(\d+)\]\s+(?:(\S{3,7})\s+)?(\d+(?:\.\d+)?):\s+([A-Za-z_][\w]*):\s*(.*)$/d;
// Only tried on lines that are not events: an event's payload may say anything.
const LOST = /LOST\s+(\d+)\s+EVENTS/i;
const BLANKS = /\s+/g;

/**
 * The kernel formats one event into a page-sized buffer, so a longer line is not an event (a file
 * whose line breaks were lost, or a binary file that got through).
 */
export const MAX_LINE_LENGTH = 16384;
/** A capture group that did not take part in the match: no range. */
const NO_RANGE: readonly [number, number] = [-1, -1];
const U32_MAX = 0xffffffff;
/** Beyond this many seconds a double no longer holds a timestamp to the microsecond. */
const MAX_SECONDS = 2 ** 53 / 1e6;
const TOO_LONG = `longer than ${MAX_LINE_LENGTH} characters: not a trace event line (lost line breaks?)`;
const INTEGER_TIMESTAMP =
  "integer timestamp (a counter clock such as x86-tsc): record with a clock in seconds, e.g. trace-cmd record -C local";
const NOT_AN_EVENT = "not a trace-cmd, ftrace or perf script event line";

/** The libtraceevent kvm plugin's complaint on new kernels, followed by the kernel's own format. */
const PLUGIN_NOISE = /CAN'T FIND FIELD "[^"]*"(?:<CANT FIND FIELD [^>]*>)?/g;

// Words compared with the text.
const W_CHECK_MMIO_SPTE = codesOf("check_mmio_spte");
const W_CPU = codesOf("cpu");
const W_CPUS_ = codesOf("cpus=");
const W_DIRECT = codesOf("direct");
const W_EMPTY = codesOf("empty");
const W_ERROR_CODE = codesOf("error_code");
const W_EXT_INF = codesOf("ext_inf");
const W_EXT_INT = codesOf("ext_int");
const W_EXT_INT_ERR = codesOf("ext_int_err");
const W_FAST_PAGE_FAULT = codesOf("fast_page_fault");
const W_GFN = codesOf("gfn");
const W_HANDLE_MMIO_PAGE_FAULT = codesOf("handle_mmio_page_fault");
const W_INFO = codesOf("info");
const W_INTR_INFO = codesOf("intr_info");
const W_INT_INFO = codesOf("int_info");
const W_INT_INFO_ERR = codesOf("int_info_err");
const W_IS = codesOf("is");
const W_ISA = codesOf("isa");
const W_KVM = codesOf("kvm");
const W_KVM_ENTRY = codesOf("kvm_entry");
const W_KVM_EXIT = codesOf("kvm_exit");
const W_KVM_MMU_GET_PAGE = codesOf("kvm_mmu_get_page");
const W_KVM_NESTED_VMENTER = codesOf("kvm_nested_vmenter");
const W_KVM_NESTED_VMEXIT = codesOf("kvm_nested_vmexit");
const W_KVM_NESTED_VMEXIT_INJECT = codesOf("kvm_nested_vmexit_inject");
const W_KVM_NESTED_VMRUN = codesOf("kvm_nested_vmrun");
const W_MARK_MMIO_SPTE = codesOf("mark_mmio_spte");
const W_NESTED_EPT_ = codesOf("nested_ept=");
const W_NESTED_NPT_ = codesOf("nested_npt=");
const W_NEW = codesOf("new");
const W_OFF = codesOf("off");
const W_ON = codesOf("on");
const W_REASON = codesOf("reason");
const W_RIP = codesOf("rip");
const W_TRACE_CMD = codesOf("trace-cmd");
const W_TRACING = codesOf("tracing");
const W_UNKNOWN = codesOf("UNKNOWN");
const W_VCPU = codesOf("vcpu");
const W_VERSION = codesOf("version");
const W__BYTE = codesOf("-byte");

const POWERS_OF_TEN = Array.from({ length: 23 }, (_, i) => 10 ** i);

/** Whether the last secondsValue had a decimal point. */
let secondsHadPoint = false;

/** `Number()` of `\d+(\.\d+)?` at [s, e), without the substring when the digits fit a double. */
function secondsValue(t: Codes, s: number, e: number): number {
  let n = 0;
  let fraction = -1;
  for (let i = s; i < e; i++) {
    const c = t[i]!;
    if (c === 0x2e) fraction = 0;
    else {
      n = n * 10 + (c - 0x30);
      if (fraction >= 0) fraction++;
    }
  }
  secondsHadPoint = fraction >= 0;
  // Both exact, so the one division rounds as Number() rounds the decimal.
  if (n <= Number.MAX_SAFE_INTEGER && fraction <= 22) return fraction <= 0 ? n : n / POWERS_OF_TEN[fraction]!;
  return Number(textOf(t, s, e));
}

/** Why a number token [s, e) is unusable (missing, not hex, wider than `bits`), or undefined. */
function numberProblem(
  t: Codes,
  key: string,
  present: boolean,
  s: number,
  e: number,
  bits: 32 | 64,
): string | undefined {
  if (!present) return `${key} has no value (a truncated line?)`;
  const status = parseHexNumber(t, s, e);
  if (status === HEX_NOT_HEX) return `${key} ${JSON.stringify(textOf(t, s, e))} is not a hex number`;
  if (status === HEX_TOO_WIDE || (bits === 32 && HEX[1]! !== 0))
    return `${key} ${textOf(t, s, e)} does not fit in ${bits} bits`;
  return undefined;
}

/** Why a vCPU id (`vcpu %u`) [s, e) is unusable, or undefined. */
function vcpuProblem(t: Codes, present: boolean, s: number, e: number): string | undefined {
  if (!present) return "vcpu has no value (a truncated line?)";
  if (s === e || skipDigits(t, s, e) !== e)
    return `vcpu ${JSON.stringify(textOf(t, s, e))} is not a vCPU number`;
  if (decimalValue(t, s, e) > U32_MAX) return `vcpu ${textOf(t, s, e)} does not fit in 32 bits`;
  return undefined;
}

/**
 * trace-cmd's own header lines, not the events of its threads ("trace-cmd-5812 [002] ..."): as the
 * regular expression
 * `^\s*(#|$)|^\s*cpus=\d+\s*$|^\s*version\s*=|^\s*CPU\s*\d+ is empty\s*$|^\s*trace-cmd\b(?!-\d)|^\s*\[?\s*tracing\b(?!-\d)`
 * (case-insensitive) matches the line with its runs of blanks made one space. `i`: the line's first
 * character that is not a blank (or its end).
 */
function isHeader(t: Codes, i: number, e: number): boolean {
  if (i === e || t[i]! === 0x23) return true;
  const c = t[i]! | 0x20;
  if (c === 0x63 && matchesCi(t, i, e, W_CPU)) {
    if (matchesCi(t, i, e, W_CPUS_)) {
      const j = skipDigits(t, i + 5, e);
      if (j > i + 5 && skipBlanks(t, j, e) === e) return true;
    }
    const d = skipBlanks(t, i + 3, e);
    const j = skipDigits(t, d, e);
    if (j === d) return false;
    const k = skipBlanks(t, j, e);
    if (k === j || !matchesCi(t, k, e, W_IS)) return false;
    const m = skipBlanks(t, k + 2, e);
    return m > k + 2 && matchesCi(t, m, e, W_EMPTY) && skipBlanks(t, m + 5, e) === e;
  }
  if (c === 0x76) {
    if (!matchesCi(t, i, e, W_VERSION)) return false;
    const j = skipBlanks(t, i + 7, e);
    return j < e && t[j]! === 0x3d;
  }
  if (c === 0x74 && matchesCi(t, i, e, W_TRACE_CMD)) return toolNameEndsAt(t, i + 9, e);
  const j = skipBlanks(t, t[i]! === 0x5b ? i + 1 : i, e);
  return matchesCi(t, j, e, W_TRACING) && toolNameEndsAt(t, j + 7, e);
}

/** `\b(?!-\d)` at j. */
function toolNameEndsAt(t: Codes, j: number, e: number): boolean {
  if (j < e && isWord(t[j]!)) return false;
  return !(j + 1 < e && t[j]! === 0x2d && isDigit(t[j + 1]!));
}

/**
 * The first index of `needle` at or after `from`, remembered while the queries move forward in one
 * text: over the lines of a chunk, each part of it is searched once.
 */
class Finder {
  /**
   * The text searched last, known by its code units: strings are compared by content (two equal
   * pieces of a trace would be compared whole at every search), typed arrays by identity.
   */
  private codes: Codes = new Uint16Array(0);
  private from = 0;
  private at = -1;
  private readonly needle: string;
  constructor(needle: string) {
    this.needle = needle;
  }

  /** The first needle at or after `from` in `text`, whose code units are `codes`. */
  find(text: string, codes: Codes, from: number): number {
    if (codes !== this.codes || from < this.from || (this.at >= 0 && this.at < from)) {
      this.codes = codes;
      this.from = from;
      this.at = text.indexOf(this.needle, from);
    }
    return this.at;
  }
}

// ---------------------------------------------------------------------------------------------
// The keys of an exit payload.

const K_VCPU = 0;
const K_REASON = 1;
const K_INFO = 2;
const K_ISA = 3;
const K_RIP = 4;
const K_INFO1 = 5;
const K_INFO2 = 6;
const K_INTR_INFO = 7;
const K_ERROR_CODE = 8;
const K_INT_INFO = 9;
const K_INT_INFO_ERR = 10;
const K_EXT_INF1 = 11;
const K_EXT_INF2 = 12;
const K_EXT_INT = 13;
const K_EXT_INT_ERR = 14;
const KEY_COUNT = 15;
/** The keys by number; from K_RIP on, the ones whose values are numbers. */
const KEY_NAMES = [
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
] as const;
/** The width KVM prints each numeric key with. */
const KEY_BITS: readonly (32 | 64)[] = [64, 64, 64, 64, 64, 64, 64, 32, 32, 32, 32, 64, 64, 32, 32];
/**
 * Fields KVM prints together: when the first is on a line, the others follow it in every layout
 * (kvm_exit's info1/info2, intr_info/error_code since 5.11; the inject event's int_info pair and the
 * four ext_* fields of 5.x+).
 */
const FIELD_RUNS: readonly (readonly number[])[] = [
  [K_INFO1, K_INFO2],
  [K_INTR_INFO, K_ERROR_CODE],
  [K_INT_INFO, K_INT_INFO_ERR],
  [K_EXT_INF1, K_EXT_INF2, K_EXT_INT, K_EXT_INT_ERR],
];

/** The key [s, e) names (any case), or -1. */
function keyOf(t: Codes, s: number, e: number): number {
  const n = e - s;
  if (n < 3 || n > 12) return -1;
  switch (t[s]! | 0x20) {
    case 0x76:
      return n === 4 && matchesCi(t, s, e, W_VCPU) ? K_VCPU : -1;
    case 0x72:
      if (n === 3) return matchesCi(t, s, e, W_RIP) ? K_RIP : -1;
      return n === 6 && matchesCi(t, s, e, W_REASON) ? K_REASON : -1;
    case 0x69:
      switch (n) {
        case 3:
          return matchesCi(t, s, e, W_ISA) ? K_ISA : -1;
        case 4:
          return matchesCi(t, s, e, W_INFO) ? K_INFO : -1;
        case 5:
          if (!matchesCi(t, s, e, W_INFO)) return -1;
          return t[s + 4]! === 0x31 ? K_INFO1 : t[s + 4]! === 0x32 ? K_INFO2 : -1;
        case 8:
          return matchesCi(t, s, e, W_INT_INFO) ? K_INT_INFO : -1;
        case 9:
          return matchesCi(t, s, e, W_INTR_INFO) ? K_INTR_INFO : -1;
        case 12:
          return matchesCi(t, s, e, W_INT_INFO_ERR) ? K_INT_INFO_ERR : -1;
        default:
          return -1;
      }
    case 0x65:
      switch (n) {
        case 7:
          return matchesCi(t, s, e, W_EXT_INT) ? K_EXT_INT : -1;
        case 8:
          if (!matchesCi(t, s, e, W_EXT_INF)) return -1;
          return t[s + 7]! === 0x31 ? K_EXT_INF1 : t[s + 7]! === 0x32 ? K_EXT_INF2 : -1;
        case 10:
          return matchesCi(t, s, e, W_ERROR_CODE) ? K_ERROR_CODE : -1;
        case 11:
          return matchesCi(t, s, e, W_EXT_INT_ERR) ? K_EXT_INT_ERR : -1;
        default:
          return -1;
      }
    default:
      return -1;
  }
}

/** An exit line without a reason (a marker, compared by identity). */
const NO_REASON = "\u0000no reason";

/** The end of the reason in its token [s, e): "EPT_VIOLATION[ ]" (v5.4 nested layout) is EPT_VIOLATION. */
function reasonEnd(t: Codes, s: number, e: number): number {
  for (let i = s; i < e; i++) if (t[i] === 0x5b) return i;
  return e;
}

/**
 * Why the reason [s, e) is not one, NO_REASON when it is empty, or undefined: a name (EPT_VIOLATION,
 * npf, EXIT_NPF) or the code itself; SVM exit codes are 64 bits wide.
 */
function reasonProblem(t: Codes, s: number, e: number): string | undefined {
  if (e === s) return NO_REASON;
  const hex =
    e - s > 2 && t[s] === 0x30 && (t[s + 1]! | 0x20) === 0x78 ? parseHexDigits(t, s + 2, e) : HEX_NOT_HEX;
  if (skipDigits(t, s, e) === e) {
    if (!decimalFits64(t, s, e)) return `reason ${textOf(t, s, e)} does not fit in 64 bits`;
  } else if (hex !== HEX_NOT_HEX) {
    if (hex === HEX_TOO_WIDE) return `reason ${textOf(t, s, e)} does not fit in 64 bits`;
  } else if (!isIdentStart(t[s]!))
    return `reason ${JSON.stringify(textOf(t, s, e))} is not an exit-reason name or number`;
  else {
    for (let i = s + 1; i < e; i++) {
      if (!isWord(t[i]!))
        return `reason ${JSON.stringify(textOf(t, s, e))} is not an exit-reason name or number`;
    }
  }
  return undefined;
}

// The layouts KVM and the kvm plugin print exits with (kvm-trace-formats.md §2, §4), read in one
// pass when a payload follows one exactly (one space between tokens, numbers that fit): each step is
// a key as printed and the kind of its value.
const V_VCPU = 0;
const V_REASON = 1;
const V_HEX = 2;
/** `info`: two hex values. */
const V_HEX_PAIR = 3;
interface LayoutStep {
  readonly word: Codes;
  readonly key: number;
  readonly value: number;
}
const step = (word: string, key: number, value: number): LayoutStep => ({ word: codesOf(word), key, value });
const LAYOUTS: readonly (readonly LayoutStep[])[] = [
  // kvm_exit, kvm plugin (every kernel) and ≤ 5.10
  [step("reason", K_REASON, V_REASON), step("rip", K_RIP, V_HEX), step("info", K_INFO, V_HEX_PAIR)],
  // kvm_exit ≥ 5.11, kvm_nested_vmexit ≥ 5.13
  [
    step("vcpu", K_VCPU, V_VCPU),
    step("reason", K_REASON, V_REASON),
    step("rip", K_RIP, V_HEX),
    step("info1", K_INFO1, V_HEX),
    step("info2", K_INFO2, V_HEX),
    step("intr_info", K_INTR_INFO, V_HEX),
    step("error_code", K_ERROR_CODE, V_HEX),
  ],
  // kvm_nested_vmexit, kvm plugin
  [
    step("rip", K_RIP, V_HEX),
    step("reason", K_REASON, V_REASON),
    step("info1", K_INFO1, V_HEX),
    step("info2", K_INFO2, V_HEX),
    step("int_info", K_INT_INFO, V_HEX),
    step("int_info_err", K_INT_INFO_ERR, V_HEX),
  ],
  // kvm_nested_vmexit_inject, kvm plugin
  [
    step("reason", K_REASON, V_REASON),
    step("info1", K_INFO1, V_HEX),
    step("info2", K_INFO2, V_HEX),
    step("int_info", K_INT_INFO, V_HEX),
    step("int_info_err", K_INT_INFO_ERR, V_HEX),
  ],
  // kvm_nested_vmexit_inject ≥ 5.4
  [
    step("reason:", K_REASON, V_REASON),
    step("ext_inf1:", K_EXT_INF1, V_HEX),
    step("ext_inf2:", K_EXT_INF2, V_HEX),
    step("ext_int:", K_EXT_INT, V_HEX),
    step("ext_int_err:", K_EXT_INT_ERR, V_HEX),
  ],
];

// ---------------------------------------------------------------------------------------------

/**
 * Reads lines into its own fields, which hold the last line read until the next `read`. Only the
 * fields of the line's type and kind are meaningful; strings (comm, event name, reason) are made on
 * request.
 */
export class TraceLineReader {
  /** LINE.EVENT, HEADER, LOST or GARBAGE. */
  type: number = LINE.GARBAGE;
  /** For an event: KIND.*. */
  kind: number = KIND.OTHER;
  /** For garbage: why. */
  why = "";
  /** For lost events: how many. */
  lostCount = 0;
  line = 0;
  producer: Producer = "ftrace";
  tid = 0;
  cpu = 0;
  /** Seconds. */
  ts = 0;
  hasVcpuId = false;
  vcpuId = 0;
  hasRip = false;
  ripLo = 0;
  ripHi = 0;
  hasInfo1 = false;
  info1Lo = 0;
  info1Hi = 0;
  hasInfo2 = false;
  info2Lo = 0;
  info2Hi = 0;
  hasIntrInfo = false;
  intrInfo = 0;
  hasErrorCode = false;
  errorCode = 0;
  /** kvm_nested_vmenter / kvm_nested_vmrun: 1 nested EPT (NPT) on, 0 off, -1 not printed. */
  nestedEpt = -1;
  hasGfn = false;
  gfnLo = 0;
  gfnHi = 0;
  hasLevel = false;
  level = 0;
  created = false;
  direct = false;

  /** The text the prefix positions index: the line's text, or a copy with its blanks made one space. */
  private src: Codes = new Uint16Array(0);
  /** src as a string, for searches (a string's indexOf is much faster than a typed array's). */
  private srcText = "";
  private commStart = 0;
  private commEnd = 0;
  private eventStart = 0;
  private eventEnd = 0;
  private idStart = 0;
  private idEnd = 0;
  /** perf's second thread id (pid/tid), or -1. */
  private id2Start = -1;
  private id2End = -1;
  private cpuStart = 0;
  private cpuEnd = 0;
  private tsStart = 0;
  private tsEnd = 0;
  private payloadStart = 0;
  private payloadEnd = 0;
  /** The text the reason positions index: src, or the payload without the plugin's noise. */
  private payload: Codes = new Uint16Array(0);
  private reasonStart = 0;
  private reasonEnd = 0;
  private reasonValuesStart = 0;
  private reasonValuesEnd = 0;
  /** The index of the first reason value that may be a flag (1, or 2 after "UNKNOWN (n)"). */
  private reasonFlagsFrom = 1;

  // Keys of an exit payload: seen on this line when keySeen[k] === round.
  private round = 0;
  private readonly keySeen = new Int32Array(KEY_COUNT);
  private readonly valueCount = new Int32Array(KEY_COUNT);
  private readonly value0Start = new Int32Array(KEY_COUNT);
  private readonly value0End = new Int32Array(KEY_COUNT);
  private readonly value1Start = new Int32Array(KEY_COUNT);
  private readonly value1End = new Int32Array(KEY_COUNT);
  private readonly valuesEnd = new Int32Array(KEY_COUNT);
  /** The first value of each numeric key (the second of `info` in slot K_ISA), once checked. */
  private readonly valueLo = new Float64Array(KEY_COUNT);
  private readonly valueHi = new Float64Array(KEY_COUNT);

  /** Whether src is the caller's text (read by scanPrefix), which may hold more lines than this one. */
  private scanned = false;
  private readonly brackets = new Finder("[");
  private readonly noise = new Finder("CAN'T");
  private readonly nestedFinder = new Finder("nested_");
  private readonly nptFinder = new Finder("npt:");

  /**
   * Reads the line text[start, end) (no line break in it), given as the string and as its code
   * units (`toCodes(text)`); `line` is its 1-based number. Returns the line's type (also in `type`).
   */
  read(text: string, codes: Codes, start: number, end: number, line: number): number {
    this.line = line;
    this.hasVcpuId = false;
    if (end - start > MAX_LINE_LENGTH) return this.garbage(TOO_LONG);
    const first = skipBlanks(codes, start, end);
    if (isHeader(codes, first, end)) {
      this.type = LINE.HEADER;
      return LINE.HEADER;
    }
    this.srcText = text;
    if (!this.scanPrefix(codes, start, first, end) && !this.matchPrefix(text.slice(start, end)))
      return this.type;
    return this.readEvent();
  }

  /** The task name. */
  comm(): string {
    return this.srcText.slice(this.commStart, this.commEnd).replace(BLANKS, " ").trim();
  }

  /** The event name without its system. */
  eventName(): string {
    return this.srcText.slice(this.eventStart, this.eventEnd);
  }

  /** An exit's reason as printed. */
  reason(): string {
    return textOf(this.payload, this.reasonStart, this.reasonEnd);
  }

  /**
   * An exit's reason as printed, without a string: it is `reasonCodes()[reasonFrom(), reasonTo())`
   * (for callers that key by it).
   */
  reasonCodes(): Codes {
    return this.payload;
  }
  reasonFrom(): number {
    return this.reasonStart;
  }
  reasonTo(): number {
    return this.reasonEnd;
  }

  /** An exit's flag names after the reason (FAILED_VMENTRY, …). */
  reasonFlags(): string[] {
    const flags: string[] = [];
    const t = this.payload;
    const e = this.reasonValuesEnd;
    let index = 0;
    for (let i = skipBlanks(t, this.reasonValuesStart, e); i < e; i = skipBlanks(t, i, e)) {
      const s = i;
      while (i < e && !isBlank(t[i]!)) i++;
      if (index++ < this.reasonFlagsFrom) continue;
      const token = textOf(t, s, t[i - 1]! === 0x2c ? i - 1 : i).replace(/[[\]]/g, "");
      if (/^[A-Z_|]+$/.test(token)) flags.push(token);
    }
    return flags;
  }

  /** The line as a plain object. */
  result(): LineResult {
    switch (this.type) {
      case LINE.HEADER:
        return { type: "header" };
      case LINE.LOST:
        return { type: "lost", count: this.lostCount };
      case LINE.GARBAGE:
        return { type: "garbage", why: this.why };
      default:
        return { type: "event", event: this.event() };
    }
  }

  private event(): TraceEvent {
    // Object literals with fixed fields first, optional ones added after: no spreads (slow here).
    const kind = KIND_NAMES[this.kind]!;
    const line = this.line;
    const producer = this.producer;
    const event = this.eventName();
    const comm = this.comm();
    const { tid, cpu, ts } = this;
    switch (this.kind) {
      case KIND.EXIT:
      case KIND.NESTED_EXIT:
      case KIND.NESTED_INJECT: {
        const out: Record<string, unknown> = {
          line,
          producer,
          event,
          comm,
          tid,
          cpu,
          ts,
          kind,
          reason: this.reason(),
          reasonFlags: this.reasonFlags(),
        };
        if (this.hasVcpuId) out.vcpuId = this.vcpuId;
        if (this.hasRip) {
          out.ripLo = this.ripLo;
          out.ripHi = this.ripHi;
        }
        if (this.hasInfo1) {
          out.info1Lo = this.info1Lo;
          out.info1Hi = this.info1Hi;
        }
        if (this.hasInfo2) {
          out.info2Lo = this.info2Lo;
          out.info2Hi = this.info2Hi;
        }
        if (this.hasIntrInfo) out.intrInfo = this.intrInfo;
        if (this.hasErrorCode) out.errorCode = this.errorCode;
        return out as unknown as TraceEvent;
      }
      case KIND.ENTRY: {
        const out: Record<string, unknown> = { line, producer, event, comm, tid, cpu, ts, kind };
        if (this.hasVcpuId) out.vcpuId = this.vcpuId;
        if (this.hasRip) {
          out.ripLo = this.ripLo;
          out.ripHi = this.ripHi;
        }
        return out as unknown as TraceEvent;
      }
      case KIND.NESTED_ENTER: {
        const out: Record<string, unknown> = { line, producer, event, comm, tid, cpu, ts, kind };
        if (this.nestedEpt >= 0) out.nestedEpt = this.nestedEpt === 1;
        return out as unknown as TraceEvent;
      }
      case KIND.MMU_GET_PAGE: {
        const out: Record<string, unknown> = {
          line,
          producer,
          event,
          comm,
          tid,
          cpu,
          ts,
          kind,
          created: this.created,
          direct: this.direct,
        };
        if (this.hasGfn) {
          out.gfnLo = this.gfnLo;
          out.gfnHi = this.gfnHi;
        }
        if (this.hasLevel) out.level = this.level;
        return out as unknown as TraceEvent;
      }
      default:
        return { line, producer, event, comm, tid, cpu, ts, kind } as TraceEvent;
    }
  }

  private garbage(why: string): number {
    this.type = LINE.GARBAGE;
    this.why = why;
    return LINE.GARBAGE;
  }

  /**
   * Reads the prefix of an ftrace, trace-cmd or perf line by hand: true with the positions set, or
   * false when the line is not of a shape the scan is sure of (the regular expressions decide it).
   * The CPU's `[<digit>` must be the only one on the line, so that the tokens around it tell which
   * of PERF and FTRACE matches; the blanks are runs of any `\s`, as the expressions see them once
   * they are made one space.
   */
  private scanPrefix(t: Codes, s: number, first: number, e: number): boolean {
    let bracket = -1;
    const text = this.srcText;
    for (let b = this.brackets.find(text, t, s); b >= 0 && b < e; b = this.brackets.find(text, t, b + 1)) {
      if (b + 1 < e && isDigit(t[b + 1]!)) {
        if (bracket >= 0) return false;
        bracket = b;
      }
    }
    if (bracket < 0) return false;
    const cpuEnd = skipDigits(t, bracket + 1, e);
    if (cpuEnd >= e || t[cpuEnd]! !== 0x5d) return false;
    if (cpuEnd + 1 >= e || !isBlank(t[cpuEnd + 1]!)) return false;
    this.cpuStart = bracket + 1;
    this.cpuEnd = cpuEnd;
    const after = skipBlanks(t, cpuEnd + 1, e);
    // The token before the bracket, after a blank.
    let q = bracket - 1;
    if (q < s || !isBlank(t[q]!)) return false;
    while (q >= s && isBlank(t[q]!)) q--;
    if (q < s) return false;
    const c = t[q]!;
    if (isDigit(c)) {
      let u = q;
      while (u >= s && isDigit(t[u]!)) u--;
      // perf: "comm pid[/tid] [cpu]"; ftrace: "comm-tid [cpu]".
      if (u >= s && t[u]! === 0x2f) {
        const v = u - 1;
        let w = v;
        while (w >= s && isDigit(t[w]!)) w--;
        if (w === v || w < s || !isBlank(t[w]!)) return false;
        this.idStart = w + 1;
        this.idEnd = u;
        this.id2Start = u + 1;
        this.id2End = q + 1;
        if (first >= w) return false;
        return this.perfRest(t, first, w, after, e);
      }
      if (u < s) return false;
      if (isBlank(t[u]!)) {
        this.idStart = u + 1;
        this.idEnd = q + 1;
        this.id2Start = -1;
        this.id2End = -1;
        if (first >= u) return false;
        return this.perfRest(t, first, u, after, e);
      }
      if (t[u]! !== 0x2d) return false;
      this.idStart = u + 1;
      this.idEnd = q + 1;
      return this.ftraceRest(t, first, u, after, e);
    }
    if (c !== 0x29) return false;
    // ftrace with a tgid column: "comm-tid (tgid) [cpu]", tgid `\(\s*[-\d]+\)`.
    let u = q - 1;
    while (u >= s && (isDigit(t[u]!) || t[u]! === 0x2d)) u--;
    if (u === q - 1) return false;
    while (u >= s && isBlank(t[u]!)) u--;
    if (u < s || t[u]! !== 0x28) return false;
    u--;
    if (u < s || !isBlank(t[u]!)) return false;
    while (u >= s && isBlank(t[u]!)) u--;
    if (u < s || !isDigit(t[u]!)) return false;
    let d = u;
    while (d >= s && isDigit(t[d]!)) d--;
    if (d < s || t[d]! !== 0x2d) return false;
    this.idStart = d + 1;
    this.idEnd = u + 1;
    return this.ftraceRest(t, first, d, after, e);
  }

  /** perf after the CPU: `seconds: [period] system:event:` then the payload. */
  private perfRest(t: Codes, commStart: number, commEnd: number, i: number, e: number): boolean {
    let j = this.timestamp(t, i, e);
    if (j < 0) return false;
    if (j < e && isDigit(t[j]!)) {
      const k = skipDigits(t, j, e);
      if (k >= e || !isBlank(t[k]!)) return false;
      j = skipBlanks(t, k, e);
    }
    const system = this.identifier(t, j, e);
    if (system < 0 || system >= e || t[system]! !== 0x3a) return false;
    const event = this.identifier(t, system + 1, e);
    if (event < 0 || event >= e || t[event]! !== 0x3a) return false;
    this.producer = "perf";
    this.commStart = commStart;
    this.commEnd = commEnd;
    this.eventStart = system + 1;
    this.eventEnd = event;
    this.payloadStart = skipBlanks(t, event + 1, e);
    this.payloadEnd = e;
    this.src = t;
    this.scanned = true;
    return true;
  }

  /** ftrace after the CPU: `[flags] seconds: event:` then the payload. */
  private ftraceRest(t: Codes, commStart: number, commEnd: number, i: number, e: number): boolean {
    // `(?:(\S{3,7})\s+)?`: a 3 to 7 character token is the flags when the rest matches after it.
    let k = i;
    while (k < e && !isBlank(t[k]!)) k++;
    if (k - i < 3 || k - i > 7 || k >= e || !this.ftraceEvent(t, skipBlanks(t, k, e), e)) {
      if (!this.ftraceEvent(t, i, e)) return false;
    }
    this.producer = "ftrace";
    this.commStart = commStart;
    this.commEnd = commEnd;
    this.id2Start = -1;
    this.id2End = -1;
    this.src = t;
    this.scanned = true;
    return true;
  }

  private ftraceEvent(t: Codes, i: number, e: number): boolean {
    const j = this.timestamp(t, i, e);
    if (j < 0) return false;
    const event = this.identifier(t, j, e);
    if (event < 0 || event >= e || t[event]! !== 0x3a) return false;
    this.eventStart = j;
    this.eventEnd = event;
    this.payloadStart = skipBlanks(t, event + 1, e);
    this.payloadEnd = e;
    return true;
  }

  /** `\d+(?:\.\d+)?:\s+` at i: sets the timestamp's range and returns the index after the blanks, or -1. */
  private timestamp(t: Codes, i: number, e: number): number {
    let j = skipDigits(t, i, e);
    if (j === i) return -1;
    if (j + 1 < e && t[j]! === 0x2e && isDigit(t[j + 1]!)) j = skipDigits(t, j + 1, e);
    if (j >= e || t[j]! !== 0x3a) return -1;
    if (j + 1 >= e || !isBlank(t[j + 1]!)) return -1;
    this.tsStart = i;
    this.tsEnd = j;
    return skipBlanks(t, j + 1, e);
  }

  /** `[A-Za-z_]\w*` at i: the index after it, or -1. */
  private identifier(t: Codes, i: number, e: number): number {
    if (i >= e || !isIdentStart(t[i]!)) return -1;
    let j = i + 1;
    while (j < e && isWord(t[j]!)) j++;
    return j;
  }

  /** The regular expressions on the line with its blanks made one space: false for lost events and garbage. */
  private matchPrefix(text: string): boolean {
    const flat = text.replace(BLANKS, " ");
    const perf = PERF.exec(flat);
    if (perf) {
      const at = perf.indices!;
      [this.commStart, this.commEnd] = at[1] ?? NO_RANGE;
      [this.idStart, this.idEnd] = at[2] ?? NO_RANGE;
      [this.id2Start, this.id2End] = at[3] ?? NO_RANGE;
      [this.cpuStart, this.cpuEnd] = at[4] ?? NO_RANGE;
      [this.tsStart, this.tsEnd] = at[5] ?? NO_RANGE;
      [this.eventStart, this.eventEnd] = at[7] ?? NO_RANGE;
      [this.payloadStart, this.payloadEnd] = at[8] ?? NO_RANGE;
      return this.prefixMatched("perf", flat);
    }
    const ftrace = FTRACE.exec(flat);
    if (ftrace) {
      const at = ftrace.indices!;
      [this.commStart, this.commEnd] = at[1] ?? NO_RANGE;
      [this.idStart, this.idEnd] = at[2] ?? NO_RANGE;
      [this.id2Start, this.id2End] = NO_RANGE;
      [this.cpuStart, this.cpuEnd] = at[3] ?? NO_RANGE;
      [this.tsStart, this.tsEnd] = at[5] ?? NO_RANGE;
      [this.eventStart, this.eventEnd] = at[6] ?? NO_RANGE;
      [this.payloadStart, this.payloadEnd] = at[7] ?? NO_RANGE;
      return this.prefixMatched("ftrace", flat);
    }
    const lost = LOST.exec(flat);
    if (lost && !Number.isSafeInteger(Number(lost[1]))) {
      this.garbage(`lost-event count ${lost[1]} is too large`);
      return false;
    }
    if (lost) {
      this.type = LINE.LOST;
      this.lostCount = Number(lost[1]);
      return false;
    }
    this.garbage(NOT_AN_EVENT);
    return false;
  }

  /** The prefix ranges above index `flat`, which the rest of the line is now read from. */
  private prefixMatched(producer: Producer, flat: string): true {
    this.producer = producer;
    this.src = toCodes(flat);
    this.srcText = flat;
    this.scanned = false;
    return true;
  }

  /** After the prefix: its numbers, the event's kind and its payload. */
  private readEvent(): number {
    const t = this.src;
    // A counter clock (trace-cmd record -C x86-tsc or counter) prints ticks without a decimal point:
    // durations would be in unknown units, so such lines are refused by name.
    const ts = secondsValue(t, this.tsStart, this.tsEnd);
    if (!secondsHadPoint) return this.garbage(INTEGER_TIMESTAMP);
    const id = decimalValue(t, this.idStart, this.idEnd);
    if (id > U32_MAX)
      return this.garbage(`thread id ${textOf(t, this.idStart, this.idEnd)} does not fit in 32 bits`);
    let tid = id;
    if (this.id2Start >= 0) {
      tid = decimalValue(t, this.id2Start, this.id2End);
      if (tid > U32_MAX)
        return this.garbage(`thread id ${textOf(t, this.id2Start, this.id2End)} does not fit in 32 bits`);
    }
    const cpu = decimalValue(t, this.cpuStart, this.cpuEnd);
    if (cpu > U32_MAX)
      return this.garbage(`CPU number ${textOf(t, this.cpuStart, this.cpuEnd)} does not fit in 32 bits`);
    if (ts > MAX_SECONDS)
      return this.garbage(
        `timestamp ${textOf(t, this.tsStart, this.tsEnd)} is too large to time exits to the microsecond`,
      );
    this.tid = tid;
    this.cpu = cpu;
    this.ts = ts;
    this.type = LINE.EVENT;
    const kind = this.eventKind();
    this.kind = kind;
    let why: string | undefined;
    switch (kind) {
      case KIND.EXIT:
      case KIND.NESTED_EXIT:
      case KIND.NESTED_INJECT:
        why = this.exitPayload(kind !== KIND.NESTED_INJECT);
        if (why === NO_REASON) return this.garbage(`${this.eventName()} without a reason`);
        break;
      case KIND.ENTRY:
        why = this.entryPayload();
        break;
      case KIND.NESTED_ENTER:
        this.nestedEnterPayload();
        break;
      case KIND.MMU_GET_PAGE:
        why = this.mmuPayload();
        break;
      default:
        break;
    }
    if (why !== undefined) return this.garbage(`${this.eventName()}: ${why}`);
    return LINE.EVENT;
  }

  private eventKind(): number {
    const t = this.src;
    const s = this.eventStart;
    const n = this.eventEnd - s;
    switch (n) {
      case 8:
        if (sameAt(t, s, W_KVM_EXIT)) return KIND.EXIT;
        break;
      case 9:
        if (sameAt(t, s, W_KVM_ENTRY)) return KIND.ENTRY;
        break;
      case 14:
        if (sameAt(t, s, W_MARK_MMIO_SPTE)) return KIND.KVM_OTHER;
        break;
      case 15:
        if (sameAt(t, s, W_FAST_PAGE_FAULT) || sameAt(t, s, W_CHECK_MMIO_SPTE)) return KIND.KVM_OTHER;
        break;
      case 16:
        if (sameAt(t, s, W_KVM_NESTED_VMRUN)) return KIND.NESTED_ENTER;
        if (sameAt(t, s, W_KVM_MMU_GET_PAGE)) return KIND.MMU_GET_PAGE;
        break;
      case 17:
        if (sameAt(t, s, W_KVM_NESTED_VMEXIT)) return KIND.NESTED_EXIT;
        break;
      case 18:
        if (sameAt(t, s, W_KVM_NESTED_VMENTER)) return KIND.NESTED_ENTER;
        break;
      case 22:
        if (sameAt(t, s, W_HANDLE_MMIO_PAGE_FAULT)) return KIND.KVM_OTHER;
        break;
      case 24:
        if (sameAt(t, s, W_KVM_NESTED_VMEXIT_INJECT)) return KIND.NESTED_INJECT;
        break;
      default:
        break;
    }
    // Events of other systems are not used; KVM's own (kvm_*) are recognised but not used either.
    return n >= 3 && sameAt(t, s, W_KVM) ? KIND.KVM_OTHER : KIND.OTHER;
  }

  /**
   * kvm_exit, kvm_nested_vmexit(_inject): `key value` pairs (keys may carry a trailing ':'; `info`
   * takes two values). Returns why the line cannot be trusted, NO_REASON, or undefined: a number
   * that does not parse or is wider than KVM prints it, a field given twice, or a line cut short
   * (no RIP, no qualification, or a field without the ones KVM always prints with it; trace.h
   * kvm_exit).
   */
  private exitPayload(hasRip: boolean): string | undefined {
    let t = this.src;
    let s = this.payloadStart;
    let e = this.payloadEnd;
    // The finder remembers across the lines of a chunk; a line of its own is searched directly.
    const noise = this.find(this.noise, "CAN'T", s);
    if (noise >= 0 && noise < e) {
      t = toCodes(textOf(t, s, e).replace(BLANKS, " ").replace(PLUGIN_NOISE, " "));
      s = 0;
      e = t.length;
    }
    this.payload = t;
    for (const layout of LAYOUTS) {
      if (matchesAt(t, s, e, layout[0]!.word) && this.readLayout(layout, t, s, e, hasRip))
        return this.exitValues();
    }
    // Any other payload: tokens, keys and values as they come.
    const round = this.nextRound();
    const seen = this.keySeen;
    const count = this.valueCount;
    let current = -1;
    let repeated = -1;
    for (let i = skipBlanks(t, s, e); i < e; i = skipBlanks(t, i, e)) {
      const start = i;
      while (i < e && !isBlank(t[i]!)) i++;
      const last = t[i - 1]!;
      const bare = last === 0x3a || last === 0x2c ? i - 1 : i;
      const key = bare - start < 3 || bare - start > 12 ? -1 : keyOf(t, start, bare);
      if (key >= 0) {
        const present = seen[key] === round;
        if (present && repeated < 0) repeated = key;
        if (last === 0x3a || !present || current < 0) {
          current = key;
          seen[key] = round;
          count[key] = 0;
          continue;
        }
      }
      if (current < 0) continue;
      const valueEnd = last === 0x2c ? i - 1 : i;
      const n = count[current]!;
      if (n === 0) {
        this.value0Start[current] = start;
        this.value0End[current] = valueEnd;
      } else if (n === 1) {
        this.value1Start[current] = start;
        this.value1End[current] = valueEnd;
      }
      this.valuesEnd[current] = i;
      count[current] = n + 1;
    }
    if (seen[K_REASON] !== round || count[K_REASON] === 0) return NO_REASON;
    if (repeated >= 0) return `${KEY_NAMES[repeated]} appears twice (two lines run together?)`;
    // Every kvm_exit / kvm_nested_vmexit layout, old and new, prints the RIP after the reason.
    if (hasRip && !(seen[K_RIP] === round)) return "no rip (a truncated line?)";
    for (let key = K_RIP; key < KEY_COUNT; key++) {
      if (seen[key] !== round) continue;
      const why = numberProblem(
        t,
        KEY_NAMES[key]!,
        count[key]! > 0,
        this.value0Start[key]!,
        this.value0End[key]!,
        KEY_BITS[key]!,
      );
      if (why !== undefined) return why;
      this.valueLo[key] = HEX[0]!;
      this.valueHi[key] = HEX[1]!;
    }
    if (seen[K_INFO] === round) {
      const n = count[K_INFO]!;
      if (n === 1) return "info has one value, not two (a truncated line?)";
      let why = numberProblem(t, "info", n > 0, this.value0Start[K_INFO]!, this.value0End[K_INFO]!, 64);
      if (why !== undefined) return why;
      this.valueLo[K_INFO] = HEX[0]!;
      this.valueHi[K_INFO] = HEX[1]!;
      why = numberProblem(t, "info", n > 1, this.value1Start[K_INFO]!, this.value1End[K_INFO]!, 64);
      if (why !== undefined) return why;
      this.valueLo[K_ISA] = HEX[0]!;
      this.valueHi[K_ISA] = HEX[1]!;
    }
    for (const run of FIELD_RUNS) {
      if (seen[run[0]!] !== round) continue;
      for (const key of run) {
        if (seen[key] !== round)
          return `no ${KEY_NAMES[key]} after ${KEY_NAMES[run[0]!]} (a truncated line?)`;
      }
    }
    // Every layout prints the qualification: `info`, `info1` or `ext_inf1`.
    if (!(seen[K_INFO] === round) && !(seen[K_INFO1] === round) && !(seen[K_EXT_INF1] === round))
      return "no info1 (a truncated line?)";
    if (seen[K_VCPU] === round) {
      const why = vcpuProblem(t, count[K_VCPU]! > 0, this.value0Start[K_VCPU]!, this.value0End[K_VCPU]!);
      if (why !== undefined) return why;
    }
    // "EPT_VIOLATION", "EPT_VIOLATION[ ]" (v5.4 nested layout), "INVALID_STATE FAILED_VMENTRY".
    let rs = this.value0Start[K_REASON]!;
    let re = this.value0End[K_REASON]!;
    this.reasonFlagsFrom = 1;
    // The kvm plugin prints a reason it cannot name as "UNKNOWN (<decimal value>)": keep the value.
    const ps = this.value1Start[K_REASON]!;
    const pe = this.value1End[K_REASON]!;
    if (
      re - rs === 7 &&
      sameAt(t, rs, W_UNKNOWN) &&
      count[K_REASON]! > 1 &&
      pe - ps >= 3 &&
      t[ps]! === 0x28 &&
      t[pe - 1]! === 0x29 &&
      skipDigits(t, ps + 1, pe - 1) === pe - 1
    ) {
      rs = ps + 1;
      re = pe - 1;
      this.reasonFlagsFrom = 2;
    } else re = reasonEnd(t, rs, re);
    const why = reasonProblem(t, rs, re);
    if (why !== undefined) return why;
    this.reasonStart = rs;
    this.reasonEnd = re;
    this.reasonValuesStart = this.value0Start[K_REASON]!;
    this.reasonValuesEnd = this.valuesEnd[K_REASON]!;
    return this.exitValues();
  }

  /**
   * Reads `layout` at [s, e) when the payload follows it exactly, with values the general reading
   * would accept (true, the fields and the reason set), else false (and nothing that matters set).
   */
  private readLayout(
    layout: readonly LayoutStep[],
    t: Codes,
    s: number,
    e: number,
    hasRip: boolean,
  ): boolean {
    const seen = this.keySeen;
    const round = this.nextRound();
    let i = s;
    let rip = false;
    for (const { word, key, value } of layout) {
      if (i > s) {
        if (i >= e || t[i] !== 0x20) return false;
        i++;
      }
      if (!matchesAt(t, i, e, word)) return false;
      i += word.length;
      if (i >= e || t[i] !== 0x20) return false;
      i++;
      seen[key] = round;
      this.valueCount[key] = 1;
      this.value0Start[key] = i;
      if (value === V_REASON) {
        // One token, that the general reading would not take for a key or strip a comma from.
        const start = i;
        while (i < e && !isBlank(t[i]!)) i++;
        const last = t[i - 1]!;
        if (last === 0x2c || (last === 0x3a && i - 1 > start && keyOf(t, start, i - 1) >= 0)) return false;
        if (keyOf(t, start, i) >= 0) return false;
        if (i < e && t[i] !== 0x20) return false;
        this.value0End[key] = i;
        this.valuesEnd[key] = i;
        continue;
      }
      if (value === V_VCPU) {
        const start = i;
        i = skipDigits(t, i, e);
        if (i === start || decimalValue(t, start, i) > U32_MAX) return false;
        this.value0End[key] = i;
        continue;
      }
      if (key === K_RIP) rip = true;
      i = this.layoutHex(t, i, e, key, key);
      if (i < 0) return false;
      if (value === V_HEX_PAIR) {
        if (i >= e || t[i] !== 0x20) return false;
        i = this.layoutHex(t, i + 1, e, key, K_ISA);
        if (i < 0) return false;
        this.valueCount[key] = 2;
      }
    }
    if (hasRip && !rip) return false;
    if (skipBlanks(t, i, e) !== e) return false;
    const rs = this.value0Start[K_REASON]!;
    const re = reasonEnd(t, rs, this.value0End[K_REASON]!);
    if (reasonProblem(t, rs, re) !== undefined) return false;
    this.reasonStart = rs;
    this.reasonEnd = re;
    this.reasonFlagsFrom = 1;
    this.reasonValuesStart = rs;
    this.reasonValuesEnd = this.valuesEnd[K_REASON]!;
    return true;
  }

  /**
   * A hex value (optional 0x) of key at i, ending at a space or e, that fits the key's width: into
   * valueLo/valueHi[slot]; the index after it, or -1.
   */
  private layoutHex(t: Codes, i: number, e: number, key: number, slot: number): number {
    const start = i;
    if (i + 1 < e && t[i] === 0x30 && (t[i + 1]! | 0x20) === 0x78) i += 2;
    const digits = i;
    while (i < e && hexDigit(t[i]!) >= 0) i++;
    if (i < e && t[i] !== 0x20) return -1;
    if (parseHexDigits(t, digits, i) !== HEX_OK || (KEY_BITS[key] === 32 && HEX[1] !== 0)) return -1;
    if (slot === key) {
      this.value0Start[key] = start;
      this.value0End[key] = i;
    }
    this.valueLo[slot] = HEX[0]!;
    this.valueHi[slot] = HEX[1]!;
    return i;
  }

  /** A new round of keys: none seen on the line yet. */
  private nextRound(): number {
    if (this.round === 0x7fffffff) {
      this.keySeen.fill(0);
      this.round = 0;
    }
    return ++this.round;
  }

  /** The fields of an exit whose keys and values were checked. */
  private exitValues(): undefined {
    const seen = this.keySeen;
    const round = this.round;
    const t = this.payload;
    this.hasVcpuId = seen[K_VCPU] === round;
    if (this.hasVcpuId) this.vcpuId = decimalValue(t, this.value0Start[K_VCPU]!, this.value0End[K_VCPU]!);
    const lo = this.valueLo;
    const hi = this.valueHi;
    this.hasRip = seen[K_RIP] === round;
    if (this.hasRip) {
      this.ripLo = lo[K_RIP]!;
      this.ripHi = hi[K_RIP]!;
    }
    // Of the keys that may hold a field, the first present (`info`'s second value is in K_ISA's slot).
    let key = this.firstSeen(K_INFO1, K_EXT_INF1, K_INFO);
    this.hasInfo1 = key >= 0;
    if (key >= 0) {
      this.info1Lo = lo[key]!;
      this.info1Hi = hi[key]!;
    }
    key = this.firstSeen(K_INFO2, K_EXT_INF2, K_INFO);
    this.hasInfo2 = key >= 0;
    if (key === K_INFO) key = K_ISA;
    if (key >= 0) {
      this.info2Lo = lo[key]!;
      this.info2Hi = hi[key]!;
    }
    key = this.firstSeen(K_INTR_INFO, K_INT_INFO, K_EXT_INT);
    this.hasIntrInfo = key >= 0;
    if (key >= 0) this.intrInfo = lo[key]!;
    key = this.firstSeen(K_ERROR_CODE, K_INT_INFO_ERR, K_EXT_INT_ERR);
    this.hasErrorCode = key >= 0;
    if (key >= 0) this.errorCode = lo[key]!;
    return undefined;
  }

  /** The first of the keys a, b, c on the line, or -1. */
  private firstSeen(a: number, b: number, c: number): number {
    const seen = this.keySeen;
    const round = this.round;
    return seen[a] === round ? a : seen[b] === round ? b : seen[c] === round ? c : -1;
  }

  /**
   * kvm_entry: "vcpu %u" in every layout, then ", rip 0x%lx" since 5.11, with "[immediate exit]"
   * right after the RIP since 6.9. Read as `\bvcpu\s+([^\s,]+)` and `\brip\b\s*(\S+)?` would.
   */
  private entryPayload(): string | undefined {
    const t = this.src;
    const s = this.payloadStart;
    const e = this.payloadEnd;
    this.payload = t;
    let wordVcpu = false;
    let vs = -1;
    let ve = -1;
    for (let i = indexIn(t, W_VCPU, s, e); i >= 0; i = indexIn(t, W_VCPU, i + 1, e)) {
      if (!wordStartsAt(t, s, i)) continue;
      if (wordEndsAt(t, i + 4, e)) wordVcpu = true;
      if (vs < 0 && i + 4 < e && isBlank(t[i + 4]!)) {
        const j = skipBlanks(t, i + 4, e);
        let k = j;
        while (k < e && !isBlank(t[k]!) && t[k]! !== 0x2c) k++;
        if (k > j) {
          vs = j;
          ve = k;
        }
      }
      if (wordVcpu && vs >= 0) break;
    }
    if (!wordVcpu) return "no vcpu (a truncated line?)";
    let rip = -1;
    for (let i = indexIn(t, W_RIP, s, e); i >= 0; i = indexIn(t, W_RIP, i + 1, e)) {
      if (wordStartsAt(t, s, i) && wordEndsAt(t, i + 3, e)) {
        rip = i;
        break;
      }
    }
    let rs = -1;
    let re = -1;
    if (rip >= 0) {
      const j = skipBlanks(t, rip + 3, e);
      let k = j;
      while (k < e && !isBlank(t[k]!)) k++;
      if (k > j) {
        rs = j;
        re = j;
        while (re < k && t[re]! !== 0x5b) re++;
      }
    }
    const why =
      vcpuProblem(t, vs >= 0, vs, ve) ??
      (rip >= 0 ? numberProblem(t, "rip", rs >= 0, rs, re, 64) : undefined);
    if (why !== undefined) return why;
    this.hasVcpuId = true;
    this.vcpuId = decimalValue(t, vs, ve);
    this.hasRip = rs >= 0;
    if (this.hasRip) {
      parseHexNumber(t, rs, re);
      this.ripLo = HEX[0]!;
      this.ripHi = HEX[1]!;
    }
    return undefined;
  }

  /** kvm_nested_vmenter / kvm_nested_vmrun: `nested_(?:ept|npt)=([yn])|npt:\s*(on|off)`, first match. */
  private nestedEnterPayload(): void {
    const t = this.src;
    const e = this.payloadEnd;
    this.nestedEpt = -1;
    // The first "nested_ept=" / "nested_npt=" with y or n after it, and the first "npt:" with on or
    // off after it: the one further left matches.
    let nested = -1;
    let nestedValue = -1;
    for (
      let i = this.find(this.nestedFinder, "nested_", this.payloadStart);
      i >= 0 && i < e;
      i = this.find(this.nestedFinder, "nested_", i + 1)
    ) {
      if (matchesAt(t, i, e, W_NESTED_EPT_) || matchesAt(t, i, e, W_NESTED_NPT_)) {
        const c = i + 11 < e ? t[i + 11]! : 0;
        if (c === 0x79 || c === 0x6e) {
          nested = i;
          nestedValue = c === 0x79 ? 1 : 0;
          break;
        }
      }
    }
    const end = nested >= 0 ? nested : e;
    for (
      let i = this.find(this.nptFinder, "npt:", this.payloadStart);
      i >= 0 && i < end;
      i = this.find(this.nptFinder, "npt:", i + 1)
    ) {
      const j = skipBlanks(t, i + 4, e);
      if (matchesAt(t, j, e, W_ON)) {
        this.nestedEpt = 1;
        return;
      }
      if (matchesAt(t, j, e, W_OFF)) {
        this.nestedEpt = 0;
        return;
      }
    }
    this.nestedEpt = nestedValue;
  }

  /**
   * The first `needle` at or after `from` in srcText: by the finder, which remembers, when srcText
   * is the caller's text (it may hold many lines), else directly (srcText is one line).
   */
  private find(finder: Finder, needle: string, from: number): number {
    return this.scanned ? finder.find(this.srcText, this.src, from) : this.srcText.indexOf(needle, from);
  }

  /**
   * kvm_mmu_get_page — kernel: "... gfn 14b600 l1 8-byte ..."; plugin: "new sp gfn 0 4 q0 ..." or
   * "... gfn 3a22e 1/4 q3 ...". Read as `\bgfn\s+([0-9a-f]+)` (any case), `\bl(\d+)\s+\d-byte\b`
   * or else `\bgfn\s+[0-9a-f]+\s+(\d+)(?:\/\d+)?\s+q\d` (any case), `(^|\s)new(\s|$)` and
   * `\bdirect\b` would.
   */
  private mmuPayload(): string | undefined {
    const t = this.src;
    const s = this.payloadStart;
    const e = this.payloadEnd;
    let gs = -1;
    let ge = -1;
    let ls = -1;
    let le = -1;
    let byteLevel = false;
    this.created = false;
    this.direct = false;
    for (let i = s; i < e; ) {
      const c = t[i]!;
      if (isBlank(c)) {
        i++;
        continue;
      }
      if (i === s || isBlank(t[i - 1]!)) {
        if (matchesAt(t, i, e, W_NEW) && (i + 3 === e || isBlank(t[i + 3]!))) this.created = true;
      }
      if (wordStartsAt(t, s, i)) {
        if ((c | 0x20) === 0x67 && matchesCi(t, i, e, W_GFN)) {
          const j = skipBlanks(t, i + 3, e);
          let k = j;
          while (k < e && hexDigit(t[k]!) >= 0) k++;
          if (j > i + 3 && k > j) {
            if (gs < 0) {
              gs = j;
              ge = k;
            }
            // `\s+(\d+)(?:\/\d+)?\s+q\d` after the hex run.
            if (ls < 0 && k < e && isBlank(t[k]!)) {
              const m = skipBlanks(t, k, e);
              const n = skipDigits(t, m, e);
              let o = n;
              if (n < e && t[n]! === 0x2f) {
                const p = skipDigits(t, n + 1, e);
                if (p > n + 1 && p < e && isBlank(t[p]!)) o = p;
              }
              if (n > m && o < e && isBlank(t[o]!)) {
                const q = skipBlanks(t, o, e);
                if (q + 1 < e && (t[q]! | 0x20) === 0x71 && isDigit(t[q + 1]!)) {
                  ls = m;
                  le = n;
                }
              }
            }
          }
        } else if (c === 0x6c && !byteLevel) {
          // `l(\d+)\s+\d-byte\b`
          const j = skipDigits(t, i + 1, e);
          if (j > i + 1 && j < e && isBlank(t[j]!)) {
            const k = skipBlanks(t, j, e);
            if (k < e && isDigit(t[k]!) && matchesAt(t, k + 1, e, W__BYTE) && wordEndsAt(t, k + 6, e)) {
              byteLevel = true;
              ls = i + 1;
              le = j;
            }
          }
        } else if (c === 0x64 && matchesAt(t, i, e, W_DIRECT) && wordEndsAt(t, i + 6, e)) this.direct = true;
      }
      i++;
    }
    this.hasGfn = gs >= 0;
    if (this.hasGfn) {
      if (parseHexDigits(t, gs, ge) === HEX_TOO_WIDE)
        return `gfn ${textOf(t, gs, ge)} does not fit in 64 bits`;
      this.gfnLo = HEX[0]!;
      this.gfnHi = HEX[1]!;
    }
    this.hasLevel = ls >= 0;
    if (this.hasLevel) {
      this.level = decimalValue(t, ls, le);
      // role.level: 1 (4 KiB) to 5 (the root of 5-level paging).
      if (this.level > 5) return `level ${textOf(t, ls, le)} is not a paging level (1-5)`;
    }
    return undefined;
  }
}

const reader = new TraceLineReader();

/** Decodes one line. `line` is its 1-based number, carried into the event. */
export function parseTraceLine(text: string, line: number): LineResult {
  reader.read(text, toCodes(text), 0, text.length, line);
  return reader.result();
}
