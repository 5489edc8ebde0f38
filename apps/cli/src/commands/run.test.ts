import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runCli, runJson, tempFiles } from "../testing/run-cli";

interface ChromeEvent {
  name: string;
  ph: string;
  ts?: number;
  dur?: number;
  pid: number;
  tid: number;
  args?: Record<string, unknown>;
}

/** Chrome trace-event JSON object format, as Perfetto's importer reads it. */
function checkChromeTrace(trace: { traceEvents: ChromeEvent[]; displayTimeUnit?: string }): void {
  expect(Array.isArray(trace.traceEvents)).toBe(true);
  const open = new Map<number, { end: number }[]>();
  let last = Number.NEGATIVE_INFINITY;
  for (const e of trace.traceEvents) {
    expect(["M", "X", "i"]).toContain(e.ph);
    expect(typeof e.name).toBe("string");
    expect(Number.isInteger(e.pid) && Number.isInteger(e.tid)).toBe(true);
    if (e.ph === "M") continue;
    expect(typeof e.ts).toBe("number");
    expect(e.ts!).toBeGreaterThanOrEqual(last);
    last = e.ts!;
    if (e.ph !== "X") continue;
    expect(e.dur!).toBeGreaterThanOrEqual(0);
    // Slices on one track nest: each starts after its enclosing slice and ends inside it.
    const stack = open.get(e.tid) ?? [];
    while (stack.length > 0 && stack.at(-1)!.end <= e.ts! + 1e-9) stack.pop();
    if (stack.length > 0) expect(e.ts! + e.dur!).toBeLessThanOrEqual(stack.at(-1)!.end + 1e-9);
    stack.push({ end: e.ts! + e.dur! });
    open.set(e.tid, stack);
  }
}

describe("nestvisor run", () => {
  it("prints cycles per iteration, by level, by exit reason with percentiles, and events", () => {
    const r = runCli(["run", "cpuid", "--iterations", "200"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^cpuid at L2 · preset v6\.12 · profile intel-server · 200 iterations/);
    expect(r.stdout).toContain("8,142 cycles per iteration");
    for (const section of [
      "Cycles by level",
      "Cycles by exit reason being handled",
      "Exits: count per iteration",
      "Events (top 15",
    ]) {
      expect(r.stdout).toContain(section);
    }
    expect(r.stdout).toMatch(/L2\s+CPUID\s+1\s+[\d,]+\s+[\d,]+\s+[\d,]+\s+[\d,]+/);
    for (const line of r.stdout.split("\n")) expect(line.length).toBeLessThanOrEqual(100);
  });

  it("--json prints one row of the compare shape plus exit latencies", () => {
    const out = runJson(["run", "vmcall", "-l", "1", "-p", "v5.2", "-n", "30", "--json"]) as {
      rows: { workload: string; level: number; preset: string; cyclesPerIteration: number }[];
      exits: { level: number; reason: string; p50: number; p99: number; histogram: unknown[] }[];
    };
    expect(out.rows).toHaveLength(1);
    expect(out.rows[0]).toMatchObject({
      workload: "vmcall",
      level: 1,
      preset: "v5.2",
      cyclesPerIteration: 1088,
    });
    expect(out.exits[0]).toMatchObject({ level: 1, reason: "VMCALL" });
    expect(out.exits[0]!.p99).toBeGreaterThanOrEqual(out.exits[0]!.p50);
  });

  it("reports the processor TLB: hits with PCID no-flush switches, entries dropped by MOV to CR3 without", () => {
    const args = ["run", "cr3_switch", "-l", "1", "-n", "3", "--param", "pages=2", "--param", "compute=0"];
    type Tlb = { hits: number; misses: number; invalidations: Record<string, { entries: number }> };
    const keep = (runJson([...args, "--param", "pcid=true", "--json"]) as { tlb: Tlb }).tlb;
    const flush = (runJson([...args, "--json"]) as { tlb: Tlb }).tlb;
    expect(keep.hits).toBeGreaterThan(0);
    expect(flush.hits).toBe(0);
    expect(flush.invalidations.movCr3!.entries).toBeGreaterThan(0);
    const text = runCli([...args, "--param", "pcid=true"]).stdout;
    expect(text).toMatch(
      /Processor TLB \(guest accesses; evicted at every VM exit\): [\d,]+ hits, [\d,]+ misses/,
    );
  });

  it("--perfetto writes a Chrome trace-event timeline with one track per level", () => {
    const dir = tempFiles({});
    const r = runCli(["run", "cpuid", "-n", "20", "--perfetto", "t.json"], { cwd: dir });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("timeline written to t.json");
    const trace = JSON.parse(readFileSync(join(dir, "t.json"), "utf8"));
    checkChromeTrace(trace);
    const threads = trace.traceEvents
      .filter((e: ChromeEvent) => e.name === "thread_name")
      .map((e: ChromeEvent) => e.args!.name);
    expect(threads).toEqual(["L0 (host KVM)", "L1 (guest KVM)", "L2 (workload)"]);
    expect(trace.traceEvents.some((e: ChromeEvent) => e.name === "VM exit: CPUID" && e.tid === 2)).toBe(true);
    expect(
      trace.traceEvents.some((e: ChromeEvent) => e.name === "handle CPUID" && e.ph === "X" && e.tid === 0),
    ).toBe(true);
    // KVM's functions are slices inside the exit's handling (KVM_PHASE).
    expect(
      trace.traceEvents.some(
        (e: ChromeEvent) => e.name === "load_vmcs12_host_state" && e.ph === "X" && e.tid === 0,
      ),
    ).toBe(true);
  });

  it("runs a workload file", () => {
    const dir = tempFiles({
      "w.yaml":
        "name: mine\nsetup: { level: 2 }\nsteps:\n  - loop: { count: 10, steps: [iteration: x, cpuid: 1, vmcall: 0] }\n",
    });
    const out = runJson(["run", "w.yaml", "--json"], { cwd: dir }) as {
      rows: { workload: string; counters: Record<string, number> }[];
    };
    expect(out.rows[0]!.workload).toBe("mine");
    expect(out.rows[0]!.counters.EXIT_HANDLER_CPUID).toBe(1);
  });

  it("rejects bad input with one line and exit code 2", () => {
    const dir = tempFiles({ "broken.json": '{ "name": "x", "steps": [ { "cpuid": ' });
    const cases: [string[], RegExp][] = [
      [["run", "nope"], /^nestvisor run: unknown workload "nope"/],
      [["run", "broken.json"], /^nestvisor run: broken\.json:1:\d+: YAML: /],
      [
        ["run", "touch_memory", "--iterations", "5"],
        /touch_memory takes no iterations parameter; its parameters: level, pages, passes, write/,
      ],
      [["run", "cpuid", "--param", "pages=3"], /unknown parameter "pages"/],
      [["run", "cpuid", "--flag", "ept=off"], /ept=off with a nested guest .* is not modelled/],
      [["run"], /missing a workload name or file/],
    ];
    for (const [args, message] of cases) {
      const r = runCli(args, { cwd: dir });
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
    }
  });
});
