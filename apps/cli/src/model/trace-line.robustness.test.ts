import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MAX_LINE_LENGTH, parseTraceLine } from "./trace-line";
import { normaliseReason, statRows, type TraceStats, traceLines, traceStats } from "./trace-stat";
import { U64Counts } from "./u64-counts";

/**
 * Robustness of KVM trace ingestion: whatever a line or a file holds, the parser answers (an event,
 * a header, lost events or garbage with a reason) and never throws; junk lines are reported and
 * skipped without changing what the valid lines say (`trace stat --help`: "Lines that are not
 * understood are counted and skipped").
 */

const TYPES = ["event", "header", "lost", "garbage"];
const U32 = 0xffffffff;

// ---------------------------------------------------------------------------------------------
// Valid traces, in every producer's layout.

type Producer = "trace-cmd" | "ftrace" | "perf";
type Handling = "plain" | "L0" | "L1";

interface ExitSpec {
  readonly vcpu: number;
  readonly reason: string;
  readonly handling: Handling;
  readonly qualification: number;
  readonly durationUs: number;
  readonly gapUs: number;
  readonly newLayout: boolean;
  readonly other: boolean;
}

const REASONS = ["HLT", "CPUID", "EPT_VIOLATION", "IO_INSTRUCTION", "MSR_WRITE", "VMREAD", "48", "npf"];

const exitSpec: fc.Arbitrary<ExitSpec> = fc.record({
  vcpu: fc.integer({ min: 0, max: 3 }),
  reason: fc.constantFrom(...REASONS),
  handling: fc.constantFrom<Handling>("plain", "L0", "L1"),
  qualification: fc.integer({ min: 0, max: 0xffffffff }),
  durationUs: fc.integer({ min: 0, max: 5000 }),
  gapUs: fc.integer({ min: 0, max: 50 }),
  newLayout: fc.boolean(),
  other: fc.boolean(),
});

function seconds(us: number): string {
  return `${Math.floor(us / 1e6)}.${String(us % 1e6).padStart(6, "0")}`;
}

function prefix(producer: Producer, vcpu: number, us: number, event: string): string {
  const tid = 7000 + vcpu;
  const ts = seconds(us);
  if (producer === "perf") return `      CPU ${vcpu}/KVM  ${tid} [00${vcpu}] ${ts}:   kvm:${event}: `;
  if (producer === "ftrace")
    return `          CPU ${vcpu}/KVM-${tid}    [00${vcpu}] d....  ${ts}: ${event}: `;
  return ` qemu-system-x86-${tid}  [00${vcpu}]   ${ts}: ${`${event}:`.padEnd(22)} `;
}

/** The lines of a trace with these exits, one after the other, starting at 100 s. */
function renderTrace(producer: Producer, exits: readonly ExitSpec[]): string[] {
  const lines = ["# tracer: nop", "#"];
  let us = 100_000_000;
  for (const e of exits) {
    const q = e.qualification.toString(16);
    const exitPayload = e.newLayout
      ? `vcpu ${e.vcpu} reason ${e.reason} rip 0xffffffff81001000 info1 0x${q.padStart(16, "0")} info2 0x0000000000000000 intr_info 0x00000000 error_code 0x00000000`
      : `reason ${e.reason} rip 0xffffffff81001000 info ${q} 0`;
    lines.push(prefix(producer, e.vcpu, us, "kvm_exit") + exitPayload);
    if (e.handling !== "plain") {
      lines.push(
        `${prefix(producer, e.vcpu, us, "kvm_nested_vmexit")}rip 7fa9ee5224e4 reason ${e.reason} info1 ${q} info2 0 int_info 0 int_info_err 0`,
      );
    }
    if (e.handling === "L1") {
      lines.push(
        `${prefix(producer, e.vcpu, us, "kvm_nested_vmexit_inject")}reason: ${e.reason} ext_inf1: 0x${q} ext_inf2: 0x0 ext_int: 0x00000000 ext_int_err: 0x00000000`,
      );
    }
    if (e.other) lines.push(`${prefix(producer, e.vcpu, us, "kvm_inj_virq")}irq 236`);
    us += e.durationUs;
    lines.push(
      prefix(producer, e.vcpu, us, "kvm_entry") +
        (e.newLayout ? `vcpu ${e.vcpu}, rip 0x401000` : `vcpu ${e.vcpu}`),
    );
    us += e.gapUs;
  }
  return lines;
}

