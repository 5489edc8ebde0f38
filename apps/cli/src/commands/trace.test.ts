import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { runCli, runJson, tempFiles } from "../testing/run-cli";

const FIXTURES = resolve(import.meta.dirname, "../../test/fixtures");
const NESTED = resolve(FIXTURES, "nested-trace-cmd.txt");
const PERF = resolve(FIXTURES, "perf-script.txt");

interface Stat {
  garbageLines: number;
  nested: boolean;
  exits: number;
  rows: {
    vcpu: string;
    exitingLevel: string | null;
    handledBy: string;
    reason: string;
    count: number;
    p50Us: number | null;
    p99Us: number | null;
  }[];
}

describe("nestvisor trace stat", () => {
  it("prints a perf-kvm-stat table of a nested trace-cmd report, split by who handled each exit", () => {
    const r = runCli(["trace", "stat", "nested-trace-cmd.txt"], { cwd: FIXTURES });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /^nested-trace-cmd\.txt: 96 lines, 90 events \(trace-cmd\/ftrace\), 30 VM exits — a nested trace/,
    );
    expect(r.stdout).toMatch(/2 lines not understood \(skipped\); first: line 45: /);
    expect(r.stdout).toMatch(
      /L2\s+L1\s+IO_INSTRUCTION\s+6\s+20\.0%\s+[\d.]+%\s+6\.00\s+6\.00\s+6\.00\s+6\.00/,
    );
    expect(r.stdout).toMatch(/L2\s+L0\s+EPT_VIOLATION\s+6/);
    expect(r.stdout).toMatch(/L1\s+L0\s+VMREAD\s+12/);
    expect(r.stdout).toContain("6 shadow/TDP pages created");
    for (const line of r.stdout.split("\n")) expect(line.length).toBeLessThanOrEqual(100);
  });

  it("--json rows per vCPU, level, handler and reason; garbage counted, not fatal", () => {
    const out = runJson(["trace", "stat", NESTED, "--json"]) as Stat;
    expect(out).toMatchObject({ garbageLines: 2, nested: true, exits: 30 });
    expect(out.rows).toContainEqual(
      expect.objectContaining({
        vcpu: "1",
        exitingLevel: "L2",
        handledBy: "L0",
        reason: "EPT_VIOLATION",
        count: 6,
      }),
    );
    expect(out.rows).toContainEqual(
      expect.objectContaining({
        vcpu: "0",
        exitingLevel: "L1",
        handledBy: "L0",
        reason: "VMRESUME",
        count: 6,
      }),
    );
  });

  it("reads perf script output with new layouts; filters by vCPU and reason; prints unknown codes in hex", () => {
    const all = runJson(["trace", "stat", PERF, "--json"]) as Stat;
    expect(all.nested).toBe(false);
    expect(all.rows.map((r) => `${r.vcpu}:${r.reason}:${r.count}`).sort()).toEqual([
      "0:0x20000:1",
      "0:HLT:4",
      "0:MSR_WRITE:6",
      "1:CPUID:10",
    ]);
    const one = runJson(["trace", "stat", PERF, "--vcpu", "1", "--json"]) as Stat;
    expect(one.rows.map((r) => r.reason)).toEqual(["CPUID"]);
    const filtered = runJson(["trace", "stat", PERF, "--reason", "^(hlt|msr)", "--json"]) as Stat;
    expect(filtered.rows.map((r) => r.reason).sort()).toEqual(["HLT", "MSR_WRITE"]);
    const csv = runCli(["trace", "stat", PERF, "--csv"]).stdout.trimEnd().split("\n");
    expect(csv[0]).toBe(
      "vcpu,exitingLevel,handledBy,reason,count,share,timeShare,minUs,p50Us,p99Us,maxUs,meanUs",
    );
    expect(csv).toHaveLength(5);
  });

  it("reads stdin with '-'", () => {
    const r = runCli(["trace", "stat", "-", "--json"], { input: readFileSync(PERF, "utf8") });
    expect((JSON.parse(r.stdout) as Stat).exits).toBe(21);
  });

  it("rejects files that are not traces with a clear one-line error and exit code 2", () => {
    const binary = new Uint8Array(64);
    binary.set(new TextEncoder().encode("\u0017\u0008Dtracing6"), 0);
    const dir = tempFiles({
      "notes.txt": "hello\nworld\n",
      "empty.txt": "",
      "trace.dat": binary,
      "perf.data": "PERFILE2\u0000\u0000",
    });
    const cases: [string[], RegExp][] = [
      [
        ["trace", "stat", "notes.txt"],
        /^nestvisor trace stat: notes\.txt is not a trace: none of its 2 lines is a trace-cmd report, ftrace or perf script event line \(line 1: [^\n]+\)\n$/,
      ],
      [["trace", "stat", "empty.txt"], /empty\.txt is not a trace: it holds no event lines/],
      [
        ["trace", "stat", "trace.dat"],
        /trace\.dat is a binary trace-cmd recording; convert it first: trace-cmd report -i trace\.dat > trace\.txt/,
      ],
      [
        ["trace", "stat", "perf.data"],
        /perf\.data is a binary perf\.data file; convert it first: perf script -i perf\.data/,
      ],
      [["trace", "stat", "missing.txt"], /missing\.txt: no such file/],
      [["trace", "stat", "notes.txt", "--reason", "("], /--reason "\(" is not a regular expression/],
    ];
    for (const [args, message] of cases) {
      const r = runCli(args, { cwd: dir });
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
    }
  });
});

describe("nestvisor trace replay", () => {
  it("estimates each preset's cycles for the trace's exit mix", () => {
    const out = runJson([
      "trace",
      "replay",
      NESTED,
      "--presets",
      "v5.2,v6.12",
      "--iterations",
      "20",
      "--json",
    ]) as {
      exits: number;
      simulatedExits: number;
      coveredExits: number;
      rows: { reason: string; status: string; level: number }[];
      totalCycles: Record<string, number>;
    };
    expect(out).toMatchObject({ exits: 30, simulatedExits: 12, coveredExits: 18 });
    expect(out.rows.find((r) => r.reason === "IO_INSTRUCTION")).toMatchObject({
      status: "simulated",
      level: 2,
    });
    expect(out.totalCycles["v5.2"]!).toBeGreaterThan(out.totalCycles["v6.12"]!);
    const text = runCli(["trace", "replay", PERF, "--presets", "v5.2,v6.12", "--iterations", "20"]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain("Model cycles per traced exit, by preset");
    expect(text.stdout).toMatch(/estimates cover 20 of 21 exits \(95\.2%\)/);
    expect(text.stdout).toMatch(/0x20000\s+L1\s+1\s+not modelled/);
    for (const line of text.stdout.split("\n")) expect(line.length).toBeLessThanOrEqual(100);
  });

  it("rejects an unknown preset", () => {
    const r = runCli(["trace", "replay", PERF, "--presets", "v9.9"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown kernel preset "v9\.9"/);
  });
});
