import { existsSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { main } from "../main";
import { rowLine } from "../sweep/sweep-row";
import { fakeRow } from "../testing/sweep-rows";
import { maxJobs } from "./sweep";

/**
 * The commands' option handling, run in-process through `main` (no built binary): bad values are
 * one line on stderr and exit 2, before any simulation runs and without writing any file.
 */

interface Outcome {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

async function nestvisor(argv: readonly string[], cwd: string): Promise<Outcome> {
  let stdout = "";
  let stderr = "";
  const code = await main(argv, {
    out: { isTTY: false, write: (text: string) => (stdout += text) },
    err: { isTTY: false, write: (text: string) => (stderr += text) },
    env: { NO_COLOR: "1", NESTVISOR_PROGRESS: "0" },
    cwd,
    stdin: Readable.from([]),
  });
  return { code, stdout, stderr };
}

const fresh = (): string => mkdtempSync(join(tmpdir(), "nestvisor-options-robust-"));

/** One usage error: exit 2, nothing on stdout, one line on stderr naming the command. */
function expectUsageError(r: Outcome, command: string, message: RegExp | string): void {
  expect(r.code, r.stderr).toBe(2);
  expect(r.stdout).toBe("");
  expect(r.stderr.endsWith("\n")).toBe(true);
  expect(r.stderr.trimEnd().split("\n"), r.stderr).toHaveLength(1);
  expect(r.stderr.startsWith(`nestvisor ${command}: `)).toBe(true);
  if (typeof message === "string") expect(r.stderr).toContain(message);
  else expect(r.stderr).toMatch(message);
}

const OPTIONS = [
  "--workloads",
  "-w",
  "--levels",
  "-l",
  "--level",
  "--presets",
  "-p",
  "--preset",
  "--profile",
  "--profiles",
  "--flag",
  "-f",
  "--flags",
  "--vary",
  "--param",
  "--top",
  "--jobs",
  "-j",
  "--shard",
  "--chart",
  "--perfetto",
  "--out",
  "--json",
  "--csv",
  "--ablate",
  "--dry-run",
];
const VALUES = [
  "cpuid",
  "L2",
  "0",
  "4",
  "-1",
  "v5.2",
  "v9.9",
  "zero",
  "ept=off",
  "l1Ept=on",
  "1/2",
  "0x10",
  "1e3",
  "",
];
const token = fc.oneof(
  fc.constantFrom(...OPTIONS, ...VALUES),
  fc.tuple(fc.constantFrom(...OPTIONS), fc.constantFrom(...VALUES)).map(([o, v]) => `${o}=${v}`),
  fc.string({ maxLength: 6 }),
);

describe("commands on arbitrary options", () => {
  it("end in help (exit 0) or one usage error line (exit 2): no internal error, no file written", async () => {
    const cwd = fresh();
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(["compare"], ["run", "cpuid"], ["sweep"], ["run", "nosuch"]),
        fc.array(token, { maxLength: 6 }),
        async (command, tokens) => {
          // A trailing bad count stops every command before it simulates anything.
          const r = await nestvisor([...command, ...tokens, "--iterations=0"], cwd);
          expect(r.stderr).not.toMatch(/internal error/);
          if (r.code === 0) expect(r.stdout).toMatch(/^Usage: nestvisor /);
          else expectUsageError(r, command[0]!, /./);
          expect(readdirSync(cwd)).toEqual([]);
        },
      ),
      { numRuns: 150 },
    );
  });
});

describe("command-line defects found by the robustness audit (regressions)", () => {
  it("refuses --iterations that would run for days, naming the limit", async () => {
    const cwd = fresh();
    for (const command of [["compare"], ["run", "cpuid"], ["sweep", "--dry-run"]]) {
      const r = await nestvisor([...command, "--iterations", "4294967295"], cwd);
      expectUsageError(r, command[0]!, '--iterations must be an integer in [1, 100000], not "4294967295"');
    }
  });

  it("refuses more --jobs than a few per core (each worker holds its own model)", async () => {
    const r = await nestvisor(["sweep", "--dry-run", "--jobs", "1024"], fresh());
    expectUsageError(r, "sweep", `--jobs must be an integer in [1, ${maxJobs()}], not "1024"`);
  });

  it("runs every workload of a repeated --workloads, not only the last", async () => {
    const r = await nestvisor(
      ["compare", "-w", "cpuid", "-w", "vmcall", "-l", "1", "-p", "v6.12", "-n", "2", "--json"],
      fresh(),
    );
    expect(r.code, r.stderr).toBe(0);
    const rows = (JSON.parse(r.stdout) as { rows: { workload: string }[] }).rows;
    expect(rows.map((row) => row.workload)).toEqual(["cpuid", "vmcall"]);
  });

  it("refuses a single-valued option given twice with different values", async () => {
    const r = await nestvisor(["run", "cpuid", "-p", "v5.2", "--preset", "v6.12"], fresh());
    expectUsageError(r, "run", 'option --preset is given 2 times ("v5.2", "v6.12"); give it once');
  });

  it("refuses a flag set both off and on", async () => {
    const r = await nestvisor(["run", "cpuid", "--flag", "ept=off", "-f", "ept=on"], fresh());
    expectUsageError(r, "run", 'flag "ept" is set both off and on; set it once');
  });

  it("names the option of a negative number instead of 'bad value'", async () => {
    const r = await nestvisor(["compare", "--iterations", "-5"], fresh());
    expectUsageError(r, "compare", 'option --iterations needs a value, but "-5" follows it');
  });

  it("refuses an empty value for an option that takes a name or a path", async () => {
    const cwd = fresh();
    expectUsageError(
      await nestvisor(["run", "cpuid", "--perfetto="], cwd),
      "run",
      'option --perfetto needs a value, not ""',
    );
    expectUsageError(
      await nestvisor(["run", "cpuid", "--profile="], cwd),
      "run",
      'option --profile needs a value, not ""',
    );
  });

  it("checks an output path before running, naming the missing directory, and writes nothing", async () => {
    const cwd = fresh();
    const missing = join(cwd, "none");
    expectUsageError(
      await nestvisor(["run", "cpuid", "-n", "2", "--perfetto", "none/trace.json"], cwd),
      "run",
      `cannot write none/trace.json: ENOENT: the directory ${missing} does not exist`,
    );
    expectUsageError(
      await nestvisor(["compare", "-w", "cpuid", "-l", "1", "--chart", "none/c.svg"], cwd),
      "compare",
      `cannot write none/c.svg: ENOENT: the directory ${missing} does not exist`,
    );
    expectUsageError(
      await nestvisor(["sweep", "-w", "cpuid", "-l", "1", "-p", "v6.12", "--out", "none/s.jsonl"], cwd),
      "sweep",
      `cannot write none/s.jsonl: ENOENT: the directory ${missing} does not exist`,
    );
    writeFileSync(join(cwd, "rows.jsonl"), `${rowLine(fakeRow(0))}\n`);
    expectUsageError(
      await nestvisor(["sweep", "merge", "rows.jsonl", "--out", "none/m.jsonl"], cwd),
      "sweep merge",
      `cannot write none/m.jsonl: ENOENT: the directory ${missing} does not exist`,
    );
    expect(existsSync(missing)).toBe(false);
    expect(readdirSync(cwd)).toEqual(["rows.jsonl"]);
  });
});