const validTrace = fc
  .tuple(fc.constantFrom<Producer>("trace-cmd", "ftrace", "perf"), fc.array(exitSpec, { maxLength: 25 }))
  .map(([producer, exits]) => renderTrace(producer, exits));

// ---------------------------------------------------------------------------------------------
// Junk: arbitrary text and damaged copies of valid lines.

const SAMPLE_LINES = renderTrace("trace-cmd", [
  {
    vcpu: 1,
    reason: "IO_INSTRUCTION",
    handling: "L1",
    qualification: 0x5658000b,
    durationUs: 7,
    gapUs: 1,
    newLayout: true,
    other: true,
  },
]).slice(2);

const NUMBERS = ["99999999999999999999999", "0x", "-1", "-0x1", "0x1ffffffffffffffffff", "ffff_ffff", ""];

/** A valid line hurt in one of the ways real files are: cut short, a number replaced, two lines run together. */
const damagedLine: fc.Arbitrary<string> = fc.oneof(
  fc.tuple(fc.constantFrom(...SAMPLE_LINES), fc.nat()).map(([line, cut]) => line.slice(0, cut % line.length)),
  fc
    .tuple(fc.constantFrom(...SAMPLE_LINES), fc.nat(), fc.constantFrom(...NUMBERS))
    .map(([line, which, number]) => {
      const numbers = [...line.matchAll(/\b(0x)?[0-9a-f]+\b/gi)];
      const m = numbers[which % numbers.length]!;
      return line.slice(0, m.index) + number + line.slice(m.index + m[0].length);
    }),
  fc
    .tuple(fc.constantFrom(...SAMPLE_LINES), fc.constantFrom(...SAMPLE_LINES))
    .map(([a, b]) => `${a} ${b.trim()}`),
);

const anyLine: fc.Arbitrary<string> = fc.oneof(
  fc.string({ unit: "binary", maxLength: 200 }),
  fc.string({ maxLength: 200 }),
  damagedLine,
);

/** Junk a trace may hold between its lines: text that is not a header, an event or a lost-events marker. */
const junkLine = anyLine
  .map((line) => line.replace(/[\r\n]/g, " "))
  .filter((line) => parseTraceLine(line, 1).type === "garbage");

function checkEvent(line: string): void {
  const result = parseTraceLine(line, 3);
  expect(TYPES).toContain(result.type);
  if (result.type === "garbage") {
    expect(result.why.length).toBeGreaterThan(0);
    return;
  }
  if (result.type === "lost") {
    expect(Number.isSafeInteger(result.count)).toBe(true);
    return;
  }
  if (result.type !== "event") return;
  const e = result.event;
  expect(e.line).toBe(3);
  expect(e.tid).toBeLessThanOrEqual(U32);
  expect(e.cpu).toBeLessThanOrEqual(U32);
  expect(Number.isFinite(e.ts)).toBe(true);
  if ("vcpuId" in e && e.vcpuId !== undefined) expect(e.vcpuId).toBeLessThanOrEqual(U32);
  const fields: Readonly<Record<string, unknown>> = { ...e };
  // 64-bit values as two unsigned 32-bit halves, both present or both absent.
  for (const key of ["rip", "info1", "info2", "gfn"]) {
    const lo = fields[`${key}Lo`];
    const hi = fields[`${key}Hi`];
    expect(lo === undefined).toBe(hi === undefined);
    for (const half of [lo, hi]) {
      if (half === undefined) continue;
      expect(Number.isInteger(half)).toBe(true);
      expect(half as number).toBeGreaterThanOrEqual(0);
      expect(half as number).toBeLessThanOrEqual(U32);
    }
  }
  for (const key of ["intrInfo", "errorCode"]) {
    const value = fields[key];
    if (value === undefined) continue;
    expect(Number.isInteger(value)).toBe(true);
    expect(value as number).toBeGreaterThanOrEqual(0);
    expect(value as number).toBeLessThanOrEqual(U32);
  }
}

/** What a trace says, without the line bookkeeping junk changes. */
function summary(stats: TraceStats) {
  return {
    rows: statRows(stats, { mergeVcpus: false }),
    exits: stats.exits,
    nested: stats.nested,
    nestedEntries: stats.nestedEntries,
    mmuPagesCreated: stats.mmuPagesCreated,
    events: stats.events,
    kvmEvents: stats.kvmEvents,
    span: stats.span,
    timeReversals: stats.timeReversals,
  };
}

describe("arbitrary lines and files", () => {
  it("parseTraceLine never throws; events it returns hold numbers in KVM's ranges", () => {
    fc.assert(
      fc.property(anyLine, (line) => {
        checkEvent(line);
      }),
      { numRuns: 600 },
    );
  });

  it("traceStats never throws, and every line is a header, an event, lost events or garbage", () => {
    fc.assert(
      fc.property(fc.array(anyLine, { maxLength: 30 }), fc.constantFrom("\n", "\r\n", "\r"), (lines, end) => {
        const clean = lines.map((l) => l.replace(/[\r\n]/g, " "));
        const stats = traceStats(clean.join(end));
        const lost = clean.filter((l) => parseTraceLine(l, 1).type === "lost").length;
        // The empty piece after a final line end is no line.
        expect(stats.lines).toBe(clean.length - (clean.at(-1) === "" ? 1 : 0));
        expect(stats.headers + stats.events + stats.garbage + lost).toBe(stats.lines);
        expect(stats.garbageSamples.length).toBe(Math.min(5, stats.garbage));
        expect(stats.span).toBeGreaterThanOrEqual(0);
      }),
      { numRuns: 200 },
    );
  });

  it("junk between the lines of a valid trace is reported and skipped: the valid lines say the same", () => {
    fc.assert(
      fc.property(
        validTrace,
        fc.array(fc.tuple(fc.nat(), junkLine), { maxLength: 12 }),
        fc.constantFrom("\n", "\r\n"),
        (clean, junk, end) => {
          const dirty = [...clean];
          for (const [where, line] of junk) dirty.splice(where % (dirty.length + 1), 0, line);
          const junkAt = dirty.flatMap((line, i) =>
            parseTraceLine(line, 1).type === "garbage" ? [i + 1] : [],
          );
          const a = traceStats(clean.join(end));
          const b = traceStats(dirty.join(end));
          expect(a.garbage).toBe(0);
          expect(summary(b)).toEqual(summary(a));
          expect(b.garbage).toBe(junk.length);
          expect(b.lines).toBe(a.lines + junk.length);
          expect(b.garbageSamples.map((g) => g.line)).toEqual(junkAt.slice(0, 5));
        },
      ),
      { numRuns: 150 },
    );
  });

  it("reads bytes a chunk at a time exactly as it reads the whole text", () => {
    const piece = fc.constantFrom(
      "a",
      " ",
      "kvm_exit",
      "\n",
      "\r",
      "\r\n",
      "é",
      "€",
      "😀",
      "\u0000",
      "\uFEFF",
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 60 }), fc.integer({ min: 1, max: 9 }), (pieces, chunk) => {
        const bytes = new TextEncoder().encode(pieces.join(""));
        const whole = [...traceLines(new TextDecoder().decode(bytes))];
        expect([...traceLines(bytes, chunk)]).toEqual(whole);
      }),
      { numRuns: 300 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Regressions: one test per defect the audit found.

const P = " qemu-system-x86-6660  [007]   398.690000: ";
const why = (line: string) => {
  const result = parseTraceLine(line, 1);
  return result.type === "garbage" ? result.why : result.type;
};

describe("trace defects found by the robustness audit (regressions)", () => {
  it("matches long lines of blanks in linear time (a 200,000-blank line hung for 40 s)", () => {
    const lines = [
      `${" ".repeat(200_000)}-1 [000] 1.000000: kvm_exit: reason HLT rip 0x1 info 0 0`,
      `${" ".repeat(MAX_LINE_LENGTH - 60)}-1 [000] 1.000000: kvm_exit: reason HLT rip 0x1 info 0 0`,
      ` qemu-1 ${" ".repeat(MAX_LINE_LENGTH - 20)}x`,
      `q ${"1 ".repeat(MAX_LINE_LENGTH / 2 - 2)}`,
      `${"\t".repeat(MAX_LINE_LENGTH)}`,
    ];
    const start = performance.now();
    for (const line of lines) parseTraceLine(line, 1);
    expect(performance.now() - start).toBeLessThan(1000);
    expect(why(lines[0]!)).toMatch(/^longer than 16384 characters: not a trace event line/);
    expect(parseTraceLine(lines[1]!, 1).type).toBe("event");
  });

  it("refuses numbers wider than KVM prints them instead of keeping them (or rounding them)", () => {
    expect(why(`${P}kvm_exit: reason HLT rip 0x1ffffffffffffffffffff info 0 0`)).toBe(
      "kvm_exit: rip 0x1ffffffffffffffffffff does not fit in 64 bits",
    );
    expect(why(`${P}kvm_exit: reason HLT rip 0x1 info 123456789012345678901234567890 0`)).toMatch(
      /^kvm_exit: info 1234\d+ does not fit in 64 bits$/,
    );
    expect(
      why(`${P}kvm_exit: reason HLT rip 0x1 info1 0x0 info2 0x0 intr_info 0x1ffffffff error_code 0x0`),
    ).toBe("kvm_exit: intr_info 0x1ffffffff does not fit in 32 bits");
    expect(why(`${P}kvm_exit: vcpu 4294967296 reason HLT rip 0x1 info 0 0`)).toBe(
      "kvm_exit: vcpu 4294967296 does not fit in 32 bits",
    );
    expect(why(`${P}kvm_entry: vcpu 99999999999999999999999`)).toBe(
      "kvm_entry: vcpu 99999999999999999999999 does not fit in 32 bits",
    );
    expect(why(`${P}kvm_exit: reason 0xFFFFFFFFFFFFFFFFFFFF rip 0x1 info 0 0`)).toBe(
      "kvm_exit: reason 0xFFFFFFFFFFFFFFFFFFFF does not fit in 64 bits",
    );
    expect(why(" qemu-99999999999999999999 [000] 1.0: kvm_exit: reason HLT rip 0x1 info 0 0")).toBe(
      "thread id 99999999999999999999 does not fit in 32 bits",
    );
    expect(why(" qemu-1 [99999999999] 1.0: kvm_exit: reason HLT rip 0x1 info 0 0")).toBe(
      "CPU number 99999999999 does not fit in 32 bits",
    );
    expect(why(" qemu-1 [000] 99999999999999999999.5: kvm_exit: reason HLT rip 0x1 info 0 0")).toMatch(
      /too large to time exits to the microsecond/,
    );
    expect(
      why(
        `${P}kvm_mmu_get_page: sp gen 0 gfn 1ffffffffffffffffff l1 8-byte q0 direct wux nxe ad root 0 sync new`,
      ),
    ).toBe("kvm_mmu_get_page: gfn 1ffffffffffffffffff does not fit in 64 bits");
    expect(why("CPU:2 [LOST 99999999999999999999999 EVENTS]")).toBe(
      "lost-event count 99999999999999999999999 is too large",
    );
  });

  it("refuses negative, empty and malformed values that were dropped silently", () => {
    expect(why(`${P}kvm_exit: vcpu abc reason HLT rip 0x1 info 0 0`)).toBe(
      'kvm_exit: vcpu "abc" is not a vCPU number',
    );
    expect(why(`${P}kvm_exit: reason -5 rip 0x1 info 0 0`)).toBe(
      'kvm_exit: reason "-5" is not an exit-reason name or number',
    );
    expect(why(`${P}kvm_exit: reason 0x rip 0x1 info 0 0`)).toBe(
      'kvm_exit: reason "0x" is not an exit-reason name or number',
    );
    expect(why(`${P}kvm_entry: vcpu -1`)).toBe('kvm_entry: vcpu "-1" is not a vCPU number');
    expect(why(`${P}kvm_entry: vcpu 1, rip 0xzz`)).toBe('kvm_entry: rip "0xzz" is not a hex number');
    // Upper-case hex is still hex.
    expect(why(`${P}kvm_exit: reason HLT rip 0X1F info ABC DEF`)).toBe("event");
  });

  it("refuses lines cut short after the RIP, or with no vcpu", () => {
    expect(why(`${P}kvm_exit: reason HLT rip 0x1`)).toBe("kvm_exit: no info1 (a truncated line?)");
    expect(why(`${P}kvm_exit: reason HLT rip 0x1 info 0`)).toBe(
      "kvm_exit: info has one value, not two (a truncated line?)",
    );
    expect(why(" qemu-1 [000] 1.0: kvm_nested_vmexit_inject: reason: HLT")).toBe(
      "kvm_nested_vmexit_inject: no info1 (a truncated line?)",
    );
    expect(why(`${P}kvm_entry:`)).toBe("kvm_entry: no vcpu (a truncated line?)");
    expect(why(`${P}kvm_entry: vcpu 1, rip`)).toBe("kvm_entry: rip has no value (a truncated line?)");
  });

  it("still reads kvm_entry as 6.9+ prints it, '[immediate exit]' right after the RIP", () => {
    const e = parseTraceLine(`${P}kvm_entry: vcpu 3, rip 0xffffffff81000000[immediate exit]`, 1);
    expect(e).toMatchObject({
      type: "event",
      event: { kind: "entry", vcpuId: 3, ripLo: 0x81000000, ripHi: 0xffffffff },
    });
    expect(
      parseTraceLine(
        `${P}kvm_entry: vcpu 3, rip 0x401000 inj 0x00000000 inj_error_code 0x00000000[guest]`,
        1,
      ),
    ).toMatchObject({ type: "event", event: { kind: "entry", ripLo: 0x401000, ripHi: 0 } });
    // Fields later kernels append to kvm_exit are not a reason to refuse it.
    expect(
      why(
        `${P}kvm_exit: vcpu 0 reason HLT rip 0x1 info1 0x0 info2 0x0 intr_info 0x0 error_code 0x0 requests 0x0000000000000000`,
      ),
    ).toBe("event");
  });

  it("refuses a field given twice: two lines run together", () => {
    const exit = `${P}kvm_exit: vcpu 0 reason HLT rip 0x1 info1 0x0 info2 0x0 intr_info 0x0 error_code 0x0`;
    expect(why(`${exit} ${exit.trim()}`)).toBe("kvm_exit: vcpu appears twice (two lines run together?)");
    expect(why(`${P}kvm_exit: reason HLT reason CPUID rip 0x1 info 0 0`)).toBe(
      "kvm_exit: reason appears twice (two lines run together?)",
    );
  });

  it("reads 'LOST n EVENTS' only on lines that are not events, and events of trace-cmd's own threads", () => {
    expect(parseTraceLine(" qemu-1 [000] 1.0: bputs: LOST 5 EVENTS", 1).type).toBe("event");
    expect(parseTraceLine("CPU:2 [LOST 17 EVENTS]", 1)).toEqual({ type: "lost", count: 17 });
    expect(parseTraceLine(" trace-cmd-5812 [002] 1.000000: sched_switch: prev_comm=trace-cmd", 1).type).toBe(
      "event",
    );
    expect(parseTraceLine("trace-cmd: No such file or directory", 1).type).toBe("header");
  });

  it("names unknown codes exactly, however wide (they were rounded through a double)", () => {
    expect(normaliseReason("0xFFFFFFFFFFFFFFFF")).toBe("0xffffffffffffffff");
    expect(normaliseReason("18446744073709551615")).toBe("0xffffffffffffffff");
    expect(normaliseReason("9007199254740993")).toBe("0x20000000000001");
    expect(normaliseReason("0x30")).toBe("EPT_VIOLATION");
    expect(normaliseReason("65584")).toBe("0x10030");
  });

  it("merges more exits than a call takes arguments (push(...) overflowed the stack)", () => {
    const durations = Array.from({ length: 300_000 }, (_, i) => i % 7);
    const group = {
      vcpu: "0",
      exitingLevel: null,
      handledBy: "L0" as const,
      reason: "HLT",
      count: durations.length,
      durations,
      qualifications: new U64Counts(),
      tid: 1,
    };
    const stats = { ...traceStats(""), groups: [group] };
    const [row] = statRows(stats, { mergeVcpus: true });
    expect(row).toMatchObject({ count: 300_000, timedCount: 300_000, minUs: 0, maxUs: 6 });
  });

  it("reads \\r line ends, a byte-order mark and bytes that are not UTF-8", () => {
    const exit = " qemu-1 [000] 1.000000: kvm_exit: reason HLT rip 0x1 info 0 0";
    const entry = " qemu-1 [000] 1.000002: kvm_entry: vcpu 0";
    for (const end of ["\r", "\r\n", "\n"]) {
      const stats = traceStats(`${exit}${end}${entry}${end}`);
      expect(stats).toMatchObject({ lines: 2, events: 2, exits: 1, garbage: 0 });
    }
    const bytes = new Uint8Array([
      0xef,
      0xbb,
      0xbf,
      ...new TextEncoder().encode(`${exit}\n`),
      0xff,
      0xfe,
      0x0a,
      ...new TextEncoder().encode(entry),
    ]);
    const stats = traceStats(bytes);
    expect(stats).toMatchObject({ lines: 3, events: 2, exits: 1, garbage: 1 });
    expect(stats.garbageSamples[0]).toMatchObject({ line: 2, text: "\uFFFD\uFFFD" });
  });

  it("reads a line longer than a chunk of bytes as one line, refused by its length", () => {
    const long = "x".repeat(5 * (MAX_LINE_LENGTH + 1));
    const bytes = new TextEncoder().encode(`a\n${long}\r\nb\n`);
    const lines = [...traceLines(bytes, 1024)];
    expect(lines.map((l) => l.length)).toEqual([1, 4 * (MAX_LINE_LENGTH + 1), 1]);
    expect(traceStats(bytes).garbageSamples[1]).toMatchObject({ line: 2 });
  });

  it("reports timestamps that go backwards on a thread, and spans from the earliest to the latest", () => {
    const K = (ts: string) => ` qemu-system-x86-6660  [007]   ${ts}: `;
    const stats = traceStats(
      [
        `${K("398.690010")}kvm_exit: reason HLT rip 0x1 info 0 0`,
        `${K("398.690000")}kvm_entry: vcpu 0`,
        `${K("398.690020")}kvm_exit: reason CPUID rip 0x1 info 0 0`,
        `${K("398.690020")}kvm_entry: vcpu 0`,
      ].join("\n"),
    );
    expect(stats).toMatchObject({ timeReversals: 1, firstTimeReversal: 2, exits: 2 });
    expect(stats.span).toBeCloseTo(0.00002, 9);
    const rows = statRows(stats, { mergeVcpus: true });
    expect(rows.find((r) => r.reason === "HLT")).toMatchObject({ timedCount: 0 });
    // Equal timestamps: an exit of no measurable length.
    expect(rows.find((r) => r.reason === "CPUID")).toMatchObject({ timedCount: 1, minUs: 0 });
  });

  it("times exits to the nanosecond, without the doubles' noise (1.9999999949504854 µs)", () => {
    const stats = traceStats(
      [`${P}kvm_exit: reason HLT rip 0x1 info 0 0`, `${P.replace("690000", "690002")}kvm_entry: vcpu 0`].join(
        "\n",
      ),
    );
    expect(statRows(stats, { mergeVcpus: true })[0]!.minUs).toBe(2);
  });

  it("labels thousands of vCPUs", () => {
    const lines: string[] = [];
    for (let v = 0; v < 3000; v++) {
      lines.push(
        ` CPU ${v}/KVM-${10_000 + v} [000] d.... 5.000000: kvm_exit: vcpu ${v} reason HLT rip 0x1 info1 0x0 info2 0x0`,
      );
    }
    const stats = traceStats(lines.join("\n"));
    expect(new Set(stats.groups.map((g) => g.vcpu)).size).toBe(3000);
    expect(statRows(stats, { mergeVcpus: false, vcpu: "2999" })).toHaveLength(1);
  });
});
